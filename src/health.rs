//! Is this bastion fit to serve? The checks shared by `gatehouse healthz`
//! and the admin listener's `/healthz`: the database takes a write (a probe
//! row inserted and rolled back, on a new connection), the audit spool can
//! be appended to and rewritten, and the recordings folder takes a new file
//! (probes written and removed).
//! Any failing means new sessions would be refused, could not be recorded,
//! or would lose their audit events when the database falters, so a load
//! balancer should stop sending staff here. Each probe really writes, as
//! the process that serves: permission bits alone say nothing for root, and
//! after a drop to `[server] user` only that user's rights count.
//!
//! May import: config, store, metrics.
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::store::Store;

/// How long the database may take to take the probe before it counts as down.
pub const DATABASE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum Unhealthy {
    #[error("database does not answer: {0}")]
    Database(String),
    #[error("database does not take a write: {0}")]
    Write(String),
    #[error("database did not answer within {}s", .0.as_secs())]
    DatabaseTimeout(Duration),
    #[error("recordings folder {} is not writable: {message}", .path.display())]
    Recordings { path: PathBuf, message: String },
    #[error("audit spool {} is not writable: {message}", .path.display())]
    Spool { path: PathBuf, message: String },
    #[error("reports folder {} is not writable: {message}", .path.display())]
    Reports { path: PathBuf, message: String },
    /// The directory copy is older than `max_stale`: directory users are
    /// refused (policy users are not).
    #[error("directory copy is stale ({0}): directory users are refused")]
    DirectoryStale(String),
}

/// `[directory]`: the copy stored by the last good sync still serves
/// (not older than `max_stale`). Unreachable but within `max_stale` is
/// healthy (the last copy serves). Without `[directory]`, nothing to check.
pub async fn directory(store: &Store, config: &crate::config::Config) -> Result<(), Unhealthy> {
    let Some(d) = &config.directory else {
        return Ok(());
    };
    let head = store
        .directory_head()
        .await
        .map_err(|e| Unhealthy::Database(e.to_string()))?;
    let now = time::OffsetDateTime::now_utc();
    match head.and_then(|h| h.synced_at) {
        None => Err(Unhealthy::DirectoryStale("never synced".to_string())),
        Some(t) => {
            let age = now - t;
            crate::metrics::directory_copy_age(age.whole_seconds());
            if age <= d.max_stale {
                Ok(())
            } else {
                Err(Unhealthy::DirectoryStale(format!(
                    "last good sync {}s ago, max_stale {}s",
                    age.whole_seconds(),
                    d.max_stale.as_secs()
                )))
            }
        }
    }
}

/// Runs every check (the audit spool's when `store` spools, as in
/// `serve`); empty when healthy.
pub async fn check(store: &Store, recordings: &Path) -> Vec<Unhealthy> {
    let spool = async {
        match store.spool_path() {
            Some(p) => spool_writable(p).await,
            None => Ok(()),
        }
    };
    let (db, rec, spool) = tokio::join!(database(store), recordings_writable(recordings), spool);
    [db.err(), rec.err(), spool.err()]
        .into_iter()
        .flatten()
        .collect()
}

/// Every place `serve` writes on its own, probed as the process is now
/// (after a privilege drop, as that user): the recordings, reports and
/// spool, and a SQLite database. A PostgreSQL server is not asked: it may
/// be down at start, which `serve` rides out.
pub async fn writable_places(store: &Store, config: &crate::config::Config) -> Vec<Unhealthy> {
    let db = async {
        match store.backend() {
            crate::store::Backend::Sqlite => database(store).await,
            crate::store::Backend::Postgres => Ok(()),
        }
    };
    let (db, rec, rep, spool) = tokio::join!(
        db,
        recordings_writable(&config.recordings),
        reports_writable(&config.reports),
        spool_writable(&config.audit_spool)
    );
    [db.err(), rec.err(), rep.err(), spool.err()]
        .into_iter()
        .flatten()
        .collect()
}

/// A write the database must accept, then rolls back: a database that
/// answers but is read-only (a standby, a full disk, a read-only file)
/// would refuse every audit event, so every session. The probe opens a
/// connection of its own rather than borrowing a pooled one: a pooled
/// connection opened before a privilege drop can still work while every
/// new one fails (a SQLite file in a folder the user cannot enter).
pub async fn database(store: &Store) -> Result<(), Unhealthy> {
    let probe = async {
        use sqlx::{ConnectOptions, Connection};
        let mut conn = store
            .pool()
            .connect_options()
            .connect()
            .await
            .map_err(|e| Unhealthy::Database(e.to_string()))?;
        if store.backend() == crate::store::Backend::Sqlite {
            // Wait for a busy writer as the pool's connections do, within
            // the probe's own timeout.
            sqlx::query("PRAGMA busy_timeout = 4000")
                .execute(&mut conn)
                .await
                .map_err(|e| Unhealthy::Database(e.to_string()))?;
        }
        let mut tx = conn
            .begin()
            .await
            .map_err(|e| Unhealthy::Database(e.to_string()))?;
        // No staff name can start with '#', so the row never meets a real one.
        sqlx::query("INSERT INTO lockouts (username, failures) VALUES ($1, 0)")
            .bind(format!("#healthz-{}", uuid::Uuid::new_v4().simple()))
            .execute(&mut *tx)
            .await
            .map_err(|e| Unhealthy::Write(e.to_string()))?;
        tx.rollback()
            .await
            .map_err(|e| Unhealthy::Write(e.to_string()))?;
        let _ = conn.close().await;
        Ok(())
    };
    match tokio::time::timeout(DATABASE_TIMEOUT, probe).await {
        Ok(r) => r,
        Err(_) => Err(Unhealthy::DatabaseTimeout(DATABASE_TIMEOUT)),
    }
}

