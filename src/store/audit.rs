//! The audit log: an append-only table whose rows form one hash chain per
//! bastion node. Each event carries its node, a sequence number (1, 2, 3..
//! per node), the previous event's hash and its own hash: SHA-256 over a
//! length-prefixed encoding of every stored field ([`chain_hash`]). A
//! per-node head row (`audit_heads`) holds the last sequence number and
//! hash; appends lock it, so a removed tail shows as a head that promises
//! more events than exist.
//!
//! Nodes sharing one PostgreSQL database each append to their own segment
//! and never wait for one another; two processes of the same node (the
//! server and an admin's CLI) serialize on the head row.
//!
//! This file appends events; `read` reads them, `chain` verifies them.
//! May import: the store, audit values, seal maths.

use std::collections::{HashMap, VecDeque};

use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use ring::digest;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use super::seal::SealRow;
use super::{
    Backend, ChainFault, ChainReport, Ctx, LoginGroup, LoginSeen, NodeSeals, Store, StoreError,
    get, get_ts, now_utc, ts_text,
};
use crate::audit::{AuditEvent, AuditRecord};
use crate::seal::SealKey;

mod chain;
mod read;

pub use chain::{ChainCheck, Pin};
pub use read::RecordingStarted;

/// `prev_hash` of each node's first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Bounds used when the caller gives none: every storable timestamp lies
/// within them.
const TS_MIN: &str = "0000-01-01T00:00:00.000000Z";
pub(crate) const TS_MAX: &str = "9999-12-31T23:59:59.999999Z";

const SELECT_EVENTS: &str = "SELECT id, ts, kind, username, server, account, session_id, source, \
     detail, node, seq, prev_hash, hash FROM audit_events";

/// An event row as stored, `detail` still as text: the hash covers the
/// stored text, never a re-serialization of it.
struct StoredEvent {
    id: i64,
    ts: String,
    kind: String,
    user: Option<String>,
    server: Option<String>,
    account: Option<String>,
    session: Option<String>,
    source: Option<String>,
    detail: String,
    node: String,
    seq: i64,
    prev_hash: String,
    hash: String,
}

impl StoredEvent {
    fn from_row(row: &AnyRow) -> Result<StoredEvent, StoreError> {
        Ok(StoredEvent {
            id: get(row, "id")?,
            ts: get(row, "ts")?,
            kind: get(row, "kind")?,
            user: get(row, "username")?,
            server: get(row, "server")?,
            account: get(row, "account")?,
            session: get(row, "session_id")?,
            source: get(row, "source")?,
            detail: get(row, "detail")?,
            node: get(row, "node")?,
            seq: get(row, "seq")?,
            prev_hash: get(row, "prev_hash")?,
            hash: get(row, "hash")?,
        })
    }

    fn computed_hash(&self) -> String {
        chain_hash(&ChainFields {
            node: &self.node,
            seq: self.seq,
            ts: &self.ts,
            kind: &self.kind,
            user: self.user.as_deref(),
            server: self.server.as_deref(),
            account: self.account.as_deref(),
            session: self.session.as_deref(),
            source: self.source.as_deref(),
            detail: &self.detail,
            prev_hash: &self.prev_hash,
        })
    }

