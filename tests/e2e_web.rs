//! The review console end to end: a real `serve` with `[web] listen`, a
//! real sshd target, real OpenSSH sessions that create recordings and a
//! grant request, sign-in links obtained with the stock `ssh STAFF@BASTION
//! web`, then headless Chromium (Debian's `chromium`, driven by
//! `playwright-core` from tests/web/) through every page: filtering,
//! playing and searching a recording, reviewing it, approving a grant,
//! watching a live session and ending it, reports; and the negative cases
//! (expired, reused and unknown links, a forged cookie, missing CSRF
//! tokens, another user's recording, hostile command lines). What the
//! browser did is then checked from the outside: the CLI, the audit log
//! and the ssh client's own stderr.
//!
//! Needs `node`, `chromium` and `tests/web/node_modules` (scripts/setup
//! installs all three). Without them the test fails, unless
//! `GATEHOUSE_SKIP_BROWSER=1` says chromium cannot be installed here, in
//! which case it says so loudly and skips.

mod common;
#[path = "support/http.rs"]
mod http;
#[path = "support/pg.rs"]
mod pg;
#[path = "common/scenario.rs"]
mod scenario;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use scenario::*;

/// `ssh STAFF@BASTION web --json` with the stock client: the link.
fn link(client: &Client, staff: &str) -> String {
    let out = client.ssh(staff, &["web", "--json"]);
    out.assert_success(&format!("ssh {staff}@bastion web"));
    let v: serde_json::Value = serde_json::from_str(out.stdout_text().trim())
        .unwrap_or_else(|e| panic!("web --json: {e}: {}", out.stdout_text()));
    assert_eq!(v["valid_secs"], 60, "{v}");
    v["url"].as_str().expect("url").to_string()
}

fn role_user(name: &str, key: &Key, roles: &[&str]) -> String {
    policy_user(name, key, &["support"]) + &format!("roles = {}\n", toml_list(roles))
}

fn cli_json(gh: &Gatehouse, args: &[&str]) -> serde_json::Value {
    let out = gh.cli(args);
    out.assert_success(&args.join(" "));
    serde_json::from_str(out.stdout_text().trim())
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", out.stdout_text()))
}

