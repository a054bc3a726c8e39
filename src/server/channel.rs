//! The session-channel dispatcher, at the top of the channel modules:
//! collects what the client asks (PTY, environment, early data) until it
//! names a shell, command or subsystem, then hands the channel to the
//! session bridge ([`super::bridge`]) or to command mode
//! ([`super::command_mode`]).
//!
//! Flow control: the client-facing session loop never waits on us (events
//! arrive through a [`super::flow::Inbox`] whose bytes count against the
//! connection's budget, and `ConnHandler::adjust_window` stops refilling the
//! client's window while it is high), so it always processes the client's
//! window adjustments. The target-facing direction keeps russh's bounded channel
//! queue as its backpressure: a slow client reader stops the bastion reading
//! from the target, and memory stays bounded both ways.
//!
//! May import anything below it in `server/`; only the handler imports it.

use std::sync::Arc;

use russh::ChannelId;

use super::chan::{ChanEvent, ClientWriter, PtyReq, Start, refuse};
use super::conn::{ConnState, Target};
use super::flow::InboxRx;
use crate::audit::EventKind;

/// Data a client may send on a session channel before it asks for a
/// shell, command or subsystem (held until then).
const EARLY_DATA_CAP: usize = 1024 * 1024;

pub async fn run_session_channel(
    state: Arc<ConnState>,
    id: ChannelId,
    write: ClientWriter,
    mut rx: InboxRx,
) {
    let mut pty: Option<PtyReq> = None;
    let mut env: Vec<(String, String)> = Vec::new();
    let mut early: Vec<ChanEvent> = Vec::new();
    let mut early_bytes = 0usize;
    let start = loop {
        let ev = tokio::select! {
            ev = rx.recv() => ev,
            _ = state.cancel.cancelled() => {
                refuse(&write, pty.is_some(), &format!("gatehouse: {}", state.end_reason()), 255).await;
                return;
            }
        };
        match ev {
            None | Some(ChanEvent::Close) => return,
            Some(ChanEvent::Pty {
                term,
                cols,
                rows,
                pix_width,
                pix_height,
                modes,
            }) => {
                pty = Some(PtyReq {
                    term,
                    cols,
                    rows,
                    pix_width,
                    pix_height,
                    modes,
                })
            }
            Some(ChanEvent::Env(k, v)) => {
                if env.len() < 64 {
                    env.push((k, v))
                }
            }
            Some(ChanEvent::Shell) => break Start::Shell,
            Some(ChanEvent::Exec(cmd)) => {
                break Start::Exec(String::from_utf8_lossy(&cmd).into_owned());
            }
            Some(ChanEvent::Subsystem(name)) => break Start::Subsystem(name),
            Some(ChanEvent::WindowChange {
                cols,
                rows,
                pix_width,
                pix_height,
            }) => {
                if let Some(p) = pty.as_mut() {
                    p.cols = cols;
                    p.rows = rows;
                    p.pix_width = pix_width;
                    p.pix_height = pix_height;
                }
            }
            Some(ChanEvent::Data(b)) => {
                // Held outside the connection's budget, hence its own cap.
                early_bytes += b.len();
                if early_bytes > EARLY_DATA_CAP {
                    refuse(
                        &write,
                        pty.is_some(),
                        "gatehouse: too much data before the session started",
                        255,
                    )
                    .await;
                    return;
                }
                early.push(ChanEvent::Data(b));
            }
            Some(ev @ (ChanEvent::Eof | ChanEvent::Signal(_))) => early.push(ev),
        }
    };
    match &state.target {
        Target::Denied {
            reason,
            audit_on_use,
            ..
        } => {
            if *audit_on_use {
                state
                    .shared
                    .audit(
                        state
                            .base_event(EventKind::AccessDenied)
                            .detail("code", "KO_MODE_REFUSES")
                            .detail("kind", start.kind())
                            .detail("reason", reason.clone()),
                    )
                    .await;
            }
            refuse(
                &write,
                pty.is_some(),
                &format!("gatehouse: access denied: {reason}"),
                1,
            )
            .await;
        }
        Target::CommandMode => {
            // Boxed: the task is sized for its largest branch, and the bridge's
            // is the one held while a session idles.
            Box::pin(super::command_mode::run(
                &state,
                &write,
                pty.is_some(),
                &start,
                &mut rx,
                early,
            ))
            .await;
        }
        Target::Server(_) => {
            super::bridge::run(state.clone(), id, write, rx, pty, env, start, early).await;
        }
    }
}
