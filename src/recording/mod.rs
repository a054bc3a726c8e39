//! Session recordings (contract section 7): asciicast v2 casts at
//! `RECORDINGS/YYYY-MM-DD/ID.cast` (the UTC start date), each with a signed
//! sidecar `ID.json` and, once reviewed, `ID.review.json`.
//!
//! - [`recorder`]: the live [`Recorder`] the proxy feeds (fail closed,
//!   flushed at least every second).
//! - [`cast`]: the asciicast format, reader and UTF-8 carry-over decoder.
//! - [`sidecar`]: the sidecar document and exactly what its signature covers.
//! - [`signing`]: the Ed25519 signing key ([`Signer`]).
//! - [`catalog`]: finding recordings on disk ([`scan`], [`find`]), checking
//!   them ([`verify`]), sealing those a crash cut short
//!   ([`seal_interrupted`]) and their review state ([`add_review`]).
//! - [`search`]: where a text appeared on screen or was typed.
//! - [`playfilter`]: what `recordings play` lets through to a terminal.
//! - [`review`]: a review as one act (file, audit event, the session's
//!   review state in the database) and the start-up reconciliation of those
//!   states with the files.
//!
//! May import: audit values, config, metrics (counters), the store (in
//! `review` only: review events and sessions' review states).

pub(crate) mod cast;
pub(crate) mod catalog;
pub(crate) mod playfilter;
pub(crate) mod recorder;
pub(crate) mod review;
pub(crate) mod search;
pub(crate) mod sidecar;
pub(crate) mod signing;

use std::path::{Path, PathBuf};

pub use catalog::{
    Problem, RecordingInfo, Review, ReviewState, add_review, find, scan, seal_interrupted,
    seal_interrupted_except, verify,
};
pub use recorder::{
    FLUSH_INTERVAL, Kind, Recorder, RecorderOptions, RecordingMeta, RecordingSummary,
};
pub use search::{Hit, HitSource, search_recording};
pub use sidecar::{ByteCounts, Sidecar};
pub use signing::Signer;

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Recording failed; the session must end (fail closed).
    #[error("recording failed: {0}")]
    Failed(String),
    #[error("the recording has already finished")]
    Finished,
    #[error(
        "invalid recording id {0:?}: use letters, digits, '.', '_' and '-' (not first), at most 128"
    )]
    InvalidId(String),
    #[error("no recording {0}")]
    NotFound(String),
    #[error("recording {0} already exists: a recording is never overwritten")]
    Exists(String),
    #[error("signing key: {0}")]
    Signing(String),
    #[error("cast: {0}")]
    Format(String),
    #[error("{}: {message}", path.display())]
    Sidecar { path: PathBuf, message: String },
}

impl RecordingError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        RecordingError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A recording id is a file name stem: no path separators, no leading dot.
pub fn validate_id(id: &str) -> Result<(), RecordingError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && !id.starts_with('-')
        // `ID.review.json` must never be mistaken for another id's sidecar.
        && !id.ends_with(".review")
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(RecordingError::InvalidId(id.to_owned()))
    }
}

/// `ROOT/YYYY-MM-DD/ID.cast`.
pub fn cast_path(root: &Path, date: time::Date, id: &str) -> PathBuf {
    root.join(date_folder(date)).join(format!("{id}.cast"))
}

/// `YYYY-MM-DD`.
pub fn date_folder(date: time::Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// `ID.cast` -> `ID.json`.
pub fn sidecar_path(cast_path: &Path) -> PathBuf {
    cast_path.with_extension("json")
}

/// `ID.cast` -> `ID.review.json`.
pub fn review_path(cast_path: &Path) -> PathBuf {
    cast_path.with_extension("review.json")
}

#[cfg(test)]
mod tests;
