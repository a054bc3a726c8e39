//! The directory copy in the database (migration 0015), one row shared by
//! every node: the copy as JSON (`crate::directory` owns its shape; the
//! store keeps text), a serial that grows at every change, the time of the
//! last good sync, and whether the directory is unreachable now.
//!
//! A sync writes inside [`DirectoryTx`]: on PostgreSQL it holds an advisory
//! lock for the transaction (another node syncing makes `begin` answer
//! `None`), on SQLite the database's single writer (`BEGIN IMMEDIATE`), so
//! the copy read, compared and written back is never another node's
//! half-done work, and each change is announced once.

use time::OffsetDateTime;

use super::{Backend, Ctx, Store, StoreError, get, get_opt_ts, ts_text};

/// The advisory lock key of the directory sync ("GATEDIRS").
pub const DIRECTORY_LOCK_KEY: i64 = 0x4741_5445_4449_5253;

/// What the row holds.
#[derive(Debug, Clone)]
pub struct DirectoryRow {
    pub serial: i64,
    /// The copy, as `crate::directory::Snapshot` JSON.
    pub snapshot: String,
    pub synced_at: Option<OffsetDateTime>,
    pub unreachable_since: Option<OffsetDateTime>,
    pub last_error: Option<String>,
}

/// The cheap part of the row, polled by every node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectoryHead {
    pub serial: i64,
    pub synced_at: Option<OffsetDateTime>,
    pub unreachable: bool,
}

/// A sync's write: the row read and replaced under the lock.
pub struct DirectoryTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
}

const EMPTY: &str = "{\"users\":{}}";

fn row_of(row: &sqlx::any::AnyRow) -> Result<DirectoryRow, StoreError> {
    Ok(DirectoryRow {
        serial: get(row, "serial")?,
        snapshot: get(row, "snapshot")?,
        synced_at: get_opt_ts(row, "synced_at")?,
        unreachable_since: get_opt_ts(row, "unreachable_since")?,
        last_error: get(row, "last_error")?,
    })
}

impl Store {
    /// The stored copy, if a sync ever ran.
    pub async fn directory_row(&self) -> Result<Option<DirectoryRow>, StoreError> {
        let row = sqlx::query(
            "SELECT serial, snapshot, synced_at, unreachable_since, last_error \
             FROM directory_copy WHERE id = 1",
        )
        .fetch_optional(self.pool())
        .await
        .ctx("read directory copy")?;
        row.as_ref().map(row_of).transpose()
    }

    /// Serial, last good sync and reachability, without the copy.
    pub async fn directory_head(&self) -> Result<Option<DirectoryHead>, StoreError> {
        let row = sqlx::query(
            "SELECT serial, synced_at, unreachable_since FROM directory_copy WHERE id = 1",
        )
        .fetch_optional(self.pool())
        .await
        .ctx("read directory head")?;
        row.map(|row| {
            Ok(DirectoryHead {
                serial: get(&row, "serial")?,
                synced_at: get_opt_ts(&row, "synced_at")?,
                unreachable: get_opt_ts(&row, "unreachable_since")?.is_some(),
            })
        })
        .transpose()
    }

    /// Starts a sync's write; `None` when another node holds the sync lock
    /// (PostgreSQL).
    pub async fn directory_begin(&self) -> Result<Option<DirectoryTx>, StoreError> {
        let mut tx = self.begin_write().await?;
        if self.backend() == Backend::Postgres {
            let got: i64 = sqlx::query_scalar(
                "SELECT CASE WHEN pg_try_advisory_xact_lock($1) THEN 1 ELSE 0 END",
            )
            .bind(DIRECTORY_LOCK_KEY)
            .fetch_one(&mut *tx)
            .await
            .ctx("take directory sync lock")?;
            if got != 1 {
                let _ = tx.rollback().await;
                return Ok(None);
            }
        }
        sqlx::query(
            "INSERT INTO directory_copy (id, serial, snapshot) VALUES (1, 0, $1) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(EMPTY)
        .execute(&mut *tx)
        .await
        .ctx("create directory copy")?;
        Ok(Some(DirectoryTx { tx }))
    }

    /// Notes a failed read of the directory; `true` when this starts an
    /// episode (the caller writes `directory.unreachable` once).
    pub async fn directory_failed(
        &self,
        now: OffsetDateTime,
        error: &str,
    ) -> Result<bool, StoreError> {
        let Some(mut t) = self.directory_begin().await? else {
            return Ok(false);
        };
        let started = sqlx::query(
            "UPDATE directory_copy SET unreachable_since = $1, last_error = $2 \
             WHERE id = 1 AND unreachable_since IS NULL",
        )
        .bind(ts_text(now)?)
        .bind(error)
        .execute(&mut *t.tx)
        .await
        .ctx("note directory unreachable")?
        .rows_affected()
            > 0;
        if !started {
            sqlx::query("UPDATE directory_copy SET last_error = $1 WHERE id = 1")
                .bind(error)
                .execute(&mut *t.tx)
                .await
                .ctx("note directory error")?;
        }
        t.commit().await?;
        Ok(started)
    }
}

impl DirectoryTx {
    /// The row as it stands under the lock.
    pub async fn current(&mut self) -> Result<DirectoryRow, StoreError> {
        let row = sqlx::query(
            "SELECT serial, snapshot, synced_at, unreachable_since, last_error \
             FROM directory_copy WHERE id = 1",
        )
        .fetch_one(&mut *self.tx)
        .await
        .ctx("read directory copy")?;
        row_of(&row)
    }

    /// Records a good sync at `now`: the copy replaced when `snapshot` is
    /// given (serial + 1), the unreachable episode closed. Returns whether
    /// an episode was closed (the caller writes `directory.recovered`).
    pub async fn write(
        &mut self,
        snapshot: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        if let Some(s) = snapshot {
            sqlx::query(
                "UPDATE directory_copy SET snapshot = $1, serial = serial + 1 WHERE id = 1",
            )
            .bind(s)
            .execute(&mut *self.tx)
            .await
            .ctx("write directory copy")?;
        }
        sqlx::query("UPDATE directory_copy SET synced_at = $1, last_error = NULL WHERE id = 1")
            .bind(ts_text(now)?)
            .execute(&mut *self.tx)
            .await
            .ctx("note directory sync")?;
        let recovered = sqlx::query(
            "UPDATE directory_copy SET unreachable_since = NULL \
             WHERE id = 1 AND unreachable_since IS NOT NULL",
        )
        .execute(&mut *self.tx)
        .await
        .ctx("note directory recovered")?
        .rows_affected()
            > 0;
        Ok(recovered)
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await.ctx("commit directory copy")
    }

    /// Drops the write (dry runs).
    pub async fn rollback(self) {
        let _ = self.tx.rollback().await;
    }
}
