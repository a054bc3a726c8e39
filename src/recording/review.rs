//! A review as one act, for `recordings review` and the review console
//! alike: the entry in the recording's review history on disk (what the
//! daily report reads) and its `recording.reviewed` audit event. Whether
//! the reviewer may review is the caller's check.

use std::path::Path;

use time::OffsetDateTime;

use super::{RecordingError, RecordingInfo, add_review};
use crate::audit::{AuditEvent, EventKind};
use crate::store::{Store, StoreError};

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
    Ok(info)
}
