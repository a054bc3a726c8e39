//! The audit spool: what `serve` could not write to the database while it
//! was unreachable, kept durably in a local file (`[server] audit_spool`)
//! and written to the database, in order, when it is back.
//!
//! Only a serving bastion spools (`Store::with_spool`); admin commands fail
//! loudly instead. One JSON object per line, each appended and synced before
//! the caller is answered, so an acknowledged entry survives a crash. While
//! the spool holds anything, new events go behind it rather than to the
//! database: a node's chain then stays in time order (the events are
//! chained when drained, with the time they happened). A spooled event
//! carries `detail.spool_id`, which makes draining idempotent: an entry
//! whose event is already in the chain (a crash between the commit and the
//! rewrite of the spool) is not written twice. Session ends are idempotent
//! by themselves (the first end wins).
//!
//! The file is only ever read and rewritten under the store's append lock.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::audit::AuditEvent;

/// One thing the database still has to be told.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "entry", rename_all = "snake_case")]
pub(crate) enum Entry {
    /// An audit event, with the time it happened (stored `ts` text).
    Event { ts: String, event: AuditEvent },
    /// A session row's end (`Store::session_end`).
    SessionEnd {
        id: String,
        ended_at: String,
        bytes_up: i64,
        bytes_down: i64,
        exit_status: Option<i64>,
        reason: String,
    },
}

pub(crate) struct Spool {
    path: PathBuf,
    /// Entries in the file.
    pending: AtomicUsize,
}

fn io_err(path: &Path, what: &str, e: std::io::Error) -> StoreError {
    StoreError::Db(format!("audit spool {}: {what}: {e}", path.display()))
}

impl Spool {
    /// Opens the spool at `path` (its folder is created), counting what a
    /// previous run left in it.
    pub(crate) fn open(path: &Path) -> Result<Spool, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io_err(dir, "create folder", e))?;
        }
        let spool = Spool {
            path: path.to_path_buf(),
            pending: AtomicUsize::new(0),
        };
        let n = spool.load()?.len();
        spool.pending.store(n, Ordering::SeqCst);
        Ok(spool)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    /// Appends `entry` and syncs it to disk.
    pub(crate) fn append(&self, entry: &Entry) -> Result<(), StoreError> {
        let mut line = serde_json::to_vec(entry)
            .map_err(|e| StoreError::Invalid(format!("audit spool entry: {e}")))?;
        line.push(b'\n');
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(|e| io_err(&self.path, "open", e))?;
        f.write_all(&line)
            .and_then(|()| f.sync_data())
            .map_err(|e| io_err(&self.path, "append", e))?;
        self.pending.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Every entry, oldest first. A line that does not parse (the torn last
    /// line of a crash mid-append, never acknowledged) is logged and skipped.
    pub(crate) fn load(&self) -> Result<Vec<Entry>, StoreError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&self.path, "read", e)),
        };
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(line) {
                Ok(e) => out.push(e),
                Err(e) => tracing::error!(
                    "audit spool {}: line {} does not parse, skipped: {e}",
                    self.path.display(),
                    i + 1
                ),
            }
        }
        Ok(out)
    }

    /// Replaces the file's content with `left` (atomically: a synced
    /// temporary file renamed over it).
    pub(crate) fn rewrite(&self, left: &[Entry]) -> Result<(), StoreError> {
        let tmp = self.path.with_extension("tmp");
        let mut body = Vec::new();
        for e in left {
            serde_json::to_writer(&mut body, e)
                .map_err(|e| StoreError::Invalid(format!("audit spool entry: {e}")))?;
            body.push(b'\n');
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| io_err(&tmp, "open", e))?;
        f.write_all(&body)
            .and_then(|()| f.sync_all())
            .map_err(|e| io_err(&tmp, "write", e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| io_err(&self.path, "replace", e))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        self.pending.store(left.len(), Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::EventKind;

    #[test]
    fn entries_survive_reopening_and_a_torn_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/spool.jsonl");
        let s = Spool::open(&path).unwrap();
        assert_eq!(s.pending(), 0);
        for i in 0..3 {
            s.append(&Entry::Event {
                ts: format!("2026-01-01T00:00:0{i}.000000Z"),
                event: AuditEvent::new(EventKind::AuthFailure).detail("i", i),
            })
            .unwrap();
        }
        s.append(&Entry::SessionEnd {
            id: "s1".into(),
            ended_at: "2026-01-01T00:00:09.000000Z".into(),
            bytes_up: 1,
            bytes_down: 2,
            exit_status: Some(0),
            reason: "r".into(),
        })
        .unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"entry\":\"ev").unwrap();
        let again = Spool::open(&path).unwrap();
        assert_eq!(again.pending(), 4);
        let all = again.load().unwrap();
        assert!(matches!(&all[0], Entry::Event { ts, .. } if ts.ends_with("00.000000Z")));
        assert!(matches!(&all[3], Entry::SessionEnd { id, .. } if id == "s1"));
        again.rewrite(&all[2..]).unwrap();
        assert_eq!(again.pending(), 2);
        assert_eq!(Spool::open(&path).unwrap().load().unwrap().len(), 2);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    /// Draining writes spooled events in order, with their own times, and
    /// a replay of the same spool (a crash before it was emptied) writes
    /// nothing twice; events after the spool follow it in the chain.
    #[tokio::test]
    async fn draining_is_ordered_and_idempotent() {
        use crate::store::Store;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("g.db").display());
        let store = Store::open(&url, "n1").await.unwrap();
        let path = dir.path().join("spool.jsonl");
        let entries: Vec<Entry> = (0..3)
            .map(|i| Entry::Event {
                ts: format!("2026-01-01T00:00:0{i}.000000Z"),
                event: AuditEvent::new(EventKind::AuthFailure)
                    .detail("i", i)
                    .detail("spool_id", format!("id{i}")),
            })
            .collect();
        Spool::open(&path).unwrap().rewrite(&entries).unwrap();
        store.with_spool(&path).unwrap();
        assert_eq!(store.spooled(), 3);
        assert!(
            !store.reachable().await,
            "a pending spool means not reachable"
        );
        // New events queue behind the spool.
        let later = store
            .audit(&AuditEvent::new(EventKind::AuthFailure).detail("i", 3))
            .await;
        assert!(matches!(later, Err(StoreError::Spooled(_))), "{later:?}");
        // (The background drain may get there first: either way, once.)
        store.drain_spool().await.unwrap();
        assert_eq!(store.spooled(), 0);
        // The spool as it was before it was emptied: nothing is doubled.
        store.spool().unwrap().rewrite(&entries).unwrap();
        store.drain_spool().await.unwrap();
        assert_eq!(store.spooled(), 0);
        store
            .audit(&AuditEvent::new(EventKind::AuthFailure).detail("i", 4))
            .await
            .unwrap();
        let got = store.export(None, None).await.unwrap();
        let order: Vec<i64> = got
            .iter()
            .map(|r| r.detail["i"].as_i64().unwrap())
            .collect();
        assert_eq!(order, [0, 1, 2, 3, 4]);
        assert_eq!(got[0].ts, "2026-01-01T00:00:00.000000Z");
        assert!(got[3].detail["spool_id"].is_string());
        assert!(got[4].detail.get("spool_id").is_none());
        assert!(store.verify_chain().await.unwrap().first_bad.is_none());
        assert!(store.reachable().await);
    }
}
