//! Proves the end-to-end harness itself: real sshd targets driven by the
//! stock OpenSSH clients directly (no bastion), plus one bastion test that
//! waits for `gatehouse serve`.

mod common;

use std::time::Duration;

use common::*;

/// A target that accepts `key` for root, and a client holding `key`.
fn direct_target(dir: &TestDir) -> (Sshd, Client) {
    let key = keygen(dir.path(), "staff", KeyKind::Ed25519);
    let sshd = Sshd::start(dir, SshdOpts::new().authorize("root", &key.public));
    let client = Client::new(dir, &key, sshd.port);
    (sshd, client)
}

#[test]
fn exit_status_and_stdout_pass_through() {
    let dir = TestDir::new();
    let (_sshd, client) = direct_target(&dir);
    let out = client.ssh("root", &["echo out; echo err >&2; exit 7"]);
    assert_eq!(out.code(), Some(7), "{}", out.stderr_text());
    assert_eq!(out.stdout_text(), "out\n");
    assert_eq!(out.stderr_text(), "err\n");
}

#[test]
fn stdin_reaches_the_remote_command() {
    let dir = TestDir::new();
    let (_sshd, client) = direct_target(&dir);
    let data = random_bytes(300_000);
    let out = client.ssh_with_stdin("root", &["sha256sum"], &data);
    out.assert_success("ssh sha256sum");
    let want = hex::encode(ring::digest::digest(&ring::digest::SHA256, &data));
    assert!(
        out.stdout_text().starts_with(&want),
        "{}",
        out.stdout_text()
    );
}

#[test]
fn unknown_key_is_refused() {
    let dir = TestDir::new();
    let (sshd, _client) = direct_target(&dir);
    let stranger = keygen(dir.path(), "stranger", KeyKind::Ecdsa);
    let out = Client::new(&dir, &stranger, sshd.port).ssh("root", &["true"]);
    assert_eq!(out.code(), Some(255));
    assert!(
        out.stderr_text().contains("Permission denied"),
        "{}",
        out.stderr_text()
    );
}

#[test]
fn host_key_fingerprint_is_what_the_server_presents() {
    let dir = TestDir::new();
    let (sshd, _client) = direct_target(&dir);
    let out = run(std::process::Command::new("ssh-keyscan")
        .args(["-t", "ed25519", "-p"])
        .arg(sshd.port.to_string())
        .arg("127.0.0.1"));
    let scanned = dir.write("scanned", out.stdout);
    // keyscan lines are "[host]:port ssh-ed25519 AAAA"; -lf reads them too.
    assert_eq!(fingerprint(&scanned), sshd.host_key_fingerprint);
    assert!(sshd.host_key_fingerprint.starts_with("SHA256:"));
}

#[test]
fn scp_round_trips_a_file() {
    let dir = TestDir::new();
    let (_sshd, client) = direct_target(&dir);
    let up = dir.write("up.bin", random_bytes(1 << 20));
    let remote = dir.join("remote.bin");
    let down = dir.join("down.bin");
    client
        .scp(&[
            up.to_str().unwrap(),
            &client.remote("root", remote.to_str().unwrap()),
        ])
        .assert_success("scp up");
    client
        .scp(&[
            &client.remote("root", remote.to_str().unwrap()),
            down.to_str().unwrap(),
        ])
        .assert_success("scp down");
    assert_eq!(sha256_file(&up), sha256_file(&remote));
    assert_eq!(sha256_file(&up), sha256_file(&down));
}

#[test]
fn sftp_batch_put_and_get() {
    let dir = TestDir::new();
    let (_sshd, client) = direct_target(&dir);
    let up = dir.write("up.txt", random_bytes(200_000));
    let remote_dir = dir.join("sftp-remote");
    let down = dir.join("down.txt");
    let out = client.sftp_batch(
        "root",
        &format!(
            "mkdir {r}\nput {u} {r}/f\nls -l {r}\nget {r}/f {d}\nrename {r}/f {r}/g\nrm {r}/g\n",
            r = remote_dir.display(),
            u = up.display(),
            d = down.display()
        ),
    );
    out.assert_success("sftp batch");
    assert_eq!(sha256_file(&up), sha256_file(&down));
    assert!(remote_dir.is_dir() && !remote_dir.join("g").exists());
    // A failing command makes the batch fail.
    let out = client.sftp_batch("root", "get /nonexistent/file\n");
    assert_ne!(out.code(), Some(0));
}

#[test]
fn rsync_over_ssh() {
    let dir = TestDir::new();
    let (_sshd, client) = direct_target(&dir);
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a"), random_bytes(100_000)).unwrap();
    std::fs::write(src.join("sub/b"), b"bee\n").unwrap();
    let dst = dir.join("dst");
    client
        .rsync(&[
            "-a",
            &format!("{}/", src.display()),
            &client.remote("root", dst.to_str().unwrap()),
        ])
        .assert_success("rsync");
    assert_eq!(sha256_file(&src.join("a")), sha256_file(&dst.join("a")));
    assert_eq!(std::fs::read(dst.join("sub/b")).unwrap(), b"bee\n");
}

