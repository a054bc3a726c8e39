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

on_both_backends!(certify_suspend_and_marks);

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
