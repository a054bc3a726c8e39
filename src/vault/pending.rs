//! A rotation's pending slot: the steps that keep a new password safe
//! before, during and after it is set on the target (see the parent's
//! module docs). May import: the parent (`vault`) and its submodules.

use super::*;

impl Vault {
    /// Step 1 of a rotation (see the module docs): generates the new
    /// password and seals it into the pending slot before anything touches
    /// the target.
    pub async fn begin_rotation(
        &self,
        server: &str,
        account: &str,
    ) -> Result<PendingRotation, VaultError> {
        let key = self.key();
        let mut tx = self.pool.begin().await?;
        lock_and_check(&mut tx, &key).await?;
        let row = store::get(&mut *tx, server, account)
            .await?
            .ok_or_else(|| VaultError::NotFound(label(server, account)))?;
        if CredentialKind::parse(&row.kind)? != CredentialKind::Password {
            return Err(VaultError::NotAPassword(label(server, account)));
        }
        if let Some(since) = row.pending_since {
            return Err(VaultError::RotationPending(
                label(server, account),
                store::format_ts(since),
            ));
        }
        let pw = generate_password(&self.policy, account, row.third_party)?;
        let ct = crypto::seal(
            &key,
            binding(server, account, CredentialKind::Password, SLOT_PENDING),
            &pw,
        )?;
        let at = store::now();
        store::set_pending(&mut *tx, server, account, Some((&ct, at))).await?;
        tx.commit().await?;
        Ok(PendingRotation {
            server: server.into(),
            account: account.into(),
            third_party: row.third_party,
            new_password: pw,
            base_rotated_at: row.rotated_at,
            started_at: at,
        })
    }

    /// The rotation left pending for this row, if any, with its password, so
    /// that a caller recovering from a crash can try it on the target.
    pub async fn pending_rotation(
        &self,
        server: &str,
        account: &str,
    ) -> Result<Option<PendingRotation>, VaultError> {
        let Some(row) = store::get(&self.pool, server, account).await? else {
            return Ok(None);
        };
        let (Some(ct), Some(since)) = (&row.pending_ciphertext, row.pending_since) else {
            return Ok(None);
        };
        let key = self.key();
        let pw = self
            .open(
                &key,
                server,
                account,
                CredentialKind::Password,
                SLOT_PENDING,
                ct,
            )
            .await?;
        Ok(Some(PendingRotation {
            server: row.server,
            account: row.account,
            third_party: row.third_party,
            new_password: pw,
            base_rotated_at: row.rotated_at,
            started_at: since,
        }))
    }

    /// Step 4 of a rotation, once the caller has verified the new password
    /// on the target: makes it the current one. Refused if the row changed
    /// since `begin_rotation` (another set, rotation, or an abort).
    pub async fn commit_rotation(&self, p: &PendingRotation) -> Result<CredentialMeta, VaultError> {
        let (server, account) = (p.server.as_str(), p.account.as_str());
        let key = self.key();
        let mut tx = self.pool.begin().await?;
        lock_and_check(&mut tx, &key).await?;
        let row = store::get(&mut *tx, server, account)
            .await?
            .ok_or_else(|| VaultError::NotFound(label(server, account)))?;
        let conflict = || VaultError::Conflict(label(server, account));
        let Some(pending_ct) = &row.pending_ciphertext else {
            return Err(VaultError::NoRotationPending(label(server, account)));
        };
        if row.rotated_at != p.base_rotated_at {
            return Err(conflict());
        }
        let pending = crypto::open(
            &key,
            binding(server, account, CredentialKind::Password, SLOT_PENDING),
            pending_ct,
        )?;
        if !secret::ct_eq(
            pending.expose().as_bytes(),
            p.new_password.expose().as_bytes(),
        ) {
            return Err(conflict());
        }
        self.write_password(
            &mut tx,
            &key,
            server,
            account,
            &p.new_password,
            row.third_party,
        )
        .await?;
        tx.commit().await?;
        self.meta(server, account)
            .await?
            .ok_or_else(|| VaultError::NotFound(label(server, account)))
    }

    /// Drops a pending rotation (the target kept its old password).
    /// Returns whether one was pending.
    pub async fn abort_rotation(&self, server: &str, account: &str) -> Result<bool, VaultError> {
        let key = self.key();
        let mut tx = self.pool.begin().await?;
        lock_and_check(&mut tx, &key).await?;
        let was = store::get(&mut *tx, server, account)
            .await?
            .is_some_and(|r| r.pending_ciphertext.is_some());
        store::set_pending(&mut *tx, server, account, None).await?;
        tx.commit().await?;
        Ok(was)
    }
}
