//! Second factors end to end (issue 19, contract section 11), with the
//! stock `ssh` answering `Verification code: ` through `SSH_ASKPASS`
//! (`SSH_ASKPASS_REQUIRE=force`) and a helper that runs Debian's
//! `oathtool`:
//!
//! - a user who must enroll reaches command mode for `mfa enroll` only,
//!   any server is refused with the contract's text;
//! - enrollment without a terminal (the URI first, the code on stdin) and
//!   in tmux with a terminal (QR code drawn);
//! - a code logs in once (replay refused), one step old is accepted,
//!   three steps old refused; a recovery code works once;
//! - the cache: no prompt for the same key and source, a prompt from
//!   127.0.0.2 and on an `every-session` server;
//! - wrong codes lock the user, `gatehouse unlock` lifts it;
//! - BatchMode prints the reason on stderr;
//! - keyboard-interactive without a key first is refused (paramiko);
//! - security keys (sk-dummy.so): a touch is two factors, no touch is
//!   refused, `server-sig-algs` lists both sk algorithms;
//! - two nodes on one PostgreSQL: enroll on one, log in on the other, a
//!   code used on one is refused on the other.

mod common;
#[path = "support/pg.rs"]
mod pg;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::Value;

const SK_DUMMY: &str = "/usr/lib/openssh/regress/misc/sk-dummy/sk-dummy.so";

