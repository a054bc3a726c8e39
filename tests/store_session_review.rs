//! The review state of recorded sessions in the store (issue 21,
//! migration 0022) on both backends: a session is born without one and
//! waits for review once a recording of it begins; a review changes it;
//! the Today page's count and oldest-first list, and the sessions list's
//! review filter, read it; the start-up reconciliation's compare-and-set
//! does not overwrite a state set meanwhile.

#[path = "support/pg.rs"]
mod pg;
#[macro_use]
#[path = "support/db.rs"]
mod db;

use db::Db;
use gatehouse::store::{SessionFilter, SessionReview, SessionRow};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

on_both_backends!(
    born_unmarked_then_waiting_then_reviewed,
    waiting_count_and_oldest_first,
    the_sessions_list_filters_by_review_state,
    reconciliation_sets_only_what_it_read,
);

const T0: OffsetDateTime = datetime!(2026-03-10 12:00 UTC);

fn session(id: &str, minute: i64, review: Option<SessionReview>) -> SessionRow {
    SessionRow {
        id: id.into(),
        user: "alice".into(),
        server: Some("web1".into()),
        account: Some("root".into()),
        source: "127.0.0.1".into(),
        node: "n1".into(),
        started_at: T0 + Duration::minutes(minute),
        ended_at: Some(T0 + Duration::minutes(minute + 1)),
        mode: Some("proxy".into()),
        grant_id: None,
        recorded: review.is_some(),
        bytes_up: 0,
        bytes_down: 0,
        exit_status: Some(0),
        end_reason: None,
        flagged: None,
        review,
    }
}

fn ids(rows: &[SessionRow]) -> Vec<&str> {
    rows.iter().map(|r| r.id.as_str()).collect()
}

async fn born_unmarked_then_waiting_then_reviewed(db: Db) {
    let s = db.open("n1").await;
    let mut row = session("s1", 0, None);
    row.recorded = true;
    row.ended_at = None;
    s.session_start(&row).await.unwrap();
    // Recorded by policy, but no recording begun yet: nothing to review.
    assert_eq!(s.session_get("s1").await.unwrap().unwrap().review, None);
    assert_eq!(s.sessions_waiting_review(20).await.unwrap().total, 0);

    // A recording begins: the session waits for review.
    assert!(
        s.session_review_set("s1", Some(SessionReview::Unreviewed))
            .await
            .unwrap()
    );
    let got = s.session_get("s1").await.unwrap().unwrap();
    assert_eq!(got.review, Some(SessionReview::Unreviewed));
    let waiting = s.sessions_waiting_review(20).await.unwrap();
    assert_eq!((waiting.total, ids(&waiting.oldest)), (1, vec!["s1"]));
    assert_eq!(waiting.oldest[0], got);

    // Reviewed, then flagged by a later review: no longer waiting.
    for state in [SessionReview::Reviewed, SessionReview::Flagged] {
        assert!(s.session_review_set("s1", Some(state)).await.unwrap());
        assert_eq!(
            s.session_get("s1").await.unwrap().unwrap().review,
            Some(state)
        );
        assert_eq!(s.sessions_waiting_review(20).await.unwrap().total, 0);
    }
    // Ending the session keeps its review state.
    s.session_end("s1", T0 + Duration::minutes(5), 1, 2, Some(0), "closed")
        .await
        .unwrap();
    assert_eq!(
        s.session_get("s1").await.unwrap().unwrap().review,
        Some(SessionReview::Flagged)
    );
    // An unknown session is not created.
    assert!(
        !s.session_review_set("nope", Some(SessionReview::Unreviewed))
            .await
            .unwrap()
    );
    assert_eq!(s.sessions_waiting_review(20).await.unwrap().total, 0);
    s.close().await;
}

async fn waiting_count_and_oldest_first(db: Db) {
    let s = db.open("n1").await;
    use SessionReview::*;
    // Written out of start order; two started at the same time (by id).
    for (id, minute, review) in [
        ("w3", 30, Some(Unreviewed)),
        ("r1", 5, Some(Reviewed)),
        ("w1", 10, Some(Unreviewed)),
        ("none", 1, None),
        ("f1", 2, Some(Flagged)),
        ("w2b", 20, Some(Unreviewed)),
        ("w2a", 20, Some(Unreviewed)),
    ] {
        s.session_start(&session(id, minute, review)).await.unwrap();
    }
    let all = s.sessions_waiting_review(20).await.unwrap();
    assert_eq!(all.total, 4);
    assert_eq!(ids(&all.oldest), ["w1", "w2a", "w2b", "w3"]);
    // The list is capped, the count is not.
    let two = s.sessions_waiting_review(2).await.unwrap();
    assert_eq!((two.total, ids(&two.oldest)), (4, vec!["w1", "w2a"]));
    // One reviewed: the next oldest moves up.
    s.session_review_set("w1", Some(Reviewed)).await.unwrap();
    let two = s.sessions_waiting_review(2).await.unwrap();
    assert_eq!((two.total, ids(&two.oldest)), (3, vec!["w2a", "w2b"]));
    s.close().await;
}

