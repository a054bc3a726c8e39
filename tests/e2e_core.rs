//! The core bastion end to end (issue 2): the stock OpenSSH `ssh` through
//! `gatehouse serve` to a real sshd. Exec semantics (streams, exit status,
//! exit signal, EOF), an interactive PTY shell, several channels on one
//! connection (ControlMaster), every kind of refusal with its audit event,
//! the audit chain, and the admin CLI (`sessions`, `ssh-config`).
//!
//! Scenarios that exercise the database run on SQLite and PostgreSQL.

mod common;
#[path = "support/pg.rs"]
mod pg;
#[path = "common/scenario.rs"]
mod scenario;

use std::process::Command;
use std::time::Duration;

use common::*;
use scenario::*;

const WEB1: &str = "alice+root@web1";

// ------------------------------------------------------------------ exec --

#[test]
fn exec_streams_exit_status_and_stdin_eof() {
    let w = setup(Backend::Sqlite).start();
    let out = w.client.ssh(WEB1, &["echo out; echo err >&2; exit 7"]);
    assert_eq!(out.code(), Some(7), "{}", out.stderr_text());
    assert_eq!(out.stdout_text(), "out\n");
    assert_eq!(out.stderr_text(), "err\n");

    // The default account is the first one listed (root).
    let out = w.client.ssh("alice@web1", &["id -un"]);
    out.assert_success("default account");
    assert_eq!(out.stdout_text(), "root\n");
    let out = w.client.ssh("alice+ghtest@web1", &["id -un"]);
    out.assert_success("second account");
    assert_eq!(out.stdout_text(), "ghtest\n");

    // stdin then EOF: `wc -c` only answers once it saw EOF.
    let data = random_bytes(123_457);
    let out = w.client.ssh_with_stdin(WEB1, &["wc -c"], &data);
    out.assert_success("wc -c");
    assert_eq!(out.stdout_text().trim(), "123457");
    // No stdin at all (/dev/null): EOF at once.
    let out = w.client.ssh(WEB1, &["wc -c"]);
    out.assert_success("wc -c < /dev/null");
    assert_eq!(out.stdout_text().trim(), "0");
}

#[test]
fn exec_exit_signal_matches_openssh() {
    let w = setup(Backend::Sqlite).start();
    let script = "echo before; kill -TERM $$; echo after";
    let through = w.client.ssh(WEB1, &[script]);

    // The same command straight to the same sshd, as OpenSSH reports it.
    let direct_key = w.key("direct");
    w.target.authorize("root", &direct_key.public);
    let direct = Client::new(&w.dir, &direct_key, w.target.port).ssh("root", &[script]);
    assert_eq!(direct.stdout_text(), "before\n", "{direct:?}");

    assert_eq!(through.stdout_text(), direct.stdout_text());
    assert_eq!(
        through.code(),
        direct.code(),
        "exit status through the bastion differs from OpenSSH direct\n\
         through: {through:?}\ndirect: {direct:?}"
    );
    assert_eq!(through.code(), Some(255));
    assert_eq!(through.stderr_text(), direct.stderr_text());
    // 255 is also what ssh says when no status came at all: check, in
    // ssh's own debug log, that an exit-signal TERM arrived.
    let verbose = w.client.ssh_opts(&["-v"], WEB1, &[script]);
    let log = verbose.stderr_text();
    assert!(
        log.contains("rtype exit-signal"),
        "no exit-signal reached the client:\n{log}"
    );

    // The session end records that the command died of a signal.
    let end =
        w.gh.wait_for_event("session.end", Duration::from_secs(10), |_| true);
    assert!(!detail(&end, "exit_status").is_null(), "{end:#}");
}

// ------------------------------------------------------------------- pty --

