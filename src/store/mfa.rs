//! Second factors in the database (migration 0014), shared by every node:
//! enrolled factors (their secrets already sealed by the caller, see
//! `crate::identity`), the last TOTP step accepted per user, recovery
//! code hashes, cached approvals and `allow-enroll` permissions.
//!
//! The store never sees a secret in the clear, nor a recovery code: it
//! keeps what `crate::identity` hands it and answers the questions that
//! must be decided once for all nodes (was this step already used? is
//! this recovery code still unused?) with one conditional statement each.

use time::OffsetDateTime;

use super::{Ctx, Store, StoreError, get, get_opt_ts, get_ts, ts_text};

/// One enrolled factor as stored.
#[derive(Clone)]
pub struct MfaFactorRow {
    pub user: String,
    /// `totp`.
    pub kind: String,
    /// Sealed under the master key; opened only by `crate::identity`.
    pub sealed_secret: String,
    pub enrolled_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for MfaFactorRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaFactorRow")
            .field("user", &self.user)
            .field("kind", &self.kind)
            .field("enrolled_at", &self.enrolled_at)
            .field("last_used_at", &self.last_used_at)
            .finish_non_exhaustive()
    }
}

/// What `gatehouse mfa list` shows: never a secret.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MfaListRow {
    pub user: String,
    pub factor: String,
    #[serde(with = "time::serde::rfc3339")]
    pub enrolled: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used: Option<OffsetDateTime>,
    /// Recovery codes not used yet.
    pub recovery_codes_left: u32,
}

