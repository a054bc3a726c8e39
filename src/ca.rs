//! The bastion's user certificate authority: short-lived OpenSSH user
//! certificates it signs per session for targets that trust it
//! (`TrustedUserCAKeys`), so that such a target needs no authorized_keys
//! entry for the bastion and no standing credential exists to steal.
//!
//! Each certificate certifies a fresh Ed25519 key made for that login and
//! kept only in memory. Principal: the target account. Validity: from one
//! minute before the login (clock skew) to five minutes after it: long
//! enough to authenticate, useless afterwards (sshd checks validity at
//! authentication only; the session lives on). Key id:
//! `gatehouse staff=USER session=ID server=NAME`, which sshd writes to its
//! log on every login. Extensions: `permit-pty` always (shells), and
//! `permit-port-forwarding` only for modes whose forwards run through the
//! target's sshd; never agent or X11 forwarding, never `permit-user-rc`.
//!
//! One CA for every node. A target trusts one CA line, and a staff member
//! may reach it through any node, so the CA key lives where everything the
//! nodes share lives: in the database (table `user_ca`, one row), sealed
//! under the vault's master key like the vault's credentials (and re-sealed
//! by `vault rekey`). Every node that shares the database and the master
//! key signs with the same key, and `gatehouse ca show` prints the same
//! line on each. The first node (or `ca show`) to find the table empty
//! puts a key there: the OpenSSH Ed25519 key in the `[ca] key` file when
//! that file exists (so a CA that targets already trust is kept), else a
//! new one. From then on the file is not used (and never written): a
//! warning at start says so when it holds another key.
//!
//! May import: vault (its crypto and master key), keys.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::rand::SecureRandom;
use russh::keys::PrivateKey;
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::certificate::{Builder, CertType, Certificate};
use russh::keys::ssh_key::private::Ed25519Keypair;
use sqlx::AnyPool;

use crate::vault::crypto::{self, Binding};
use crate::vault::{MasterKey, Secret, VaultError};

/// How long before the login a certificate is already valid (clock skew).
pub const VALID_BEFORE_LOGIN: Duration = Duration::from_secs(60);
/// How long after the login a certificate stays valid.
pub const VALID_AFTER_LOGIN: Duration = Duration::from_secs(5 * 60);

/// Test-only knob: seconds to move the signing clock *back* (never
/// forward), so that an end-to-end test can have the real binary issue an
/// already expired certificate without touching the machine's clock. Only
/// backdating is honoured: at worst it yields certificates sshd refuses.
pub const BACKDATE_ENV: &str = "GATEHOUSE_TEST_CA_BACKDATE_SECS";

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("CA key: {0}")]
    Key(#[from] crate::keys::KeyError),
    #[error("CA key {0}: must be an Ed25519 key")]
    NotEd25519(String),
    #[error("no randomness available")]
    Random,
    #[error("cannot sign a certificate: {0}")]
    Sign(String),
    #[error("{}: {message}", .path.display())]
    File { path: PathBuf, message: String },
    #[error("the user CA in the database: {0}")]
    Stored(String),
    #[error("the user CA in the database: {0}")]
    Vault(#[from] VaultError),
}

/// Where the CA key in use came from at this start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The database held it already.
    Database,
    /// Made now and stored (the database had none, nor was there a file).
    Generated,
    /// Read now from the `[ca] key` file and stored.
    Imported(PathBuf),
}

/// The sealed key's row binding (the vault owns it, and re-seals the row
/// on `vault rekey`).
const BINDING: Binding<'static> = crypto::USER_CA_BINDING;
const ORIGIN_GENERATED: &str = "generated";
const ORIGIN_IMPORTED: &str = "imported";

/// What a certificate is for.
#[derive(Debug, Clone)]
pub struct CertRequest<'a> {
    /// The target account: the only principal.
    pub account: &'a str,
    pub staff: &'a str,
    pub session: &'a str,
    pub server: &'a str,
    /// The mode carries forwards through the target's sshd.
    pub port_forwarding: bool,
}

