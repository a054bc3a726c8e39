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

    /// Recomputes every node's chain and reports the first fault, if any:
    /// a changed event (its hash does not match its fields), an inserted
    /// one (its sequence number or `prev_hash` does not follow its
    /// predecessor, or it lies past its node's chain head), or a removed
    /// one (a sequence gap, or a chain head that promises more events than
    /// exist). Streams the table once, inside one read snapshot so that
    /// events appended meanwhile (a live server) are not mistaken for
    /// faults. Seals are checked for order and against the chain, but
    /// not proven: see [`Store::verify_chain_with`].
    pub async fn verify_chain(&self) -> Result<ChainReport, StoreError> {
        self.verify_chain_with(&ChainCheck::default()).await
    }

    /// [`Store::verify_chain`], and the seals (`crate::seal`): each node's
    /// seals must have consecutive epochs from 0, each seal's `seq` must
    /// still carry the sealed hash (so an event changed, inserted or
    /// removed at or before a seal, or a removed sealed tail, is found
    /// even when every later hash and the head were recomputed), and with
    /// the node's initial key in `check.keys` each seal's MAC must verify
    /// under the key derived for its epoch. `check.pins` (heads signed in
    /// daily reports) must still be in the chain, and `check.key_epochs`
    /// (the epoch a node's key file is at) says how many seals must exist.
    pub async fn verify_chain_with(&self, check: &ChainCheck) -> Result<ChainReport, StoreError> {
        let mut tx = match self.backend() {
            Backend::Postgres => {
                self.pool()
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await
            }
            // A deferred read transaction in WAL mode sees one snapshot,
            // taken at its first read, until it ends.
            Backend::Sqlite => self.pool().begin().await,
        }
        .ctx("begin read snapshot")?;

        let mut nodes: HashMap<String, NodeWalk> = HashMap::new();
        let heads = sqlx::query("SELECT node, seq, hash FROM audit_heads")
            .fetch_all(&mut *tx)
            .await
            .ctx("read audit chain heads")?;
        for head in &heads {
            let node: String = get(head, "node")?;
            let seq: i64 = get(head, "seq")?;
            let hash: String = get(head, "hash")?;
            nodes.insert(node, NodeWalk::new(Some((seq, hash))));
        }
        for seal in Store::all_seals(&mut tx).await? {
            nodes
                .entry(seal.node.clone())
                .or_insert_with(|| NodeWalk::new(None))
                .seals
                .push_back(seal);
        }
        for pin in &check.pins {
            nodes
                .entry(pin.node.clone())
                .or_insert_with(|| NodeWalk::new(None))
                .pins
                .push(pin.clone());
        }

        let mut faults: Vec<(FaultKey, ChainFault)> = Vec::new();
        for (node, walk) in nodes.iter_mut() {
            walk.pins.sort_by_key(|p| std::cmp::Reverse(p.seq));
            walk.key = check.keys.get(node).cloned();
            if !check.keys.is_empty() && walk.key.is_none() && !walk.seals.is_empty() {
                faults.push((
                    FaultKey(i64::MAX, 2),
                    ChainFault {
                        node: node.clone(),
                        seq: 0,
                        id: None,
                        problem: format!(
                            "no seal key given for node {node}: its seals cannot be proven"
                        ),
                    },
                ));
            }
        }

        let mut events: u64 = 0;
        {
            let mut rows = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT_EVENTS} ORDER BY id")))
                .fetch(&mut *tx);
            while let Some(row) = rows.next().await {
                let ev = StoredEvent::from_row(&row.ctx("read audit events")?)?;
                events += 1;
                let walk = nodes
                    .entry(ev.node.clone())
                    .or_insert_with(|| NodeWalk::new(None));
                if walk.broken {
                    continue;
                }
                if let Some(fault) = walk.step(&ev) {
                    walk.broken = true;
                    faults.push(fault);
                }
            }
        }
        tx.rollback().await.ctx("end read snapshot")?;

        let mut summary = Vec::new();
        for (node, walk) in &nodes {
            summary.push(NodeSeals {
                node: node.clone(),
                last_seq: walk.last_seq,
                seals: walk.next_epoch,
                sealed_epoch: walk.sealed_epoch,
                sealed_seq: walk.sealed_seq,
                proven: walk.key.is_some() && !walk.broken && walk.seals.is_empty(),
                pins: walk.pins_found,
            });
            if walk.broken {
                continue;
            }
            if let Some(fault) = walk.finish(node, check.key_epochs.get(node).copied()) {
                faults.push(fault);
            }
        }
        summary.sort_by(|a, b| a.node.cmp(&b.node));
        let first_bad = faults
            .into_iter()
            .min_by_key(|(key, _)| *key)
            .map(|(_, f)| f);
        if first_bad.is_some() {
            for n in &mut summary {
                n.proven = false;
            }
        }
        Ok(ChainReport {
            events,
            first_bad,
            nodes: summary,
        })
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

