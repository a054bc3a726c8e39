//! The console's store queries (issue 21) on both backends: the facts
//! behind the sessions list's kind and blocked columns, the list's
//! prefix filters, command-mode hiding and duration order, and the Today
//! page's counts. Also the single sign-ons under way (issue 20 item 7,
//! migration 0021): taken once, by any node.

#[path = "support/pg.rs"]
mod pg;
#[macro_use]
#[path = "support/db.rs"]
mod db;

use db::Db;
use gatehouse::audit::{AuditEvent, EventKind};
use gatehouse::grants::{Grant, GrantState};
use gatehouse::store::{Backend, DurationOrder, NewSignIn, SessionFilter, SessionRow, SignInTake};
use gatehouse::vault::Secret;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

on_both_backends!(
    facts_kinds_and_the_list_filters,
    today_counts,
    sign_ins_are_taken_once_by_their_browser,
    sign_ins_expire_are_swept_and_capped,
    a_sign_in_begun_on_one_node_is_taken_on_another,
);

const T0: OffsetDateTime = datetime!(2026-03-10 12:00 UTC);

fn session(
    id: &str,
    user: &str,
    server: Option<&str>,
    mode: Option<&str>,
    minute: i64,
) -> SessionRow {
    SessionRow {
        id: id.into(),
        user: user.into(),
        server: server.map(str::to_string),
        account: server.map(|_| "root".to_string()),
        source: "127.0.0.1".into(),
        node: "n1".into(),
        started_at: T0 + Duration::minutes(minute),
        ended_at: None,
        mode: mode.map(str::to_string),
        grant_id: None,
        recorded: false,
        bytes_up: 0,
        bytes_down: 0,
        exit_status: None,
        end_reason: None,
        flagged: None,
        review: None,
    }
}

fn ev(kind: EventKind, session: &str) -> AuditEvent {
    AuditEvent::new(kind).user("alice").session(session)
}

fn ids(rows: &[SessionRow]) -> Vec<&str> {
    rows.iter().map(|r| r.id.as_str()).collect()
}

