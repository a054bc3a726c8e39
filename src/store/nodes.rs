//! Node heartbeats and the sessions of nodes that went silent.
//!
//! Each serving node writes its row of `nodes` every few seconds
//! ([`Store::heartbeat`]), stamped with the *database's* clock, and the
//! byte counts and last activity of its live sessions
//! ([`Store::session_progress`]). A node whose last heartbeat is older than
//! `[server] node_lost_after` by that same clock is lost ([`NodeStatus`]):
//! its sessions are dead with it, and another node (or `sessions kill`)
//! closes them with [`Store::close_lost_sessions`], ended when the node was
//! last seen and with the bytes last written. Closing is one `UPDATE ...
//! WHERE ended_at IS NULL RETURNING`: of several nodes closing at once,
//! each row comes back to exactly one, so each session gets one
//! `session.end`.

use std::time::Duration;

use time::OffsetDateTime;

use super::sessions::{SESSION_COLUMNS, session_from_row};
use super::{
    Backend, Ctx, SessionRow, Store, StoreError, get, get_ts, now_utc, parse_ts, ts_text,
};
use crate::audit::{AuditEvent, EventKind};

/// What the database knows of one node.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NodeStatus {
    pub node: String,
    /// When its current (or last) run began.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// Its last heartbeat (database clock).
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    /// How long ago that was, by the database's clock now.
    pub silent_secs: f64,
    /// Silent for longer than the bound asked for.
    pub lost: bool,
}

impl Store {
    /// The database's clock, as stored timestamp text (six fractional
    /// digits, UTC), so that every node compares against one clock.
    fn db_now_sql(&self) -> &'static str {
        match self.backend() {
            Backend::Postgres => {
                "to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
            }
            Backend::Sqlite => "strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')",
        }
    }

    /// At start of `node`: its row as the previous run left it (`None` for
    /// a first start), then a fresh row for this run.
    pub async fn node_started(&self, node: &str) -> Result<Option<NodeStatus>, StoreError> {
        let before = self
            .nodes(Duration::ZERO)
            .await?
            .into_iter()
            .find(|n| n.node == node);
        let now = self.db_now_sql();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO nodes (node, started_at, last_seen, beat) VALUES ($1, {now}, {now}, 0) \
             ON CONFLICT (node) DO UPDATE SET started_at = excluded.started_at, \
             last_seen = excluded.last_seen, beat = 0"
        )))
        .bind(node)
        .execute(self.pool())
        .await
        .ctx("record node start")?;
        Ok(before)
    }

    /// `node` is alive now.
    pub async fn heartbeat(&self, node: &str) -> Result<(), StoreError> {
        let now = self.db_now_sql();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO nodes (node, started_at, last_seen, beat) VALUES ($1, {now}, {now}, 1) \
             ON CONFLICT (node) DO UPDATE SET last_seen = excluded.last_seen, \
             beat = nodes.beat + 1"
        )))
        .bind(node)
        .execute(self.pool())
        .await
        .ctx("write node heartbeat")?;
        Ok(())
    }

    /// Every node that ever beat, by name; `lost` when silent for longer
    /// than `lost_after` (by the database's clock).
    pub async fn nodes(&self, lost_after: Duration) -> Result<Vec<NodeStatus>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT node, started_at, last_seen, {} AS db_now FROM nodes ORDER BY node",
            self.db_now_sql()
        )))
        .fetch_all(self.pool())
        .await
        .ctx("read node heartbeats")?;
        rows.iter()
            .map(|r| {
                let last_seen = get_ts(r, "last_seen")?;
                let now: String = get(r, "db_now")?;
                let silent = (parse_ts(&now)? - last_seen).as_seconds_f64().max(0.0);
                Ok(NodeStatus {
                    node: get(r, "node")?,
                    started_at: get_ts(r, "started_at")?,
                    last_seen,
                    silent_secs: silent,
                    lost: !lost_after.is_zero() && silent > lost_after.as_secs_f64(),
                })
            })
            .collect()
    }

    /// Keeps a live session's row up to date: its byte counts and when it
    /// last moved a byte, for a close after a crash.
    pub async fn session_progress(
        &self,
        id: &str,
        bytes_up: i64,
        bytes_down: i64,
        last_activity: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sessions SET bytes_up = $1, bytes_down = $2, last_activity = $3 \
             WHERE id = $4 AND ended_at IS NULL",
        )
        .bind(bytes_up)
        .bind(bytes_down)
        .bind(ts_text(last_activity)?)
        .bind(id)
        .execute(self.pool())
        .await
        .ctx("record session progress")?;
        Ok(())
    }

    /// Ends the live sessions of `node`, which was last seen at
    /// `last_seen` (a crash, `kill -9`, a lost host): each ends then (or at
    /// its start, if later; never after now), with `reason` and the bytes
    /// last written. Returns the rows this call ended, as they are now: a
    /// row another node (or process) ended first is not returned, so each
    /// session's `session.end` is written once. `only` limits it to one
    /// session.
    pub async fn close_lost_sessions(
        &self,
        node: &str,
        last_seen: OffsetDateTime,
        reason: &str,
        only: Option<&str>,
    ) -> Result<Vec<SessionRow>, StoreError> {
        let end = ts_text(last_seen.min(now_utc()))?;
        let only_sql = if only.is_some() { " AND id = $5" } else { "" };
        let q = format!(
            "UPDATE sessions SET ended_at = CASE WHEN started_at > $1 THEN started_at ELSE $2 END, \
             end_reason = $3 WHERE node = $4 AND ended_at IS NULL{only_sql} \
             RETURNING {SESSION_COLUMNS}"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(end.clone())
            .bind(end)
            .bind(reason)
            .bind(node);
        if let Some(id) = only {
            query = query.bind(id);
        }
        let rows = query
            .fetch_all(self.pool())
            .await
            .ctx("close a lost node's sessions")?;
        let mut ended = rows
            .iter()
            .map(session_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        ended.sort_by(|a, b| a.started_at.cmp(&b.started_at).then(a.id.cmp(&b.id)));
        Ok(ended)
    }
}

/// The `session.end` of a session closed for its node (see
/// [`Store::close_lost_sessions`]): bytes as last written, duration up to
/// when the node was last seen, the node it ran on. `None` for a session
/// without a target (command mode has no `session.start` either).
pub fn lost_session_end(row: &SessionRow, reason: &str) -> Option<AuditEvent> {
    let server = row.server.as_ref()?;
    let ended = row.ended_at.unwrap_or(row.started_at);
    let mut ev = AuditEvent::new(EventKind::SessionEnd)
        .user(&row.user)
        .server(server)
        .source(&row.source)
        .session(&row.id)
        .detail("bytes_up", row.bytes_up)
        .detail("bytes_down", row.bytes_down)
        .detail("exit_status", row.exit_status)
        .detail(
            "duration_secs",
            (ended - row.started_at).as_seconds_f64().max(0.0),
        )
        .detail("reason", reason)
        .detail("node", row.node.clone())
        .detail("ended_at", ts_text(ended).unwrap_or_default());
    if let Some(a) = &row.account {
        ev = ev.account(a);
    }
    Some(ev)
}
