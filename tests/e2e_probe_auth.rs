//! End to end, issue 17 (a third outside probe), items 1, 4, 10 and 12:
//! what a client can do at authentication with other clients than
//! OpenSSH's (paramiko, asyncssh, Dropbear's `dbclient`, PuTTY's `plink`).
//!
//! - Whoever holds a staff member's *public* key (unsigned queries, forged
//!   signatures) cannot lock her out: audited, charged to the source,
//!   never counted toward `lockout_after`.
//! - SHA-1 `ssh-rsa` signatures are refused and audited; `auth.success`
//!   names the signature algorithm.
//! - `server-sig-algs` lists every staff key algorithm accepted, so
//!   Dropbear logs in with an ECDSA key.
//! - A client with no common MAC is audited as `KO_NO_COMMON_ALGORITHM`
//!   with both lists; PuTTY's `simple@` request logs no warning; a `-R`
//!   refusal has a code and a readable action.
//!
//! SQLite only: what is tested here is the SSH front end (lockouts run on
//! both backends in e2e_limits).

#[path = "common/access.rs"]
mod access;
mod common;
#[path = "support/pg.rs"]
mod pg;

use std::process::Command;
use std::time::Duration;

use access::*;
use common::*;

/// alice with `key`, a target `web1` (ssh-forwarding, account root) and a
/// bastion with `extra_toml`.
struct World {
    dir: TestDir,
    alice: Key,
    _target: Sshd,
    gh: Gatehouse,
}

impl World {
    fn start(kind: KeyKind, extra_toml: &str) -> World {
        let dir = TestDir::new();
        let identity = Gatehouse::prepare_identity(&dir);
        let target = Sshd::start(&dir, SshdOpts::new().authorize("root", &identity.public));
        let alice = keygen(dir.path(), "alice", kind);
        let policy = policy_user("alice", &alice, &["support"])
            + &policy_server(
                "web1",
                &target,
                "ssh-forwarding",
                &["root"],
                &["group:support"],
            );
        let gh = Gatehouse::start_with(
            &dir,
            GatehouseOpts::new()
                .extra_toml(extra_toml)
                .policy("policy.toml", &policy),
        );
        World {
            dir,
            alice,
            _target: target,
            gh,
        }
    }

    fn assert_login_works(&self) {
        let out = self
            .gh
            .client(&self.dir, &self.alice)
            .ssh("alice@web1", &["echo ok"]);
        out.assert_success("alice's login");
        assert_eq!(out.stdout_text(), "ok\n");
    }

    /// `/usr/bin/python3 -c SCRIPT ARGS...` (Debian's paramiko and
    /// asyncssh, installed by scripts/setup); the JSON object it printed.
    fn python(&self, script: &str, args: &[&str]) -> serde_json::Value {
        let out = run(Command::new("/usr/bin/python3")
            .arg("-W")
            .arg("ignore")
            .arg("-c")
            .arg(script)
            .arg("127.0.0.1")
            .arg(self.gh.port.to_string())
            .args(args));
        let text = out.stdout_text();
        let line = text.lines().last().unwrap_or_else(|| {
            panic!("the script printed nothing; stderr:\n{}", out.stderr_text())
        });
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }
}

fn failures_with_code(gh: &Gatehouse, code: &str) -> Vec<serde_json::Value> {
    gh.audit_events_of("auth.failure")
        .into_iter()
        .filter(|e| detail_str(e, "code") == code)
        .collect()
}

/// paramiko: COUNT connections, each asking whether the public key in
/// PUBFILE would do for LOGIN (a `publickey` request without signature),
/// waiting for the server's go-ahead (PK_OK), then disconnecting. All an
/// attacker needs is the public key. Prints `{"pk_ok": N}`.
const UNSIGNED_QUERIES: &str = r#"
import base64, json, socket, sys, threading
import paramiko
from paramiko.auth_handler import AuthHandler
from paramiko.common import MSG_USERAUTH_INFO_REQUEST, cMSG_USERAUTH_REQUEST
from paramiko.message import Message

