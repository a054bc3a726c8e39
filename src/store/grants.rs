//! Grants as stored: one row per grant, its lists (accounts, ports, source
//! CIDRs) as JSON text. The rules for what a grant allows live in
//! `grant_types`; this file only keeps them.

use sqlx::any::AnyRow;
use time::OffsetDateTime;

use super::{Ctx, Store, StoreError, get, get_opt_ts, get_ts, opt_ts_text, ts_text};
use crate::grant_types::{Grant, GrantState};

const GRANT_COLUMNS: &str = "id, username, server, accounts, ports, from_cidrs, reason, state, \
     requested_by, approved_by, decided_by, decision_note, requested_at, decided_at, \
     duration_secs, expires_at";

fn json_list<T: serde::de::DeserializeOwned>(
    row: &AnyRow,
    col: &'static str,
    id: i64,
) -> Result<Vec<T>, StoreError> {
    let text: String = get(row, col)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("grant {id}: {col}: {e}")))
}

fn to_json<T: serde::Serialize>(v: &T, what: &str) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Invalid(format!("grant {what}: {e}")))
}

/// [`Store::grants_active`]'s query; `$1` is now. Unsorted: a sort of
/// the union would show in the plan; the few rows are sorted after.
fn grants_active_sql() -> String {
    format!(
        "SELECT {GRANT_COLUMNS} FROM grants WHERE state = 'approved' AND expires_at > $1 \
         UNION ALL SELECT {GRANT_COLUMNS} FROM grants \
         WHERE state = 'approved' AND expires_at IS NULL"
    )
}

fn grant_from_row(row: &AnyRow) -> Result<Grant, StoreError> {
    let id: i64 = get(row, "id")?;
    let state: String = get(row, "state")?;
    let state = GrantState::parse(&state)
        .ok_or_else(|| StoreError::Corrupt(format!("grant {id}: unknown state {state:?}")))?;
    Ok(Grant {
        id,
        user: get(row, "username")?,
        server: get(row, "server")?,
        accounts: json_list(row, "accounts", id)?,
        ports: json_list(row, "ports", id)?,
        from: json_list(row, "from_cidrs", id)?,
        reason: get(row, "reason")?,
        state,
        requested_by: get(row, "requested_by")?,
        approved_by: get(row, "approved_by")?,
        decided_by: get(row, "decided_by")?,
        decision_note: get(row, "decision_note")?,
        requested_at: get_ts(row, "requested_at")?,
        decided_at: get_opt_ts(row, "decided_at")?,
        duration_secs: get(row, "duration_secs")?,
        expires_at: get_opt_ts(row, "expires_at")?,
    })
}

