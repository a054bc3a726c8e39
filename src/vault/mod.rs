//! The credential vault (issue 5): target passwords and private keys, kept
//! encrypted in the database, used by the bastion to log in on a staff
//! member's behalf, generated to policy, rotated, and reported on. Staff
//! never see them: nothing here serializes or prints a secret.
//! May import: config (its `[vault]` settings); `rotate`, a workflow, also
//! the store, audit, policy and the SSH client to targets.
//!
//! - [`secret`]: the [`Secret`] wrapper (prints `[redacted]`, wiped on drop);
//! - [`master`]: the master key (env `GATEHOUSE_MASTER_KEY` or key file);
//! - [`crypto`]: AES-256-GCM sealing bound to (server, account, kind, slot);
//! - [`policy`]: password rules, generation, key strength, compliance;
//! - [`history`]: salted Argon2id hashes refusing reuse of the last N;
//! - [`store`]: the SQL (migrations `0002_vault.sql`);
//! - [`Vault`]: the API the CLI and the SSH front end call.
//!
//! # Invariants
//! - A ciphertext opens only under the master key and for the row it was
//!   written for; the `vault_state` key check makes a wrong key fail before
//!   anything is written.
//! - Every write takes the vault's database lock first, so `rekey` and
//!   writers never interleave.
//! - Reports read [`CredentialMeta`] only; the policy verdict on a secret's
//!   strength is taken when it is set and stored with it.
//!
//! # Rotation
//! The SSH part lives with the bastion's client; the vault provides the
//! bookkeeping, which survives a crash at any step:
//! 1. [`Vault::begin_rotation`] generates a password to policy and seals it
//!    into the row's *pending* slot (refused while one is pending).
//! 2. The caller sets it on the target (e.g. `chpasswd` as
//!    `vault.rotation_admin_account` with the bastion's identity key).
//! 3. The caller verifies it with a fresh login as the account.
//! 4. Verified: [`Vault::commit_rotation`] makes it current (history,
//!    `rotated_at`). Target unchanged: [`Vault::abort_rotation`]. Unknown
//!    (crash, timeout): leave it; later [`Vault::pending_rotation`] returns
//!    it to try, then commit or abort.

pub(crate) mod crypto;
pub(crate) mod history;
pub(crate) mod master;
mod pending;
pub(crate) mod policy;
pub(crate) mod rekey;
pub(crate) mod rotate;
pub(crate) mod secret;
pub(crate) mod store;

use std::fmt;
use std::sync::{Arc, RwLock};

use serde::Serialize;
use sqlx::{AnyConnection, AnyPool};
use time::OffsetDateTime;

use crate::config::VaultConfig;
use crypto::Binding;

pub use history::HashCost;
pub use master::{KeySource, MASTER_KEY_ENV, MasterKey, replace_key_file};
pub use policy::{
    Compliance, check_password, check_private_key, compliance, generate_password,
    is_third_party_account,
};
pub use secret::Secret;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("master key: {0}")]
    MasterKey(String),
    #[error("the master key does not match the one this vault was sealed with")]
    WrongMasterKey,
    #[error("the new master key is the current one")]
    SameKey,
    #[error("the system random source failed")]
    Random,
    #[error("encryption failed")]
    Crypto,
    #[error(
        "cannot decrypt the credential for {0}: it was moved, altered, or sealed under another key"
    )]
    Undecipherable(String),
    #[error("corrupt vault data: {0}")]
    Corrupt(String),
    #[error("password hashing: {0}")]
    Hash(String),
    #[error("could not generate a password meeting the policy")]
    Generate,
    #[error("database: {0}")]
    Db(String),
    #[error("invalid {what}: {why}")]
    InvalidName {
        what: &'static str,
        why: &'static str,
    },
    #[error("empty password")]
    Empty,
    #[error(
        "this password is one of the last {history} used for {account}@{server}; choose another"
    )]
    Reused {
        server: String,
        account: String,
        history: usize,
    },
    #[error("not a usable private key: {0}")]
    InvalidKey(String),
    #[error(
        "the private key is protected by a passphrase; store it without one (the vault encrypts it)"
    )]
    EncryptedKey,
    #[error("no credential for {0}")]
    NotFound(String),
    #[error("{0} holds a private key; only passwords are rotated")]
    NotAPassword(String),
    #[error("a rotation of {0} is pending since {1}; commit or abort it first")]
    RotationPending(String, String),
    #[error("no rotation of {0} is pending")]
    NoRotationPending(String),
    #[error("{0} changed since its rotation began; nothing was committed")]
    Conflict(String),
}