/// A certificate and the in-memory key it certifies.
pub struct Issued {
    pub key: Arc<PrivateKey>,
    pub certificate: Certificate,
}

pub struct UserCa {
    key: PrivateKey,
    /// Seconds the signing clock is moved back ([`BACKDATE_ENV`]).
    backdate: u64,
}

impl UserCa {
    /// The CA every node shares: the one in the database, opened with
    /// `master`; when the database has none yet, the key in the `import`
    /// file if it exists, else a new one, stored first. Two nodes starting
    /// at once on an empty table both end up with the one stored first.
    pub async fn load_shared(
        pool: &AnyPool,
        master: &MasterKey,
        import: &Path,
    ) -> Result<(UserCa, Origin), CaError> {
        if let Some(sealed) = read_sealed(pool).await? {
            let ca = UserCa::from_key(open_key(master, &sealed)?, "the database")?;
            warn_if_file_differs(&ca, import);
            return Ok((ca, Origin::Database));
        }
        let (key, origin) = if import.exists() {
            (
                read_key_file(import)?,
                Origin::Imported(import.to_path_buf()),
            )
        } else {
            (new_key()?, Origin::Generated)
        };
        let ours = UserCa::from_key(key, &import.display().to_string())?;
        let text = ours
            .key
            .to_openssh(LineEnding::LF)
            .map_err(|e| CaError::Stored(format!("cannot encode the key: {e}")))?;
        let sealed = crypto::seal(master, BINDING, &Secret::new(text.as_str()))?;
        let label = match origin {
            Origin::Imported(_) => ORIGIN_IMPORTED,
            _ => ORIGIN_GENERATED,
        };
        sqlx::query(
            "INSERT INTO user_ca (id, ciphertext, origin, created_at) VALUES (1, $1, $2, $3) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(sealed)
        .bind(label)
        .bind(crate::vault::store::format_ts(
            time::OffsetDateTime::now_utc(),
        ))
        .execute(pool)
        .await
        .map_err(|e| CaError::Stored(e.to_string()))?;
        // Whoever stored first wins; use what is there now.
        let stored = read_sealed(pool)
            .await?
            .ok_or_else(|| CaError::Stored("the row vanished after it was written".into()))?;
        let ca = UserCa::from_key(open_key(master, &stored)?, "the database")?;
        if ca.key.public_key().key_data() == ours.key.public_key().key_data() {
            Ok((ca, origin))
        } else {
            warn_if_file_differs(&ca, import);
            Ok((ca, Origin::Database))
        }
    }

    /// A CA signing with `key` (Ed25519 only; `from` names it in errors).
    pub fn from_key(key: PrivateKey, from: &str) -> Result<UserCa, CaError> {
        if key.algorithm() != russh::keys::Algorithm::Ed25519 {
            return Err(CaError::NotEd25519(from.to_string()));
        }
        let backdate = std::env::var(BACKDATE_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        Ok(UserCa { key, backdate })
    }

    /// The line for the target's `TrustedUserCAKeys` file.
    pub fn trusted_user_ca_keys_line(&self) -> String {
        crate::keys::public_line(&self.key)
    }

    /// `SHA256:...` of the CA key.
    pub fn fingerprint(&self) -> String {
        crate::keys::fingerprint(self.key.public_key())
    }

    /// Signs a certificate for one login happening at `now`.
    pub fn issue(&self, req: &CertRequest<'_>, now: SystemTime) -> Result<Issued, CaError> {
        let rng = ring::rand::SystemRandom::new();
        let mut seed = [0u8; 32];
        rng.fill(&mut seed).map_err(|_| CaError::Random)?;
        let key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
        seed.fill(0);
        let mut nonce = [0u8; 32];
        rng.fill(&mut nonce).map_err(|_| CaError::Random)?;
        let mut serial = [0u8; 8];
        rng.fill(&mut serial).map_err(|_| CaError::Random)?;

        let at = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| CaError::Sign("clock before 1970".into()))?
            .as_secs()
            .saturating_sub(self.backdate);
        let sign = |e: russh::keys::ssh_key::Error| CaError::Sign(e.to_string());
        let mut b = Builder::new(
            nonce.to_vec(),
            key.public_key().key_data().clone(),
            at.saturating_sub(VALID_BEFORE_LOGIN.as_secs()),
            at.saturating_add(VALID_AFTER_LOGIN.as_secs()),
        )
        .map_err(sign)?;
        b.serial(u64::from_be_bytes(serial)).map_err(sign)?;
        b.cert_type(CertType::User).map_err(sign)?;
        b.key_id(key_id(req)).map_err(sign)?;
        b.valid_principal(req.account).map_err(sign)?;
        b.extension("permit-pty", "").map_err(sign)?;
        if req.port_forwarding {
            b.extension("permit-port-forwarding", "").map_err(sign)?;
        }
        let certificate = b.sign(&self.key).map_err(sign)?;
        Ok(Issued {
            key: Arc::new(key),
            certificate,
        })
    }
}

async fn read_sealed(pool: &AnyPool) -> Result<Option<String>, CaError> {
    sqlx::query_scalar("SELECT ciphertext FROM user_ca WHERE id = 1")
        .fetch_optional(pool)
        .await
        .map_err(|e| CaError::Stored(e.to_string()))
}

fn open_key(master: &MasterKey, sealed: &str) -> Result<PrivateKey, CaError> {
    let plain = crypto::open(master, BINDING, sealed).map_err(|e| match e {
        VaultError::Undecipherable(_) => CaError::Stored(
            "it does not open with this master key (every node needs the same master key)".into(),
        ),
        other => CaError::Vault(other),
    })?;
    PrivateKey::from_openssh(plain.expose().as_bytes())
        .map_err(|e| CaError::Stored(format!("not an OpenSSH private key: {e}")))
}

fn read_key_file(path: &Path) -> Result<PrivateKey, CaError> {
    let fail = |message: String| CaError::File {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    PrivateKey::from_openssh(text.as_bytes())
        .map_err(|e| fail(format!("not a usable OpenSSH private key: {e}")))
}

fn new_key() -> Result<PrivateKey, CaError> {
    let mut seed = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut seed)
        .map_err(|_| CaError::Random)?;
    let mut key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    seed.fill(0);
    key.set_comment("gatehouse user CA");
    Ok(key)
}

/// The `[ca] key` file is read only while the database has no CA: say so
/// when it holds another key than the one in use, which targets trusting
/// the file's key would refuse.
fn warn_if_file_differs(ca: &UserCa, file: &Path) {
    if !file.exists() {
        return;
    }
    match read_key_file(file) {
        Ok(k) if k.public_key().key_data() == ca.key.public_key().key_data() => {}
        _ => tracing::warn!(
            "[ca] key {} is not the user CA in use: the CA is kept in the database and the \
             file is only imported when the database has none; targets must trust `gatehouse \
             ca show`",
            file.display()
        ),
    }
}

/// `gatehouse staff=USER session=ID server=NAME`, with anything but
/// printable ASCII dropped (names are policy-checked already).
fn key_id(req: &CertRequest<'_>) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_ascii_graphic())
            .take(64)
            .collect()
    };
    format!(
        "gatehouse staff={} session={} server={}",
        clean(req.staff),
        clean(req.session),
        clean(req.server)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(port_forwarding: bool) -> CertRequest<'static> {
        CertRequest {
            account: "root",
            staff: "alice",
            session: "s-1",
            server: "web1",
            port_forwarding,
        }
    }

