//! `gatehouse report daily` end to end on the live pieces: a SQLite store
//! with events, sessions and grants, a real signed recording, the example
//! policy, and the binary writing the four files.

use std::process::Command;
use std::sync::Arc;

use gatehouse::audit::{AuditEvent, EventKind};
use gatehouse::config::Config;
use gatehouse::recording::{Kind, Recorder, RecorderOptions, RecordingMeta, Signer};
use gatehouse::store::{SessionRow, Store};
use serde_json::Value;
use time::OffsetDateTime;

fn gatehouse(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test]
async fn report_daily_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("policies")).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/policies/example.toml"),
        root.join("policies/example.toml"),
    )
    .unwrap();
    let cfg_path = root.join("gatehouse.toml");
    std::fs::write(
        &cfg_path,
        "[server]\ndatabase = \"sqlite://data/g.db\"\nnode = \"n1\"\n",
    )
    .unwrap();
    let config = Config::load(Some(&cfg_path)).unwrap();

    let now = OffsetDateTime::now_utc();
    let today = gatehouse::report::build::day(now.date());
    let store = Store::open(&config.database, &config.node).await.unwrap();
    let audit = |ev: AuditEvent| {
        let store = store.clone();
        async move { store.audit(&ev).await.unwrap() }
    };
    audit(
        AuditEvent::new(EventKind::AuthSuccess)
            .user("bob")
            .source("192.0.2.10")
            .session("s1"),
    )
    .await;
    store
        .session_start(&SessionRow {
            id: "s1".into(),
            user: "bob".into(),
            server: Some("local-shell".into()),
            account: Some("root".into()),
            source: "192.0.2.10".into(),
            node: "n1".into(),
            started_at: now,
            ended_at: None,
            mode: Some("ssh-forwarding".into()),
            grant_id: None,
            recorded: true,
            bytes_up: 0,
            bytes_down: 0,
            exit_status: None,
            end_reason: None,
            flagged: None,
            review: None,
        })
        .await
        .unwrap();
    audit(
        AuditEvent::new(EventKind::SessionStart)
            .user("bob")
            .server("local-shell")
            .account("root")
            .source("192.0.2.10")
            .session("s1")
            .detail("mode", "ssh-forwarding")
            .detail("flagged", false),
    )
    .await;
    audit(
        AuditEvent::new(EventKind::CommandBlocked)
            .user("bob")
            .server("local-shell")
            .account("root")
            .session("s1")
            .detail("command", "<script>rm -rf /</script>")
            .detail("reason", "command not allowed"),
    )
    .await;
    for _ in 0..6 {
        audit(
            AuditEvent::new(EventKind::AuthFailure)
                .user("mallory")
                .source("203.0.113.66")
                .detail("reason", "unknown user"),
        )
        .await;
    }
    store
        .session_end("s1", OffsetDateTime::now_utc(), 10, 200, Some(0), "closed")
        .await
        .unwrap();

    let signer = Arc::new(Signer::load_or_create(&config.signing_key).unwrap());
    let rec = Recorder::start(
        &config.recordings,
        RecordingMeta {
            id: "s1".into(),
            session: "s1".into(),
            user: "bob".into(),
            server: "local-shell".into(),
            account: "root".into(),
            source: "192.0.2.10:50000".into(),
            grant: None,
            kind: Kind::Shell,
            command: None,
            term: Some("xterm".into()),
            width: 80,
            height: 24,
            started_at: now,
        },
        signer,
        RecorderOptions {
            record_input: false,
            text_cap: 1 << 20,
        },
    )
    .await
    .unwrap();
    rec.output(bytes::Bytes::from_static(b"hello\r\n"))
        .await
        .unwrap();
    rec.finish(Some(0), None).await.unwrap();
    let grant = gatehouse::grants::Grant {
        id: 0,
        user: "bob".into(),
        server: "local-db".into(),
        accounts: vec!["postgres".into()],
        ports: vec![5432],
        from: vec![],
        reason: "TICKET-1".into(),
        state: gatehouse::grants::GrantState::Approved,
        requested_by: "bob".into(),
        approved_by: Some("alice".into()),
        decided_by: Some("alice".into()),
        decision_note: None,
        requested_at: now,
        decided_at: Some(now),
        duration_secs: Some(86_400 * 2),
        expires_at: Some(now + time::Duration::days(2)),
    };
    let grant_id = store.grant_insert(&grant).await.unwrap();
    store.close().await;

    let out = gatehouse(&cfg_path, &["report", "daily", "--date", &today]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(printed.lines().count(), 4, "{printed}");
    let reports = root.join("reports");
    for ext in ["html", "md", "json", "csv"] {
        assert!(reports.join(format!("{today}.{ext}")).is_file(), "{ext}");
    }
    let j: Value =
        serde_json::from_slice(&std::fs::read(reports.join(format!("{today}.json"))).unwrap())
            .unwrap();
    let s1 = &j["sessions"][0];
    assert_eq!(s1["id"], "s1");
    assert_eq!(s1["recorded"], true);
    assert_eq!(s1["recording_path"], format!("{today}/s1.cast"));
    assert_eq!(s1["bytes_down"], 200);
    assert_eq!(j["recordings_to_review"][0]["id"], "s1");
    assert_eq!(j["recordings_to_review"][0]["user"], "bob");
    assert_eq!(j["denials"][0]["kind"], "command.blocked");
    let kinds: Vec<&str> = j["suspicious"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"failed_login_burst"), "{kinds:?}");
    assert!(kinds.contains(&"blocked_command"), "{kinds:?}");
    assert!(kinds.contains(&"first_seen_source"), "{kinds:?}");
    let bob = j["entitlements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user"] == "bob")
        .unwrap();
    assert!(
        bob["access"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["server"] == "local-shell" && a["through"] == "policy"),
        "{bob:#}"
    );
    let local_db: Vec<&Value> = bob["access"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["server"] == "local-db")
        .collect();
    assert_eq!(local_db.len(), 1, "only through the grant: {bob:#}");
    assert_eq!(local_db[0]["through"], "grant");
    assert_eq!(local_db[0]["grant"], grant_id);
    assert_eq!(local_db[0]["approved_by"], "alice");
    assert_eq!(local_db[0]["accounts"][0], "postgres");
    assert_eq!(j["grants"][0]["action"], "requested");
    assert_eq!(j["grants"][0]["grant"], grant_id);
    assert_eq!(j["privileged_accounts"]["vault"], true);
    assert_eq!(j["privileged_accounts"]["used"][0]["account"], "root");
    assert_eq!(j["privileged_accounts"]["used"][0]["users"][0], "bob");
    let html = std::fs::read_to_string(reports.join(format!("{today}.html"))).unwrap();
    let href = format!("../recordings/{today}/s1.cast");
    assert!(html.contains(&format!("href=\"{href}\"")));
    assert!(reports.join(&href).is_file(), "the link resolves");
    assert!(!html.contains("<script>"));

    // Bad usage exits 2.
    let bad = gatehouse(&cfg_path, &["report", "daily", "--date", "2026-13-01"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).starts_with("error: "));
    let bad = gatehouse(&cfg_path, &["report", "daily", "--format", "pdf"]);
    assert_eq!(bad.status.code(), Some(2));
    // Default day: yesterday, here an empty one, into --out.
    let other = root.join("elsewhere");
    let ok = gatehouse(
        &cfg_path,
        &[
            "report",
            "daily",
            "--format",
            "json,csv",
            "--out",
            other.to_str().unwrap(),
        ],
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let yesterday = gatehouse::report::build::day(gatehouse::report::yesterday(now));
    assert!(other.join(format!("{yesterday}.json")).is_file());
    assert!(other.join(format!("{yesterday}.csv")).is_file());
    assert!(!other.join(format!("{yesterday}.html")).exists());
}
