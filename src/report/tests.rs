//! A synthetic day where every section has known content, hostile strings,
//! boundaries, and volume.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};
use time::macros::{date, datetime};
use time::{Date, OffsetDateTime};

use super::*;
use crate::audit::AuditRecord;
use crate::grant_types::{Grant, GrantState};
use crate::store::SessionRow;

const DAY: Date = date!(2026 - 03 - 10); // a Tuesday

fn ev(ts: &str, kind: &str) -> AuditRecord {
    AuditRecord {
        id: 0,
        ts: ts.to_string(),
        kind: kind.to_string(),
        user: None,
        server: None,
        account: None,
        session: None,
        source: None,
        detail: json!({}),
        node: "n1".into(),
        seq: 0,
        prev_hash: String::new(),
        hash: String::new(),
    }
}

trait With {
    fn user(self, u: &str) -> Self;
    fn server(self, s: &str) -> Self;
    fn account(self, a: &str) -> Self;
    fn session(self, s: &str) -> Self;
    fn source(self, s: &str) -> Self;
    fn detail(self, d: Value) -> Self;
}

impl With for AuditRecord {
    fn user(mut self, u: &str) -> Self {
        self.user = Some(u.into());
        self
    }
    fn server(mut self, s: &str) -> Self {
        self.server = Some(s.into());
        self
    }
    fn account(mut self, a: &str) -> Self {
        self.account = Some(a.into());
        self
    }
    fn session(mut self, s: &str) -> Self {
        self.session = Some(s.into());
        self
    }
    fn source(mut self, s: &str) -> Self {
        self.source = Some(s.into());
        self
    }
    fn detail(mut self, d: Value) -> Self {
        self.detail = d;
        self
    }
}

#[allow(clippy::too_many_arguments)]
fn row(
    id: &str,
    user: &str,
    server: Option<&str>,
    account: Option<&str>,
    source: &str,
    start: OffsetDateTime,
    end: Option<OffsetDateTime>,
    recorded: bool,
) -> SessionRow {
    SessionRow {
        id: id.into(),
        user: user.into(),
        server: server.map(Into::into),
        account: account.map(Into::into),
        source: source.into(),
        node: "n1".into(),
        started_at: start,
        ended_at: end,
        mode: None,
        grant_id: None,
        recorded,
        bytes_up: 0,
        bytes_down: 0,
        exit_status: None,
        end_reason: None,
        flagged: None,
        review: None,
    }
}

fn grant(id: i64, user: &str, server: &str, state: GrantState) -> Grant {
    Grant {
        id,
        user: user.into(),
        server: server.into(),
        accounts: vec![],
        ports: vec![],
        from: vec![],
        reason: format!("TICKET-{id}"),
        state,
        requested_by: user.into(),
        approved_by: None,
        decided_by: None,
        decision_note: None,
        requested_at: datetime!(2026-03-01 10:00 UTC),
        decided_at: None,
        duration_secs: Some(8 * 3600),
        expires_at: None,
    }
}

fn rec(id: &str, date: Date, session: Option<&str>, state: ReviewState) -> RecordingFact {
    RecordingFact {
        id: id.into(),
        date,
        session: session.map(Into::into),
        user: Some("alice".into()),
        server: Some("prod-db".into()),
        account: Some("oracle".into()),
        started_at: Some(date.with_hms(9, 0, 0).unwrap().assume_utc()),
        path: format!("{}/{id}.cast", build::day(date)),
        state,
        problem: None,
    }
}

