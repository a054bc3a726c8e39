//! The store on both backends: every test body runs once on SQLite (a temp
//! file) and once on PostgreSQL (a fresh database on the test cluster, see
//! support/pg.rs). Tampering goes through a separate raw connection, as an
//! attacker with database access would.

#[path = "support/pg.rs"]
mod pg;
#[macro_use]
#[path = "support/db.rs"]
mod db;

use std::collections::{HashMap, HashSet};
use std::process::Command;

use db::Db;
use gatehouse::audit::{AuditEvent, EventKind};
use gatehouse::grants::{Grant, GrantState};
use gatehouse::store::{SessionRow, Store, StoreError};
use sqlx::AnyPool;
use time::{Duration, OffsetDateTime};

impl Db {
    /// A connection of our own, outside the store, for tampering.
    async fn raw(&self) -> AnyPool {
        sqlx::any::install_default_drivers();
        AnyPool::connect(&self.url).await.unwrap()
    }
}

async fn exec(pool: &AnyPool, sql: &str) -> u64 {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(pool)
        .await
        .unwrap()
        .rows_affected()
}

on_both_backends!(
    audit_append_export_verify,
    audit_tampered_detail_is_named,
    audit_removed_middle_event_is_a_gap,
    audit_removed_last_event_is_detected,
    audit_inserted_event_is_detected,
    audit_two_nodes_interleaved,
    audit_concurrent_appends_keep_the_chain,
    sessions_lifecycle_and_kill_requests,
    lockout_counts_and_unlocks,
    counted_failures_lock_at_the_limit,
    grants_crud_and_expiry,
    logins_before_a_day,
    events_by_time_in_order,
    report_login_history_from_the_store,
    login_groups_of_a_day,
    report_from_login_groups_matches_every_event,
    sessions_overlapping_a_day,
    report_reads_settled_sessions_from_their_rows,
    mfa_store_rows,
    mfa_enroll_verify_and_replay_across_nodes,
    mfa_self_enroll_off_needs_allow_enroll,
    mfa_secrets_follow_a_vault_rekey,
);

fn event(i: usize) -> AuditEvent {
    AuditEvent::new(EventKind::Exec)
        .user("alice")
        .server("prod-db")
        .account("oracle")
        .session(format!("s{i}"))
        .source("198.51.100.7")
        .detail("cmd", format!("echo {i}"))
        .detail("n", i)
}

async fn append(store: &Store, n: usize) -> Vec<gatehouse::audit::AuditRecord> {
    let mut out = Vec::new();
    for i in 1..=n {
        out.push(store.audit(&event(i)).await.unwrap());
    }
    out
}

async fn audit_append_export_verify(db: Db) {
    let store = db.open("n1").await;
    let mut recs = append(&store, 4).await;
    // An event with nothing but a kind, and a nested detail.
    let bare = AuditEvent::new(EventKind::PolicyReloaded)
        .detail("files", serde_json::json!(["a.toml", {"b": [1, 2]}]));
    recs.push(store.audit(&bare).await.unwrap());

    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.node, "n1");
        assert_eq!(r.seq, i as i64 + 1);
        assert_eq!(r.hash.len(), 64);
        if i == 0 {
            assert_eq!(r.prev_hash, "0".repeat(64));
        } else {
            assert_eq!(r.prev_hash, recs[i - 1].hash);
            assert!(r.id > recs[i - 1].id);
            assert!(r.ts >= recs[i - 1].ts);
        }
        // RFC 3339 UTC.
        OffsetDateTime::parse(&r.ts, &time::format_description::well_known::Rfc3339).unwrap();
        assert!(r.ts.ends_with('Z'));
    }
    assert_eq!(recs[0].kind, "exec");
    assert_eq!(recs[0].user.as_deref(), Some("alice"));
    assert_eq!(recs[0].detail["cmd"], "echo 1");
    assert_eq!(recs[4].kind, "policy.reloaded");
    assert_eq!(recs[4].user, None);

    let all = store.export(None, None).await.unwrap();
    assert_eq!(all, recs);

    let mut seen = Vec::new();
    store
        .export_each(None, None, |r| seen.push(r.id))
        .await
        .unwrap();
    assert_eq!(seen, recs.iter().map(|r| r.id).collect::<Vec<_>>());

    // since is inclusive, until exclusive.
    let t3 =
        OffsetDateTime::parse(&recs[2].ts, &time::format_description::well_known::Rfc3339).unwrap();
    let from3 = store.export(Some(t3), None).await.unwrap();
    assert!(from3.iter().all(|r| r.ts >= recs[2].ts));
    assert!(from3.iter().any(|r| r.id == recs[2].id));
    let before3 = store.export(None, Some(t3)).await.unwrap();
    assert!(before3.iter().all(|r| r.ts < recs[2].ts));
    assert_eq!(before3.len() + from3.len(), 5);
    let future = OffsetDateTime::now_utc() + Duration::hours(1);
    assert!(store.export(Some(future), None).await.unwrap().is_empty());

    let report = store.verify_chain().await.unwrap();
    assert_eq!(report.events, 5);
    assert_eq!(report.first_bad, None);

    // Re-opening continues the same chain.
    store.close().await;
    let again = db.open("n1").await;
    let next = again.audit(&event(6)).await.unwrap();
    assert_eq!(next.seq, 6);
    assert_eq!(next.prev_hash, recs[4].hash);
    assert_eq!(again.verify_chain().await.unwrap().first_bad, None);
}

async fn audit_tampered_detail_is_named(db: Db) {
    let store = db.open("n1").await;
    let recs = append(&store, 5).await;
    let raw = db.raw().await;
    let n = exec(
        &raw,
        &format!(
            "UPDATE audit_events SET detail = '{{\"cmd\":\"ls\",\"n\":3}}' WHERE id = {}",
            recs[2].id
        ),
    )
    .await;
    assert_eq!(n, 1);
    let report = store.verify_chain().await.unwrap();
    let bad = report.first_bad.expect("tampering not detected");
    assert_eq!(bad.id, Some(recs[2].id));
    assert_eq!(bad.seq, 3);
    assert_eq!(bad.node, "n1");
    assert!(bad.problem.contains("changed"), "{}", bad.problem);

    // Recomputing that row's hash moves the break to the next link.
    // (The attacker cannot rewrite the rest without the whole chain.)
    exec(
        &raw,
        &format!(
            "UPDATE audit_events SET detail = '{}' WHERE id = {}",
            serde_json::to_string(&recs[2].detail).unwrap(),
            recs[2].id
        ),
    )
    .await;
    assert_eq!(store.verify_chain().await.unwrap().first_bad, None);
    exec(
        &raw,
        &format!(
            "UPDATE audit_events SET hash = '{}' WHERE id = {}",
            "ab".repeat(32),
            recs[3].id
        ),
    )
    .await;
    let bad = store.verify_chain().await.unwrap().first_bad.unwrap();
    assert_eq!(bad.id, Some(recs[3].id));
}

async fn audit_removed_middle_event_is_a_gap(db: Db) {
    let store = db.open("n1").await;
    let recs = append(&store, 5).await;
    let raw = db.raw().await;
    exec(
        &raw,
        &format!("DELETE FROM audit_events WHERE id = {}", recs[2].id),
    )
    .await;
    let report = store.verify_chain().await.unwrap();
    assert_eq!(report.events, 4);
    let bad = report.first_bad.expect("removal not detected");
    assert_eq!(bad.seq, 3);
    assert_eq!(bad.id, None);
    assert_eq!(bad.node, "n1");
    assert!(bad.problem.contains("removed"), "{}", bad.problem);
    assert!(
        bad.problem.contains(&format!("after id {}", recs[1].id)),
        "{}",
        bad.problem
    );
}

async fn audit_removed_last_event_is_detected(db: Db) {
    let store = db.open("n1").await;
    let recs = append(&store, 5).await;
    let raw = db.raw().await;
    exec(
        &raw,
        &format!("DELETE FROM audit_events WHERE id = {}", recs[4].id),
    )
    .await;
    let bad = store.verify_chain().await.unwrap().first_bad.unwrap();
    assert_eq!(bad.seq, 5);
    assert_eq!(bad.id, None);
    assert!(bad.problem.contains("removed"), "{}", bad.problem);

    // Removing everything is detected too.
    exec(&raw, "DELETE FROM audit_events").await;
    let bad = store.verify_chain().await.unwrap().first_bad.unwrap();
    assert_eq!(bad.seq, 1);
    assert!(bad.problem.contains("removed"), "{}", bad.problem);
}

