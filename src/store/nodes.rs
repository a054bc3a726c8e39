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
use super::{Backend, Ctx, SessionRow, Store, StoreError, get, get_ts, now_utc, parse_ts, ts_text};
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
             duration_ms = CASE WHEN started_at > $1 THEN 0 ELSE {} END, \
             end_reason = $3 WHERE node = $4 AND ended_at IS NULL{only_sql} \
             RETURNING {SESSION_COLUMNS}",
            super::sessions::duration_ms_sql(self.backend(), "$2")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str, node: &str, started_at: OffsetDateTime) -> SessionRow {
        SessionRow {
            id: id.into(),
            user: "alice".into(),
            server: Some("web1".into()),
            account: Some("root".into()),
            source: "192.0.2.1".into(),
            node: node.into(),
            started_at,
            ended_at: None,
            mode: Some("ssh-forwarding".into()),
            grant_id: None,
            recorded: false,
            bytes_up: 0,
            bytes_down: 0,
            exit_status: None,
            end_reason: None,
            flagged: Some(false),
            review: None,
        }
    }

    /// On SQLite (the e2e tests cover PostgreSQL): heartbeats stamp the
    /// database's clock, a silent node is lost, its sessions close once,
    /// as last known, ended when it was last seen.
    #[tokio::test]
    async fn a_lost_nodes_sessions_close_once_as_last_known() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("g.db").display());
        let store = Store::open(&url, "node-b").await.unwrap();
        assert_eq!(store.node_started("node-a").await.unwrap(), None);
        store.heartbeat("node-a").await.unwrap();
        let again = store.node_started("node-a").await.unwrap().unwrap();
        assert_eq!(again.node, "node-a");
        let nodes = store.nodes(Duration::from_secs(30)).await.unwrap();
        assert_eq!(nodes.len(), 1);
        assert!(!nodes[0].lost, "{nodes:?}");
        assert!(nodes[0].silent_secs < 30.0);

        let started = now_utc() - time::Duration::minutes(5);
        store
            .session_start(&session("s1", "node-a", started))
            .await
            .unwrap();
        store
            .session_start(&session("s2", "node-b", started))
            .await
            .unwrap();
        let active = started + time::Duration::minutes(1);
        store
            .session_progress("s1", 10, 2000, active)
            .await
            .unwrap();
        // node-a was last seen two minutes after the session began.
        let seen = started + time::Duration::minutes(2);
        sqlx::query("UPDATE nodes SET last_seen = $1 WHERE node = 'node-a'")
            .bind(ts_text(seen).unwrap())
            .execute(store.pool())
            .await
            .unwrap();
        let nodes = store.nodes(Duration::from_secs(30)).await.unwrap();
        assert!(nodes[0].lost && nodes[0].last_seen == seen, "{nodes:?}");

        let closed = store
            .close_lost_sessions("node-a", seen, "node lost", None)
            .await
            .unwrap();
        assert_eq!(closed.len(), 1, "only node-a's session: {closed:?}");
        let row = &closed[0];
        assert_eq!(row.id, "s1");
        assert_eq!(row.ended_at, Some(seen));
        assert_eq!((row.bytes_up, row.bytes_down), (10, 2000));
        assert_eq!(row.end_reason.as_deref(), Some("node lost"));
        let ev = lost_session_end(row, "node lost").unwrap();
        assert_eq!(ev.detail["duration_secs"], 120.0);
        assert_eq!(ev.detail["bytes_down"], 2000);
        // A second closer gets nothing: one session.end.
        let twice = store
            .close_lost_sessions("node-a", seen, "node lost", None)
            .await
            .unwrap();
        assert!(twice.is_empty(), "{twice:?}");
        assert!(
            store
                .session_get("s2")
                .await
                .unwrap()
                .unwrap()
                .ended_at
                .is_none()
        );

        // A session begun after the node was last seen ends at its start.
        let late = seen + time::Duration::seconds(30);
        store
            .session_start(&session("s3", "node-a", late))
            .await
            .unwrap();
        let only = store
            .close_lost_sessions("node-a", seen, "node lost", Some("s3"))
            .await
            .unwrap();
        assert_eq!(only[0].ended_at, Some(late));
        store.close().await;
    }
}
