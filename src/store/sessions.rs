//! Sessions: one row per SSH session, live while `ended_at` is NULL. A kill
//! request is a flag on the row: any node's CLI sets it, the node running
//! the session polls [`Store::kill_requests`] and ends it.

use sqlx::any::AnyRow;
use time::OffsetDateTime;

use super::audit::TS_MAX;
use super::{
    Ctx, SessionRow, Store, StoreError, get, get_opt_ts, get_ts, now_utc, opt_ts_text, ts_text,
};

pub(super) const SESSION_COLUMNS: &str = "id, username, server, account, source, node, started_at, \
     ended_at, mode, grant_id, recorded, bytes_up, bytes_down, exit_status, end_reason, flagged, \
     review";

/// The review state of a session's recordings, as the `review` column
/// (migration 0022) holds it: the recording module's review states
/// (`crate::recording::ReviewState`), which this layer does not import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SessionReview {
    Unreviewed,
    Reviewed,
    Flagged,
}

impl SessionReview {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionReview::Unreviewed => "unreviewed",
            SessionReview::Reviewed => "reviewed",
            SessionReview::Flagged => "flagged",
        }
    }

    /// The column's text; `None` for NULL and for text this version does
    /// not know.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "unreviewed" => Some(SessionReview::Unreviewed),
            "reviewed" => Some(SessionReview::Reviewed),
            "flagged" => Some(SessionReview::Flagged),
            _ => None,
        }
    }
}

/// Most rows [`Store::sessions_waiting_review`] lists.
pub const REVIEW_LISTED_MAX: usize = 1000;

/// Recorded sessions waiting for review (see
/// [`Store::sessions_waiting_review`]).
#[derive(Debug, Clone, PartialEq)]
pub struct WaitingReview {
    /// All of them.
    pub total: u64,
    /// The oldest, oldest first.
    pub oldest: Vec<SessionRow>,
}

/// The oldest sessions waiting for review, oldest first: one range of the
/// partial index `sessions_waiting_review` (migration 0022), which names
/// the state as this literal.
pub(super) const WAITING_REVIEW_SQL: &str = "FROM sessions WHERE review = 'unreviewed'";

/// The count of the sessions waiting for review and the list of the
/// oldest `limit` (at most [`REVIEW_LISTED_MAX`]), as the Today page runs
/// them (and `Store::today_plans` explains them).
pub(super) fn waiting_review_sql(limit: usize) -> (String, String) {
    (
        format!("SELECT COUNT(*) {WAITING_REVIEW_SQL}"),
        format!(
            "SELECT {SESSION_COLUMNS} {WAITING_REVIEW_SQL} ORDER BY started_at, id LIMIT {}",
            limit.min(REVIEW_LISTED_MAX)
        ),
    )
}

/// The sessions overlapping `[$1, $2)`, in three disjoint parts, each one
/// index range: begun during the range; begun before it and ended since
/// its start (`sessions_ended`, migration 0004); begun before it and not
/// ended. The one condition `started_at < to AND (ended_at IS NULL OR
/// ended_at >= from)` would walk every session ever begun before `to`. The
/// upper bound on `ended_at` always holds: it makes SQLite, which keeps no
/// statistics here, take the `ended_at` index rather than `started_at`.
/// Parameters: from, to, from, from, from, [`TS_MAX`], from.
fn sessions_between_sql() -> String {
    format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE started_at >= $1 AND started_at < $2 \
         AND (ended_at IS NULL OR ended_at >= $3) \
         UNION ALL SELECT {SESSION_COLUMNS} FROM sessions \
         WHERE started_at < $4 AND ended_at >= $5 AND ended_at <= $6 \
         UNION ALL SELECT {SESSION_COLUMNS} FROM sessions \
         WHERE started_at < $7 AND ended_at IS NULL \
         ORDER BY started_at, id"
    )
}

/// A session's duration in whole milliseconds as SQL, from its
/// `started_at` to `end` (an SQL expression of the end's text): the
/// `duration_ms` column (migration 0020) that the list by duration walks.
pub(super) fn duration_ms_sql(backend: super::Backend, end: &str) -> String {
    match backend {
        super::Backend::Sqlite => format!(
            "CAST(ROUND((julianday({end}) - julianday(started_at)) * 86400000.0) AS INTEGER)"
        ),
        super::Backend::Postgres => format!(
            "CAST(ROUND(EXTRACT(EPOCH FROM (CAST({end} AS TIMESTAMPTZ) \
             - CAST(started_at AS TIMESTAMPTZ))) * 1000) AS BIGINT)"
        ),
    }
}