    #[test]
    fn certificates_are_short_lived_and_narrow() {
        let ca = UserCa::from_key(new_key().unwrap(), "test").unwrap();
        assert!(ca.trusted_user_ca_keys_line().starts_with("ssh-ed25519 "));

        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let issued = ca.issue(&req(false), now).unwrap();
        let c = &issued.certificate;
        assert_eq!(c.cert_type(), CertType::User);
        assert_eq!(c.valid_principals(), ["root".to_string()]);
        assert_eq!(c.valid_after(), 1_800_000_000 - 60);
        assert_eq!(c.valid_before(), 1_800_000_000 + 300);
        assert_eq!(c.key_id(), "gatehouse staff=alice session=s-1 server=web1");
        let ext: Vec<&String> = c.extensions().keys().collect();
        assert_eq!(ext, vec!["permit-pty"]);
        assert!(c.critical_options().is_empty());
        assert_eq!(c.public_key(), issued.key.public_key().key_data());
        let fp = ca
            .key
            .public_key()
            .fingerprint(russh::keys::HashAlg::Sha256);
        c.validate_at(1_800_000_000, [&fp]).unwrap();
        assert!(c.validate_at(1_800_000_000 + 301, [&fp]).is_err());

        let forwarding = ca.issue(&req(true), now).unwrap();
        let mut ext: Vec<&String> = forwarding.certificate.extensions().keys().collect();
        ext.sort();
        assert_eq!(ext, vec!["permit-port-forwarding", "permit-pty"]);
        // A fresh key per certificate.
        assert_ne!(
            forwarding.key.public_key().key_data(),
            issued.key.public_key().key_data()
        );
    }

