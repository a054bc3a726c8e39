//! Telling a shell user that a line was blocked, where they can see it.
//!
//! A blocked line is killed in the target's shell (Ctrl-E Ctrl-U, see
//! [`super::lineedit::Submit::blocked_kill`]), and the shell redraws its
//! line. For a buffer of several lines (a bracketed paste) readline's
//! redraw moves the cursor up to the prompt and clears to the end of the
//! screen, so a notice written at once, before that redraw arrives, is
//! wiped and the user is never told. The notice therefore waits for the
//! redraw: the first output after the kill, then a short quiet spell (or a
//! bound, for a shell that answers nothing). It is written on a new line
//! below the redrawn prompt, and only then is the Enter sent that makes the
//! shell print a fresh prompt under it.
//!
//! Layer: the bottom of `server/`; imports nothing of `server/`.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, timeout, timeout_at};

/// How long to wait for the shell's redraw.
struct Timing {
    /// Longest wait for the shell to answer the kill at all.
    first: Duration,
    /// The redraw is over once the target has been quiet this long.
    quiet: Duration,
    /// Longest wait in total, however chatty the target is.
    most: Duration,
}

const TIMING: Timing = Timing {
    first: Duration::from_millis(1500),
    quiet: Duration::from_millis(120),
    most: Duration::from_secs(3),
};

/// Counts target output chunks already written to the client, so that a
/// notice can be ordered after them.
pub struct OutputSeen(watch::Sender<u64>);

impl Default for OutputSeen {
    fn default() -> Self {
        OutputSeen(watch::channel(0).0)
    }
}

impl OutputSeen {
    /// Called after each chunk of target output reached the client.
    pub fn bump(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees only output from now on: take it before
    /// sending the kill, so its answer cannot be missed.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}

/// Waits until the target has answered (some output, then a quiet spell),
/// or the bounds pass.
pub async fn redrawn(seen: &mut watch::Receiver<u64>) {
    redrawn_with(seen, &TIMING).await
}

async fn redrawn_with(seen: &mut watch::Receiver<u64>, t: &Timing) {
    let end = Instant::now() + t.most;
    if !matches!(timeout(t.first, seen.changed()).await, Ok(Ok(()))) {
        return;
    }
    while Instant::now() < end {
        let quiet_until = (Instant::now() + t.quiet).min(end);
        match timeout_at(quiet_until, seen.changed()).await {
            Ok(Ok(())) => continue,
            // Quiet (or the channel is gone): the redraw is on screen.
            _ => return,
        }
    }
}

/// The notice for a blocked line, starting on a new line and without a
/// line break of its own: the Enter sent next makes the shell end it.
pub fn blocked_line(reason: &str) -> String {
    format!("\r\ngatehouse: command blocked: {reason}")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[tokio::test]
    async fn waits_for_the_output_to_stop() {
        let seen = Arc::new(OutputSeen::default());
        let mut rx = seen.watch();
        let done = Arc::new(AtomicBool::new(false));
        let (s, d) = (seen.clone(), done.clone());
        tokio::spawn(async move {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(5)).await;
                s.bump();
            }
            d.store(true, Ordering::SeqCst);
        });
        let t = Timing {
            first: Duration::from_secs(30),
            quiet: Duration::from_millis(800),
            most: Duration::from_secs(30),
        };
        redrawn_with(&mut rx, &t).await;
        assert!(done.load(Ordering::SeqCst), "returned while output went on");
    }

    #[tokio::test]
    async fn a_silent_or_endless_target_is_not_waited_for_forever() {
        let seen = Arc::new(OutputSeen::default());
        let t = Timing {
            first: Duration::from_millis(20),
            quiet: Duration::from_millis(50),
            most: Duration::from_millis(200),
        };
        redrawn_with(&mut seen.watch(), &t).await;
        let s = seen.clone();
        let chatter = tokio::spawn(async move {
            loop {
                s.bump();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        redrawn_with(&mut seen.watch(), &t).await;
        chatter.abort();
    }

    #[test]
    fn the_notice_starts_a_line_and_leaves_the_end_to_the_shell() {
        assert_eq!(
            blocked_line("command blocked by policy: rm -rf /*"),
            "\r\ngatehouse: command blocked: command blocked by policy: rm -rf /*"
        );
    }
}