async fn audit_inserted_event_is_detected(db: Db) {
    let store = db.open("n1").await;
    let recs = append(&store, 3).await;
    let raw = db.raw().await;
    // A forged copy of event 2 appended at the end with seq 4: its
    // prev_hash points at event 1, not event 3.
    let r = &recs[1];
    exec(
        &raw,
        &format!(
            "INSERT INTO audit_events (ts, kind, username, server, account, session_id, source, \
             detail, node, seq, prev_hash, hash) VALUES ('{}', 'exec', 'alice', NULL, NULL, \
             NULL, NULL, '{{}}', 'n1', 4, '{}', '{}')",
            r.ts, r.prev_hash, r.hash
        ),
    )
    .await;
    let bad = store.verify_chain().await.unwrap().first_bad.unwrap();
    assert_eq!(bad.seq, 4);
    assert!(bad.problem.contains("inserted"), "{}", bad.problem);

    // A whole forged node, with a chain that is internally correct but
    // that no `audit` call wrote (no chain head).
    exec(&raw, "DELETE FROM audit_events WHERE seq = 4").await;
    assert_eq!(store.verify_chain().await.unwrap().first_bad, None);
    exec(
        &raw,
        &format!(
            "INSERT INTO audit_events (ts, kind, username, server, account, session_id, source, \
             detail, node, seq, prev_hash, hash) VALUES ('{}', 'exec', NULL, NULL, NULL, \
             NULL, NULL, '{{}}', 'ghost', 1, '{}', 'x')",
            r.ts,
            "0".repeat(64)
        ),
    )
    .await;
    let bad = store.verify_chain().await.unwrap().first_bad.unwrap();
    assert_eq!(bad.node, "ghost");
    assert!(bad.problem.contains("no chain head"), "{}", bad.problem);
}

async fn audit_two_nodes_interleaved(db: Db) {
    let a = db.open("node-a").await;
    let b = db.open("node-b").await;
    let mut b_recs = Vec::new();
    for i in 0..6 {
        let ra = a.audit(&event(i)).await.unwrap();
        assert_eq!(ra.seq, i as i64 + 1);
        if i % 2 == 0 {
            b_recs.push(b.audit(&event(i)).await.unwrap());
        }
    }
    assert_eq!(
        b_recs.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let report = a.verify_chain().await.unwrap();
    assert_eq!(report.events, 9);
    assert_eq!(report.first_bad, None);
    assert_eq!(b.verify_chain().await.unwrap().first_bad, None);

    let raw = db.raw().await;
    exec(
        &raw,
        &format!(
            "UPDATE audit_events SET username = 'mallory' WHERE id = {}",
            b_recs[1].id
        ),
    )
    .await;
    let bad = a.verify_chain().await.unwrap().first_bad.unwrap();
    assert_eq!(bad.node, "node-b");
    assert_eq!(bad.seq, 2);
    assert_eq!(bad.id, Some(b_recs[1].id));
}

async fn audit_concurrent_appends_keep_the_chain(db: Db) {
    let store = db.open("n1").await;
    // A second handle on the same node stands in for a second process
    // (an admin's CLI beside the server): it has its own in-process lock.
    let other = db.open("n1").await;
    let mut tasks = Vec::new();
    for t in 0..12 {
        let s = if t % 3 == 0 {
            other.clone()
        } else {
            store.clone()
        };
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..10 {
                seqs.push(s.audit(&event(t * 100 + i)).await.unwrap().seq);
            }
            seqs
        }));
    }
    // Verifying while appends run sees a consistent snapshot, never a
    // half-appended chain.
    for _ in 0..5 {
        let report = store.verify_chain().await.unwrap();
        assert_eq!(report.first_bad, None, "during appends");
        tokio::task::yield_now().await;
    }
    let mut all = HashSet::new();
    for t in tasks {
        for seq in t.await.unwrap() {
            assert!(all.insert(seq), "seq {seq} handed out twice");
        }
    }
    assert_eq!(all, (1..=120).collect::<HashSet<i64>>());
    let report = store.verify_chain().await.unwrap();
    assert_eq!(report.events, 120);
    assert_eq!(report.first_bad, None);
}

fn session(id: &str, node: &str, started_at: OffsetDateTime) -> SessionRow {
    SessionRow {
        id: id.into(),
        user: "bob".into(),
        server: Some("prod-db".into()),
        account: Some("oracle".into()),
        source: "203.0.113.9".into(),
        node: node.into(),
        started_at,
        ended_at: None,
        mode: Some("ssh-forwarding".into()),
        grant_id: Some(7),
        recorded: true,
        bytes_up: 0,
        bytes_down: 0,
        exit_status: None,
        end_reason: None,
        flagged: None,
        review: None,
    }
}

async fn sessions_lifecycle_and_kill_requests(db: Db) {
    let store = db.open("n1").await;
    let t0 = time::macros::datetime!(2026-03-01 10:00:00.123456 UTC);
    let s1 = session("s1", "n1", t0);
    let mut s2 = session("s2", "n1", t0 + Duration::minutes(5));
    s2.server = None;
    s2.account = None;
    s2.grant_id = None;
    s2.recorded = false;
    let s3 = session("s3", "n2", t0 + Duration::minutes(10));
    for s in [&s1, &s2, &s3] {
        store.session_start(s).await.unwrap();
    }
    assert!(store.session_start(&s1).await.is_err(), "duplicate id");
    assert_eq!(store.session_get("s2").await.unwrap(), Some(s2.clone()));
    assert_eq!(store.session_get("nope").await.unwrap(), None);
    let live = store.sessions_live().await.unwrap();
    assert_eq!(live, vec![s1.clone(), s2.clone(), s3.clone()]);

    assert!(store.request_kill("s1").await.unwrap());
    assert!(!store.request_kill("nope").await.unwrap());
    assert_eq!(store.kill_requests("n1").await.unwrap(), vec!["s1"]);
    assert!(store.kill_requests("n2").await.unwrap().is_empty());

    let end = t0 + Duration::minutes(20);
    store
        .session_end("s1", end, 100, 2000, Some(0), "killed")
        .await
        .unwrap();
    // A second end changes nothing.
    store
        .session_end("s1", end + Duration::hours(1), 1, 1, Some(1), "eof")
        .await
        .unwrap();
    let ended = store.session_get("s1").await.unwrap().unwrap();
    assert_eq!(ended.ended_at, Some(end));
    assert_eq!((ended.bytes_up, ended.bytes_down), (100, 2000));
    assert_eq!(ended.exit_status, Some(0));
    assert_eq!(ended.end_reason.as_deref(), Some("killed"));
    assert!(matches!(
        store
            .session_end("nope", end, 0, 0, None, "eof")
            .await
            .unwrap_err(),
        StoreError::NotFound(_)
    ));
    assert!(store.kill_requests("n1").await.unwrap().is_empty());
    assert!(!store.request_kill("s1").await.unwrap(), "already ended");
    assert_eq!(store.sessions_live().await.unwrap().len(), 2);

    // Overlap with [t0+15m, t0+16m): s1 (ended later), s2 and s3 (live).
    let between = store
        .sessions_between(t0 + Duration::minutes(15), t0 + Duration::minutes(16))
        .await
        .unwrap();
    assert_eq!(
        between.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        vec!["s1", "s2", "s3"]
    );
    // After s1 ended: not s1. Before s3 started: not s3.
    let between = store
        .sessions_between(t0 + Duration::minutes(30), t0 + Duration::minutes(31))
        .await
        .unwrap();
    assert_eq!(between.len(), 2);
    let between = store
        .sessions_between(t0, t0 + Duration::minutes(6))
        .await
        .unwrap();
    assert_eq!(
        between.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        vec!["s1", "s2"]
    );

    let stale = store.end_stale_sessions("n1", "crashed").await.unwrap();
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0].id, "s2");
    assert_eq!(stale[0].end_reason.as_deref(), Some("crashed"));
    assert!(stale[0].ended_at.is_some());
    let live = store.sessions_live().await.unwrap();
    assert_eq!(live, vec![s3]);
}