/// The synthetic day: every section has known content.
fn day_input() -> ReportInput {
    let mut s1 = row(
        "s1",
        "alice",
        Some("prod-db"),
        Some("oracle"),
        "198.51.100.7",
        datetime!(2026-03-10 09:00 UTC),
        Some(datetime!(2026-03-10 09:30 UTC)),
        true,
    );
    s1.bytes_up = 100;
    s1.bytes_down = 2000;
    s1.mode = Some("ssh-forwarding".into());
    s1.exit_status = Some(0);
    s1.end_reason = Some("closed".into());
    let mut s2 = row(
        "s2",
        "bob",
        Some("legacy"),
        Some("root"),
        "203.0.113.9",
        datetime!(2026-03-10 22:15 UTC),
        None,
        true,
    );
    s2.grant_id = Some(7);
    let mut s0 = row(
        "s0",
        "carol",
        Some("prod-db"),
        Some("oracle"),
        "198.51.100.8",
        datetime!(2026-03-09 23:50 UTC),
        Some(datetime!(2026-03-10 00:10 UTC)),
        false,
    );
    s0.bytes_up = 5;
    s0.bytes_down = 6;
    let cmd = row(
        "c1",
        "dave",
        None,
        None,
        "198.51.100.9",
        datetime!(2026-03-10 10:00 UTC),
        Some(datetime!(2026-03-10 10:01 UTC)),
        false,
    );

    let mut events = vec![
        // The day before: ignored.
        ev("2026-03-09T23:59:59Z", "auth.failure").user("zed").source("192.0.2.1"),
        ev("2026-03-10T08:59:00Z", "auth.success").user("alice").source("198.51.100.7"),
        ev("2026-03-10T09:00:00Z", "session.start")
            .user("alice")
            .server("prod-db")
            .account("oracle")
            .session("s1")
            .source("198.51.100.7")
            .detail(json!({"mode": "ssh-forwarding", "grant": null, "flagged": false})),
        ev("2026-03-10T09:10:00Z", "command.blocked")
            .user("alice")
            .server("prod-db")
            .account("oracle")
            .session("s1")
            .source("198.51.100.7")
            .detail(json!({"command": "rm -rf /", "reason": "command not allowed", "rule": "rm -rf /*"})),
        ev("2026-03-10T09:20:00Z", "forward.denied")
            .user("alice")
            .server("prod-db")
            .account("oracle")
            .session("s1")
            .detail(json!({"destination": "prod-db:5432", "code": "KO_PORT", "reason": "port not allowed"})),
        ev("2026-03-10T11:00:00Z", "session.start")
            .user("erin")
            .server("web")
            .account("deploy")
            .session("s3")
            .source("198.51.100.20")
            .detail(json!({"mode": "firewall", "flagged": false})),
        ev("2026-03-10T11:05:00Z", "session.end")
            .user("erin")
            .server("web")
            .account("deploy")
            .session("s3")
            .source("198.51.100.20")
            .detail(json!({"bytes_up": 10, "bytes_down": 20, "exit_status": 0, "duration_secs": 300.0, "reason": "closed"})),
        ev("2026-03-10T12:00:00Z", "auth.success").user("alice").source("192.0.2.50").session("c9"),
        ev("2026-03-10T13:00:00Z", "access.denied")
            .user("bob")
            .server("secret-srv")
            .source("203.0.113.9")
            .detail(json!({"code": "KO_ACCESS_DENIED", "reason": "access denied"})),
        ev("2026-03-10T14:00:00Z", "hostkey.mismatch")
            .user("alice")
            .server("web")
            .detail(json!({"expected": "SHA256:aaa", "presented": "SHA256:bbb"})),
        ev("2026-03-10T07:00:00Z", "policy.reloaded")
            .detail(json!({"digest": "d2", "previous": "d1", "users": 5, "servers": 3, "reason": "changed"})),
        ev("2026-03-10T07:30:00Z", "policy.rejected").detail(
            json!({"problems": ["a.toml:3:1: unknown key"], "count": 1, "serving": "d2"}),
        ),
        ev("2026-03-10T20:00:00Z", "grant.requested")
            .user("bob")
            .server("legacy")
            .detail(json!({"grant": 7, "for": "bob", "accounts": ["root"], "ports": [], "reason": "TICKET-7", "state": "pending"})),
        ev("2026-03-10T20:05:00Z", "grant.approved")
            .user("carol")
            .server("legacy")
            .detail(json!({"grant": 7, "for": "bob", "accounts": ["root"], "ports": [], "reason": "TICKET-7", "state": "approved", "expires_at": "2026-03-11T04:05:00Z"})),
        ev("2026-03-10T20:06:00Z", "grant.denied")
            .user("carol")
            .server("prod-db")
            .detail(json!({"grant": 8, "for": "erin", "accounts": [], "ports": [1521], "reason": "TICKET-8", "state": "denied"})),
        ev("2026-03-10T21:00:00Z", "grant.revoked")
            .user("carol")
            .server("web")
            .detail(json!({"grant": 10, "for": "dave", "accounts": [], "ports": [], "reason": "TICKET-10", "state": "revoked"})),
        ev("2026-03-10T22:14:00Z", "auth.success").user("bob").source("203.0.113.9"),
        ev("2026-03-10T22:15:00Z", "session.start")
            .user("bob")
            .server("legacy")
            .account("root")
            .session("s2")
            .source("203.0.113.9")
            .detail(json!({"mode": "global", "grant": 7, "flagged": true})),
        ev("2026-03-10T00:10:00Z", "session.end")
            .user("carol")
            .server("prod-db")
            .account("oracle")
            .session("s0")
            .detail(json!({"bytes_up": 5, "bytes_down": 6, "duration_secs": 1200.0})),
    ];
    // A failed-login burst: six failures for mallory from one address.
    for m in 0..6 {
        events.push(
            ev(&format!("2026-03-10T03:0{m}:00Z"), "auth.failure")
                .user("mallory")
                .source("192.0.2.66")
                .detail(json!({"reason": "unknown key", "code": "KO_KEY"})),
        );
    }
    events.push(
        ev("2026-03-10T03:05:30Z", "auth.lockout")
            .user("mallory")
            .source("192.0.2.66")
            .detail(json!({"failures": 10, "until": "2026-03-10T09:05:30Z"})),
    );
    // Four failures for oscar: no burst.
    for m in 0..4 {
        events.push(
            ev(&format!("2026-03-10T05:0{m}:00Z"), "auth.failure")
                .user("oscar")
                .source(&format!("192.0.2.{}", 100 + m)),
        );
    }

    let mut g7 = grant(7, "bob", "legacy", GrantState::Approved);
    g7.approved_by = Some("carol".into());
    g7.expires_at = Some(datetime!(2026-03-11 04:05 UTC));
    g7.requested_at = datetime!(2026-03-10 20:00 UTC);
    g7.decided_at = Some(datetime!(2026-03-10 20:05 UTC));
    let mut g8 = grant(8, "erin", "prod-db", GrantState::Denied);
    g8.requested_at = datetime!(2026-03-09 10:00 UTC);
    g8.decided_at = Some(datetime!(2026-03-10 20:06 UTC));
    // Expired this day with no event in the stream: found from its row.
    let mut g9 = grant(9, "alice", "web", GrantState::Expired);
    g9.approved_by = Some("carol".into());
    g9.decided_at = Some(datetime!(2026-03-09 22:00 UTC));
    g9.expires_at = Some(datetime!(2026-03-10 06:00 UTC));
    let mut g10 = grant(10, "dave", "web", GrantState::Revoked);
    g10.decided_at = Some(datetime!(2026-03-10 21:00 UTC));

    ReportInput {
        generated_at: Some(datetime!(2026-03-11 00:05 UTC)),
        events,
        sessions: vec![s0, s1, s2, cmd],
        recordings: vec![
            rec("s1", DAY, Some("s1"), ReviewState::Unreviewed),
            rec(
                "old",
                date!(2026 - 03 - 08),
                Some("sx"),
                ReviewState::Unreviewed,
            ),
            rec(
                "seen",
                date!(2026 - 03 - 09),
                Some("sy"),
                ReviewState::Reviewed,
            ),
            rec(
                "flagged",
                date!(2026 - 03 - 09),
                Some("sz"),
                ReviewState::Flagged,
            ),
            rec(
                "later",
                date!(2026 - 03 - 11),
                Some("sw"),
                ReviewState::Unreviewed,
            ),
        ],
        grants: vec![g7, g8, g9, g10],
        users: vec![
            UserFact {
                name: "alice".into(),
                expires: None,
                from_directory: false,
            },
            UserFact {
                name: "bob".into(),
                expires: Some(date!(2026 - 03 - 20)),
                from_directory: false,
            },
            UserFact {
                name: "carol".into(),
                expires: Some(date!(2026 - 03 - 01)),
                from_directory: false,
            },
            UserFact {
                name: "dave".into(),
                expires: None,
                from_directory: false,
            },
            UserFact {
                name: "erin".into(),
                expires: Some(date!(2027 - 01 - 01)),
                from_directory: false,
            },
        ],
        servers: vec![
            ServerFact {
                name: "prod-db".into(),
                mode: "ssh-forwarding".into(),
            },
            ServerFact {
                name: "legacy".into(),
                mode: "global".into(),
            },
            ServerFact {
                name: "web".into(),
                mode: "firewall".into(),
            },
        ],
        entitlements: vec![
            EntitlementFact {
                user: "alice".into(),
                server: "prod-db".into(),
                mode: "ssh-forwarding".into(),
                accounts: vec!["oracle".into(), "root".into()],
                ports: vec![1521],
                any_port: false,
                through: Through::Policy {
                    rule: "group:support".into(),
                },
            },
            EntitlementFact {
                user: "bob".into(),
                server: "legacy".into(),
                mode: "global".into(),
                accounts: vec!["root".into()],
                ports: vec![],
                any_port: true,
                through: Through::Policy {
                    rule: "user:bob".into(),
                },
            },
            EntitlementFact {
                user: "bob".into(),
                server: "prod-db".into(),
                mode: "ssh-forwarding".into(),
                accounts: vec!["oracle".into()],
                ports: vec![],
                any_port: false,
                through: Through::Grant {
                    id: 7,
                    until: Some(datetime!(2026-03-11 04:05 UTC)),
                    approved_by: Some("carol".into()),
                },
            },
            EntitlementFact {
                user: "dave".into(),
                server: "web".into(),
                mode: "on-request".into(),
                accounts: vec![],
                ports: vec![],
                any_port: false,
                through: Through::GrantRequired {
                    rule: "group:web".into(),
                },
            },
        ],
        credentials: Some(vec![
            CredentialFact {
                server: "prod-db".into(),
                account: "oracle".into(),
                kind: "password".into(),
                third_party: false,
                created: datetime!(2026-01-01 00:00 UTC),
                rotated: datetime!(2026-03-01 00:00 UTC),
                last_used: Some(datetime!(2026-03-10 09:00 UTC)),
                rotation_due: date!(2026 - 08 - 28),
                complies: true,
                reasons: vec![],
            },
            CredentialFact {
                server: "legacy".into(),
                account: "root".into(),
                kind: "password".into(),
                third_party: false,
                created: datetime!(2025-01-01 00:00 UTC),
                rotated: datetime!(2025-01-01 00:00 UTC),
                last_used: None,
                rotation_due: date!(2025 - 06 - 30),
                complies: false,
                reasons: vec!["rotation was due on 2025-06-30".into()],
            },
        ]),
        access_reviews: Vec::new(),
        vault_note: None,
        privileged_globs: vec!["root".into(), "oracle".into(), "postgres".into()],
        hours: WorkHours::default(),
        seen_before: HashSet::from([("alice".to_string(), "198.51.100.7".to_string())]),
        last_login: HashMap::from([
            ("alice".to_string(), datetime!(2026-03-01 08:00 UTC)),
            ("bob".to_string(), datetime!(2026-02-01 08:00 UTC)),
            ("carol".to_string(), datetime!(2026-03-09 08:00 UTC)),
            ("erin".to_string(), datetime!(2025-11-01 08:00 UTC)),
        ]),
        second_factors: None,
    }
}

fn by<'a>(list: &'a Value, key: &str, val: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|x| x[key] == val)
        .unwrap_or_else(|| panic!("no entry with {key} = {val} in {list:#}"))
}

fn kinds(list: &Value, kind: &str) -> Vec<Value> {
    list.as_array()
        .unwrap()
        .iter()
        .filter(|x| x["kind"] == kind)
        .cloned()
        .collect()
}