host, port, login, pubfile, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
alg, b64 = open(pubfile).read().split()[:2]
blob = base64.b64decode(b64)
state = {}
# SSH_MSG_USERAUTH_PK_OK has the number paramiko knows as INFO_REQUEST.
def pk_ok(handler, m):
    state["ok"].set()
AuthHandler._client_handler_table[MSG_USERAUTH_INFO_REQUEST] = pk_ok
got = 0
for _ in range(count):
    state["ok"] = threading.Event()
    sock = socket.create_connection((host, port), timeout=30)
    t = paramiko.Transport(sock)
    t.start_client(timeout=30)
    try:
        t.auth_none(login)
    except paramiko.BadAuthenticationType:
        pass
    m = Message()
    m.add_byte(cMSG_USERAUTH_REQUEST)
    m.add_string(login)
    m.add_string("ssh-connection")
    m.add_string("publickey")
    m.add_boolean(False)
    m.add_string(alg)
    m.add_string(blob)
    t._send_message(m)
    if state["ok"].wait(30):
        got += 1
    t.close()
print(json.dumps({"pk_ok": got}))
"#;

/// Issue 17 item 1: ten unsigned queries and ten forged signatures for
/// alice's listed key, from a source her policy admits, with
/// `lockout_after = 3`: every one is an audited `BAD_SIGNATURE` failure,
/// nobody is locked out, and alice logs in.
#[test]
fn public_key_holders_cannot_lock_a_user_out() {
    let w = World::start(
        KeyKind::Ed25519,
        "[limits]\nlockout_after = 3\nauth_per_minute_per_source = 1000\n",
    );
    let public = w.alice.public_path.display().to_string();
    let r = w.python(UNSIGNED_QUERIES, &["alice@web1", &public, "10"]);
    assert_eq!(r["pk_ok"], 10, "the key was accepted on offer: {r}");
    for _ in 0..10 {
        assert!(!bad_signatures(
            w.gh.port,
            "127.0.0.1",
            "alice@web1",
            &w.alice,
            1
        ));
    }
    let all_written = wait_until(Duration::from_secs(20), || {
        failures_with_code(&w.gh, "BAD_SIGNATURE").len() >= 20
    });
    let failures = failures_with_code(&w.gh, "BAD_SIGNATURE");
    assert!(all_written, "20 attempts, {} audited", failures.len());
    for e in &failures {
        assert_eq!(field(e, "user"), "alice", "{e}");
        assert_eq!(field(e, "source"), "127.0.0.1", "{e}");
    }
    assert!(w.gh.audit_events_of("auth.lockout").is_empty());
    assert!(failures_with_code(&w.gh, "LOCKED").is_empty());
    w.assert_login_works();
}

/// asyncssh: logs in as LOGIN with KEYFILE, restricted to the signature
/// algorithms ALGS (comma-separated; empty: its defaults), runs `echo ok`.
const ASYNCSSH_LOGIN: &str = r#"
import asyncio, json, sys
import asyncssh

host, port, login, keyfile, algs = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]

async def main():
    kw = {"signature_algs": algs.split(",")} if algs else {}
    try:
        async with asyncssh.connect(host, port=port, username=login, client_keys=[keyfile],
                                    known_hosts=None, agent_path=None, **kw) as conn:
            r = await conn.run("echo ok", check=False)
            return {"ok": True, "stdout": r.stdout}
    except (asyncssh.PermissionDenied, asyncssh.DisconnectError) as e:
        return {"ok": False, "error": str(e)}

print(json.dumps(asyncio.run(main())))
"#;

/// paramiko: logs in as LOGIN with the RSA key KEYFILE, forced to sign
/// with SHA-1 `ssh-rsa` (left alone, paramiko gives up on its own when
/// `server-sig-algs` does not list it). Prints `{"ok": BOOL}`.
const PARAMIKO_SSH_RSA: &str = r#"
import json, socket, sys
import paramiko
from paramiko.auth_handler import AuthHandler

