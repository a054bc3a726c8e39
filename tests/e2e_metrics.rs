//! The admin listener end to end (issue 10 items 6 and 7): real sessions
//! through `gatehouse serve`, then `/metrics` is scraped and its figures
//! checked against what the test did and against the audit log; `/healthz`
//! and `gatehouse healthz` pass, then fail once the recordings folder can
//! no longer take a file (replaced by a plain file: that stops root too,
//! where `chmod` would not), and pass again once it is back.

mod common;
#[path = "support/http.rs"]
mod http;
#[path = "support/pg.rs"]
mod pg;
#[path = "common/scenario.rs"]
mod scenario;

use std::time::Duration;

use common::*;
use http::{get, metric};
use scenario::*;

const MODE: &str = "ssh-forwarding";

fn scrape(addr: &str) -> String {
    let (status, body) = get(addr, "/metrics");
    assert_eq!(status, 200, "/metrics: {body}");
    body
}

fn kind_count(gh: &Gatehouse, kind: &str) -> f64 {
    gh.audit_events_of(kind).len() as f64
}

#[test]
fn metrics_count_real_sessions_and_healthz_follows_the_recordings_folder() {
    let admin = format!("127.0.0.1:{}", free_port());
    let w = setup(Backend::Sqlite)
        .toml(&format!("[metrics]\nlisten = \"{admin}\""))
        .web1("record = \"always\"")
        .start();
    let before = scrape(&admin);
    assert!(
        before.contains("# TYPE gatehouse_recording_failures_total counter"),
        "{before}"
    );
    let base = |name: &str, labels: &[(&str, &str)]| metric(&before, name, labels);

    // Three recorded exec sessions, each sending SENT bytes up.
    const SENT: usize = 200_000;
    for _ in 0..3 {
        let data = random_bytes(SENT);
        let out = w
            .client
            .ssh_with_stdin("alice+root@web1", &["wc -c"], &data);
        out.assert_success("wc -c through the bastion");
        assert_eq!(out.stdout_text().trim(), SENT.to_string());
    }
    // One command-mode login, one refused account, one unknown key.
    let out = w.client.ssh("alice", &["whoami"]);
    out.assert_success("command mode whoami");
    let out = w.client.ssh("alice+nobody@web1", &["true"]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr_text());
    let stranger = w.key("stranger");
    let out =
        w.gh.client(&w.dir, &stranger)
            .ssh("alice+root@web1", &["true"]);
    assert_ne!(out.code(), Some(0), "an unknown key must not get in");

    // Session counters settle when the connections' end is processed.
    let mut now = String::new();
    let settled = wait_until(Duration::from_secs(15), || {
        now = scrape(&admin);
        metric(&now, "gatehouse_sessions_live", &[]) == 0.0
            && metric(&now, "gatehouse_sessions_total", &[("mode", MODE)])
                - base("gatehouse_sessions_total", &[("mode", MODE)])
                == 3.0
    });
    assert!(settled, "sessions did not settle:\n{now}");
    let delta =
        |name: &str, labels: &[(&str, &str)]| metric(&now, name, labels) - base(name, labels);

    // Sessions by mode, on this node (the harness names none: the
    // bastion's default is the host name, as session.start reports it).
    let start = &w.gh.audit_events_of("session.start")[0];
    let node_name = start["node"].as_str().unwrap_or_default().to_string();
    assert!(
        !node_name.is_empty(),
        "session.start names its node: {start}"
    );
    assert_eq!(
        delta(
            "gatehouse_sessions_total",
            &[("node", &node_name), ("mode", MODE)]
        ),
        3.0,
        "{now}"
    );
    assert_eq!(
        delta("gatehouse_sessions_total", &[("mode", "command")]),
        1.0,
        "{now}"
    );
    assert_eq!(
        delta("gatehouse_sessions_total", &[("mode", "denied")]),
        1.0,
        "{now}"
    );

    // Authentications and refusals match the audit log exactly.
    assert_eq!(
        metric(&now, "gatehouse_auth_total", &[("result", "success")]),
        kind_count(&w.gh, "auth.success"),
        "{now}"
    );
    let failures = kind_count(&w.gh, "auth.failure");
    assert!(failures >= 1.0, "the unknown key was refused");
    assert_eq!(
        metric(&now, "gatehouse_auth_total", &[("result", "failure")]),
        failures,
        "{now}"
    );
    let denied = w.gh.audit_events_of("access.denied");
    assert!(!denied.is_empty(), "the refused account is audited");
    for ev in &denied {
        let code = ev["detail"]["code"].as_str().unwrap_or("none");
        let same = denied
            .iter()
            .filter(|e| e["detail"]["code"].as_str().unwrap_or("none") == code)
            .count() as f64;
        assert_eq!(
            metric(
                &now,
                "gatehouse_refusals_total",
                &[("kind", "access.denied"), ("code", code)]
            ),
            same,
            "code {code}:\n{now}"
        );
    }

    // Bytes: at least what the test pushed up, and the answers came down.
    let up = delta("gatehouse_session_bytes_total", &[("direction", "up")]);
    assert!(
        up >= (3 * SENT) as f64,
        "bytes up {up} < {}:\n{now}",
        3 * SENT
    );
    assert!(
        delta("gatehouse_session_bytes_total", &[("direction", "down")]) > 0.0,
        "{now}"
    );
    // The recordings were flushed, none failed.
    assert!(
        delta("gatehouse_recording_flush_seconds_count", &[]) >= 3.0,
        "{now}"
    );
    assert_eq!(metric(&now, "gatehouse_recording_failures_total", &[]), 0.0);
    // Database errors cannot be provoked on a healthy SQLite here; the
    // family's exposition is checked by the metrics module's unit test.

    // Policy loads: the start-up one, then a rejected change.
    assert_eq!(
        metric(
            &now,
            "gatehouse_policy_reloads_total",
            &[("result", "applied")]
        ),
        kind_count(&w.gh, "policy.reloaded"),
        "{now}"
    );
    w.gh.write_policy("broken.toml", "[[user]]\nname = 42\n");
    let rejected = wait_until(Duration::from_secs(15), || {
        metric(
            &scrape(&admin),
            "gatehouse_policy_reloads_total",
            &[("result", "rejected")],
        ) >= 1.0
    });
    assert!(rejected, "a rejected policy change is counted");
    w.gh.remove_policy("broken.toml");

    // Health: fine, then the recordings folder is replaced by a file.
    let (status, body) = get(&admin, "/healthz");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let ok = w.gh.cli(&["healthz"]);
    ok.assert_success("gatehouse healthz");
    assert!(ok.stdout_text().starts_with("ok:"), "{}", ok.stdout_text());

    let rec = w.recordings();
    let aside = rec.with_extension("aside");
    std::fs::rename(&rec, &aside).expect("move recordings aside");
    std::fs::write(&rec, b"not a folder").expect("file in its place");
    let (status, body) = get(&admin, "/healthz");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.starts_with("unhealthy: recordings folder") && body.contains("not writable"),
        "{body}"
    );
    let bad = w.gh.cli(&["healthz"]);
    assert_eq!(bad.code(), Some(1), "{}", bad.stdout_text());
    let err = bad.stderr_text();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("error: unhealthy: recordings folder"),
        "{err}"
    );

    std::fs::remove_file(&rec).expect("remove the file");
    std::fs::rename(&aside, &rec).expect("recordings back");
    let (status, _) = get(&admin, "/healthz");
    assert_eq!(status, 200, "healthy again once the folder is back");
    let (status, _) = get(&admin, "/nothing-here");
    assert_eq!(status, 404);
}

