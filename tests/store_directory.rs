//! The directory copy in the store (migration 0015) on SQLite and
//! PostgreSQL: the row a sync writes under its lock, the serial nodes
//! poll, the unreachable episode told once, and (PostgreSQL) one sync at a
//! time.

#[path = "support/db.rs"]
mod db;
#[path = "support/pg.rs"]
mod pg;

use db::Db;
use gatehouse::store::{Backend, Store};
use time::OffsetDateTime;

async fn copy_row_serial_and_episodes(db: Db) {
    let store = Store::open(&db.url, "n1").await.unwrap();
    assert!(store.directory_head().await.unwrap().is_none());
    assert!(store.directory_row().await.unwrap().is_none());
    let t0 = OffsetDateTime::now_utc();

    // The first failure opens an episode, the next ones do not.
    assert!(
        store
            .directory_failed(t0, "connect: refused")
            .await
            .unwrap()
    );
    assert!(
        !store
            .directory_failed(t0, "connect: refused")
            .await
            .unwrap()
    );
    let head = store.directory_head().await.unwrap().unwrap();
    assert!(head.unreachable && head.synced_at.is_none() && head.serial == 0);

    // A good sync stores the copy, bumps the serial, closes the episode.
    let mut tx = store.directory_begin().await.unwrap().unwrap();
    let row = tx.current().await.unwrap();
    assert_eq!(row.snapshot, "{\"users\":{}}");
    assert_eq!(row.last_error.as_deref(), Some("connect: refused"));
    assert!(tx.write(Some("{\"users\":{\"x\":1}}"), t0).await.unwrap());
    tx.commit().await.unwrap();
    let head = store.directory_head().await.unwrap().unwrap();
    assert_eq!(head.serial, 1);
    assert!(!head.unreachable);
    assert!(head.synced_at.is_some());

    // No change: the time moves, the serial does not, nothing recovers.
    let mut tx = store.directory_begin().await.unwrap().unwrap();
    assert!(
        !tx.write(None, t0 + time::Duration::seconds(5))
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    let row = store.directory_row().await.unwrap().unwrap();
    assert_eq!(row.serial, 1);
    assert_eq!(row.snapshot, "{\"users\":{\"x\":1}}");
    assert!(row.last_error.is_none());

    // A rolled-back (dry) run leaves the row as it was.
    let mut tx = store.directory_begin().await.unwrap().unwrap();
    tx.write(Some("{\"users\":{}}"), t0).await.unwrap();
    tx.rollback().await;
    assert_eq!(store.directory_row().await.unwrap().unwrap().serial, 1);

    // Another node sees the same row.
    let other = Store::open(&db.url, "n2").await.unwrap();
    assert_eq!(other.directory_head().await.unwrap().unwrap().serial, 1);
    if other.backend() == Backend::Postgres {
        // One sync at a time: the advisory lock is held by the first.
        let held = store.directory_begin().await.unwrap().unwrap();
        assert!(other.directory_begin().await.unwrap().is_none());
        held.rollback().await;
        assert!(other.directory_begin().await.unwrap().is_some());
    }
}

#[tokio::test]
async fn sqlite_copy_row_serial_and_episodes() {
    copy_row_serial_and_episodes(Db::sqlite().await).await;
}

#[tokio::test]
async fn postgres_copy_row_serial_and_episodes() {
    copy_row_serial_and_episodes(Db::postgres().await).await;
}
