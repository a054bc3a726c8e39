//! The console as a reviewer's workbench (issue 21), end to end: a real
//! `serve` with `[web] listen`, a real sshd target, stock OpenSSH sessions
//! of every kind (an exec, a blocked command, command-mode calls, a
//! refused login, a live session under a grant), grants in every state,
//! then headless Chromium (tests/web/workbench.mjs) through Today, the
//! sessions list, a session's timeline, a recording, an error page and
//! the grants page at 1280x720 and 390x844; the revoke it presses must
//! cut the live ssh session, which is checked here from the outside.
//!
//! Needs `node`, `chromium` and `tests/web/node_modules` (scripts/setup);
//! `GATEHOUSE_SKIP_BROWSER=1` skips loudly where chromium cannot be had.

mod common;
#[path = "support/pg.rs"]
mod pg;
#[path = "common/scenario.rs"]
mod scenario;

use std::process::Command;
use std::time::Duration;

use common::*;
use scenario::*;

fn link(client: &Client, staff: &str) -> String {
    let out = client.ssh(staff, &["web", "--json"]);
    out.assert_success(&format!("ssh {staff}@bastion web"));
    let v: serde_json::Value = serde_json::from_str(out.stdout_text().trim())
        .unwrap_or_else(|e| panic!("web --json: {e}: {}", out.stdout_text()));
    v["url"].as_str().expect("url").to_string()
}

fn role_user(name: &str, key: &Key, roles: &[&str]) -> String {
    policy_user(name, key, &["support"]) + &format!("roles = {}\n", toml_list(roles))
}

/// `ssh USER@BASTION request SERVER ...` with the stock client: the id.
fn request(client: &Client, user: &str, server: &str, reason: &str) -> i64 {
    let out = client.ssh(
        user,
        &[
            "request", server, "--for", "1h", "--reason", reason, "--json",
        ],
    );
    out.assert_success(&format!("request {server}"));
    let v: serde_json::Value = serde_json::from_str(out.stdout_text().trim())
        .unwrap_or_else(|e| panic!("request --json: {e}: {}", out.stdout_text()));
    v["id"]
        .as_i64()
        .or_else(|| v["grant"]["id"].as_i64())
        .unwrap_or_else(|| panic!("grant id in {v}"))
}