    fn into_record(self) -> Result<AuditRecord, StoreError> {
        let detail = serde_json::from_str(&self.detail)
            .map_err(|e| StoreError::Corrupt(format!("audit event id {}: detail: {e}", self.id)))?;
        Ok(AuditRecord {
            id: self.id,
            ts: self.ts,
            kind: self.kind,
            user: self.user,
            server: self.server,
            account: self.account,
            session: self.session,
            source: self.source,
            detail,
            node: self.node,
            seq: self.seq,
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

/// The fields one event's hash covers.
pub(crate) struct ChainFields<'a> {
    pub node: &'a str,
    pub seq: i64,
    pub ts: &'a str,
    pub kind: &'a str,
    pub user: Option<&'a str>,
    pub server: Option<&'a str>,
    pub account: Option<&'a str>,
    pub session: Option<&'a str>,
    pub source: Option<&'a str>,
    pub detail: &'a str,
    pub prev_hash: &'a str,
}

/// Hex SHA-256 over a canonical encoding: a version tag, then each field in
/// a fixed order, text as a presence byte plus a 64-bit big-endian length
/// plus the bytes, `seq` as 8 big-endian bytes. Length prefixes make the
/// encoding unambiguous (no field can borrow bytes from its neighbour), and
/// absent differs from empty.
pub(crate) fn chain_hash(f: &ChainFields<'_>) -> String {
    fn text(ctx: &mut digest::Context, v: Option<&str>) {
        match v {
            None => ctx.update(&[0]),
            Some(s) => {
                ctx.update(&[1]);
                ctx.update(&(s.len() as u64).to_be_bytes());
                ctx.update(s.as_bytes());
            }
        }
    }
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"gatehouse-audit-v1\0");
    text(&mut ctx, Some(f.node));
    ctx.update(&f.seq.to_be_bytes());
    text(&mut ctx, Some(f.ts));
    text(&mut ctx, Some(f.kind));
    text(&mut ctx, f.user);
    text(&mut ctx, f.server);
    text(&mut ctx, f.account);
    text(&mut ctx, f.session);
    text(&mut ctx, f.source);
    text(&mut ctx, Some(f.detail));
    text(&mut ctx, Some(f.prev_hash));
    hex::encode(ctx.finish().as_ref())
}

impl Store {
    /// Appends `ev` to this node's chain and returns it as stored. The event
    /// is committed (and on SQLite synced) when this returns: callers that
    /// must fail closed treat an `Err` as "not recorded".
    ///
    /// With a spool (`serve`), an event the database cannot take, or one
    /// arriving while the spool still holds older ones, is spooled instead
    /// and `Err(StoreError::Spooled)` says so: kept, but not in the chain yet.
    pub async fn audit(&self, ev: &AuditEvent) -> Result<AuditRecord, StoreError> {
        let _serial = self.inner.append_lock.lock().await;
        let ts = ts_text(now_utc())?;
        let Some(spool) = self.spool() else {
            return self.append_at(ev, ts).await;
        };
        // A known outage (start-up incomplete, a failed probe or write
        // with no success since) is not waited for again: one login waits
        // once for the database, not once per statement.
        if spool.pending() == 0 && !self.outage_known() {
            match self.append_at(ev, ts.clone()).await {
                Err(StoreError::Query { context, source }) => {
                    self.note_down();
                    let cause = format!("{context}: {source}");
                    return Err(self.spool_event(spool, ev, ts, cause));
                }
                other => return other,
            }
        }
        let cause = if spool.pending() > 0 {
            "the spool is not drained yet"
        } else {
            "the database is known to be unavailable"
        };
        Err(self.spool_event(spool, ev, ts, cause.into()))
    }

    /// Spools `ev` (marked with a `spool_id`); the error to return.
    fn spool_event(
        &self,
        spool: &super::spool::Spool,
        ev: &AuditEvent,
        ts: String,
        cause: String,
    ) -> StoreError {
        let event = ev
            .clone()
            .detail("spool_id", uuid::Uuid::new_v4().simple().to_string());
        match spool.append(&super::spool::Entry::Event { ts, event }) {
            Ok(()) => StoreError::Spooled(cause),
            Err(e) => {
                tracing::error!(kind = %ev.kind, "audit event lost: {cause}; {e}");
                e
            }
        }
    }

    /// Writes what the spool holds, oldest first, and empties it. Stops at
    /// the first entry the database refuses (the rest stays for the next
    /// try). Events already chained (same node, time and detail, which
    /// holds the unique `spool_id`) are not written again.
    pub(crate) async fn drain_spool(&self) -> Result<usize, StoreError> {
        let Some(spool) = self.spool() else {
            return Ok(0);
        };
        let _serial = self.inner.append_lock.lock().await;
        let entries = spool.load()?;
        let mut done = 0;
        let mut failed = None;
        for entry in &entries {
            let r = match entry {
                super::spool::Entry::Event { ts, event } => self.append_spooled(event, ts).await,
                super::spool::Entry::SessionEnd {
                    id,
                    ended_at,
                    bytes_up,
                    bytes_down,
                    exit_status,
                    reason,
                } => match super::parse_ts(ended_at) {
                    Ok(at) => self
                        .write_session_end(id, at, *bytes_up, *bytes_down, *exit_status, reason)
                        .await
                        .or_else(|e| match e {
                            StoreError::NotFound(_) => Ok(()),
                            e => Err(e),
                        }),
                    Err(e) => {
                        tracing::error!("audit spool: session end of {id}: {e}; dropped");
                        Ok(())
                    }
                },
            };
            match r {
                Ok(()) => done += 1,
                Err(e @ StoreError::Query { .. }) => {
                    failed = Some(e);
                    break;
                }
                // Not the database being away: this entry can never be
                // written, and must not hold back the ones behind it.
                Err(e) => {
                    tracing::error!("audit spool: entry dropped: {e}");
                    done += 1;
                }
            }
        }
        if done > 0 || failed.is_none() {
            spool.rewrite(entries.get(done..).unwrap_or_default())?;
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(done),
        }
    }

    /// A spooled event, unless the chain has it already.
    async fn append_spooled(&self, ev: &AuditEvent, ts: &str) -> Result<(), StoreError> {
        let detail = serde_json::to_string(&ev.detail)
            .map_err(|e| StoreError::Invalid(format!("audit detail: {e}")))?;
        let seen = sqlx::query(
            "SELECT id FROM audit_events WHERE node = $1 AND ts = $2 AND kind = $3 AND detail = $4",
        )
        .bind(self.node())
        .bind(ts)
        .bind(ev.kind.as_str())
        .bind(&detail)
        .fetch_optional(self.pool())
        .await
        .ctx("look for a spooled event")?;
        if seen.is_none() {
            self.append_at(ev, ts.to_string()).await?;
        }
        Ok(())
    }

    /// Appends `ev` with timestamp `ts` (caller holds the append lock).
    async fn append_at(&self, ev: &AuditEvent, ts: String) -> Result<AuditRecord, StoreError> {
        let detail = serde_json::to_string(&ev.detail)
            .map_err(|e| StoreError::Invalid(format!("audit detail: {e}")))?;
        let node = self.node().to_string();
        let kind = ev.kind.as_str();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO audit_heads (node, seq, hash) VALUES ($1, 0, $2) \
             ON CONFLICT (node) DO NOTHING",
        )
        .bind(&node)
        .bind(GENESIS_HASH)
        .execute(&mut *tx)
        .await
        .ctx("create audit chain head")?;
        let head_sql = match self.backend() {
            Backend::Postgres => "SELECT seq, hash FROM audit_heads WHERE node = $1 FOR UPDATE",
            Backend::Sqlite => "SELECT seq, hash FROM audit_heads WHERE node = $1",
        };
        let head = sqlx::query(head_sql)
            .bind(&node)
            .fetch_one(&mut *tx)
            .await
            .ctx("read audit chain head")?;
        let last_seq: i64 = get(&head, "seq")?;
        let prev_hash: String = get(&head, "hash")?;
        let seq = last_seq
            .checked_add(1)
            .ok_or_else(|| StoreError::Corrupt(format!("audit chain of node {node} is full")))?;
        // `ts` was taken under the append lock (or when the event was
        // spooled, and spooled events are drained before newer ones), so a
        // node's events are in time order too.
        let hash = chain_hash(&ChainFields {
            node: &node,
            seq,
            ts: &ts,
            kind,
            user: ev.user.as_deref(),
            server: ev.server.as_deref(),
            account: ev.account.as_deref(),
            session: ev.session.as_deref(),
            source: ev.source.as_deref(),
            detail: &detail,
            prev_hash: &prev_hash,
        });
        let row = sqlx::query(
            "INSERT INTO audit_events (ts, kind, username, server, account, session_id, source, \
             detail, node, seq, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
        )
        .bind(&ts)
        .bind(kind)
        .bind(ev.user.as_deref())
        .bind(ev.server.as_deref())
        .bind(ev.account.as_deref())
        .bind(ev.session.as_deref())
        .bind(ev.source.as_deref())
        .bind(&detail)
        .bind(&node)
        .bind(seq)
        .bind(&prev_hash)
        .bind(&hash)
        .fetch_one(&mut *tx)
        .await
        .ctx("append audit event")?;
        let id: i64 = get(&row, "id")?;
        sqlx::query("UPDATE audit_heads SET seq = $1, hash = $2 WHERE node = $3")
            .bind(seq)
            .bind(&hash)
            .bind(&node)
            .execute(&mut *tx)
            .await
            .ctx("advance audit chain head")?;
        tx.commit().await.ctx("commit audit event")?;
        Ok(AuditRecord {
            id,
            ts,
            kind: kind.to_string(),
            user: ev.user.clone(),
            server: ev.server.clone(),
            account: ev.account.clone(),
            session: ev.session.clone(),
            source: ev.source.clone(),
            detail: ev.detail.clone(),
            node,
            seq,
            prev_hash,
            hash,
        })
    }
}

/// Ends a stream after its first error, so callers that keep polling do not
/// read on past a fault.
/// Audit rows as records, ending after the first error.
fn records<'a>(
    rows: impl futures::Stream<Item = Result<AnyRow, sqlx::Error>> + Send + 'a,
) -> BoxStream<'a, Result<AuditRecord, StoreError>> {
    stop_after_error(rows.map(|row| {
        row.ctx("read audit events")
            .and_then(|r| StoredEvent::from_row(&r))
            .and_then(StoredEvent::into_record)
    }))
}

