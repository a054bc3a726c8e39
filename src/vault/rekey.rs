//! Changing the master key: every credential and the user CA's key
//! re-sealed under the new key in one transaction.
//! May import: the parent (`vault`) and its submodules.

use super::*;

impl Vault {
    /// Re-encrypts every credential (current and pending secrets) under
    /// `new_key` in one transaction, then uses it. All or nothing: any row
    /// that does not open under the current key aborts the whole rekey.
    /// Returns the number of credentials re-encrypted.
    pub async fn rekey(&self, new_key: MasterKey) -> Result<usize, VaultError> {
        let old = self.key();
        if old.same_bytes(&new_key) {
            return Err(VaultError::SameKey);
        }
        let mut tx = self.pool.begin().await?;
        lock_and_check(&mut tx, &old).await?;
        let rows = store::list(&mut *tx).await?;
        for row in &rows {
            let kind = CredentialKind::parse(&row.kind)?;
            let (s, a) = (row.server.as_str(), row.account.as_str());
            let cur = crypto::open(&old, binding(s, a, kind, SLOT_CURRENT), &row.ciphertext)?;
            let cur = crypto::seal(&new_key, binding(s, a, kind, SLOT_CURRENT), &cur)?;
            let pending = match &row.pending_ciphertext {
                Some(p) => {
                    let p = crypto::open(&old, binding(s, a, kind, SLOT_PENDING), p)?;
                    Some(crypto::seal(
                        &new_key,
                        binding(s, a, kind, SLOT_PENDING),
                        &p,
                    )?)
                }
                None => None,
            };
            store::set_ciphertexts(&mut *tx, s, a, &cur, pending.as_deref()).await?;
        }
        // The user CA is sealed under the same key (src/ca.rs).
        reseal_user_ca(&mut tx, &old, &new_key).await?;
        // So are staff TOTP secrets (`identity`, table `mfa_factors`).
        reseal_totp_secrets(&mut tx, &old, &new_key).await?;
        store::set_key_check(&mut *tx, &seal_key_check(&new_key)?).await?;
        tx.commit().await?;
        let new_key = Arc::new(new_key);
        match self.key.write() {
            Ok(mut g) => *g = new_key,
            Err(poisoned) => *poisoned.into_inner() = new_key,
        }
        Ok(rows.len())
    }
}

/// Re-seals the user CA's stored key (`ca`, table `user_ca`) from `old` to
/// `new` inside the caller's transaction (`rekey`); nothing to do when
/// there is none.
pub(crate) async fn reseal_user_ca(
    conn: &mut sqlx::AnyConnection,
    old: &MasterKey,
    new: &MasterKey,
) -> Result<(), VaultError> {
    let sealed: Option<String> = sqlx::query_scalar("SELECT ciphertext FROM user_ca WHERE id = 1")
        .fetch_optional(&mut *conn)
        .await?;
    let Some(sealed) = sealed else {
        return Ok(());
    };
    let plain = crypto::open(old, crypto::USER_CA_BINDING, &sealed)?;
    let resealed = crypto::seal(new, crypto::USER_CA_BINDING, &plain)?;
    sqlx::query("UPDATE user_ca SET ciphertext = $1 WHERE id = 1")
        .bind(resealed)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Re-seals every staff TOTP secret (`identity`, table `mfa_factors`) from
/// `old` to `new` inside the caller's transaction (`rekey`).
pub(crate) async fn reseal_totp_secrets(
    conn: &mut sqlx::AnyConnection,
    old: &MasterKey,
    new: &MasterKey,
) -> Result<usize, VaultError> {
    use sqlx::Row;
    let rows = sqlx::query("SELECT username, kind, secret FROM mfa_factors")
        .fetch_all(&mut *conn)
        .await?;
    for row in &rows {
        let user: String = row.try_get("username")?;
        let kind: String = row.try_get("kind")?;
        let sealed: String = row.try_get("secret")?;
        let binding = crypto::totp_binding(&user);
        let plain = crypto::open(old, binding, &sealed)?;
        let resealed = crypto::seal(new, binding, &plain)?;
        sqlx::query("UPDATE mfa_factors SET secret = $1 WHERE username = $2 AND kind = $3")
            .bind(resealed)
            .bind(&user)
            .bind(&kind)
            .execute(&mut *conn)
            .await?;
    }
    Ok(rows.len())
}