impl Store {
    /// Stores `user`'s new factor and its recovery code hashes, replacing
    /// any earlier factor and codes; the user's cached approvals and any
    /// `allow-enroll` permission end. One transaction.
    pub async fn mfa_enroll(
        &self,
        user: &str,
        kind: &str,
        sealed_secret: &str,
        recovery_hashes: &[String],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for sql in [
            "DELETE FROM mfa_factors WHERE username = $1",
            "DELETE FROM mfa_recovery_codes WHERE username = $1",
            "DELETE FROM mfa_cache WHERE username = $1",
            "DELETE FROM mfa_allow_enroll WHERE username = $1",
        ] {
            sqlx::query(sql)
                .bind(user)
                .execute(&mut *tx)
                .await
                .ctx("replace second factor")?;
        }
        sqlx::query(
            "INSERT INTO mfa_factors (username, kind, secret, enrolled_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(user)
        .bind(kind)
        .bind(sealed_secret)
        .bind(ts_text(now)?)
        .execute(&mut *tx)
        .await
        .ctx("store second factor")?;
        for (i, hash) in recovery_hashes.iter().enumerate() {
            sqlx::query("INSERT INTO mfa_recovery_codes (username, idx, hash) VALUES ($1, $2, $3)")
                .bind(user)
                .bind(i64::try_from(i).unwrap_or(i64::MAX))
                .bind(hash)
                .execute(&mut *tx)
                .await
                .ctx("store recovery code")?;
        }
        tx.commit().await.ctx("commit second factor")?;
        Ok(())
    }

    /// `user`'s factor of `kind`, if enrolled.
    pub async fn mfa_factor(
        &self,
        user: &str,
        kind: &str,
    ) -> Result<Option<MfaFactorRow>, StoreError> {
        let row = sqlx::query(
            "SELECT username, kind, secret, enrolled_at, last_used_at FROM mfa_factors \
             WHERE username = $1 AND kind = $2",
        )
        .bind(user)
        .bind(kind)
        .fetch_optional(self.pool())
        .await
        .ctx("read second factor")?;
        row.map(|row| {
            Ok(MfaFactorRow {
                user: get(&row, "username")?,
                kind: get(&row, "kind")?,
                sealed_secret: get(&row, "secret")?,
                enrolled_at: get_ts(&row, "enrolled_at")?,
                last_used_at: get_opt_ts(&row, "last_used_at")?,
            })
        })
        .transpose()
    }

    /// Every enrolled factor, by user then kind.
    pub async fn mfa_list(&self) -> Result<Vec<MfaListRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT f.username, f.kind, f.enrolled_at, f.last_used_at, \
             (SELECT COUNT(*) FROM mfa_recovery_codes r \
              WHERE r.username = f.username AND r.used_at IS NULL) AS left_codes \
             FROM mfa_factors f ORDER BY f.username, f.kind",
        )
        .fetch_all(self.pool())
        .await
        .ctx("list second factors")?;
        rows.iter()
            .map(|row| {
                let left: i64 = get(row, "left_codes")?;
                Ok(MfaListRow {
                    user: get(row, "username")?,
                    factor: get(row, "kind")?,
                    enrolled: get_ts(row, "enrolled_at")?,
                    last_used: get_opt_ts(row, "last_used_at")?,
                    recovery_codes_left: u32::try_from(left).unwrap_or(0),
                })
            })
            .collect()
    }

    /// Records that `user` used TOTP time step `step`. `true` if the step
    /// is later than every step accepted before (on any node); `false`
    /// for a replay, or an older code after a newer one was used.
    pub async fn mfa_use_step(&self, user: &str, step: u64) -> Result<bool, StoreError> {
        let step = i64::try_from(step)
            .map_err(|_| StoreError::Invalid(format!("TOTP step {step} out of range")))?;
        let done = sqlx::query(
            "INSERT INTO mfa_totp_steps (username, step) VALUES ($1, $2) \
             ON CONFLICT (username) DO UPDATE SET step = excluded.step \
             WHERE mfa_totp_steps.step < excluded.step",
        )
        .bind(user)
        .bind(step)
        .execute(self.pool())
        .await
        .ctx("record TOTP step")?;
        Ok(done.rows_affected() == 1)
    }

    /// `user`'s unused recovery codes: `(index, stored hash)`.
    pub async fn mfa_recovery_unused(&self, user: &str) -> Result<Vec<(i64, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT idx, hash FROM mfa_recovery_codes WHERE username = $1 AND used_at IS NULL \
             ORDER BY idx",
        )
        .bind(user)
        .fetch_all(self.pool())
        .await
        .ctx("read recovery codes")?;
        rows.iter()
            .map(|row| Ok((get(row, "idx")?, get(row, "hash")?)))
            .collect()
    }

    /// Marks recovery code `idx` used. `true` if it was unused until now
    /// (two nodes racing on one code: one wins).
    pub async fn mfa_recovery_use(
        &self,
        user: &str,
        idx: i64,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE mfa_recovery_codes SET used_at = $3 \
             WHERE username = $1 AND idx = $2 AND used_at IS NULL",
        )
        .bind(user)
        .bind(idx)
        .bind(ts_text(now)?)
        .execute(self.pool())
        .await
        .ctx("use recovery code")?;
        Ok(done.rows_affected() == 1)
    }

    /// Notes a successful use of `user`'s factor of `kind`.
    pub async fn mfa_touch(
        &self,
        user: &str,
        kind: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE mfa_factors SET last_used_at = $3 WHERE username = $1 AND kind = $2")
            .bind(user)
            .bind(kind)
            .bind(ts_text(now)?)
            .execute(self.pool())
            .await
            .ctx("note second factor use")?;
        Ok(())
    }

    /// Removes `user`'s factors, recovery codes and cached approvals.
    /// `true` if a factor was enrolled.
    pub async fn mfa_reset(&self, user: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let removed = sqlx::query("DELETE FROM mfa_factors WHERE username = $1")
            .bind(user)
            .execute(&mut *tx)
            .await
            .ctx("remove second factor")?
            .rows_affected();
        for sql in [
            "DELETE FROM mfa_recovery_codes WHERE username = $1",
            "DELETE FROM mfa_cache WHERE username = $1",
        ] {
            sqlx::query(sql)
                .bind(user)
                .execute(&mut *tx)
                .await
                .ctx("remove second factor")?;
        }
        tx.commit().await.ctx("commit second factor removal")?;
        Ok(removed > 0)
    }

    /// Caches an approval for (`user`, `fingerprint`, `source`) until
    /// `until`, replacing an earlier one.
    pub async fn mfa_cache_put(
        &self,
        user: &str,
        fingerprint: &str,
        source: &str,
        until: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO mfa_cache (username, fingerprint, source, until) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (username, fingerprint, source) DO UPDATE SET until = excluded.until",
        )
        .bind(user)
        .bind(fingerprint)
        .bind(source)
        .bind(ts_text(until)?)
        .execute(self.pool())
        .await
        .ctx("cache second factor approval")?;
        Ok(())
    }

    /// Whether an approval for (`user`, `fingerprint`, `source`) holds at `now`.
    pub async fn mfa_cache_hit(
        &self,
        user: &str,
        fingerprint: &str,
        source: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT until FROM mfa_cache WHERE username = $1 AND fingerprint = $2 AND source = $3",
        )
        .bind(user)
        .bind(fingerprint)
        .bind(source)
        .fetch_optional(self.pool())
        .await
        .ctx("read second factor approval")?;
        match row {
            Some(row) => Ok(get_ts(&row, "until")? > now),
            None => Ok(false),
        }
    }

    /// Clears `user`'s cached approvals; returns how many there were.
    pub async fn mfa_forget(&self, user: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM mfa_cache WHERE username = $1")
            .bind(user)
            .execute(self.pool())
            .await
            .ctx("clear second factor approvals")?;
        Ok(done.rows_affected())
    }

    /// Lets `user` enroll until `until` under `mfa_self_enroll = false`.
    pub async fn mfa_allow_enroll(
        &self,
        user: &str,
        until: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO mfa_allow_enroll (username, until) VALUES ($1, $2) \
             ON CONFLICT (username) DO UPDATE SET until = excluded.until",
        )
        .bind(user)
        .bind(ts_text(until)?)
        .execute(self.pool())
        .await
        .ctx("allow enrollment")?;
        Ok(())
    }

    /// Whether `user` holds an `allow-enroll` permission at `now`.
    pub async fn mfa_enroll_allowed(
        &self,
        user: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT until FROM mfa_allow_enroll WHERE username = $1")
            .bind(user)
            .fetch_optional(self.pool())
            .await
            .ctx("read enrollment permission")?;
        match row {
            Some(row) => Ok(get_ts(&row, "until")? > now),
            None => Ok(false),
        }
    }
}