#[test]
fn pty_shell_prompt_typing_resize_exit() {
    let w = setup(Backend::Sqlite).start();
    let t = w.client.tmux(&w.dir, WEB1, &[]);
    // The remote shell's prompt (root: "#").
    t.wait_for("#", Duration::from_secs(30));
    // Computed remotely, so the match cannot be the typed echo.
    t.send_line("echo marker-$((6*7))");
    t.wait_for("marker-42", Duration::from_secs(30));
    t.send_line("tty; echo tty-done-$((1+1))");
    let pane = t.wait_for("tty-done-2", Duration::from_secs(30));
    assert!(pane.contains("/dev/pts/"), "no PTY on the target:\n{pane}");
    t.send_line("stty size");
    t.wait_for("40 120", Duration::from_secs(30));
    t.resize(100, 30);
    t.send_line("stty size");
    t.wait_for("30 100", Duration::from_secs(30));
    t.send_line("exit 3");
    assert_eq!(t.wait_exit(Duration::from_secs(30)), 3);
    let start = w.gh.wait_for_event("exec", Duration::from_secs(5), |e| {
        detail(e, "kind") == "shell"
    });
    assert_eq!(detail(&start, "pty"), true, "{start:#}");
}

// ------------------------------------------------- several channels ----

/// An OpenSSH client multiplexing over one master connection.
fn mux_client(w: &World) -> Client {
    let cm = w.dir.join("cm-%C").display().to_string();
    Client::with_options(
        &w.dir,
        &w.alice,
        w.gh.port,
        &[
            "ControlMaster auto",
            &format!("ControlPath {cm}"),
            "ControlPersist 30",
        ],
    )
}

/// Stops the master of `client` (`ssh -O exit`).
fn stop_master(client: &Client) {
    let out = run(client
        .command("ssh")
        .args(["-O", "exit"])
        .arg(client.destination(WEB1)));
    assert!(out.status.success(), "{}", out.stderr_text());
}

#[test]
fn controlmaster_multiplexes_channels() {
    let w = setup(Backend::Sqlite).start();
    let client = mux_client(&w);
    // Exit statuses over the master are checked separately (see
    // controlmaster_keeps_exit_status): here, the channels themselves.
    for i in 0..3 {
        let out = client.ssh(WEB1, &[&format!("echo run-$((40+{i}))")]);
        assert_eq!(out.stdout_text(), format!("run-{}\n", 40 + i), "{out:?}");
    }
    // sftp over the same master.
    let up = w.dir.write("mux-up.bin", random_bytes(300_000));
    let remote = w.dir.join("mux-remote.bin");
    let down = w.dir.join("mux-down.bin");
    client
        .sftp_batch(
            WEB1,
            &format!(
                "put {} {r}\nget {r} {}\n",
                up.display(),
                down.display(),
                r = remote.display()
            ),
        )
        .assert_success("sftp over the master");
    assert_eq!(sha256_file(&up), sha256_file(&down));
    assert_eq!(sha256_file(&up), sha256_file(&remote));

    // Two at once on the master: each channel gets its own output.
    let mut a = Background::spawn(client.ssh_command(&[], WEB1, &["sleep 1; echo A-$((1+1))"]));
    let mut b = Background::spawn(client.ssh_command(&[], WEB1, &["sleep 1; echo B-$((2+2))"]));
    let (_, oa, _) = a.wait(Duration::from_secs(60));
    let (_, ob, _) = b.wait(Duration::from_secs(60));
    assert_eq!(String::from_utf8_lossy(&oa), "A-2\n");
    assert_eq!(String::from_utf8_lossy(&ob), "B-4\n");

    // All of it was one connection: one authentication, one session.
    let auths = w.gh.audit_events_of("auth.success");
    assert_eq!(auths.len(), 1, "{auths:#?}");
    let starts = w.gh.audit_events_of("session.start");
    assert_eq!(starts.len(), 1, "{starts:#?}");
    let sid = str_at(&starts[0], "session");
    let execs: Vec<_> =
        w.gh.audit_events_of("exec")
            .into_iter()
            .filter(|e| str_at(e, "session") == sid)
            .collect();
    // 3 commands, 1 sftp subsystem, 2 concurrent commands.
    assert_eq!(execs.len(), 6, "{execs:#?}");
    assert_eq!(
        execs
            .iter()
            .filter(|e| detail(e, "subsystem") == "sftp")
            .count(),
        1,
        "{execs:#?}"
    );

    stop_master(&client);
    w.gh.wait_for_event("session.end", Duration::from_secs(10), |e| {
        str_at(e, "session") == sid
    });
}