/// What [`Store::verify_chain_with`] checks besides the chain itself.
#[derive(Debug, Default)]
pub struct ChainCheck {
    /// Initial seal keys (`K_0`) by node. When any is given, every node
    /// with seals needs one.
    pub keys: HashMap<String, SealKey>,
    /// Heads pinned elsewhere: the chain must still hold each.
    pub pins: Vec<Pin>,
    /// The epoch a node's key file is at: seals of every epoch below it
    /// must exist (a removed last seal shows here).
    pub key_epochs: HashMap<String, i64>,
}

/// A chain head recorded elsewhere (a signed daily report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    pub node: String,
    pub seq: i64,
    pub hash: String,
    /// Where it comes from, for messages.
    pub what: String,
}

/// The events of a time range (`$1 <= ts < $2`) of `kinds` kinds (`$3`..)
/// in time order.
fn events_by_time_sql(kinds: usize) -> String {
    format!(
        "{SELECT_EVENTS} WHERE ts >= $1 AND ts < $2 AND kind IN ({}) ORDER BY ts, id",
        placeholders(3, kinds)
    )
}

/// [`Store::report_events`]: the events of a time range (`$1 <= ts < $2`)
/// of `kinds` kinds (`$3`..), in time order, less the session events of
/// sessions settled in the range (the range again after the kinds).
fn report_events_sql(kinds: usize) -> String {
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
const LOGINS_SQL: &str = "SELECT username, source, MAX(ts) AS last FROM audit_events \
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

/// Orders faults by where they sit in the table: a fault at row `id` sorts
/// at `(id, 0)`; a removal sorts just after the last intact row before it,
/// `(prev_id, 1)`, since the removed rows had ids above that one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct FaultKey(i64, u8);

impl FaultKey {
    fn at(id: i64) -> FaultKey {
        FaultKey(id, 0)
    }
    fn after(id: i64) -> FaultKey {
        FaultKey(id, 1)
    }
}

/// Verification state of one node's chain.
struct NodeWalk {
    /// The node's chain head row: last `seq` and `hash`. `None` when the
    /// node has events but no head, which `audit` never leaves behind.
    head: Option<(i64, String)>,
    /// Id of the last intact row (0 before the first).
    last_id: i64,
    last_seq: i64,
    last_hash: String,
    broken: bool,
    /// The node's seals not yet reached by the walk, in epoch order.
    seals: VecDeque<SealRow>,
    /// The epoch the next seal must have, and its key when proving.
    next_epoch: i64,
    key: Option<SealKey>,
    /// The last seal checked.
    sealed_epoch: Option<i64>,
    sealed_seq: i64,
    /// Pins not yet reached, highest `seq` first (popped from the end).
    pins: Vec<Pin>,
    pins_found: usize,
}

impl NodeWalk {
    fn new(head: Option<(i64, String)>) -> NodeWalk {
        NodeWalk {
            head,
            last_id: 0,
            last_seq: 0,
            last_hash: GENESIS_HASH.to_string(),
            broken: false,
            seals: VecDeque::new(),
            next_epoch: 0,
            key: None,
            sealed_epoch: None,
            sealed_seq: 0,
            pins: Vec::new(),
            pins_found: 0,
        }
    }

    /// The seals and pins at or before `ev` (just accepted into the
    /// chain): each must name this event's hash.
    fn checkpoints(&mut self, ev: &StoredEvent) -> Option<(FaultKey, ChainFault)> {
        let fault = |seq: i64, problem: String| {
            Some((
                FaultKey::at(ev.id),
                ChainFault {
                    node: ev.node.clone(),
                    seq,
                    id: Some(ev.id),
                    problem,
                },
            ))
        };
        while self.seals.front().is_some_and(|s| s.seq <= ev.seq) {
            let s = self.seals.pop_front()?;
            let e = s.epoch;
            if e > self.next_epoch {
                let range = if e - self.next_epoch == 1 {
                    format!("the seal of epoch {} is", self.next_epoch)
                } else {
                    format!("the seals of epochs {}..{} are", self.next_epoch, e - 1)
                };
                return fault(
                    ev.seq,
                    format!("removed: {range} missing (before epoch {e})"),
                );
            }
            if e < self.next_epoch {
                return fault(ev.seq, format!("inserted: seal epoch {e} repeats"));
            }
            if let Some(key) = &self.key
                && !crate::seal::seal_mac_ok(key, &s.fields(), &s.mac)
            {
                return fault(
                    ev.seq,
                    format!(
                        "forged: the seal of epoch {e} does not verify under the key \
                         derived from the initial seal key"
                    ),
                );
            }
            if s.seq < ev.seq || s.seq <= self.sealed_seq {
                return fault(
                    s.seq,
                    format!("inserted: seal epoch {e} names seq {}, out of order", s.seq),
                );
            }
            if s.hash != ev.hash {
                return fault(
                    ev.seq,
                    format!(
                        "changed: sealed epoch {e} covers seq {}..{}, and the chain hash at \
                         seq {} is no longer the sealed one (an event in that range was \
                         changed, inserted or removed)",
                        self.sealed_seq + 1,
                        s.seq,
                        s.seq
                    ),
                );
            }
            self.sealed_epoch = Some(e);
            self.sealed_seq = s.seq;
            self.next_epoch = e + 1;
            self.key = self.key.as_ref().map(SealKey::evolve);
        }
        while self.pins.last().is_some_and(|p| p.seq <= ev.seq) {
            let p = self.pins.pop()?;
            if p.seq < ev.seq || p.hash != ev.hash {
                return fault(
                    p.seq,
                    format!(
                        "changed: the chain head pinned by {} (seq {}, hash {}) is not in the \
                         chain any more",
                        p.what, p.seq, p.hash
                    ),
                );
            }
            self.pins_found += 1;
        }
        None
    }

    fn step(&mut self, ev: &StoredEvent) -> Option<(FaultKey, ChainFault)> {
        let expected = self.last_seq.saturating_add(1);
        let fault = |key: FaultKey, seq: i64, id: Option<i64>, problem: String| {
            Some((
                key,
                ChainFault {
                    node: ev.node.clone(),
                    seq,
                    id,
                    problem,
                },
            ))
        };
        if ev.seq > expected {
            let missing = if ev.seq - expected == 1 {
                format!("seq {expected} is missing")
            } else {
                format!("seq {expected}..{} are missing", ev.seq - 1)
            };
            let after = if self.last_id == 0 {
                "at the start of the chain".to_string()
            } else {
                format!("after id {}", self.last_id)
            };
            return fault(
                FaultKey::after(self.last_id),
                expected,
                None,
                format!("removed: {missing} ({after}, before id {})", ev.id),
            );
        }
        if ev.seq < expected {
            return fault(
                FaultKey::at(ev.id),
                ev.seq,
                Some(ev.id),
                format!(
                    "inserted: seq {} repeats or goes back (expected {expected})",
                    ev.seq
                ),
            );
        }
        let head_seq = match &self.head {
            None => {
                return fault(
                    FaultKey::at(ev.id),
                    ev.seq,
                    Some(ev.id),
                    "inserted: the node has no chain head".into(),
                );
            }
            Some((seq, _)) => *seq,
        };
        if ev.seq > head_seq {
            return fault(
                FaultKey::at(ev.id),
                ev.seq,
                Some(ev.id),
                format!("inserted: past the node's chain head (seq {head_seq})"),
            );
        }
        if ev.prev_hash != self.last_hash {
            return fault(
                FaultKey::at(ev.id),
                ev.seq,
                Some(ev.id),
                "inserted or reordered: prev_hash does not match the previous event".into(),
            );
        }
        let computed = ev.computed_hash();
        if computed != ev.hash {
            return fault(
                FaultKey::at(ev.id),
                ev.seq,
                Some(ev.id),
                "changed: stored fields do not match the event's hash".into(),
            );
        }
        self.last_id = ev.id;
        self.last_seq = ev.seq;
        self.last_hash = computed;
        self.checkpoints(ev)
    }

    /// After the walk: compares the last intact event with the head row,
    /// then what seals and pins promise with what the chain holds.
    fn finish(&self, node: &str, key_epoch: Option<i64>) -> Option<(FaultKey, ChainFault)> {
        self.finish_head(node)
            .or_else(|| self.finish_seals(node, key_epoch))
    }

    fn finish_seals(&self, node: &str, key_epoch: Option<i64>) -> Option<(FaultKey, ChainFault)> {
        let fault = |seq: i64, problem: String| {
            Some((
                FaultKey::after(self.last_id),
                ChainFault {
                    node: node.to_string(),
                    seq,
                    id: None,
                    problem,
                },
            ))
        };
        if let Some(s) = self.seals.front() {
            return fault(
                self.last_seq.saturating_add(1),
                format!(
                    "removed: sealed epoch {} covers the chain up to seq {}, but it ends at seq {}",
                    s.epoch, s.seq, self.last_seq
                ),
            );
        }
        if let Some(p) = self.pins.last() {
            return fault(
                self.last_seq.saturating_add(1),
                format!(
                    "removed: the chain head pinned by {} is seq {}, but the chain ends at seq {}",
                    p.what, p.seq, self.last_seq
                ),
            );
        }
        if let Some(epoch) = key_epoch
            && epoch > self.next_epoch
        {
            return fault(
                self.sealed_seq.saturating_add(1),
                format!(
                    "removed: the node's seal key is at epoch {epoch}, but the seals end \
                     before epoch {} (seals removed)",
                    self.next_epoch
                ),
            );
        }
        None
    }

    fn finish_head(&self, node: &str) -> Option<(FaultKey, ChainFault)> {
        let (head_seq, head_hash) = self.head.as_ref()?;
        let fault = |key: FaultKey, seq: i64, id: Option<i64>, problem: String| {
            Some((
                key,
                ChainFault {
                    node: node.to_string(),
                    seq,
                    id,
                    problem,
                },
            ))
        };
        if *head_seq > self.last_seq {
            let first_missing = self.last_seq.saturating_add(1);
            let range = if *head_seq == first_missing {
                format!("seq {first_missing} is missing")
            } else {
                format!("seq {first_missing}..{head_seq} are missing")
            };
            let after = if self.last_id == 0 {
                "the node has no events left".to_string()
            } else {
                format!("after id {}, the last event left", self.last_id)
            };
            return fault(
                FaultKey::after(self.last_id),
                first_missing,
                None,
                format!("removed: {range} ({after})"),
            );
        }
        // `step` refused rows past the head, so here the seqs are equal.
        if *head_hash != self.last_hash {
            return fault(
                FaultKey::at(self.last_id),
                self.last_seq,
                (self.last_id != 0).then_some(self.last_id),
                "changed: the chain head's hash does not match the last event".into(),
            );
        }
        None
    }
}

#[cfg(test)]
mod tests {
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
