//! `gatehouse mfa list|reset|forget|allow-enroll` through the binary: each
//! change audited with who ran it (the real uid's login name), no secret
//! in any output or event.

use std::process::Command;

use gatehouse::config::{AuthConfig, MfaMode};
use gatehouse::identity::{self, Enrollment, LoginContext};
use gatehouse::store::Store;
use gatehouse::vault::MasterKey;
use time::OffsetDateTime;

struct Env {
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    url: String,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("data/g.db").display());
        let config = dir.path().join("gatehouse.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\ndatabase = \"{url}\"\nnode = \"cli-node\"\n[auth]\nmfa = \"required\"\n"
            ),
        )
        .unwrap();
        Env { dir, config, url }
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn auth() -> AuthConfig {
    AuthConfig {
        mfa: MfaMode::Required,
        mfa_cache: std::time::Duration::from_secs(3600),
        mfa_self_enroll: true,
    }
}

/// Enrolls `user` and caches one approval; returns the base32 secret and
/// the recovery codes, which must never appear in the CLI's output.
async fn enroll(store: &Store, master: &MasterKey, user: &str) -> (String, Vec<String>) {
    let now = OffsetDateTime::now_utc();
    let e = Enrollment::begin(user, "bastion").unwrap();
    let b32 = e
        .uri
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string();
    let code = e.code_at(now).unwrap();
    let codes = identity::finish_enrollment(store, master, &auth(), &e, &code, None, now)
        .await
        .unwrap()
        .unwrap();
    let ctx = LoginContext {
        user: user.into(),
        fingerprint: "SHA256:k".into(),
        source: "127.0.0.1".parse().unwrap(),
        session: None,
        server: None,
    };
    identity::remember(store, &auth(), &ctx, now).await.unwrap();
    (b32, codes.0)
}