#[test]
fn healthz_fails_without_a_database() {
    // PostgreSQL that is not there: nothing listens on this port.
    let dir = TestDir::new();
    let gh = Gatehouse::configure(
        &dir,
        GatehouseOpts::new().database(&format!(
            "postgres://postgres@127.0.0.1:{}/none",
            free_port()
        )),
    );
    let out = gh.cli(&["healthz"]);
    assert_eq!(out.code(), Some(1), "{}", out.stdout_text());
    let err = out.stderr_text();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("error: unhealthy: database does not answer"),
        "{err}"
    );
}

/// A PostgreSQL database that still answers but refuses writes (as a
/// standby or a full disk would) makes `/healthz` fail; it recovers
/// without a restart once writes are accepted again.
#[test]
fn healthz_fails_while_postgresql_refuses_writes() {
    let admin = format!("127.0.0.1:{}", free_port());
    let w = setup(Backend::Postgres)
        .toml(&format!("[metrics]\nlisten = \"{admin}\""))
        .start();
    let (status, body) = get(&admin, "/healthz");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let db = w.db_url();
    let name = db.rsplit('/').next().unwrap_or_default().to_string();
    // New connections start read-only; the bastion's are cut so that its
    // pool reconnects.
    let cut = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
               WHERE datname = current_database() AND pid <> pg_backend_pid()";
    w.sql(&format!(
        "ALTER DATABASE {name} SET default_transaction_read_only = on"
    ));
    w.sql(cut);
    let mut last = String::new();
    let failing = wait_until(Duration::from_secs(20), || {
        let (status, body) = get(&admin, "/healthz");
        last = body;
        status == 503 && last.contains("database does not take a write")
    });
    assert!(failing, "healthz with a read-only database: {last}");
    let out = w.gh.cli(&["healthz"]);
    assert_eq!(out.code(), Some(1), "{}", out.stdout_text());
    assert!(
        out.stderr_text().starts_with("error: unhealthy: database"),
        "{}",
        out.stderr_text()
    );
    // Meanwhile a login cannot be audited, so it gets no session (fail
    // closed), and the failed statements are counted.
    let out = w.client.ssh("alice+root@web1", &["echo should-not-run"]);
    assert_ne!(out.code(), Some(0), "a session without its audit event");
    assert!(!out.stdout_text().contains("should-not-run"));
    let errors = metric(&scrape(&admin), "gatehouse_database_errors_total", &[]);
    assert!(errors >= 1.0, "database errors counted: {errors}");

    // Connections to this database are read-only now: reset it from the
    // cluster's maintenance database.
    let admin_db = format!("{}/postgres", db.rsplit_once('/').map_or("", |x| x.0));
    runtime().block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&admin_db)
            .await
            .expect("admin connection");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {name} RESET default_transaction_read_only"
        )))
        .execute(&pool)
        .await
        .expect("reset");
        pool.close().await;
    });
    w.sql(cut);
    let back = wait_until(Duration::from_secs(20), || get(&admin, "/healthz").0 == 200);
    assert!(back, "healthz recovers without a restart");
}