fn have(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The TOTP code `oathtool` gives for `secret` at `at` (Unix seconds).
fn code_at(secret: &str, at: i64) -> String {
    let out = Command::new("oathtool")
        .args(["--totp", "-b", secret, "--now", &format!("@{at}")])
        .output()
        .expect("oathtool");
    assert!(out.status.success(), "oathtool: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The base32 secret of an `otpauth://` URI.
fn secret_of(uri: &str) -> String {
    uri.split("secret=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .unwrap_or_else(|| panic!("no secret in {uri:?}"))
        .to_string()
}

/// One bastion with targets, for the TOTP tests.
struct World {
    gh: Gatehouse,
    _target: Sshd,
    dir: TestDir,
    keys: std::collections::HashMap<String, Key>,
}

impl World {
    /// `auth_extra`: more `[auth]` keys, one per line.
    fn start(users: &[&str], auth_extra: &str) -> World {
        let dir = TestDir::new();
        let identity = Gatehouse::prepare_identity(&dir);
        let target = Sshd::start(&dir, SshdOpts::new().authorize("root", &identity.public));
        let mut policy = String::new();
        let mut keys = std::collections::HashMap::new();
        for u in users {
            let k = keygen(dir.path(), u, KeyKind::Ed25519);
            policy += &policy_user(u, &k, &["support"]);
            keys.insert(u.to_string(), k);
        }
        policy += &policy_server(
            "web1",
            &target,
            "ssh-forwarding",
            &["root"],
            &["group:support"],
        );
        policy += &policy_server(
            "db1",
            &target,
            "ssh-forwarding",
            &["root"],
            &["group:support"],
        );
        policy += "mfa = \"every-session\"\n";
        let gh = Gatehouse::start(
            &dir,
            &format!(
                "[auth]\nmfa = \"required\"\nmfa_cache = \"1h\"\n{auth_extra}[limits]\n\
                 lockout_after = 3\nauth_per_minute_per_source = 1000\n"
            ),
            &policy,
        );
        World {
            gh,
            _target: target,
            dir,
            keys,
        }
    }

    fn client(&self, user: &str) -> Client {
        self.gh.client(&self.dir, &self.keys[user])
    }

    /// A script for `SSH_ASKPASS`.
    fn script(&self, body: &str) -> PathBuf {
        let path = self.dir.join(self.dir.unique("askpass"));
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        set_mode(&path, 0o700);
        path
    }

    /// Answers the prompt with the code for now + `offset` seconds.
    fn totp_askpass(&self, secret: &str, offset: i64) -> PathBuf {
        self.script(&format!(
            "exec oathtool --totp -b {secret} --now @$(( $(date +%s) + {offset} ))"
        ))
    }

    fn answer_askpass(&self, answer: &str) -> PathBuf {
        self.script(&format!("echo '{answer}'"))
    }

    /// An askpass that must not be called: it leaves `marker` and fails.
    fn forbidden_askpass(&self, marker: &Path) -> PathBuf {
        self.script(&format!("touch '{}'\nexit 1", marker.display()))
    }

    /// `ssh` as `user` to `login`, from `source`, answering the prompt
    /// with `askpass`, at most `prompts` times.
    fn ssh(
        &self,
        user: &str,
        login: &str,
        source: &str,
        askpass: &Path,
        prompts: u32,
        cmd: &[&str],
    ) -> Output {
        let client = self.client(user);
        let bind = format!("BindAddress={source}");
        let tries = format!("NumberOfPasswordPrompts={prompts}");
        let mut c = client.ssh_command(
            &["-o", "BatchMode=no", "-o", &bind, "-o", &tries],
            login,
            cmd,
        );
        c.env("SSH_ASKPASS", askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0");
        run(&mut c)
    }

    /// `ssh USER@BASTION mfa enroll` without a terminal: reads the URI
    /// from the first line, sends the code from `code_for(secret)` on
    /// stdin; returns (secret, whole stdout, stderr, exit code).
    fn enroll_by_pipe(
        &self,
        user: &str,
        code_for: impl Fn(&str) -> String,
    ) -> (String, String, String, i32) {
        let client = self.client(user);
        let mut child = Command::new("timeout")
            .arg("60")
            .arg("ssh")
            .arg("-F")
            .arg(&client.config)
            .arg(client.destination(user))
            .args(["mfa", "enroll"])
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ssh");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        assert!(
            first.starts_with("otpauth://totp/"),
            "the first line is the URI: {first:?}"
        );
        let secret = secret_of(first.trim());
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{}", code_for(&secret)).unwrap();
        drop(stdin);
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            secret,
            first + &rest,
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.code().unwrap_or(-1),
        )
    }

    /// Enrolls `user` with the current code; the secret and the recovery codes.
    fn enroll(&self, user: &str) -> (String, Vec<String>) {
        let (secret, out, err, code) = self.enroll_by_pipe(user, |s| code_at(s, unix_now()));
        assert_eq!(code, 0, "mfa enroll for {user}: {out}\n{err}");
        let codes: Vec<String> = out
            .split("Recovery codes (each works once):\n")
            .nth(1)
            .unwrap_or_else(|| panic!("no recovery codes: {out}"))
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(codes.len(), 10, "ten recovery codes: {out}");
        (secret, codes)
    }

    /// The factors of the last `auth.success` of `user`.
    fn last_factors(&self, user: &str) -> Vec<String> {
        let events = self.gh.audit_events_of("auth.success");
        let ev = events
            .iter()
            .rev()
            .find(|e| e["user"] == user)
            .unwrap_or_else(|| panic!("no auth.success for {user}"));
        factors(ev)
    }

    fn mfa_failures(&self, user: &str) -> Vec<String> {
        self.gh
            .audit_events_of("mfa.failure")
            .iter()
            .filter(|e| e["user"] == user)
            .map(|e| e["detail"]["code"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

fn factors(ev: &Value) -> Vec<String> {
    ev["detail"]["factors"]
        .as_array()
        .unwrap_or_else(|| panic!("no detail.factors in {ev}"))
        .iter()
        .map(|f| f.as_str().unwrap_or_default().to_string())
        .collect()
}

fn assert_ran(out: &Output, what: &str) {
    out.assert_success(what);
    assert_eq!(out.stdout_text(), "in-42\n", "{what}");
}

const ECHO: &[&str] = &["echo in-$((40+2))"];

#[test]
fn totp_enrollment_login_cache_replay_and_recovery() {
    if !have("oathtool") {
        eprintln!("SKIP: oathtool missing (scripts/setup installs it)");
        return;
    }
    let w = World::start(&["alice", "bob", "carol"], "");
    let port = w.gh.port;
    // Enroll carol first: her one-step-old check waits for time to pass.
    let (carol_secret, _) = w.enroll("carol");
    let carol_enrolled = unix_now();

    // Not enrolled: command mode for `mfa` only, every server refused.
    let hint = format!(
        "gatehouse: access denied: enroll a second factor first: ssh -t -p {port} alice@127.0.0.1 mfa enroll"
    );
    let out = w.client("alice").ssh("alice@web1", ECHO);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stderr_text().contains(&hint), "{}", out.stderr_text());
    let out = w.client("alice").ssh("alice", &["list"]);
    assert_eq!(out.code(), Some(1));
    assert!(out.stderr_text().contains(&hint), "{}", out.stderr_text());
    let out = w.client("alice").ssh("alice", &["mfa status --json"]);
    out.assert_success("mfa status before enrolling");
    let status: Value = serde_json::from_str(out.stdout_text().trim()).unwrap();
    assert_eq!(status["enrolled"], false);
    assert_eq!(status["required"], true);

    // Enrollment without a terminal: URI, code on stdin, recovery codes.
    let (secret, recovery) = w.enroll("alice");
    let enrolled = w.gh.audit_events_of("mfa.enrolled");
    assert!(enrolled.iter().any(|e| e["user"] == "alice"));
    // No secret in any event.
    let all = serde_json::to_string(&w.gh.audit_events()).unwrap();
    assert!(!all.contains(&secret), "a secret leaked into the audit log");
    assert!(!all.contains(&recovery[0]), "a recovery code leaked");

    // A code logs in (the enrollment used the current step: take the
    // next, one step of drift). One fixed code, for the replay below.
    let next = w.answer_askpass(&code_at(&secret, unix_now() + 30));
    let out = w.ssh("alice", "alice@web1", "127.0.0.1", &next, 1, ECHO);
    assert_ran(&out, "alice with a TOTP code");
    assert_eq!(w.last_factors("alice"), ["key", "totp"]);

    // Same user, key and source: cached, no prompt.
    let marker = w.dir.join("asked");
    let forbidden = w.forbidden_askpass(&marker);
    let out = w.ssh("alice", "alice@web1", "127.0.0.1", &forbidden, 1, ECHO);
    assert_ran(&out, "alice cached");
    assert!(!marker.exists(), "a cached login asked for a code");
    assert_eq!(w.last_factors("alice"), ["key", "cached"]);
    // Command mode too.
    let out = w.ssh("alice", "alice", "127.0.0.1", &forbidden, 1, &["whoami"]);
    out.assert_success("cached command mode");
    assert!(!marker.exists());

    // Another source: asked. The same code again is a replay.
    let out = w.ssh("alice", "alice@web1", "127.0.0.2", &next, 1, ECHO);
    assert_ne!(out.code(), Some(0), "a replayed code logged in: {out:?}");
    assert_eq!(
        w.mfa_failures("alice").last().map(String::as_str),
        Some("mfa_replayed")
    );

    // A recovery code works, once.
    let rc = w.answer_askpass(&recovery[0]);
    let out = w.ssh("alice", "alice@web1", "127.0.0.2", &rc, 1, ECHO);
    assert_ran(&out, "alice with a recovery code from 127.0.0.2");
    assert_eq!(w.last_factors("alice"), ["key", "recovery"]);
    let out = w.ssh("alice", "alice@web1", "127.0.0.3", &rc, 1, ECHO);
    assert_ne!(out.code(), Some(0), "a recovery code worked twice");

    // An every-session server asks even with a cached approval.
    let out = w.ssh("alice", "alice@db1", "127.0.0.1", &forbidden, 1, ECHO);
    assert_ne!(out.code(), Some(0));
    assert!(marker.exists(), "db1 (every-session) must ask for a code");
    std::fs::remove_file(&marker).unwrap();
    let rc2 = w.answer_askpass(&recovery[1]);
    let out = w.ssh("alice", "alice@db1", "127.0.0.1", &rc2, 1, ECHO);
    assert_ran(&out, "alice on db1 with a fresh factor");
    assert_eq!(w.last_factors("alice"), ["key", "recovery"]);

    // BatchMode cannot answer: refused, with the reason on stderr.
    let bob = w.client("bob");
    let (bob_secret, _) = w.enroll("bob");
    let out = bob.ssh_opts(
        &["-o", "LogLevel=INFO", "-o", "BindAddress=127.0.0.4"],
        "bob@web1",
        ECHO,
    );
    assert_ne!(out.code(), Some(0));
    assert!(
        out.stderr_text()
            .contains("gatehouse: a second factor is required"),
        "BatchMode should print the reason: {}",
        out.stderr_text()
    );
    w.gh.wait_for_event("auth.failure", Duration::from_secs(10), |e| {
        e["user"] == "bob" && e["detail"]["code"] == "MFA_NOT_GIVEN"
    });

    // mfa status and mfa reset (after a good code) for bob.
    let askpass = w.totp_askpass(&bob_secret, 30);
    let out = w.ssh(
        "bob",
        "bob",
        "127.0.0.1",
        &askpass,
        1,
        &["mfa status --json"],
    );
    out.assert_success("bob mfa status");
    let status: Value = serde_json::from_str(out.stdout_text().trim()).unwrap();
    assert_eq!(status["enrolled"], true);
    assert_eq!(status["recovery_codes_left"], 10);
    assert_eq!(status["login_factors"], serde_json::json!(["key", "totp"]));

    // Carol: three steps old refused, one step old accepted (once her
    // enrollment's step is two steps behind).
    let old3 = w.totp_askpass(&carol_secret, -90);
    let out = w.ssh("carol", "carol@web1", "127.0.0.1", &old3, 1, ECHO);
    assert_ne!(out.code(), Some(0), "a code three steps old logged in");
    assert_eq!(w.mfa_failures("carol"), ["mfa_wrong_code"]);
    let ready = carol_enrolled / 30 * 30 + 60;
    while unix_now() < ready + 1 {
        std::thread::sleep(Duration::from_millis(500));
    }
    let old1 = w.totp_askpass(&carol_secret, -30);
    let out = w.ssh("carol", "carol@web1", "127.0.0.1", &old1, 1, ECHO);
    assert_ran(&out, "carol with a code one step old");
    assert_eq!(w.last_factors("carol"), ["key", "totp"]);

    let out = w.gh.cli(&["audit", "verify"]);
    out.assert_success("audit verify");
}

#[test]
fn wrong_codes_lock_out_and_unlock_lifts_it() {
    if !have("oathtool") {
        eprintln!("SKIP: oathtool missing");
        return;
    }
    let w = World::start(&["dave"], "");
    let (secret, _) = w.enroll("dave");
    let wrong = w.answer_askpass("000000");
    // Three wrong codes in one connection (three prompts) lock dave.
    let out = w.ssh("dave", "dave@web1", "127.0.0.1", &wrong, 3, ECHO);
    assert_ne!(out.code(), Some(0));
    w.gh.wait_for_event("auth.lockout", Duration::from_secs(10), |e| {
        e["user"] == "dave"
    });
    // Now even a good code is refused.
    let good = w.totp_askpass(&secret, 30);
    let out = w.ssh("dave", "dave@web1", "127.0.0.1", &good, 1, ECHO);
    assert_ne!(out.code(), Some(0), "a locked user logged in");
    let refused = w.gh.audit_events_of("auth.failure");
    assert!(
        refused
            .iter()
            .any(|e| e["user"] == "dave" && e["detail"]["code"] == "LOCKED"),
        "{refused:#?}"
    );
    w.gh.cli(&["unlock", "dave"]).assert_success("unlock");
    let out = w.ssh("dave", "dave@web1", "127.0.0.1", &good, 1, ECHO);
    assert_ran(&out, "dave after unlock");
    assert_eq!(w.last_factors("dave"), ["key", "totp"]);
}

#[test]
fn keyboard_interactive_without_a_key_is_refused() {
    if !Path::new("/usr/bin/python3").exists() {
        eprintln!("SKIP: /usr/bin/python3 missing");
        return;
    }
    let w = World::start(&["erin"], "");
    let script = r#"
import sys, paramiko
t = paramiko.Transport(("127.0.0.1", int(sys.argv[1])))
t.start_client(timeout=20)
asked = []
def handler(title, instructions, prompts):
    asked.append([p for p, _ in prompts])
    return ["123456" for _ in prompts]
try:
    t.auth_interactive("erin@web1", handler)
    print("AUTHENTICATED")
except paramiko.AuthenticationException as e:
    print("REFUSED", asked)
t.close()
"#;
    let out = run(Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .arg(w.gh.port.to_string()));
    out.assert_success("paramiko");
    assert!(
        out.stdout_text().starts_with("REFUSED []"),
        "keyboard-interactive without a key: {}",
        out.stdout_text()
    );
    let refused = w.gh.audit_events_of("auth.failure");
    assert!(
        refused
            .iter()
            .any(|e| e["detail"]["code"] == "KO_NO_KEY_FIRST"),
        "{refused:#?}"
    );
}

#[test]
fn enrollment_in_a_terminal_draws_a_qr_code() {
    if !have("oathtool") || !have("tmux") {
        eprintln!("SKIP: oathtool or tmux missing");
        return;
    }
    let w = World::start(&["frank"], "");
    let client = w.client("frank");
    let cmd = format!(
        "ssh -F {} -t {} mfa enroll; echo EXIT=$?; sleep 30",
        client.config.display(),
        client.destination("frank")
    );
    let tmux = Tmux::start_sized(&w.dir, &cmd, 200, 80);
    let screen = tmux.wait_for("Verification code: ", Duration::from_secs(30));
    assert!(
        screen.contains('█') || screen.contains('▀') || screen.contains('▄'),
        "a QR code is drawn on a terminal:\n{screen}"
    );
    let uri = screen
        .lines()
        .find(|l| l.contains("otpauth://totp/"))
        .expect("the URI on screen")
        .trim()
        .to_string();
    let secret = secret_of(&uri);
    tmux.send_line(&code_at(&secret, unix_now()));
    let screen = tmux.wait_for("EXIT=", Duration::from_secs(30));
    assert!(
        screen.contains("Recovery codes (each works once):"),
        "{screen}"
    );
    assert!(screen.contains("EXIT=0"), "{screen}");
}

/// sk keys with Debian's software authenticator.
fn sk_keygen(dir: &TestDir, name: &str, kind: &str, extra: &[&str]) -> Key {
    let private = dir.join(name);
    let out = run(Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-C", name, "-w", SK_DUMMY])
        .args(extra)
        .arg("-f")
        .arg(&private)
        .env("SSH_SK_PROVIDER", SK_DUMMY));
    out.assert_success(&format!("ssh-keygen -t {kind}"));
    Key::load(&private)
}

#[test]
fn security_keys_are_two_factors_with_a_touch_only() {
    if !Path::new(SK_DUMMY).exists() {
        eprintln!("SKIP: {SK_DUMMY} missing (openssh-tests, scripts/setup)");
        return;
    }
    let dir = TestDir::new();
    let identity = Gatehouse::prepare_identity(&dir);
    let target = Sshd::start(&dir, SshdOpts::new().authorize("root", &identity.public));
    let ed = sk_keygen(&dir, "ed-sk", "ed25519-sk", &[]);
    let ec = sk_keygen(&dir, "ec-sk", "ecdsa-sk", &[]);
    let notouch = sk_keygen(&dir, "nt-sk", "ed25519-sk", &["-O", "no-touch-required"]);
    let policy = policy_user("gina", &ed, &["support"])
        + &policy_user("hugo", &ec, &["support"])
        + &policy_user("ivan", &notouch, &["support"])
        + &policy_server(
            "web1",
            &target,
            "ssh-forwarding",
            &["root"],
            &["group:support"],
        )
        + "mfa = \"every-session\"\n";
    let gh = Gatehouse::start(
        &dir,
        "[auth]\nmfa = \"required\"\n[limits]\nauth_per_minute_per_source = 1000\n",
        &policy,
    );
    let provider = format!("SecurityKeyProvider={SK_DUMMY}");
    for (user, key) in [("gina", &ed), ("hugo", &ec)] {
        let client = gh.client(&dir, key);
        // Required and not enrolled, on an every-session server: the
        // touch is the second factor, no code is asked.
        let out = client.ssh_opts(&["-o", &provider], &format!("{user}@web1"), ECHO);
        assert_ran(&out, &format!("{user} with a security key"));
        let ev = gh
            .audit_events_of("auth.success")
            .into_iter()
            .rev()
            .find(|e| e["user"] == user)
            .expect("auth.success");
        assert_eq!(factors(&ev), ["security-key"], "{ev}");
    }
    // No user presence: refused and audited.
    let client = gh.client(&dir, &notouch);
    let out = client.ssh_opts(&["-o", &provider], "ivan@web1", ECHO);
    assert_ne!(out.code(), Some(0), "a signature without a touch logged in");
    let refused = gh.audit_events_of("auth.failure");
    assert!(
        refused
            .iter()
            .any(|e| e["user"] == "ivan" && e["detail"]["code"] == "KO_SK_NO_USER_PRESENCE"),
        "{refused:#?}"
    );
    // server-sig-algs lists both.
    let client = gh.client(&dir, &ed);
    let out = client.ssh_opts(&["-o", &provider, "-v"], "gina@web1", ECHO);
    let sig_algs = out
        .stderr_text()
        .lines()
        .find(|l| l.contains("server-sig-algs"))
        .map(str::to_string)
        .unwrap_or_default();
    for alg in [
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    ] {
        assert!(
            sig_algs.contains(alg),
            "{alg} in server-sig-algs: {sig_algs}"
        );
    }
}

#[test]
fn two_nodes_share_factors_and_used_codes() {
    if !have("oathtool") {
        eprintln!("SKIP: oathtool missing");
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(pg::fresh_db());
    let dir = TestDir::new();
    let shared = dir.join("shared");
    let identity = Gatehouse::prepare_identity_in(&shared);
    let target = Sshd::start(&dir, SshdOpts::new().authorize("root", &identity.public));
    let alice = keygen(dir.path(), "alice", KeyKind::Ed25519);
    let policy = policy_user("alice", &alice, &["support"])
        + &policy_server(
            "web1",
            &target,
            "ssh-forwarding",
            &["root"],
            &["group:support"],
        );
    let node = |name: &str| {
        let p = |rel: &str| toml_str(&shared.join(rel).display().to_string());
        GatehouseOpts::new()
            .name(name)
            .database(&db.url)
            .policy("policy.toml", &policy)
            .extra_toml(&format!(
                "[server]\nnode = {}\nidentity_key = {}\nmaster_key = {}\n\
                 signing_key = {}\n[auth]\nmfa = \"required\"\n\
                 [limits]\nauth_per_minute_per_source = 1000\n",
                toml_str(name),
                p("data/identity_ed25519_key"),
                p("data/master.key"),
                p("data/signing_ed25519.pk8"),
            ))
    };
    let a = Gatehouse::start_with(&dir, node("node-a"));
    let b = Gatehouse::start_with(&dir, node("node-b"));
    let w = World {
        gh: a,
        _target: target,
        dir,
        keys: [("alice".to_string(), alice.clone())].into_iter().collect(),
    };
    // Enroll on node A.
    let (secret, _) = w.enroll("alice");
    // Log in on node B with the next code (fixed, for the replay).
    let next = w.answer_askpass(&code_at(&secret, unix_now() + 30));
    let on_b = |source: &str, askpass: &Path| {
        let client = b.client(&w.dir, &alice);
        let bind = format!("BindAddress={source}");
        let mut c = client.ssh_command(
            &[
                "-o",
                "BatchMode=no",
                "-o",
                &bind,
                "-o",
                "NumberOfPasswordPrompts=1",
            ],
            "alice@web1",
            ECHO,
        );
        c.env("SSH_ASKPASS", askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0");
        run(&mut c)
    };
    let out = on_b("127.0.0.1", &next);
    assert_ran(&out, "alice on node B with a code");
    // The same code on node A (another source, so no cached approval).
    let out = w.ssh("alice", "alice@web1", "127.0.0.2", &next, 1, ECHO);
    assert_ne!(
        out.code(),
        Some(0),
        "a code used on node B worked on node A"
    );
    assert_eq!(
        w.mfa_failures("alice").last().map(String::as_str),
        Some("mfa_replayed")
    );
    // The approval node B cached serves node A for the same source.
    let marker = w.dir.join("asked");
    let forbidden = w.forbidden_askpass(&marker);
    let out = w.ssh("alice", "alice@web1", "127.0.0.1", &forbidden, 1, ECHO);
    assert_ran(&out, "alice on node A, cached by node B");
    assert!(!marker.exists());
    drop(b);
}

/// `mfa_self_enroll = false`: enrolling waits for `gatehouse mfa
/// allow-enroll`; before a factor, the console link (`web`) is refused
/// like a server; `mfa reset` in command mode removes one's own factor
/// after a good code, and the next server login must enroll again.
#[test]
fn allow_enroll_console_link_and_reset_in_command_mode() {
    if !have("oathtool") {
        eprintln!("SKIP: oathtool missing");
        return;
    }
    let w = World::start(&["gina"], "mfa_self_enroll = false\n");
    let no_prompt = w.answer_askpass("unused");
    // Not enrolled: command mode serves `mfa status`, refuses `web`.
    let out = w.client("gina").ssh("gina", &["web"]);
    assert_eq!(out.code(), Some(1), "web before a factor: {out:?}");
    assert!(
        out.stderr_text()
            .contains("access denied: enroll a second factor first"),
        "{}",
        out.stderr_text()
    );
    let out = w.client("gina").ssh("gina", &["mfa", "status"]);
    out.assert_success("mfa status");
    assert!(
        out.stdout_text().contains("allow-enroll"),
        "status says enrolling needs an administrator: {}",
        out.stdout_text()
    );
    // Enrolling is refused until an administrator allows it.
    let client = w.client("gina");
    let refused = run(Command::new("timeout")
        .arg("60")
        .arg("ssh")
        .arg("-F")
        .arg(&client.config)
        .arg(client.destination("gina"))
        .args(["mfa", "enroll"])
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null()));
    assert_ne!(refused.code(), Some(0), "{}", refused.stdout_text());
    assert!(
        !refused.stdout_text().contains("otpauth://"),
        "no secret before allow-enroll: {}",
        refused.stdout_text()
    );
    w.gh.cli(&["mfa", "allow-enroll", "gina"])
        .assert_success("allow-enroll");
    let (secret, recovery) = w.enroll("gina");
    // The enrollment spent the current step: the next one logs in.
    let good = w.answer_askpass(&code_at(&secret, unix_now() + 30));
    let out = w.ssh("gina", "gina@web1", "127.0.0.1", &good, 1, ECHO);
    assert_ran(&out, "gina with a code");
    // `mfa reset` reads a code on stdin (a recovery code here: the login's
    // own TOTP step is spent); the login itself rides the cached approval.
    let mut c = w.client("gina").ssh_command(
        &["-o", "BatchMode=no", "-o", "BindAddress=127.0.0.1"],
        "gina",
        &["mfa", "reset"],
    );
    let forbidden = w.dir.join("asked");
    c.env("SSH_ASKPASS", w.forbidden_askpass(&forbidden))
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("ssh");
    {
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{}", recovery[0]).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "mfa reset: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!forbidden.exists(), "the cached login asked for a code");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Second factor removed"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let reset = w.gh.audit_events_of("mfa.reset");
    assert!(
        reset
            .iter()
            .any(|e| e["user"] == "gina" && e["detail"]["by"] == "gina"),
        "{reset:#?}"
    );
    // Without a factor again, a server is refused with the enroll hint.
    let out = w.ssh("gina", "gina@web1", "127.0.0.1", &no_prompt, 1, ECHO);
    assert_ne!(
        out.code(),
        Some(0),
        "gina reached a server without a factor"
    );
    assert!(
        out.stderr_text()
            .contains("access denied: enroll a second factor first"),
        "{}",
        out.stderr_text()
    );
}
