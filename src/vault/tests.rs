//! Vault tests against a real database: SQLite in a temporary folder
//! always, and PostgreSQL too when `GATEHOUSE_TEST_PG_URL` holds a URL
//! (each run in a schema of its own, dropped at the end).

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

use super::*;

const SQLITE_SCHEMA: &str = include_str!("../../migrations/sqlite/0002_vault.sql");
const POSTGRES_SCHEMA: &str = include_str!("../../migrations/postgres/0002_vault.sql");
// `rekey` re-seals the user CA too (src/ca.rs).
const SQLITE_CA_SCHEMA: &str = include_str!("../../migrations/sqlite/0013_user_ca.sql");
const POSTGRES_CA_SCHEMA: &str = include_str!("../../migrations/postgres/0013_user_ca.sql");
// Staff TOTP secrets are re-sealed by rekey too (src/identity).
const SQLITE_MFA_SCHEMA: &str = include_str!("../../migrations/sqlite/0014_mfa.sql");
const POSTGRES_MFA_SCHEMA: &str = include_str!("../../migrations/postgres/0014_mfa.sql");
const ENCRYPTED_KEY: &str = include_str!("testdata/enc_ed25519");
const RSA_1024_KEY: &str = include_str!("testdata/rsa1024");

/// Cheap hashing for tests that store many passwords; one test keeps the
/// real cost.
const CHEAP: HashCost = HashCost {
    m_kib: 64,
    t: 1,
    p: 1,
};

struct Db {
    pool: AnyPool,
    _dir: Option<tempfile::TempDir>,
    /// PostgreSQL: the schema to drop at the end.
    pg_schema: Option<(String, String)>,
}

impl Db {
    async fn sqlite() -> Db {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/vault.db?mode=rwc", dir.path().display());
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .connect(&url)
            .await
            .unwrap();
        sqlx::raw_sql(SQLITE_SCHEMA).execute(&pool).await.unwrap();
        sqlx::raw_sql(SQLITE_CA_SCHEMA)
            .execute(&pool)
            .await
            .unwrap();
        sqlx::raw_sql(SQLITE_MFA_SCHEMA)
            .execute(&pool)
            .await
            .unwrap();
        Db {
            pool,
            _dir: Some(dir),
            pg_schema: None,
        }
    }

    async fn postgres() -> Option<Db> {
        let url = std::env::var("GATEHOUSE_TEST_PG_URL").ok()?;
        sqlx::any::install_default_drivers();
        let schema = format!("vault_test_{}", uuid::Uuid::new_v4().simple());
        let admin = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let set_path = format!("SET search_path TO {schema}");
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .after_connect(move |conn, _| {
                let sql = set_path.clone();
                Box::pin(async move {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(conn)
                        .await?;
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .unwrap();
        sqlx::raw_sql(POSTGRES_SCHEMA).execute(&pool).await.unwrap();
        sqlx::raw_sql(POSTGRES_CA_SCHEMA)
            .execute(&pool)
            .await
            .unwrap();
        sqlx::raw_sql(POSTGRES_MFA_SCHEMA)
            .execute(&pool)
            .await
            .unwrap();
        Some(Db {
            pool,
            _dir: None,
            pg_schema: Some((url, schema)),
        })
    }

    async fn close(self) {
        self.pool.close().await;
        if let Some((url, schema)) = self.pg_schema {
            let admin = AnyPoolOptions::new()
                .max_connections(1)
                .connect(&url)
                .await
                .unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&admin)
                .await
                .unwrap();
            admin.close().await;
        }
    }
}

fn policy() -> VaultConfig {
    crate::config::Config::default().vault
}

fn vault(db: &Db, key: &MasterKey) -> Vault {
    Vault::new(
        db.pool.clone(),
        MasterKey::from_bytes(*key.bytes()),
        policy(),
    )
    .with_hash_cost(CHEAP)
}

fn test_key(seed: u8) -> Secret {
    use russh::keys::ssh_key::{LineEnding, PrivateKey, private::Ed25519Keypair};
    let k = PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]));
    Secret::new(k.to_openssh(LineEnding::LF).unwrap().to_string())
}

const PW: &str = "Blue-Horse-42-battery";