async fn the_sessions_list_filters_by_review_state(db: Db) {
    let s = db.open("n1").await;
    use SessionReview::*;
    for (id, minute, review) in [
        ("u1", 1, Some(Unreviewed)),
        ("r1", 2, Some(Reviewed)),
        ("f1", 3, Some(Flagged)),
        ("u2", 4, Some(Unreviewed)),
        ("none", 5, None),
    ] {
        s.session_start(&session(id, minute, review)).await.unwrap();
    }
    let filter = |review| SessionFilter {
        review: Some(review),
        ..Default::default()
    };
    let page = s.sessions_page(&filter(Unreviewed), 50).await.unwrap();
    assert_eq!(ids(&page.rows), ["u2", "u1"]);
    assert!(page.rows.iter().all(|r| r.review == Some(Unreviewed)));
    let page = s.sessions_page(&filter(Reviewed), 50).await.unwrap();
    assert_eq!(ids(&page.rows), ["r1"]);
    let page = s.sessions_page(&filter(Flagged), 50).await.unwrap();
    assert_eq!(ids(&page.rows), ["f1"]);
    // Pages: one row a page, then the next from the cursor.
    let first = s.sessions_page(&filter(Unreviewed), 1).await.unwrap();
    assert_eq!(ids(&first.rows), ["u2"]);
    let next = SessionFilter {
        before: first.next.clone(),
        ..filter(Unreviewed)
    };
    let second = s.sessions_page(&next, 1).await.unwrap();
    assert_eq!(ids(&second.rows), ["u1"]);
    // By duration too.
    let page = s
        .sessions_by_duration(
            &filter(Unreviewed),
            gatehouse::store::DurationOrder::Longest,
            T0 + Duration::hours(1),
            None,
            50,
        )
        .await
        .unwrap();
    let mut got: Vec<&str> = page.rows.iter().map(|(_, r)| r.id.as_str()).collect();
    got.sort();
    assert_eq!(got, ["u1", "u2"]);
    // No filter: every session, with its state.
    let page = s
        .sessions_page(&SessionFilter::default(), 50)
        .await
        .unwrap();
    let states: Vec<(&str, Option<SessionReview>)> = page
        .rows
        .iter()
        .map(|r| (r.id.as_str(), r.review))
        .collect();
    assert_eq!(
        states,
        [
            ("none", None),
            ("u2", Some(Unreviewed)),
            ("f1", Some(Flagged)),
            ("r1", Some(Reviewed)),
            ("u1", Some(Unreviewed)),
        ]
    );
    s.close().await;
}

async fn reconciliation_sets_only_what_it_read(db: Db) {
    let s = db.open("n1").await;
    use SessionReview::*;
    s.session_start(&session("old", 1, None)).await.unwrap();
    s.session_start(&session("u", 2, Some(Unreviewed)))
        .await
        .unwrap();
    let mut live = session("live", 3, Some(Unreviewed));
    live.ended_at = None;
    s.session_start(&live).await.unwrap();
    let mut other = session("other-node", 4, Some(Unreviewed));
    other.node = "n2".into();
    s.session_start(&other).await.unwrap();

    let read = s
        .session_reviews(&["old".into(), "u".into(), "missing".into()])
        .await
        .unwrap();
    assert_eq!(read.len(), 2, "{read:?}");
    assert_eq!(read["old"], None);
    assert_eq!(read["u"], Some(Unreviewed));

    // From what was read: NULL to reviewed; a stale `from` changes nothing.
    assert!(
        s.session_review_swap("old", None, Some(Reviewed))
            .await
            .unwrap()
    );
    assert!(
        !s.session_review_swap("old", None, Some(Flagged))
            .await
            .unwrap()
    );
    assert!(
        !s.session_review_swap("u", Some(Reviewed), Some(Flagged))
            .await
            .unwrap()
    );
    assert_eq!(
        s.session_get("old").await.unwrap().unwrap().review,
        Some(Reviewed)
    );
    assert_eq!(
        s.session_get("u").await.unwrap().unwrap().review,
        Some(Unreviewed)
    );

    // This node's ended sessions waiting, ended before the given time:
    // not the live one, not another node's.
    let ids = s
        .node_sessions_waiting_review("n1", T0 + Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(ids, ["u"]);
    let ids = s
        .node_sessions_waiting_review("n1", T0 + Duration::minutes(2))
        .await
        .unwrap();
    assert!(ids.is_empty(), "{ids:?}");
    assert!(
        s.session_review_swap("u", Some(Unreviewed), None)
            .await
            .unwrap()
    );
    assert_eq!(s.session_get("u").await.unwrap().unwrap().review, None);
    s.close().await;
}
