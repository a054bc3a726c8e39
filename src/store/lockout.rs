//! Per-user authentication state shared by every node: consecutive
//! failures, lockouts, and the source addresses each user has been seen
//! from. It lives in the database so a user locked out on one node is
//! locked out on all of them.

use time::OffsetDateTime;

use super::{Ctx, Store, StoreError, get, get_opt_ts, now_utc, ts_text};

impl Store {
    /// Counts one more failed authentication for `user`; returns the
    /// consecutive failures so far (this one included).
    pub async fn auth_failure(&self, user: &str, now: OffsetDateTime) -> Result<u32, StoreError> {
        let row = sqlx::query(
            "INSERT INTO lockouts (username, failures, last_failure) VALUES ($1, 1, $2) \
             ON CONFLICT (username) DO UPDATE \
             SET failures = lockouts.failures + 1, last_failure = excluded.last_failure \
             RETURNING failures",
        )
        .bind(user)
        .bind(ts_text(now)?)
        .fetch_one(self.pool())
        .await
        .ctx("count authentication failure")?;
        let n: i64 = get(&row, "failures")?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// A successful authentication: the consecutive-failure count restarts.
    pub async fn auth_success(&self, user: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE lockouts SET failures = 0 WHERE username = $1")
            .bind(user)
            .execute(self.pool())
            .await
            .ctx("reset authentication failures")?;
        Ok(())
    }

    /// Locks `user` out until `until`. The failure count restarts, so once
    /// the lockout ends the user has the full number of attempts again.
    /// A lockout also clears the user's cached second-factor approvals.
    pub async fn lock_user(&self, user: &str, until: OffsetDateTime) -> Result<(), StoreError> {
        self.mfa_forget(user).await?;
        sqlx::query(
            "INSERT INTO lockouts (username, failures, locked_until) VALUES ($1, 0, $2) \
             ON CONFLICT (username) DO UPDATE \
             SET failures = 0, locked_until = excluded.locked_until",
        )
        .bind(user)
        .bind(ts_text(until)?)
        .execute(self.pool())
        .await
        .ctx("lock user")?;
        Ok(())
    }

    /// When `user`'s lockout ends, or `None` if they are not locked out
    /// (never were, were unlocked, or the lockout has expired).
    pub async fn locked_until(&self, user: &str) -> Result<Option<OffsetDateTime>, StoreError> {
        let row = sqlx::query("SELECT locked_until FROM lockouts WHERE username = $1")
            .bind(user)
            .fetch_optional(self.pool())
            .await
            .ctx("read lockout")?;
        let Some(row) = row else {
            return Ok(None);
        };
        let until = get_opt_ts(&row, "locked_until")?;
        Ok(until.filter(|t| *t > now_utc()))
    }

    /// One failure that counts toward the lockout (a wrong second-factor
    /// code after a verified key: never anything a client can send
    /// without the private key). Counts it and, at the `after`-th
    /// consecutive failure, locks `user` until `now + lock_for`. Returns
    /// the lockout set, `(failures, until)`, or `None` while under the
    /// limit.
    pub async fn counted_failure(
        &self,
        user: &str,
        now: OffsetDateTime,
        after: u32,
        lock_for: time::Duration,
    ) -> Result<Option<(u32, OffsetDateTime)>, StoreError> {
        let n = self.auth_failure(user, now).await?;
        if n < after {
            return Ok(None);
        }
        let until = now + lock_for;
        self.lock_user(user, until).await?;
        Ok(Some((n, until)))
    }

    /// Lifts `user`'s lockout and resets their failure count. `true` if
    /// they were locked out.
    pub async fn unlock(&self, user: &str) -> Result<bool, StoreError> {
        let was_locked = self.locked_until(user).await?.is_some();
        sqlx::query("UPDATE lockouts SET failures = 0, locked_until = NULL WHERE username = $1")
            .bind(user)
            .execute(self.pool())
            .await
            .ctx("unlock user")?;
        Ok(was_locked)
    }
}
