//! What the console's workbench pages read beyond the sessions list
//! (`web`): per-session facts for the list's kind, blocked-command and
//! factor columns, and the Today page's counts. Every query is one index
//! range: `audit_events_session` (session_id, id) for the facts,
//! `sessions_ended` for live sessions, `grants_state` (migration 0019)
//! for pending requests; `lockouts` has one row per user.

use std::collections::HashMap;

use time::OffsetDateTime;

use super::{Ctx, Store, StoreError, get, get_opt_ts, ts_text};

/// The event kinds that say what a session was (see [`SessionFacts`]).
const FACT_KINDS: [&str; 6] = [
    "auth.success",
    "access.denied",
    "exec",
    "command.blocked",
    "forward.open",
    "jump.open",
];

/// Most sessions one [`Store::session_facts`] call reads (a page is 50).
pub const MAX_FACT_SESSIONS: usize = 500;

/// What a session's audit events say about it: how many of each kind,
/// and the detail of the first one of each.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionFacts {
    /// Kind -> (count, the first event's detail).
    pub kinds: HashMap<String, (i64, serde_json::Value)>,
}

impl SessionFacts {
    pub fn count(&self, kind: &str) -> i64 {
        self.kinds.get(kind).map_or(0, |(n, _)| *n)
    }
    /// The detail of the session's first event of `kind`.
    pub fn first(&self, kind: &str) -> Option<&serde_json::Value> {
        self.kinds.get(kind).map(|(_, d)| d)
    }
}

/// A user locked out now.
#[derive(Debug, Clone, PartialEq)]
pub struct Lockout {
    pub user: String,
    pub until: OffsetDateTime,
}

/// The Today page's counts that the store answers.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsoleCounts {
    pub pending_grants: i64,
    pub live_sessions: i64,
    pub lockouts: Vec<Lockout>,
}

fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// [`SessionFacts`] of each session in `ids` (at most
    /// [`MAX_FACT_SESSIONS`]); a session without such events is absent.
    /// Two queries whatever the number of sessions: counts and first ids
    /// grouped by session and kind, then those first events' details.
    pub async fn session_facts(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, SessionFacts>, StoreError> {
        let mut out: HashMap<String, SessionFacts> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        if ids.len() > MAX_FACT_SESSIONS {
            return Err(StoreError::Invalid(format!(
                "facts of {} sessions asked for; at most {MAX_FACT_SESSIONS}",
                ids.len()
            )));
        }
        let kinds = FACT_KINDS
            .iter()
            .map(|k| format!("'{k}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT session_id, kind, COUNT(*) AS n, MIN(id) AS first_id FROM audit_events \
             WHERE session_id IN ({}) AND kind IN ({kinds}) GROUP BY session_id, kind",
            placeholders(1, ids.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in ids {
            q = q.bind(id);
        }
        let rows = q.fetch_all(self.pool()).await.ctx("read session facts")?;
        let mut firsts: HashMap<i64, (String, String, i64)> = HashMap::new();
        for r in &rows {
            let session: String = get(r, "session_id")?;
            let kind: String = get(r, "kind")?;
            let n: i64 = get(r, "n")?;
            let first: i64 = get(r, "first_id")?;
            firsts.insert(first, (session, kind, n));
        }
        if firsts.is_empty() {
            return Ok(out);
        }
        let first_ids: Vec<i64> = firsts.keys().copied().collect();
        let sql = format!(
            "SELECT id, detail FROM audit_events WHERE id IN ({})",
            placeholders(1, first_ids.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in &first_ids {
            q = q.bind(*id);
        }
        let rows = q.fetch_all(self.pool()).await.ctx("read session facts")?;
        for r in &rows {
            let id: i64 = get(r, "id")?;
            let detail: String = get(r, "detail")?;
            let detail = serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null);
            if let Some((session, kind, n)) = firsts.remove(&id) {
                out.entry(session)
                    .or_default()
                    .kinds
                    .insert(kind, (n, detail));
            }
        }
        Ok(out)
    }

    /// Pending grant requests, live sessions, and users locked out at `now`.
    pub async fn console_counts(&self, now: OffsetDateTime) -> Result<ConsoleCounts, StoreError> {
        let pending = sqlx::query("SELECT COUNT(*) AS n FROM grants WHERE state = 'pending'")
            .fetch_one(self.pool())
            .await
            .ctx("count pending grants")?;
        let live = sqlx::query("SELECT COUNT(*) AS n FROM sessions WHERE ended_at IS NULL")
            .fetch_one(self.pool())
            .await
            .ctx("count live sessions")?;
        let rows = sqlx::query(
            "SELECT username, locked_until FROM lockouts WHERE locked_until > $1 \
             ORDER BY username",
        )
        .bind(ts_text(now)?)
        .fetch_all(self.pool())
        .await
        .ctx("list lockouts")?;
        let mut lockouts = Vec::new();
        for r in &rows {
            if let Some(until) = get_opt_ts(r, "locked_until")? {
                lockouts.push(Lockout {
                    user: get(r, "username")?,
                    until,
                });
            }
        }
        Ok(ConsoleCounts {
            pending_grants: get(&pending, "n")?,
            live_sessions: get(&live, "n")?,
            lockouts,
        })
    }
}
