//! A review as one act, for `recordings review` and the review console
//! alike: the entry in the recording's review history on disk (what the
//! daily report reads), its `recording.reviewed` audit event, and the
//! session's review state in the database (`sessions.review`, migration
//! 0022: the index the Today page and the sessions list read). Whether the
//! reviewer may review is the caller's check.
//!
//! The files stay the evidence: [`reconcile`] sets the database's states
//! from them when `serve` starts (recordings made before migration 0022,
//! reviews written where the database was not reachable).

use std::collections::BTreeMap;
use std::path::Path;

use time::OffsetDateTime;

use super::{RecordingError, RecordingInfo, ReviewState, add_review};
use crate::audit::{AuditEvent, EventKind};
use crate::store::{SessionReview, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error(transparent)]
    Recording(#[from] RecordingError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Appends the review and audits it; `via` says where it was made.
pub async fn review(
    store: &Store,
    root: &Path,
    id: &str,
    by: &str,
    note: Option<&str>,
    flag: bool,
    via: &str,
) -> Result<RecordingInfo, ReviewError> {
    let info = add_review(root, id, by, note, flag, OffsetDateTime::now_utc())?;
    let mut ev = AuditEvent::new(EventKind::RecordingReviewed)
        .user(by)
        .detail("recording", info.id.clone())
        .detail("state", info.state.to_string())
        .detail("flagged", flag)
        .detail("note", note.map(str::to_string))
        .detail("via", via);
    if let Some(m) = &info.meta {
        ev = ev
            .server(m.server.clone())
            .account(m.account.clone())
            .session(m.session.clone());
    }
    store.audit(&ev).await?;
    // The session's state in the index: its recordings' together (a
    // session with several recorded channels waits while one does).
    let session = info
        .meta
        .as_ref()
        .map_or_else(|| info.id.clone(), |m| m.session.clone());
    let (root, sid) = (root.to_path_buf(), session.clone());
    let recordings = tokio::task::spawn_blocking(move || super::catalog::of_session(&root, &sid))
        .await
        .unwrap_or_default();
    let states: Vec<ReviewState> = recordings.iter().map(|r| r.state).collect();
    if let Some(state) = session_state(&states) {
        store.session_review_set(&session, Some(state)).await?;
    }
    Ok(info)
}

impl From<ReviewState> for SessionReview {
    fn from(s: ReviewState) -> Self {
        match s {
            ReviewState::Unreviewed => SessionReview::Unreviewed,
            ReviewState::Reviewed => SessionReview::Reviewed,
            ReviewState::Flagged => SessionReview::Flagged,
        }
    }
}

/// A session's review state from its recordings' (none: `None`):
/// unreviewed while any one is, else flagged when any one is, else
/// reviewed.
pub fn session_state(recordings: &[ReviewState]) -> Option<SessionReview> {
    let has = |s: ReviewState| recordings.contains(&s);
    if recordings.is_empty() {
        None
    } else if has(ReviewState::Unreviewed) {
        Some(SessionReview::Unreviewed)
    } else if has(ReviewState::Flagged) {
        Some(SessionReview::Flagged)
    } else {
        Some(SessionReview::Reviewed)
    }
}

/// What [`reconcile`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// Sessions with recordings on disk.
    pub sessions: usize,
    /// Of those, the ones whose database state was changed to the files'.
    pub updated: usize,
    /// This node's ended sessions the database had waiting for review
    /// with no recording left on disk (removed since): set to none.
    pub cleared: usize,
}

/// The sessions of the recordings under `root` and their review state,
/// by session id. A recording whose sidecar cannot be read names its
/// session by its own id (a session's first recording has the session's
/// id; see `ConnState::next_recording_id`).
pub fn states_on_disk(recordings: &[RecordingInfo]) -> BTreeMap<String, SessionReview> {
    let mut by_session: BTreeMap<String, Vec<ReviewState>> = BTreeMap::new();
    for r in recordings {
        let session = r.meta.as_ref().map_or(&r.id, |m| &m.session);
        by_session.entry(session.clone()).or_default().push(r.state);
    }
    by_session
        .into_iter()
        .filter_map(|(s, states)| Some((s, session_state(&states)?)))
        .collect()
}