AuthHandler._finalize_pubkey_algorithm = lambda self, key_type: "ssh-rsa"

host, port, login, keyfile = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
sock = socket.create_connection((host, port), timeout=30)
t = paramiko.Transport(sock, disabled_algorithms={"pubkeys": ["rsa-sha2-512", "rsa-sha2-256"]})
t.start_client(timeout=30)
key = paramiko.RSAKey.from_private_key_file(keyfile)
try:
    t.auth_publickey(login, key)
    out = {"ok": t.is_authenticated()}
except paramiko.AuthenticationException as e:
    out = {"ok": False, "error": str(e)}
t.close()
print(json.dumps(out))
"#;

/// Issue 17 item 4: a client signing with SHA-1 `ssh-rsa` (asyncssh with
/// `signature_algs=['ssh-rsa']`, paramiko with rsa-sha2 disabled) is
/// refused and audited naming the algorithm; the same key with
/// `rsa-sha2-*` gets in, and `auth.success` says which algorithm signed.
#[test]
fn sha1_rsa_signatures_are_refused_and_the_algorithm_is_audited() {
    let w = World::start(KeyKind::Rsa, "");
    let key = w.alice.private.display().to_string();

    let r = w.python(ASYNCSSH_LOGIN, &["alice@web1", &key, "ssh-rsa"]);
    assert_eq!(r["ok"], false, "asyncssh with ssh-rsa got in: {r}");
    let refused =
        w.gh.wait_for_event("auth.failure", Duration::from_secs(10), |e| {
            detail_str(e, "code") == "KO_WEAK_SIGNATURE_ALGORITHM"
        });
    assert_eq!(detail_str(&refused, "sig_alg"), "ssh-rsa", "{refused}");
    assert!(
        detail_str(&refused, "reason").contains("ssh-rsa"),
        "{refused}"
    );
    assert_eq!(field(&refused, "user"), "alice", "{refused}");

    let r = w.python(PARAMIKO_SSH_RSA, &["alice@web1", &key]);
    assert_eq!(r["ok"], false, "paramiko with ssh-rsa got in: {r}");
    assert!(
        w.gh.audit_events_of("auth.success").is_empty(),
        "no SHA-1 login succeeded"
    );
    assert!(failures_with_code(&w.gh, "KO_WEAK_SIGNATURE_ALGORITHM").len() >= 2);

    let r = w.python(ASYNCSSH_LOGIN, &["alice@web1", &key, "rsa-sha2-256"]);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["stdout"], "ok\n", "{r}");
    let ok =
        w.gh.wait_for_event("auth.success", Duration::from_secs(10), |_| true);
    assert_eq!(detail_str(&ok, "sig_alg"), "rsa-sha2-256", "{ok}");

    // The stock client picks rsa-sha2-512 from server-sig-algs.
    w.assert_login_works();
    let algs: Vec<String> =
        w.gh.audit_events_of("auth.success")
            .iter()
            .map(|e| detail_str(e, "sig_alg"))
            .collect();
    assert_eq!(algs, ["rsa-sha2-256", "rsa-sha2-512"]);
    // SHA-1 refusals never count toward a lockout either.
    assert!(w.gh.audit_events_of("auth.lockout").is_empty());
}

/// paramiko: the `server-sig-algs` the bastion advertises (RFC 8308).
const SERVER_SIG_ALGS: &str = r#"
import json, socket, sys, time
import paramiko

host, port = sys.argv[1], int(sys.argv[2])
sock = socket.create_connection((host, port), timeout=30)
t = paramiko.Transport(sock)
t.start_client(timeout=30)
try:
    t.auth_none("nobody")
except paramiko.BadAuthenticationType:
    pass
v = t.server_extensions.get("server-sig-algs", b"")
if isinstance(v, bytes):
    v = v.decode()
t.close()
print(json.dumps({"algs": v.split(",") if v else []}))
"#;