#[test]
fn workbench_in_a_real_browser() {
    if !browser_available("e2e_workbench", &[]) {
        return;
    }
    let keys = TestDir::new();
    let carol = keygen(keys.path(), "carol", KeyKind::Ed25519); // auditor
    let dave = keygen(keys.path(), "dave", KeyKind::Ed25519); // approver
    let web_port = free_port();
    let w = setup(Backend::Sqlite)
        .web1("record = \"always\"\ndeny_commands = [\"shutdown*\"]")
        .server("db1", &["root"], "require_grant = true\nrecord = \"never\"")
        .toml(&format!("[web]\nlisten = \"127.0.0.1:{web_port}\"\n"))
        .policy(&role_user("carol", &carol, &["auditor"]))
        .policy(&role_user("dave", &dave, &["approver"]))
        .start();
    let dave_c = w.gh.client(&w.dir, &dave);
    let carol_c = w.gh.client(&w.dir, &carol);
    assert!(
        wait_until(Duration::from_secs(10), || is_listening(web_port)),
        "console not listening; log:\n{}",
        w.gh.log()
    );

    // An exec (recorded), then a blocked command.
    w.client
        .ssh("alice+root@web1", &["echo WORKBENCH-EXEC"])
        .assert_success("exec");
    let exec_session = w.session_id(|e| str_at(e, "server") == "web1");
    let out = w
        .client
        .ssh("alice+root@web1", &["shutdown WORKBENCH-BLOCK"]);
    assert_ne!(
        out.code(),
        Some(0),
        "the blocked command was refused: {out:?}"
    );
    let blocked =
        w.gh.wait_for_event("command.blocked", Duration::from_secs(15), |e| {
            str_at(e, "user") == "alice"
        });
    let blocked_session = str_at(&blocked, "session").to_string();
    // A refused login: db1 needs a grant.
    let out = w.client.ssh("alice+root@db1", &["true"]);
    assert_ne!(out.code(), Some(0), "db1 without a grant: {out:?}");
    let denied =
        w.gh.wait_for_event("access.denied", Duration::from_secs(15), |e| {
            str_at(e, "server") == "db1"
        });
    let refused_session = str_at(&denied, "session").to_string();
    let refused_code = denied["detail"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("code in {denied}"))
        .to_string();
    // Grants (command mode calls, all of them): one approved and used by
    // a live session, one pending, one denied with a note.
    let grant = request(&w.client, "alice", "db1", "TICKET-WB-7");
    dave_c
        .ssh("dave", &["approve", &grant.to_string()])
        .assert_success("approve");
    let denied_grant = request(&w.client, "alice", "db1", "WB-SECOND");
    dave_c
        .ssh(
            "dave",
            &[
                "deny",
                &denied_grant.to_string(),
                "--reason",
                "WB-DENY-NOTE",
            ],
        )
        .assert_success("deny");
    let pending_grant = request(&w.client, "alice", "db1", "WB-PENDING");

    let (live_out, live_err) = (w.dir.join("live.out"), w.dir.join("live.err"));
    let mut live_cmd =
        w.client
            .ssh_command(&["-tt"], "alice+root@db1", &["echo WB-LIVE; sleep 600"]);
    live_cmd.stdin(std::process::Stdio::piped());
    let mut live = ChildGuard::spawn("ssh", &mut live_cmd, Some(&live_out), Some(&live_err));
    let live_session = w.session_id(|e| str_at(e, "server") == "db1");

    // What Today must count, from the outside.
    let recs = w.gh.cli(&["recordings", "list", "--json"]);
    recs.assert_success("recordings list");
    let recs: serde_json::Value = serde_json::from_str(recs.stdout_text().trim()).unwrap();
    let unreviewed = recs
        .as_array()
        .map(|a| a.iter().filter(|r| r["state"] == "unreviewed").count())
        .unwrap_or(0);
    assert!(unreviewed >= 1, "the exec was recorded: {recs}");

    // Sign-in links first: asking for one is a login (carol's first from
    // this address: suspicious), which the report below must count.
    let (carol_link, dave_link) = (link(&carol_c, "carol"), link(&dave_c, "dave"));
    // Today's suspicious count is the daily report's on today so far:
    // what `gatehouse report daily` says for today now.
    let today = {
        let d = time::OffsetDateTime::now_utc().date();
        format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
    };
    let reports = w.dir.join("today-report");
    w.gh.cli(&[
        "report",
        "daily",
        "--date",
        &today,
        "--format",
        "json",
        "--out",
        reports.to_str().unwrap(),
    ])
    .assert_success("report daily for today");
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(reports.join(format!("{today}.json"))).unwrap(),
    )
    .unwrap();
    let suspicious = report["summary"]["suspicious"]
        .as_u64()
        .unwrap_or_else(|| panic!("summary.suspicious in {report}"));
    assert!(
        suspicious >= 1,
        "the blocked command is suspicious: {report}"
    );

    let shots = w.dir.join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let config = serde_json::json!({
        "chromium": CHROMIUM,
        "base": format!("https://127.0.0.1:{web_port}"),
        "links": {
            "carol": carol_link,
            "dave": dave_link,
        },
        "exec_session": exec_session,
        "blocked_session": blocked_session,
        "refused_session": refused_session,
        "refused_code": refused_code,
        "live_session": live_session,
        "recording": exec_session,
        "grant": grant,
        "pending_grant": pending_grant,
        "denied_grant": denied_grant,
        "expect": {
            "review": unreviewed,
            "pending": 1,
            "live": 1,
            "lockouts": 0,
            "blocked": 1,
            "suspicious": suspicious,
        },
        "shots": shots,
    });
    let config_path = w.dir.write("workbench.json", config.to_string());
    let mut node = Command::new("node");
    node.arg(web_dir().join("workbench.mjs"))
        .arg(&config_path)
        .current_dir(web_dir());
    let out = run_timeout(&mut node, None, Duration::from_secs(300));
    eprintln!("{}", out.stdout_text());
    if std::env::var_os("GATEHOUSE_KEEP_SHOTS").is_some() {
        let keep = std::env::temp_dir().join("gatehouse-workbench-shots");
        let _ = std::fs::remove_dir_all(&keep);
        std::fs::create_dir_all(&keep).unwrap();
        for e in std::fs::read_dir(&shots).unwrap().flatten() {
            std::fs::copy(e.path(), keep.join(e.file_name())).unwrap();
        }
    }
    assert_eq!(
        out.code(),
        Some(0),
        "browser script failed:\n{}\n{}\nbastion log:\n{}",
        out.stdout_text(),
        out.stderr_text(),
        w.gh.log()
    );
    for page in [
        "today",
        "sessions",
        "session",
        "recording",
        "error",
        "grants",
    ] {
        for size in ["wide", "narrow"] {
            let p = shots.join(format!("{page}-{size}.png"));
            let len = std::fs::metadata(&p)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
                .len();
            assert!(len > 10_000, "{page}-{size}.png is {len} bytes: blank?");
        }
    }

    // The revoke pressed in the browser cut the live session (the
    // sweeper, on the node that runs it), and it is audited as dave's.
    assert!(
        live.wait_timeout(Duration::from_secs(30)).is_some(),
        "the session under the revoked grant is still running"
    );
    let err = std::fs::read_to_string(&live_err).unwrap_or_default()
        + &std::fs::read_to_string(&live_out).unwrap_or_default();
    assert!(
        err.contains("revoked"),
        "the user is told the grant was revoked: {err}"
    );
    let revoked: Vec<serde_json::Value> =
        w.gh.audit_events_of("grant.revoked")
            .into_iter()
            .filter(|e| str_at(e, "user") == "dave")
            .collect();
    assert_eq!(revoked.len(), 1, "one grant.revoked by dave: {revoked:?}");
}