#[test]
fn review_console_in_a_real_browser() {
    if !browser_available("e2e_web", &[]) {
        return;
    }
    let keys = TestDir::new();
    let carol = keygen(keys.path(), "carol", KeyKind::Ed25519); // auditor
    let dave = keygen(keys.path(), "dave", KeyKind::Ed25519); // approver
    let web_port = free_port();
    let w = setup(Backend::Sqlite)
        .web1("record = \"always\"")
        .toml(&format!("[web]\nlisten = \"127.0.0.1:{web_port}\"\n"))
        .policy(&role_user("carol", &carol, &["auditor"]))
        .policy(&role_user("dave", &dave, &["approver"]))
        .start();
    let carol_c = w.gh.client(&w.dir, &carol);
    let dave_c = w.gh.client(&w.dir, &dave);
    assert!(
        wait_until(Duration::from_secs(10), || is_listening(web_port)),
        "console not listening; log:\n{}",
        w.gh.log()
    );
    // The port answers a moment before the line is printed.
    assert!(
        wait_until(Duration::from_secs(10), || w
            .gh
            .log()
            .contains("review console on https://127.0.0.1:")),
        "serve prints where the console listens and its fingerprint:\n{}",
        w.gh.log()
    );
    // Issued first, tried last: by then it has expired.
    let expired_link = link(&w.client, "alice");
    let expired_at = Instant::now() + Duration::from_secs(61);

    // alice's recorded exec, with a hostile command line and output.
    let hostile = "<script>window.pwned=1</script>\"><img src=x onerror=window.pwned=2>";
    let out = w.client.ssh_opts(
        &["-tt"],
        "alice+root@web1",
        &[&format!(
            "echo WEB-MARK-$((6*7)); echo '{hostile}'; : 'BIDI-\u{202e}-ESC-\u{1b}[31m-END'"
        )],
    );
    assert_eq!(out.code(), Some(0), "{out:?}");
    let alice_rec = w.session_id(|e| str_at(e, "user") == "alice" && str_at(e, "server") == "web1");
    w.gh.wait_for_event("session.end", Duration::from_secs(10), |e| {
        str_at(e, "session") == alice_rec
    });
    // A recording with long pauses (issue 17 item 13): the player squeezes
    // them, so a hit's cast time (8 s) is not its player time (about 2 s).
    let out = w.client.ssh_opts(
        &["-tt"],
        "alice+root@web1",
        &["echo PAUSE-START; sleep 8; echo ZEBRA-$((40+2)); sleep 3; echo AFTER-MARK-$((1+1))"],
    );
    assert_eq!(out.code(), Some(0), "{out:?}");
    let pause_rec = w.session_id(|e| {
        str_at(e, "user") == "alice"
            && str_at(e, "server") == "web1"
            && str_at(e, "session") != alice_rec
    });
    w.gh.wait_for_event("session.end", Duration::from_secs(10), |e| {
        str_at(e, "session") == pause_rec
    });
    // carol's own recording, which alice must not open.
    carol_c
        .ssh_opts(&["-tt"], "carol+root@web1", &["echo CAROL-ONLY-$((2+3))"])
        .assert_success("carol's session");
    let carol_rec = w.session_id(|e| str_at(e, "user") == "carol" && str_at(e, "server") == "web1");
    w.gh.wait_for_event("session.end", Duration::from_secs(10), |e| {
        str_at(e, "session") == carol_rec
    });
    // alice asks for a grant; dave approves it in the browser.
    let out = w.client.ssh(
        "alice",
        &[
            "request",
            "web1",
            "--for",
            "1h",
            "--reason",
            "'TICKET-WEB-9 <img src=x onerror=window.pwned=3>'",
            "--json",
        ],
    );
    out.assert_success("grant request");
    let req: serde_json::Value = serde_json::from_str(out.stdout_text().trim()).unwrap();
    let grant_id = req["id"]
        .as_i64()
        .or_else(|| req["grant"]["id"].as_i64())
        .unwrap_or_else(|| panic!("grant id in {req}"));
    // dave's own request, which he may not approve.
    let out = dave_c.ssh(
        "dave",
        &[
            "request", "web1", "--for", "1h", "--reason", "DAVE-OWN", "--json",
        ],
    );
    out.assert_success("dave's grant request");
    let own: serde_json::Value = serde_json::from_str(out.stdout_text().trim()).unwrap();
    let own_grant = own["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("grant id in {own}"));
    // A report for the reports page.
    let today = time::OffsetDateTime::now_utc().date().to_string();
    w.gh.cli(&["report", "daily", "--date", &today])
        .assert_success("report daily");
    // alice's live session, watched and ended from the browser.
    let (live_out, live_err) = (w.dir.join("live.out"), w.dir.join("live.err"));
    let mut live_cmd = w.client.ssh_command(
        &["-tt"],
        "alice+root@web1",
        &["echo LIVE-MARK-$((3*3)); sleep 600"],
    );
    live_cmd.stdin(std::process::Stdio::piped());
    let mut live = ChildGuard::spawn("ssh", &mut live_cmd, Some(&live_out), Some(&live_err));
    let live_id = w.session_id(|e| {
        str_at(e, "user") == "alice"
            && str_at(e, "server") == "web1"
            && str_at(e, "session") != alice_rec
            && str_at(e, "session") != pause_rec
    });

    let shots = w.dir.join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let config = serde_json::json!({
        "chromium": CHROMIUM,
        "base": format!("https://127.0.0.1:{web_port}"),
        "links": {
            "carol": link(&carol_c, "carol"),
            "dave": link(&dave_c, "dave"),
            "alice": link(&w.client, "alice"),
            "expired": expired_link,
        },
        "expired_wait_ms": expired_at.saturating_duration_since(Instant::now()).as_millis() as u64,
        "alice_rec": alice_rec,
        "pause_rec": pause_rec,
        "carol_rec": carol_rec,
        "live": live_id,
        "grant": grant_id,
        "own_grant": own_grant,
        "report": format!("{today}.html"),
        "hostile": hostile,
        "kill_reason": "WEB-KILL-REASON ticket 77",
        "shots": shots,
    });
    let config_path = w.dir.write("web-e2e.json", config.to_string());
    let mut node = Command::new("node");
    node.arg(web_dir().join("console.mjs"))
        .arg(&config_path)
        .current_dir(web_dir());
    let out = run_timeout(&mut node, None, Duration::from_secs(300));
    eprintln!("{}", out.stdout_text());
    assert_eq!(
        out.code(),
        Some(0),
        "browser script failed:\n{}\n{}\nbastion log:\n{}",
        out.stdout_text(),
        out.stderr_text(),
        w.gh.log()
    );
    if std::env::var_os("GATEHOUSE_KEEP_SHOTS").is_some() {
        let keep = std::env::temp_dir().join("gatehouse-web-shots");
        let _ = std::fs::remove_dir_all(&keep);
        std::fs::create_dir_all(&keep).unwrap();
        for e in std::fs::read_dir(&shots).unwrap().flatten() {
            std::fs::copy(e.path(), keep.join(e.file_name())).unwrap();
        }
    }
    for name in [
        "sessions",
        "sessions-filtered",
        "session",
        "player",
        "search",
        "reviewed",
        "grants-pending",
        "grants",
        "live",
        "reports",
        "report",
    ] {
        let p = shots.join(format!("{name}.png"));
        let len = std::fs::metadata(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .len();
        assert!(len > 10_000, "{name}.png is {len} bytes: blank?");
    }

    // The live session ended, and its user read the reason.
    assert!(
        live.wait_timeout(Duration::from_secs(20)).is_some(),
        "the killed session is still running"
    );
    let (out, err) = (
        std::fs::read_to_string(&live_out).unwrap_or_default(),
        std::fs::read_to_string(&live_err).unwrap_or_default(),
    );
    assert!(
        err.contains("WEB-KILL-REASON ticket 77") || out.contains("WEB-KILL-REASON ticket 77"),
        "the user sees the reason; stderr: {err}\nstdout: {out}"
    );
    // One session.killed, with who and why (issue 17 item 15), once the
    // node has ended the session.
    w.gh.wait_for_event("session.end", Duration::from_secs(20), |e| {
        str_at(e, "session") == live_id
    });
    let killed: Vec<serde_json::Value> =
        w.gh.audit_events_of("session.killed")
            .into_iter()
            .filter(|e| str_at(e, "session") == live_id)
            .collect();
    assert_eq!(killed.len(), 1, "one session.killed: {killed:?}");
    assert!(
        detail(&killed[0], "requested_via") == "web"
            && detail(&killed[0], "requested_by") == "carol"
            && detail(&killed[0], "reason") == "WEB-KILL-REASON ticket 77"
            && str_at(&killed[0], "user") == "alice",
        "{killed:?}"
    );
    // The review is the CLI's review: in `recordings list` and the audit log.
    let list = cli_json(&w.gh, &["recordings", "list", "--json"]);
    let reviewed = list
        .as_array()
        .and_then(|a| a.iter().find(|r| r["id"] == alice_rec.as_str()))
        .unwrap_or_else(|| panic!("{alice_rec} in {list}"));
    assert_eq!(reviewed["state"], "reviewed", "{reviewed}");
    let reviews = w.gh.audit_events_of("recording.reviewed");
    assert!(
        reviews.iter().any(|e| str_at(e, "user") == "carol"
            && detail(e, "recording") == alice_rec.as_str()
            && detail(e, "via") == "web"),
        "{reviews:?}"
    );
    // ... and in the daily report: no longer awaiting review.
    let out_dir = w.dir.join("report-after");
    w.gh.cli(&[
        "report",
        "daily",
        "--date",
        &today,
        "--format",
        "json",
        "--out",
        &out_dir.display().to_string(),
    ])
    .assert_success("report daily after the review");
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.join(format!("{today}.json"))).unwrap(),
    )
    .unwrap();
    let waiting: Vec<&str> = report["recordings_to_review"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["id"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        !waiting.contains(&alice_rec.as_str()) && waiting.contains(&carol_rec.as_str()),
        "reviewed in the console, so not awaiting review: {waiting:?}"
    );
    // The grant was approved by dave, with command mode's event.
    let approved = w.gh.audit_events_of("grant.approved");
    assert!(
        approved
            .iter()
            .any(|e| str_at(e, "user") == "dave" && detail(e, "grant") == grant_id),
        "{approved:?}"
    );
    assert!(
        !approved.iter().any(|e| detail(e, "grant") == own_grant),
        "nobody approves their own request: {approved:?}"
    );
    // Sign-ins and refusals are audited.
    let logins = w.gh.audit_events_of("web.login");
    for who in ["carol", "dave", "alice"] {
        assert!(
            logins.iter().any(|e| str_at(e, "user") == who),
            "{who}: {logins:?}"
        );
    }
    // Refusals are written in summaries, at most one batch per 5 s.
    for why in ["used", "expired", "unknown"] {
        assert!(
            wait_until(Duration::from_secs(30), || w
                .gh
                .audit_events_of("web.login_refused")
                .iter()
                .any(|e| detail(e, "reason") == why)),
            "{why}: {:?}",
            w.gh.audit_events_of("web.login_refused")
        );
    }
    let logouts = w.gh.audit_events_of("web.logout");
    assert!(
        logouts.iter().any(|e| str_at(e, "user") == "carol"),
        "{logouts:?}"
    );
    w.gh.cli(&["audit", "verify"])
        .assert_success("audit verify");
}

/// `curl -k` through the configured public URL to the local listener:
/// (status, body). `jar` keeps cookies between calls.
fn curl(url: &str, web_port: u16, jar: &Path) -> (u16, String) {
    curl_with(&[], url, web_port, jar)
}

/// [`curl`] with more arguments (`-X POST`, headers).
fn curl_with(extra: &[&str], url: &str, web_port: u16, jar: &Path) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args(extra);
    c.args(["-sk", "-o", "-", "-w", "\n%{http_code}", "--connect-to"])
        .arg(format!("bastion.example:8443:127.0.0.1:{web_port}"))
        .arg("-b")
        .arg(jar)
        .arg("-c")
        .arg(jar)
        .arg(url);
    let out = run_timeout(&mut c, None, Duration::from_secs(30));
    let text = out.stdout_text();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// `gatehouse web link USER` on the bastion host and its refusals, and the
/// database side of the console on both backends: a link redeemed once,
/// then the sessions list with filters and a page cursor.
fn links_and_the_sessions_list(backend: Backend) {
    let (web_port, admin) = (free_port(), free_port());
    let w = setup(backend)
        .web1("record = \"always\"")
        .toml(&format!(
            "[web]\nlisten = \"127.0.0.1:{web_port}\"\nurl = \"https://bastion.example:8443/\"\n\
             [metrics]\nlisten = \"127.0.0.1:{admin}\"\n"
        ))
        .start();
    assert!(wait_until(Duration::from_secs(10), || is_listening(
        web_port
    )));
    w.client
        .ssh("alice+root@web1", &["echo LISTED"])
        .assert_success("a session to list");
    let out = w.gh.cli(&["web", "link", "alice"]);
    out.assert_success("web link");
    let url = out.stdout_text().lines().next().unwrap_or("").to_string();
    assert!(
        url.starts_with("https://bastion.example:8443/login/"),
        "{url}"
    );
    let out = w.gh.cli(&["web", "link", "mallory"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stderr_text().contains("unknown user"), "{out:?}");
    let links = w.gh.audit_events_of("web.link");
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(detail(&links[0], "via"), "cli");

    let jar = w.dir.join("cookies.txt");
    let base = "https://bastion.example:8443";
    // Opening the link (GET) signs nobody in and spends nothing: it shows
    // a button that POSTs (issue 17 item 6, login CSRF and link previews).
    for _ in 0..2 {
        let (code, body) = curl(&url, web_port, &jar);
        assert_eq!(code, 200, "{body}");
        assert!(body.contains("id=\"sign-in\""), "{body}");
    }
    assert_eq!(curl(&format!("{base}/sessions"), web_port, &jar).0, 401);
    // A POST another site's page made is refused, and spends nothing.
    for header in ["Sec-Fetch-Site: cross-site", "Origin: https://evil.example"] {
        let (code, body) = curl_with(&["-X", "POST", "-H", header], &url, web_port, &jar);
        assert_eq!(code, 403, "{header}: {body}");
    }
    let (code, body) = curl_with(&["-X", "POST"], &url, web_port, &jar);
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        curl_with(&["-X", "POST"], &url, web_port, &w.dir.join("other.txt")).0,
        403,
        "used"
    );
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let (code, body) = curl(
        &format!("{base}/sessions?server=web1&recorded=yes&from={today}&to={today}"),
        web_port,
        &jar,
    );
    assert_eq!(code, 200, "{body}");
    // Review states are for auditors (issue 17 item 16): alice reads
    // "recorded" on her own sessions.
    assert!(
        body.contains("web1") && body.contains(">recorded<") && !body.contains("unreviewed"),
        "{body}"
    );
    let cursor = format!("{base}/sessions?before_ts=2100-01-01T00:00:00Z&before_id=zz&live=no");
    let (code, body) = curl(&cursor, web_port, &jar);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("alice"), "{body}");
    let (code, _) = curl(&format!("{base}/sessions?live=maybe"), web_port, &jar);
    assert_eq!(code, 400);
    // Redemptions are rate-limited per source (10 a minute; the sign-in
    // above was one), counted in the metrics, and audited in summaries:
    // a few rows with counts, not one row per attempt (issue 17 item 6).
    let bad = format!("{base}/login/{}", "A".repeat(43));
    let codes: Vec<u16> = (0..30)
        .map(|_| curl_with(&["-X", "POST"], &bad, web_port, &jar).0)
        .collect();
    assert_eq!(codes.last(), Some(&429), "{codes:?}");
    assert!(codes.iter().all(|c| *c == 403 || *c == 429), "{codes:?}");
    let limited = codes.iter().filter(|c| **c == 429).count() as u64;
    let counted = |reasons: &[&str]| -> (u64, usize) {
        let rows: Vec<serde_json::Value> =
            w.gh.audit_events_of("web.login_refused")
                .into_iter()
                .filter(|e| reasons.iter().any(|r| detail(e, "reason") == *r))
                .collect();
        let sum = rows
            .iter()
            .map(|e| detail(e, "count").as_u64().unwrap_or(0))
            .sum();
        (sum, rows.len())
    };
    assert!(
        wait_until(Duration::from_secs(30), || counted(&[
            "unknown",
            "rate_limited"
        ])
        .0 == 30),
        "30 refusals counted: {:?}",
        w.gh.audit_events_of("web.login_refused")
    );
    let (_, rows) = counted(&["unknown", "rate_limited"]);
    assert!(rows <= 8, "summarised: {rows} rows for 30 refusals");
    assert_eq!(counted(&["rate_limited"]).0, limited);
    let refused = w.gh.audit_events_of("web.login_refused");
    assert!(
        refused
            .iter()
            .all(|e| detail(e, "method") == "link" && str_at(e, "source") == "127.0.0.1"),
        "{refused:?}"
    );
    let (_, metrics) = http::get(&format!("127.0.0.1:{admin}"), "/metrics");
    assert_eq!(
        http::metric(
            &metrics,
            "gatehouse_web_login_refused_total",
            &[("reason", "rate_limited")]
        ),
        limited as f64,
        "{metrics}"
    );
}

on_both_backends!(links_and_the_sessions_list);
