//! Running child processes from tests without ever hanging CI: every
//! command gets a deadline, runs in its own process group (so `rsync`'s
//! `ssh` or a shell's children die with it), and long-lived children are
//! killed when their guard is dropped.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long any one client command may take before the test fails.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `cmd` with no stdin, failing the test after [`DEFAULT_TIMEOUT`].
pub fn run(cmd: &mut Command) -> Output {
    run_timeout(cmd, None, DEFAULT_TIMEOUT)
}

/// Runs `cmd` feeding it `stdin` (then EOF), failing after [`DEFAULT_TIMEOUT`].
pub fn run_with_stdin(cmd: &mut Command, stdin: &[u8]) -> Output {
    run_timeout(cmd, Some(stdin), DEFAULT_TIMEOUT)
}

/// Runs `cmd` to completion and returns its output. With `stdin` as `None`
/// the child's stdin is /dev/null. When the deadline passes, the child's
/// whole process group is killed and the test panics with what the child
/// printed so far.
pub fn run_timeout(cmd: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> Output {
    let what = describe(cmd);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .process_group(0);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let deadline = Instant::now() + timeout;

    let (tx, rx) = mpsc::channel::<(bool, Vec<u8>)>();
    for (is_out, pipe) in [
        (
            true,
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ),
        (
            false,
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ),
    ] {
        let tx = tx.clone();
        let mut pipe = pipe.expect("piped");
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            let _ = tx.send((is_out, buf));
        });
    }
    drop(tx);
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let data = data.to_vec();
        // A child that exits without reading all of its input gives a
        // broken pipe here; that is the child's business, not an error.
        thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }

    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                kill_group(&mut child);
                let (out, err) = collect(&rx, Instant::now() + Duration::from_secs(2));
                panic!(
                    "{what}: still running after {timeout:?}; killed\n--- stdout\n{}\n--- stderr\n{}",
                    String::from_utf8_lossy(&out),
                    String::from_utf8_lossy(&err)
                );
            }
            Err(e) => panic!("{what}: wait failed: {e}"),
        }
    };
    // Output pipes stay open while any descendant holds them: wait for
    // EOF up to the same deadline, then kill the rest of the group.
    let (stdout, stderr) = match collect_all(
        &rx,
        deadline.max(Instant::now() + Duration::from_secs(5)),
    ) {
        Some(v) => v,
        None => {
            kill_group(&mut child);
            let (out, err) = collect(&rx, Instant::now() + Duration::from_secs(2));
            panic!(
                "{what}: exited ({status}) but a descendant kept its output open; killed\n--- stdout\n{}\n--- stderr\n{}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err)
            );
        }
    };
    Output {
        status,
        stdout,
        stderr,
    }
}

fn collect_all(
    rx: &mpsc::Receiver<(bool, Vec<u8>)>,
    deadline: Instant,
) -> Option<(Vec<u8>, Vec<u8>)> {
    let (mut out, mut err) = (None, None);
    while out.is_none() || err.is_none() {
        let left = deadline.checked_duration_since(Instant::now())?;
        match rx.recv_timeout(left) {
            Ok((true, b)) => out = Some(b),
            Ok((false, b)) => err = Some(b),
            Err(_) => return None,
        }
    }
    Some((out.unwrap_or_default(), err.unwrap_or_default()))
}

fn collect(rx: &mpsc::Receiver<(bool, Vec<u8>)>, deadline: Instant) -> (Vec<u8>, Vec<u8>) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok((true, b)) => out = b,
            Ok((false, b)) => err = b,
            Err(_) => break,
        }
    }
    (out, err)
}

/// SIGKILLs the child's process group (it leads one: see `process_group(0)`)
/// and reaps the child.
fn kill_group(child: &mut Child) {
    let pid = child.id() as libc::pid_t;
    // SAFETY: kill(2) with a negative pid signals that process group; the
    // group was created for this child alone.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A human-readable form of a command for failure messages.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains([' ', '\'', '"']) {
            s.push_str(&format!("{a:?}"));
        } else {
            s.push_str(&a);
        }
    }
    s
}

/// Convenience accessors on a finished command's [`Output`].
pub trait OutputExt {
    fn stdout_text(&self) -> String;
    fn stderr_text(&self) -> String;
    /// Exit code; `None` when killed by a signal.
    fn code(&self) -> Option<i32>;
    /// Panics, showing stdout and stderr, unless the command exited 0.
    fn assert_success(&self, what: &str) -> &Self;
}

impl OutputExt for Output {
    fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    fn code(&self) -> Option<i32> {
        self.status.code()
    }
    fn assert_success(&self, what: &str) -> &Self {
        assert!(
            self.status.success(),
            "{what}: {}\n--- stdout\n{}\n--- stderr\n{}",
            status_text(&self.status),
            self.stdout_text(),
            self.stderr_text()
        );
        self
    }
}

fn status_text(s: &ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => s.to_string(),
    }
}

/// A long-running child (sshd, the bastion, a tmux server) that is killed
/// when the guard is dropped, so a failing test leaves nothing behind.
pub struct ChildGuard {
    pub name: String,
    child: Option<Child>,
}

impl ChildGuard {
    /// Spawns `cmd` in its own process group with stdin from /dev/null and
    /// stdout/stderr appended to the given files (discarded when `None`).
    pub fn spawn(
        name: &str,
        cmd: &mut Command,
        stdout_log: Option<&Path>,
        stderr_log: Option<&Path>,
    ) -> ChildGuard {
        let open = |p: Option<&Path>| -> Stdio {
            match p {
                Some(p) => std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
                    .into(),
                None => Stdio::null(),
            }
        };
        cmd.stdin(Stdio::null())
            .stdout(open(stdout_log))
            .stderr(open(stderr_log))
            .process_group(0);
        // If the test process dies without running destructors (killed by
        // a CI timeout, aborted), the kernel kills the child too. The signal
        // fires when the spawning *thread* ends, so start servers from the
        // test's own thread, not from a short-lived helper thread.
        // SAFETY: prctl is async-signal-safe; nothing else runs in pre_exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", describe(cmd)));
        ChildGuard {
            name: name.to_string(),
            child: Some(child),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// `Some(status)` once the child has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Sends `signal` to the child alone (not its group).
    pub fn signal(&self, signal: i32) {
        if let Some(c) = &self.child {
            // SAFETY: plain kill(2) on our own, not yet reaped, child.
            unsafe {
                libc::kill(c.id() as libc::pid_t, signal);
            }
        }
    }

    /// Waits up to `timeout` for the child to exit; `None` if it did not.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_wait() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILLs the child's whole process group and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // Once reaped, the pid (and group id) may be reused by an
            // unrelated process: only signal a child that is still ours.
            if c.try_wait().ok().flatten().is_none() {
                kill_group(&mut c);
            }
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}
