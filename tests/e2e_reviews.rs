//! Issue 21 item 6, contract section 14, end to end with the stock ssh
//! client and a real sshd target: `gatehouse access review|certify|
//! suspend`; a suspended entitlement is refused with the contract's line
//! until certified again; nobody certifies their own access; with
//! `[review] enforce` an overdue entitlement is refused; the daily
//! report's entitlements carry `certified_at`, `certified_by` and `due`,
//! and its `suspicious` lists the overdue ones. On SQLite: the store's
//! part is tested on both backends in tests/store_reviews.rs.

mod common;
#[macro_use]
#[path = "common/access.rs"]
mod access;
#[path = "support/pg.rs"]
mod pg;
#[path = "common/scenario.rs"]
mod scenario;

use std::time::Duration;

use access::{assert_denied, json_of};
use common::*;
use scenario::*;
use serde_json::Value;

const WEB1: &str = "alice+root@web1";

/// The tests run as root: a staff member named `root` (no key needed)
/// is the one whose own access the CLI must refuse to certify.
const ROOT_STAFF: &str = "[[user]]\nname = \"root\"\nkeys = []\ngroups = [\"support\"]\n";

fn world(review: &str) -> World {
    setup(Backend::Sqlite)
        .toml(review)
        .policy(ROOT_STAFF)
        .start()
}

fn today() -> String {
    let out = run(std::process::Command::new("date").args(["-u", "+%F"]));
    out.assert_success("date");
    out.stdout_text().trim().to_string()
}

/// `gatehouse access review --json`, parsed.
fn review(w: &World) -> Vec<Value> {
    let out = w.gh.cli(&["access", "review", "--json"]);
    out.assert_success("access review --json");
    match json_of(&out, "access review --json") {
        Value::Array(a) => a,
        other => panic!("not a list: {other}"),
    }
}

fn entry<'a>(list: &'a [Value], user: &str, server: &str, account: &str) -> &'a Value {
    list.iter()
        .find(|e| e["user"] == user && e["server"] == server && e["account"] == account)
        .unwrap_or_else(|| panic!("no {user} {server} {account} in {list:#?}"))
}

fn ok_login(w: &World, what: &str) {
    let out = w.client.ssh(WEB1, &["echo reviewed-ok"]);
    out.assert_success(what);
    assert_eq!(out.stdout_text(), "reviewed-ok\n", "{what}");
}