/// Issue 17 item 10: `server-sig-algs` lists every staff key algorithm
/// accepted, and Dropbear's `dbclient`, which offers only keys whose
/// algorithm is listed there, logs in with an ECDSA P-256 key and runs a
/// command on the target (its `user@host` parsing takes the login name
/// with `-l`).
#[test]
fn dropbear_logs_in_with_an_ecdsa_key() {
    let w = World::start(KeyKind::Ecdsa, "");
    let r = w.python(SERVER_SIG_ALGS, &[]);
    let algs: Vec<&str> = r["algs"]
        .as_array()
        .expect("algs")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    for alg in [
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "rsa-sha2-512",
        "rsa-sha2-256",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    ] {
        assert!(
            algs.contains(&alg),
            "{alg} missing from server-sig-algs {algs:?}"
        );
    }
    assert!(!algs.contains(&"ssh-rsa"), "{algs:?}");

    let dropbear_key = w.dir.join("keys/alice.dropbear");
    run(Command::new("dropbearconvert")
        .args(["openssh", "dropbear"])
        .arg(&w.alice.private)
        .arg(&dropbear_key))
    .assert_success("dropbearconvert");
    let out = run(Command::new("dbclient")
        .args(["-y", "-y", "-i"])
        .arg(&dropbear_key)
        .args(["-l", "alice@web1", "-p", &w.gh.port.to_string()])
        .args(["127.0.0.1", "echo dropbear-ok; id -un"])
        .env("HOME", w.dir.path()));
    out.assert_success("dbclient with an ECDSA key");
    assert_eq!(out.stdout_text(), "dropbear-ok\nroot\n");
    let ok =
        w.gh.wait_for_event("auth.success", Duration::from_secs(10), |_| true);
    assert_eq!(detail_str(&ok, "sig_alg"), "ecdsa-sha2-nistp256", "{ok}");
}

/// Issue 17 item 12 (a): a client with no MAC in common is audited with a
/// stable code and both lists, not as "malformed".
#[test]
fn no_common_mac_is_audited_with_both_lists() {
    let w = World::start(KeyKind::Ed25519, "");
    let out = w.gh.client(&w.dir, &w.alice).ssh_opts(
        &["-o", "MACs=hmac-md5", "-o", "Ciphers=aes128-ctr"],
        "alice@web1",
        &["true"],
    );
    assert_eq!(out.code(), Some(255), "{out:?}");
    let ev =
        w.gh.wait_for_event("connection.refused", Duration::from_secs(15), |e| {
            detail_str(e, "code") == "KO_NO_COMMON_ALGORITHM"
        });
    assert_eq!(detail_str(&ev, "reason"), "no common algorithm", "{ev}");
    assert_eq!(detail_str(&ev, "kind"), "mac", "{ev}");
    assert_eq!(
        ev["detail"]["offered"],
        serde_json::json!(["hmac-md5"]),
        "{ev}"
    );
    let ours = ev["detail"]["ours"].as_array().expect("ours");
    assert!(
        ours.contains(&serde_json::json!("hmac-sha2-256-etm@openssh.com")),
        "{ev}"
    );
    w.assert_login_works();
}

/// Issue 17 item 12 (b): PuTTY's `simple@putty.projects.tartarus.org`
/// channel request is answered quietly: plink runs a command through the
/// bastion and the bastion's log has no warning about it.
#[test]
fn putty_simple_request_logs_no_warning() {
    let w = World::start(KeyKind::Ed25519, "");
    let ppk = w.dir.join("keys/alice.ppk");
    run(Command::new("puttygen")
        .arg(&w.alice.private)
        .args(["-O", "private", "-o"])
        .arg(&ppk))
    .assert_success("puttygen");
    let out = run(Command::new("plink")
        .args(["-batch", "-ssh", "-P", &w.gh.port.to_string()])
        .args(["-hostkey", &w.gh.host_key_fingerprint()])
        .arg("-i")
        .arg(&ppk)
        .args(["-l", "alice@web1", "127.0.0.1", "echo putty-ok"])
        .env("HOME", w.dir.path()));
    out.assert_success("plink");
    assert_eq!(out.stdout_text(), "putty-ok\n");
    w.gh.wait_for_event("session.end", Duration::from_secs(10), |_| true);
    let log = std::fs::read_to_string(&w.gh.stderr_log).unwrap_or_default();
    assert!(!log.contains("simple@putty"), "{log}");
    // No other warning for the session either (the tests run serve as
    // root, which it warns about at start).
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && !l.contains("running as root"))
        .collect();
    assert!(warnings.is_empty(), "{warnings:#?}");
}