#[test]
fn a_synthetic_day_fills_every_section() {
    let report = build(&day_input(), DAY);
    let j = serde_json::to_value(&report).unwrap();

    let keys: HashSet<&str> = j.as_object().unwrap().keys().map(String::as_str).collect();
    for k in [
        "date",
        "summary",
        "sessions",
        "recordings_to_review",
        "denials",
        "lockouts",
        "suspicious",
        "entitlements",
        "privileged_accounts",
        "grants",
        "policy_changes",
    ] {
        assert!(keys.contains(k), "missing top-level key {k}");
    }
    assert_eq!(j["date"], "2026-03-10");
    assert_eq!(j["generated_at"], "2026-03-11T00:05:00Z");
    assert_eq!(j["as_of"], "2026-03-11T00:00:00Z");
    assert_eq!(j["global_servers"], json!(["legacy"]));

    // Sessions: s0 (from the day before), s1, s3 (events only), s2; the
    // command-mode login is counted, not listed.
    let sessions = &j["sessions"];
    let ids: Vec<&str> = sessions
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["s0", "s1", "s3", "s2"]);
    let s1 = by(sessions, "id", "s1");
    assert_eq!(s1["user"], "alice");
    assert_eq!(s1["server"], "prod-db");
    assert_eq!(s1["account"], "oracle");
    assert_eq!(s1["source"], "198.51.100.7");
    assert_eq!(s1["start"], "2026-03-10T09:00:00Z");
    assert_eq!(s1["end"], "2026-03-10T09:30:00Z");
    assert_eq!(s1["duration_secs"], 1800);
    assert_eq!(s1["bytes_up"], 100);
    assert_eq!(s1["bytes_down"], 2000);
    assert_eq!(s1["recorded"], true);
    assert_eq!(s1["recording"], "s1");
    assert_eq!(s1["recording_path"], "2026-03-10/s1.cast");
    assert_eq!(s1["grant"], Value::Null);
    assert_eq!(s1["mode"], "ssh-forwarding");
    assert_eq!(s1["flagged"], false);
    assert_eq!(s1["out_of_hours"], false);
    assert_eq!(s1["live"], false);
    assert_eq!(s1["exit_status"], 0);
    let s2 = by(sessions, "id", "s2");
    assert_eq!(s2["grant"], 7);
    assert_eq!(s2["mode"], "global");
    assert_eq!(s2["flagged"], true);
    assert_eq!(s2["out_of_hours"], true);
    assert_eq!(s2["live"], true);
    assert_eq!(s2["duration_secs"], Value::Null);
    // Its row says a recording was due, but no cast exists: not shown as
    // recorded, and no link to a file that is not there.
    assert_eq!(s2["recorded"], false);
    assert_eq!(s2["recording"], Value::Null);
    assert_eq!(s2["recording_path"], Value::Null);
    let s0 = by(sessions, "id", "s0");
    assert_eq!(s0["started_before_day"], true);
    assert_eq!(s0["out_of_hours"], false, "reported on its own day");
    assert_eq!(s0["recorded"], false);
    assert_eq!(s0["recording"], Value::Null);
    assert_eq!(s0["duration_secs"], 1200);
    let s3 = by(sessions, "id", "s3");
    assert_eq!(s3["user"], "erin");
    assert_eq!(s3["bytes_up"], 10);
    assert_eq!(s3["bytes_down"], 20);
    assert_eq!(s3["duration_secs"], 300);
    assert_eq!(s3["mode"], "firewall");

    // Recordings: today's and the carried-over one, not the reviewed,
    // flagged or later ones.
    let review = j["recordings_to_review"].as_array().unwrap();
    assert_eq!(review.len(), 2);
    assert_eq!(review[0]["id"], "old");
    assert_eq!(review[0]["carried_over"], true);
    assert_eq!(review[0]["days_waiting"], 2);
    assert_eq!(review[0]["path"], "2026-03-08/old.cast");
    assert_eq!(review[1]["id"], "s1");
    assert_eq!(review[1]["carried_over"], false);

    // Denials: the three kinds, in time order.
    let denials = j["denials"].as_array().unwrap();
    let dk: Vec<&str> = denials
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(dk, ["command.blocked", "forward.denied", "access.denied"]);
    assert_eq!(denials[0]["target"], "rm -rf /");
    assert_eq!(denials[1]["target"], "prod-db:5432");
    assert_eq!(denials[1]["code"], "KO_PORT");
    assert_eq!(denials[2]["server"], "secret-srv");
    assert_eq!(denials[2]["reason"], "access denied");

    let lockouts = j["lockouts"].as_array().unwrap();
    assert_eq!(lockouts.len(), 1);
    assert_eq!(lockouts[0]["user"], "mallory");
    assert_eq!(lockouts[0]["failures"], 10);
    assert_eq!(lockouts[0]["until"], "2026-03-10T09:05:30Z");

    // Suspicious.
    let sus = &j["suspicious"];
    let bursts = kinds(sus, "failed_login_burst");
    assert_eq!(
        bursts.len(),
        2,
        "one per user and one per source: {bursts:#?}"
    );
    for b in &bursts {
        assert_eq!(b["count"], 6);
        assert_eq!(b["when"], "2026-03-10T03:00:00Z");
        assert_eq!(b["until"], "2026-03-10T03:05:00Z");
    }
    assert!(bursts.iter().any(|b| b["user"] == "mallory"));
    assert!(bursts.iter().any(|b| b["source"] == "192.0.2.66"));
    assert_eq!(kinds(sus, "lockout").len(), 1);
    let blocked = kinds(sus, "blocked_command");
    assert_eq!(blocked.len(), 1);
    assert!(blocked[0]["detail"].as_str().unwrap().contains("rm -rf /"));
    let hk = kinds(sus, "hostkey_mismatch");
    assert_eq!(hk.len(), 1);
    assert_eq!(hk[0]["server"], "web");
    let ooh = kinds(sus, "out_of_hours_session");
    assert_eq!(ooh.len(), 1);
    assert_eq!(ooh[0]["session"], "s2");
    assert_eq!(ooh[0]["when"], "2026-03-10T22:15:00Z");
    let first = kinds(sus, "first_seen_source");
    let pairs: HashSet<(String, String)> = first
        .iter()
        .map(|f| {
            (
                f["user"].as_str().unwrap().to_string(),
                f["source"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        HashSet::from([
            ("alice".to_string(), "192.0.2.50".to_string()),
            ("bob".to_string(), "203.0.113.9".to_string()),
        ])
    );
    let global = kinds(sus, "global_server_session");
    assert_eq!(global.len(), 1);
    assert_eq!(global[0]["server"], "legacy");
    let whens: Vec<&str> = sus
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["when"].as_str().unwrap())
        .collect();
    let mut sorted = whens.clone();
    sorted.sort();
    assert_eq!(whens, sorted, "suspicious entries are in time order");

    // Entitlements.
    let ent = &j["entitlements"];
    let names: Vec<&str> = ent
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob", "carol", "dave", "erin"]);
    let alice = by(ent, "user", "alice");
    assert_eq!(alice["last_login"], "2026-03-10T12:00:00Z");
    assert_eq!(alice["dormant"], false);
    assert_eq!(alice["access"][0]["server"], "prod-db");
    assert_eq!(alice["access"][0]["through"], "policy");
    assert_eq!(alice["access"][0]["rule"], "group:support");
    assert_eq!(alice["access"][0]["accounts"], json!(["oracle", "root"]));
    assert_eq!(alice["access"][0]["ports"], json!([1521]));
    let bob = by(ent, "user", "bob");
    assert_eq!(bob["expires"], "2026-03-20");
    assert_eq!(bob["expires_soon"], true);
    assert_eq!(bob["expired"], false);
    let legacy = by(&bob["access"], "server", "legacy");
    assert_eq!(legacy["any_port"], true);
    assert_eq!(legacy["flagged"], true);
    let via_grant = by(&bob["access"], "server", "prod-db");
    assert_eq!(via_grant["through"], "grant");
    assert_eq!(via_grant["grant"], 7);
    assert_eq!(via_grant["until"], "2026-03-11T04:05:00Z");
    assert_eq!(via_grant["approved_by"], "carol");
    let carol = by(ent, "user", "carol");
    assert_eq!(carol["expired"], true);
    let dave = by(ent, "user", "dave");
    assert_eq!(dave["dormant"], true);
    assert_eq!(dave["last_login"], Value::Null);
    assert_eq!(dave["access"][0]["through"], "grant-required");
    let erin = by(ent, "user", "erin");
    assert_eq!(erin["dormant"], true);
    assert_eq!(erin["last_login"], "2025-11-01T08:00:00Z");

    // Privileged accounts.
    let p = &j["privileged_accounts"];
    assert_eq!(p["vault"], true);
    let creds = &p["credentials"];
    let root = by(creds, "server", "legacy");
    assert_eq!(root["complies"], false);
    assert_eq!(root["reasons"], json!(["rotation was due on 2025-06-30"]));
    assert_eq!(root["rotation_due"], "2025-06-30");
    assert_eq!(root["age_days"], 434);
    let oracle = by(creds, "server", "prod-db");
    assert_eq!(oracle["complies"], true);
    assert_eq!(oracle["age_days"], 10);
    assert_eq!(oracle["last_used"], "2026-03-10T09:00:00Z");
    let used = &p["used"];
    let u_oracle = by(used, "account", "oracle");
    assert_eq!(u_oracle["users"], json!(["alice", "carol"]));
    assert_eq!(u_oracle["sessions"], 2);
    assert_eq!(u_oracle["in_vault"], true);
    let u_root = by(used, "account", "root");
    assert_eq!(u_root["users"], json!(["bob"]));
    assert_eq!(
        used.as_array().unwrap().len(),
        2,
        "deploy is not privileged"
    );

    // Grants: requested/approved #7, denied #8, expired #9 (from its row),
    // revoked #10.
    let grants = j["grants"].as_array().unwrap();
    let acts: Vec<(i64, &str)> = grants
        .iter()
        .map(|g| (g["grant"].as_i64().unwrap(), g["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        acts,
        [
            (9, "expired"),
            (7, "requested"),
            (7, "approved"),
            (8, "denied"),
            (10, "revoked")
        ]
    );
    let approved = by(&j["grants"], "action", "approved");
    assert_eq!(approved["by"], "carol");
    assert_eq!(approved["user"], "bob");
    assert_eq!(approved["until"], "2026-03-11T04:05:00Z");
    assert_eq!(approved["state"], "approved");
    assert_eq!(approved["accounts"], json!(["root"]));
    let expired = by(&j["grants"], "action", "expired");
    assert_eq!(expired["user"], "alice");
    assert_eq!(expired["until"], "2026-03-10T06:00:00Z");

    // Policy changes.
    let pc = j["policy_changes"].as_array().unwrap();
    assert_eq!(pc.len(), 2);
    assert_eq!(pc[0]["kind"], "reloaded");
    assert_eq!(pc[0]["digest"], "d2");
    assert_eq!(pc[0]["users"], 5);
    assert_eq!(pc[1]["kind"], "rejected");
    assert_eq!(pc[1]["problems"], json!(["a.toml:3:1: unknown key"]));
    assert_eq!(pc[1]["digest"], "d2");

    // Summary.
    let s = &j["summary"];
    assert_eq!(
        s["events"], 29,
        "the event of the day before is not counted"
    );
    assert_eq!(s["sessions"], 4);
    assert_eq!(s["sessions_recorded"], 1, "s1; s2 has no cast");
    assert_eq!(s["sessions_unrecorded"], 3);
    assert_eq!(s["sessions_flagged"], 1);
    assert_eq!(s["sessions_out_of_hours"], 1);
    assert_eq!(s["command_mode_logins"], 1);
    assert_eq!(s["users_active"], 4);
    assert_eq!(s["servers_accessed"], 3);
    assert_eq!(s["bytes_up"], 115);
    assert_eq!(s["bytes_down"], 2026);
    assert_eq!(s["auth_success"], 3);
    assert_eq!(s["auth_failure"], 10);
    assert_eq!(s["failed_login_bursts"], 2);
    assert_eq!(s["lockouts"], 1);
    assert_eq!(s["denials"], 3);
    assert_eq!(s["blocked_commands"], 1);
    assert_eq!(s["hostkey_mismatches"], 1);
    assert_eq!(s["first_seen_sources"], 2);
    assert_eq!(s["suspicious"], 9);
    assert_eq!(s["suspicious"], sus.as_array().unwrap().len());
    assert_eq!(s["recordings_to_review"], 2);
    assert_eq!(s["recordings_carried_over"], 1);
    assert_eq!(s["grants_requested"], 1);
    assert_eq!(s["grants_approved"], 1);
    assert_eq!(s["grants_denied"], 1);
    assert_eq!(s["grants_revoked"], 1);
    assert_eq!(s["grants_expired"], 1);
    assert_eq!(s["policy_reloads"], 1);
    assert_eq!(s["policy_rejections"], 1);
    assert_eq!(s["privileged_credentials"], 2);
    assert_eq!(s["privileged_noncompliant"], 1);
    assert_eq!(s["users_dormant"], json!(["dave", "erin"]));
    assert_eq!(s["users_expiring"], json!(["bob"]));
    assert_eq!(s["users_expired"], json!(["carol"]));
    assert_eq!(s["omitted"], json!({}));
    let mut hours = vec![0u64; 24];
    hours[9] = 1;
    hours[11] = 1;
    hours[22] = 1;
    assert_eq!(s["sessions_per_hour"], json!(hours));

    // The JSON reads back into the same report.
    let back: Report = serde_json::from_value(j).unwrap();
    assert_eq!(back, report);
}

#[test]
fn out_of_hours_boundaries() {
    let h = WorkHours::default();
    assert!(!h.contains(datetime!(2026-03-10 07:59:59 UTC)));
    assert!(h.contains(datetime!(2026-03-10 08:00:00 UTC)));
    assert!(h.contains(datetime!(2026-03-10 17:59:59 UTC)));
    assert!(!h.contains(datetime!(2026-03-10 18:00:00 UTC)));
    assert!(!h.contains(datetime!(2026-03-14 10:00 UTC)), "Saturday");
    assert!(!h.contains(datetime!(2026-03-15 10:00 UTC)), "Sunday");
    assert!(h.contains(datetime!(2026-03-13 10:00 UTC)), "Friday");
    // Taken in UTC whatever the offset it is given in.
    assert!(!h.contains(datetime!(2026-03-10 09:30 +02:00)));
    let weekend = WorkHours {
        start_hour: 0,
        end_hour: 24,
        days: vec![6, 7],
    };
    assert!(weekend.contains(datetime!(2026-03-14 23:59:59 UTC)));
    assert!(!weekend.contains(datetime!(2026-03-13 12:00 UTC)));

    // Through the report: sessions exactly on each boundary.
    let starts = [
        ("a", datetime!(2026-03-10 07:59:59 UTC), true),
        ("b", datetime!(2026-03-10 08:00:00 UTC), false),
        ("c", datetime!(2026-03-10 17:59:59 UTC), false),
        ("d", datetime!(2026-03-10 18:00:00 UTC), true),
        ("e", datetime!(2026-03-10 00:00:00 UTC), true),
    ];
    let input = ReportInput {
        sessions: starts
            .iter()
            .map(|(id, t, _)| {
                let end = *t + time::Duration::minutes(1);
                row(
                    id,
                    "alice",
                    Some("web"),
                    Some("www"),
                    "192.0.2.1",
                    *t,
                    Some(end),
                    false,
                )
            })
            .collect(),
        hours: WorkHours::default(),
        ..ReportInput::default()
    };
    let r = build(&input, DAY);
    for (id, _, expect) in starts {
        let s = r.sessions.iter().find(|s| s.id == id).unwrap();
        assert_eq!(s.out_of_hours, expect, "session {id}");
    }
    assert_eq!(r.summary.sessions_out_of_hours, 3);
    let saturday = build(&input, date!(2026 - 03 - 14));
    assert_eq!(saturday.summary.sessions, 0, "none overlaps that day");
}

#[test]
fn bursts_need_five_failures_in_ten_minutes() {
    let fails = |times: &[&str], user: &str, src_per_event: bool| -> Vec<AuditRecord> {
        times
            .iter()
            .enumerate()
            .map(|(n, t)| {
                let src = if src_per_event {
                    format!("192.0.2.{n}")
                } else {
                    "192.0.2.200".to_string()
                };
                ev(t, "auth.failure").user(user).source(&src)
            })
            .collect()
    };
    // Four in a minute (each from its own address): nothing.
    let four = fails(
        &[
            "2026-03-10T01:00:00Z",
            "2026-03-10T01:00:10Z",
            "2026-03-10T01:00:20Z",
            "2026-03-10T01:00:30Z",
        ],
        "u1",
        true,
    );
    // Five spread over exactly ten minutes, from one address: one burst
    // for the user and one for the address.
    let five = fails(
        &[
            "2026-03-10T02:00:00Z",
            "2026-03-10T02:02:00Z",
            "2026-03-10T02:05:00Z",
            "2026-03-10T02:08:00Z",
            "2026-03-10T02:10:00Z",
        ],
        "u2",
        false,
    );
    // Five spread over ten minutes and one second: nothing.
    let slow = fails(
        &[
            "2026-03-10T03:00:00Z",
            "2026-03-10T03:02:00Z",
            "2026-03-10T03:05:00Z",
            "2026-03-10T03:08:00Z",
            "2026-03-10T03:10:01Z",
        ],
        "u3",
        true,
    );
    let mut events = four;
    events.extend(five);
    events.extend(slow);
    // Failures with no user (a login name that did not parse) still count
    // for their source: six from one address across users.
    for n in 0..6 {
        let mut e = ev(&format!("2026-03-10T04:0{n}:00Z"), "auth.failure").source("198.51.100.99");
        e.detail = json!({"login": format!("junk{n}")});
        events.push(e);
    }
    let r = build(
        &ReportInput {
            events,
            ..ReportInput::default()
        },
        DAY,
    );
    let bursts: Vec<&model::Suspicious> = r
        .suspicious
        .iter()
        .filter(|s| s.kind == "failed_login_burst")
        .collect();
    assert_eq!(bursts.len(), 3, "{bursts:#?}");
    assert!(
        bursts
            .iter()
            .any(|b| b.user.as_deref() == Some("u2") && b.count == Some(5))
    );
    assert!(
        bursts
            .iter()
            .any(|b| b.source.as_deref() == Some("192.0.2.200") && b.count == Some(5))
    );
    let anon = bursts
        .iter()
        .find(|b| b.source.as_deref() == Some("198.51.100.99"))
        .unwrap();
    assert_eq!(anon.count, Some(6));
    assert_eq!(anon.user, None);
    assert_eq!(anon.until.as_deref(), Some("2026-03-10T04:05:00Z"));
    assert_eq!(r.summary.failed_login_bursts, 3);
}

/// A source may count the events of kinds outside `KINDS_READ` instead of
/// passing them (the live one does): that is only right if the builder
/// does nothing else with them.
#[test]
fn kinds_not_read_are_only_counted() {
    use crate::audit::EventKind;
    let base = day_input();
    let mut more = base.clone();
    let mut extra = 0;
    for (n, kind) in EventKind::ALL
        .iter()
        .filter(|k| !build::KINDS_READ.contains(k))
        .enumerate()
    {
        // Every field and detail key the builder reads for some kind.
        more.events.push(
            ev(&format!("2026-03-10T12:{n:02}:00Z"), kind.as_str())
                .user("alice")
                .server("prod-db")
                .account("oracle")
                .session("s1")
                .source("192.0.2.77")
                .detail(json!({
                    "grant": 1, "for": "bob", "reason": "x", "code": "DENIED",
                    "command": "rm -rf /", "rule": "r", "destination": "db:5432",
                    "mode": "global", "flagged": true, "bytes_up": 5, "bytes_down": 7,
                    "exit_status": 1, "duration_secs": 60.0, "until": "2026-03-10T13:00:00Z",
                    "failures": 9, "expected": "SHA256:a", "presented": "SHA256:b",
                    "digest": "d", "users": 1, "servers": 1, "problems": ["p"],
                })),
        );
        extra += 1;
    }
    assert!(extra > 5, "{extra}");
    let plain = build(&base, DAY);
    let mut with_more = build(&more, DAY);
    assert_eq!(with_more.summary.events, plain.summary.events + extra);
    with_more.summary.events = plain.summary.events;
    assert_eq!(with_more, plain);
}

#[test]
fn first_seen_sources_are_judged_against_earlier_days_only() {
    let events = vec![
        ev("2026-03-10T08:00:00Z", "auth.success")
            .user("alice")
            .source("192.0.2.1"),
        // Seen again the same day: still one entry.
        ev("2026-03-10T09:00:00Z", "auth.success")
            .user("alice")
            .source("192.0.2.1"),
        ev("2026-03-10T10:00:00Z", "auth.success")
            .user("alice")
            .source("192.0.2.2"),
        // bob's source is known for alice, not for bob.
        ev("2026-03-10T11:00:00Z", "auth.success")
            .user("bob")
            .source("192.0.2.2"),
    ];
    let input = ReportInput {
        events,
        seen_before: HashSet::from([("alice".to_string(), "192.0.2.2".to_string())]),
        ..ReportInput::default()
    };
    let r = build(&input, DAY);
    let first: Vec<(Option<&str>, Option<&str>, &str)> = r
        .suspicious
        .iter()
        .filter(|s| s.kind == "first_seen_source")
        .map(|s| (s.user.as_deref(), s.source.as_deref(), s.when.as_str()))
        .collect();
    assert_eq!(
        first,
        [
            (Some("alice"), Some("192.0.2.1"), "2026-03-10T08:00:00Z"),
            (Some("bob"), Some("192.0.2.2"), "2026-03-10T11:00:00Z"),
        ]
    );
}

#[test]
fn unreviewed_recordings_carry_over_until_reviewed() {
    let mut recordings = vec![
        rec("a", date!(2026 - 02 - 01), None, ReviewState::Unreviewed),
        rec("b", date!(2026 - 03 - 09), None, ReviewState::Unreviewed),
        rec("c", date!(2026 - 03 - 10), None, ReviewState::Unreviewed),
        rec("d", date!(2026 - 03 - 09), None, ReviewState::Reviewed),
    ];
    recordings[0].problem = Some("sidecar unreadable".into());
    let input = ReportInput {
        recordings: recordings.clone(),
        ..ReportInput::default()
    };
    let r = build(&input, DAY);
    let ids: Vec<(&str, bool, i64)> = r
        .recordings_to_review
        .iter()
        .map(|x| (x.id.as_str(), x.carried_over, x.days_waiting))
        .collect();
    assert_eq!(ids, [("a", true, 37), ("b", true, 1), ("c", false, 0)]);
    assert_eq!(
        r.recordings_to_review[0].problem.as_deref(),
        Some("sidecar unreadable")
    );
    assert_eq!(r.summary.recordings_carried_over, 2);
    // Reviewed the next day: gone from the next report.
    recordings[1].state = ReviewState::Reviewed;
    let next = build(
        &ReportInput {
            recordings,
            ..ReportInput::default()
        },
        date!(2026 - 03 - 11),
    );
    let ids: Vec<&str> = next
        .recordings_to_review
        .iter()
        .map(|x| x.id.as_str())
        .collect();
    assert_eq!(ids, ["a", "c"]);
}

#[test]
fn without_a_vault_privileged_use_comes_from_sessions() {
    let mut input = day_input();
    input.credentials = None;
    input.vault_note = Some("No vault is available".into());
    let r = build(&input, DAY);
    let p = &r.privileged_accounts;
    assert!(!p.vault);
    assert!(p.credentials.is_empty());
    assert_eq!(p.vault_note.as_deref(), Some("No vault is available"));
    let used: Vec<(&str, &str, Option<bool>)> = p
        .used
        .iter()
        .map(|u| (u.server.as_str(), u.account.as_str(), u.in_vault))
        .collect();
    assert_eq!(
        used,
        [("legacy", "root", None), ("prod-db", "oracle", None)]
    );
}

#[test]
fn capped_lists_count_what_they_leave_out() {
    let n = LIST_CAP + 25;
    let events: Vec<AuditRecord> = (0..n)
        .map(|k| {
            let t = datetime!(2026-03-10 12:00 UTC) + time::Duration::milliseconds(k as i64);
            ev(&build::ts(t), "access.denied")
                .user("bob")
                .server("x")
                .detail(json!({"reason": "no"}))
        })
        .collect();
    let r = build(
        &ReportInput {
            events,
            ..ReportInput::default()
        },
        DAY,
    );
    assert_eq!(r.denials.len(), LIST_CAP);
    assert_eq!(r.summary.denials, n as u64);
    assert_eq!(r.summary.omitted.get("denials"), Some(&25));
}

const HOSTILE: [&str; 5] = [
    "<script>alert(1)</script>",
    "=cmd|' /C calc'!A0",
    "| md",
    "\x1b[31mred\x1b[0m",
    "\"quoted\" & 'single'",
];

fn hostile_report() -> Report {
    let mut s = row(
        "h1",
        HOSTILE[0],
        Some(HOSTILE[1]),
        Some(HOSTILE[2]),
        HOSTILE[3],
        datetime!(2026-03-10 09:00 UTC),
        Some(datetime!(2026-03-10 09:01 UTC)),
        true,
    );
    s.end_reason = Some(HOSTILE[4].into());
    s.mode = Some("<b>global</b>".into());
    let events = vec![
        ev("2026-03-10T09:00:30Z", "command.blocked")
            .user(HOSTILE[0])
            .server(HOSTILE[1])
            .session("h1")
            .detail(
                json!({"command": "<script>x</script>\x1b]0;pwned\x07|`rm`", "reason": HOSTILE[3]}),
            ),
        ev("2026-03-10T09:00:40Z", "auth.success")
            .user(HOSTILE[2])
            .source(HOSTILE[3]),
    ];
    let input = ReportInput {
        events,
        sessions: vec![s],
        users: vec![UserFact {
            name: HOSTILE[0].into(),
            expires: None,
            from_directory: false,
        }],
        entitlements: vec![EntitlementFact {
            user: HOSTILE[0].into(),
            server: HOSTILE[1].into(),
            mode: "firewall".into(),
            accounts: vec![HOSTILE[2].into()],
            ports: vec![22],
            any_port: false,
            through: Through::Policy {
                rule: HOSTILE[3].into(),
            },
        }],
        // Its cast exists: linked, through the encoder.
        recordings: vec![rec("h1", DAY, Some("h1"), ReviewState::Unreviewed)],
        ..ReportInput::default()
    };
    build(&input, DAY)
}

#[test]
fn hostile_strings_are_escaped_in_html() {
    let html = render::html(
        &hostile_report(),
        &render::Links {
            recordings: "../recordings".into(),
        },
    );
    assert!(!html.to_ascii_lowercase().contains("<script"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!html.contains("<b>global</b>"));
    assert!(html.contains("&lt;b&gt;global&lt;/b&gt;"));
    assert!(html.contains("&quot;quoted&quot; &amp; &#39;single&#39;"));
    assert!(!html.contains('\x1b'));
    assert!(!html.contains('\x07'));
    assert!(html.contains("=cmd|&#39; /C calc&#39;!A0"));
    // Self-contained: no external resource of any kind.
    for bad in [
        "<link", "src=", "@import", "url(", "<script", "<iframe", "<object",
    ] {
        assert!(!html.contains(bad), "found {bad}");
    }
    // The recording link is relative and encoded.
    assert!(
        html.contains("href=\"../recordings/2026-03-10/h1.cast\""),
        "{html}"
    );
}

#[test]
fn hostile_strings_are_escaped_in_markdown() {
    let md = render::markdown(
        &hostile_report(),
        &render::Links {
            recordings: "../recordings".into(),
        },
    );
    assert!(
        md.contains("[h1](../recordings/2026-03-10/h1.cast)"),
        "{md}"
    );
    assert!(!md.contains('\x1b'));
    assert!(!md.contains('\x07'));
    assert!(!md.contains("<script>"));
    assert!(md.contains("\\<script\\>alert(1)\\</script\\>"));
    assert!(md.contains("\\| md"));
    assert!(md.contains("\\`rm\\`"));
    // Every table row has exactly as many unescaped pipes as its header.
    for block in md.split("\n\n") {
        let lines: Vec<&str> = block.lines().filter(|l| l.starts_with('|')).collect();
        let Some(head) = lines.first() else { continue };
        let pipes = |l: &str| {
            let b = l.as_bytes();
            (0..b.len())
                .filter(|&i| b[i] == b'|' && (i == 0 || b[i - 1] != b'\\'))
                .count()
        };
        for l in &lines {
            assert_eq!(pipes(l), pipes(head), "row breaks its table: {l}");
        }
    }
}

#[test]
fn hostile_strings_are_neutralised_in_csv() {
    let csv = render::csv(&hostile_report());
    assert!(!csv.contains('\x1b'));
    let mut lines = csv.split("\r\n");
    let header = lines.next().unwrap();
    assert!(header.starts_with("id,user,server,account,source,start,end"));
    let row = lines.next().unwrap();
    assert!(row.contains("\"'=cmd|' /C calc'!A0\""), "{row}");
    assert!(row.contains("\"<script>alert(1)</script>\""), "{row}");
    assert!(row.contains("\"red\""), "{row}");
    assert!(row.contains("\"\"\"quoted\"\" & 'single'\""), "{row}");
    assert_eq!(lines.next(), Some(""));
    assert_eq!(lines.next(), None);
    // No cell starts a formula.
    for cell in row.split(',') {
        let c = cell.trim_start_matches('"');
        assert!(
            !c.starts_with(['=', '+', '-', '@']),
            "cell {cell:?} starts a formula"
        );
    }
}

#[test]
fn every_section_is_rendered() {
    let r = build(&day_input(), DAY);
    let html = render::html(
        &r,
        &render::Links {
            recordings: "../recordings".into(),
        },
    );
    for id in [
        "summary",
        "sessions",
        "review",
        "suspicious",
        "denials",
        "lockouts",
        "entitlements",
        "privileged",
        "grants",
        "policy",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "section {id}");
    }
    assert_eq!(html.matches("<rect ").count(), 24, "one bar per hour");
    assert!(html.contains("href=\"../recordings/2026-03-08/old.cast\""));
    assert!(html.contains("grant #7 until 2026-03-11T04:05:00Z, approved by carol"));
    let md = render::markdown(
        &r,
        &render::Links {
            recordings: "../recordings".into(),
        },
    );
    assert!(md.contains("[old](../recordings/2026-03-08/old.cast)"));
    for h in [
        "## Summary",
        "## Sessions",
        "## Recordings to review",
        "## Suspicious",
        "## Denials",
        "## Lockouts",
        "## Entitlements",
        "## Privileged accounts",
        "## Grants",
        "## Policy changes",
    ] {
        assert!(md.contains(h), "{h}");
    }
    let csv = render::csv(&r);
    assert_eq!(csv.lines().count(), 1 + r.sessions.len());
}

#[test]
fn files_are_written_for_each_format() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("reports");
    let recs = dir.path().join("recordings");
    let r = build(&day_input(), DAY);
    let written = write_report(&r, &Format::ALL, &out, &recs).unwrap();
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "2026-03-10.html",
            "2026-03-10.md",
            "2026-03-10.json",
            "2026-03-10.csv"
        ]
    );
    let back: Report =
        serde_json::from_slice(&std::fs::read(out.join("2026-03-10.json")).unwrap()).unwrap();
    assert_eq!(back, r);
    let html = std::fs::read_to_string(out.join("2026-03-10.html")).unwrap();
    assert!(html.contains("href=\"../recordings/2026-03-10/s1.cast\""));
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        4,
        "no temporary files"
    );
    // Not for every local user: files 0640 in a 0750 folder.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&out), 0o750, "{}", out.display());
    for p in &written {
        assert_eq!(mode(p), 0o640, "{}", p.display());
    }
    // Gatehouse's own folder, made world-readable by hand: tightened, never
    // loosened.
    use crate::report::secure_reports_folder;
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
    secure_reports_folder(&out).unwrap();
    assert_eq!(mode(&out), 0o750);
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o700)).unwrap();
    secure_reports_folder(&out).unwrap();
    assert_eq!(mode(&out), 0o700);
    // To look at it: GATEHOUSE_KEEP_REPORT=/tmp/day.html
    if let Some(keep) = std::env::var_os("GATEHOUSE_KEEP_REPORT") {
        std::fs::copy(out.join("2026-03-10.html"), keep).unwrap();
    }
}

