//! Reading the audit log: exports, a session's events, the report's
//! queries (events by time and kind, login groups).
//! May import: the parent (`store::audit`), the store, audit values.

use super::*;

impl Store {
    /// Events with `since <= ts < until`, ordered by id. Loads them all:
    /// for large ranges use [`Store::export_stream`] or [`Store::export_each`].
    pub async fn export(
        &self,
        since: Option<OffsetDateTime>,
        until: Option<OffsetDateTime>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.export_stream(since, until).try_collect().await
    }

    /// Calls `f` for each event with `since <= ts < until`, in id order,
    /// holding one event in memory at a time.
    pub async fn export_each<F>(
        &self,
        since: Option<OffsetDateTime>,
        until: Option<OffsetDateTime>,
        mut f: F,
    ) -> Result<(), StoreError>
    where
        F: FnMut(AuditRecord),
    {
        let mut events = self.export_stream(since, until);
        while let Some(ev) = events.next().await {
            f(ev?);
        }
        Ok(())
    }

    /// The events with `since <= ts < until` as a stream, in id order. The
    /// stream ends after the first error.
    pub fn export_stream(
        &self,
        since: Option<OffsetDateTime>,
        until: Option<OffsetDateTime>,
    ) -> BoxStream<'_, Result<AuditRecord, StoreError>> {
        let bound = |t: Option<OffsetDateTime>, default: &str| match t {
            Some(t) => ts_text(t),
            None => Ok(default.to_string()),
        };
        let (since, until) = match (bound(since, TS_MIN), bound(until, TS_MAX)) {
            (Ok(s), Ok(u)) => (s, u),
            (Err(e), _) | (_, Err(e)) => return stream::once(async { Err(e) }).boxed(),
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT_EVENTS} WHERE ts >= $1 AND ts < $2 ORDER BY id"
        )))
        .bind(since)
        .bind(until)
        .fetch(self.pool());
        records(rows)
    }

    /// Every recording the audit log says was made (`recording.start`),
    /// in id order: its id, cast path under the recordings folder, session
    /// and time. Events whose detail lacks an id are skipped.
    pub async fn recordings_started(&self) -> Result<Vec<RecordingStarted>, StoreError> {
        let rows = sqlx::query(
            "SELECT ts, session_id, detail FROM audit_events WHERE kind = $1 ORDER BY id",
        )
        .bind(crate::audit::EventKind::RecordingStart.as_str())
        .fetch_all(self.pool())
        .await
        .ctx("read recording.start events")?;
        let mut out = Vec::new();
        for row in &rows {
            let detail: String = get(row, "detail")?;
            let detail: serde_json::Value = serde_json::from_str(&detail)
                .map_err(|e| StoreError::Corrupt(format!("recording.start detail: {e}")))?;
            let Some(id) = detail.get("recording").and_then(|v| v.as_str()) else {
                continue;
            };
            out.push(RecordingStarted {
                id: id.to_string(),
                cast: detail
                    .get("cast")
                    .and_then(|v| v.as_str())
                    .map(str::to_string),
                session: get(row, "session_id")?,
                ts: get(row, "ts")?,
            });
        }
        Ok(out)
    }

    /// The first `limit` events of one SSH session, in id order (index
    /// `audit_events_session`, migration 0006): the console's detail page.
    pub async fn session_events(
        &self,
        session: &str,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT_EVENTS} WHERE session_id = $1 ORDER BY id LIMIT $2"
        )))
        .bind(session)
        .bind(limit)
        .fetch(self.pool());
        records(rows).try_collect().await
    }

    /// The events with `since <= ts < until` and a kind among `kinds`, as a
    /// stream in time order (ties by id): what the daily report reads.
    /// Unlike id order, this is the order of the `ts` index, so the
    /// database hands rows over as it walks the index instead of sorting
    /// the whole range first (SQLite builds a temporary B-tree for
    /// `ORDER BY id` over a `ts` range). Events of other kinds are skipped
    /// inside the database: a row handed over costs far more than a row
    /// looked at. The stream ends after the first error.
    pub fn events_by_time<'a>(
        &'a self,
        since: OffsetDateTime,
        until: OffsetDateTime,
        kinds: &[&str],
    ) -> BoxStream<'a, Result<AuditRecord, StoreError>> {
        self.events_of_kinds(events_by_time_sql(kinds.len()), since, until, kinds, false)
    }

    /// What the daily report reads of a day: [`Store::events_by_time`],
    /// except for the `session.start` and `session.end` events of
    /// *settled* sessions, which it leaves out. A session is settled when
    /// its row ended within `[since, until)` and knows whether the session
    /// was flagged (migration 0007): the row, which the report reads too,
    /// then holds everything the report takes from those events (user,
    /// server, account, source, start, end, mode, grant, bytes, exit
    /// status, end reason, flag), so a day of a hundred thousand sessions
    /// crosses from the database as its session rows, not as twice as many
    /// events as well. Sessions still live, cut short by a crashed node,
    /// ending after the range, or written before migration 0007 keep their
    /// events: passing an event the row makes redundant changes nothing
    /// in the report, leaving one out that it needs would. The day's
    /// settled sessions are one range of `sessions_ended`, and kinds and
    /// sessions are filtered inside `audit_events_ts` (migration 0008).
    pub fn report_events<'a>(
        &'a self,
        since: OffsetDateTime,
        until: OffsetDateTime,
        kinds: &[&str],
    ) -> BoxStream<'a, Result<AuditRecord, StoreError>> {
        self.events_of_kinds(report_events_sql(kinds.len()), since, until, kinds, true)
    }

    /// Runs `sql` with the range as `$1, $2`, then the kinds, then, with
    /// `range_again`, the range once more.
    fn events_of_kinds<'a>(
        &'a self,
        sql: String,
        since: OffsetDateTime,
        until: OffsetDateTime,
        kinds: &[&str],
        range_again: bool,
    ) -> BoxStream<'a, Result<AuditRecord, StoreError>> {
        if kinds.is_empty() {
            return stream::empty().boxed();
        }
        let (since, until) = match (ts_text(since), ts_text(until)) {
            (Ok(s), Ok(u)) => (s, u),
            (Err(e), _) | (_, Err(e)) => return stream::once(async { Err(e) }).boxed(),
        };
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(since.clone())
            .bind(until.clone());
        for kind in kinds {
            query = query.bind(kind.to_string());
        }
        if range_again {
            query = query.bind(since).bind(until);
        }
        records(query.fetch(self.pool()))
    }

    /// How many events with `since <= ts < until` have a kind not among
    /// `kinds` (all of them when `kinds` is empty).
    pub async fn count_events_except(
        &self,
        since: OffsetDateTime,
        until: OffsetDateTime,
        kinds: &[&str],
    ) -> Result<u64, StoreError> {
        let mut sql =
            "SELECT COUNT(*) AS n FROM audit_events WHERE ts >= $1 AND ts < $2".to_string();
        if !kinds.is_empty() {
            sql.push_str(&format!(
                " AND kind NOT IN ({})",
                placeholders(3, kinds.len())
            ));
        }
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(ts_text(since)?)
            .bind(ts_text(until)?);
        for kind in kinds {
            query = query.bind(kind.to_string());
        }
        let row = query
            .fetch_one(self.pool())
            .await
            .ctx("count audit events")?;
        let n: i64 = get(&row, "n")?;
        u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("event count {n}")))
    }

    /// Successful logins with `since <= ts < until`: one row per user and
    /// source address with the last such login, ordered by user, then
    /// source (`None` first). Events without a user are left out. Reads
    /// only the `audit_events_logins` index (migration 0003), not the
    /// other events of the period.
    pub async fn logins_between(
        &self,
        since: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Vec<LoginSeen>, StoreError> {
        let rows = sqlx::query(LOGINS_SQL)
            .bind(ts_text(since)?)
            .bind(ts_text(until)?)
            .fetch_all(self.pool())
            .await
            .ctx("read successful logins")?;
        let mut out = rows
            .iter()
            .map(|row| {
                Ok(LoginSeen {
                    user: get(row, "username")?,
                    source: get(row, "source")?,
                    last: get_ts(row, "last")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // Sorted here: the backends disagree on where NULL sorts.
        out.sort_by(|a, b| (&a.user, &a.source).cmp(&(&b.user, &b.source)));
        Ok(out)
    }

    /// The successful logins with `since <= ts < until`, grouped by user
    /// and source address (`None` included): how many, the first (ties by
    /// id) with its session, and the last. Ordered by user, then source
    /// (`None` first). One row per group crosses from the database instead
    /// of one per login; the groups walk the `audit_events_logins` index
    /// (migration 0003), and each group's first session is one look-up in
    /// it (`None` for a group without a user or a source).
    pub async fn login_groups(
        &self,
        since: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Vec<LoginGroup>, StoreError> {
        let rows = sqlx::query(LOGIN_GROUPS_SQL)
            .bind(ts_text(since)?)
            .bind(ts_text(until)?)
            .fetch_all(self.pool())
            .await
            .ctx("group the day's successful logins")?;
        let mut out = rows
            .iter()
            .map(|row| {
                let n: i64 = get(row, "n")?;
                Ok(LoginGroup {
                    user: get(row, "username")?,
                    source: get(row, "source")?,
                    count: u64::try_from(n)
                        .map_err(|_| StoreError::Corrupt(format!("login count {n}")))?,
                    first: get_ts(row, "first")?,
                    first_session: get(row, "session_id")?,
                    last: get_ts(row, "last")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // Sorted here: the backends disagree on where NULL sorts.
        out.sort_by(|a, b| (&a.user, &a.source).cmp(&(&b.user, &b.source)));
        Ok(out)
    }
}

/// A `recording.start` event: a cast the bastion began writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingStarted {
    pub id: String,
    /// `YYYY-MM-DD/ID.cast`, under the recordings folder.
    pub cast: Option<String>,
    pub session: Option<String>,
    pub ts: String,
}

/// The events of a time range (`$1 <= ts < $2`) of `kinds` kinds (`$3`..)
/// in time order.
pub(super) fn events_by_time_sql(kinds: usize) -> String {
    format!(
        "{SELECT_EVENTS} WHERE ts >= $1 AND ts < $2 AND kind IN ({}) ORDER BY ts, id",
        placeholders(3, kinds)
    )
}

/// [`Store::report_events`]: the events of a time range (`$1 <= ts < $2`)
/// of `kinds` kinds (`$3`..), in time order, less the session events of
/// sessions settled in the range (the range again after the kinds).
pub(super) fn report_events_sql(kinds: usize) -> String {
    let from = kinds + 3;
    let to = kinds + 4;
    format!(
        "{SELECT_EVENTS} WHERE ts >= $1 AND ts < $2 AND kind IN ({}) \
         AND (kind NOT IN ('session.start', 'session.end') OR session_id IS NULL \
         OR session_id NOT IN (SELECT s.id FROM sessions s \
         WHERE s.ended_at >= ${from} AND s.ended_at < ${to} AND s.flagged IS NOT NULL)) \
         ORDER BY ts, id",
        placeholders(3, kinds)
    )
}

/// `$first, $first+1, ..` for `n` parameters.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The query behind [`Store::logins_between`]. The kind is a literal, not a
/// parameter: only then may either database use the partial index
/// `audit_events_logins` (`WHERE kind = 'auth.success'`). The result has
/// one row per distinct (user, source) of the period, far fewer than the
/// logins, hence `fetch_all`.
pub(super) const LOGINS_SQL: &str = "SELECT username, source, MAX(ts) AS last FROM audit_events \
     WHERE kind = 'auth.success' AND ts >= $1 AND ts < $2 AND username IS NOT NULL \
     GROUP BY username, source";

/// The query behind [`Store::login_groups`]. The kind is a literal so that
/// the partial index `audit_events_logins` serves both the grouping and the
/// look-up of each group's first login. That look-up compares with `=`, so
/// a group without a user or a source gets no session (the report reads a
/// first login's session only where it has both).
const LOGIN_GROUPS_SQL: &str = "SELECT g.username, g.source, g.n, g.first, g.last, \
     (SELECT f.session_id FROM audit_events f WHERE f.kind = 'auth.success' \
     AND f.ts = g.first AND f.username = g.username AND f.source = g.source \
     ORDER BY f.id LIMIT 1) AS session_id \
     FROM (SELECT username, source, COUNT(*) AS n, MIN(ts) AS first, MAX(ts) AS last \
     FROM audit_events WHERE kind = 'auth.success' AND ts >= $1 AND ts < $2 \
     GROUP BY username, source) g";