/// What a vault row holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialKind {
    Password,
    PrivateKey,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Password => "password",
            CredentialKind::PrivateKey => "private-key",
        }
    }
    pub fn parse(s: &str) -> Result<CredentialKind, VaultError> {
        match s {
            "password" => Ok(CredentialKind::Password),
            "private-key" => Ok(CredentialKind::PrivateKey),
            other => Err(VaultError::Corrupt(format!("credential kind {other:?}"))),
        }
    }
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything about a credential except the secret: safe to list, export
/// and report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CredentialMeta {
    pub server: String,
    pub account: String,
    pub kind: CredentialKind,
    pub third_party: bool,
    /// The policy verdict when the secret was set.
    pub strength_ok: bool,
    pub strength_reasons: Vec<String>,
    /// Private keys: algorithm and SHA-256 fingerprint of the public half.
    pub key_info: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the secret last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub rotated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// Set while a rotation is begun but neither committed nor aborted.
    #[serde(with = "time::serde::rfc3339::option")]
    pub rotation_pending_since: Option<OffsetDateTime>,
}

impl CredentialMeta {
    fn from_row(r: &store::CredentialRow) -> Result<CredentialMeta, VaultError> {
        Ok(CredentialMeta {
            server: r.server.clone(),
            account: r.account.clone(),
            kind: CredentialKind::parse(&r.kind)?,
            third_party: r.third_party,
            strength_ok: r.strength_ok,
            strength_reasons: r.strength_reasons.clone(),
            key_info: r.key_info.clone(),
            created_at: r.created_at,
            rotated_at: r.rotated_at,
            last_used_at: r.last_used_at,
            rotation_pending_since: r.pending_since,
        })
    }

    /// `account@server`, as messages name a credential.
    pub fn label(&self) -> String {
        label(&self.server, &self.account)
    }
}

fn label(server: &str, account: &str) -> String {
    format!("{account}@{server}")
}

/// The secret part of a credential.
#[derive(Debug, Clone)]
pub enum CredentialSecret {
    Password(Secret),
    /// OpenSSH (or PEM) private key text, unencrypted.
    PrivateKey(Secret),
}

/// A decrypted credential, as handed to the code that logs in to a target.
/// `Debug` and `Display` show the metadata only.
#[derive(Debug, Clone)]
pub struct Credential {
    pub meta: CredentialMeta,
    pub secret: CredentialSecret,
}

impl Credential {
    pub fn password(&self) -> Option<&Secret> {
        match &self.secret {
            CredentialSecret::Password(p) => Some(p),
            CredentialSecret::PrivateKey(_) => None,
        }
    }

    /// The private key, parsed, ready for `authenticate_publickey`.
    pub fn private_key(&self) -> Result<Option<russh::keys::PrivateKey>, VaultError> {
        match &self.secret {
            CredentialSecret::Password(_) => Ok(None),
            CredentialSecret::PrivateKey(text) => parse_private_key(text).map(Some),
        }
    }
}

impl fmt::Display for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} for {} ({})",
            self.meta.kind,
            self.meta.label(),
            secret::REDACTED
        )
    }
}

/// A rotation between [`Vault::begin_rotation`] and its commit or abort.
#[derive(Debug, Clone)]
pub struct PendingRotation {
    pub server: String,
    pub account: String,
    pub third_party: bool,
    /// The password to set on the target and verify.
    pub new_password: Secret,
    /// `rotated_at` of the row when the rotation began: a commit is refused
    /// if the credential changed in between.
    pub base_rotated_at: OffsetDateTime,
    pub started_at: OffsetDateTime,
}

/// A credential's metadata with its compliance verdict: one line of
/// `vault list` and of the report's `privileged_accounts`.
#[derive(Debug, Clone, Serialize)]
pub struct CredentialStatus {
    #[serde(flatten)]
    pub meta: CredentialMeta,
    pub compliance: Compliance,
}