#[test]
fn suspend_refuses_certify_restores_and_nobody_certifies_their_own() {
    let w = world("[review]\nevery = \"90d\"\n");
    ok_login(&w, "before any review");

    // The listing: every standing entitlement, never certified: overdue.
    let list = review(&w);
    let e = entry(&list, "alice", "web1", "root");
    assert_eq!(e["source"], "policy", "{e}");
    assert_eq!(e["state"], "overdue", "{e}");
    for k in ["certified_at", "certified_by", "due"] {
        assert!(e.get(k).is_some_and(Value::is_null), "{k}: {e}");
    }
    entry(&list, "alice", "web1", "ghtest");
    entry(&list, "root", "web1", "root");
    // A table for people too.
    let out = w.gh.cli(&["access", "review"]);
    out.assert_success("access review");
    assert!(out.stdout_text().contains("STATE"), "{}", out.stdout_text());

    // Nobody certifies their own access (the CLI runs as root).
    for args in [
        &["access", "certify", "root"][..],
        &["access", "certify", "root", "web1", "--note", "me"][..],
        &["access", "suspend", "root", "web1", "--reason", "me"][..],
    ] {
        let out = w.gh.cli(args);
        assert_eq!(out.code(), Some(1), "{args:?}: {}", out.stderr_text());
        assert!(
            out.stderr_text()
                .contains("error: nobody certifies or suspends their own access"),
            "{args:?}: {}",
            out.stderr_text()
        );
    }
    assert!(w.gh.audit_events_of("access.certified").is_empty());
    // Nothing standing to act on: refused, exit 1.
    let out =
        w.gh.cli(&["access", "suspend", "alice", "nowhere", "--reason", "x"]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr_text());
    assert!(
        out.stderr_text()
            .contains("alice has no standing access to nowhere"),
        "{}",
        out.stderr_text()
    );

    // Suspend: refused with the contract's line, audited with its code.
    let out = w.gh.cli(&[
        "access",
        "suspend",
        "alice",
        "web1",
        "--reason",
        "moved to another team",
    ]);
    out.assert_success("access suspend");
    assert!(
        out.stdout_text()
            .contains("suspended alice on web1 as root"),
        "{}",
        out.stdout_text()
    );
    let ev =
        w.gh.wait_for_event("access.suspended", Duration::from_secs(5), |e| {
            e["account"] == "root"
        });
    assert_eq!(ev["user"], "alice", "{ev}");
    assert_eq!(ev["server"], "web1", "{ev}");
    assert_eq!(detail(&ev, "by"), "root", "{ev}");
    assert_eq!(detail(&ev, "reason"), "moved to another team", "{ev}");

    let out = w.client.ssh(WEB1, &["echo should-not-run"]);
    assert_denied(&out, "suspended by access review");
    assert!(!out.stdout_text().contains("should-not-run"));
    // Its other account too (suspend USER SERVER covers all of them).
    let out = w.client.ssh("alice+ghtest@web1", &["true"]);
    assert_denied(&out, "suspended by access review");
    let denied =
        w.gh.wait_for_event("access.denied", Duration::from_secs(5), |e| {
            e["detail"]["code"] == "KO_REVIEW_SUSPENDED"
        });
    assert_eq!(denied["user"], "alice", "{denied}");
    assert_eq!(denied["server"], "web1", "{denied}");
    let list = review(&w);
    let e = entry(&list, "alice", "web1", "root");
    assert_eq!(e["state"], "suspended", "{e}");
    assert_eq!(e["reason"], "moved to another team", "{e}");

    // Certify: access is back; the listing and the event say who.
    let out =
        w.gh.cli(&["access", "certify", "alice", "web1", "--note", "T-42 ok"]);
    out.assert_success("access certify");
    ok_login(&w, "after certification");
    let ev =
        w.gh.wait_for_event("access.certified", Duration::from_secs(5), |e| {
            e["account"] == "root"
        });
    assert_eq!(ev["user"], "alice", "{ev}");
    assert_eq!(detail(&ev, "by"), "root", "{ev}");
    assert_eq!(detail(&ev, "note"), "T-42 ok", "{ev}");
    let list = review(&w);
    let e = entry(&list, "alice", "web1", "root");
    assert_eq!(e["state"], "ok", "{e}");
    assert_eq!(e["certified_by"], "root", "{e}");
    assert!(e["certified_at"].is_string(), "{e}");
    assert!(e["due"].is_string(), "{e}");
    assert_eq!(e["note"], "T-42 ok", "{e}");

    // The daily report: each entitlement carries the review's fields, and
    // the still uncertified ones (root's own) are suspicious.
    let out_dir = w.dir.path().join("report-out");
    let date = today();
    let out = w.gh.cli(&[
        "report",
        "daily",
        "--date",
        &date,
        "--format",
        "json,html",
        "--out",
        out_dir.to_str().unwrap_or_default(),
    ]);
    out.assert_success("report daily");
    let text = std::fs::read_to_string(out_dir.join(format!("{date}.json"))).unwrap_or_default();
    let report: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("report json: {e}\n{text}"));
    let alice = report["entitlements"]
        .as_array()
        .and_then(|a| a.iter().find(|u| u["user"] == "alice"))
        .unwrap_or_else(|| panic!("no alice in {:#}", report["entitlements"]));
    let web1 = alice["access"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["server"] == "web1"))
        .unwrap_or_else(|| panic!("no web1 in {alice:#}"));
    assert_eq!(web1["certified_by"], "root", "{web1}");
    assert!(web1["certified_at"].is_string(), "{web1}");
    assert!(web1["due"].is_string(), "{web1}");
    assert_eq!(web1["review"], "ok", "{web1}");
    let overdue: Vec<&Value> = report["suspicious"]
        .as_array()
        .map(|a| a.iter().filter(|s| s["kind"] == "review_overdue").collect())
        .unwrap_or_default();
    assert!(
        overdue
            .iter()
            .any(|s| s["user"] == "root" && s["server"] == "web1"),
        "{overdue:#?}"
    );
    assert!(
        !overdue.iter().any(|s| s["user"] == "alice"),
        "alice was certified: {overdue:#?}"
    );
    let html = std::fs::read_to_string(out_dir.join(format!("{date}.html"))).unwrap_or_default();
    assert!(
        html.contains("never certified"),
        "the HTML shows the review"
    );

    w.gh.cli(&["audit", "verify"])
        .assert_success("the chain holds the review events");
}