/// The OpenSSH master closes a channel as soon as both sides sent EOF, and
/// sshd sends its EOF before the exit status: the status must still reach
/// the mux client. Direct to the same sshd this never fails.
#[test]
fn controlmaster_keeps_exit_status() {
    let w = setup(Backend::Sqlite).start();
    let client = mux_client(&w);
    let mut wrong = Vec::new();
    for i in 0..20 {
        let out = client.ssh(WEB1, &[&format!("echo run-{i}; exit {}", i % 4)]);
        if out.code() != Some(i % 4) || out.stdout_text() != format!("run-{i}\n") {
            wrong.push((i, out.code(), out.stderr_text()));
        }
    }
    stop_master(&client);
    assert!(
        wrong.is_empty(),
        "exit status lost over the master: {wrong:?}"
    );
}

// -------------------------------------------------------------- refusals --

const DENIED: &str = "gatehouse: access denied: ";

/// Exit 1 and exactly one line `gatehouse: access denied: REASON` on
/// stderr, nothing on stdout; returns the line.
fn assert_denied(out: &std::process::Output, what: &str) -> String {
    assert_eq!(out.code(), Some(1), "{what}: {out:?}");
    let err = out.stderr_text();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: one line on stderr: {err:?}");
    assert!(lines[0].starts_with(DENIED), "{what}: {err:?}");
    assert!(lines[0].len() > DENIED.len(), "{what}: empty reason");
    assert!(!out.stdout_text().contains("leaked"), "{what}: {out:?}");
    lines[0].to_string()
}

fn refusals_after_auth(backend: Backend) {
    let mut w = setup(backend).start();
    let bob = w.key("bob");
    let policy_extra = policy_user("bob", &bob, &["other"])
        + &policy_server(
            "secret",
            &w.target,
            "ssh-forwarding",
            &["root"],
            &["group:dba"],
        )
        + &policy_user("dbadmin", &w.key("dbadmin"), &["dba"]);
    let base = std::fs::read_to_string(w.gh.home.join("policies/policy.toml")).unwrap();
    w.gh.write_policy("policy.toml", &(base + &policy_extra));
    w.gh.wait_for_event("policy.reloaded", Duration::from_secs(15), |e| {
        detail(e, "servers") == 2
    });

    // Unknown server and a server alice may not reach: the same words.
    let unknown = w.client.ssh("alice+root@nosuch", &["echo leaked"]);
    let forbidden = w.client.ssh("alice+root@secret", &["echo leaked"]);
    let l1 = assert_denied(&unknown, "unknown server");
    let l2 = assert_denied(&forbidden, "forbidden server");
    assert_eq!(l1, l2, "an unknown and a forbidden server must look alike");
    for server in ["nosuch", "secret"] {
        w.gh.wait_for_event("access.denied", Duration::from_secs(10), |e| {
            str_at(e, "server") == server && str_at(e, "user") == "alice"
        });
    }

    // An account web1 does not offer.
    let out = w.client.ssh("alice+postgres@web1", &["echo leaked"]);
    assert_denied(&out, "account not allowed");
    w.gh.wait_for_event("access.denied", Duration::from_secs(10), |e| {
        str_at(e, "account") == "postgres"
    });

    // A user web1 does not allow.
    let bob_client = w.gh.client(&w.dir, &bob);
    let out = bob_client.ssh("bob@web1", &["echo leaked"]);
    assert_denied(&out, "user not allowed");
    w.gh.wait_for_event("access.denied", Duration::from_secs(10), |e| {
        str_at(e, "user") == "bob" && str_at(e, "server") == "web1"
    });

    // A malformed login name from a known key: authenticated, then
    // explained.
    let out = w.client.ssh("alice+@web1", &["echo leaked"]);
    assert_denied(&out, "alice+@web1");

    // None of them reached the target as a session.
    assert!(w.gh.audit_events_of("session.start").is_empty());
    // Still serving.
    w.client
        .ssh(WEB1, &["true"])
        .assert_success("after refusals");
    assert!(w.gh.is_running());
}

