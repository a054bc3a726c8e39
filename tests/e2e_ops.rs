//! Operating the bastion (issue 17 items 5, 17 and 19), end to end with
//! the real binary, OpenSSH and PostgreSQL:
//!
//! - `serve` started as root with `[server] user` and `[web]`, over the
//!   default layout as root leaves it (`data/` 0700, a report lock file an
//!   admin's `report daily` created): it starts, an OpenSSH login works and
//!   its events are written, the dropped user writes the daily report,
//!   `/healthz` is ok; once the spool's folder cannot be written, `/healthz`
//!   and `gatehouse healthz` (run as that user) fail;
//! - two nodes on one PostgreSQL database sign with one user CA: `ca show`
//!   prints the same line on both (the first imported the CA file it had),
//!   and an `auth = "certificate"` target trusting it is reached through
//!   both nodes with the stock ssh;
//! - `report daily` on the command line takes the nightly job's lock: while
//!   another writer holds it, it writes nothing and exits 1 saying so
//!   (PostgreSQL advisory lock; file lock on SQLite), and two runs at once
//!   never both write.

mod common;
#[path = "support/http.rs"]
mod http;
#[path = "support/pg.rs"]
mod pg;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// `uid` and `gid` of a local account.
fn ids_of(account: &str) -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        run(Command::new("id").args([flag, account]))
            .stdout_text()
            .trim()
            .parse()
            .expect("numeric id")
    };
    (id("-u"), id("-g"))
}

/// A CLI command of `gh` run as `uid`:`gid` (supplementary groups dropped).
fn cli_as(gh: &Gatehouse, (uid, gid): (u32, u32), args: &[&str]) -> Command {
    let mut cmd = gh.cli_command(args);
    cmd.uid(uid).gid(gid);
    cmd
}

// ------------------------------------------------------- item 5: the drop --

#[test]
fn serve_dropped_to_a_user_keeps_writing_with_the_default_layout() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    ensure_account("ghtest");
    let ghtest = ids_of("ghtest");
    let dir = TestDir::new();
    let identity = Gatehouse::prepare_identity(&dir);
    let target = Sshd::start(&dir, SshdOpts::new().authorize("root", &identity.public));
    let alice = keygen(dir.path(), "alice", KeyKind::Ed25519);
    let policy = support_policy(&alice, "web1", &target) + "record = \"always\"\n";
    let admin = format!("127.0.0.1:{}", free_port());
    let web = format!("127.0.0.1:{}", free_port());
    let mut gh = Gatehouse::configure(
        &dir,
        GatehouseOpts::new()
            .policy("policy.toml", &policy)
            .extra_toml(&format!(
                "[server]\nuser = \"ghtest\"\n[web]\nlisten = \"{web}\"\n\
                 [metrics]\nlisten = \"{admin}\"\n"
            )),
    );
    // The default layout as root leaves it: `data/` root's alone (umask
    // 077), and the report lock file of an admin's earlier run.
    set_mode(&gh.home.join("data"), 0o700);
    gh.cli(&["report", "daily", "--date", "2026-01-01"])
        .assert_success("report daily as root, before serve");
    // (As a nightly job of `serve` run as root leaves it, too.)
    let lock = gh.home.join("reports/.daily.lock");
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .expect("the report lock file, root's");
    set_mode(&lock, 0o600);

    gh.serve();
    let out = gh.client(&dir, &alice).ssh("alice+root@web1", &["echo hi"]);
    out.assert_success("a login after the drop");
    assert_eq!(out.stdout_text(), "hi\n");
    gh.wait_for_event("session.end", Duration::from_secs(10), |_| true);
    let success = gh.audit_events_of("auth.success");
    assert!(
        success.iter().any(|e| e["user"] == "alice"),
        "auth.success written: {success:?}"
    );
    assert!(!gh.log().contains("Permission denied"), "{}", gh.log());

    // The dropped user writes the daily report (and takes its lock). The
    // nightly job may be catching up on yesterday at this moment: retry
    // only while the lock is taken.
    let mut last = None;
    let done = wait_until(Duration::from_secs(60), || {
        let out = run(&mut cli_as(
            &gh,
            ghtest,
            &["report", "daily", "--date", "2026-01-02"],
        ));
        let busy = out.code() == Some(1) && out.stderr_text().contains("report lock");
        last = Some(out);
        !busy
    });
    let out = last.expect("ran");
    assert!(done, "{out:?}");
    out.assert_success("report daily as the dropped user");
    use std::os::unix::fs::MetadataExt;
    let json = gh.home.join("reports/2026-01-02.json");
    assert_eq!(std::fs::metadata(&json).expect("report").uid(), ghtest.0);

    let (status, body) = http::get(&admin, "/healthz");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    run(&mut cli_as(&gh, ghtest, &["healthz"])).assert_success("healthz as the user");

    // The spool's folder (data/) can no longer be written by the user.
    set_mode(&gh.home.join("data"), 0o500);
    let (status, body) = http::get(&admin, "/healthz");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.starts_with("unhealthy:") && body.contains("audit spool"),
        "{body}"
    );
    let out = run(&mut cli_as(&gh, ghtest, &["healthz"]));
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stderr_text().contains("audit spool"), "{out:?}");
    set_mode(&gh.home.join("data"), 0o700);
    let (status, body) = http::get(&admin, "/healthz");
    assert_eq!(status, 200, "healthy again: {body}");
    assert!(gh.stop());
}