#[test]
fn enforce_refuses_overdue_entitlements() {
    let w = world("[review]\nevery = \"90d\"\nenforce = true\n");

    // Never certified: overdue, refused.
    let out = w.client.ssh(WEB1, &["echo should-not-run"]);
    assert_denied(&out, "access review overdue");
    let denied =
        w.gh.wait_for_event("access.denied", Duration::from_secs(5), |e| {
            e["detail"]["code"] == "KO_REVIEW_OVERDUE"
        });
    assert_eq!(denied["user"], "alice", "{denied}");

    // Certified: allowed.
    w.gh.cli(&["access", "certify", "alice"])
        .assert_success("access certify alice");
    ok_login(&w, "certified under enforce");

    // The certification made old (as if 91 days had passed): refused.
    let n = w.sql(
        "UPDATE access_certifications SET certified_at = '2020-01-01T00:00:00.000000Z' \
         WHERE username = 'alice'",
    );
    assert!(n >= 1, "{n} rows");
    let out = w.client.ssh(WEB1, &["echo should-not-run"]);
    assert_denied(&out, "access review overdue");
    let list = review(&w);
    let e = entry(&list, "alice", "web1", "root");
    assert_eq!(e["state"], "overdue", "{e}");
    assert_eq!(e["due"], "2020-03-31T00:00:00Z", "{e}");

    // Certified again: allowed again.
    w.gh.cli(&["access", "certify", "alice", "web1"])
        .assert_success("access certify alice web1");
    ok_login(&w, "certified again");
}

/// `curl -sk` with extra arguments: (status, body); redirects not followed.
fn curl(args: &[&str]) -> (u16, String) {
    let mut c = std::process::Command::new("curl");
    c.args(["-sk", "--max-time", "60", "-o", "-", "-w", "\n%{http_code}"])
        .args(args);
    let out = run_timeout(&mut c, None, Duration::from_secs(90));
    let text = out.stdout_text();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// The CSRF token of a console page (every form carries it).
fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no CSRF token in {page}"));
    let rest = &page[at + "name=\"csrf\" value=\"".len()..];
    rest.split('"').next().unwrap_or_default().to_string()
}

