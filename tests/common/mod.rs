//! End-to-end test harness: real OpenSSH `sshd` targets, the real
//! `gatehouse` binary, and the stock `ssh`, `scp`, `sftp`, `rsync` and
//! `ssh-keygen`, all on 127.0.0.1, all inside one [`TestDir`] per test.
//!
//! Used by integration tests as `mod common;`. Everything started here is
//! killed when its handle is dropped (also when a test panics, in which
//! case the logs of sshd targets and the bastion are printed to help the
//! diagnosis), and every client command has a deadline so that a hang
//! fails the test instead of blocking CI.
//!
//! Servers (sshd, the bastion) also get SIGKILL from the kernel if the test
//! process dies without unwinding, so start them from the test's own
//! thread. Set `GATEHOUSE_KEEP_TEST_DIR=1` to keep the test folders.
// Each test binary uses a different part of the harness.
#![allow(dead_code, unused_imports)]

mod browser;
mod client;
mod forger;
mod gatehouse;
mod keys;
mod process;
mod sshd;
mod tmux;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use browser::{CHROMIUM, browser_available, web_dir};
pub use client::{Client, HOST, shell_quote};
pub use forger::{TrustAnyHostKey, bad_signatures, lock_out_through_store};
pub use gatehouse::{Gatehouse, GatehouseOpts, merge as gatehouse_merge};
pub use keys::{Key, KeyKind, fingerprint, keygen, keygen_at};
pub use process::{
    ChildGuard, DEFAULT_TIMEOUT, OutputExt, describe, run, run_timeout, run_with_stdin,
};
pub use sshd::{Sshd, SshdOpts};
pub use tmux::Tmux;

/// The folder holding everything of one test; removed on drop.
pub struct TestDir {
    tmp: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl TestDir {
    pub fn new() -> TestDir {
        // Short prefix: tmux and ssh control sockets have a path limit.
        let tmp = tempfile::Builder::new()
            .prefix("gh")
            .tempdir()
            .expect("temp dir");
        let path = tmp.path().to_path_buf();
        // sshd reads authorized_keys as the target account (e.g. `ghtest`),
        // so the folder must be traversable by others. Keys inside stay 0600.
        set_mode(&path, 0o755);
        let tmp = if std::env::var_os("GATEHOUSE_KEEP_TEST_DIR").is_some() {
            eprintln!("keeping test folder {}", path.display());
            let _ = tmp.keep();
            None
        } else {
            Some(tmp)
        };
        TestDir { tmp, path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.path.join(rel)
    }

    /// Writes `contents` to `DIR/rel` (creating folders) and returns the path.
    pub fn write(&self, rel: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, contents).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        p
    }

    /// A fresh name, unique within this test process, for files of helpers
    /// that may be created more than once per test.
    pub fn unique(&self, stem: &str) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        format!("{stem}{}", NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl Default for TestDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = tmp.close();
        }
    }
}

pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// A TCP port on 127.0.0.1 that was free a moment ago. Another process may
/// take it before ours binds: [`Sshd::start`] and [`Gatehouse::start`]
/// retry with a new port when that happens.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Socket inodes listening on TCP `port` at 127.0.0.1 or the wildcard
/// address, read from /proc/net/tcp{,6} rather than by connecting, so that
/// waiting for the bastion does not show up in its audit log as a probe.
fn listening_inodes(port: u16) -> Vec<String> {
    let want = format!(":{port:04X}");
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
            if f.len() < 10 || f[3] != "0A" || !f[1].ends_with(&want) {
                continue;
            }
            let addr = &f[1][..f[1].len() - want.len()];
            let loopback_or_any = addr == "0100007F"
                || addr.chars().all(|c| c == '0')
                || addr == "0000000000000000FFFF00000100007F";
            if loopback_or_any {
                inodes.push(f[9].to_string());
            }
        }
    }
    inodes
}

/// Whether anything listens on TCP `port` at 127.0.0.1 (or the wildcard).
pub fn is_listening(port: u16) -> bool {
    !listening_inodes(port).is_empty()
}