/// A fake source for `generate`: fixed facts and events.
struct Fake {
    input: ReportInput,
    calls: std::sync::Mutex<Vec<String>>,
}

impl ReportSource for Fake {
    async fn events(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        kinds: &[&str],
        sink: &mut (dyn FnMut(AuditRecord) + Send),
    ) -> Result<u64, ReportError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("events {} {}", build::ts(from), build::ts(to)));
        let mut unread = 0;
        for e in &self.input.events {
            if kinds.contains(&e.kind.as_str()) {
                sink(e.clone());
            } else {
                unread += 1;
            }
        }
        Ok(unread)
    }
    async fn login_groups(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<Vec<crate::store::LoginGroup>, ReportError> {
        self.calls.lock().unwrap().push(format!(
            "login groups {} {}",
            build::ts(from),
            build::ts(to)
        ));
        // Grouped here one event at a time, in the order given.
        let mut groups: Vec<crate::store::LoginGroup> = Vec::new();
        for e in self
            .input
            .events
            .iter()
            .filter(|e| e.kind == "auth.success")
        {
            let t = OffsetDateTime::parse(&e.ts, &time::format_description::well_known::Rfc3339)
                .unwrap();
            if t < from || t >= to {
                continue;
            }
            match groups
                .iter_mut()
                .find(|g| g.user == e.user && g.source == e.source)
            {
                Some(g) => {
                    g.count += 1;
                    g.last = g.last.max(t);
                    if t < g.first {
                        g.first = t;
                        g.first_session.clone_from(&e.session);
                    }
                }
                None => groups.push(crate::store::LoginGroup {
                    user: e.user.clone(),
                    source: e.source.clone(),
                    count: 1,
                    first: t,
                    first_session: e.session.clone(),
                    last: t,
                }),
            }
        }
        Ok(groups)
    }
    async fn sessions(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<Vec<SessionRow>, ReportError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("sessions {} {}", build::ts(from), build::ts(to)));
        Ok(self.input.sessions.clone())
    }
    async fn grants(&self) -> Result<Vec<Grant>, ReportError> {
        Ok(self.input.grants.clone())
    }
    async fn logins(
        &self,
        since: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<LoginHistory, ReportError> {
        self.calls.lock().unwrap().push(format!(
            "logins {} {}",
            build::ts(since),
            build::ts(until)
        ));
        Ok(LoginHistory {
            last: self.input.last_login.clone(),
            seen: self.input.seen_before.clone(),
        })
    }
    async fn credentials(
        &self,
        _as_of: OffsetDateTime,
    ) -> Result<Option<Vec<CredentialFact>>, ReportError> {
        Err(ReportError::Unavailable("vault table missing".into()))
    }
    async fn recordings(&self) -> Result<Vec<RecordingFact>, ReportError> {
        Ok(self.input.recordings.clone())
    }
}

