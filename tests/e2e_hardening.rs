//! End to end, issue 12: what a client may pass in its environment
//! (`[limits] accept_env`), and a PostgreSQL outage under a running bastion
//! (fast, explained refusals; live sessions ended; spooled events written
//! when the database is back; nothing recorded before lost).

mod common;
#[path = "support/pg.rs"]
mod pg;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::Value;

const WEB1: &str = "alice+root@web1";

fn detail<'a>(e: &'a Value, key: &str) -> &'a Value {
    &e["detail"][key]
}

/// A target sshd (with `sshd_extra` lines), alice, and a bastion on `db`.
struct World {
    gh: Gatehouse,
    client: Client,
    _target: Sshd,
    dir: TestDir,
}

fn world(sshd_extra: &[&str], database: Option<&str>) -> World {
    let dir = TestDir::new();
    let identity = Gatehouse::prepare_identity(&dir);
    let mut opts = SshdOpts::new().authorize("root", &identity.public);
    for line in sshd_extra {
        opts = opts.extra(line);
    }
    let target = Sshd::start(&dir, opts);
    let alice = keygen(dir.path(), "alice", KeyKind::Ed25519);
    let policy = support_policy(&alice, "web1", &target);
    let mut gopts = GatehouseOpts::new().policy("policy.toml", &policy);
    if let Some(url) = database {
        gopts = gopts.database(url);
    }
    let gh = Gatehouse::start_with(&dir, gopts);
    let client = gh.client(&dir, &alice);
    World {
        gh,
        client,
        _target: target,
        dir,
    }
}

/// Issue 12 item 3: with a target that accepts any variable, only the
/// allowlist gets through; `BASH_ENV` (which would run a script before the
/// allowed command) is refused and audited by name, its value never shown.
#[test]
fn environment_is_filtered_and_refusals_are_audited() {
    let w = world(&["AcceptEnv *"], None);
    let marker = w.dir.write("bash_env.sh", "echo BASH_ENV-SCRIPT-RAN\n");
    set_mode(&marker, 0o755);
    let setenv = format!(
        "SetEnv=BASH_ENV={} LC_FOO=bar LD_PRELOAD=/nonexistent.so",
        marker.display()
    );
    let out = w.client.ssh_opts(
        &["-o", &setenv],
        WEB1,
        &["echo lc=$LC_FOO; echo be=$BASH_ENV; echo ld=$LD_PRELOAD"],
    );
    out.assert_success("exec with SetEnv");
    assert_eq!(out.stdout_text(), "lc=bar\nbe=\nld=\n", "{out:?}");
    assert!(!out.stdout_text().contains("SCRIPT-RAN"));

    let ev =
        w.gh.wait_for_event("access.denied", Duration::from_secs(10), |e| {
            detail(e, "code") == "KO_ENV_REFUSED"
        });
    let names: Vec<&str> = detail(&ev, "names")
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(names, ["BASH_ENV", "LD_PRELOAD"], "{ev}");
    assert_eq!(detail(&ev, "count"), 2, "{ev}");
    assert_eq!(ev["user"], "alice", "{ev}");
    assert_eq!(ev["server"], "web1", "{ev}");
    // One event for the channel, and no value in any event.
    let all = w.gh.audit_events();
    let refusals = all
        .iter()
        .filter(|e| detail(e, "code") == "KO_ENV_REFUSED")
        .count();
    assert_eq!(refusals, 1);
    let text = serde_json::to_string(&all).unwrap_or_default();
    assert!(!text.contains("bash_env.sh"), "a refused value was audited");
    assert!(
        !text.contains("nonexistent.so"),
        "a refused value was audited"
    );
}

/// `sessions list --json` as rows.
fn live_sessions(gh: &Gatehouse) -> Vec<Value> {
    let out = gh.cli(&["sessions", "list", "--json"]);
    out.assert_success("sessions list");
    match serde_json::from_str::<Value>(&out.stdout_text()) {
        Ok(Value::Array(rows)) => rows,
        other => panic!("sessions list --json: {other:?}"),
    }
}

/// Issue 12 item 4: PostgreSQL stops under a running bastion with a live
/// session, then comes back.
#[test]
fn postgres_outage_fails_closed_and_loses_nothing() {
    let cluster = Arc::new(pg::PgCluster::start_private());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let db = rt.block_on(pg::fresh_db_on(cluster.clone()));
    let w = world(&[], Some(&db.url));
    let out = w.client.ssh(WEB1, &["echo before"]);
    out.assert_success("login before the outage");
    assert!(wait_until(Duration::from_secs(20), || live_sessions(&w.gh).is_empty()));

    // A live session, quiet (no event to write) while the database goes.
    let stderr = w.dir.join("live.stderr");
    let mut live = ChildGuard::spawn(
        "live ssh",
        &mut w
            .client
            .ssh_command(&["-o", "LogLevel=INFO"], WEB1, &["sleep 300"]),
        None,
        Some(&stderr),
    );
    assert!(
        wait_until(Duration::from_secs(20), || live_sessions(&w.gh).len() == 1),
        "the live session did not start"
    );
    let live_id = live_sessions(&w.gh)[0]["id"]
        .as_str()
        .expect("session id")
        .to_string();
    let before = w.gh.audit_events();

    cluster.stop();

    // A new login is refused, and says why.
    let out = w
        .client
        .ssh_opts(&["-o", "LogLevel=INFO"], WEB1, &["echo during"]);
    assert_eq!(out.code(), Some(255), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(
        out.stderr_text()
            .contains("gatehouse: the bastion cannot reach its database"),
        "{}",
        out.stderr_text()
    );
    // The live session is ended, with a message.
    assert!(
        live.wait_timeout(Duration::from_secs(30)).is_some(),
        "the live session outlived the database"
    );
    let said = std::fs::read_to_string(&stderr).unwrap_or_default();
    assert!(
        said.contains("gatehouse: the bastion cannot write its audit log"),
        "{said}"
    );

    cluster.start_again();

    // Logins work again without restarting the bastion.
    let back = wait_until(Duration::from_secs(60), || {
        w.client.ssh(WEB1, &["echo after"]).status.success()
    });
    assert!(back, "no login after the database came back");
    let out = w.gh.cli(&["audit", "verify"]);
    out.assert_success("audit verify after the outage");

    // Nothing recorded before is missing; what was spooled has arrived.
    let after = w.gh.audit_events();
    for e in &before {
        assert!(
            after.iter().any(|a| a["hash"] == e["hash"]),
            "lost in the outage: {e}"
        );
    }
    let spooled: Vec<&Value> = after
        .iter()
        .filter(|e| !detail(e, "spool_id").is_null())
        .collect();
    assert!(
        spooled
            .iter()
            .any(|e| e["kind"] == "session.end" && e["session"] == live_id.as_str()),
        "the live session's end was not written: {spooled:?}"
    );
    assert!(
        spooled
            .iter()
            .any(|e| e["kind"] == "auth.failure" && detail(e, "code") == "STORE_DOWN"),
        "the refused login was not written: {spooled:?}"
    );
    // No ghost: the ended session is not live any more.
    let clear = wait_until(Duration::from_secs(20), || {
        live_sessions(&w.gh)
            .iter()
            .all(|s| s["id"] != live_id.as_str())
    });
    assert!(clear, "{:?}", live_sessions(&w.gh));
    drop(w);
    drop(db);
}
