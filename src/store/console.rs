//! What the console's workbench pages read beyond the sessions list
//! (`web`): per-session facts for the list's kind, blocked-command and
//! factor columns, and the Today page's counts. Every query is one index
//! range: `audit_events_session` (session_id, id) for the facts,
//! `sessions_ended` for live sessions, `grants_state` (migration 0019)
//! for pending requests, `lockouts_until` for lockouts and
//! `audit_events_login_pairs` for the first-seen probe (migration 0020).

use std::collections::{HashMap, HashSet};

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

/// Most (user, source) pairs one [`Store::logins_seen`] call probes.
pub const MAX_PROBED_PAIRS: usize = 10_000;

/// [`Store::logins_seen`]'s probe: `$1` user, `$2` source, `[$3, $4)`.
/// The kind is the partial index's literal (migration 0020). SQLite,
/// which keeps no statistics here, would take `audit_events_logins`
/// (kind, ts, ...) and walk the whole window: it is told the index.
fn login_probe_sql(backend: super::Backend) -> &'static str {
    match backend {
        super::Backend::Sqlite => {
            "SELECT 1 AS seen FROM audit_events INDEXED BY audit_events_login_pairs \
             WHERE kind = 'auth.success' AND username = $1 AND source = $2 \
             AND ts >= $3 AND ts < $4 LIMIT 1"
        }
        super::Backend::Postgres => {
            "SELECT 1 AS seen FROM audit_events \
             WHERE kind = 'auth.success' AND username = $1 AND source = $2 \
             AND ts >= $3 AND ts < $4 LIMIT 1"
        }
    }
}

const PENDING_SQL: &str = "SELECT COUNT(*) AS n FROM grants WHERE state = 'pending'";
const LIVE_SQL: &str = "SELECT COUNT(*) AS n FROM sessions WHERE ended_at IS NULL";
/// One range of `lockouts_until` (migration 0020): the table keeps a row
/// for every name that ever failed to log in.
/// Sorted by the caller (few rows: no sort in the plan).
const LOCKOUTS_SQL: &str = "SELECT username, locked_until FROM lockouts WHERE locked_until > $1";

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

    /// Of the (user, source) `pairs`, those with a successful login in
    /// `[since, until)`: one probe of `audit_events_login_pairs`
    /// (migration 0020) per pair, at most [`MAX_PROBED_PAIRS`], so the
    /// cost follows the pairs asked about (a day's logins), not the
    /// logins of the period.
    pub async fn logins_seen(
        &self,
        pairs: &[(String, String)],
        since: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<HashSet<(String, String)>, StoreError> {
        if pairs.len() > MAX_PROBED_PAIRS {
            return Err(StoreError::Invalid(format!(
                "{} login pairs asked about; at most {MAX_PROBED_PAIRS}",
                pairs.len()
            )));
        }
        let (since, until) = (ts_text(since)?, ts_text(until)?);
        let mut seen = HashSet::new();
        for (user, source) in pairs {
            let hit = sqlx::query(login_probe_sql(self.backend()))
                .bind(user)
                .bind(source)
                .bind(&since)
                .bind(&until)
                .fetch_optional(self.pool())
                .await
                .ctx("probe a login pair")?;
            if hit.is_some() {
                seen.insert((user.clone(), source.clone()));
            }
        }
        Ok(seen)
    }

    /// The plans of the Today page's store queries, by name (see
    /// [`Store::plan`]): the pending, live and lockout counts, the login
    /// probe, and the count and list of sessions waiting for review.
    pub async fn today_plans(
        &self,
        now: OffsetDateTime,
    ) -> Result<Vec<(&'static str, Vec<String>)>, StoreError> {
        let now = ts_text(now)?;
        let (waiting_count, waiting_list) = super::sessions::waiting_review_sql(20);
        let mut out = Vec::new();
        for (name, sql, binds) in [
            ("pending", PENDING_SQL.to_owned(), vec![]),
            ("live", LIVE_SQL.to_owned(), vec![]),
            ("lockouts", LOCKOUTS_SQL.to_owned(), vec![now.clone()]),
            (
                "login_probe",
                login_probe_sql(self.backend()).to_owned(),
                vec!["alice".into(), "10.0.0.1".into(), now.clone(), now.clone()],
            ),
            ("waiting_review_count", waiting_count, vec![]),
            ("waiting_review_list", waiting_list, vec![]),
        ] {
            out.push((name, self.plan(&sql, &binds).await?));
        }
        Ok(out)
    }

    /// Pending grant requests, live sessions, and users locked out at `now`.
    pub async fn console_counts(&self, now: OffsetDateTime) -> Result<ConsoleCounts, StoreError> {
        let pending = sqlx::query(PENDING_SQL)
            .fetch_one(self.pool())
            .await
            .ctx("count pending grants")?;
        let live = sqlx::query(LIVE_SQL)
            .fetch_one(self.pool())
            .await
            .ctx("count live sessions")?;
        let rows = sqlx::query(LOCKOUTS_SQL)
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
        lockouts.sort_by(|a, b| a.user.cmp(&b.user));
        Ok(ConsoleCounts {
            pending_grants: get(&pending, "n")?,
            live_sessions: get(&live, "n")?,
            lockouts,
        })
    }
}