async fn lockout_counts_and_unlocks(db: Db) {
    let store = db.open("n1").await;
    let other_node = db.open("n2").await;
    let now = OffsetDateTime::now_utc();
    assert_eq!(store.auth_failure("carol", now).await.unwrap(), 1);
    assert_eq!(store.auth_failure("carol", now).await.unwrap(), 2);
    // Counted across nodes: it is the database's count.
    assert_eq!(other_node.auth_failure("carol", now).await.unwrap(), 3);
    assert_eq!(store.auth_failure("dave", now).await.unwrap(), 1);
    store.auth_success("carol").await.unwrap();
    assert_eq!(store.auth_failure("carol", now).await.unwrap(), 1);
    store.auth_success("nobody-yet").await.unwrap();

    assert_eq!(store.locked_until("carol").await.unwrap(), None);
    let until = now + Duration::hours(6);
    store.lock_user("carol", until).await.unwrap();
    let got = other_node.locked_until("carol").await.unwrap().unwrap();
    assert!((got - until).abs() < Duration::milliseconds(1));
    // Locking restarts the count.
    assert_eq!(store.auth_failure("carol", now).await.unwrap(), 1);

    assert!(other_node.unlock("carol").await.unwrap());
    assert_eq!(store.locked_until("carol").await.unwrap(), None);
    assert_eq!(store.auth_failure("carol", now).await.unwrap(), 1);
    assert!(!store.unlock("carol").await.unwrap());
    assert!(!store.unlock("never-seen").await.unwrap());

    // An expired lockout is no lockout.
    store
        .lock_user("dave", now - Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(store.locked_until("dave").await.unwrap(), None);
    assert!(!store.unlock("dave").await.unwrap());
}

/// The one way to a lockout (issue 17 item 1: second-factor failures,
/// never key attempts): consecutive counted failures lock at the limit,
/// on every node, and the count restarts.
async fn counted_failures_lock_at_the_limit(db: Db) {
    let store = db.open("n1").await;
    let other_node = db.open("n2").await;
    let now = OffsetDateTime::now_utc();
    let six_hours = Duration::hours(6);
    for _ in 0..2 {
        let r = store.counted_failure("erin", now, 3, six_hours).await;
        assert_eq!(r.unwrap(), None);
    }
    // A success in between starts over.
    store.auth_success("erin").await.unwrap();
    for _ in 0..2 {
        let r = other_node.counted_failure("erin", now, 3, six_hours).await;
        assert_eq!(r.unwrap(), None);
    }
    assert_eq!(store.locked_until("erin").await.unwrap(), None);
    let (n, until) = store
        .counted_failure("erin", now, 3, six_hours)
        .await
        .unwrap()
        .expect("locked at the third consecutive failure");
    assert_eq!(n, 3);
    assert_eq!(until, now + six_hours);
    let got = other_node.locked_until("erin").await.unwrap().unwrap();
    assert!((got - until).abs() < Duration::milliseconds(1));
    // The count restarted with the lockout.
    let r = store.counted_failure("erin", now, 3, six_hours).await;
    assert_eq!(r.unwrap(), None);
}

fn grant(user: &str) -> Grant {
    Grant {
        id: 0,
        user: user.into(),
        server: "prod-db".into(),
        accounts: vec!["oracle".into(), "root".into()],
        ports: vec![1521, 80],
        from: vec!["198.51.100.0/24".parse().unwrap()],
        reason: "TICKET-42".into(),
        state: GrantState::Pending,
        requested_by: user.into(),
        approved_by: None,
        decided_by: None,
        decision_note: None,
        requested_at: time::macros::datetime!(2026-03-01 09:00 UTC),
        decided_at: None,
        duration_secs: Some(3600),
        expires_at: None,
    }
}

async fn grants_crud_and_expiry(db: Db) {
    let store = db.open("n1").await;
    let mut g = grant("bob");
    g.id = store.grant_insert(&g).await.unwrap();
    assert!(g.id > 0);
    assert_eq!(store.grant_get(g.id).await.unwrap(), Some(g.clone()));
    assert_eq!(store.grant_get(g.id + 1000).await.unwrap(), None);

    let mut other = grant("erin");
    other.accounts = vec![];
    other.ports = vec![];
    other.from = vec![];
    other.duration_secs = None;
    other.id = store.grant_insert(&other).await.unwrap();
    assert!(other.id > g.id);

    // Approve: four-eyes is the caller's rule; the store keeps the result.
    let decided = time::macros::datetime!(2026-03-01 09:30 UTC);
    let mut approved = g.clone();
    approved.state = GrantState::Approved;
    approved.approved_by = Some("alice".into());
    approved.decided_by = Some("alice".into());
    approved.decision_note = Some("ok".into());
    approved.decided_at = Some(decided);
    approved.expires_at = Some(decided + Duration::hours(1));
    assert!(
        store
            .grant_update_if(&approved, GrantState::Pending)
            .await
            .unwrap()
    );
    // A second approver loses the race.
    assert!(
        !store
            .grant_update_if(&approved, GrantState::Pending)
            .await
            .unwrap()
    );
    assert_eq!(store.grant_get(g.id).await.unwrap(), Some(approved.clone()));

    // Permanent approval for erin.
    let mut permanent = other.clone();
    permanent.state = GrantState::Approved;
    permanent.approved_by = Some("alice".into());
    permanent.decided_by = Some("alice".into());
    permanent.decided_at = Some(decided);
    store.grant_update(&permanent).await.unwrap();

    let mut missing = g.clone();
    missing.id = g.id + 1000;
    assert!(matches!(
        store.grant_update(&missing).await.unwrap_err(),
        StoreError::NotFound(_)
    ));

    assert_eq!(
        store.grants_for("bob").await.unwrap(),
        vec![approved.clone()]
    );
    assert_eq!(
        store.grants_list(Some("erin")).await.unwrap(),
        vec![permanent.clone()]
    );
    assert_eq!(store.grants_list(None).await.unwrap().len(), 2);
    assert!(store.grants_for("nobody").await.unwrap().is_empty());

    // Not yet due.
    let due = store
        .grants_expire_due(decided + Duration::minutes(59))
        .await
        .unwrap();
    assert!(due.is_empty());
    // Due at exactly expires_at; the permanent grant never is.
    let due = store
        .grants_expire_due(decided + Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].id, g.id);
    assert_eq!(due[0].state, GrantState::Expired);
    assert!(
        store
            .grants_expire_due(decided + Duration::days(365))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.grant_get(g.id).await.unwrap().unwrap().state,
        GrantState::Expired
    );
    assert_eq!(
        store.grant_get(other.id).await.unwrap().unwrap().state,
        GrantState::Approved
    );
}

// ---- the CLI on a real database file ----

struct CliEnv {
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    url: String,
}

