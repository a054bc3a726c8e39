//! Issue 12, items 6 and 7, end to end: `allow_commands` servers refuse
//! shells and SFTP; reports are 0640 in a 0750 folder and show a refused
//! session as not recorded; bidi controls from a peer are escaped in the
//! audit; `unlock` names the real user, not `LOGNAME`; command-mode
//! replies; `request` gives one answer for unknown and not-requestable
//! servers and refuses an over-long reason; the policy watcher rejects an
//! invalid edit once and leaves an unchanged folder alone; a blocked pasted
//! multi-line input's notice stays on screen. On SQLite: none of this depends on the database.

mod common;
#[macro_use]
#[path = "common/access.rs"]
mod access;
#[path = "support/pg.rs"]
mod pg;
#[path = "common/scenario.rs"]
mod scenario;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use access::{assert_denied, json_of};
use common::*;
use scenario::*;
use serde_json::Value;

const WEB1: &str = "alice+root@web1";

fn today() -> String {
    let out = run(std::process::Command::new("date").args(["-u", "+%F"]));
    out.assert_success("date");
    out.stdout_text().trim().to_string()
}

fn mode_of(p: &std::path::Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// web1 records everything and runs only `echo` commands.
fn allow_listed() -> World {
    setup(Backend::Sqlite)
        .web1("record = \"always\"\nallow_commands = [\"echo *\"]")
        .start()
}

#[test]
fn allow_commands_refuse_shells_and_sftp_and_the_report_says_so() {
    let w = allow_listed();
    let out = w.client.ssh(WEB1, &["echo listed-ok"]);
    out.assert_success("an allowed command");
    assert_eq!(out.stdout_text(), "listed-ok\n");

    // A shell would run anything: refused, with the contract's line.
    let out = w.client.ssh(WEB1, &[]);
    assert_denied(&out, "a shell is not allowed");
    let out = w.client.ssh_opts(&["-tt"], WEB1, &[]);
    assert_ne!(out.code(), Some(0), "{out:?}");
    assert!(
        out.stderr_text()
            .contains("gatehouse: access denied: a shell")
            || out
                .stdout_text()
                .contains("gatehouse: access denied: a shell"),
        "{out:?}"
    );
    // So would SFTP.
    let out = w.client.sftp_batch(WEB1, "ls /\n");
    assert_ne!(out.code(), Some(0), "{out:?}");
    let blocked = w.gh.audit_events_of("command.blocked");
    let kinds: Vec<&str> = blocked
        .iter()
        .map(|e| detail(e, "kind").as_str().unwrap_or_default())
        .collect();
    assert!(kinds.contains(&"shell"), "{blocked:#?}");
    assert!(kinds.contains(&"subsystem"), "{blocked:#?}");
    assert!(
        blocked
            .iter()
            .all(|e| str_at(e, "user") == "alice" && str_at(e, "server") == "web1"),
        "{blocked:#?}"
    );

    // The daily report: the refused sessions have no cast and are not
    // shown as recorded; the allowed command's is. Files 0640, folder 0750.
    let refused: Vec<String> = blocked
        .iter()
        .map(|e| str_at(e, "session").to_string())
        .collect();
    let date = today();
    w.gh.cli(&["report", "daily", "--date", &date])
        .assert_success("report daily");
    let reports = w.gh.home.join("reports");
    assert_eq!(mode_of(&reports), 0o750);
    for ext in ["html", "md", "json", "csv"] {
        assert_eq!(
            mode_of(&reports.join(format!("{date}.{ext}"))),
            0o640,
            "{ext}"
        );
    }
    let json: Value =
        serde_json::from_slice(&std::fs::read(reports.join(format!("{date}.json"))).unwrap())
            .unwrap();
    let sessions = json["sessions"].as_array().expect("sessions");
    let mut recorded = 0;
    for s in sessions {
        let id = s["id"].as_str().unwrap_or_default();
        if refused.iter().any(|r| r == id) {
            assert_eq!(s["recorded"], false, "{s:#}");
            assert_eq!(s["recording_path"], Value::Null, "{s:#}");
        } else if s["recorded"] == true {
            let path = s["recording_path"].as_str().expect("a path");
            assert!(w.recordings().join(path).is_file(), "{s:#}");
            recorded += 1;
        }
    }
    assert_eq!(recorded, 1, "the echo session: {sessions:#?}");
    let html = std::fs::read_to_string(reports.join(format!("{date}.html"))).unwrap();
    for id in &refused {
        assert!(!html.contains(&format!("{id}.cast")), "link to {id}.cast");
    }
}

#[test]
fn bidi_controls_from_the_peer_are_escaped_in_the_audit() {
    let w = allow_listed();
    // U+202E makes "gpj.exe" read as "exe.jpg"; U+2066 opens an isolate.
    let hostile = "echo safe\u{202e}gpj.exe\u{2066}x";
    let out = w.client.ssh(WEB1, &[hostile]);
    out.assert_success("the command itself runs unchanged");
    assert_eq!(out.stdout_text(), "safe\u{202e}gpj.exe\u{2066}x\n");
    let ev = w.gh.wait_for_event("exec", Duration::from_secs(10), |e| {
        detail(e, "command")
            .as_str()
            .is_some_and(|c| c.starts_with("echo safe"))
    });
    assert_eq!(
        detail(&ev, "command"),
        "echo safe<U+202E>gpj.exe<U+2066>x",
        "{ev:#}"
    );
    let export = w.gh.cli(&["audit", "export"]);
    export.assert_success("audit export");
    let text = export.stdout_text();
    for c in ['\u{202e}', '\u{2066}'] {
        assert!(!text.contains(c), "{c:?} in the export");
    }
    w.gh.cli(&["audit", "verify"])
        .assert_success("the chain holds the escaped text");
}

#[test]
fn unlock_names_the_real_user_not_logname() {
    let w = setup(Backend::Sqlite).start();
    let out = run(w
        .gh
        .cli_command(&["unlock", "alice"])
        .env("LOGNAME", "mallory")
        .env("USER", "mallory")
        .env("SUDO_USER", "mallory"));
    out.assert_success("unlock");
    let me = run(std::process::Command::new("id").arg("-un"));
    me.assert_success("id -un");
    let ev =
        w.gh.wait_for_event("unlock", Duration::from_secs(5), |_| true);
    assert_eq!(
        detail(&ev, "requested_by"),
        me.stdout_text().trim(),
        "{ev:#}"
    );
}

/// alice and bob are approvers in group support; carol is in no group.
/// `ondb` is on-request for group support, `hidden` on-request for carol
/// only. Field order is drop order: the bastion first, the folder last.
struct Grants {
    gh: Gatehouse,
    alice: Client,
    bob: Client,
    _target: Sshd,
    _dir: TestDir,
}

fn grants_world() -> Grants {
    let dir = TestDir::new();
    let identity = Gatehouse::prepare_identity(&dir);
    let target = Sshd::start(&dir, SshdOpts::new().authorize("root", &identity.public));
    let alice = keygen(dir.path(), "alice", KeyKind::Ed25519);
    let bob = keygen(dir.path(), "bob", KeyKind::Ed25519);
    let carol = keygen(dir.path(), "carol", KeyKind::Ed25519);
    let policy = policy_user("alice", &alice, &["support"])
        + "roles = [\"approver\"]\n"
        + &policy_user("bob", &bob, &["support"])
        + "roles = [\"approver\"]\n"
        + &policy_user("carol", &carol, &[])
        + &policy_server("ondb", &target, "on-request", &["root"], &["group:support"])
        + &policy_server("hidden", &target, "on-request", &["root"], &["user:carol"]);
    let gh = Gatehouse::start_with(&dir, GatehouseOpts::new().policy("policy.toml", &policy));
    Grants {
        alice: gh.client(&dir, &alice),
        bob: gh.client(&dir, &bob),
        gh,
        _target: target,
        _dir: dir,
    }
}

#[test]
fn request_answers_alike_for_unknown_and_not_requestable_servers() {
    let g = grants_world();
    let ask = |server: &str, extra: &[&str]| {
        let mut args = vec!["request", server];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--for", "1h", "--reason", "T-1"]);
        g.bob.ssh("bob", &args)
    };
    for extra in [&[][..], &["--json"][..], &["--account", "nobody"][..]] {
        let unknown = ask("nosuch", extra);
        let hidden = ask("hidden", extra);
        assert_eq!(unknown.code(), Some(1), "{unknown:?}");
        assert_eq!(hidden.code(), unknown.code(), "{extra:?}");
        assert_eq!(hidden.stdout, unknown.stdout, "{extra:?}");
        assert_eq!(hidden.stderr_text(), unknown.stderr_text(), "{extra:?}");
        assert!(
            unknown
                .stderr_text()
                .contains("no such server, or no grant can be requested for it"),
            "{}",
            unknown.stderr_text()
        );
    }
    // The same rule on the bastion host's CLI.
    let cli = |server: &str| {
        g.gh.cli(&[
            "grant", "request", "--user", "bob", server, "--for", "1h", "--reason", "T-2",
        ])
    };
    let (unknown, hidden) = (cli("nosuch"), cli("hidden"));
    assert_eq!(unknown.code(), Some(1), "{unknown:?}");
    assert_eq!(hidden.code(), Some(1), "{hidden:?}");
    assert_eq!(hidden.stderr_text(), unknown.stderr_text());
    assert!(g.gh.audit_events_of("grant.requested").is_empty());
    // Where bob is allowed, the request goes through.
    let out = ask("ondb", &[]);
    out.assert_success("request ondb");
}

#[test]
fn an_over_long_reason_is_refused_not_cut() {
    let g = grants_world();
    let reason = "x".repeat(64 * 1024) + " TICKET-4711";
    // One word for command mode's parser (ssh joins its arguments).
    let quoted = format!("'{reason}'");
    let out = g.bob.ssh(
        "bob",
        &["request", "ondb", "--for", "1h", "--reason", &quoted],
    );
    assert_eq!(out.code(), Some(1), "{:?}", out.code());
    assert!(
        out.stderr_text().contains("at most 500"),
        "{}",
        out.stderr_text()
    );
    assert!(g.gh.audit_events_of("grant.requested").is_empty());
    let out = g.gh.cli(&[
        "grant", "request", "--user", "bob", "ondb", "--for", "1h", "--reason", &reason,
    ]);
    assert_eq!(out.code(), Some(1), "{:?}", out.code());
    assert!(out.stderr_text().contains("at most 500"));
    // Within the limit, kept whole.
    let reason = "y".repeat(488) + " TICKET-4711";
    let quoted = format!("'{reason}'");
    let out = g.bob.ssh(
        "bob",
        &[
            "request", "ondb", "--for", "1h", "--reason", &quoted, "--json",
        ],
    );
    let grant = json_of(&out, "request with a 500-character reason");
    assert_eq!(grant["reason"], reason.as_str());
}

#[test]
fn command_mode_replies_say_approved_denied_revoked() {
    let g = grants_world();
    let request = || {
        let out = g.bob.ssh(
            "bob",
            &[
                "request", "ondb", "--for", "1h", "--reason", "T-3", "--json",
            ],
        );
        json_of(&out, "request")["id"].as_i64().expect("id")
    };
    let alice = |args: &[&str]| {
        let out = g.alice.ssh("alice", args);
        out.assert_success(&args.join(" "));
        out.stdout_text()
    };
    let first = request();
    let text = alice(&["approve", &first.to_string()]);
    assert!(
        text.starts_with(&format!("grant #{first} approved\n")),
        "{text}"
    );
    let second = request();
    let text = alice(&["deny", &second.to_string(), "--reason", "later"]);
    assert!(
        text.starts_with(&format!("grant #{second} denied\n")),
        "{text}"
    );
    let text = alice(&["revoke", &first.to_string()]);
    assert!(
        text.starts_with(&format!("grant #{first} revoked\n")),
        "{text}"
    );
    let out = g.bob.ssh(
        "bob",
        &["request", "ondb", "--for", "1h", "--reason", "T-4"],
    );
    out.assert_success("request");
    assert!(
        out.stdout_text()
            .contains(" requested: waiting for a second person's approval"),
        "{}",
        out.stdout_text()
    );
}

#[test]
fn an_invalid_policy_edit_is_rejected_once() {
    let w = setup(Backend::Sqlite).start();
    w.gh.write_policy(
        "broken.toml",
        "[[server]]\nname = \"web3\"\nbogus_key = 1\n",
    );
    w.gh.wait_for_event("policy.rejected", Duration::from_secs(15), |_| true);
    // The bad file stays: nothing new to say about it.
    std::thread::sleep(Duration::from_secs(5));
    let rejected = w.gh.audit_events_of("policy.rejected");
    assert_eq!(rejected.len(), 1, "{rejected:#?}");

    // A different bad edit is news.
    w.gh.write_policy(
        "broken.toml",
        "[[server]]\nname = \"web3\"\nother_key = 1\n",
    );
    wait_until(Duration::from_secs(15), || {
        w.gh.audit_events_of("policy.rejected").len() == 2
    });
    assert_eq!(w.gh.audit_events_of("policy.rejected").len(), 2);

    // Undone: one reload (back to the policy serving), then quiet.
    w.gh.remove_policy("broken.toml");
    let before = w.gh.audit_events_of("policy.reloaded").len();
    let ok = wait_until(Duration::from_secs(15), || {
        w.gh.audit_events_of("policy.reloaded").len() > before
    });
    assert!(ok, "no policy.reloaded after the fix");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(w.gh.audit_events_of("policy.reloaded").len(), before + 1);
    assert_eq!(w.gh.audit_events_of("policy.rejected").len(), 2);
}

#[test]
fn an_unchanged_policy_is_not_read_again() {
    use notify::event::AccessKind;
    use notify::{EventKind, RecursiveMode, Watcher};
    let w = setup(Backend::Sqlite).start();
    w.client
        .ssh(WEB1, &["true"])
        .assert_success("the bastion serves");
    // Watch the policy files being opened, by anyone: only the bastion
    // reads them. It used to re-read them about three times a second,
    // reacting to the events of its own reads.
    let (tx, rx) = std::sync::mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |r: notify::Result<notify::Event>| {
        if let Ok(e) = r {
            let _ = tx.send(e);
        }
    })
    .expect("watcher");
    watcher
        .watch(&w.gh.home.join("policies"), RecursiveMode::Recursive)
        .expect("watch the policies folder");
    std::thread::sleep(Duration::from_secs(3));
    let opens: Vec<_> = rx
        .try_iter()
        .filter(|e| matches!(e.kind, EventKind::Access(AccessKind::Open(_))))
        .collect();
    // At most the start-up catch-up read, if it came this late.
    assert!(opens.len() <= 1, "{opens:#?}");
}

