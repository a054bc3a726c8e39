//! Access reviews in the store (contract section 14) on both backends:
//! certifications and suspensions are kept as history, and each
//! entitlement's mark is its latest of each; a later certification lifts
//! a suspension.

#[path = "support/pg.rs"]
mod pg;
#[macro_use]
#[path = "support/db.rs"]
mod db;

use db::Db;
use gatehouse::store::{ReviewKey, Store};
use time::macros::datetime;

on_both_backends!(
    certify_suspend_and_marks,
    the_latest_row_wins_whatever_the_order_written
);

fn key(user: &str, server: &str, account: &str) -> ReviewKey {
    ReviewKey {
        user: user.into(),
        server: server.into(),
        account: account.into(),
    }
}

async fn certify_suspend_and_marks(db: Db) {
    let store = Store::open(&db.url, "n1").await.unwrap();
    assert!(store.review_marks(None).await.unwrap().is_empty());

    let t1 = datetime!(2026-01-01 10:00 UTC);
    let t2 = datetime!(2026-02-01 10:00 UTC);
    let t3 = datetime!(2026-03-01 10:00 UTC);
    let bob_web = [key("bob", "web", "root"), key("bob", "web", "admin")];
    store
        .review_certify(&bob_web, "alice", Some("T-1"), t1)
        .await
        .unwrap();
    store
        .review_certify(&[key("dave", "db", "root")], "alice", None, t1)
        .await
        .unwrap();
    // A suspension after the certification is in force.
    store
        .review_suspend(&[key("bob", "web", "root")], "carol", "left the team", t2)
        .await
        .unwrap();

    let marks = store.review_marks(None).await.unwrap();
    let names: Vec<(&str, &str, &str)> = marks
        .iter()
        .map(|m| (m.user.as_str(), m.server.as_str(), m.account.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("bob", "web", "admin"),
            ("bob", "web", "root"),
            ("dave", "db", "root")
        ]
    );
    let root = &marks[1];
    assert_eq!(root.certified_at, Some(t1));
    assert_eq!(root.certified_by.as_deref(), Some("alice"));
    assert_eq!(root.note.as_deref(), Some("T-1"));
    assert_eq!(root.suspended_at, Some(t2));
    assert_eq!(root.suspended_by.as_deref(), Some("carol"));
    assert_eq!(root.reason.as_deref(), Some("left the team"));
    assert!(root.is_suspended());
    assert!(!marks[0].is_suspended());

    // One user's only.
    let bob = store.review_marks(Some("bob")).await.unwrap();
    assert_eq!(bob.len(), 2);
    assert!(bob.iter().all(|m| m.user == "bob"));
    assert!(store.review_marks(Some("zed")).await.unwrap().is_empty());

    // A later certification lifts it, and is the one shown.
    store
        .review_certify(&[key("bob", "web", "root")], "dave", None, t3)
        .await
        .unwrap();
    let bob = store.review_marks(Some("bob")).await.unwrap();
    let root = bob.iter().find(|m| m.account == "root").unwrap();
    assert_eq!(root.certified_at, Some(t3));
    assert_eq!(root.certified_by.as_deref(), Some("dave"));
    assert_eq!(root.note, None);
    assert_eq!(root.suspended_at, Some(t2));
    assert!(!root.is_suspended());

    // Several nodes share it: another store on the same database sees it.
    let other = Store::open(&db.url, "n2").await.unwrap();
    assert_eq!(
        other.review_marks(None).await.unwrap(),
        store.review_marks(None).await.unwrap()
    );
    other.close().await;
    store.close().await;
}

/// Each entitlement's mark is its latest row of each table by time, and
/// by the order written among rows of the same time, whatever order the
/// rows were written in; other entitlements' rows do not leak into it.
async fn the_latest_row_wins_whatever_the_order_written(db: Db) {
    let store = Store::open(&db.url, "n1").await.unwrap();
    let t1 = datetime!(2026-01-01 10:00 UTC);
    let t2 = datetime!(2026-02-01 10:00 UTC);
    let t3 = datetime!(2026-03-01 10:00 UTC);
    let k = key("erin", "web", "root");
    let other = key("erin", "web", "deploy");
    // Written out of time order: t3 first, then older ones, then a second
    // row at t3 (the later written wins the tie).
    for (at, by) in [(t3, "c3"), (t1, "c1"), (t2, "c2"), (t3, "c3b")] {
        store
            .review_certify(std::slice::from_ref(&k), by, Some(by), at)
            .await
            .unwrap();
    }
    store
        .review_certify(std::slice::from_ref(&other), "o1", None, t1)
        .await
        .unwrap();
    for (at, by) in [(t2, "s2"), (t1, "s1")] {
        store
            .review_suspend(std::slice::from_ref(&k), by, by, at)
            .await
            .unwrap();
    }
    let marks = store.review_marks(Some("erin")).await.unwrap();
    assert_eq!(marks.len(), 2, "{marks:?}");
    let (deploy, root) = (&marks[0], &marks[1]);
    assert_eq!(deploy.account, "deploy");
    assert_eq!(deploy.certified_by.as_deref(), Some("o1"));
    assert_eq!(deploy.suspended_at, None);
    assert_eq!(root.certified_at, Some(t3));
    assert_eq!(root.certified_by.as_deref(), Some("c3b"));
    assert_eq!(root.note.as_deref(), Some("c3b"));
    assert_eq!(root.suspended_at, Some(t2));
    assert_eq!(root.suspended_by.as_deref(), Some("s2"));
    assert_eq!(root.reason.as_deref(), Some("s2"));
    // Certified after the latest suspension: not suspended.
    assert!(!root.is_suspended());
    assert_eq!(store.review_marks(None).await.unwrap(), marks);
    store.close().await;
}