/// Creates the folder if missing (as the recorder would), then writes and
/// removes a probe file in it. Permission bits alone do not stop root, so
/// this really writes rather than looking at modes.
pub async fn recordings_writable(dir: &Path) -> Result<(), Unhealthy> {
    let shown = dir.to_path_buf();
    probe_folder(dir, true)
        .await
        .map_err(|message| Unhealthy::Recordings {
            path: shown,
            message,
        })
}

/// The reports folder takes a new file (the nightly report writes there).
pub async fn reports_writable(dir: &Path) -> Result<(), Unhealthy> {
    let shown = dir.to_path_buf();
    probe_folder(dir, true)
        .await
        .map_err(|message| Unhealthy::Reports {
            path: shown,
            message,
        })
}

/// The audit spool can do what it must when the database falters: append
/// to its file (opened for appending, nothing written) and replace it
/// (a new file in its folder, renamed over it; probed with a file
/// written and removed).
pub async fn spool_writable(path: &Path) -> Result<(), Unhealthy> {
    let shown = path.to_path_buf();
    let failed = |message: String| Unhealthy::Spool {
        path: shown.clone(),
        message,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    probe_folder(&dir, false).await.map_err(&failed)?;
    let file = path.to_path_buf();
    let append = move || -> std::io::Result<()> {
        match std::fs::OpenOptions::new().append(true).open(&file) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    };
    match tokio::task::spawn_blocking(append).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(failed(e.to_string())),
        Err(e) => Err(failed(format!("probe task failed: {e}"))),
    }
}

/// Writes and removes a probe file in `dir` (created first when `create`).
async fn probe_folder(dir: &Path, create: bool) -> Result<(), String> {
    let dir = dir.to_path_buf();
    let probe = move || -> std::io::Result<()> {
        use std::io::Write;
        if create {
            std::fs::create_dir_all(&dir)?;
        }
        let path = dir.join(format!(
            ".healthz-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"gatehouse healthz probe\n"));
        if let Err(e) = written {
            // Nothing to remove when it could not even be created.
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        std::fs::remove_file(&path)
    };
    match tokio::task::spawn_blocking(probe).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("probe task failed: {e}")),
    }
}

/// The problems as one line.
pub fn summary(problems: &[Unhealthy]) -> String {
    problems
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_database_probe_leaves_nothing_behind() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", tmp.path().join("g.db").display());
        let store = Store::open(&url, "n1").await.expect("open");
        database(&store).await.expect("writable");
        database(&store).await.expect("twice");
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM lockouts")
            .fetch_one(store.pool())
            .await
            .expect("count");
        assert_eq!(left, 0, "the probe rows were rolled back");
        store.close().await;
    }

    #[tokio::test]
    async fn a_folder_replaced_by_a_file_is_not_writable() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("recordings");
        recordings_writable(&dir)
            .await
            .expect("created and writable");
        assert_eq!(
            std::fs::read_dir(&dir).expect("read").count(),
            0,
            "probe removed"
        );
        std::fs::remove_dir(&dir).expect("rmdir");
        std::fs::write(&dir, b"not a folder").expect("write");
        let err = recordings_writable(&dir)
            .await
            .expect_err("a file is no folder");
        assert!(err.to_string().contains("not writable"), "{err}");
    }

    #[tokio::test]
    async fn a_spool_whose_folder_is_a_file_is_not_writable() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let spool = tmp.path().join("spool").join("audit-spool.jsonl");
        std::fs::create_dir_all(spool.parent().expect("parent")).expect("mkdir");
        spool_writable(&spool).await.expect("writable");
        std::fs::write(&spool, b"").expect("spool file");
        spool_writable(&spool)
            .await
            .expect("an existing spool file");
        let blocked = tmp.path().join("blocked");
        std::fs::write(&blocked, b"a file").expect("write");
        let err = spool_writable(&blocked.join("audit-spool.jsonl"))
            .await
            .expect_err("no folder to write in");
        assert!(err.to_string().contains("audit spool"), "{err}");
    }
}