/// Whether process `pid` itself holds a socket listening on `port`: a
/// server that lost the race for a port must not pass for ready because
/// some other process listens there.
pub fn is_listening_by(port: u16, pid: u32) -> bool {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .map(|target| {
                let t = target.to_string_lossy();
                inodes.iter().any(|i| t == format!("socket:[{i}]"))
            })
            .unwrap_or(false)
    })
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last `max` bytes of a log file, for failure messages.
pub fn log_tail(path: &Path, max: usize) -> String {
    match std::fs::read(path) {
        Ok(b) => {
            let start = b.len().saturating_sub(max);
            String::from_utf8_lossy(&b[start..]).into_owned()
        }
        Err(e) => format!("({}: {e})", path.display()),
    }
}

/// SHA-256 of a file as lowercase hex (ring is a dependency of the crate).
pub fn sha256_file(path: &Path) -> String {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    hex::encode(ring::digest::digest(&ring::digest::SHA256, &data))
}

/// `len` bytes that do not compress (so transfers really move the bytes).
pub fn random_bytes(len: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut v = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

/// Makes sure local account `name` exists (`useradd -m -s /bin/bash`).
/// `.ci/run` creates `ghtest` beforehand; this covers a bare `cargo test`.
pub fn ensure_account(name: &str) {
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let exists = || {
        Command::new("id")
            .arg(name)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if exists() {
        return;
    }
    // Another test binary may be doing the same: a failure is fine as long
    // as the account exists afterwards.
    let out = run(Command::new("useradd").args(["-m", "-s", "/bin/bash", name]));
    assert!(
        exists(),
        "cannot create account {name} (run .ci/run as root): {}",
        out.stderr_text()
    );
    // useradd leaves the password field "!": sshd without PAM calls that a
    // locked account and refuses even key logins. "*" is not locked.
    run(Command::new("usermod").args(["-p", "*", name])).assert_success("usermod -p '*'");
}

/// Sets a local account's password with `chpasswd` (for password targets).
pub fn set_password(account: &str, password: &str) {
    run_with_stdin(
        &mut Command::new("chpasswd"),
        format!("{account}:{password}\n").as_bytes(),
    )
    .assert_success("chpasswd");
}

/// A `[[user]]` policy entry for `name` holding `key`, in `groups`.
/// Append more keys (`roles = [...]`) to the returned text as needed.
pub fn policy_user(name: &str, key: &Key, groups: &[&str]) -> String {
    format!(
        "\n[[user]]\nname = {}\nkeys = [{}]\ngroups = {}\n",
        toml_str(name),
        toml_str(&key.public),
        toml_list(groups)
    )
}

/// A `[[server]]` policy entry for a target sshd: its address and pinned
/// host key, `mode`, `accounts` (the first is the default) and `allow`.
pub fn policy_server(
    name: &str,
    target: &Sshd,
    mode: &str,
    accounts: &[&str],
    allow: &[&str],
) -> String {
    format!(
        "\n[[server]]\nname = {}\naddress = {}\nhost_key = {}\nmode = {}\naccounts = {}\nallow = {}\n",
        toml_str(name),
        toml_str(&target.address()),
        toml_str(&target.host_key_fingerprint),
        toml_str(mode),
        toml_list(accounts),
        toml_list(allow)
    )
}

/// The set-up most tests start from: `alice` (holding `alice`) in group
/// support, and the `ssh-forwarding` server `name` on `target` whose only
/// account is root and which support may reach.
pub fn support_policy(alice: &Key, name: &str, target: &Sshd) -> String {
    policy_user("alice", alice, &["support"])
        + &policy_server(
            name,
            target,
            "ssh-forwarding",
            &["root"],
            &["group:support"],
        )
}

/// A TOML basic string.
pub fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A TOML array of strings.
pub fn toml_list(items: &[&str]) -> String {
    let v: Vec<String> = items.iter().map(|s| toml_str(s)).collect();
    format!("[{}]", v.join(", "))
}