#[test]
fn a_blocked_paste_is_refused_with_a_notice_that_stays_on_screen() {
    let w = setup(Backend::Sqlite)
        .web1("deny_commands = [\"rm -rf /*\"]")
        .start();
    let tmux = w.client.tmux(&w.dir, WEB1, &[]);
    tmux.wait_for("#", Duration::from_secs(15));
    tmux.send_line("echo typed-$((6*7))");
    tmux.wait_for("typed-42", Duration::from_secs(10));
    // A bracketed paste of several lines: the shell holds it all in its
    // line, shown on several rows, and runs it at Enter. Refused whole.
    tmux.paste("echo pasted-$((1+1))\nrm -rf /tmp/nothing-here\necho pasted-$((2+2))");
    tmux.wait_for("nothing-here", Duration::from_secs(10));
    tmux.send_keys(&["Enter"]);
    let ev =
        w.gh.wait_for_event("command.blocked", Duration::from_secs(10), |e| {
            detail(e, "interactive") == true
        });
    assert!(
        detail(&ev, "command")
            .as_str()
            .is_some_and(|c| c.contains("rm -rf /tmp/nothing-here")),
        "{ev:#}"
    );
    // The shell's redraw has come and gone by the next command's output.
    tmux.send_line("echo after-$((2*3))");
    let screen = tmux.wait_for("after-6", Duration::from_secs(10));
    assert!(
        screen.contains("gatehouse: command blocked"),
        "the notice was wiped:\n{screen}"
    );
    assert!(
        !screen.contains("pasted-2"),
        "part of the paste ran:\n{screen}"
    );
    assert!(
        !screen.contains("pasted-4"),
        "part of the paste ran:\n{screen}"
    );
    tmux.send_line("exit 3");
    assert_eq!(tmux.wait_exit(Duration::from_secs(15)), 3);
}