fn stop_after_error<'a, T: Send + 'a>(
    s: impl futures::Stream<Item = Result<T, StoreError>> + Send + 'a,
) -> BoxStream<'a, Result<T, StoreError>> {
    s.scan(false, |failed, item| {
        if *failed {
            return futures::future::ready(None);
        }
        *failed = item.is_err();
        futures::future::ready(Some(item))
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::chain::FaultKey;
    use super::read::{LOGINS_SQL, events_by_time_sql, report_events_sql};
    use super::*;

    fn fields<'a>(detail: &'a str, user: Option<&'a str>) -> ChainFields<'a> {
        ChainFields {
            node: "n1",
            seq: 1,
            ts: "2026-01-01T00:00:00.000000Z",
            kind: "exec",
            user,
            server: None,
            account: None,
            session: None,
            source: None,
            detail,
            prev_hash: GENESIS_HASH,
        }
    }

    #[test]
    fn hash_covers_every_field_unambiguously() {
        let base = chain_hash(&fields("{}", Some("alice")));
        assert_eq!(base.len(), 64);
        assert_eq!(base, chain_hash(&fields("{}", Some("alice"))));
        assert_ne!(base, chain_hash(&fields("{\"a\":1}", Some("alice"))));
        // Absent differs from empty.
        assert_ne!(
            chain_hash(&fields("{}", None)),
            chain_hash(&fields("{}", Some("")))
        );
        // Moving bytes between neighbouring fields changes the hash.
        let mut a = fields("{}", Some("ab"));
        a.server = Some("c");
        let mut b = fields("{}", Some("a"));
        b.server = Some("bc");
        assert_ne!(chain_hash(&a), chain_hash(&b));
        let mut c = fields("{}", Some("alice"));
        c.seq = 2;
        assert_ne!(base, chain_hash(&c));
    }

    #[test]
    fn login_query_names_the_indexed_kind() {
        let kind = crate::audit::EventKind::AuthSuccess.as_str();
        assert!(LOGINS_SQL.contains(&format!("kind = '{kind}'")));
        for index in [
            include_str!("../../migrations/sqlite/0003_login_index.sql"),
            include_str!("../../migrations/postgres/0003_login_index.sql"),
        ] {
            assert!(index.contains(&format!("WHERE kind = '{kind}'")), "{index}");
        }
    }

    /// SQLite's plans for the report's two queries (its planner needs no
    /// statistics for these, so the plan is fixed): both walk an index over
    /// the range and neither sorts the range before the first row.
    #[tokio::test]
    async fn report_queries_walk_indexes_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("g.db").display());
        let store = Store::open(&url, "n1").await.unwrap();
        let plan = |sql: String, kinds: &'static [&'static str]| {
            let store = store.clone();
            async move {
                let mut query =
                    sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                        .bind(TS_MIN)
                        .bind(TS_MAX);
                for kind in kinds {
                    query = query.bind(*kind);
                }
                let rows = query.fetch_all(store.pool()).await.unwrap();
                rows.iter()
                    .map(|r| get::<String>(r, "detail").unwrap())
                    .collect::<Vec<_>>()
                    .join("; ")
            }
        };
        let kinds = &["auth.success", "session.start"];
        let by_time = plan(events_by_time_sql(kinds.len()), kinds).await;
        assert!(by_time.contains("USING INDEX audit_events_ts"), "{by_time}");
        assert!(!by_time.contains("TEMP B-TREE"), "{by_time}");
        let report = plan(report_events_sql(kinds.len()), kinds).await;
        assert!(report.contains("USING INDEX audit_events_ts"), "{report}");
        assert!(!report.contains("TEMP B-TREE"), "{report}");
        // The settled sessions are one range of an index, not a scan.
        assert!(
            report.contains("SEARCH s USING INDEX sessions_ended"),
            "{report}"
        );
        assert!(!report.contains("SCAN s"), "{report}");
        let logins = plan(LOGINS_SQL.to_string(), &[]).await;
        assert!(
            logins.contains("USING COVERING INDEX audit_events_logins"),
            "{logins}"
        );
        store.close().await;
    }

    #[test]
    fn fault_order_puts_a_removal_before_later_rows() {
        assert!(FaultKey::after(4) < FaultKey::at(5));
        assert!(FaultKey::at(4) < FaultKey::after(4));
    }
}