#[tokio::test]
async fn generate_streams_events_and_asks_for_the_right_windows() {
    let fake = Fake {
        input: day_input(),
        calls: Default::default(),
    };
    let config = crate::config::Config::default();
    let policy = crate::policy::Policy::default();
    let report = generate(
        &config,
        &fake,
        &policy,
        DAY,
        datetime!(2026-03-10 15:00 UTC),
    )
    .await
    .unwrap();
    let calls = fake.calls.lock().unwrap().clone();
    assert!(calls.contains(&"sessions 2026-03-10T00:00:00Z 2026-03-11T00:00:00Z".to_string()));
    assert!(calls.contains(&"logins 2025-12-11T00:00:00Z 2026-03-10T00:00:00Z".to_string()));
    assert!(calls.contains(&"events 2026-03-10T00:00:00Z 2026-03-11T00:00:00Z".to_string()));
    assert!(calls.contains(&"login groups 2026-03-10T00:00:00Z 2026-03-11T00:00:00Z".to_string()));
    // Logins as groups and the other events streamed give the report the
    // in-memory build gives from every event.
    let mut all = fake.input.clone();
    all.generated_at = Some(datetime!(2026-03-10 15:00 UTC));
    let in_memory = build(&all, DAY);
    assert_eq!(report.summary.auth_success, in_memory.summary.auth_success);
    assert!(report.summary.auth_success > 0);
    assert_eq!(report.summary.events, in_memory.summary.events);
    assert_eq!(report.suspicious, in_memory.suspicious);
    // A day not yet over is judged at the generation time.
    assert_eq!(report.as_of, "2026-03-10T15:00:00Z");
    assert_eq!(report.sessions.len(), 4);
    assert_eq!(report.summary.failed_login_bursts, 2);
    // The vault error is reported, and the fallback still lists usage.
    assert!(!report.privileged_accounts.vault);
    assert!(
        report
            .privileged_accounts
            .vault_note
            .as_deref()
            .unwrap()
            .contains("vault table missing")
    );
    assert_eq!(report.privileged_accounts.used.len(), 2);
    assert_eq!(report.working_hours.start_hour, 8);
}