pub(super) fn session_from_row(row: &AnyRow) -> Result<SessionRow, StoreError> {
    let recorded: i64 = get(row, "recorded")?;
    let flagged: Option<i64> = get(row, "flagged")?;
    let review: Option<String> = get(row, "review")?;
    Ok(SessionRow {
        id: get(row, "id")?,
        user: get(row, "username")?,
        server: get(row, "server")?,
        account: get(row, "account")?,
        source: get(row, "source")?,
        node: get(row, "node")?,
        started_at: get_ts(row, "started_at")?,
        ended_at: get_opt_ts(row, "ended_at")?,
        mode: get(row, "mode")?,
        grant_id: get(row, "grant_id")?,
        recorded: recorded != 0,
        bytes_up: get(row, "bytes_up")?,
        bytes_down: get(row, "bytes_down")?,
        exit_status: get(row, "exit_status")?,
        end_reason: get(row, "end_reason")?,
        flagged: flagged.map(|f| f != 0),
        review: review.as_deref().and_then(SessionReview::parse),
    })
}

impl Store {
    /// Records a new session. Its id must be new.
    pub async fn session_start(&self, s: &SessionRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id, username, server, account, source, node, started_at, \
             ended_at, mode, grant_id, recorded, bytes_up, bytes_down, exit_status, end_reason, \
             flagged, kill_requested, duration_ms, review) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, 0, $17, \
             $18)",
        )
        .bind(&s.id)
        .bind(&s.user)
        .bind(s.server.as_deref())
        .bind(s.account.as_deref())
        .bind(&s.source)
        .bind(&s.node)
        .bind(ts_text(s.started_at)?)
        .bind(opt_ts_text(s.ended_at)?)
        .bind(s.mode.as_deref())
        .bind(s.grant_id)
        .bind(i64::from(s.recorded))
        .bind(s.bytes_up)
        .bind(s.bytes_down)
        .bind(s.exit_status)
        .bind(s.end_reason.as_deref())
        .bind(s.flagged.map(i64::from))
        .bind(s.ended_at.map(|e| {
            i64::try_from((e - s.started_at).whole_milliseconds()).unwrap_or(i64::MAX)
        }))
        .bind(s.review.map(SessionReview::as_str))
        .execute(self.pool())
        .await
        .ctx("record session start")?;
        Ok(())
    }

    /// Sets the review state of session `id`'s recordings (see
    /// [`SessionReview`]): when one of them begins (unreviewed) and when
    /// one is reviewed. `false` when no such session exists.
    pub async fn session_review_set(
        &self,
        id: &str,
        review: Option<SessionReview>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE sessions SET review = $1 WHERE id = $2")
            .bind(review.map(SessionReview::as_str))
            .bind(id)
            .execute(self.pool())
            .await
            .ctx("record session review state")?;
        Ok(done.rows_affected() > 0)
    }

    /// Sets session `id`'s review state to `to` if it is still `from`:
    /// what the start-up reconciliation writes, so that a review the
    /// console records meanwhile is not overwritten. `true` if changed.
    pub async fn session_review_swap(
        &self,
        id: &str,
        from: Option<SessionReview>,
        to: Option<SessionReview>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET review = $1 WHERE id = $2 AND COALESCE(review, '') = $3",
        )
        .bind(to.map(SessionReview::as_str))
        .bind(id)
        .bind(from.map_or("", SessionReview::as_str))
        .execute(self.pool())
        .await
        .ctx("reconcile session review state")?;
        Ok(done.rows_affected() > 0)
    }

    /// The review state of each of these sessions (those that exist),
    /// read by primary key in batches.
    pub async fn session_reviews(
        &self,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, Option<SessionReview>>, StoreError> {
        let mut out = std::collections::HashMap::new();
        for chunk in ids.chunks(500) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT id, review FROM sessions WHERE id IN ({})",
                marks.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id);
            }
            let rows = q
                .fetch_all(self.pool())
                .await
                .ctx("read session review states")?;
            for r in &rows {
                let review: Option<String> = get(r, "review")?;
                out.insert(
                    get(r, "id")?,
                    review.as_deref().and_then(SessionReview::parse),
                );
            }
        }
        Ok(out)
    }

    /// Recorded sessions waiting for review: how many (one COUNT) and the
    /// oldest `limit` (at most [`REVIEW_LISTED_MAX`]), oldest first (one
    /// LIMIT): each one range of the partial index of migration 0022.
    pub async fn sessions_waiting_review(&self, limit: usize) -> Result<WaitingReview, StoreError> {
        let (count, list) = waiting_review_sql(limit);
        let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count))
            .fetch_one(self.pool())
            .await
            .ctx("count sessions waiting for review")?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(list))
            .fetch_all(self.pool())
            .await
            .ctx("list sessions waiting for review")?;
        Ok(WaitingReview {
            total: u64::try_from(total).unwrap_or(0),
            oldest: rows
                .iter()
                .map(session_from_row)
                .collect::<Result<_, _>>()?,
        })
    }

    /// This node's sessions marked unreviewed that ended before `before`,
    /// ids only: what the start-up reconciliation
    /// checks against the recordings on disk.
    pub async fn node_sessions_waiting_review(
        &self,
        node: &str,
        before: OffsetDateTime,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id {WAITING_REVIEW_SQL} AND ended_at < $1 AND node = $2 \
             ORDER BY started_at, id"
        )))
        .bind(ts_text(before)?)
        .bind(node)
        .fetch_all(self.pool())
        .await
        .ctx("list this node's sessions waiting for review")?;
        rows.iter().map(|r| get(r, "id")).collect()
    }

    /// Marks a session ended. Ending an already ended session changes
    /// nothing (the first end wins); an unknown id is an error. With a
    /// spool (`serve`), an end the database cannot take is spooled and
    /// written when it is back (`Err(StoreError::Spooled)`), so no session
    /// stays live in `sessions list` after an outage.
    pub async fn session_end(
        &self,
        id: &str,
        ended_at: OffsetDateTime,
        bytes_up: i64,
        bytes_down: i64,
        exit_status: Option<i64>,
        reason: &str,
    ) -> Result<(), StoreError> {
        // A known outage is not waited for again (see `Store::audit`).
        let r = match self.spool() {
            Some(spool) if spool.pending() > 0 || self.outage_known() => Err(StoreError::Spooled(
                "the database is known to be unavailable".into(),
            )),
            _ => {
                self.write_session_end(id, ended_at, bytes_up, bytes_down, exit_status, reason)
                    .await
            }
        };
        let cause = match (&r, self.spool()) {
            (Err(StoreError::Query { context, source }), Some(_)) => {
                self.note_down();
                format!("{context}: {source}")
            }
            (Err(StoreError::Spooled(cause)), Some(_)) => cause.clone(),
            _ => return r,
        };
        let Some(spool) = self.spool() else {
            return r;
        };
        let _serial = self.inner.append_lock.lock().await;
        spool.append(&super::spool::Entry::SessionEnd {
            id: id.to_string(),
            ended_at: ts_text(ended_at)?,
            bytes_up,
            bytes_down,
            exit_status,
            reason: reason.to_string(),
        })?;
        Err(StoreError::Spooled(cause))
    }

    pub(crate) async fn write_session_end(
        &self,
        id: &str,
        ended_at: OffsetDateTime,
        bytes_up: i64,
        bytes_down: i64,
        exit_status: Option<i64>,
        reason: &str,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE sessions SET ended_at = $1, bytes_up = $2, bytes_down = $3, \
             exit_status = $4, end_reason = $5, duration_ms = {} \
             WHERE id = $6 AND ended_at IS NULL",
            duration_ms_sql(self.backend(), "$1")
        )))
        .bind(ts_text(ended_at)?)
        .bind(bytes_up)
        .bind(bytes_down)
        .bind(exit_status)
        .bind(reason)
        .bind(id)
        .execute(self.pool())
        .await
        .ctx("record session end")?;
        if done.rows_affected() == 0 && self.session_get(id).await?.is_none() {
            return Err(StoreError::NotFound(format!("session {id}")));
        }
        Ok(())
    }

    /// One session, live or ended.
    pub async fn session_get(&self, id: &str) -> Result<Option<SessionRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await
        .ctx("read session")?;
        row.as_ref().map(session_from_row).transpose()
    }

    /// Live sessions on every node, oldest first.
    pub async fn sessions_live(&self) -> Result<Vec<SessionRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE ended_at IS NULL ORDER BY started_at, id"
        )))
        .fetch_all(self.pool())
        .await
        .ctx("list live sessions")?;
        rows.iter().map(session_from_row).collect()
    }

    /// Sessions that overlap `[from, to)`: started before `to` and not
    /// ended before `from` (live ones included), oldest first. A session
    /// crossing midnight belongs to both days.
    pub async fn sessions_between(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<Vec<SessionRow>, StoreError> {
        let (from, to) = (ts_text(from)?, ts_text(to)?);
        let rows = sqlx::query(sqlx::AssertSqlSafe(sessions_between_sql()))
            .bind(&from)
            .bind(&to)
            .bind(&from)
            .bind(&from)
            .bind(&from)
            .bind(TS_MAX)
            .bind(&from)
            .fetch_all(self.pool())
            .await
            .ctx("list sessions")?;
        rows.iter().map(session_from_row).collect()
    }

    /// Asks the node running session `id` to end it. `true` if a live
    /// session with that id exists.
    pub async fn request_kill(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET kill_requested = 1 WHERE id = $1 AND ended_at IS NULL",
        )
        .bind(id)
        .execute(self.pool())
        .await
        .ctx("request session kill")?;
        Ok(done.rows_affected() > 0)
    }

    /// Ids of live sessions on `node` that someone asked to kill.
    pub async fn kill_requests(&self, node: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM sessions WHERE node = $1 AND ended_at IS NULL \
             AND kill_requested <> 0 ORDER BY id",
        )
        .bind(node)
        .fetch_all(self.pool())
        .await
        .ctx("read kill requests")?;
        rows.iter().map(|r| get(r, "id")).collect()
    }

    /// At start-up: ends the sessions a crashed process of `node` left
    /// live, with `reason`, and returns them (as they are now) so the
    /// caller can audit each end.
    pub async fn end_stale_sessions(
        &self,
        node: &str,
        reason: &str,
    ) -> Result<Vec<SessionRow>, StoreError> {
        let now = ts_text(now_utc())?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE sessions SET ended_at = $1, end_reason = $2, duration_ms = {} \
             WHERE node = $3 AND ended_at IS NULL \
             RETURNING {SESSION_COLUMNS}",
            duration_ms_sql(self.backend(), "$1")
        )))
        .bind(now)
        .bind(reason)
        .bind(node)
        .fetch_all(self.pool())
        .await
        .ctx("end stale sessions")?;
        let mut ended = rows
            .iter()
            .map(session_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        ended.sort_by(|a, b| a.started_at.cmp(&b.started_at).then(a.id.cmp(&b.id)));
        Ok(ended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite's plan for the report's sessions query: each part walks an
    /// index range; none walks every session begun before the day.
    #[tokio::test]
    async fn sessions_between_walks_index_ranges_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("g.db").display());
        let store = Store::open(&url, "n1").await.unwrap();
        let (a, b) = ("2026-03-10T00:00:00.000000Z", "2026-03-11T00:00:00.000000Z");
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {}",
            sessions_between_sql()
        )))
        .bind(a)
        .bind(b)
        .bind(a)
        .bind(a)
        .bind(a)
        .bind(TS_MAX)
        .bind(a)
        .fetch_all(store.pool())
        .await
        .unwrap();
        let plan: Vec<String> = rows
            .iter()
            .map(|r| get::<String>(r, "detail").unwrap())
            .filter(|d| d.starts_with("SEARCH") || d.starts_with("SCAN"))
            .collect();
        assert_eq!(
            plan,
            [
                "SEARCH sessions USING INDEX sessions_started_id (started_at>? AND started_at<?)",
                "SEARCH sessions USING INDEX sessions_ended (ended_at>? AND ended_at<?)",
                "SEARCH sessions USING INDEX sessions_ended (ended_at=?)",
            ],
            "{plan:?}"
        );
        store.close().await;
    }

    /// SQLite's plan for the Today page's sessions waiting for review:
    /// the count and the oldest-first list each walk the partial index of
    /// migration 0022 (its rows are those waiting), with no sort and no
    /// look at any other session.
    #[tokio::test]
    async fn sessions_waiting_review_walk_the_partial_index_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("g.db").display());
        let store = Store::open(&url, "n1").await.unwrap();
        let plan = |sql: String| {
            let store = store.clone();
            async move {
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                    .fetch_all(store.pool())
                    .await
                    .unwrap();
                rows.iter()
                    .map(|r| get::<String>(r, "detail").unwrap())
                    .collect::<Vec<String>>()
            }
        };
        let count = plan(format!("SELECT COUNT(*) {WAITING_REVIEW_SQL}")).await;
        assert_eq!(
            count,
            ["SCAN sessions USING COVERING INDEX sessions_waiting_review"],
            "{count:?}"
        );
        let list = plan(format!(
            "SELECT {SESSION_COLUMNS} {WAITING_REVIEW_SQL} ORDER BY started_at, id LIMIT 20"
        ))
        .await;
        assert_eq!(
            list,
            ["SCAN sessions USING INDEX sessions_waiting_review"],
            "{list:?}"
        );
        store.close().await;
    }
}
