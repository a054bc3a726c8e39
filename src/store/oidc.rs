//! Single sign-ons under way (migration 0021): what `/login/oidc` began
//! and its callback must find, on whichever node the provider's redirect
//! lands (`web::oidc` holds the flow; this file only the rows).
//!
//! - The key is the SHA-256 of the `state`, and the binding cookie and the
//!   nonce are kept as SHA-256 too: a copy of the database starts or
//!   finishes no sign-in. The PKCE verifier has to be sent to the
//!   provider, so it is kept as it is (as `web_sessions` keeps its CSRF
//!   token), blanked when the sign-in is taken, and gone with its row
//!   once the sign-in has expired.
//! - Taking is one guarded `UPDATE ... RETURNING` in a write transaction:
//!   of two callbacks with one state, on one node or two, exactly one
//!   wins; the row stays, marked used, until it expires, so a replay is
//!   told from an unknown state.
//! - Expired rows are refused and deleted: by the take that finds one, and
//!   all of them whenever a sign-in begins (as links and console sessions
//!   are pruned at insert).

use time::OffsetDateTime;

use super::{Ctx, Store, StoreError, get, get_opt_ts, get_ts, ts_text};
use crate::secret::Secret;

/// A sign-in being begun.
#[derive(Debug, Clone)]
pub struct NewSignIn {
    /// SHA-256 (hex) of the `state` sent to the provider.
    pub state_hash: String,
    /// SHA-256 (hex) of the binding cookie's value.
    pub binding_hash: String,
    /// SHA-256 (hex) of the nonce sent to the provider.
    pub nonce_hash: String,
    pub pkce_verifier: Secret,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// What taking a sign-in found. Only `Taken` goes on to the provider.
#[derive(Debug, Clone)]
pub enum SignInTake {
    Taken {
        nonce_hash: String,
        pkce_verifier: Secret,
    },
    /// No such state (never begun here, tampered, or swept).
    Unknown,
    /// Taken already, by this node or another.
    Used,
    /// Begun too long ago (the row is deleted).
    Expired,
    /// Not the browser that began it (no binding, or another one); the
    /// sign-in stays for the browser that did.
    OtherBrowser,
}

impl Store {
    /// Stores a sign-in being begun, after deleting the expired ones,
    /// unless `max` are under way already (every node's together): then
    /// `false` and nothing is stored. Concurrent begins on PostgreSQL may
    /// pass the count together, so `max` can be overshot by as many.
    pub async fn oidc_pending_insert(&self, s: &NewSignIn, max: u64) -> Result<bool, StoreError> {
        let now = ts_text(s.created_at)?;
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM oidc_pending WHERE expires_at <= $1")
            .bind(&now)
            .execute(&mut *tx)
            .await
            .ctx("prune sign-ins under way")?;
        let row = sqlx::query("SELECT COUNT(*) AS n FROM oidc_pending")
            .fetch_one(&mut *tx)
            .await
            .ctx("count sign-ins under way")?;
        let n: i64 = get(&row, "n")?;
        if u64::try_from(n).unwrap_or(u64::MAX) >= max {
            tx.commit().await.ctx("commit sign-in prune")?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO oidc_pending \
             (state_hash, binding_hash, nonce_hash, pkce_verifier, created_at, expires_at, used_at) \
             VALUES ($1, $2, $3, $4, $5, $6, NULL)",
        )
        .bind(&s.state_hash)
        .bind(&s.binding_hash)
        .bind(&s.nonce_hash)
        .bind(s.pkce_verifier.expose())
        .bind(&now)
        .bind(ts_text(s.expires_at)?)
        .execute(&mut *tx)
        .await
        .ctx("store a sign-in under way")?;
        tx.commit().await.ctx("commit a sign-in under way")?;
        Ok(true)
    }

    /// Takes the sign-in of `state_hash` for the browser whose binding
    /// cookie hashes to `binding_hash`, once, before it expires. The
    /// guarded UPDATE is the decision, so two callbacks on two nodes
    /// cannot both win; the verifier is blanked in the same transaction.
    pub async fn oidc_pending_take(
        &self,
        state_hash: &str,
        binding_hash: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<SignInTake, StoreError> {
        let now_t = ts_text(now)?;
        let mut tx = self.begin_write().await?;
        if let Some(binding) = binding_hash {
            let won = sqlx::query(
                "UPDATE oidc_pending SET used_at = $1 \
                 WHERE state_hash = $2 AND binding_hash = $3 AND used_at IS NULL \
                 AND expires_at > $4 \
                 RETURNING nonce_hash, pkce_verifier",
            )
            .bind(&now_t)
            .bind(state_hash)
            .bind(binding)
            .bind(&now_t)
            .fetch_optional(&mut *tx)
            .await
            .ctx("take a sign-in under way")?;
            if let Some(row) = won {
                let nonce_hash: String = get(&row, "nonce_hash")?;
                let verifier: String = get(&row, "pkce_verifier")?;
                sqlx::query("UPDATE oidc_pending SET pkce_verifier = '' WHERE state_hash = $1")
                    .bind(state_hash)
                    .execute(&mut *tx)
                    .await
                    .ctx("blank a taken sign-in's verifier")?;
                tx.commit().await.ctx("commit a taken sign-in")?;
                return Ok(SignInTake::Taken {
                    nonce_hash,
                    pkce_verifier: Secret::new(verifier),
                });
            }
        }
        // Why not, in the order the callback reports it.
        let row = sqlx::query("SELECT used_at, expires_at FROM oidc_pending WHERE state_hash = $1")
            .bind(state_hash)
            .fetch_optional(&mut *tx)
            .await
            .ctx("read a sign-in under way")?;
        let outcome = match row {
            None => SignInTake::Unknown,
            Some(row) => {
                if get_opt_ts(&row, "used_at")?.is_some() {
                    SignInTake::Used
                } else if get_ts(&row, "expires_at")? <= now {
                    sqlx::query("DELETE FROM oidc_pending WHERE state_hash = $1")
                        .bind(state_hash)
                        .execute(&mut *tx)
                        .await
                        .ctx("delete an expired sign-in")?;
                    SignInTake::Expired
                } else {
                    SignInTake::OtherBrowser
                }
            }
        };
        tx.commit().await.ctx("commit a refused sign-in")?;
        Ok(outcome)
    }

    /// Sign-ins under way (begun, not expired), taken ones included.
    pub async fn oidc_pending_count(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM oidc_pending WHERE expires_at > $1")
            .bind(ts_text(now)?)
            .fetch_one(self.pool())
            .await
            .ctx("count sign-ins under way")?;
        let n: i64 = get(&row, "n")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