fn operator() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn list_reset_forget_allow_enroll() {
    let env = Env::new();
    let store = Store::open(&env.url, "test").await.unwrap();
    let master = MasterKey::generate().unwrap();

    let (code, out, _) = env.run(&["mfa", "list"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with("USER"), "{out}");

    let (alice_secret, alice_codes) = enroll(&store, &master, "alice").await;
    let (bob_secret, _) = enroll(&store, &master, "bob").await;

    let (code, out, err) = env.run(&["mfa", "list"]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(
        rows[0].starts_with("alice") && rows[0].contains("totp"),
        "{out}"
    );
    assert!(rows[1].starts_with("bob"), "{out}");
    assert!(rows[0].trim_end().ends_with("10"), "{out}");
    let (code, json, err) = env.run(&["mfa", "list", "--json"]);
    assert_eq!(code, 0, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(listed[0]["user"], "alice");
    assert_eq!(listed[0]["factor"], "totp");
    assert!(listed[0]["enrolled"].is_string());
    assert!(listed[0]["last_used"].is_null());
    for text in [&out, &json] {
        assert!(!text.contains(&alice_secret) && !text.contains(&bob_secret));
        assert!(!text.contains(&alice_codes[0]));
    }

    // forget: clears the cache only.
    let ctx = LoginContext {
        user: "alice".into(),
        fingerprint: "SHA256:k".into(),
        source: "127.0.0.1".parse().unwrap(),
        session: None,
        server: None,
    };
    let now = OffsetDateTime::now_utc();
    assert!(identity::factors::cached(&store, &ctx, now).await.unwrap());
    let (code, out, err) = env.run(&["mfa", "forget", "alice"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "cleared 1 cached approval(s) of alice");
    assert!(!identity::factors::cached(&store, &ctx, now).await.unwrap());
    assert!(identity::factors::enrolled(&store, "alice").await.unwrap());

    // reset: the factor is gone.
    let (code, out, err) = env.run(&["mfa", "reset", "alice"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "reset the second factor of alice");
    assert!(!identity::factors::enrolled(&store, "alice").await.unwrap());
    let (_, out, _) = env.run(&["mfa", "list"]);
    assert!(!out.contains("alice"), "{out}");
    assert!(out.contains("bob"), "{out}");
    let (code, out, _) = env.run(&["mfa", "reset", "alice"]);
    assert_eq!(code, 0);
    assert!(out.contains("alice had no second factor"), "{out}");

    // allow-enroll: 24 hours.
    let (code, out, err) = env.run(&["mfa", "allow-enroll", "carol"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("carol may enroll a second factor until "),
        "{out}"
    );
    assert!(store.mfa_enroll_allowed("carol", now).await.unwrap());
    assert!(
        !store
            .mfa_enroll_allowed("carol", now + time::Duration::hours(25))
            .await
            .unwrap()
    );

    // Bad usage.
    let (code, _, _) = env.run(&["mfa", "reset"]);
    assert_eq!(code, 2);

    let events = store.export(None, None).await.unwrap();
    let admin: Vec<_> = events
        .iter()
        .filter(|e| e.node == "cli-node")
        .map(|e| (e.kind.as_str(), e.user.as_deref(), e.detail["by"].as_str()))
        .collect();
    let me = operator();
    assert_eq!(
        admin,
        vec![
            ("mfa.forget", Some("alice"), Some(me.as_str())),
            ("mfa.reset", Some("alice"), Some(me.as_str())),
            ("mfa.reset", Some("alice"), Some(me.as_str())),
            ("mfa.allow_enroll", Some("carol"), Some(me.as_str())),
        ]
    );
    let resets: Vec<_> = events.iter().filter(|e| e.kind == "mfa.reset").collect();
    assert_eq!(resets[0].detail["was_enrolled"], true);
    assert_eq!(resets[1].detail["was_enrolled"], false);
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains(&alice_secret) && !all.contains(&bob_secret));

    // The exported audit log holds no secret either.
    let (code, export, err) = env.run(&["audit", "export"]);
    assert_eq!(code, 0, "{err}");
    assert!(export.contains("mfa.enrolled"), "{export}");
    assert!(!export.contains(&alice_secret) && !export.contains(&alice_codes[0]));
}

#[test]
fn config_show_prints_the_auth_settings() {
    let env = Env::new();
    let (code, out, err) = env.run(&["config", "show"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("[auth]"), "{out}");
    assert!(out.contains("mfa = \"required\""), "{out}");
    assert!(out.contains("mfa_cache = \"8h\""), "{out}");
    assert!(out.contains("mfa_self_enroll = true"), "{out}");
    std::fs::write(&env.config, "[auth]\nmfa = \"always\"\n").unwrap();
    let (code, _, err) = env.run(&["config", "show"]);
    assert_ne!(code, 0);
    assert!(err.contains("auth.mfa"), "{err}");
}

#[test]
fn policy_check_reports_bad_mfa_values_with_positions() {
    let env = Env::new();
    let pol = env.dir.path().join("policies");
    std::fs::create_dir_all(&pol).unwrap();
    std::fs::write(
        pol.join("users.toml"),
        "[[user]]\nname = \"alice\"\nkeys = []\nmfa = \"yes\"\n",
    )
    .unwrap();
    let (code, out, err) = env.run(&["policy", "check"]);
    assert_ne!(code, 0);
    let all = format!("{out}{err}");
    assert!(
        all.contains("users.toml:4:7: unknown mfa `yes`: expected required"),
        "{all}"
    );
    std::fs::write(
        pol.join("users.toml"),
        "[[user]]\nname = \"alice\"\nkeys = []\nmfa = \"required\"\n",
    )
    .unwrap();
    let (code, out, err) = env.run(&["policy", "check"]);
    assert_eq!(code, 0, "{out}{err}");
}

/// `oathtool --totp -b SECRET` (installed by scripts/setup) computes the
/// codes the bastion accepts: the end-to-end tests' code source.
#[tokio::test]
async fn oathtool_codes_are_accepted() {
    let env = Env::new();
    let store = Store::open(&env.url, "test").await.unwrap();
    let master = MasterKey::generate().unwrap();
    let (b32, _) = enroll(&store, &master, "dana").await;
    let ctx = LoginContext {
        user: "dana".into(),
        fingerprint: "SHA256:k".into(),
        source: "127.0.0.2".parse().unwrap(),
        session: None,
        server: None,
    };
    // The next step's code (the enrollment used the current one), at a
    // moment oathtool is told explicitly.
    let next = OffsetDateTime::now_utc() + time::Duration::seconds(30);
    let when = format!("@{}", next.unix_timestamp());
    let out = Command::new("oathtool")
        .args(["--totp", "-b", &b32, "--now", &when])
        .output()
        .expect("oathtool (scripts/setup installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let code = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(code.trim().len(), 6, "{code}");
    let r = identity::verify_login(&store, &master, &auth(), &ctx, &code, next)
        .await
        .unwrap();
    assert_eq!(r, Ok(identity::Factor::Totp));
}