async fn facts_kinds_and_the_list_filters(db: Db) {
    let s = db.open("n1").await;
    // shell (2 blocked), command mode, refused, ProxyJump, and Bob's exec.
    s.session_start(&session("shell", "alice", Some("web1"), Some("proxy"), 1))
        .await
        .unwrap();
    s.session_start(&session("cmd", "alice", None, None, 2))
        .await
        .unwrap();
    s.session_start(&session("refused", "alice", Some("db1"), None, 3))
        .await
        .unwrap();
    s.session_start(&session("jump", "alice", None, None, 4))
        .await
        .unwrap();
    s.session_start(&session("bob1", "Bob_x", Some("Web2"), Some("proxy"), 5))
        .await
        .unwrap();
    for e in [
        ev(EventKind::AuthSuccess, "shell")
            .detail("factors", serde_json::json!(["publickey", "totp"])),
        ev(EventKind::Exec, "shell").detail("kind", "shell"),
        ev(EventKind::CommandBlocked, "shell").detail("command", "shutdown -h now"),
        ev(EventKind::CommandBlocked, "shell").detail("command", "reboot"),
        ev(EventKind::AccessDenied, "refused").detail("code", "KO_NEED_GRANT"),
        ev(EventKind::JumpOpen, "jump").detail("destination", "10.0.0.5:22"),
        ev(EventKind::Exec, "bob1")
            .detail("kind", "exec")
            .detail("command", "uptime"),
    ] {
        s.audit(&e).await.unwrap();
    }
    let all: Vec<String> = ["shell", "cmd", "refused", "jump", "bob1"]
        .iter()
        .map(|x| x.to_string())
        .collect();
    let facts = s.session_facts(&all).await.unwrap();
    let shell = &facts["shell"];
    assert_eq!(shell.count("command.blocked"), 2);
    assert_eq!(
        shell.first("command.blocked").unwrap()["command"],
        "shutdown -h now",
        "the first of its kind"
    );
    assert_eq!(shell.first("exec").unwrap()["kind"], "shell");
    assert_eq!(shell.first("auth.success").unwrap()["factors"][1], "totp");
    assert_eq!(
        facts["refused"].first("access.denied").unwrap()["code"],
        "KO_NEED_GRANT"
    );
    assert_eq!(facts["jump"].count("jump.open"), 1);
    assert!(!facts.contains_key("cmd"));

    // Hidden by default: command-mode calls and refusals, not ProxyJump.
    let targets = SessionFilter {
        targets_only: true,
        ..Default::default()
    };
    let page = s.sessions_page(&targets, 50).await.unwrap();
    assert_eq!(ids(&page.rows), ["bob1", "jump", "shell"]);
    let page = s
        .sessions_page(&SessionFilter::default(), 50)
        .await
        .unwrap();
    assert_eq!(page.rows.len(), 5);

    // Prefixes, in any case; LIKE's wildcards are literal.
    let f = |user: &str, server: Option<&str>| SessionFilter {
        user_prefix: Some(user.into()),
        server_prefix: server.map(str::to_string),
        ..Default::default()
    };
    let page = s.sessions_page(&f("BOB", None), 50).await.unwrap();
    assert_eq!(ids(&page.rows), ["bob1"]);
    let page = s.sessions_page(&f("bob_", Some("wEB")), 50).await.unwrap();
    assert_eq!(ids(&page.rows), ["bob1"]);
    let page = s.sessions_page(&f("b%", None), 50).await.unwrap();
    assert!(
        page.rows.is_empty(),
        "% is no wildcard: {:?}",
        ids(&page.rows)
    );
    let page = s.sessions_page(&f("al", Some("db")), 50).await.unwrap();
    assert_eq!(ids(&page.rows), ["refused"]);

    // By duration, live ones up to now; paged by the keyset cursor.
    s.session_end("shell", T0 + Duration::minutes(31), 0, 0, Some(0), "done")
        .await
        .unwrap();
    s.session_end("bob1", T0 + Duration::minutes(6), 0, 0, Some(0), "done")
        .await
        .unwrap();
    s.session_end("jump", T0 + Duration::minutes(14), 0, 0, None, "done")
        .await
        .unwrap();
    let now = T0 + Duration::hours(1);
    let p1 = s
        .sessions_by_duration(&targets, DurationOrder::Longest, now, None, 2)
        .await
        .unwrap();
    assert_eq!(dids(&p1.rows), ["shell", "jump"]);
    // The stored durations: 30 and 10 minutes.
    assert_eq!(p1.rows[0].0, 30 * 60_000);
    assert_eq!(p1.next, Some((10 * 60_000, "jump".to_string())));
    let p2 = s
        .sessions_by_duration(&targets, DurationOrder::Longest, now, p1.next.as_ref(), 2)
        .await
        .unwrap();
    assert_eq!(dids(&p2.rows), ["bob1"]);
    assert!(p2.next.is_none());
    // Live ones (cmd and refused, 58 and 57 minutes at `now`) are merged in.
    let all = SessionFilter::default();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let p = s
            .sessions_by_duration(&all, DurationOrder::Longest, now, after.as_ref(), 2)
            .await
            .unwrap();
        seen.extend(p.rows.iter().map(|(ms, r)| (r.id.clone(), *ms)));
        match p.next {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            ("cmd".to_string(), 58 * 60_000),
            ("refused".to_string(), 57 * 60_000),
            ("shell".to_string(), 30 * 60_000),
            ("jump".to_string(), 10 * 60_000),
            ("bob1".to_string(), 60_000),
        ]
    );
    let short = s
        .sessions_by_duration(&all, DurationOrder::Shortest, now, None, 1)
        .await
        .unwrap();
    assert_eq!(dids(&short.rows), ["bob1"]);
    let short2 = s
        .sessions_by_duration(&all, DurationOrder::Shortest, now, short.next.as_ref(), 10)
        .await
        .unwrap();
    assert_eq!(dids(&short2.rows), ["jump", "shell", "refused", "cmd"]);
    let ended = SessionFilter {
        live: Some(false),
        user: Some("alice".into()),
        ..Default::default()
    };
    let p = s
        .sessions_by_duration(&ended, DurationOrder::Longest, now, None, 10)
        .await
        .unwrap();
    assert_eq!(dids(&p.rows), ["shell", "jump"]);

    // Every way a session ends writes its duration: a lost node's
    // sessions (ended when it was last seen) and a crashed process's.
    let mut lost = session("lost", "carol", Some("web1"), Some("proxy"), 0);
    lost.node = "n2".into();
    s.session_start(&lost).await.unwrap();
    s.close_lost_sessions("n2", T0 + Duration::minutes(7), "node lost", None)
        .await
        .unwrap();
    let mut stale = session("stale", "carol", Some("web1"), Some("proxy"), 0);
    stale.node = "n3".into();
    s.session_start(&stale).await.unwrap();
    s.end_stale_sessions("n3", "restarted").await.unwrap();
    let carol = SessionFilter {
        user: Some("carol".into()),
        ..Default::default()
    };
    let p = s
        .sessions_by_duration(&carol, DurationOrder::Shortest, now, None, 10)
        .await
        .unwrap();
    assert_eq!(dids(&p.rows), ["lost", "stale"]);
    assert_eq!(p.rows[0].0, 7 * 60_000);
    // Ended from the start: written at once.
    let mut refused = session("refused2", "carol", Some("web1"), None, 0);
    refused.ended_at = Some(refused.started_at + Duration::seconds(2));
    s.session_start(&refused).await.unwrap();
    let p = s
        .sessions_by_duration(&carol, DurationOrder::Shortest, now, None, 1)
        .await
        .unwrap();
    assert_eq!(
        p.rows[0],
        (2000, s.session_get("refused2").await.unwrap().unwrap())
    );

    // The ended part walks one index in order, however deep the page and
    // whatever the filter: no sort of the matching rows.
    let cursor = (600_000, "x".to_string());
    for (f, order, after, index) in [
        (
            SessionFilter::default(),
            DurationOrder::Longest,
            None,
            "sessions_duration",
        ),
        (
            SessionFilter::default(),
            DurationOrder::Shortest,
            Some(&cursor),
            "sessions_duration",
        ),
        (
            targets.clone(),
            DurationOrder::Longest,
            Some(&cursor),
            "sessions_duration",
        ),
        (
            SessionFilter {
                user: Some("alice".into()),
                ..Default::default()
            },
            DurationOrder::Longest,
            Some(&cursor),
            "sessions_user_duration",
        ),
        (
            SessionFilter {
                server: Some("web1".into()),
                targets_only: true,
                ..Default::default()
            },
            DurationOrder::Longest,
            None,
            "sessions_server_duration",
        ),
        (
            SessionFilter {
                user_prefix: Some("al".into()),
                server_prefix: Some("web".into()),
                ..Default::default()
            },
            DurationOrder::Longest,
            None,
            "sessions_duration",
        ),
    ] {
        let plan = s.sessions_by_duration_plan(&f, order, after).await.unwrap();
        assert_plan_uses(db.backend, &plan, index, "sessions");
    }
    s.close().await;
}