/// Metadata of every credential, by server then account. Needs no key.
pub async fn list(pool: &AnyPool) -> Result<Vec<CredentialMeta>, VaultError> {
    store::list(pool)
        .await?
        .iter()
        .map(CredentialMeta::from_row)
        .collect()
}

/// Every credential with its compliance at `now`. Needs no key.
pub async fn status(
    pool: &AnyPool,
    policy: &VaultConfig,
    now: OffsetDateTime,
) -> Result<Vec<CredentialStatus>, VaultError> {
    Ok(list(pool)
        .await?
        .into_iter()
        .map(|meta| CredentialStatus {
            compliance: compliance(&meta, policy, now),
            meta,
        })
        .collect())
}

/// Server and account names are stored and bound into ciphertexts as-is;
/// refuse what could not have come from a policy file or a login name.
fn check_name(what: &'static str, s: &str) -> Result<(), VaultError> {
    let why = if s.is_empty() {
        "empty"
    } else if s.len() > 255 {
        "longer than 255 bytes"
    } else if s.chars().any(char::is_control) {
        "contains control characters"
    } else {
        return Ok(());
    };
    Err(VaultError::InvalidName { what, why })
}

fn parse_private_key(text: &Secret) -> Result<russh::keys::PrivateKey, VaultError> {
    match russh::keys::decode_secret_key(text.expose(), None) {
        Ok(k) => Ok(k),
        Err(e) => {
            if russh::keys::PrivateKey::from_openssh(text.expose())
                .map(|k| k.is_encrypted())
                .unwrap_or(false)
            {
                Err(VaultError::EncryptedKey)
            } else {
                Err(VaultError::InvalidKey(e.to_string()))
            }
        }
    }
}

fn binding<'a>(
    server: &'a str,
    account: &'a str,
    kind: CredentialKind,
    slot: &'a str,
) -> Binding<'a> {
    Binding {
        server,
        account,
        kind: kind.as_str(),
        slot,
    }
}

const SLOT_CURRENT: &str = "current";
const SLOT_PENDING: &str = "pending";
const KEY_CHECK_TEXT: &str = "gatehouse vault key check";

fn key_check_binding() -> Binding<'static> {
    Binding {
        server: "",
        account: "",
        kind: "key-check",
        slot: "state",
    }
}

fn seal_key_check(key: &MasterKey) -> Result<String, VaultError> {
    crypto::seal(key, key_check_binding(), &Secret::new(KEY_CHECK_TEXT))
}

fn key_check_opens(key: &MasterKey, stored: &str) -> bool {
    crypto::open(key, key_check_binding(), stored).is_ok()
}