/// Synthetic events at volume, generated on the fly: a mix of logins,
/// failures, sessions, exec and denials.
fn synthetic(n: usize, date: Date) -> impl Iterator<Item = AuditRecord> {
    let (start, _) = day_bounds(date);
    let step = 86_400_000_000i64 / n.max(1) as i64; // microseconds
    (0..n).map(move |k| {
        let t = start + time::Duration::microseconds(step * k as i64);
        let ts = build::ts(t);
        let user = format!("user{}", k % 50);
        let src = format!("10.0.{}.{}", (k / 256) % 256, k % 256);
        let session = format!("s{}", k / 10);
        match k % 10 {
            0 => ev(&ts, "auth.success").user(&user).source(&src),
            1 => ev(&ts, "session.start")
                .user(&user)
                .server("web")
                .account(if k % 20 == 1 { "root" } else { "www" })
                .session(&session)
                .source(&src)
                .detail(json!({"mode": "firewall", "grant": null, "flagged": false})),
            2..=6 => ev(&ts, "exec")
                .user(&user)
                .server("web")
                .session(&session)
                .detail(json!({"command": "ls -la", "pty": false})),
            7 => ev(&ts, "auth.failure")
                .user(&user)
                .source("192.0.2.66")
                .detail(json!({"reason": "bad key"})),
            8 => ev(&ts, "access.denied")
                .user(&user)
                .server("db")
                .source(&src)
                .detail(json!({"code": "KO_ACCESS_DENIED", "reason": "access denied"})),
            _ => ev(&ts, "session.end")
                .user(&user)
                .server("web")
                .session(&session)
                .detail(json!({"bytes_up": 10, "bytes_down": 100, "duration_secs": 1.0})),
        }
    })
}

