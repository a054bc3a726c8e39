//! The usual end-to-end set-up of the core scenarios, on either database
//! backend: one target sshd that trusts the bastion's identity for `root`
//! and `ghtest`, a bastion whose policy lets `alice` (group `support`)
//! reach it as `web1`, and alice's stock OpenSSH client.
//!
//! Not part of `common` itself (that would force every test binary to
//! build the PostgreSQL helper): a test file includes it with
//!
//! ```text
//! mod common;
//! #[path = "support/pg.rs"] mod pg;
//! #[path = "common/scenario.rs"] mod scenario;
//! ```

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::pg;

/// Which database the bastion runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named scenario `fn NAME(Backend)` once per backend, as the
/// tests `NAME::sqlite` and `NAME::postgres`.
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name($crate::scenario::Backend::Sqlite);
            }
            #[test]
            fn postgres() {
                super::$name($crate::scenario::Backend::Postgres);
            }
        }
    )*};
}
#[allow(unused_imports)]
pub(crate) use on_both_backends;

/// A database for one bastion; a PostgreSQL one is dropped with it.
pub struct Db {
    /// `None`: the harness's SQLite file under the bastion's home.
    pub url: Option<String>,
    _pg: Option<pg::TestDb>,
}

impl Db {
    pub fn new(backend: Backend) -> Db {
        match backend {
            Backend::Sqlite => Db {
                url: None,
                _pg: None,
            },
            Backend::Postgres => {
                let rt = runtime();
                let db = rt.block_on(pg::fresh_db());
                Db {
                    url: Some(db.url.clone()),
                    _pg: Some(db),
                }
            }
        }
    }
}

/// A small runtime for the few async calls a test makes (PostgreSQL set-up,
/// raw SQL for tampering, a raw russh client).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// What to change in the standard set-up.
pub struct Setup {
    pub backend: Backend,
    /// TOML merged into gatehouse.toml (`[limits]`, `[recording]`...).
    pub toml: String,
    /// Lines appended to web1's `[[server]]` table (`record = "always"`).
    pub web1_extra: String,
    /// More policy text after the servers (users, groups...). Servers on
    /// the same target go in [`Setup::servers`], since the target's port
    /// and host key are only known once it runs.
    pub policy_extra: String,
    /// Further servers on the same target: `(name, accounts, extra lines)`,
    /// all in ssh-forwarding mode, allowed to group support.
    pub servers: Vec<(String, Vec<String>, String)>,
}

impl Setup {
    pub fn toml(mut self, t: &str) -> Setup {
        self.toml.push('\n');
        self.toml.push_str(t);
        self
    }
    pub fn web1(mut self, lines: &str) -> Setup {
        self.web1_extra.push_str(lines);
        self.web1_extra.push('\n');
        self
    }
    pub fn policy(mut self, text: &str) -> Setup {
        self.policy_extra.push('\n');
        self.policy_extra.push_str(text);
        self
    }
    pub fn server(mut self, name: &str, accounts: &[&str], extra: &str) -> Setup {
        self.servers.push((
            name.into(),
            accounts.iter().map(|s| s.to_string()).collect(),
            extra.into(),
        ));
        self
    }
}

/// Everything of one scenario. Field order is drop order: the bastion
/// stops before its database goes, and the folder goes last.
pub struct World {
    pub gh: Gatehouse,
    pub target: Sshd,
    pub client: Client,
    pub alice: Key,
    pub db: Db,
    pub dir: TestDir,
}

pub fn setup(backend: Backend) -> Setup {
    Setup {
        backend,
        toml: String::new(),
        web1_extra: String::new(),
        policy_extra: String::new(),
        servers: Vec::new(),
    }
}

impl Setup {
    /// Starts the target, writes the policy, starts the bastion.
    pub fn start(self) -> World {
        let dir = TestDir::new();
        let db = Db::new(self.backend);
        let identity = Gatehouse::prepare_identity(&dir);
        let target = Sshd::start(
            &dir,
            SshdOpts::new()
                .authorize("root", &identity.public)
                .authorize("ghtest", &identity.public),
        );
        let alice = keygen(dir.path(), "alice", KeyKind::Ed25519);
        let mut policy = policy_user("alice", &alice, &["support"])
            + &policy_server(
                "web1",
                &target,
                "ssh-forwarding",
                &["root", "ghtest"],
                &["group:support"],
            )
            + &self.web1_extra;
        for (name, accounts, extra) in &self.servers {
            let accounts: Vec<&str> = accounts.iter().map(String::as_str).collect();
            policy += &policy_server(
                name,
                &target,
                "ssh-forwarding",
                &accounts,
                &["group:support"],
            );
            policy += extra;
            policy.push('\n');
        }
        policy += &self.policy_extra;
        let mut opts = GatehouseOpts::new()
            .extra_toml(&self.toml)
            .policy("policy.toml", &policy);
        if let Some(url) = &db.url {
            opts = opts.database(url);
        }
        let gh = Gatehouse::start_with(&dir, opts);
        let client = gh.client(&dir, &alice);
        World {
            gh,
            target,
            client,
            alice,
            db,
            dir,
        }
    }
}

impl World {
    /// A further staff member's key and client (the policy must list them).
    pub fn key(&self, name: &str) -> Key {
        keygen(self.dir.path(), name, KeyKind::Ed25519)
    }

    /// The session id of the last `session.start` event matching `pred`,
    /// waiting for it (the event is written as the connection authenticates).
    pub fn session_id(&self, pred: impl Fn(&serde_json::Value) -> bool) -> String {
        let ev = self
            .gh
            .wait_for_event("session.start", Duration::from_secs(15), pred);
        str_at(&ev, "session").to_string()
    }