/// Issue 17 item 12 (c): a refused `-R` is a `forward.denied` event with a
/// stable code and the action in words.
#[test]
fn remote_forward_refusal_has_a_code_and_a_readable_action() {
    let w = World::start(KeyKind::Ed25519, "");
    let port = free_port().to_string();
    let spec = format!("{port}:127.0.0.1:9");
    let out = w.gh.client(&w.dir, &w.alice).ssh_opts(
        &["-N", "-o", "ExitOnForwardFailure=yes", "-R", &spec],
        "alice@web1",
        &[],
    );
    assert_eq!(out.code(), Some(255), "{out:?}");
    let ev =
        w.gh.wait_for_event("forward.denied", Duration::from_secs(10), |_| true);
    assert_eq!(detail_str(&ev, "code"), "KO_MODE_REFUSES", "{ev}");
    assert_eq!(
        detail_str(&ev, "action"),
        format!("remote forward (-R) of port {port}"),
        "{ev}"
    );
    assert!(!detail_str(&ev, "reason").is_empty(), "{ev}");
}

/// The software security key of openssh-tests (scripts/setup installs it).
const SK_DUMMY: &str = "/usr/lib/openssh/regress/misc/sk-dummy/sk-dummy.so";

/// Issue 17 item 10: the security-key types `server-sig-algs` lists are
/// accepted: the stock client logs in with an `ed25519-sk` and an
/// `ecdsa-sk` key (sk-dummy standing in for the hardware), and
/// `auth.success` names the algorithm. (Whether a touch is required is
/// the second-factor issue's.)
#[test]
fn security_key_types_log_in() {
    assert!(
        std::path::Path::new(SK_DUMMY).exists(),
        "{SK_DUMMY} missing: run scripts/setup"
    );
    let w = World::start(KeyKind::Ed25519, "");
    let mut policy = String::new();
    let mut keys = Vec::new();
    for (name, kind, alg) in [
        ("carol", "ed25519-sk", "sk-ssh-ed25519@openssh.com"),
        ("dave", "ecdsa-sk", "sk-ecdsa-sha2-nistp256@openssh.com"),
    ] {
        let private = w.dir.join(format!("keys/{name}"));
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", kind, "-w", SK_DUMMY, "-N", "", "-C", name, "-f"])
            .arg(&private)
            .env("SSH_SK_PROVIDER", SK_DUMMY))
        .assert_success("ssh-keygen (security key)");
        let key = Key::load(&private);
        policy += &policy_user(name, &key, &["support"]);
        keys.push((name, key, alg));
    }
    let base = std::fs::read_to_string(w.gh.home.join("policies/policy.toml")).unwrap();
    w.gh.write_policy("policy.toml", &(base + &policy));
    w.gh.wait_for_event("policy.reloaded", Duration::from_secs(15), |e| {
        detail_str(e, "reason") == "changed"
    });
    for (name, key, alg) in &keys {
        let client = Client::with_options(
            &w.dir,
            key,
            w.gh.port,
            &[&format!("SecurityKeyProvider {SK_DUMMY}")],
        );
        let out = client.ssh(&format!("{name}@web1"), &["echo sk-ok"]);
        out.assert_success(&format!("{name} with a {alg} key"));
        assert_eq!(out.stdout_text(), "sk-ok\n");
        let ok =
            w.gh.wait_for_event("auth.success", Duration::from_secs(10), |e| {
                field(e, "user") == *name
            });
        assert_eq!(detail_str(&ok, "sig_alg"), *alg, "{ok}");
    }
}