#[test]
fn serve_stops_when_the_dropped_user_cannot_write_its_spool() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    ensure_account("ghtest");
    let dir = TestDir::new();
    // A spool folder outside the configuration's folder is not handed over.
    let outside = tempfile::Builder::new()
        .prefix("ghspool")
        .tempdir()
        .expect("tempdir");
    set_mode(outside.path(), 0o755);
    let spool = outside.path().join("audit-spool.jsonl");
    let gh = Gatehouse::configure(
        &dir,
        GatehouseOpts::new().extra_toml(&format!(
            "[server]\nuser = \"ghtest\"\naudit_spool = {}\n",
            toml_str(&spool.display().to_string())
        )),
    );
    let out = gh.cli(&["serve"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    let err = out.stderr_text();
    assert!(
        err.contains("after the drop to ghtest") && err.contains("audit spool"),
        "{err}"
    );
}

// ------------------------------------------------ item 17: one user CA --

#[test]
fn two_nodes_on_one_database_sign_with_one_user_ca() {
    let db = runtime().block_on(pg::fresh_db());
    let dir = TestDir::new();
    let shared = dir.join("shared");
    // A CA that targets already trust, in node A's `[ca] key` file.
    let old_ca = keygen_at(&dir.join("old_ca"), "old-ca", KeyKind::Ed25519);
    let alice = keygen(dir.path(), "alice", KeyKind::Ed25519);
    let node = |name: &str, ca: Option<&Path>| {
        let mut toml = format!(
            "[server]\nnode = {}\nmaster_key = {}\n",
            toml_str(name),
            toml_str(&shared.join("master.key").display().to_string()),
        );
        if let Some(ca) = ca {
            toml.push_str(&format!(
                "[ca]\nkey = {}\n",
                toml_str(&ca.display().to_string())
            ));
        }
        Gatehouse::configure(
            &dir,
            GatehouseOpts::new()
                .name(name)
                .database(&db.url)
                .extra_toml(&toml),
        )
    };
    let mut a = node("node-a", Some(&old_ca.private));
    let mut b = node("node-b", None);

    let show = |g: &Gatehouse| {
        let out = g.cli(&["ca", "show"]);
        out.assert_success("ca show");
        out.stdout_text().trim().to_string()
    };
    let line_a = show(&a);
    let line_b = show(&b);
    assert_eq!(line_a, line_b, "one CA for both nodes");
    let key_of = |line: &str| {
        line.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(key_of(&line_a), key_of(&old_ca.public), "imported");
    let json = b.cli(&["ca", "show", "--json"]);
    json.assert_success("ca show --json");
    let v: serde_json::Value = serde_json::from_str(json.stdout_text().trim()).expect("json");
    assert_eq!(v["stored"], "database", "{v}");
    assert!(!b.home.join("data/user_ca_ed25519_key").exists());

    let target = Sshd::start(&dir, SshdOpts::new().trust_user_ca(&line_a));
    let policy = support_policy(&alice, "web1", &target) + "auth = \"certificate\"\n";
    a.write_policy("policy.toml", &policy);
    b.write_policy("policy.toml", &policy);
    a.serve();
    b.serve();
    for g in [&a, &b] {
        let out = g.client(&dir, &alice).ssh("alice+root@web1", &["id -un"]);
        out.assert_success("a certificate login through each node");
        assert_eq!(out.stdout_text(), "root\n");
    }
    assert!(a.stop());
    assert!(b.stop());
}

#[test]
fn vault_rekey_keeps_the_user_ca() {
    let dir = TestDir::new();
    let gh = Gatehouse::configure(&dir, GatehouseOpts::new());
    let before = gh.cli(&["ca", "show"]);
    before.assert_success("ca show");
    let new_key = dir.join("new.key");
    gh.cli(&[
        "vault",
        "rekey",
        "--new-key",
        &new_key.display().to_string(),
    ])
    .assert_success("vault rekey");
    let after = gh.cli(&["ca", "show"]);
    after.assert_success("ca show under the new master key");
    assert_eq!(before.stdout_text(), after.stdout_text());
}

// ---------------------------------------------- item 19: the report lock --

/// The CLI refuses while `hold` keeps the lock, then writes once it is
/// let go; two runs at once never both write.
fn report_waits_for_the_lock<G>(gh: &Gatehouse, hold: impl FnOnce() -> G, release: impl FnOnce(G)) {
    let date = "2026-03-04";
    let json = gh.home.join(format!("reports/{date}.json"));
    let guard = hold();
    let out = gh.cli(&["report", "daily", "--date", date]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    let err = out.stderr_text();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: another writer holds the daily report lock"),
        "{err}"
    );
    assert!(!json.exists(), "nothing written while the lock is held");
    release(guard);
    gh.cli(&["report", "daily", "--date", date])
        .assert_success("report daily once the lock is free");
    assert!(json.exists());

    // Two at once: each writes alone or says the other holds the lock.
    let spawn = || {
        gh.cli_command(&["report", "daily", "--date", "2026-03-05"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn report daily")
    };
    let (one, two) = (spawn(), spawn());
    let outs: Vec<Output> = [one, two]
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait"))
        .collect();
    for o in &outs {
        assert!(
            o.status.success()
                || (o.status.code() == Some(1)
                    && o.stderr_text().contains("holds the daily report lock")),
            "{o:?}"
        );
    }
    assert!(outs.iter().any(|o| o.status.success()), "{outs:?}");
}

#[test]
fn report_daily_takes_the_report_lock_on_postgresql() {
    let db = runtime().block_on(pg::fresh_db());
    let dir = TestDir::new();
    let gh = Gatehouse::configure(&dir, GatehouseOpts::new().database(&db.url));
    // Migrated, so the lock holder below meets a ready database.
    gh.cli(&["audit", "verify"]).assert_success("audit verify");
    let rt = runtime();
    report_waits_for_the_lock(
        &gh,
        || {
            rt.block_on(async {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
                sqlx::query("BEGIN")
                    .execute(&mut conn)
                    .await
                    .expect("begin");
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(gatehouse::report::job::LOCK_KEY)
                    .execute(&mut conn)
                    .await
                    .expect("take the report lock");
                conn
            })
        },
        |conn| {
            rt.block_on(async {
                use sqlx::Connection;
                conn.close().await.expect("close: the lock goes with it");
            })
        },
    );
}

#[test]
fn report_daily_takes_the_report_lock_on_sqlite() {
    let dir = TestDir::new();
    let gh = Gatehouse::configure(&dir, GatehouseOpts::new());
    let lock = gh.home.join("reports/.daily.lock");
    report_waits_for_the_lock(
        &gh,
        || {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock)
                .expect("lock file");
            f.try_lock().expect("take the report lock");
            f
        },
        drop,
    );
}