/// The main flow, run on every backend.
async fn scenario(db: &Db) {
    let key = MasterKey::generate().unwrap();
    let v = vault(db, &key);
    v.check_key().await.unwrap();

    // set, get round trip
    let m = v
        .set_password("db1", "oracle", Secret::new(PW), false)
        .await
        .unwrap();
    assert_eq!(m.kind, CredentialKind::Password);
    assert!(m.strength_ok, "{m:?}");
    assert_eq!(m.created_at, m.rotated_at);
    assert!(m.last_used_at.is_none());
    let c = v.get("db1", "oracle").await.unwrap().unwrap();
    assert_eq!(c.password().unwrap().expose(), PW);
    assert!(c.meta.last_used_at.is_some());
    assert_eq!(
        v.meta("db1", "oracle").await.unwrap().unwrap().last_used_at,
        c.meta.last_used_at
    );
    assert!(v.get("db1", "nobody").await.unwrap().is_none());

    // the ciphertext holds nothing readable
    let row = store::get(&db.pool, "db1", "oracle")
        .await
        .unwrap()
        .unwrap();
    assert!(!row.ciphertext.contains(PW));

    // a weak password is stored with its reasons
    let m = v
        .set_password("db1", "root", Secret::new("short"), false)
        .await
        .unwrap();
    assert!(!m.strength_ok);
    assert!(m.strength_reasons[0].contains("too short"), "{m:?}");

    // keys
    let m = v
        .set_key("db2", "deploy", test_key(3), false)
        .await
        .unwrap();
    assert_eq!(m.kind, CredentialKind::PrivateKey);
    assert!(
        m.key_info
            .as_deref()
            .unwrap()
            .starts_with("ssh-ed25519 SHA256:")
    );
    let c = v.get("db2", "deploy").await.unwrap().unwrap();
    assert!(c.password().is_none());
    let pk = c.private_key().unwrap().unwrap();
    assert_eq!(
        pk.public_key(),
        russh::keys::decode_secret_key(test_key(3).expose(), None)
            .unwrap()
            .public_key()
    );

    // list: metadata only, sorted
    let l = v.list().await.unwrap();
    let names: Vec<_> = l.iter().map(|m| m.label()).collect();
    assert_eq!(names, ["oracle@db1", "root@db1", "deploy@db2"]);
    let json = serde_json::to_string(&v.status(store::now()).await.unwrap()).unwrap();
    assert!(!json.contains(PW), "{json}");
    assert!(json.contains("\"complies\":false"), "{json}");
    assert!(json.contains("\"rotation_due\""), "{json}");

    // rotation
    let before = v.meta("db1", "oracle").await.unwrap().unwrap();
    let p = v.begin_rotation("db1", "oracle").await.unwrap();
    assert_eq!(
        check_password(&policy(), "oracle", false, &p.new_password),
        Ok(())
    );
    let err = v.begin_rotation("db1", "oracle").await.unwrap_err();
    assert!(matches!(err, VaultError::RotationPending(..)), "{err}");
    // still the old password until committed
    let c = v.get("db1", "oracle").await.unwrap().unwrap();
    assert_eq!(c.password().unwrap().expose(), PW);
    let recovered = v.pending_rotation("db1", "oracle").await.unwrap().unwrap();
    assert_eq!(recovered.new_password.expose(), p.new_password.expose());
    let m = v.commit_rotation(&p).await.unwrap();
    assert!(m.rotated_at > before.rotated_at);
    assert!(m.rotation_pending_since.is_none());
    assert_eq!(m.created_at, before.created_at);
    let c = v.get("db1", "oracle").await.unwrap().unwrap();
    assert_eq!(c.password().unwrap().expose(), p.new_password.expose());
    // a commit cannot be replayed
    assert!(v.commit_rotation(&p).await.is_err());
    // abort leaves the current password
    let p2 = v.begin_rotation("db1", "oracle").await.unwrap();
    assert!(v.abort_rotation("db1", "oracle").await.unwrap());
    assert!(matches!(
        v.commit_rotation(&p2).await.unwrap_err(),
        VaultError::NoRotationPending(_)
    ));
    let c = v.get("db1", "oracle").await.unwrap().unwrap();
    assert_eq!(c.password().unwrap().expose(), p.new_password.expose());
    // a set in between makes a commit a conflict
    let p3 = v.begin_rotation("db1", "oracle").await.unwrap();
    v.set_password("db1", "oracle", Secret::new("Another-Pass-99x"), false)
        .await
        .unwrap();
    assert!(v.pending_rotation("db1", "oracle").await.unwrap().is_none());
    assert!(v.commit_rotation(&p3).await.is_err());
    let err = v.begin_rotation("db2", "deploy").await.unwrap_err();
    assert!(matches!(err, VaultError::NotAPassword(_)), "{err}");

    // a pending rotation survives a rekey
    let p4 = v.begin_rotation("db1", "root").await.unwrap();

    // rekey: everything opens under the new key and nothing under the old
    let new_key = MasterKey::generate().unwrap();
    assert_eq!(
        v.rekey(MasterKey::from_bytes(*new_key.bytes()))
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        v.get("db1", "oracle")
            .await
            .unwrap()
            .unwrap()
            .password()
            .unwrap()
            .expose(),
        "Another-Pass-99x"
    );
    let fresh = vault(db, &new_key);
    assert!(fresh.get("db2", "deploy").await.unwrap().is_some());
    assert_eq!(
        fresh
            .pending_rotation("db1", "root")
            .await
            .unwrap()
            .unwrap()
            .new_password
            .expose(),
        p4.new_password.expose()
    );
    fresh.commit_rotation(&p4).await.unwrap();
    let stale = vault(db, &key);
    for (s, a) in [("db1", "oracle"), ("db1", "root"), ("db2", "deploy")] {
        let err = stale.get(s, a).await.unwrap_err();
        assert!(matches!(err, VaultError::WrongMasterKey), "{err}");
    }
    let err = stale
        .set_password("db3", "x", Secret::new(PW), false)
        .await
        .unwrap_err();
    assert!(matches!(err, VaultError::WrongMasterKey), "{err}");
    assert!(stale.check_key().await.is_err());
    assert!(
        v.rekey(MasterKey::from_bytes(*new_key.bytes()))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn sqlite_scenario() {
    let db = Db::sqlite().await;
    scenario(&db).await;
    db.close().await;
}

#[tokio::test]
async fn postgres_scenario_when_configured() {
    let Some(db) = Db::postgres().await else {
        eprintln!(
            "GATEHOUSE_TEST_PG_URL not set: PostgreSQL skipped here (tests/e2e_vault.rs covers it)"
        );
        return;
    };
    scenario(&db).await;
    db.close().await;
    // a vault of its own: the first one is sealed under another key
    let db = Db::postgres().await.unwrap();
    history_scenario(&db).await;
    db.close().await;
    let db = Db::postgres().await.unwrap();
    concurrency_scenario(&db).await;
    db.close().await;
}

/// Reuse of one of the last N is refused; the (N+1)-th older is allowed.
async fn history_scenario(db: &Db) {
    let key = MasterKey::generate().unwrap();
    let v = vault(db, &key);
    let n = v.policy().history;
    assert_eq!(n, 10);
    let pw = |i: usize| Secret::new(format!("History-Pass-{i:03}"));
    for i in 0..=n {
        v.set_password("h1", "app", pw(i), false).await.unwrap();
    }
    // passwords 1..=10 are the last ten (10 is the current one)
    for i in 1..=n {
        let err = v.set_password("h1", "app", pw(i), false).await.unwrap_err();
        assert!(matches!(err, VaultError::Reused { .. }), "{i}: {err}");
        assert!(err.to_string().contains("last 10"), "{err}");
    }
    assert_eq!(
        v.get("h1", "app")
            .await
            .unwrap()
            .unwrap()
            .password()
            .unwrap()
            .expose(),
        pw(n).expose()
    );
    // password 0 is the eleventh back: allowed
    v.set_password("h1", "app", pw(0), false).await.unwrap();
    // only the last N hashes are kept
    let kept = store::history_recent(&db.pool, "h1", "app", 100)
        .await
        .unwrap();
    assert_eq!(kept.len(), n);
    for h in &kept {
        assert!(!h.contains("History-Pass"));
    }
    // history is per row
    v.set_password("h2", "app", pw(5), false).await.unwrap();
}

#[tokio::test]
async fn sqlite_history() {
    let db = Db::sqlite().await;
    history_scenario(&db).await;
    db.close().await;
}

#[tokio::test]
async fn history_with_the_real_argon2_cost() {
    let db = Db::sqlite().await;
    let v = Vault::new(db.pool.clone(), MasterKey::generate().unwrap(), policy());
    v.set_password("s", "a", Secret::new(PW), false)
        .await
        .unwrap();
    v.set_password("s", "a", Secret::new("Other-Pass-1234"), false)
        .await
        .unwrap();
    assert!(matches!(
        v.set_password("s", "a", Secret::new(PW), false).await,
        Err(VaultError::Reused { .. })
    ));
    let h = store::history_recent(&db.pool, "s", "a", 10).await.unwrap();
    assert!(
        h[0].starts_with("argon2id$v=19$m=19456,t=2,p=1$"),
        "{}",
        h[0]
    );
    db.close().await;
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_row_is_refused() {
    let db = Db::sqlite().await;
    let key = MasterKey::generate().unwrap();
    let v = vault(&db, &key);
    v.set_password("db1", "oracle", Secret::new(PW), false)
        .await
        .unwrap();
    v.set_password("db2", "oracle", Secret::new("Other-Pass-1234"), false)
        .await
        .unwrap();
    v.set_password("db1", "root", Secret::new("Root-Pass-12345"), false)
        .await
        .unwrap();
    // an attacker with database access copies db1/oracle's ciphertext
    let src = store::get(&db.pool, "db1", "oracle")
        .await
        .unwrap()
        .unwrap();
    for (s, a) in [("db2", "oracle"), ("db1", "root")] {
        sqlx::query(
            "UPDATE vault_credentials SET ciphertext = $1 WHERE server = $2 AND account = $3",
        )
        .bind(&src.ciphertext)
        .bind(s)
        .bind(a)
        .execute(&db.pool)
        .await
        .unwrap();
        let err = v.get(s, a).await.unwrap_err();
        assert!(matches!(err, VaultError::Undecipherable(_)), "{err}");
        assert!(!err.to_string().contains(PW));
    }
    // the original still opens
    assert!(v.get("db1", "oracle").await.unwrap().is_some());
    db.close().await;
}

#[tokio::test]
async fn the_wrong_master_key_is_refused_before_writing() {
    let db = Db::sqlite().await;
    let key = MasterKey::generate().unwrap();
    vault(&db, &key)
        .set_password("db1", "oracle", Secret::new(PW), false)
        .await
        .unwrap();
    let other = vault(&db, &MasterKey::generate().unwrap());
    assert!(matches!(
        other.get("db1", "oracle").await,
        Err(VaultError::WrongMasterKey)
    ));
    assert!(matches!(
        other.set_password("db9", "x", Secret::new(PW), false).await,
        Err(VaultError::WrongMasterKey)
    ));
    assert!(matches!(
        other.rekey(MasterKey::generate().unwrap()).await,
        Err(VaultError::WrongMasterKey)
    ));
    assert!(other.meta("db9", "x").await.unwrap().is_none());
    // metadata needs no key
    assert_eq!(list(&db.pool).await.unwrap().len(), 1);
    db.close().await;
}

#[tokio::test]
async fn keys_are_validated() {
    let db = Db::sqlite().await;
    let v = vault(&db, &MasterKey::generate().unwrap());
    let err = v
        .set_key("s", "a", Secret::new(ENCRYPTED_KEY), false)
        .await
        .unwrap_err();
    assert!(matches!(err, VaultError::EncryptedKey), "{err}");
    let err = v
        .set_key("s", "a", Secret::new("not a key"), false)
        .await
        .unwrap_err();
    assert!(matches!(err, VaultError::InvalidKey(_)), "{err}");
    let m = v
        .set_key("s", "a", Secret::new(RSA_1024_KEY), false)
        .await
        .unwrap();
    assert!(!m.strength_ok);
    assert!(m.strength_reasons[0].contains("1024 bits"), "{m:?}");
    assert!(m.key_info.unwrap().starts_with("ssh-rsa SHA256:"));
    assert!(list(&db.pool).await.unwrap().len() == 1);
    db.close().await;
}

#[tokio::test]
async fn bad_input_is_refused() {
    let db = Db::sqlite().await;
    let v = vault(&db, &MasterKey::generate().unwrap());
    assert!(matches!(
        v.set_password("s", "a", Secret::new(""), false).await,
        Err(VaultError::Empty)
    ));
    for (s, a) in [("", "a"), ("s", ""), ("s\n", "a"), ("s", &"x".repeat(300))] {
        assert!(matches!(
            v.set_password(s, a, Secret::new(PW), false).await,
            Err(VaultError::InvalidName { .. })
        ));
    }
    assert!(matches!(
        v.begin_rotation("nope", "none").await,
        Err(VaultError::NotFound(_))
    ));
    assert!(!v.abort_rotation("nope", "none").await.unwrap());
    db.close().await;
}

#[tokio::test]
async fn generate_stores_a_compliant_password() {
    let db = Db::sqlite().await;
    let mut p = policy();
    p.third_party_accounts = vec!["ext-*".into()];
    let v = Vault::new(db.pool.clone(), MasterKey::generate().unwrap(), p).with_hash_cost(CHEAP);
    let pw = v.generate("s", "root", false).await.unwrap();
    assert_eq!(pw.expose().len(), 20);
    let c = v.get("s", "root").await.unwrap().unwrap();
    assert_eq!(c.password().unwrap().expose(), pw.expose());
    assert!(c.meta.strength_ok);
    assert!(!c.meta.third_party);
    // third-party by glob
    v.generate("s", "ext-acme", false).await.unwrap();
    assert!(v.meta("s", "ext-acme").await.unwrap().unwrap().third_party);
    let st = v.status(store::now()).await.unwrap();
    assert!(st.iter().all(|s| s.compliance.complies), "{st:?}");
    assert_eq!(st[0].compliance.max_age_days, 90);
    assert_eq!(st[1].compliance.max_age_days, 180);
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_and_rekey_leave_everything_readable() {
    let db = Db::sqlite().await;
    concurrency_scenario(&db).await;
    db.close().await;
}

async fn concurrency_scenario(db: &Db) {
    let key = MasterKey::generate().unwrap();
    let v = Arc::new(vault(db, &key));
    v.check_key().await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let v = v.clone();
        tasks.push(tokio::spawn(async move {
            v.set_password(
                "c",
                &format!("acct{i}"),
                Secret::new(format!("Conc-Pass-{i}-xyz")),
                false,
            )
            .await
        }));
    }
    let new_key = MasterKey::generate().unwrap();
    let rekeyed = v.rekey(MasterKey::from_bytes(*new_key.bytes())).await;
    for t in tasks {
        // a writer that lost the race to the rekey is refused, never
        // written under the old key
        match t.await.unwrap() {
            Ok(_) | Err(VaultError::WrongMasterKey) => {}
            Err(e) => panic!("{e}"),
        }
    }
    rekeyed.unwrap();
    let fresh = vault(db, &new_key);
    for m in fresh.list().await.unwrap() {
        assert!(fresh.get(&m.server, &m.account).await.unwrap().is_some());
    }
}

#[test]
fn debug_and_display_never_show_secrets() {
    let meta = CredentialMeta {
        server: "db1".into(),
        account: "oracle".into(),
        kind: CredentialKind::Password,
        third_party: false,
        strength_ok: true,
        strength_reasons: vec![],
        key_info: None,
        created_at: store::now(),
        rotated_at: store::now(),
        last_used_at: None,
        rotation_pending_since: None,
    };
    let c = Credential {
        meta: meta.clone(),
        secret: CredentialSecret::Password(Secret::new(PW)),
    };
    let k = Credential {
        meta: CredentialMeta {
            kind: CredentialKind::PrivateKey,
            ..meta
        },
        secret: CredentialSecret::PrivateKey(test_key(1)),
    };
    let key_text = test_key(1);
    let key_body = key_text.expose().lines().nth(1).unwrap().to_string();
    for shown in [
        format!("{c:?}"),
        format!("{c:#?}"),
        format!("{c}"),
        format!("{k:?}"),
        format!("{k}"),
        format!("{:?}", c.secret),
    ] {
        assert!(!shown.contains(PW), "{shown}");
        assert!(!shown.contains(&key_body), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
    }
    assert_eq!(format!("{c}"), "password for oracle@db1 ([redacted])");
    let p = PendingRotation {
        server: "s".into(),
        account: "a".into(),
        third_party: false,
        new_password: Secret::new(PW),
        base_rotated_at: store::now(),
        started_at: store::now(),
    };
    assert!(!format!("{p:?}").contains(PW));
}