#[test]
fn console_access_review_certify_and_suspend_round_trip() {
    let web_port = free_port();
    // carol is an auditor and staff herself (group support): her own rows
    // are shown without buttons and refused if posted anyway.
    let carol =
        "[[user]]\nname = \"carol\"\nkeys = []\ngroups = [\"support\"]\nroles = [\"auditor\"]\n";
    let w = setup(Backend::Sqlite)
        .toml(&format!(
            "[web]\nlisten = \"127.0.0.1:{web_port}\"\n[review]\nevery = \"90d\"\n"
        ))
        .policy(carol)
        .start();
    assert!(
        wait_until(Duration::from_secs(15), || is_listening(web_port)),
        "console not listening; log:\n{}",
        w.gh.log()
    );
    let base = format!("https://127.0.0.1:{web_port}");
    let sign_in = |who: &str| {
        let out = w.gh.cli(&["web", "link", who]);
        out.assert_success("web link");
        let url = out.stdout_text().lines().next().unwrap_or("").to_string();
        let jar = w
            .dir
            .path()
            .join(format!("{who}.jar"))
            .display()
            .to_string();
        let (status, _) = curl(&["-c", &jar, &url]);
        assert_eq!(status, 200, "the link's page");
        let (status, body) = curl(&["-c", &jar, "-X", "POST", &url]);
        assert_eq!(status, 200, "sign-in: {body}");
        jar
    };
    let carol_jar = sign_in("carol");
    let alice_jar = sign_in("alice");

    // The page: each user's entitlements, with the nav link.
    let (status, page) = curl(&["-b", &carol_jar, &format!("{base}/review")]);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("href=\"/review\""), "nav link: {page}");
    assert!(page.contains("id=\"review-alice-web1-root\""), "{page}");
    assert!(page.contains("id=\"review-alice-web1-ghtest\""), "{page}");
    assert!(page.contains("Your own access"), "{page}");
    assert!(page.contains("overdue"), "never certified yet: overdue");
    let csrf = csrf_of(&page);
    // Not for non-auditors.
    let (status, _) = curl(&["-b", &alice_jar, &format!("{base}/review")]);
    assert_eq!(status, 403);

    let post = |jar: &str, action: &str, fields: &[(&str, &str)]| {
        let mut args: Vec<String> = vec!["-b".into(), jar.into(), "-X".into(), "POST".into()];
        for (k, v) in fields {
            args.push("--data-urlencode".into());
            args.push(format!("{k}={v}"));
        }
        args.push(format!("{base}/review/{action}"));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        curl(&args)
    };

    // Without the CSRF token: refused, nothing suspended.
    let (status, _) = post(
        &carol_jar,
        "suspend",
        &[("user", "alice"), ("server", "web1"), ("reason", "x")],
    );
    assert_eq!(status, 403);
    ok_login(&w, "a POST without CSRF changed nothing");
    // Her own: refused.
    let (status, body) = post(&carol_jar, "certify", &[("csrf", &csrf), ("user", "carol")]);
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("nobody certifies or suspends their own access"),
        "{body}"
    );

    // Suspend one entitlement: that account is refused, the other works.
    let (status, body) = post(
        &carol_jar,
        "suspend",
        &[
            ("csrf", &csrf),
            ("user", "alice"),
            ("server", "web1"),
            ("account", "root"),
            ("reason", "audit finding F-7"),
        ],
    );
    assert_eq!(status, 303, "{body}");
    let out = w.client.ssh(WEB1, &["echo should-not-run"]);
    assert_denied(&out, "suspended by access review");
    let out = w.client.ssh("alice+ghtest@web1", &["echo other-account"]);
    out.assert_success("the other account is not suspended");
    let ev =
        w.gh.wait_for_event("access.suspended", Duration::from_secs(5), |_| true);
    assert_eq!(ev["account"], "root", "{ev}");
    assert_eq!(detail(&ev, "by"), "carol", "{ev}");
    assert_eq!(detail(&ev, "via"), "web", "{ev}");
    let (_, page) = curl(&["-b", &carol_jar, &format!("{base}/review")]);
    assert!(page.contains("suspended: audit finding F-7"), "{page}");

    // Certify all of alice's access: back.
    let (status, body) = post(
        &carol_jar,
        "certify",
        &[("csrf", &csrf), ("user", "alice"), ("note", "Q4 review")],
    );
    assert_eq!(status, 303, "{body}");
    ok_login(&w, "certified from the console");
    let certified = w.gh.audit_events_of("access.certified");
    assert_eq!(
        certified.len(),
        2,
        "both of alice's accounts: {certified:#?}"
    );
    assert!(certified.iter().all(|e| detail(e, "by") == "carol"
        && detail(e, "via") == "web"
        && detail(e, "note") == "Q4 review"));
    let list = review(&w);
    assert_eq!(
        entry(&list, "alice", "web1", "root")["certified_by"],
        "carol"
    );
    assert_eq!(entry(&list, "carol", "web1", "root")["state"], "overdue");
}
