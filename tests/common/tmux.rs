//! Interactive terminal sessions driven through a private tmux server: the
//! pane is a real PTY, so `ssh -tt` behaves as for a person typing.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::TestDir;
use super::process::{OutputExt, run};

/// A detached tmux session running one command; its server is killed on drop.
pub struct Tmux {
    /// Private server socket (`tmux -S`), so tests never share a server.
    pub socket: PathBuf,
    conf: PathBuf,
    /// The command's exit status, written by the wrapping shell: tmux 3.3
    /// sometimes marks a pane dead without ever filling `pane_dead_status`.
    status_file: PathBuf,
}

const TARGET: &str = "t:0.0";

impl Tmux {
    /// Runs `shell_command` (via /bin/sh) in a 120x40 pane. The pane's
    /// process is that shell; the command runs as its child.
    pub fn start(dir: &TestDir, shell_command: &str) -> Tmux {
        Tmux::start_sized(dir, shell_command, 120, 40)
    }

    pub fn start_sized(dir: &TestDir, shell_command: &str, cols: u16, rows: u16) -> Tmux {
        let name = dir.unique("tmux");
        let socket = dir.join(format!("{name}.sock"));
        let conf = dir.join(format!("{name}.conf"));
        let status_file = dir.join(format!("{name}.status"));
        // remain-on-exit keeps the last screen and the exit status readable
        // after the command ends.
        std::fs::write(
            &conf,
            "set -g remain-on-exit on\nset -g history-limit 10000\nset -g status off\n\
             set -g default-shell /bin/sh\n",
        )
        .unwrap();
        let wrapped = format!(
            "{shell_command}\necho $? > {}",
            super::client::shell_quote(&status_file.display().to_string())
        );
        let t = Tmux {
            socket,
            conf,
            status_file,
        };
        let out = run(t
            .tmux()
            .args(["new-session", "-d", "-s", "t", "-x"])
            .arg(cols.to_string())
            .arg("-y")
            .arg(rows.to_string())
            .arg(wrapped));
        out.assert_success("tmux new-session");
        t
    }

    fn tmux(&self) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-S")
            .arg(&self.socket)
            .arg("-f")
            .arg(&self.conf)
            .env_remove("TMUX")
            .env_remove("SSH_AUTH_SOCK");
        c
    }

    /// Sends tmux key names, e.g. `["C-c"]`, `["Enter"]`, `["C-d"]`.
    pub fn send_keys(&self, keys: &[&str]) {
        run(self.tmux().args(["send-keys", "-t", TARGET]).args(keys))
            .assert_success("tmux send-keys");
    }

    /// Types `text` literally (no key-name interpretation).
    pub fn send_text(&self, text: &str) {
        run(self
            .tmux()
            .args(["send-keys", "-t", TARGET, "-l", "--", text]))
        .assert_success("tmux send-keys -l");
    }

    /// Pastes `text` as a terminal paste: wrapped in the bracketed-paste
    /// markers when the program in the pane has turned them on (`tmux
    /// paste-buffer -p`), as a person's paste would be.
    pub fn paste(&self, text: &str) {
        run(self.tmux().args(["set-buffer", "-b", "paste", "--", text]))
            .assert_success("tmux set-buffer");
        run(self
            .tmux()
            .args(["paste-buffer", "-p", "-d", "-b", "paste", "-t", TARGET]))
        .assert_success("tmux paste-buffer");
    }

    /// Types `line` then Enter.
    pub fn send_line(&self, line: &str) {
        self.send_text(line);
        self.send_keys(&["Enter"]);
    }

    /// The pane's text, scroll-back included, wrapped lines joined.
    pub fn capture(&self) -> String {
        let out = run(self
            .tmux()
            .args(["capture-pane", "-p", "-J", "-S", "-", "-t", TARGET]));
        out.assert_success("tmux capture-pane");
        out.stdout_text()
    }

    /// Waits until the pane shows `needle`; returns the pane text. Fails
    /// the test, showing the pane, after `timeout`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.capture();
            if text.contains(needle) {
                return text;
            }
            if Instant::now() >= deadline {
                panic!("tmux pane never showed {needle:?} within {timeout:?}; pane:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Counts occurrences of `needle` in the pane (to wait for the n-th prompt).
    pub fn count(&self, needle: &str) -> usize {
        self.capture().matches(needle).count()
    }

    /// `Some(status)` once the command in the pane has exited (128+N when
    /// killed by signal N, as the shell reports it).
    pub fn exit_status(&self) -> Option<i32> {
        let text = std::fs::read_to_string(&self.status_file).ok()?;
        // Written by `echo`: complete once the newline is there.
        if !text.ends_with('\n') {
            return None;
        }
        text.trim().parse().ok()
    }

    /// Waits for the command to exit and returns its status; fails the
    /// test, showing the pane, after `timeout`.
    pub fn wait_exit(&self, timeout: Duration) -> i32 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(code) = self.exit_status() {
                return code;
            }
            if Instant::now() >= deadline {
                panic!(
                    "command in tmux still running after {timeout:?}; pane:\n{}",
                    self.capture()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Resizes the window (the PTY sees SIGWINCH; ssh sends window-change).
    pub fn resize(&self, cols: u16, rows: u16) {
        run(self
            .tmux()
            .args(["resize-window", "-t", "t", "-x"])
            .arg(cols.to_string())
            .arg("-y")
            .arg(rows.to_string()))
        .assert_success("tmux resize-window");
    }

    /// The pid of the pane's shell.
    pub fn pane_pid(&self) -> Option<u32> {
        let out = run(self
            .tmux()
            .args(["display-message", "-p", "-t", TARGET, "#{pane_pid}"]));
        out.stdout_text().trim().parse().ok()
    }

    /// The pid of the command the pane runs (e.g. `ssh`), while it runs.
    pub fn command_pid(&self) -> Option<u32> {
        let shell = self.pane_pid()?;
        let children =
            std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).ok()?;
        children.split_whitespace().next()?.parse().ok()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Ok(o) = self
                .tmux()
                .args(["capture-pane", "-p", "-J", "-t", TARGET])
                .output()
        {
            eprintln!(
                "--- tmux pane at failure:\n{}",
                String::from_utf8_lossy(&o.stdout)
            );
        }
        // kill-server ends the pane's processes (they get SIGHUP).
        let _ = self.tmux().arg("kill-server").output();
        let _ = std::fs::remove_file(&self.socket);
    }
}