/// `plan` reads `table` through `index` and sorts nothing: on SQLite, no
/// SCAN of the table and no temporary B-tree; on PostgreSQL (seq scans
/// and sorts disabled for the query, see `Store::plan`), the index named
/// and no Sort or Seq Scan node.
fn assert_plan_uses(backend: Backend, plan: &[String], index: &str, table: &str) {
    let text = plan.join("\n");
    assert!(text.contains(index), "{index} not used: {text}");
    match backend {
        Backend::Sqlite => {
            assert!(
                !plan
                    .iter()
                    .any(|d| d.starts_with(&format!("SCAN {table}")) || d.contains("TEMP B-TREE")),
                "{text}"
            );
        }
        Backend::Postgres => {
            assert!(
                !plan
                    .iter()
                    .any(|d| d.contains("Sort") || d.contains(&format!("Seq Scan on {table}"))),
                "{text}"
            );
        }
    }
}

fn dids(rows: &[(i64, SessionRow)]) -> Vec<&str> {
    rows.iter().map(|(_, r)| r.id.as_str()).collect()
}

fn grant(user: &str, state: GrantState) -> Grant {
    Grant {
        id: 0,
        user: user.into(),
        server: "db1".into(),
        accounts: vec![],
        ports: vec![],
        from: vec![],
        reason: "TICKET-1".into(),
        state,
        requested_by: user.into(),
        approved_by: None,
        decided_by: None,
        decision_note: None,
        requested_at: T0,
        decided_at: None,
        duration_secs: Some(3600),
        expires_at: None,
    }
}