fn refusals_at_authentication(backend: Backend) {
    let w = setup(backend).start();
    let carol = w.key("carol");
    let dave = w.key("dave");
    let extra = policy_user("carol", &carol, &["support"])
        + "expires = \"2020-01-01\"\n"
        + &policy_user("dave", &dave, &["support"])
        + "allow_from = [\"10.9.9.0/24\"]\n";
    let base = std::fs::read_to_string(w.gh.home.join("policies/policy.toml")).unwrap();
    w.gh.write_policy("policy.toml", &(base + &extra));
    w.gh.wait_for_event("policy.reloaded", Duration::from_secs(15), |e| {
        detail(e, "users") == 3
    });

    let check = |who: &str, key: &Key, login: &str| {
        let out = w.gh.client(&w.dir, key).ssh(login, &["echo leaked"]);
        assert_eq!(out.code(), Some(255), "{who}: {out:?}");
        assert!(
            out.stderr_text().contains("Permission denied"),
            "{who}: {}",
            out.stderr_text()
        );
        assert!(out.stdout.is_empty(), "{who}: {out:?}");
    };

    // A key nobody holds, for alice's name.
    let stranger = w.key("stranger");
    check("wrong key", &stranger, WEB1);
    w.gh.wait_for_event("auth.failure", Duration::from_secs(10), |e| {
        str_at(e, "user") == "alice"
    });
    // Expired user.
    check("expired", &carol, "carol+root@web1");
    w.gh.wait_for_event("auth.failure", Duration::from_secs(10), |e| {
        str_at(e, "user") == "carol"
    });
    // Source address not allowed.
    check("allow_from", &dave, "dave+root@web1");
    w.gh.wait_for_event("auth.failure", Duration::from_secs(10), |e| {
        str_at(e, "user") == "dave"
    });
    for who in ["carol", "dave"] {
        assert!(
            !w.gh
                .audit_events_of("auth.success")
                .iter()
                .any(|e| str_at(e, "user") == who),
            "{who} must not authenticate"
        );
    }
    // alice herself is not locked out by one failure.
    w.client
        .ssh(WEB1, &["true"])
        .assert_success("alice after a stranger's failure");
}