fn build_streamed(n: usize) -> Report {
    let mut b = DayBuilder::new(DAY);
    for e in synthetic(n, DAY) {
        b.push(&e);
    }
    b.finish(&ReportInput {
        privileged_globs: vec!["root".into()],
        ..ReportInput::default()
    })
}

#[test]
fn two_hundred_thousand_events_build_in_one_pass() {
    let n = 200_000;
    let r = build_streamed(n);
    assert_eq!(r.summary.events, n as u64);
    assert_eq!(r.summary.sessions, (n / 10) as u64);
    assert_eq!(r.summary.auth_failure, (n / 10) as u64);
    assert_eq!(r.summary.denials, (n / 10) as u64);
    assert_eq!(r.denials.len(), LIST_CAP);
    assert_eq!(
        r.summary.omitted.get("denials"),
        Some(&((n / 10 - LIST_CAP) as u64))
    );
    assert!(r.summary.failed_login_bursts >= 1);
    assert!(r.suspicious.len() <= 7 * LIST_CAP);
    assert_eq!(r.privileged_accounts.used.len(), 1);
    // And it renders.
    let html = render::html(
        &r,
        &render::Links {
            recordings: String::new(),
        },
    );
    assert!(html.len() > 1000);
}

/// Times the build for `GATEHOUSE_BENCH_EVENTS` events (default 10^6):
/// `cargo test --release --lib report::tests::bench_build -- --ignored --nocapture`
#[test]
#[ignore]
fn bench_build() {
    let n: usize = std::env::var("GATEHOUSE_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let events: Vec<AuditRecord> = synthetic(n, DAY).collect();
    let t0 = std::time::Instant::now();
    let mut b = DayBuilder::new(DAY);
    for e in &events {
        b.push(e);
    }
    let r = b.finish(&ReportInput::default());
    let built = t0.elapsed();
    let html = render::html(
        &r,
        &render::Links {
            recordings: String::new(),
        },
    );
    let json = render::json(&r).unwrap();
    let csv = render::csv(&r);
    let total = t0.elapsed();
    println!(
        "{n} events: built in {built:?}, built and rendered in {total:?} \
         (html {} KiB, json {} KiB, csv {} KiB, {} sessions)",
        html.len() / 1024,
        json.len() / 1024,
        csv.len() / 1024,
        r.sessions.len()
    );
}

#[tokio::test]
async fn the_nightly_run_writes_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::config::Config {
        reports: dir.path().join("reports"),
        recordings: dir.path().join("recordings"),
        ..Default::default()
    };
    let fake = Fake {
        input: day_input(),
        calls: Default::default(),
    };
    let policy = crate::policy::Policy::default();
    let now = datetime!(2026-03-11 00:05 UTC);
    let first = job::write_if_missing(&config, &fake, &policy, DAY, now)
        .await
        .unwrap()
        .expect("written");
    assert_eq!(first.len(), 4);
    let again = job::write_if_missing(&config, &fake, &policy, DAY, now)
        .await
        .unwrap();
    assert_eq!(again, None, "already there");
    // A missing file is made again.
    std::fs::remove_file(config.reports.join("2026-03-10.md")).unwrap();
    let redo = job::write_if_missing(&config, &fake, &policy, DAY, now)
        .await
        .unwrap();
    assert_eq!(redo.map(|p| p.len()), Some(4));
}

