//! Helpers for the access-mode end-to-end tests (tests/e2e_*.rs): a plain
//! TCP service to forward to, `ssh -W` and background `ssh -L`/`-D`
//! clients, a small SOCKS5 client, audit-event lookups, and the
//! SQLite/PostgreSQL backend switch.
//!
//! Included by the test files as
//! `#[macro_use] #[path = "common/access.rs"] mod access;` next to
//! `mod common;` and `#[path = "support/pg.rs"] mod pg;`, so the shared
//! harness files stay as they are.
#![allow(dead_code, unused_macros)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::common::{
    ChildGuard, Client, Gatehouse, GatehouseOpts, OutputExt, TestDir, is_listening, run_timeout,
    wait_until,
};

/// How long a single forwarded round trip may take before the test fails.
const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// A plain TCP service on 127.0.0.1 standing in for a database, RDP or
/// VNC port: echoes what it reads until EOF, except that a request
/// starting with `GET ` gets a tiny HTTP answer naming the service (for
/// curl through a SOCKS forward). Stopped on drop.
pub struct Service {
    pub port: u16,
    /// Connections accepted so far: a refused forward must not reach it.
    pub accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Service {
    pub fn start() -> Service {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind service");
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (accepted.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                a.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || serve_one(&mut conn, port));
            }
        });
        Service {
            port,
            accepted,
            stop,
        }
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