fn host_key_mismatch(backend: Backend) {
    let w = setup(backend).start();
    let other = w.key("other-host");
    let wrong = other.fingerprint();
    let policy = policy_user("alice", &w.alice, &["support"])
        + &policy_server(
            "web1",
            &w.target,
            "ssh-forwarding",
            &["root"],
            &["group:support"],
        )
        + &policy_server(
            "web2",
            &w.target,
            "ssh-forwarding",
            &["root"],
            &["group:support"],
        )
        .replace(&w.target.host_key_fingerprint, &wrong);
    w.gh.write_policy("policy.toml", &policy);
    w.gh.wait_for_event("policy.reloaded", Duration::from_secs(15), |e| {
        detail(e, "servers") == 2
    });

    let out = w.client.ssh("alice+root@web2", &["echo leaked"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let err = out.stderr_text();
    assert!(
        err.starts_with("gatehouse: access denied: ") && err.contains("host key"),
        "the refusal should say why: {err:?}"
    );
    let ev =
        w.gh.wait_for_event("hostkey.mismatch", Duration::from_secs(10), |_| true);
    assert_eq!(str_at(&ev, "server"), "web2", "{ev:#}");
    assert_eq!(detail(&ev, "expected"), wrong.as_str(), "{ev:#}");
    assert_eq!(
        detail(&ev, "presented"),
        w.target.host_key_fingerprint.as_str(),
        "{ev:#}"
    );
    // The correctly pinned name on the same target still works.
    w.client.ssh(WEB1, &["true"]).assert_success("web1");
}

fn malformed_login_names(backend: Backend) {
    let mut w = setup(backend).start();
    // Through OpenSSH: a long name, an empty account, odd characters.
    let long = format!("alice+{}@web1", "a".repeat(5000));
    for login in [
        "alice+@web1",
        "alice@web1@x",
        "Alice@web1",
        "alice+-oProxyCommand=x@web1",
        long.as_str(),
    ] {
        let out = w.client.ssh(login, &["echo leaked"]);
        assert!(
            matches!(out.code(), Some(1) | Some(255)),
            "{login:.40}: {out:?}"
        );
        assert!(out.stdout.is_empty(), "{login:.40}: {out:?}");
        if out.code() == Some(1) {
            assert!(out.stderr_text().starts_with(DENIED), "{out:?}");
        }
    }
    // Each refusal is an audit event: after authentication for a known
    // staff name with a bad tail, at authentication for the rest.
    w.gh.wait_for_event("access.denied", Duration::from_secs(10), |e| {
        str_at(e, "user") == "alice" && detail(e, "code") == "KO_BAD_LOGIN"
    });
    let bad =
        w.gh.wait_for_event("auth.failure", Duration::from_secs(10), |e| {
            detail(e, "code") == "BAD_LOGIN"
        });
    assert!(
        detail(&bad, "login")
            .as_str()
            .is_some_and(|l| l.len() <= 400),
        "the refused name is kept bounded: {bad:#}"
    );
    // Through a raw SSH client: names OpenSSH would not send as they are.
    let names = [
        "alice\u{1}\u{7f}@web1".to_string(),
        "alice+root\r\n@web1".to_string(),
        "alice\0@web1".to_string(),
        "\u{1b}[31malice@web1".to_string(),
        "ä".repeat(20_000),
        String::new(),
    ];
    let port = w.gh.port;
    let key_path = w.alice.private.clone();
    for name in names {
        let shown = name.chars().take(30).collect::<String>();
        // Either refused at authentication, or authenticated as alice and
        // then refused with the explanation: never a session.
        match runtime().block_on(raw_login(port, &key_path, &name)) {
            RawLogin::Refused => {}
            RawLogin::Session {
                exit,
                stdout,
                stderr,
            } => {
                assert_eq!(exit, Some(1), "{shown:?}");
                assert!(stdout.is_empty(), "{shown:?}: {stdout:?}");
                let err = String::from_utf8_lossy(&stderr);
                assert!(err.starts_with(DENIED), "{shown:?}: {err:?}");
            }
        }
    }
    assert!(w.gh.is_running(), "the bastion died on a bad login name");
    assert!(!w.gh.log().contains("panicked"), "{}", w.gh.log());
    // The events keep the name printable and bounded.
    for ev in w.gh.audit_events_of("auth.failure") {
        let text = ev.to_string();
        assert!(text.len() < 4000, "unbounded audit event: {text:.200}");
        assert!(!text.contains('\u{1b}'), "raw escape in audit: {text}");
    }
    w.client
        .ssh(WEB1, &["echo still"])
        .assert_success("after bad names");
}

/// What a raw login attempt got.
#[derive(Debug)]
enum RawLogin {
    /// Refused at authentication (or the connection failed).
    Refused,
    /// Authenticated; then `echo leaked` was tried on a session channel.
    Session {
        exit: Option<u32>,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    },
}

/// Tries a public-key login with `name` over a raw russh client (which
/// sends any name as it is) and, if accepted, an exec of `echo leaked`.
async fn raw_login(port: u16, key: &std::path::Path, name: &str) -> RawLogin {
    use russh::client;
    let key = russh::keys::load_secret_key(key, None).expect("alice's key");
    let config = std::sync::Arc::new(client::Config::default());
    let Ok(mut h) = client::connect(config, ("127.0.0.1", port), TrustAnyHostKey).await else {
        return RawLogin::Refused;
    };
    let r = h
        .authenticate_publickey(
            name,
            russh::keys::PrivateKeyWithHashAlg::new(std::sync::Arc::new(key), None),
        )
        .await;
    if !matches!(r, Ok(ref a) if a.success()) {
        return RawLogin::Refused;
    }
    let mut ch = h.channel_open_session().await.expect("session channel");
    ch.exec(true, "echo leaked").await.expect("exec request");
    let (mut exit, mut stdout, mut stderr) = (None, Vec::new(), Vec::new());
    let read = async {
        while let Some(msg) = ch.wait().await {
            match msg {
                russh::ChannelMsg::Data { data } => stdout.extend_from_slice(&data),
                russh::ChannelMsg::ExtendedData { data, .. } => stderr.extend_from_slice(&data),
                russh::ChannelMsg::ExitStatus { exit_status } => exit = Some(exit_status),
                russh::ChannelMsg::Close => break,
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("the refusal must come promptly");
    RawLogin::Session {
        exit,
        stdout,
        stderr,
    }
}

on_both_backends!(
    refusals_after_auth,
    refusals_at_authentication,
    host_key_mismatch,
    malformed_login_names
);

// ----------------------------------------------------------------- audit --

fn audit_trail_and_tampering(backend: Backend) {
    let w = setup(backend).start();
    let data = random_bytes(10_000);
    let out = w
        .client
        .ssh_with_stdin(WEB1, &["cat >/dev/null; printf 12345; exit 4"], &data);
    assert_eq!(out.code(), Some(4), "{out:?}");
    assert_eq!(out.stdout_text(), "12345");
    let sid = w.session_id(|e| str_at(e, "user") == "alice");

    let auth =
        w.gh.wait_for_event("auth.success", Duration::from_secs(5), |e| {
            str_at(e, "session") == sid
        });
    assert_eq!(str_at(&auth, "user"), "alice");
    assert_eq!(str_at(&auth, "source"), "127.0.0.1");
    assert!(!str_at(&auth, "ts").is_empty());

    let start =
        w.gh.wait_for_event("session.start", Duration::from_secs(5), |e| {
            str_at(e, "session") == sid
        });
    assert_eq!(str_at(&start, "server"), "web1");
    assert_eq!(str_at(&start, "account"), "root");
    assert_eq!(detail(&start, "mode"), "ssh-forwarding");

    let exec = w.gh.wait_for_event("exec", Duration::from_secs(5), |e| {
        str_at(e, "session") == sid
    });
    assert_eq!(
        detail(&exec, "command"),
        "cat >/dev/null; printf 12345; exit 4"
    );

    let end =
        w.gh.wait_for_event("session.end", Duration::from_secs(10), |e| {
            str_at(e, "session") == sid
        });
    assert_eq!(detail(&end, "exit_status"), 4, "{end:#}");
    assert_eq!(detail(&end, "bytes_up"), 10_000, "{end:#}");
    assert_eq!(detail(&end, "bytes_down"), 5, "{end:#}");

    // Every event carries the contract's fields.
    for ev in w.gh.audit_events() {
        for key in [
            "ts", "kind", "user", "server", "account", "session", "source", "detail",
        ] {
            assert!(ev.get(key).is_some(), "{key} missing in {ev}");
        }
    }

    let verify = w.gh.cli(&["audit", "verify"]);
    verify.assert_success("audit verify on an intact chain");

    // Tamper with the exec event as someone with database access would.
    let id = exec["id"].as_i64().expect("exported events carry their id");
    let n = w.sql(&format!(
        "UPDATE audit_events SET detail = '{{\"command\":\"true\"}}' WHERE id = {id}"
    ));
    assert_eq!(n, 1);
    let verify = w.gh.cli(&["audit", "verify"]);
    assert_eq!(verify.code(), Some(1), "{verify:?}");
    let err = verify.stderr_text();
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        err.contains(&format!("event id {id}")),
        "verify must name the changed event {id}: {err}"
    );
}

on_both_backends!(audit_trail_and_tampering);

// ------------------------------------------------------------------- CLI --

fn sessions_list_and_kill(backend: Backend) {
    let w = setup(backend).start();
    let out_file = w.dir.join("held.out");
    let mut held = Background::bash(&format!(
        "{} 'echo up; sleep 30' > {}",
        ssh_line(&w.client, WEB1),
        shell_quote(&out_file.display().to_string())
    ));
    let sid = w.session_id(|e| str_at(e, "server") == "web1");
    assert!(
        wait_until(Duration::from_secs(15), || std::fs::read_to_string(
            &out_file
        )
        .is_ok_and(|t| t == "up\n")),
        "the command never started"
    );

    let out = w.gh.cli(&["sessions", "list", "--json"]);
    out.assert_success("sessions list --json");
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let live = list
        .as_array()
        .expect("a JSON array")
        .iter()
        .find(|s| str_at(s, "id") == sid)
        .unwrap_or_else(|| panic!("session {sid} not listed: {list:#}"))
        .clone();
    assert_eq!(str_at(&live, "user"), "alice", "{live:#}");
    assert_eq!(str_at(&live, "server"), "web1", "{live:#}");
    assert_eq!(str_at(&live, "account"), "root", "{live:#}");

    let out =
        w.gh.cli(&["sessions", "kill", &sid, "--reason", "CLI-KILL-REASON 5"]);
    out.assert_success("sessions kill");
    let (code, _, stderr) = held.wait(Duration::from_secs(15));
    let stderr = String::from_utf8_lossy(&stderr);
    assert_ne!(code, 0, "a killed session must not look successful");
    assert!(
        stderr.contains("gatehouse: ")
            && stderr.contains("administrator")
            && stderr.contains("CLI-KILL-REASON 5"),
        "the client should be told why: {stderr:?}"
    );
    w.gh.wait_for_event("session.killed", Duration::from_secs(5), |e| {
        str_at(e, "session") == sid
    });
    w.gh.wait_for_event("session.end", Duration::from_secs(10), |e| {
        str_at(e, "session") == sid
    });
    let out = w.gh.cli(&["sessions", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(
        !list
            .as_array()
            .unwrap()
            .iter()
            .any(|s| str_at(s, "id") == sid),
        "killed session still listed: {list:#}"
    );
    // Killing it again (or a session that never existed) fails cleanly.
    let again = w.gh.cli(&["sessions", "kill", &sid]);
    assert_eq!(again.code(), Some(1), "{again:?}");
    assert!(again.stderr_text().starts_with("error: "));
}

on_both_backends!(sessions_list_and_kill);

#[test]
fn ssh_config_output_works_with_stock_ssh() {
    let w = setup(Backend::Sqlite).start();
    let out = w.gh.cli(&["ssh-config", "alice"]);
    out.assert_success("ssh-config alice");
    let generated = out.stdout_text();
    assert!(generated.contains("Host web1"), "{generated}");
    // The generated blocks come first (first value wins in ssh_config);
    // the key and the test's host-key settings apply to every host.
    let config = format!(
        "{generated}\nHost *\n  IdentityFile {}\n  IdentitiesOnly yes\n  IdentityAgent none\n  \
         BatchMode yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  \
         GlobalKnownHostsFile /dev/null\n  LogLevel ERROR\n  ConnectTimeout 10\n",
        w.alice.private.display()
    );
    let path = w.dir.write("generated_ssh_config", config);
    let out = run(Command::new("ssh")
        .arg("-F")
        .arg(&path)
        .args(["web1", "echo ok; id -un"])
        .env_remove("SSH_AUTH_SOCK"));
    out.assert_success("ssh -F generated web1");
    assert_eq!(out.stdout_text(), "ok\nroot\n");
    // scp with the generated name too.
    let src = w.dir.write("cfg-src.txt", b"via ssh-config\n");
    let dst = w.dir.join("cfg-dst.txt");
    let out = run(Command::new("scp")
        .arg("-F")
        .arg(&path)
        .arg(&src)
        .arg(format!("web1:{}", dst.display()))
        .env_remove("SSH_AUTH_SOCK"));
    out.assert_success("scp -F generated");
    assert_eq!(std::fs::read(&dst).unwrap(), b"via ssh-config\n");
    // Unknown users are an error, not an empty config.
    let out = w.gh.cli(&["ssh-config", "nobody"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
}