/// Sets the database's review state of every session with recordings
/// under `root` to what their files say, where it differs; and clears it
/// for `node`'s sessions the database has waiting whose recordings are
/// gone. Idempotent; `serve` runs it once at start, in the background.
/// An unreadable file counts as its recording unreviewed (as the daily
/// report counts it); a recording naming an unknown session is skipped.
pub async fn reconcile(store: &Store, root: &Path, node: &str) -> Result<Reconciled, ReviewError> {
    let began = OffsetDateTime::now_utc();
    let dir = root.to_path_buf();
    let found = tokio::task::spawn_blocking(move || super::scan(&dir))
        .await
        .map_err(|e| RecordingError::Failed(format!("recordings scan: {e}")))??;
    let on_disk = states_on_disk(&found);
    drop(found);
    let ids: Vec<String> = on_disk.keys().cloned().collect();
    let in_db = store.session_reviews(&ids).await?;
    let mut done = Reconciled {
        sessions: on_disk.len(),
        ..Reconciled::default()
    };
    for (id, state) in &on_disk {
        let Some(&was) = in_db.get(id) else { continue };
        if was == Some(*state) {
            continue;
        }
        let mut state = *state;
        if was.is_some() {
            // Set since (a recording begun, a review written after the
            // scan read its files): read this session's files again.
            let (dir, sid) = (root.to_path_buf(), id.clone());
            let again = tokio::task::spawn_blocking(move || super::catalog::of_session(&dir, &sid))
                .await
                .unwrap_or_default();
            let states: Vec<ReviewState> = again.iter().map(|r| r.state).collect();
            match session_state(&states) {
                Some(s) if Some(s) != was => state = s,
                _ => continue,
            }
        }
        if store.session_review_swap(id, was, Some(state)).await? {
            done.updated += 1;
        }
    }
    // Only this node's sessions ended before the scan (their recordings
    // were all on disk when it read them), and only when its
    // recordings folder is there: a folder not mounted must not read as
    // every recording removed.
    if root.is_dir() {
        for id in store.node_sessions_waiting_review(node, began).await? {
            if !on_disk.contains_key(&id)
                && store
                    .session_review_swap(&id, Some(SessionReview::Unreviewed), None)
                    .await?
            {
                done.cleared += 1;
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use time::Duration;

    use super::*;
    use crate::recording::{Kind, Recorder, RecorderOptions, RecordingMeta, Signer};
    use crate::store::SessionRow;

    /// A session row of `node` (ended, or live when `live`) with the
    /// database review state `review`.
    pub(crate) fn row(
        id: &str,
        node: &str,
        started_at: OffsetDateTime,
        live: bool,
        review: Option<SessionReview>,
    ) -> SessionRow {
        SessionRow {
            id: id.into(),
            user: "alice".into(),
            server: Some("web1".into()),
            account: Some("root".into()),
            source: "127.0.0.1".into(),
            node: node.into(),
            started_at,
            ended_at: (!live).then(|| started_at + Duration::minutes(1)),
            mode: Some("ssh-forwarding".into()),
            grant_id: None,
            recorded: true,
            bytes_up: 0,
            bytes_down: 0,
            exit_status: Some(0),
            end_reason: None,
            flagged: None,
            review,
        }
    }

    /// A finished recording `id` of session `session` under `root`.
    pub(crate) async fn record(root: &Path, id: &str, session: &str, at: OffsetDateTime) {
        let keys = root.parent().unwrap().join("keys/signing_ed25519.pk8");
        let signer = Arc::new(Signer::load_or_create(&keys).unwrap());
        let meta = RecordingMeta {
            id: id.into(),
            session: session.into(),
            user: "alice".into(),
            server: "web1".into(),
            account: "root".into(),
            source: "127.0.0.1:50000".into(),
            grant: None,
            kind: Kind::Shell,
            command: None,
            term: Some("xterm".into()),
            width: 80,
            height: 24,
            started_at: at,
        };
        let opts = RecorderOptions {
            record_input: true,
            text_cap: 100,
        };
        let rec = Recorder::start(root, meta, signer, opts).await.unwrap();
        rec.output(Bytes::from_static(b"$ ")).await.unwrap();
        rec.finish(Some(0), None).await.unwrap();
    }

    async fn state(store: &Store, id: &str) -> Option<SessionReview> {
        store.session_get(id).await.unwrap().unwrap().review
    }

    /// The files are the evidence: reconciling sets the database's states
    /// from them (recordings made before migration 0022, reviews written
    /// where the database was not told), clears this node's waiting
    /// sessions whose recordings are gone, leaves other nodes' and live
    /// ones alone, skips what it cannot read, and changes nothing when run
    /// again.
    #[tokio::test]
    async fn reconcile_sets_the_index_from_the_files() {
        use SessionReview::*;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("recordings");
        let url = format!("sqlite://{}", dir.path().join("g.db").display());
        let store = Store::open(&url, "n1").await.unwrap();
        let t = time::macros::datetime!(2026-03-04 10:00 UTC);
        let minute = |n: i64| t + Duration::minutes(n);

        // "before": recorded before the migration (NULL), never reviewed.
        // "reviewed": reviewed by the CLI elsewhere; the database still
        // says unreviewed. "flagged": two channels, the second flagged.
        // "half": two channels, one reviewed. "gone": its recording was
        // removed. "live", "other": waiting, no recording here.
        for (id, node, m, live, review) in [
            ("before", "n1", 0, false, None),
            ("reviewed", "n1", 1, false, Some(Unreviewed)),
            ("flagged", "n1", 2, false, Some(Unreviewed)),
            ("half", "n1", 3, false, None),
            ("gone", "n1", 4, false, Some(Unreviewed)),
            ("live", "n1", 5, true, Some(Unreviewed)),
            ("other", "n2", 6, false, Some(Unreviewed)),
        ] {
            store
                .session_start(&row(id, node, minute(m), live, review))
                .await
                .unwrap();
        }
        for (id, session, m) in [
            ("before", "before", 0),
            ("reviewed", "reviewed", 1),
            ("flagged", "flagged", 2),
            ("flagged-2", "flagged", 2),
            ("half", "half", 3),
            ("half-2", "half", 3),
            ("unknown", "unknown", 7),
        ] {
            record(&root, id, session, minute(m)).await;
        }
        let at = minute(30);
        for (id, flag) in [("reviewed", false), ("flagged", false), ("flagged-2", true)] {
            crate::recording::add_review(&root, id, "carol", None, flag, at).unwrap();
        }
        crate::recording::add_review(&root, "half", "carol", None, false, at).unwrap();
        // A broken review history: its recording counts as unreviewed.
        let day = root.join("2026-03-04");
        std::fs::write(day.join("unknown.review.json"), "{ not json").unwrap();
        // A stray file that is no recording at all.
        std::fs::write(day.join("notes.txt"), "hello").unwrap();

        let done = reconcile(&store, &root, "n1").await.unwrap();
        assert_eq!(
            done,
            Reconciled {
                sessions: 5,
                updated: 4,
                cleared: 1,
            }
        );
        assert_eq!(state(&store, "before").await, Some(Unreviewed));
        assert_eq!(state(&store, "reviewed").await, Some(Reviewed));
        assert_eq!(state(&store, "flagged").await, Some(Flagged));
        assert_eq!(state(&store, "half").await, Some(Unreviewed));
        assert_eq!(state(&store, "gone").await, None);
        assert_eq!(state(&store, "live").await, Some(Unreviewed));
        assert_eq!(state(&store, "other").await, Some(Unreviewed));
        // Idempotent.
        let again = reconcile(&store, &root, "n1").await.unwrap();
        assert_eq!((again.updated, again.cleared), (0, 0));

        // A review through `review` updates the index at once: the
        // session's other channel is reviewed, so it is reviewed.
        review(&store, &root, "half-2", "carol", None, false, "test")
            .await
            .unwrap();
        assert_eq!(state(&store, "half").await, Some(Reviewed));
        review(&store, &root, "before", "carol", None, true, "test")
            .await
            .unwrap();
        assert_eq!(state(&store, "before").await, Some(Flagged));

        // No folder at all (not mounted): nothing read, nothing cleared.
        let none = reconcile(&store, &dir.path().join("absent"), "n1")
            .await
            .unwrap();
        assert_eq!(none, Reconciled::default());
        assert_eq!(state(&store, "live").await, Some(Unreviewed));
        store.close().await;
    }

    #[test]
    fn a_session_waits_while_any_of_its_recordings_does() {
        use ReviewState as R;
        assert_eq!(session_state(&[]), None);
        assert_eq!(
            session_state(&[R::Reviewed, R::Unreviewed, R::Flagged]),
            Some(SessionReview::Unreviewed)
        );
        assert_eq!(
            session_state(&[R::Reviewed, R::Flagged]),
            Some(SessionReview::Flagged)
        );
        assert_eq!(
            session_state(&[R::Reviewed, R::Reviewed]),
            Some(SessionReview::Reviewed)
        );
    }
}