#[test]
fn interactive_shell_in_tmux() {
    let dir = TestDir::new();
    let (_sshd, client) = direct_target(&dir);
    let t = client.tmux(&dir, "root", &[]);
    // Computed on the remote side, so the match cannot be the typed echo.
    t.send_line("echo marker-$((6*7))");
    t.wait_for("marker-42", Duration::from_secs(30));
    let ssh = t.command_pid().expect("ssh runs in the pane");
    let comm = std::fs::read_to_string(format!("/proc/{ssh}/comm")).unwrap();
    assert_eq!(comm.trim(), "ssh");
    t.send_line("stty size");
    t.wait_for("40 120", Duration::from_secs(30));
    t.resize(100, 30);
    t.send_line("stty size");
    t.wait_for("30 100", Duration::from_secs(30));
    t.send_line("exit 3");
    assert_eq!(t.wait_exit(Duration::from_secs(30)), 3);
}

#[test]
fn second_account_and_password_login() {
    let dir = TestDir::new();
    let key = keygen(dir.path(), "staff", KeyKind::Rsa);
    let sshd = Sshd::start(
        &dir,
        SshdOpts::new()
            .authorize("ghtest", &key.public)
            .password_auth(),
    );
    let client = Client::new(&dir, &key, sshd.port);
    let out = client.ssh("ghtest", &["id -un"]);
    out.assert_success("ssh ghtest");
    assert_eq!(out.stdout_text(), "ghtest\n");
    // root has no authorized key on this target.
    assert_eq!(client.ssh("root", &["true"]).code(), Some(255));

    let password = format!("pw-{}", hex::encode(random_bytes(8)));
    set_password("ghtest", &password);
    let out = client.ssh_password("ghtest", &password, &["echo pw-ok"]);
    out.assert_success("password login");
    assert_eq!(out.stdout_text(), "pw-ok\n");
    let out = client.ssh_password("ghtest", "wrong-password", &["true"]);
    assert_eq!(out.code(), Some(255));
}

#[test]
fn timeouts_kill_instead_of_hanging() {
    let result = std::panic::catch_unwind(|| {
        run_timeout(
            std::process::Command::new("sh").args(["-c", "sleep 30 & sleep 30"]),
            None,
            Duration::from_millis(300),
        )
    });
    let msg = result.expect_err("must time out");
    let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("still running"), "{msg}");
}

#[test]
fn gatehouse_config_merges_extra_tables() {
    // The generated [server] table and a test's own [server] keys must end
    // up in one table (TOML forbids declaring a table twice).
    let mut base: toml::Table =
        toml::from_str("[server]\nlisten = \"a\"\ndatabase = \"x\"\n").unwrap();
    let extra: toml::Table =
        toml::from_str("[server]\ndatabase = \"postgres://u@h/db\"\n[limits]\nlockout_after = 3\n")
            .unwrap();
    gatehouse_merge(&mut base, extra);
    let text = toml::to_string(&base).unwrap();
    let back: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(back["server"]["listen"].as_str(), Some("a"));
    assert_eq!(
        back["server"]["database"].as_str(),
        Some("postgres://u@h/db")
    );
    assert_eq!(back["limits"]["lockout_after"].as_integer(), Some(3));
}

#[test]
fn policy_snippets_are_valid_toml() {
    let dir = TestDir::new();
    let key = keygen(dir.path(), "alice", KeyKind::Ed25519);
    let target = Sshd::start(&dir, SshdOpts::new());
    let text = policy_user("alice", &key, &["support", "dba"])
        + &policy_server(
            "web1",
            &target,
            "global",
            &["root", "ghtest"],
            &["group:support"],
        )
        + "record = \"always\"\n";
    let t: toml::Table = toml::from_str(&text).unwrap();
    let user = &t["user"][0];
    assert_eq!(user["keys"][0].as_str(), Some(key.public.as_str()));
    assert_eq!(user["groups"][1].as_str(), Some("dba"));
    let server = &t["server"][0];
    assert_eq!(server["address"].as_str(), Some(target.address().as_str()));
    assert_eq!(
        server["host_key"].as_str(),
        Some(target.host_key_fingerprint.as_str())
    );
    assert_eq!(server["accounts"][0].as_str(), Some("root"));
    assert_eq!(server["record"].as_str(), Some("always"));
}

#[test]
fn prepared_identity_is_stable() {
    let dir = TestDir::new();
    let identity = Gatehouse::prepare_identity(&dir);
    assert!(identity.public.starts_with("ssh-ed25519 "));
    assert!(
        identity
            .private
            .ends_with("gatehouse/data/identity_ed25519_key")
    );
    // Same key on a second call: targets may have authorized it already.
    assert_eq!(Gatehouse::prepare_identity(&dir).public, identity.public);
}