impl CliEnv {
    fn new() -> CliEnv {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("data/g.db").display());
        let config = dir.path().join("gatehouse.toml");
        std::fs::write(
            &config,
            format!("[server]\ndatabase = \"{url}\"\nnode = \"cli-node\"\n"),
        )
        .unwrap();
        CliEnv { dir, config, url }
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
async fn cli_audit_export_and_verify() {
    let env = CliEnv::new();
    let store = Store::open(&env.url, "cli-node").await.unwrap();
    let recs = append(&store, 4).await;

    let out = env.run(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "audit chain intact: 4 events");

    let out = env.run(&["audit", "export"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    for key in [
        "ts", "kind", "user", "server", "account", "session", "source", "detail",
    ] {
        assert!(lines[0].get(key).is_some(), "missing {key}");
    }
    assert_eq!(lines[0]["kind"], "exec");
    assert_eq!(lines[0]["ts"], recs[0].ts.as_str());
    assert_eq!(lines[3]["detail"]["cmd"], "echo 4");

    // Dates select whole days; every event here is from today.
    let today = OffsetDateTime::now_utc().date().to_string();
    let out = env.run(&["audit", "export", "--since", &today, "--until", &today]);
    assert_eq!(text(&out.stdout).lines().count(), 4);
    let out = env.run(&["audit", "export", "--until", "2000-01-01"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "");
    // Until is inclusive of the given instant.
    let out = env.run(&["audit", "export", "--until", &recs[1].ts]);
    assert_eq!(text(&out.stdout).lines().count(), 2);
    let out = env.run(&["audit", "export", "--since", "last week"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("error: --since"));

    let raw = AnyPool::connect(&env.url).await.unwrap();
    exec(
        &raw,
        &format!(
            "UPDATE audit_events SET detail = '{{\"cmd\":\"true\"}}' WHERE id = {}",
            recs[1].id
        ),
    )
    .await;
    let out = env.run(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "error: audit chain broken at event id {} (node cli-node, seq 2): changed",
            recs[1].id
        )),
        "{err}"
    );

    let out = env.run(&["audit", "verify", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["events"], 4);
    assert_eq!(report["first_bad"]["id"], recs[1].id);
    assert_eq!(report["first_bad"]["seq"], 2);
}

#[tokio::test]
async fn cli_sessions_and_unlock() {
    let env = CliEnv::new();
    let store = Store::open(&env.url, "cli-node").await.unwrap();
    store
        .session_start(&session(
            "sess-1",
            "other-node",
            OffsetDateTime::now_utc() - Duration::minutes(3),
        ))
        .await
        .unwrap();

    let out = env.run(&["sessions", "list"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("ID"), "{stdout}");
    assert!(header.contains("DURATION"), "{stdout}");
    let row = lines.next().unwrap();
    assert!(row.starts_with("sess-1"), "{stdout}");
    assert!(row.contains("bob") && row.contains("prod-db") && row.contains("oracle"));

    let out = env.run(&["sessions", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["id"], "sess-1");
    assert!(listed[0]["duration_secs"].as_i64().unwrap() >= 180);

    let out = env.run(&["sessions", "kill", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr).trim(), "error: no live session nope");
    let out = env.run(&["sessions", "kill", "sess-1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        store.kill_requests("other-node").await.unwrap(),
        vec!["sess-1"]
    );

    let out = env.run(&["unlock", "carol"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("carol was not locked"));
    store
        .lock_user("carol", OffsetDateTime::now_utc() + Duration::hours(1))
        .await
        .unwrap();
    let out = env.run(&["unlock", "carol"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "unlocked carol");
    assert_eq!(store.locked_until("carol").await.unwrap(), None);

    let events = store.export(None, None).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, vec!["session.killed", "unlock", "unlock"]);
    assert_eq!(events[2].user.as_deref(), Some("carol"));
    assert_eq!(events[2].detail["was_locked"], true);
    assert_eq!(events[1].detail["was_locked"], false);
    assert_eq!(events[0].node, "cli-node");
    assert_eq!(store.verify_chain().await.unwrap().first_bad, None);
}

// ---- what the daily report reads ----

/// One audit row at a chosen time, written around the store (the login
/// queries do not read the chain; its fields are placeholders here).
#[allow(clippy::too_many_arguments)]
async fn insert_event(
    raw: &AnyPool,
    seq: i64,
    ts: &str,
    kind: &str,
    user: Option<&str>,
    source: Option<&str>,
    session: Option<&str>,
) {
    sqlx::query(
        "INSERT INTO audit_events (ts, kind, username, server, account, session_id, source, \
         detail, node, seq, prev_hash, hash) \
         VALUES ($1, $2, $3, NULL, NULL, $4, $5, '{}', 'hist', $6, $7, $7)",
    )
    .bind(ts)
    .bind(kind)
    .bind(user)
    .bind(session)
    .bind(source)
    .bind(seq)
    .bind("0".repeat(64))
    .execute(raw)
    .await
    .unwrap();
}

fn at(s: &str) -> OffsetDateTime {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
}

/// The report day of these tests is 2026-03-10; its login history covers
/// [2025-12-11, 2026-03-10) (90 days back from the day's end).
const HISTORY: [(&str, &str, Option<&str>, Option<&str>); 12] = [
    (
        "2026-01-05T10:00:00.000000Z",
        "auth.success",
        Some("alice"),
        Some("192.0.2.1"),
    ),
    (
        "2026-02-01T09:00:00.000000Z",
        "auth.success",
        Some("alice"),
        Some("192.0.2.1"),
    ),
    // The last microsecond before the day: before it.
    (
        "2026-03-09T23:59:59.999999Z",
        "auth.success",
        Some("alice"),
        Some("192.0.2.2"),
    ),
    // Exactly at the day's start: part of the day, not of its history.
    (
        "2026-03-10T00:00:00.000000Z",
        "auth.success",
        Some("alice"),
        Some("192.0.2.3"),
    ),
    // Written out of time order (a later id than the 08:00 login below).
    (
        "2026-03-10T09:00:00.000000Z",
        "auth.success",
        Some("alice"),
        Some("192.0.2.1"),
    ),
    // bob's only login, from an address seen on the day itself.
    (
        "2026-03-10T08:00:00.000000Z",
        "auth.success",
        Some("bob"),
        Some("192.0.2.9"),
    ),
    // Exactly at the history's start (counts), without an address.
    (
        "2025-12-11T00:00:00.000000Z",
        "auth.success",
        Some("carol"),
        None,
    ),
    // Just before the history's start (does not count).
    (
        "2025-12-10T23:59:59.999999Z",
        "auth.success",
        Some("carol"),
        Some("192.0.2.4"),
    ),
    // dave never logged in: failures and other events are not logins.
    (
        "2026-02-01T10:00:00.000000Z",
        "auth.failure",
        Some("dave"),
        Some("192.0.2.5"),
    ),
    (
        "2026-02-01T11:00:00.000000Z",
        "exec",
        Some("dave"),
        Some("192.0.2.6"),
    ),
    // A login event without a user is no one's login.
    (
        "2026-02-01T12:00:00.000000Z",
        "auth.success",
        None,
        Some("192.0.2.7"),
    ),
    // After the day.
    (
        "2026-03-11T00:00:00.000000Z",
        "auth.success",
        Some("dave"),
        Some("192.0.2.8"),
    ),
];

async fn store_with_history(db: &Db) -> Store {
    let store = db.open("n1").await;
    let raw = db.raw().await;
    for (i, (ts, kind, user, source)) in HISTORY.iter().enumerate() {
        insert_event(&raw, i as i64 + 1, ts, kind, *user, *source, None).await;
    }
    raw.close().await;
    store
}

async fn logins_before_a_day(db: Db) {
    use gatehouse::store::LoginSeen;
    let store = store_with_history(&db).await;
    let seen = |user: &str, source: Option<&str>, last: &str| LoginSeen {
        user: user.into(),
        source: source.map(str::to_string),
        last: at(last),
    };
    let history = store
        .logins_between(at("2025-12-11T00:00:00Z"), at("2026-03-10T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(
        history,
        [
            seen("alice", Some("192.0.2.1"), "2026-02-01T09:00:00Z"),
            seen("alice", Some("192.0.2.2"), "2026-03-09T23:59:59.999999Z"),
            seen("carol", None, "2025-12-11T00:00:00Z"),
        ]
    );
    let day = store
        .logins_between(at("2026-03-10T00:00:00Z"), at("2026-03-11T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(
        day,
        [
            seen("alice", Some("192.0.2.1"), "2026-03-10T09:00:00Z"),
            seen("alice", Some("192.0.2.3"), "2026-03-10T00:00:00Z"),
            seen("bob", Some("192.0.2.9"), "2026-03-10T08:00:00Z"),
        ]
    );
    assert!(
        store
            .logins_between(at("2020-01-01T00:00:00Z"), at("2020-01-02T00:00:00Z"))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn events_by_time_in_order(db: Db) {
    use futures::TryStreamExt;
    let store = store_with_history(&db).await;
    let raw = db.raw().await;
    // Two events at the same microsecond: id order breaks the tie.
    insert_event(
        &raw,
        100,
        "2026-03-10T08:00:00.000000Z",
        "exec",
        Some("bob"),
        None,
        Some("t1"),
    )
    .await;
    insert_event(
        &raw,
        101,
        "2026-03-10T08:00:00.000000Z",
        "exec",
        Some("bob"),
        None,
        Some("t2"),
    )
    .await;
    // A kind not asked for: counted, not read.
    insert_event(
        &raw,
        102,
        "2026-03-10T08:30:00.000000Z",
        "sftp.op",
        Some("bob"),
        None,
        Some("t2"),
    )
    .await;
    raw.close().await;
    let (day, next) = (at("2026-03-10T00:00:00Z"), at("2026-03-11T00:00:00Z"));
    let kinds = ["auth.success", "exec", "policy.reloaded"];
    let events: Vec<_> = store
        .events_by_time(day, next, &kinds)
        .try_collect()
        .await
        .unwrap();
    let got: Vec<(&str, Option<&str>, Option<&str>)> = events
        .iter()
        .map(|e| (e.ts.as_str(), e.user.as_deref(), e.session.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("2026-03-10T00:00:00.000000Z", Some("alice"), None),
            ("2026-03-10T08:00:00.000000Z", Some("bob"), None),
            ("2026-03-10T08:00:00.000000Z", Some("bob"), Some("t1")),
            ("2026-03-10T08:00:00.000000Z", Some("bob"), Some("t2")),
            ("2026-03-10T09:00:00.000000Z", Some("alice"), None),
        ]
    );
    assert!(
        events
            .windows(2)
            .all(|w| (&w[0].ts, w[0].id) < (&w[1].ts, w[1].id))
    );
    assert_eq!(
        store.count_events_except(day, next, &kinds).await.unwrap(),
        1
    );
    assert_eq!(store.count_events_except(day, next, &[]).await.unwrap(), 6);
    assert_eq!(
        store
            .count_events_except(at("2026-03-09T23:59:59.999999Z"), day, &kinds)
            .await
            .unwrap(),
        0
    );
    let none: Vec<_> = store
        .events_by_time(day, next, &[])
        .try_collect()
        .await
        .unwrap();
    assert!(none.is_empty());
}

/// The live report source over this store: the history the report gets,
/// and the report it builds (first-seen addresses, last logins, dormancy).
async fn report_login_history_from_the_store(db: Db) {
    use gatehouse::report::{LiveSource, LoginHistory, ReportSource, generate};
    let store = store_with_history(&db).await;
    let config = gatehouse::config::Config::default();
    let live = LiveSource::new(&config, store.clone());
    let history = live
        .logins(at("2025-12-11T00:00:00Z"), at("2026-03-10T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(
        history,
        LoginHistory {
            last: HashMap::from([
                ("alice".to_string(), at("2026-03-09T23:59:59.999999Z")),
                ("carol".to_string(), at("2025-12-11T00:00:00Z")),
            ]),
            seen: HashSet::from([
                ("alice".to_string(), "192.0.2.1".to_string()),
                ("alice".to_string(), "192.0.2.2".to_string()),
            ]),
        }
    );

    let mut policy_text = String::new();
    for user in ["alice", "bob", "carol", "dave"] {
        policy_text.push_str(&format!("[[user]]\nname = \"{user}\"\nkeys = []\n\n"));
    }
    let policy =
        gatehouse::policy::Policy::from_sources(&[("users.toml".into(), policy_text)]).unwrap();
    let date = time::macros::date!(2026 - 03 - 10);
    let report = generate(&config, &live, &policy, date, at("2026-03-12T00:00:00Z"))
        .await
        .unwrap();
    let first: Vec<(Option<&str>, Option<&str>, &str)> = report
        .suspicious
        .iter()
        .filter(|s| s.kind == "first_seen_source")
        .map(|s| (s.user.as_deref(), s.source.as_deref(), s.when.as_str()))
        .collect();
    assert_eq!(
        first,
        [
            (Some("alice"), Some("192.0.2.3"), "2026-03-10T00:00:00Z"),
            (Some("bob"), Some("192.0.2.9"), "2026-03-10T08:00:00Z"),
        ]
    );
    let last: Vec<(&str, Option<&str>, bool)> = report
        .entitlements
        .iter()
        .map(|u| (u.user.as_str(), u.last_login.as_deref(), u.dormant))
        .collect();
    assert_eq!(
        last,
        [
            ("alice", Some("2026-03-10T09:00:00Z"), false),
            ("bob", Some("2026-03-10T08:00:00Z"), false),
            ("carol", Some("2025-12-11T00:00:00Z"), false),
            ("dave", None, true),
        ]
    );
    assert_eq!(report.summary.users_dormant, ["dave"]);

    // A day later carol's only login has left the 90 days: dormant, and
    // no longer shown as her last login (the report looks back 90 days).
    let next = generate(
        &config,
        &live,
        &policy,
        time::macros::date!(2026 - 03 - 11),
        at("2026-03-12T00:00:00Z"),
    )
    .await
    .unwrap();
    let carol = next
        .entitlements
        .iter()
        .find(|u| u.user == "carol")
        .unwrap();
    assert!(carol.dormant);
    assert_eq!(carol.last_login, None);
    let bob = next.entitlements.iter().find(|u| u.user == "bob").unwrap();
    assert_eq!(bob.last_login.as_deref(), Some("2026-03-10T08:00:00Z"));
    assert!(!bob.dormant);
}

/// (ts, user, source, session) of one login.
type DayLogin = (
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);

/// The day's logins beyond those of [`HISTORY`]: (ts, user, source,
/// session), written in this order. Two of carol's from one address at the
/// same microsecond (the first written, `c2`, is the first login); logins
/// without a user, without a source, and with neither.
const DAY_LOGINS: [DayLogin; 8] = [
    (
        "2026-03-10T11:00:00.000000Z",
        Some("carol"),
        Some("192.0.2.4"),
        Some("c2"),
    ),
    (
        "2026-03-10T11:00:00.000000Z",
        Some("carol"),
        Some("192.0.2.4"),
        Some("c1"),
    ),
    (
        "2026-03-10T07:00:00.000000Z",
        Some("carol"),
        Some("192.0.2.4"),
        Some("c3"),
    ),
    (
        "2026-03-10T12:00:00.000000Z",
        Some("carol"),
        Some("192.0.2.4"),
        Some("c4"),
    ),
    (
        "2026-03-10T13:00:00.000000Z",
        None,
        Some("192.0.2.7"),
        Some("n1"),
    ),
    (
        "2026-03-10T14:00:00.000000Z",
        Some("erin"),
        None,
        Some("e1"),
    ),
    (
        "2026-03-10T15:00:00.000000Z",
        Some("erin"),
        None,
        Some("e2"),
    ),
    ("2026-03-10T16:00:00.000000Z", None, None, None),
];

async fn store_with_day_logins(db: &Db) -> Store {
    let store = store_with_history(db).await;
    let raw = db.raw().await;
    for (i, (ts, user, source, session)) in DAY_LOGINS.iter().enumerate() {
        insert_event(
            &raw,
            200 + i as i64,
            ts,
            "auth.success",
            *user,
            *source,
            *session,
        )
        .await;
    }
    raw.close().await;
    store
}

async fn login_groups_of_a_day(db: Db) {
    use gatehouse::store::LoginGroup;
    let store = store_with_day_logins(&db).await;
    let group = |user: Option<&str>,
                 source: Option<&str>,
                 count: u64,
                 first: &str,
                 session: Option<&str>,
                 last: &str| LoginGroup {
        user: user.map(str::to_string),
        source: source.map(str::to_string),
        count,
        first: at(first),
        first_session: session.map(str::to_string),
        last: at(last),
    };
    let day = store
        .login_groups(at("2026-03-10T00:00:00Z"), at("2026-03-11T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(
        day,
        [
            group(
                None,
                None,
                1,
                "2026-03-10T16:00:00Z",
                None,
                "2026-03-10T16:00:00Z"
            ),
            group(
                None,
                Some("192.0.2.7"),
                1,
                "2026-03-10T13:00:00Z",
                None,
                "2026-03-10T13:00:00Z"
            ),
            group(
                Some("alice"),
                Some("192.0.2.1"),
                1,
                "2026-03-10T09:00:00Z",
                None,
                "2026-03-10T09:00:00Z"
            ),
            group(
                Some("alice"),
                Some("192.0.2.3"),
                1,
                "2026-03-10T00:00:00Z",
                None,
                "2026-03-10T00:00:00Z"
            ),
            group(
                Some("bob"),
                Some("192.0.2.9"),
                1,
                "2026-03-10T08:00:00Z",
                None,
                "2026-03-10T08:00:00Z"
            ),
            group(
                Some("carol"),
                Some("192.0.2.4"),
                4,
                "2026-03-10T07:00:00Z",
                Some("c3"),
                "2026-03-10T12:00:00Z"
            ),
            group(
                Some("erin"),
                None,
                2,
                "2026-03-10T14:00:00Z",
                None,
                "2026-03-10T15:00:00Z"
            ),
        ]
    );
    // The first login's session, ties by id: carol's two at 11:00.
    let tie = store
        .login_groups(at("2026-03-10T10:00:00Z"), at("2026-03-10T11:30:00Z"))
        .await
        .unwrap();
    assert_eq!(
        tie,
        [group(
            Some("carol"),
            Some("192.0.2.4"),
            2,
            "2026-03-10T11:00:00Z",
            Some("c2"),
            "2026-03-10T11:00:00Z"
        )]
    );
    assert!(
        store
            .login_groups(at("2020-01-01T00:00:00Z"), at("2020-01-02T00:00:00Z"))
            .await
            .unwrap()
            .is_empty()
    );
}

/// `generate` takes the day's logins as groups from the database; the
/// in-memory `build`, given every event of the day one by one, must give
/// the very same report.
async fn report_from_login_groups_matches_every_event(db: Db) {
    use futures::TryStreamExt;
    use gatehouse::report::{LiveSource, build, gather, generate};
    let store = store_with_day_logins(&db).await;
    let raw = db.raw().await;
    // Failed logins: bursts for two users from one address, starting at
    // the same microsecond, and the other kinds the report reads.
    let mut seq = 300;
    for minute in 0..6 {
        for user in ["zed", "mallory"] {
            let ts = format!("2026-03-10T03:0{minute}:00.000000Z");
            insert_event(
                &raw,
                seq,
                &ts,
                "auth.failure",
                Some(user),
                Some("203.0.113.5"),
                None,
            )
            .await;
            seq += 1;
        }
    }
    for (ts, kind, session) in [
        ("2026-03-10T07:00:01.000000Z", "session.start", "c3"),
        ("2026-03-10T07:10:00.000000Z", "exec", "c3"),
        ("2026-03-10T07:20:00.000000Z", "session.end", "c3"),
        ("2026-03-10T22:00:00.000000Z", "access.denied", "x9"),
    ] {
        insert_event(
            &raw,
            seq,
            ts,
            kind,
            Some("carol"),
            Some("192.0.2.4"),
            Some(session),
        )
        .await;
        seq += 1;
    }
    raw.close().await;

    let config = gatehouse::config::Config::default();
    let live = LiveSource::new(&config, store.clone());
    let mut policy_text = String::new();
    for user in ["alice", "bob", "carol", "dave", "erin"] {
        policy_text.push_str(&format!("[[user]]\nname = \"{user}\"\nkeys = []\n\n"));
    }
    let policy =
        gatehouse::policy::Policy::from_sources(&[("users.toml".into(), policy_text)]).unwrap();
    let date = time::macros::date!(2026 - 03 - 10);
    let now = at("2026-03-12T00:00:00Z");
    let grouped = generate(&config, &live, &policy, date, now).await.unwrap();

    let mut input = gather(&config, &live, &policy, date, now).await.unwrap();
    let mut events: Vec<_> = store
        .export_stream(
            Some(at("2026-03-10T00:00:00Z")),
            Some(at("2026-03-11T00:00:00Z")),
        )
        .try_collect()
        .await
        .unwrap();
    events.sort_by(|a, b| (&a.ts, a.id).cmp(&(&b.ts, b.id)));
    let logins = events.iter().filter(|e| e.kind == "auth.success").count();
    input.events = events;
    let one_by_one = build(&input, date);

    assert_eq!(grouped, one_by_one);
    // Not an empty comparison: the day's logins, failures and what they
    // make are in both.
    assert_eq!(grouped.summary.auth_success, logins as u64);
    assert_eq!(grouped.summary.auth_success, 11);
    assert_eq!(grouped.summary.auth_failure, 12);
    assert_eq!(grouped.summary.events, 11 + 12 + 4);
    assert_eq!(grouped.summary.failed_login_bursts, 3);
    let first: Vec<(Option<&str>, Option<&str>, Option<&str>)> = grouped
        .suspicious
        .iter()
        .filter(|s| s.kind == "first_seen_source")
        .map(|s| (s.user.as_deref(), s.source.as_deref(), s.session.as_deref()))
        .collect();
    assert_eq!(
        first,
        [
            (Some("alice"), Some("192.0.2.3"), None),
            (Some("carol"), Some("192.0.2.4"), Some("c3")),
            (Some("bob"), Some("192.0.2.9"), None),
        ]
    );
    let erin = grouped
        .entitlements
        .iter()
        .find(|u| u.user == "erin")
        .unwrap();
    assert_eq!(erin.last_login.as_deref(), Some("2026-03-10T15:00:00Z"));
}

/// `sessions_between` at the edges of the range, as the report asks for a
/// day: begun before and ended at its first microsecond or later, still
/// open, begun at its last microsecond; not those ended just before it or
/// begun at its end.
async fn sessions_overlapping_a_day(db: Db) {
    let store = db.open("n1").await;
    let (day, next) = (at("2026-03-10T00:00:00Z"), at("2026-03-11T00:00:00Z"));
    let cases: [(&str, &str, Option<&str>, bool); 9] = [
        (
            "ended-before",
            "2026-03-09T10:00:00Z",
            Some("2026-03-09T23:59:59.999999Z"),
            false,
        ),
        (
            "ended-at-start",
            "2026-03-09T23:00:00Z",
            Some("2026-03-10T00:00:00Z"),
            true,
        ),
        (
            "crossed-midnight",
            "2026-03-09T23:30:00Z",
            Some("2026-03-10T00:30:00Z"),
            true,
        ),
        (
            "ended-next-day",
            "2026-03-01T00:00:00Z",
            Some("2026-03-12T00:00:00Z"),
            true,
        ),
        ("open-since-before", "2026-02-01T00:00:00Z", None, true),
        (
            "in-the-day",
            "2026-03-10T08:00:00Z",
            Some("2026-03-10T09:00:00Z"),
            true,
        ),
        ("open-in-the-day", "2026-03-10T23:59:59.999999Z", None, true),
        (
            "begun-at-end",
            "2026-03-11T00:00:00Z",
            Some("2026-03-11T01:00:00Z"),
            false,
        ),
        ("open-after", "2026-03-12T00:00:00Z", None, false),
    ];
    for (id, start, end, _) in cases {
        let mut row = session(id, "n1", at(start));
        row.ended_at = end.map(at);
        store.session_start(&row).await.unwrap();
    }
    let got = store.sessions_between(day, next).await.unwrap();
    let ids: Vec<&str> = got.iter().map(|s| s.id.as_str()).collect();
    // Oldest first.
    assert_eq!(
        ids,
        [
            "open-since-before",
            "ended-next-day",
            "ended-at-start",
            "crossed-midnight",
            "in-the-day",
            "open-in-the-day",
        ]
    );
    let expected: HashSet<&str> = cases.iter().filter(|c| c.3).map(|c| c.0).collect();
    assert_eq!(ids.iter().copied().collect::<HashSet<_>>(), expected);
    let open = got.iter().find(|s| s.id == "open-since-before").unwrap();
    assert_eq!(open.ended_at, None);
}

/// The report leaves out the start and end events of sessions whose rows
/// have ended and know their flag (`Store::report_events`), and the report
/// is still the one built from every event: the flag and the rest come
/// from the row. Sessions whose rows cannot stand in for their events keep
/// them: a row from before the flag column (flag unknown), a row a crashed
/// node left open (its end only in the events), events without a row.
async fn report_reads_settled_sessions_from_their_rows(db: Db) {
    use futures::TryStreamExt;
    use gatehouse::report::{LiveSource, build, gather, generate};
    let store = db.open("n1").await;
    let now = OffsetDateTime::now_utc();
    let date = now.date();
    let (day, next) = gatehouse::report::day_bounds(date);
    // (id, row: none / open / ended, the row's flag, the events' flag)
    let cases: [(&str, Option<bool>, Option<bool>, bool); 4] = [
        ("settled", Some(true), Some(true), true),
        ("unknown-flag", Some(true), None, true),
        ("left-open", Some(false), Some(false), false),
        ("no-row", None, None, true),
    ];
    for (id, row, row_flag, ev_flag) in cases {
        if let Some(ended) = row {
            let mut r = session(id, "n1", now);
            r.server = Some("db1".into());
            r.account = Some("root".into());
            r.flagged = row_flag;
            store.session_start(&r).await.unwrap();
            if ended {
                store
                    .session_end(id, now, 5, 50, Some(0), "closed")
                    .await
                    .unwrap();
            }
        }
        store
            .audit(
                &AuditEvent::new(EventKind::SessionStart)
                    .user("alice")
                    .server("db1")
                    .account("root")
                    .source("192.0.2.1")
                    .session(id)
                    .detail("mode", "ssh-forwarding")
                    .detail("flagged", ev_flag),
            )
            .await
            .unwrap();
        store
            .audit(
                &AuditEvent::new(EventKind::SessionEnd)
                    .user("alice")
                    .server("db1")
                    .account("root")
                    .source("192.0.2.1")
                    .session(id)
                    .detail("bytes_up", 5)
                    .detail("bytes_down", 50)
                    .detail("exit_status", 0)
                    .detail("reason", "closed"),
            )
            .await
            .unwrap();
    }
    store
        .audit(
            &AuditEvent::new(EventKind::AccessDenied)
                .user("alice")
                .server("db2")
                .detail("reason", "no rule"),
        )
        .await
        .unwrap();

    let kinds = ["session.start", "session.end", "access.denied"];
    let passed: Vec<_> = store
        .report_events(day, next, &kinds)
        .try_collect()
        .await
        .unwrap();
    let sessions: HashSet<&str> = passed.iter().filter_map(|e| e.session.as_deref()).collect();
    assert_eq!(
        sessions,
        HashSet::from(["unknown-flag", "left-open", "no-row"]),
        "only the settled session's events are left out"
    );
    assert_eq!(passed.len(), 3 * 2 + 1);

    let config = gatehouse::config::Config::default();
    let live = LiveSource::new(&config, store.clone());
    let policy = gatehouse::policy::Policy::default();
    let report = generate(&config, &live, &policy, date, now).await.unwrap();
    let mut input = gather(&config, &live, &policy, date, now).await.unwrap();
    let mut events: Vec<_> = store
        .export_stream(Some(day), Some(next))
        .try_collect()
        .await
        .unwrap();
    events.sort_by(|a, b| (&a.ts, a.id).cmp(&(&b.ts, b.id)));
    let all = events.len() as u64;
    input.events = events;
    assert_eq!(report, build(&input, date));
    assert_eq!(report.summary.events, all, "left-out events still count");
    let got: HashMap<&str, (bool, bool, i64)> = report
        .sessions
        .iter()
        .map(|s| (s.id.as_str(), (s.flagged, s.live, s.bytes_down)))
        .collect();
    assert_eq!(
        got,
        HashMap::from([
            ("settled", (true, false, 50)),
            ("unknown-flag", (true, false, 50)),
            ("left-open", (false, false, 50)),
            ("no-row", (true, false, 50)),
        ])
    );
}

// ---- second factors (issue 19) ----

use gatehouse::config::{AuthConfig, MfaMode};
use gatehouse::identity::{self, Enrollment, Factor, LoginContext, Refusal};
use gatehouse::vault::MasterKey;

fn mfa_auth(self_enroll: bool) -> AuthConfig {
    AuthConfig {
        mfa: MfaMode::Required,
        mfa_cache: std::time::Duration::from_secs(3600),
        mfa_self_enroll: self_enroll,
    }
}

fn login(user: &str, fingerprint: &str, source: &str) -> LoginContext {
    LoginContext {
        user: user.into(),
        fingerprint: fingerprint.into(),
        source: source.parse().unwrap(),
        session: Some("sess-mfa".into()),
        server: None,
    }
}

/// The store's own answers: one conditional statement each.
async fn mfa_store_rows(db: Db) {
    let store = db.open("n1").await;
    let now = at("2026-12-06T10:00:00Z");
    assert!(store.mfa_factor("alice", "totp").await.unwrap().is_none());
    let hashes: Vec<String> = (0..3).map(|i| format!("h{i}")).collect();
    store
        .mfa_enroll("alice", "totp", "sealed-1", &hashes, now)
        .await
        .unwrap();
    let f = store.mfa_factor("alice", "totp").await.unwrap().unwrap();
    assert_eq!(f.sealed_secret, "sealed-1");
    assert_eq!(f.enrolled_at, now);
    assert_eq!(f.last_used_at, None);
    assert!(!format!("{f:?}").contains("sealed-1"));

    // Steps only move forward: a replay or an older step is refused.
    assert!(store.mfa_use_step("alice", 100).await.unwrap());
    assert!(!store.mfa_use_step("alice", 100).await.unwrap());
    assert!(!store.mfa_use_step("alice", 99).await.unwrap());
    assert!(store.mfa_use_step("alice", 101).await.unwrap());
    assert!(store.mfa_use_step("bob", 100).await.unwrap());

    // Recovery codes: single use.
    let unused = store.mfa_recovery_unused("alice").await.unwrap();
    assert_eq!(unused.len(), 3);
    assert!(store.mfa_recovery_use("alice", 1, now).await.unwrap());
    assert!(!store.mfa_recovery_use("alice", 1, now).await.unwrap());
    assert_eq!(store.mfa_recovery_unused("alice").await.unwrap().len(), 2);

    store.mfa_touch("alice", "totp", now).await.unwrap();
    let list = store.mfa_list().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].user, "alice");
    assert_eq!(list[0].factor, "totp");
    assert_eq!(list[0].last_used, Some(now));
    assert_eq!(list[0].recovery_codes_left, 2);

    // The cache: keyed by user, fingerprint and source; expires; cleared
    // by forget and by a lockout.
    let until = now + Duration::hours(1);
    store
        .mfa_cache_put("alice", "SHA256:k", "127.0.0.1", until)
        .await
        .unwrap();
    assert!(
        store
            .mfa_cache_hit("alice", "SHA256:k", "127.0.0.1", now)
            .await
            .unwrap()
    );
    assert!(
        !store
            .mfa_cache_hit("alice", "SHA256:k", "127.0.0.2", now)
            .await
            .unwrap()
    );
    assert!(
        !store
            .mfa_cache_hit("alice", "SHA256:j", "127.0.0.1", now)
            .await
            .unwrap()
    );
    assert!(
        !store
            .mfa_cache_hit("bob", "SHA256:k", "127.0.0.1", now)
            .await
            .unwrap()
    );
    assert!(
        !store
            .mfa_cache_hit("alice", "SHA256:k", "127.0.0.1", until)
            .await
            .unwrap()
    );
    assert_eq!(store.mfa_forget("alice").await.unwrap(), 1);
    assert!(
        !store
            .mfa_cache_hit("alice", "SHA256:k", "127.0.0.1", now)
            .await
            .unwrap()
    );
    store
        .mfa_cache_put("alice", "SHA256:k", "127.0.0.1", until)
        .await
        .unwrap();
    store
        .lock_user("alice", OffsetDateTime::now_utc() + Duration::hours(1))
        .await
        .unwrap();
    assert!(
        !store
            .mfa_cache_hit("alice", "SHA256:k", "127.0.0.1", now)
            .await
            .unwrap()
    );

    // Allow-enroll.
    assert!(!store.mfa_enroll_allowed("carol", now).await.unwrap());
    store.mfa_allow_enroll("carol", until).await.unwrap();
    assert!(store.mfa_enroll_allowed("carol", now).await.unwrap());
    assert!(!store.mfa_enroll_allowed("carol", until).await.unwrap());

    // Reset removes the factor, the codes and the cache.
    store
        .mfa_cache_put("alice", "SHA256:k", "127.0.0.1", until)
        .await
        .unwrap();
    assert!(store.mfa_reset("alice").await.unwrap());
    assert!(!store.mfa_reset("alice").await.unwrap());
    assert!(store.mfa_factor("alice", "totp").await.unwrap().is_none());
    assert!(store.mfa_recovery_unused("alice").await.unwrap().is_empty());
    assert!(
        !store
            .mfa_cache_hit("alice", "SHA256:k", "127.0.0.1", now)
            .await
            .unwrap()
    );
    assert!(store.mfa_list().await.unwrap().is_empty());
}

/// Enrollment and login codes through `identity`, on two nodes sharing
/// the database: a code used on one is refused on the other.
async fn mfa_enroll_verify_and_replay_across_nodes(db: Db) {
    let n1 = db.open("n1").await;
    let n2 = db.open("n2").await;
    let master = MasterKey::generate().unwrap();
    let auth = mfa_auth(true);
    let t0 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let step = |n: i64| t0 + Duration::seconds(30 * n);

    let e = Enrollment::begin("alice", "bastion.example.com").unwrap();
    assert!(
        e.uri
            .starts_with("otpauth://totp/Gatehouse:alice@bastion.example.com?secret=")
    );
    let b32 = e
        .uri
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string();
    assert!(!format!("{e:?}").contains(&b32));
    assert!(e.qr().unwrap().lines().count() > 10);

    let bad = identity::finish_enrollment(&n1, &master, &auth, &e, "000000x", None, t0)
        .await
        .unwrap();
    assert_eq!(bad.unwrap_err(), Refusal::WrongCode);
    let first = e.code_at(t0).unwrap();
    let codes = identity::finish_enrollment(&n1, &master, &auth, &e, &first, None, t0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(codes.0.len(), 10);
    assert!(!format!("{codes:?}").contains(&codes.0[0]));

    // The secret is sealed, not stored in the clear.
    let raw = db.raw().await;
    let stored: String =
        sqlx::query_scalar("SELECT secret FROM mfa_factors WHERE username = 'alice'")
            .fetch_one(&raw)
            .await
            .unwrap();
    assert!(!stored.contains(&b32));
    let hashes: Vec<String> = sqlx::query_scalar("SELECT hash FROM mfa_recovery_codes")
        .fetch_all(&raw)
        .await
        .unwrap();
    assert_eq!(hashes.len(), 10);
    for c in &codes.0 {
        assert!(
            hashes
                .iter()
                .all(|h| !h.contains(c.as_str()) && !h.contains(&c.replace('-', "")))
        );
    }

    let ctx = login("alice", "SHA256:key", "127.0.0.1");
    // The enrollment code cannot log in: its step is used.
    let r = identity::verify_login(&n2, &master, &auth, &ctx, &first, t0)
        .await
        .unwrap();
    assert_eq!(r, Err(Refusal::Replayed));

    // A fresh code on node 2 (with a CR, as some clients send it) ...
    let c1 = e.code_at(step(1)).unwrap();
    let r = identity::verify_login(&n2, &master, &auth, &ctx, &format!(" {c1}\r"), step(1))
        .await
        .unwrap();
    assert_eq!(r, Ok(Factor::Totp));
    // ... is refused on node 1.
    let r = identity::verify_login(&n1, &master, &auth, &ctx, &c1, step(1))
        .await
        .unwrap();
    assert_eq!(r, Err(Refusal::Replayed));

    // One step old: accepted. Three steps old: refused.
    let r = identity::verify_login(
        &n1,
        &master,
        &auth,
        &ctx,
        &e.code_at(step(4)).unwrap(),
        step(5),
    )
    .await
    .unwrap();
    assert_eq!(r, Ok(Factor::Totp));
    let r = identity::verify_login(
        &n1,
        &master,
        &auth,
        &ctx,
        &e.code_at(step(7)).unwrap(),
        step(10),
    )
    .await
    .unwrap();
    assert_eq!(r, Err(Refusal::WrongCode));
    let r = identity::verify_login(&n1, &master, &auth, &ctx, "123456789", step(10))
        .await
        .unwrap();
    assert_eq!(r, Err(Refusal::WrongCode));

    // A recovery code works once, on any node.
    let rc = codes.0[3].to_uppercase();
    let r = identity::verify_login(&n1, &master, &auth, &ctx, &rc, step(11))
        .await
        .unwrap();
    assert_eq!(r, Ok(Factor::Recovery));
    let r = identity::verify_login(&n2, &master, &auth, &ctx, &rc, step(11))
        .await
        .unwrap();
    assert_eq!(r, Err(Refusal::WrongCode));

    // The approval was cached for this user, key and source only.
    assert!(
        identity::factors::cached(&n2, &ctx, step(12))
            .await
            .unwrap()
    );
    let other_source = login("alice", "SHA256:key", "127.0.0.2");
    assert!(
        !identity::factors::cached(&n2, &other_source, step(12))
            .await
            .unwrap()
    );
    let other_key = login("alice", "SHA256:other", "127.0.0.1");
    assert!(
        !identity::factors::cached(&n2, &other_key, step(12))
            .await
            .unwrap()
    );
    let mapped = login("alice", "SHA256:key", "::ffff:127.0.0.1");
    assert!(
        identity::factors::cached(&n2, &mapped, step(12))
            .await
            .unwrap()
    );
    assert_eq!(identity::forget(&n1, "alice").await.unwrap(), 1);
    assert!(
        !identity::factors::cached(&n2, &ctx, step(12))
            .await
            .unwrap()
    );

    // "0s" caches nothing.
    let no_cache = AuthConfig {
        mfa_cache: std::time::Duration::ZERO,
        ..mfa_auth(true)
    };
    let c = e.code_at(step(13)).unwrap();
    let r = identity::verify_login(&n1, &master, &no_cache, &ctx, &c, step(13))
        .await
        .unwrap();
    assert_eq!(r, Ok(Factor::Totp));
    assert!(
        !identity::factors::cached(&n1, &ctx, step(13))
            .await
            .unwrap()
    );

    // Another master key cannot open the secret: a fault, not a login.
    let other = MasterKey::generate().unwrap();
    let c = e.code_at(step(20)).unwrap();
    assert!(
        identity::verify_login(&n1, &other, &auth, &ctx, &c, step(20))
            .await
            .is_err()
    );

    // Reset: the factor is gone; the event names who did it.
    assert!(identity::reset(&n2, "alice", "root").await.unwrap());
    let c = e.code_at(step(21)).unwrap();
    let r = identity::verify_login(&n1, &master, &auth, &ctx, &c, step(21))
        .await
        .unwrap();
    assert_eq!(r, Err(Refusal::NotEnrolled));

    // The events, and no secret or code in any of them.
    let events = n1.export(None, None).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        vec![
            "mfa.enrolled",
            "mfa.failure",
            "mfa.success",
            "mfa.failure",
            "mfa.success",
            "mfa.failure",
            "mfa.failure",
            "mfa.success",
            "mfa.failure",
            "mfa.success",
            "mfa.reset",
            "mfa.failure",
        ]
    );
    assert_eq!(events[1].detail["code"], "mfa_replayed");
    assert_eq!(events[2].detail["factor"], "totp");
    assert_eq!(events[2].source.as_deref(), Some("127.0.0.1"));
    assert_eq!(events[7].detail["factor"], "recovery");
    assert_eq!(events[10].user.as_deref(), Some("alice"));
    assert_eq!(events[10].detail["by"], "root");
    assert_eq!(events[11].detail["code"], "mfa_not_enrolled");
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains(&b32));
    assert!(!all.contains(&first) && !all.contains(&c1));
    for code in &codes.0 {
        assert!(!all.contains(code.as_str()));
    }
    assert_eq!(n1.verify_chain().await.unwrap().first_bad, None);
}

async fn mfa_self_enroll_off_needs_allow_enroll(db: Db) {
    let store = db.open("n1").await;
    let master = MasterKey::generate().unwrap();
    let auth = mfa_auth(false);
    let now = OffsetDateTime::now_utc();
    let e = Enrollment::begin("bob", "gh").unwrap();
    let code = e.code_at(now).unwrap();
    let r = identity::finish_enrollment(&store, &master, &auth, &e, &code, None, now)
        .await
        .unwrap();
    assert_eq!(r.unwrap_err(), Refusal::EnrollNotAllowed);
    assert!(
        !identity::enroll_allowed(&store, &auth, "bob", now)
            .await
            .unwrap()
    );
    store
        .mfa_allow_enroll("bob", now + Duration::hours(24))
        .await
        .unwrap();
    assert!(
        identity::enroll_allowed(&store, &auth, "bob", now)
            .await
            .unwrap()
    );
    let r = identity::finish_enrollment(&store, &master, &auth, &e, &code, None, now)
        .await
        .unwrap();
    assert_eq!(r.unwrap().0.len(), 10);
    // Enrolling used up the permission.
    assert!(
        !identity::enroll_allowed(&store, &auth, "bob", now)
            .await
            .unwrap()
    );
    assert_eq!(store.mfa_list().await.unwrap()[0].user, "bob");
}

/// `vault rekey` re-seals staff TOTP secrets with the vault's rows: after
/// it, codes check under the new key only.
async fn mfa_secrets_follow_a_vault_rekey(db: Db) {
    let store = db.open("n1").await;
    let old = MasterKey::from_bytes([7; 32]);
    let auth = mfa_auth(true);
    let t0 = OffsetDateTime::now_utc();
    let e = Enrollment::begin("alice", "gh").unwrap();
    identity::finish_enrollment(&store, &old, &auth, &e, &e.code_at(t0).unwrap(), None, t0)
        .await
        .unwrap()
        .unwrap();
    let vault = gatehouse::vault::Vault::new(
        db.raw().await,
        MasterKey::from_bytes([7; 32]),
        gatehouse::config::Config::default().vault,
    );
    let new = MasterKey::from_bytes([9; 32]);
    vault.rekey(MasterKey::from_bytes([9; 32])).await.unwrap();
    let ctx = login("alice", "SHA256:key", "127.0.0.1");
    let t1 = t0 + Duration::seconds(30);
    let c = e.code_at(t1).unwrap();
    assert!(
        identity::verify_login(&store, &old, &auth, &ctx, &c, t1)
            .await
            .is_err()
    );
    let r = identity::verify_login(&store, &new, &auth, &ctx, &c, t1)
        .await
        .unwrap();
    assert_eq!(r, Ok(Factor::Totp));
}