/// The vault: a database pool, the master key and the password policy.
pub struct Vault {
    pool: AnyPool,
    /// Behind a lock so that `rekey` can swap it for callers sharing the
    /// vault; every operation clones the `Arc` once and uses that key.
    key: RwLock<Arc<MasterKey>>,
    policy: VaultConfig,
    cost: HashCost,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("key", &secret::REDACTED)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Vault {
    pub fn new(pool: AnyPool, key: MasterKey, policy: VaultConfig) -> Vault {
        Vault {
            pool,
            key: RwLock::new(Arc::new(key)),
            policy,
            cost: HashCost::OWASP,
        }
    }

    /// Changes the Argon2id cost of new history hashes (tests use a cheap
    /// one; old hashes keep the cost they were made with).
    #[cfg(test)]
    pub(crate) fn with_hash_cost(mut self, cost: HashCost) -> Vault {
        self.cost = cost;
        self
    }

    pub fn policy(&self) -> &VaultConfig {
        &self.policy
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The master key in use (the user CA is sealed under it too).
    pub(crate) fn key(&self) -> Arc<MasterKey> {
        match self.key.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Third-party by the caller's flag or by the `third_party_accounts` globs.
    pub fn is_third_party(&self, account: &str, flag: bool) -> bool {
        flag || is_third_party_account(&self.policy, account)
    }

    /// Confirms that the master key is the one the vault was sealed with
    /// (records it when the vault is new). Call it at start-up to fail fast.
    pub async fn check_key(&self) -> Result<(), VaultError> {
        let key = self.key();
        let mut tx = self.pool.begin().await?;
        lock_and_check(&mut tx, &key).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores a password. It is stored even when weak (the verdict and its
    /// reasons are kept and reported), but refused when empty or when it is
    /// one of the last `history` passwords of this row.
    pub async fn set_password(
        &self,
        server: &str,
        account: &str,
        pw: Secret,
        third_party: bool,
    ) -> Result<CredentialMeta, VaultError> {
        check_name("server", server)?;
        check_name("account", account)?;
        if pw.is_empty() {
            return Err(VaultError::Empty);
        }
        let third_party = self.is_third_party(account, third_party);
        let key = self.key();
        let mut tx = self.pool.begin().await?;
        lock_and_check(&mut tx, &key).await?;
        self.write_password(&mut tx, &key, server, account, &pw, third_party)
            .await?;
        tx.commit().await?;
        self.meta(server, account)
            .await?
            .ok_or_else(|| VaultError::NotFound(label(server, account)))
    }

    /// History check, seal, upsert, history push: the common tail of
    /// `set_password`, `generate` and `commit_rotation`. The caller holds
    /// the lock (an open transaction after [`lock_and_check`]).
    async fn write_password(
        &self,
        conn: &mut AnyConnection,
        key: &MasterKey,
        server: &str,
        account: &str,
        pw: &Secret,
        third_party: bool,
    ) -> Result<(), VaultError> {
        let (strength_ok, reasons) = match check_password(&self.policy, account, third_party, pw) {
            Ok(()) => (true, Vec::new()),
            Err(r) => (false, r),
        };
        let new_hash = if self.policy.history > 0 {
            let recent =
                store::history_recent(&mut *conn, server, account, self.policy.history).await?;
            let pw2 = pw.clone();
            let cost = self.cost;
            // Argon2 is deliberately slow: keep it off the async workers.
            let (reused, hash) = tokio::task::spawn_blocking(move || {
                for h in &recent {
                    if history::verify(&pw2, h)? {
                        return Ok::<_, VaultError>((true, None));
                    }
                }
                Ok((false, Some(history::hash(&pw2, cost)?)))
            })
            .await
            .map_err(|e| VaultError::Hash(e.to_string()))??;
            if reused {
                return Err(VaultError::Reused {
                    server: server.into(),
                    account: account.into(),
                    history: self.policy.history,
                });
            }
            hash
        } else {
            None
        };
        let kind = CredentialKind::Password;
        let ct = crypto::seal(key, binding(server, account, kind, SLOT_CURRENT), pw)?;
        let at = store::now();
        store::upsert(
            &mut *conn,
            &store::NewSecret {
                server,
                account,
                kind: kind.as_str(),
                ciphertext: &ct,
                third_party,
                strength_ok,
                strength_reasons: &reasons,
                key_info: None,
                at,
            },
        )
        .await?;
        if let Some(h) = new_hash {
            store::history_push(&mut *conn, server, account, &h, at).await?;
            store::history_prune(&mut *conn, server, account, self.policy.history).await?;
        }
        Ok(())
    }

    /// Stores a private key (OpenSSH, or PEM PKCS#1/PKCS#8), which must
    /// parse and must not be passphrase-protected. Weak keys (DSA, RSA under
    /// 2048 bits) are stored and reported as non-compliant.
    pub async fn set_key(
        &self,
        server: &str,
        account: &str,
        key_text: Secret,
        third_party: bool,
    ) -> Result<CredentialMeta, VaultError> {
        check_name("server", server)?;
        check_name("account", account)?;
        let parsed = parse_private_key(&key_text)?;
        let (strength_ok, reasons) = match check_private_key(&parsed) {
            Ok(()) => (true, Vec::new()),
            Err(r) => (false, r),
        };
        let key_info = format!(
            "{} {}",
            parsed.algorithm().as_str(),
            parsed.fingerprint(russh::keys::HashAlg::Sha256)
        );
        drop(parsed);
        let third_party = self.is_third_party(account, third_party);
        let kind = CredentialKind::PrivateKey;
        let key = self.key();
        let mut tx = self.pool.begin().await?;
        lock_and_check(&mut tx, &key).await?;
        let ct = crypto::seal(
            &key,
            binding(server, account, kind, SLOT_CURRENT),
            &key_text,
        )?;
        store::upsert(
            &mut *tx,
            &store::NewSecret {
                server,
                account,
                kind: kind.as_str(),
                ciphertext: &ct,
                third_party,
                strength_ok,
                strength_reasons: &reasons,
                key_info: Some(&key_info),
                at: store::now(),
            },
        )
        .await?;
        tx.commit().await?;
        self.meta(server, account)
            .await?
            .ok_or_else(|| VaultError::NotFound(label(server, account)))
    }

    /// Decrypts a credential for use and records `last_used_at`. The caller
    /// audits the read (`vault.read`).
    pub async fn get(&self, server: &str, account: &str) -> Result<Option<Credential>, VaultError> {
        let Some(row) = store::get(&self.pool, server, account).await? else {
            return Ok(None);
        };
        let mut meta = CredentialMeta::from_row(&row)?;
        let key = self.key();
        let plain = self
            .open(
                &key,
                server,
                account,
                meta.kind,
                SLOT_CURRENT,
                &row.ciphertext,
            )
            .await?;
        let at = store::now();
        store::touch_used(&self.pool, server, account, at).await?;
        meta.last_used_at = Some(at);
        let secret = match meta.kind {
            CredentialKind::Password => CredentialSecret::Password(plain),
            CredentialKind::PrivateKey => CredentialSecret::PrivateKey(plain),
        };
        Ok(Some(Credential { meta, secret }))
    }

    /// Opens a ciphertext; when that fails, tells a wrong master key apart
    /// from a moved or altered row by trying the key check.
    async fn open(
        &self,
        key: &MasterKey,
        server: &str,
        account: &str,
        kind: CredentialKind,
        slot: &str,
        ct: &str,
    ) -> Result<Secret, VaultError> {
        match crypto::open(key, binding(server, account, kind, slot), ct) {
            Err(VaultError::Undecipherable(what)) => match store::key_check(&self.pool).await? {
                Some(kc) if !key_check_opens(key, &kc) => Err(VaultError::WrongMasterKey),
                _ => Err(VaultError::Undecipherable(what)),
            },
            other => other,
        }
    }

    /// Metadata of one credential, without decrypting or touching it.
    pub async fn meta(
        &self,
        server: &str,
        account: &str,
    ) -> Result<Option<CredentialMeta>, VaultError> {
        store::get(&self.pool, server, account)
            .await?
            .as_ref()
            .map(CredentialMeta::from_row)
            .transpose()
    }

    /// Metadata of every credential.
    pub async fn list(&self) -> Result<Vec<CredentialMeta>, VaultError> {
        list(&self.pool).await
    }

    /// Every credential with its compliance at `now`.
    pub async fn status(&self, now: OffsetDateTime) -> Result<Vec<CredentialStatus>, VaultError> {
        status(&self.pool, &self.policy, now).await
    }

    /// Generates a password to policy, stores it, and returns it (for the
    /// admin to set on the target; `vault generate --show`).
    pub async fn generate(
        &self,
        server: &str,
        account: &str,
        third_party: bool,
    ) -> Result<Secret, VaultError> {
        let third_party = self.is_third_party(account, third_party);
        let pw = generate_password(&self.policy, account, third_party)?;
        self.set_password(server, account, pw.clone(), third_party)
            .await?;
        Ok(pw)
    }
}

/// Takes the vault's write lock inside the caller's transaction and checks
/// that `key` is the vault's master key (recording it on first use).
async fn lock_and_check(conn: &mut AnyConnection, key: &MasterKey) -> Result<(), VaultError> {
    if !store::lock_state(&mut *conn).await? {
        store::init_state(&mut *conn, &seal_key_check(key)?).await?;
        store::lock_state(&mut *conn).await?;
    }
    let kc = store::key_check(&mut *conn)
        .await?
        .ok_or_else(|| VaultError::Corrupt("vault_state has no key check".into()))?;
    if key_check_opens(key, &kc) {
        Ok(())
    } else {
        Err(VaultError::WrongMasterKey)
    }
}

#[cfg(test)]
mod tests;