#[test]
fn generated_config_is_accepted_by_the_binary() {
    let dir = TestDir::new();
    let gh = Gatehouse::configure(
        &dir,
        GatehouseOpts::new()
            .extra_toml("[server]\nnode = \"n1\"\n[limits]\nlockout_after = 3\n")
            .policy("policy.toml", ""),
    );
    let text = std::fs::read_to_string(&gh.config_path).unwrap();
    assert!(text.contains("lockout_after = 3"), "{text}");
    assert!(
        text.contains(&format!("listen = \"127.0.0.1:{}\"", gh.port)),
        "{text}"
    );
    // Whatever the subcommand does today, a config error would name the file.
    let out = gh.cli(&["audit", "verify"]);
    assert!(
        !out.stderr_text().contains("gatehouse.toml"),
        "{}",
        out.stderr_text()
    );

    let bad = Gatehouse::configure(
        &dir,
        GatehouseOpts::new()
            .name("bad")
            .extra_toml("[server]\nbogus_key = 1\n"),
    );
    let out = bad.cli(&["audit", "verify"]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr_text().contains("bogus_key"),
        "{}",
        out.stderr_text()
    );
}

#[test]
fn a_bastion_that_exits_fails_start_with_its_log() {
    let dir = TestDir::new();
    let mut gh = Gatehouse::configure(
        &dir,
        GatehouseOpts::new().extra_toml("[server]\nbogus_key = 1\n"),
    );
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| gh.serve()));
    let msg = result.expect_err("serve must fail");
    let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("did not start listening"), "{msg}");
    assert!(msg.contains("bogus_key"), "{msg}");
    assert!(!gh.is_running());
}

/// A stand-in for `gatehouse serve` (what the contract promises the
/// harness): listens on `server.listen`, writes the identity key pair if
/// missing, exits 0 on SIGTERM.
const FAKE_SERVER: &str = r#"#!/usr/bin/env python3
import os, signal, socket, subprocess, sys, tomllib
config = tomllib.load(open(sys.argv[2], "rb"))["server"]
host, port = config["listen"].rsplit(":", 1)
key = config["identity_key"]
if not os.path.exists(key):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, int(port)))
s.listen()
print("listening", flush=True)
while True:
    signal.pause()
"#;

fn fake_server(dir: &TestDir) -> std::path::PathBuf {
    let p = dir.write("fake-gatehouse", FAKE_SERVER);
    set_mode(&p, 0o755);
    p
}

#[test]
fn bastion_runner_against_a_stand_in_server() {
    let dir = TestDir::new();
    let fake = fake_server(&dir);
    let mut gh = Gatehouse::start_with(&dir, GatehouseOpts::new().binary(&fake));
    assert!(gh.is_running());
    assert!(is_listening(gh.port));
    // The server made its own identity key and the harness read it.
    assert!(
        gh.identity.public.starts_with("ssh-ed25519 "),
        "{:?}",
        gh.identity
    );
    let first_port = gh.port;
    gh.restart();
    assert_eq!(gh.port, first_port);
    assert!(gh.log().contains("listening"));
    assert!(gh.stop(), "exit 0 on SIGTERM");
    assert!(!gh.is_running());
    assert!(!is_listening(first_port));

    // A prepared identity is what the server keeps.
    let dir = TestDir::new();
    let prepared = Gatehouse::prepare_identity(&dir);
    let gh = Gatehouse::start_with(&dir, GatehouseOpts::new().binary(&fake_server(&dir)));
    assert_eq!(gh.identity.public, prepared.public);
}

/// The whole path: stock ssh -> gatehouse -> real sshd target.
#[test]
fn exec_through_the_bastion() {
    let dir = TestDir::new();
    let identity = Gatehouse::prepare_identity(&dir);
    let target = Sshd::start(&dir, SshdOpts::new().authorize("root", &identity.public));
    let alice = keygen(dir.path(), "alice", KeyKind::Ed25519);
    let policy = support_policy(&alice, "web1", &target);
    let mut gh = Gatehouse::start(&dir, "", &policy);
    assert_eq!(
        gh.identity.public, identity.public,
        "server must keep the prepared identity"
    );
    gh.cli(&["policy", "check"]).assert_success("policy check");

    let client = gh.client(&dir, &alice);
    let out = client.ssh("alice+root@web1", &["echo hi; exit 5"]);
    assert_eq!(out.code(), Some(5), "{}", out.stderr_text());
    assert_eq!(out.stdout_text(), "hi\n");

    // Unknown server: refused either during authentication (255) or after
    // it with the contract's one-line reason (1); never a session.
    let out = client.ssh("alice+root@nosuch", &["echo leaked"]);
    assert!(matches!(out.code(), Some(1) | Some(255)), "{out:?}");
    assert!(!out.stdout_text().contains("leaked"));
    if out.code() == Some(1) {
        assert!(
            out.stderr_text().contains("gatehouse: access denied: "),
            "{}",
            out.stderr_text()
        );
    }
    assert!(gh.stop(), "SIGTERM must end the server cleanly");
}