async fn today_counts(db: Db) {
    let s = db.open("n1").await;
    let now = OffsetDateTime::now_utc();
    for (u, st) in [
        ("alice", GrantState::Pending),
        ("bob", GrantState::Pending),
        ("carol", GrantState::Denied),
    ] {
        s.grant_insert(&grant(u, st)).await.unwrap();
    }
    s.session_start(&session("live", "alice", Some("web1"), Some("proxy"), 1))
        .await
        .unwrap();
    s.session_start(&session("done", "alice", Some("web1"), Some("proxy"), 2))
        .await
        .unwrap();
    s.session_end("done", T0 + Duration::minutes(3), 0, 0, None, "done")
        .await
        .unwrap();
    s.lock_user("mallory", now + Duration::minutes(15))
        .await
        .unwrap();
    s.lock_user("oscar", now - Duration::minutes(1))
        .await
        .unwrap();
    let c = s.console_counts(now).await.unwrap();
    assert_eq!(c.pending_grants, 2);
    assert_eq!(c.live_sessions, 1);
    let locked: Vec<&str> = c.lockouts.iter().map(|l| l.user.as_str()).collect();
    assert_eq!(locked, ["mallory"], "an expired lockout is no lockout");
    // Each of the Today page's store queries is one index range on both
    // backends: no scan of grants, sessions, lockouts or audit events.
    let plans = s.today_plans(now).await.unwrap();
    for (name, plan) in &plans {
        let (index, table) = match *name {
            "pending" => ("grants_state", "grants"),
            "live" => ("sessions_ended", "sessions"),
            "lockouts" => ("lockouts_until", "lockouts"),
            "login_probe" => ("audit_events_login_pairs", "audit_events"),
            "waiting_review_count" | "waiting_review_list" => {
                // A partial index (migration 0022) holds only the sessions
                // waiting: walking all of it is the query, so SQLite's
                // SCAN of that index is expected; nothing else, no sort.
                let text = plan.join("\n");
                assert!(text.contains("sessions_waiting_review"), "{name}: {text}");
                assert!(
                    !plan.iter().any(|d| d.contains("TEMP B-TREE")
                        || d.contains("Sort")
                        || d.contains("Seq Scan")
                        || (d.starts_with("SCAN sessions")
                            && !d.contains("sessions_waiting_review"))),
                    "{name}: {text}"
                );
                continue;
            }
            other => panic!("plan {other}"),
        };
        assert_plan_uses(db.backend, plan, index, table);
    }
    assert_eq!(plans.len(), 6);
    // grants_state_expires, or (PostgreSQL on a table this small)
    // grants_state: either is the range of approved grants (the sweeper
    // moves expired ones to `expired`).
    let plan = s.grants_active_plan(now).await.unwrap();
    assert_plan_uses(db.backend, &plan, "grants_state", "grants");

    // Active grants: approved and not expired; nothing else.
    let mut g = grant("erin", GrantState::Approved);
    g.expires_at = Some(now + Duration::hours(1));
    let active = s.grant_insert(&g).await.unwrap();
    g.expires_at = Some(now - Duration::minutes(1));
    s.grant_insert(&g).await.unwrap();
    let ids: Vec<i64> = s
        .grants_active(now)
        .await
        .unwrap()
        .iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(ids, [active]);

    // The login probe: pairs seen in the window, not before it or after.
    s.audit(
        &AuditEvent::new(EventKind::AuthSuccess)
            .user("alice")
            .source("10.0.0.1"),
    )
    .await
    .unwrap();
    s.audit(
        &AuditEvent::new(EventKind::AuthFailure)
            .user("bob")
            .source("10.0.0.2"),
    )
    .await
    .unwrap();
    let pairs: Vec<(String, String)> = [
        ("alice", "10.0.0.1"),
        ("alice", "10.0.0.2"),
        ("bob", "10.0.0.2"),
    ]
    .iter()
    .map(|(u, a)| (u.to_string(), a.to_string()))
    .collect();
    let after = OffsetDateTime::now_utc() + Duration::seconds(1);
    let seen = s
        .logins_seen(&pairs, now - Duration::days(1), after)
        .await
        .unwrap();
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        [("alice".to_string(), "10.0.0.1".to_string())],
        "a failed login is no login"
    );
    assert!(
        s.logins_seen(&pairs, after, after + Duration::days(1))
            .await
            .unwrap()
            .is_empty()
    );
    s.close().await;
}