impl Store {
    /// Stores a new grant (its `id` is ignored) and returns the new id.
    pub async fn grant_insert(&self, g: &Grant) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "INSERT INTO grants (username, server, accounts, ports, from_cidrs, reason, state, \
             requested_by, approved_by, decided_by, decision_note, requested_at, decided_at, \
             duration_secs, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             RETURNING id",
        )
        .bind(&g.user)
        .bind(&g.server)
        .bind(to_json(&g.accounts, "accounts")?)
        .bind(to_json(&g.ports, "ports")?)
        .bind(to_json(&g.from, "from")?)
        .bind(&g.reason)
        .bind(g.state.as_str())
        .bind(&g.requested_by)
        .bind(g.approved_by.as_deref())
        .bind(g.decided_by.as_deref())
        .bind(g.decision_note.as_deref())
        .bind(ts_text(g.requested_at)?)
        .bind(opt_ts_text(g.decided_at)?)
        .bind(g.duration_secs)
        .bind(opt_ts_text(g.expires_at)?)
        .fetch_one(self.pool())
        .await
        .ctx("store grant")?;
        get(&row, "id")
    }

    pub async fn grant_get(&self, id: i64) -> Result<Option<Grant>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {GRANT_COLUMNS} FROM grants WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await
        .ctx("read grant")?;
        row.as_ref().map(grant_from_row).transpose()
    }

    /// Saves a decision on grant `g.id`: its state, approver, decider,
    /// note, decision time and expiry. The request fields never change.
    pub async fn grant_update(&self, g: &Grant) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE grants SET state = $1, approved_by = $2, decided_by = $3, \
             decision_note = $4, decided_at = $5, expires_at = $6 WHERE id = $7",
        )
        .bind(g.state.as_str())
        .bind(g.approved_by.as_deref())
        .bind(g.decided_by.as_deref())
        .bind(g.decision_note.as_deref())
        .bind(opt_ts_text(g.decided_at)?)
        .bind(opt_ts_text(g.expires_at)?)
        .bind(g.id)
        .execute(self.pool())
        .await
        .ctx("update grant")?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("grant {}", g.id)));
        }
        Ok(())
    }

    /// Like [`Store::grant_update`], but only if the stored grant is still
    /// in state `expected`: `false` when someone else decided first (two
    /// approvers at once, a revoke racing the expiry job).
    pub async fn grant_update_if(
        &self,
        g: &Grant,
        expected: GrantState,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE grants SET state = $1, approved_by = $2, decided_by = $3, \
             decision_note = $4, decided_at = $5, expires_at = $6 WHERE id = $7 AND state = $8",
        )
        .bind(g.state.as_str())
        .bind(g.approved_by.as_deref())
        .bind(g.decided_by.as_deref())
        .bind(g.decision_note.as_deref())
        .bind(opt_ts_text(g.decided_at)?)
        .bind(opt_ts_text(g.expires_at)?)
        .bind(g.id)
        .bind(expected.as_str())
        .execute(self.pool())
        .await
        .ctx("update grant")?;
        Ok(done.rows_affected() > 0)
    }

    /// All grants, or one user's, in id order.
    pub async fn grants_list(&self, user: Option<&str>) -> Result<Vec<Grant>, StoreError> {
        let rows = match user {
            Some(u) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {GRANT_COLUMNS} FROM grants WHERE username = $1 ORDER BY id"
                )))
                .bind(u)
                .fetch_all(self.pool())
                .await
            }
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {GRANT_COLUMNS} FROM grants ORDER BY id"
                )))
                .fetch_all(self.pool())
                .await
            }
        }
        .ctx("list grants")?;
        rows.iter().map(grant_from_row).collect()
    }

    /// The pending requests, in id order (index `grants_state`): what a
    /// directory sync decides again.
    pub async fn grants_pending(&self) -> Result<Vec<Grant>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {GRANT_COLUMNS} FROM grants WHERE state = $1 ORDER BY id"
        )))
        .bind(GrantState::Pending.as_str())
        .fetch_all(self.pool())
        .await
        .ctx("list pending grants")?;
        rows.iter().map(grant_from_row).collect()
    }

    /// The grants active at `now` ([`Grant::is_active`]: approved and not
    /// expired), in id order: two ranges of `grants_state_expires`, not
    /// every grant ever requested (the Today page reads these per load).
    pub async fn grants_active(&self, now: OffsetDateTime) -> Result<Vec<Grant>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(grants_active_sql()))
            .bind(ts_text(now)?)
            .fetch_all(self.pool())
            .await
            .ctx("list active grants")?;
        let mut out = rows
            .iter()
            .map(grant_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        out.retain(|g| g.is_active(now));
        out.sort_by_key(|g| g.id);
        Ok(out)
    }

    /// The plan of [`Store::grants_active`]'s query (see [`Store::plan`]).
    pub async fn grants_active_plan(&self, now: OffsetDateTime) -> Result<Vec<String>, StoreError> {
        self.plan(&grants_active_sql(), &[ts_text(now)?]).await
    }

    /// Every grant of `user` in any state, in id order; callers decide
    /// which are active with [`Grant::is_active`].
    pub async fn grants_for(&self, user: &str) -> Result<Vec<Grant>, StoreError> {
        self.grants_list(Some(user)).await
    }

    /// Approved grants whose expiry is at or before `now` become expired;
    /// returns them (as now stored) so the caller audits `grant.expired`.
    /// Each grant is returned by exactly one caller, even with several
    /// nodes running this at once.
    pub async fn grants_expire_due(&self, now: OffsetDateTime) -> Result<Vec<Grant>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE grants SET state = $1 \
             WHERE state = $2 AND expires_at IS NOT NULL AND expires_at <= $3 \
             RETURNING {GRANT_COLUMNS}"
        )))
        .bind(GrantState::Expired.as_str())
        .bind(GrantState::Approved.as_str())
        .bind(ts_text(now)?)
        .fetch_all(self.pool())
        .await
        .ctx("expire grants")?;
        let mut expired = rows
            .iter()
            .map(grant_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        expired.sort_by_key(|g| g.id);
        Ok(expired)
    }
}