    #[tokio::test]
    async fn the_ca_lives_in_the_database_sealed_under_the_master_key() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("g.db").display());
        let store = crate::store::Store::open(&url, "n1").await.unwrap();
        let master = MasterKey::generate().unwrap();
        let file = dir.path().join("user_ca_ed25519_key");
        let (first, origin) = UserCa::load_shared(store.pool(), &master, &file)
            .await
            .unwrap();
        assert_eq!(origin, Origin::Generated);
        assert!(
            !file.exists(),
            "no file is written: the database holds the CA"
        );
        let (again, origin) = UserCa::load_shared(store.pool(), &master, &file)
            .await
            .unwrap();
        assert_eq!(origin, Origin::Database);
        assert_eq!(first.fingerprint(), again.fingerprint());
        // Sealed: the row holds no private key text.
        let stored: String = sqlx::query_scalar("SELECT ciphertext FROM user_ca")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert!(!stored.contains("PRIVATE KEY"));
        // Another master key does not open it.
        let other = MasterKey::generate().unwrap();
        let err = UserCa::load_shared(store.pool(), &other, &file)
            .await
            .err()
            .expect("wrong master key");
        assert!(err.to_string().contains("master key"), "{err}");
        // `vault rekey` re-seals it in its transaction.
        let mut conn = store.pool().acquire().await.unwrap();
        crate::vault::rekey::reseal_user_ca(&mut conn, &master, &other)
            .await
            .unwrap();
        drop(conn);
        let (rekeyed, _) = UserCa::load_shared(store.pool(), &other, &file)
            .await
            .unwrap();
        assert_eq!(rekeyed.fingerprint(), first.fingerprint());
        store.close().await;
    }

    #[tokio::test]
    async fn an_existing_ca_file_is_imported_once() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("g.db").display());
        let store = crate::store::Store::open(&url, "n1").await.unwrap();
        let master = MasterKey::generate().unwrap();
        let file = dir.path().join("ca");
        let key = crate::keys::load_or_create(&file, "old ca").unwrap();
        let (ca, origin) = UserCa::load_shared(store.pool(), &master, &file)
            .await
            .unwrap();
        assert_eq!(origin, Origin::Imported(file.clone()));
        assert_eq!(ca.fingerprint(), crate::keys::fingerprint(key.public_key()));
        // A later, different file changes nothing.
        std::fs::remove_file(&file).unwrap();
        crate::keys::load_or_create(&file, "another").unwrap();
        let (ca2, origin) = UserCa::load_shared(store.pool(), &master, &file)
            .await
            .unwrap();
        assert_eq!(origin, Origin::Database);
        assert_eq!(ca2.fingerprint(), ca.fingerprint());
        store.close().await;
    }

    #[test]
    fn key_ids_hold_no_spaces_or_controls_from_names() {
        let r = CertRequest {
            account: "root",
            staff: "a l\nice",
            session: "s",
            server: "w\u{1b}[1m",
            port_forwarding: false,
        };
        assert_eq!(key_id(&r), "gatehouse staff=alice session=s server=w[1m");
    }
}
