//! Is this bastion fit to serve? Two checks, shared by `gatehouse healthz`
//! and the admin listener's `/healthz`: the database takes a write (a probe
//! row inserted and rolled back), and the recordings folder takes a new
//! file (a probe written and removed).
//! Either failing means new sessions would be refused or could not be
//! recorded, so a load balancer should stop sending staff here.

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
}

/// Runs both checks; empty when healthy.
pub async fn check(store: &Store, recordings: &Path) -> Vec<Unhealthy> {
    let (db, rec) = tokio::join!(database(store), recordings_writable(recordings));
    [db.err(), rec.err()].into_iter().flatten().collect()
}

/// A write the database must accept, then rolls back: a database that
/// answers but is read-only (a standby, a full disk, a read-only file)
/// would refuse every audit event, so every session.
pub async fn database(store: &Store) -> Result<(), Unhealthy> {
    let probe = async {
        let mut tx = store
            .pool()
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
            .map_err(|e| Unhealthy::Write(e.to_string()))
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
    let dir = dir.to_path_buf();
    let shown = dir.clone();
    let probe = move || -> std::io::Result<()> {
        use std::io::Write;
        std::fs::create_dir_all(&dir)?;
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
        // Remove even after a failed write; the first error is the one shown.
        let removed = std::fs::remove_file(&path);
        written.and(removed)
    };
    let failed = |message: String| Unhealthy::Recordings {
        path: shown.clone(),
        message,
    };
    match tokio::task::spawn_blocking(probe).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(failed(e.to_string())),
        Err(e) => Err(failed(format!("probe task failed: {e}"))),
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
}