    /// The database URL the bastion uses.
    pub fn db_url(&self) -> String {
        self.db.url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}",
                self.gh.home.join("data/gatehouse.db").display()
            )
        })
    }

    /// Runs one SQL statement on the bastion's database from outside (as an
    /// attacker with database access would); returns rows affected.
    pub fn sql(&self, statement: &str) -> u64 {
        let url = self.db_url();
        let statement = statement.to_string();
        runtime().block_on(async move {
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&url).await.expect("raw connection");
            let n = sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(&pool)
                .await
                .expect("raw SQL")
                .rows_affected();
            pool.close().await;
            n
        })
    }

    /// `recordings/` of the bastion.
    pub fn recordings(&self) -> PathBuf {
        self.gh.home.join("recordings")
    }

    /// The cast and sidecar of recording `id`, wherever its date folder.
    pub fn recording_files(&self, id: &str) -> Option<(PathBuf, PathBuf)> {
        find_recording(&self.recordings(), id)
    }
}

/// `(ID.cast, ID.json)` under `root/YYYY-MM-DD/`, if the cast exists.
pub fn find_recording(root: &Path, id: &str) -> Option<(PathBuf, PathBuf)> {
    for entry in std::fs::read_dir(root).ok()?.flatten() {
        let cast = entry.path().join(format!("{id}.cast"));
        if cast.exists() {
            return Some((cast, entry.path().join(format!("{id}.json"))));
        }
    }
    None
}

/// Every file name under `root` (recursively), for "nothing was recorded".
pub fn all_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(root) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(all_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A string field of an audit event (`""` when absent).
pub fn str_at<'a>(ev: &'a serde_json::Value, key: &str) -> &'a str {
    ev.get(key).and_then(|v| v.as_str()).unwrap_or("")
}

/// A field of an audit event's `detail`.
pub fn detail<'a>(ev: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    ev.get("detail")
        .and_then(|d| d.get(key))
        .unwrap_or(&serde_json::Value::Null)
}

/// Lowercase hex SHA-256 of bytes.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, data))
}

/// The 64-hex-digit words of `text`, in order (sha256sum output).
pub fn digests(text: &str) -> Vec<String> {
    text.split_whitespace()
        .filter(|w| w.len() == 64 && w.chars().all(|c| c.is_ascii_hexdigit()))
        .map(str::to_string)
        .collect()
}

/// `VmRSS` of process `pid` in bytes (`None` once it is gone).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A shell pipeline (bash, for `>(...)`) started in the background with its
/// output captured; killed with its process group if still running when
/// dropped.
pub struct Background {
    child: Option<std::process::Child>,
    out: Option<std::thread::JoinHandle<Vec<u8>>>,
    err: Option<std::thread::JoinHandle<Vec<u8>>>,
    what: String,
}

impl Background {
    pub fn bash(script: &str) -> Background {
        let mut c = Command::new("bash");
        c.args(["-c", script]);
        Background::spawn(c)
    }

    pub fn spawn(mut c: Command) -> Background {
        use std::os::unix::process::CommandExt;
        let what = describe(&c);
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("SSH_AUTH_SOCK")
            .process_group(0);
        let mut child = c
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let reader = |mut p: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut v = Vec::new();
                let _ = p.read_to_end(&mut v);
                v
            })
        };
        let out = child.stdout.take().map(|p| reader(Box::new(p)));
        let err = child.stderr.take().map(|p| reader(Box::new(p)));
        Background {
            child: Some(child),
            out,
            err,
            what,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// `Some(code)` once exited (`-1` for a signal).
    pub fn try_wait(&mut self) -> Option<i32> {
        let c = self.child.as_mut()?;
        c.try_wait().ok().flatten().map(|s| s.code().unwrap_or(-1))
    }

    /// Waits for the exit, calling `tick` every 50 ms meanwhile; fails the
    /// test after `timeout`. Returns (exit code, stdout, stderr).
    pub fn wait_with(
        &mut self,
        timeout: Duration,
        mut tick: impl FnMut(),
    ) -> (i32, Vec<u8>, Vec<u8>) {
        let deadline = Instant::now() + timeout;
        let code = loop {
            if let Some(code) = self.try_wait() {
                break code;
            }
            if Instant::now() >= deadline {
                self.kill();
                let err = self
                    .err
                    .take()
                    .and_then(|h| h.join().ok())
                    .unwrap_or_default();
                panic!(
                    "{}: still running after {timeout:?}; killed\n--- stderr\n{}",
                    self.what,
                    String::from_utf8_lossy(&err)
                );
            }
            tick();
            std::thread::sleep(Duration::from_millis(50));
        };
        let out = self
            .out
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let err = self
            .err
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        (code, out, err)
    }

    pub fn wait(&mut self, timeout: Duration) -> (i32, Vec<u8>, Vec<u8>) {
        self.wait_with(timeout, || {})
    }

    pub fn kill(&mut self) {
        if let Some(c) = self.child.as_mut()
            && c.try_wait().ok().flatten().is_none()
        {
            // SAFETY: kill(2) on the process group this child leads.
            unsafe {
                libc::kill(-(c.id() as libc::pid_t), libc::SIGKILL);
            }
            let _ = c.wait();
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `ssh -F CONFIG DEST` prefix of a shell command line for `client`.
pub fn ssh_line(client: &Client, login: &str) -> String {
    format!(
        "ssh -F {} {}",
        shell_quote(&client.config_path().display().to_string()),
        shell_quote(&client.destination(login))
    )
}