#[test]
fn second_factors_missing_where_required_and_wrong_code_bursts_are_suspicious() {
    let mut events: Vec<AuditRecord> = (0..5)
        .map(|i| ev(&format!("2026-03-10T09:0{i}:00Z"), "mfa.failure").user("bob"))
        .collect();
    // Four for carol: no burst.
    events.extend(
        (0..4).map(|i| ev(&format!("2026-03-10T10:0{i}:00Z"), "mfa.failure").user("carol")),
    );
    let fact =
        |user: &str, required: bool, enrolled: bool| crate::report::input::SecondFactorFact {
            user: user.into(),
            required,
            enrolled,
        };
    let input = ReportInput {
        events,
        second_factors: Some(vec![
            fact("alice", true, false),
            fact("bob", true, true),
            fact("carol", false, false),
        ]),
        ..ReportInput::default()
    };
    let r = build(&input, DAY);
    let kinds: Vec<(&str, Option<&str>)> = r
        .suspicious
        .iter()
        .map(|s| (s.kind.as_str(), s.user.as_deref()))
        .collect();
    assert!(
        kinds.contains(&("mfa_failure_burst", Some("bob"))),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("mfa_not_enrolled", Some("alice"))),
        "{kinds:?}"
    );
    assert!(!kinds.iter().any(|(_, u)| *u == Some("carol")), "{kinds:?}");
    assert_eq!(r.second_factors.len(), 3);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["second_factors"][0]["user"], "alice");
    assert_eq!(json["second_factors"][0]["required"], true);
    assert_eq!(json["second_factors"][0]["enrolled"], false);
}

/// Access reviews (contract section 14): each standing entitlement carries
/// `certified_at`, `certified_by` and `due`; overdue ones are suspicious.
#[test]
fn access_reviews_in_entitlements_and_suspicious() {
    use crate::policy::entitlements::{ReviewState as S, Reviewed, Source};
    let reviewed = |account: &str, at: Option<OffsetDateTime>, state: S| Reviewed {
        user: "alice".into(),
        server: "prod-db".into(),
        account: account.into(),
        source: Source::Policy,
        grant: None,
        certified_at: at,
        certified_by: at.map(|_| "carol".to_string()),
        note: None,
        due: at.map(|t| t + time::Duration::days(90)),
        state,
        suspended_by: None,
        reason: None,
    };
    let input = ReportInput {
        generated_at: Some(datetime!(2026-03-11 00:05 UTC)),
        users: vec![UserFact {
            name: "alice".into(),
            expires: None,
            from_directory: false,
        }],
        entitlements: vec![
            EntitlementFact {
                user: "alice".into(),
                server: "prod-db".into(),
                mode: "ssh-forwarding".into(),
                accounts: vec!["oracle".into(), "root".into()],
                ports: vec![],
                any_port: false,
                through: Through::Policy {
                    rule: "group:support".into(),
                },
            },
            EntitlementFact {
                user: "alice".into(),
                server: "web".into(),
                mode: "on-request".into(),
                accounts: vec!["www".into()],
                ports: vec![],
                any_port: false,
                through: Through::Grant {
                    id: 3,
                    until: Some(datetime!(2026-03-11 04:05 UTC)),
                    approved_by: Some("carol".into()),
                },
            },
        ],
        access_reviews: vec![
            reviewed("oracle", Some(datetime!(2026-02-01 10:00 UTC)), S::Ok),
            reviewed("root", None, S::Overdue),
        ],
        ..ReportInput::default()
    };
    let report = build(&input, DAY);
    let j: Value = serde_json::to_value(&report).unwrap();
    let alice = by(&j["entitlements"], "user", "alice");
    let db = by(&alice["access"], "server", "prod-db");
    // The row's fields come from its least recently certified account.
    assert_eq!(db["review"], "overdue");
    assert_eq!(db["certified_at"], Value::Null);
    assert_eq!(db["due"], Value::Null);
    let oracle = by(&db["reviews"], "account", "oracle");
    assert_eq!(oracle["certified_at"], "2026-02-01T10:00:00Z");
    assert_eq!(oracle["certified_by"], "carol");
    assert_eq!(oracle["due"], "2026-05-02T10:00:00Z");
    assert_eq!(oracle["state"], "ok");
    // A temporary grant is not reviewed, but has the keys.
    let web = by(&alice["access"], "server", "web");
    for k in ["certified_at", "certified_by", "due"] {
        assert!(web.get(k).is_some_and(Value::is_null), "{k}: {web}");
    }
    let sus: Vec<&Value> = j["suspicious"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "review_overdue")
        .collect();
    assert_eq!(sus.len(), 1, "{sus:?}");
    assert_eq!(sus[0]["user"], "alice");
    assert_eq!(sus[0]["server"], "prod-db");
    assert!(
        sus[0]["detail"].as_str().unwrap().contains("root"),
        "{}",
        sus[0]["detail"]
    );
    assert_eq!(j["summary"]["reviews_overdue"], 1);

    // Certified since: nothing overdue, the row shows the older one.
    let mut input = input;
    input.access_reviews[1] = reviewed("root", Some(datetime!(2026-01-15 10:00 UTC)), S::Ok);
    let j: Value = serde_json::to_value(build(&input, DAY)).unwrap();
    let db = by(
        &by(&j["entitlements"], "user", "alice")["access"],
        "server",
        "prod-db",
    );
    assert_eq!(db["certified_at"], "2026-01-15T10:00:00Z");
    assert_eq!(db["due"], "2026-04-15T10:00:00Z");
    assert_eq!(db["review"], "ok");
    assert_eq!(j["summary"]["reviews_overdue"], 0);
}

#[test]
fn directory_changes_and_entitlement_sources() {
    let mut input = day_input();
    if let Some(u) = input.users.iter_mut().find(|u| u.name == "dave") {
        u.from_directory = true;
    }
    input.events.push(
        ev("2026-03-10T09:00:00Z", "user.added")
            .user("zoe")
            .detail(json!({"source": "directory", "groups": ["support"], "keys": 1})),
    );
    input.events.push(
        ev("2026-03-10T10:00:00Z", "user.changed")
            .user("dave")
            .detail(json!({"groups_joined": [], "groups_left": ["support"], "keys_added": 0, "keys_removed": 1})),
    );
    input
        .events
        .push(ev("2026-03-10T11:00:00Z", "user.removed").user("yann"));
    let r = build(&input, DAY);
    let kinds: Vec<(&str, &str)> = r
        .directory_changes
        .iter()
        .map(|c| (c.user.as_deref().unwrap_or(""), c.kind.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![("zoe", "joiner"), ("dave", "mover"), ("yann", "leaver")]
    );
    assert_eq!(
        r.directory_changes[1].groups_left,
        vec!["support".to_string()]
    );
    assert_eq!(r.directory_changes[1].keys_removed, 1);
    let source = |name: &str| {
        r.entitlements
            .iter()
            .find(|e| e.user == name)
            .map(|e| e.source.clone())
    };
    assert_eq!(source("dave").as_deref(), Some("directory"));
    assert_eq!(source("alice").as_deref(), Some("policy"));
    // The Markdown and HTML reports show both too.
    let links = render::Links {
        recordings: "../recordings".into(),
    };
    let md = render::markdown(&r, &links);
    assert!(md.contains("## Directory changes"), "{md}");
    assert!(
        md.contains("| dave | mover | left support; 1 key(s) removed |"),
        "{md}"
    );
    assert!(md.contains("| dave (directory) |"), "{md}");
    let html = render::html(&r, &links);
    assert!(
        html.contains("<h2 id=\"directory\">Directory changes</h2>"),
        "{html}"
    );
    assert!(html.contains("<td>yann</td><td>leaver</td>"), "{html}");
    assert!(html.contains("<td>dave (directory)</td>"), "{html}");
}