/// A sign-in begun at `at`, for ten minutes, with state `state`, binding
/// `"b-" + state` and verifier `"v-" + state` (the store is given hashes;
/// any distinct strings do here).
fn sign_in(state: &str, at: OffsetDateTime) -> NewSignIn {
    NewSignIn {
        state_hash: format!("s-{state}"),
        binding_hash: format!("b-{state}"),
        nonce_hash: format!("n-{state}"),
        pkce_verifier: Secret::new(format!("v-{state}")),
        created_at: at,
        expires_at: at + Duration::minutes(10),
    }
}

fn taken(t: SignInTake) -> (String, String) {
    match t {
        SignInTake::Taken {
            nonce_hash,
            pkce_verifier,
        } => (nonce_hash, pkce_verifier.expose().to_string()),
        other => panic!("not taken: {other:?}"),
    }
}

fn why(t: SignInTake) -> &'static str {
    match t {
        SignInTake::Taken { .. } => "taken",
        SignInTake::Unknown => "unknown",
        SignInTake::Used => "used",
        SignInTake::Expired => "expired",
        SignInTake::OtherBrowser => "other_browser",
    }
}

async fn sign_ins_are_taken_once_by_their_browser(db: Db) {
    let s = db.open("n1").await;
    assert!(s.oidc_pending_insert(&sign_in("a", T0), 100).await.unwrap());
    assert!(s.oidc_pending_insert(&sign_in("b", T0), 100).await.unwrap());
    let at = T0 + Duration::minutes(1);
    // Another browser, or none: refused, and the sign-in stays for its own.
    assert_eq!(
        why(s.oidc_pending_take("s-a", Some("b-b"), at).await.unwrap()),
        "other_browser"
    );
    assert_eq!(
        why(s.oidc_pending_take("s-a", None, at).await.unwrap()),
        "other_browser"
    );
    assert_eq!(
        why(s.oidc_pending_take("s-zz", Some("b-a"), at).await.unwrap()),
        "unknown"
    );
    let (nonce, verifier) = taken(s.oidc_pending_take("s-a", Some("b-a"), at).await.unwrap());
    assert_eq!((nonce.as_str(), verifier.as_str()), ("n-a", "v-a"));
    // Once: a replay is refused as used, whichever browser sends it.
    for b in [Some("b-a"), Some("b-b"), None] {
        assert_eq!(
            why(s.oidc_pending_take("s-a", b, at).await.unwrap()),
            "used"
        );
    }
    // The other sign-in is untouched.
    assert_eq!(
        taken(s.oidc_pending_take("s-b", Some("b-b"), at).await.unwrap()).1,
        "v-b"
    );
    // Taken sign-ins count until they expire.
    assert_eq!(s.oidc_pending_count(at).await.unwrap(), 2);
    s.close().await;
}