fn serve_one(conn: &mut TcpStream, port: u16) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
    let mut buf = [0u8; 16 * 1024];
    let mut first = true;
    loop {
        let n = match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if first && buf[..n].starts_with(b"GET ") {
            let body = format!("service-{port}\n");
            let _ = write!(
                conn,
                "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            break;
        }
        first = false;
        if conn.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = conn.shutdown(Shutdown::Both);
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Sends `data` over a TCP connection to 127.0.0.1:`port`, half-closes,
/// and returns everything read until EOF (an error if the peer resets).
pub fn tcp_roundtrip(port: u16, data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    exchange(&mut s, data)
}

fn exchange(s: &mut TcpStream, data: &[u8]) -> std::io::Result<Vec<u8>> {
    // Writing and reading at once: a large payload would otherwise fill
    // both directions' buffers and deadlock.
    let mut w = s.try_clone()?;
    let payload = data.to_vec();
    let writer = std::thread::spawn(move || {
        let r = w.write_all(&payload);
        let _ = w.shutdown(Shutdown::Write);
        r
    });
    let mut out = Vec::new();
    let r = s.read_to_end(&mut out);
    let _ = writer.join();
    r.map(|_| out)
}

/// A SOCKS5 CONNECT (domain-name address type, as `curl
/// --socks5-hostname` sends it) through the proxy at 127.0.0.1:`proxy`
/// to `host:port`, then [`exchange`] of `data`. OpenSSH answers the
/// SOCKS request before the bastion decides the channel, so a refused
/// forward shows as an empty answer (the connection is closed).
pub fn socks5_roundtrip(
    proxy: u16,
    host: &str,
    port: u16,
    data: &[u8],
) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(("127.0.0.1", proxy))?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.write_all(&[5, 1, 0])?;
    let mut hello = [0u8; 2];
    s.read_exact(&mut hello)?;
    if hello != [5, 0] {
        return Err(std::io::Error::other(format!(
            "SOCKS hello answer {hello:?}"
        )));
    }
    let mut req = vec![5, 1, 0, 3, host.len() as u8];
    req.extend_from_slice(host.as_bytes());
    req.extend_from_slice(&port.to_be_bytes());
    s.write_all(&req)?;
    let mut head = [0u8; 4];
    match s.read_exact(&mut head) {
        Ok(()) => {}
        // Closed before answering: refused.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(Vec::new()),
        Err(e) => return Err(e),
    }
    if head[1] != 0 {
        return Ok(Vec::new());
    }
    let rest = match head[3] {
        1 => 4 + 2,
        4 => 16 + 2,
        3 => {
            let mut l = [0u8; 1];
            s.read_exact(&mut l)?;
            l[0] as usize + 2
        }
        t => return Err(std::io::Error::other(format!("SOCKS address type {t}"))),
    };
    let mut skip = vec![0u8; rest];
    s.read_exact(&mut skip)?;
    match exchange(&mut s, data) {
        Ok(v) => Ok(v),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// `ssh -W HOST:PORT [OPTS] LOGIN@bastion` with `data` on stdin: the
/// easiest direct-tcpip channel, whose refusal is the command's failure
/// (exit 255, "open failed: ... gatehouse: access denied: REASON").
pub fn ssh_w(client: &Client, opts: &[&str], login: &str, dest: &str, data: &[u8]) -> Output {
    let mut c = client.command("ssh");
    // OpenSSH logs "channel N: open failed: ..." at level INFO.
    c.args(["-o", "LogLevel=INFO"])
        .args(opts)
        .arg("-W")
        .arg(dest)
        .arg(client.destination(login));
    run_timeout(&mut c, Some(data), Duration::from_secs(60))
}

/// An ssh client left running in the background (`-N -L`, `-N -D`, a long
/// remote command), with its output in files; killed on drop.
pub struct BackgroundSsh {
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    child: ChildGuard,
}

impl BackgroundSsh {
    /// Starts `ssh -F CONFIG ARGS...` (ARGS include the destination).
    pub fn start(dir: &TestDir, client: &Client, args: &[&str]) -> BackgroundSsh {
        let stem = dir.unique("bgssh");
        let stdout = dir.join(format!("{stem}.out"));
        let stderr = dir.join(format!("{stem}.err"));
        let mut c = client.command("ssh");
        c.args(args);
        let child = ChildGuard::spawn("ssh", &mut c, Some(&stdout), Some(&stderr));
        BackgroundSsh {
            stdout,
            stderr,
            child,
        }
    }

    /// `ssh DEST 'echo started; sleep 60'` in the background, returned once
    /// the remote command runs (a session the tests then cut or watch).
    pub fn start_long(dir: &TestDir, client: &Client, dest: &str) -> BackgroundSsh {
        let mut bg = BackgroundSsh::start(dir, client, &[dest, "echo started; sleep 60"]);
        let ok = wait_until(Duration::from_secs(20), || {
            bg.stdout_text().contains("started") || !bg.is_running()
        });
        assert!(
            ok && bg.stdout_text().contains("started"),
            "the session did not start; stderr:\n{}",
            bg.stderr_text()
        );
        bg
    }

    /// Waits until the client's local forward listens on `port`.
    pub fn wait_listening(&mut self, port: u16) {
        let child = &mut self.child;
        let ok = wait_until(Duration::from_secs(20), || {
            is_listening(port) || child.try_wait().is_some()
        });
        assert!(
            ok && self.child.try_wait().is_none(),
            "ssh did not start listening on {port}; stderr:\n{}",
            self.stderr_text()
        );
    }

    pub fn stdout_text(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Waits for the client to exit; `None` if it did not within `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        self.child.wait_timeout(timeout)
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().is_none()
    }
}

/// Runs `ssh -F CONFIG ARGS...` with a deadline (destination in ARGS).
pub fn ssh_args(client: &Client, args: &[&str]) -> Output {
    let mut c = client.command("ssh");
    c.args(args);
    run_timeout(&mut c, None, Duration::from_secs(60))
}

/// `detail.KEY` of an audit event as a string ("" when absent).
pub fn detail_str(ev: &Value, key: &str) -> String {
    match ev.get("detail").and_then(|d| d.get(key)) {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => String::new(),
    }
}

/// A top-level string field of an audit event ("" when absent or null).
pub fn field(ev: &Value, key: &str) -> String {
    ev.get(key)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}

/// Events of `kind` whose `server` field is `server`.
pub fn events_for(gh: &Gatehouse, kind: &str, server: &str) -> Vec<Value> {
    gh.audit_events_of(kind)
        .into_iter()
        .filter(|e| field(e, "server") == server)
        .collect()
}

/// Parses one JSON document from a command's stdout, failing with the output.
pub fn json_of(out: &Output, what: &str) -> Value {
    out.assert_success(what);
    serde_json::from_str(out.stdout_text().trim())
        .unwrap_or_else(|e| panic!("{what}: stdout is not JSON ({e}):\n{}", out.stdout_text()))
}

/// Asserts a post-authentication refusal: exit 1 and the contract's line
/// `gatehouse: access denied: REASON` with `reason_part` in it; nothing on
/// stdout.
pub fn assert_denied(out: &Output, reason_part: &str) {
    let err = out.stderr_text();
    assert_eq!(
        out.code(),
        Some(1),
        "expected a refusal (exit 1), got {:?}\n--- stdout\n{}\n--- stderr\n{err}",
        out.code(),
        out.stdout_text()
    );
    assert!(
        err.contains("gatehouse: access denied: ") && err.contains(reason_part),
        "stderr should carry `gatehouse: access denied: ...{reason_part}...`:\n{err}"
    );
    assert!(out.stdout.is_empty(), "stdout: {}", out.stdout_text());
}

/// Asserts a refused direct-tcpip channel as `ssh -W` reports it.
pub fn assert_open_failed(out: &Output, reason_part: &str) {
    let err = out.stderr_text();
    assert_eq!(
        out.code(),
        Some(255),
        "expected ssh -W to fail (255), got {:?}\n--- stdout\n{}\n--- stderr\n{err}",
        out.code(),
        out.stdout_text()
    );
    assert!(
        err.contains("open failed") && err.contains(reason_part),
        "stderr should show the channel open failure with `{reason_part}`:\n{err}"
    );
    assert!(out.stdout.is_empty(), "stdout: {}", out.stdout_text());
}

/// Which database a scenario runs on. Holds the PostgreSQL test database
/// (and so its cluster) alive for the scenario's lifetime.
pub struct Backend {
    pub name: &'static str,
    url: Option<String>,
    _pg: Option<crate::pg::TestDb>,
}

impl Backend {
    pub fn sqlite() -> Backend {
        Backend {
            name: "sqlite",
            url: None,
            _pg: None,
        }
    }

    pub fn postgres() -> Backend {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let db = rt.block_on(crate::pg::fresh_db());
        Backend {
            name: "postgres",
            url: Some(db.url.clone()),
            _pg: Some(db),
        }
    }

    /// Bastion options pointing at this backend (SQLite: the harness default).
    pub fn opts(&self) -> GatehouseOpts {
        match &self.url {
            Some(u) => GatehouseOpts::new().database(u),
            None => GatehouseOpts::new(),
        }
    }
}

/// Runs each named scenario `fn NAME(Backend)` once on SQLite and once on
/// PostgreSQL, as tests `NAME::sqlite` and `NAME::postgres`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn sqlite() {
                    super::$name(crate::access::Backend::sqlite())
                }
                #[test]
                fn postgres() {
                    super::$name(crate::access::Backend::postgres())
                }
            }
        )*
    };
}

/// `ssh-keygen`-free check that a command exists on PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null 2>&1")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A node's name as its tests set it: the name of its home folder.
pub fn node_name(node: &Gatehouse) -> String {
    node.home
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string()
}

/// `sessions list --json` from `node`'s CLI.
pub fn live(node: &Gatehouse) -> Vec<Value> {
    let out = node.cli(&["sessions", "list", "--json"]);
    json_of(&out, "sessions list --json")
        .as_array()
        .cloned()
        .unwrap_or_default()
}