async fn sign_ins_expire_are_swept_and_capped(db: Db) {
    let s = db.open("n1").await;
    assert!(s.oidc_pending_insert(&sign_in("a", T0), 2).await.unwrap());
    assert!(s.oidc_pending_insert(&sign_in("b", T0), 2).await.unwrap());
    // Expired (at the expiry itself too): refused, then gone.
    let end = T0 + Duration::minutes(10);
    assert_eq!(
        why(s.oidc_pending_take("s-a", Some("b-a"), end).await.unwrap()),
        "expired"
    );
    assert_eq!(
        why(s.oidc_pending_take("s-a", Some("b-a"), end).await.unwrap()),
        "unknown"
    );
    // Two under way at most: a third waits for one to expire.
    assert!(
        s.oidc_pending_insert(&sign_in("c", T0 + Duration::minutes(1)), 2)
            .await
            .unwrap()
    );
    assert!(
        !s.oidc_pending_insert(&sign_in("d", T0 + Duration::minutes(2)), 2)
            .await
            .unwrap()
    );
    assert_eq!(
        why(s
            .oidc_pending_take("s-d", Some("b-d"), T0 + Duration::minutes(2))
            .await
            .unwrap()),
        "unknown",
        "a refused begin stores nothing"
    );
    // Beginning sweeps the expired: b (not taken) and nothing else.
    let later = T0 + Duration::minutes(10) + Duration::seconds(1);
    assert!(
        s.oidc_pending_insert(&sign_in("e", later), 2)
            .await
            .unwrap()
    );
    assert_eq!(
        why(s
            .oidc_pending_take("s-b", Some("b-b"), later)
            .await
            .unwrap()),
        "unknown"
    );
    assert_eq!(s.oidc_pending_count(later).await.unwrap(), 2);
    assert_eq!(
        taken(
            s.oidc_pending_take("s-c", Some("b-c"), later)
                .await
                .unwrap()
        )
        .1,
        "v-c"
    );
    s.close().await;
}

/// What two nodes behind one console address do: one begins, the other
/// takes the callback; the same state sent to both at once wins once.
async fn a_sign_in_begun_on_one_node_is_taken_on_another(db: Db) {
    let (n1, n2) = (db.open("n1").await, db.open("n2").await);
    let at = T0 + Duration::minutes(1);
    assert!(
        n1.oidc_pending_insert(&sign_in("a", T0), 100)
            .await
            .unwrap()
    );
    assert_eq!(
        taken(n2.oidc_pending_take("s-a", Some("b-a"), at).await.unwrap()).1,
        "v-a"
    );
    assert_eq!(
        why(n1.oidc_pending_take("s-a", Some("b-a"), at).await.unwrap()),
        "used"
    );
    // A race: ten callbacks with one state, on both nodes at once.
    for round in 0..5 {
        let state = format!("race{round}");
        assert!(
            n1.oidc_pending_insert(&sign_in(&state, T0), 100)
                .await
                .unwrap()
        );
        let mut tasks = Vec::new();
        for i in 0..10 {
            let store = if i % 2 == 0 { n1.clone() } else { n2.clone() };
            let (sh, bh) = (format!("s-{state}"), format!("b-{state}"));
            tasks.push(tokio::spawn(async move {
                why(store.oidc_pending_take(&sh, Some(&bh), at).await.unwrap())
            }));
        }
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap());
        }
        outcomes.sort();
        let mut want = vec!["used"; 9];
        want.insert(0, "taken");
        assert_eq!(outcomes, want, "round {round}");
    }
    n1.close().await;
    n2.close().await;
}
