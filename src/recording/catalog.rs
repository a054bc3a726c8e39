//! Recordings at rest: finding them under the recordings folder, checking
//! their integrity, and their review history (`ID.review.json`).
//!
//! The folder is the source of truth: `scan` reads the sidecars, so the
//! CLI and the daily report see exactly what an auditor would see on disk.

use std::collections::BTreeSet;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ring::digest::{Context, SHA256};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::sidecar::{Sidecar, write_atomic};
use super::{RecordingError, review_path, sidecar_path, signing, validate_id};

/// Review state, decided by the latest review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReviewState {
    Unreviewed,
    Reviewed,
    Flagged,
}

impl ReviewState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewState::Unreviewed => "unreviewed",
            ReviewState::Reviewed => "reviewed",
            ReviewState::Flagged => "flagged",
        }
    }
}

impl FromStr for ReviewState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "unreviewed" => Ok(ReviewState::Unreviewed),
            "reviewed" => Ok(ReviewState::Reviewed),
            "flagged" => Ok(ReviewState::Flagged),
            _ => Err(format!("{s:?}: expected unreviewed, reviewed or flagged")),
        }
    }
}

impl fmt::Display for ReviewState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One review of a recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    pub by: String,
    /// RFC 3339, UTC.
    pub at: String,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub flagged: bool,
}

/// `ID.review.json`: the review history, oldest first.
#[derive(Debug, Serialize, Deserialize)]
struct ReviewFile {
    id: String,
    reviews: Vec<Review>,
}

/// One recording as found on disk.
#[derive(Debug, Clone, Serialize)]
pub struct RecordingInfo {
    pub id: String,
    /// The date folder, `YYYY-MM-DD` (UTC start date).
    pub date: String,
    pub cast_path: PathBuf,
    pub sidecar_path: PathBuf,
    pub cast_exists: bool,
    /// The sidecar, when present and readable.
    pub meta: Option<Sidecar>,
    /// Why the sidecar could not be read, when it exists but is broken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta_error: Option<String>,
    pub state: ReviewState,
    pub reviews: Vec<Review>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review_error: Option<String>,
}

/// Every recording under `root`, sorted by date folder, start time, id.
/// A missing `root` means no recordings yet.
pub fn scan(root: &Path) -> Result<Vec<RecordingInfo>, RecordingError> {
    let mut out = Vec::new();
    for (date, dir) in date_folders(root)? {
        let mut ids = BTreeSet::new();
        let entries = std::fs::read_dir(&dir).map_err(|e| RecordingError::io(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| RecordingError::io(&dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let stem = if let Some(s) = name.strip_suffix(".cast") {
                s
            } else if name.ends_with(".review.json") {
                continue;
            } else if let Some(s) = name.strip_suffix(".json") {
                s
            } else {
                continue;
            };
            if validate_id(stem).is_ok() {
                ids.insert(stem.to_owned());
            }
        }
        for id in ids {
            out.push(load(&dir, &date, &id));
        }
    }
    out.sort_by(|a, b| {
        let start = |i: &RecordingInfo| i.meta.as_ref().map(|m| m.started_at.clone());
        (&a.date, start(a), &a.id).cmp(&(&b.date, start(b), &b.id))
    });
    Ok(out)
}

/// The recording with this id, whatever its date folder.
pub fn find(root: &Path, id: &str) -> Result<RecordingInfo, RecordingError> {
    validate_id(id)?;
    for (date, dir) in date_folders(root)? {
        let cast = dir.join(format!("{id}.cast"));
        if cast.exists() || sidecar_path(&cast).exists() {
            return Ok(load(&dir, &date, id));
        }
    }
    Err(RecordingError::NotFound(id.to_owned()))
}

/// The recordings of session `session`: `ID`, then `ID-2`, `ID-3`... (see
/// `ConnState::next_recording_id`), up to the first one missing, at most
/// 64.
pub fn of_session(root: &Path, session: &str) -> Vec<RecordingInfo> {
    let mut out = Vec::new();
    for n in 1..=64 {
        let id = if n == 1 {
            session.to_owned()
        } else {
            format!("{session}-{n}")
        };
        match find(root, &id) {
            Ok(r) => out.push(r),
            Err(_) => break,
        }
    }
    out
}

/// Appends a review to the recording's history and returns the updated info.
pub fn add_review(
    root: &Path,
    id: &str,
    by: &str,
    note: Option<&str>,
    flagged: bool,
    at: OffsetDateTime,
) -> Result<RecordingInfo, RecordingError> {
    let info = find(root, id)?;
    if let Some(e) = &info.review_error {
        // Never overwrite a history we could not read.
        return Err(RecordingError::Sidecar {
            path: review_path(&info.cast_path),
            message: e.clone(),
        });
    }
    let mut reviews = info.reviews;
    reviews.push(Review {
        by: by.to_owned(),
        at: at
            .to_offset(time::UtcOffset::UTC)
            .format(&Rfc3339)
            .map_err(|e| RecordingError::Format(format!("review time: {e}")))?,
        note: note.map(str::to_owned),
        flagged,
    });
    let file = ReviewFile {
        id: id.to_owned(),
        reviews,
    };
    let path = review_path(&info.cast_path);
    let mut text = serde_json::to_string_pretty(&file).map_err(|e| RecordingError::Sidecar {
        path: path.clone(),
        message: e.to_string(),
    })?;
    text.push('\n');
    write_atomic(&path, text.as_bytes())?;
    find(root, id)
}

/// Why a recording does not verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    MissingCast,
    MissingSidecar,
    UnreadableSidecar {
        error: String,
    },
    /// The sidecar names another recording or cast file.
    WrongSidecar,
    /// Never finished (bastion stopped or crashed) or recording failed.
    Incomplete {
        error: Option<String>,
    },
    UnreadableCast {
        error: String,
    },
    HashMismatch {
        recorded: String,
        actual: String,
    },
    Unsigned,
    /// Signed by a key other than the configured signing key.
    UnknownKey {
        key: String,
    },
    /// No signing key is configured to check against.
    NoKey,
    BadSignature,
    /// A sidecar format this build does not know how to check.
    UnknownFormat {
        format: u32,
    },
    /// The audit log says this recording was made (`recording.start`),
    /// and neither its cast nor its sidecar is on disk any more.
    Gone {
        session: Option<String>,
        started: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::MissingCast => f.write_str("missing cast"),
            Problem::MissingSidecar => f.write_str("missing sidecar"),
            Problem::UnreadableSidecar { error } => write!(f, "unreadable sidecar: {error}"),
            Problem::WrongSidecar => f.write_str("sidecar describes another recording"),
            Problem::Incomplete { error: Some(e) } => {
                write!(f, "incomplete: recording failed: {e}")
            }
            Problem::Incomplete { error: None } => {
                f.write_str("incomplete: never finished (bastion stopped or crashed)")
            }
            Problem::UnreadableCast { error } => write!(f, "unreadable cast: {error}"),
            Problem::HashMismatch { recorded, actual } => {
                write!(f, "hash mismatch: sidecar {recorded}, cast {actual}")
            }
            Problem::Unsigned => f.write_str("no signature"),
            Problem::UnknownKey { key } => {
                write!(f, "signed by {key}, not the configured signing key")
            }
            Problem::NoKey => f.write_str("no signing key configured to verify with"),
            Problem::BadSignature => f.write_str("bad signature"),
            Problem::UnknownFormat { format } => write!(f, "unknown sidecar format {format}"),
            Problem::Gone { session, started } => write!(
                f,
                "missing: the audit log says it was recorded (session {}, {started}), \
                 and its cast and sidecar are gone",
                session.as_deref().unwrap_or("-")
            ),
        }
    }
}

/// Checks a recording: the cast's SHA-256 against the sidecar, and the
/// sidecar's signature against `public_key` (the configured signing key;
/// the sidecar's own key must be that one). Empty means it verifies.
pub fn verify(info: &RecordingInfo, public_key: Option<&[u8]>) -> Vec<Problem> {
    let mut problems = Vec::new();
    if !info.cast_exists {
        problems.push(Problem::MissingCast);
    }
    let meta = match (&info.meta, &info.meta_error) {
        (Some(m), _) => m,
        (None, Some(e)) => {
            problems.push(Problem::UnreadableSidecar { error: e.clone() });
            return problems;
        }
        (None, None) => {
            problems.push(Problem::MissingSidecar);
            return problems;
        }
    };
    if meta.id != info.id || meta.cast != format!("{}.cast", info.id) {
        problems.push(Problem::WrongSidecar);
    }
    if !meta.complete {
        problems.push(Problem::Incomplete {
            error: meta.error.clone(),
        });
        return problems;
    }
    if info.cast_exists {
        match sha256_file(&info.cast_path) {
            Ok(actual) => {
                let recorded = meta.cast_sha256.clone().unwrap_or_default();
                if !actual.eq_ignore_ascii_case(&recorded) {
                    problems.push(Problem::HashMismatch { recorded, actual });
                }
            }
            Err(e) => problems.push(Problem::UnreadableCast {
                error: e.to_string(),
            }),
        }
    }
    let (Some(sig_hex), Some(key_text)) = (&meta.signature, &meta.signing_key) else {
        problems.push(Problem::Unsigned);
        return problems;
    };
    let Some(public_key) = public_key else {
        problems.push(Problem::NoKey);
        return problems;
    };
    if signing::decode_public_key(key_text).as_deref() != Some(public_key) {
        problems.push(Problem::UnknownKey {
            key: key_text.clone(),
        });
        return problems;
    }
    let Some(msg) = meta.signed_message() else {
        problems.push(Problem::UnknownFormat {
            format: meta.format,
        });
        return problems;
    };
    let sig_ok = hex::decode(sig_hex)
        .map(|sig| signing::verify(public_key, &msg, &sig))
        .unwrap_or(false);
    if !sig_ok {
        problems.push(Problem::BadSignature);
    }
    problems
}

/// Seals recordings that a crash or kill left unfinished, so that from now
/// on they are tamper-evident too: a torn last line is cut off (the cast
/// then plays to its last whole event), and the sidecar is completed with
/// `interrupted: true`, `ended_at` = start + last event time, the cast's
/// hash and a signature. Byte counts and stream hashes stay unknown (0 and
/// null). Call it at startup, before any recorder runs: a live recording
/// must not be sealed. Returns the ids sealed; one that cannot be sealed is
/// logged and left as it is.
pub fn seal_interrupted(
    root: &Path,
    signer: &signing::Signer,
) -> Result<Vec<String>, RecordingError> {
    seal_interrupted_except(root, signer, |_| false)
}

/// [`seal_interrupted`], leaving alone the recordings of sessions for
/// which `live(session_id)` holds: nodes sharing a recordings folder must
/// not seal each other's running recordings when one of them starts.
pub fn seal_interrupted_except(
    root: &Path,
    signer: &signing::Signer,
    live: impl Fn(&str) -> bool,
) -> Result<Vec<String>, RecordingError> {
    let mut sealed = Vec::new();
    for info in scan(root)? {
        let Some(meta) = &info.meta else { continue };
        if meta.complete || !info.cast_exists || live(&meta.session) {
            continue;
        }
        match seal_one(&info, meta, signer) {
            Ok(()) => sealed.push(info.id.clone()),
            Err(e) => {
                tracing::warn!(recording = %info.id, "cannot seal an interrupted recording: {e}")
            }
        }
    }
    Ok(sealed)
}

fn seal_one(
    info: &RecordingInfo,
    meta: &Sidecar,
    signer: &signing::Signer,
) -> Result<(), RecordingError> {
    let path = &info.cast_path;
    let bytes = std::fs::read(path).map_err(|e| RecordingError::io(path, e))?;
    let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    if whole < bytes.len() {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| RecordingError::io(path, e))?;
        f.set_len(whole as u64)
            .and_then(|()| f.sync_all())
            .map_err(|e| RecordingError::io(path, e))?;
    }
    let kept = bytes.get(..whole).unwrap_or_default();
    let (_, mut reader) = super::cast::Reader::new(kept)?;
    let mut last = 0.0f64;
    while let Some(ev) = reader.next_event() {
        last = last.max(ev?.time);
    }
    let started = OffsetDateTime::parse(&meta.started_at, &Rfc3339)
        .map_err(|e| RecordingError::Format(format!("started_at: {e}")))?;
    let ended = started + time::Duration::seconds_f64(last);
    let mut s = meta.clone();
    s.complete = true;
    s.interrupted = true;
    s.ended_at = Some(
        ended
            .format(&Rfc3339)
            .map_err(|e| RecordingError::Format(format!("ended_at: {e}")))?,
    );
    s.cast_sha256 = Some(hex::encode(ring::digest::digest(&SHA256, kept).as_ref()));
    s.signing_key = Some(signer.public_key_hex());
    // An old provisional sidecar keeps its format (its stream hashes are
    // unknown either way); one of a format this build does not know is
    // left as it is.
    let msg = s
        .signed_message()
        .ok_or_else(|| RecordingError::Format(format!("unknown sidecar format {}", s.format)))?;
    s.signature = Some(hex::encode(signer.sign(&msg)));
    s.write(&info.sidecar_path)
}

/// Hex SHA-256 of a file, read in blocks.
pub fn sha256_file(path: &Path) -> Result<String, RecordingError> {
    let mut file = std::fs::File::open(path).map_err(|e| RecordingError::io(path, e))?;
    let mut ctx = Context::new(&SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| RecordingError::io(path, e))?;
        if n == 0 {
            break;
        }
        ctx.update(buf.get(..n).unwrap_or_default());
    }
    Ok(hex::encode(ctx.finish().as_ref()))
}

/// `(YYYY-MM-DD, path)` of each date folder, sorted.
fn date_folders(root: &Path) -> Result<Vec<(String, PathBuf)>, RecordingError> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RecordingError::io(root, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| RecordingError::io(root, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if is_date(&name) && entry.path().is_dir() {
            out.push((name, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn is_date(s: &str) -> bool {
    s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        })
}

fn load(dir: &Path, date: &str, id: &str) -> RecordingInfo {
    let cast_path = dir.join(format!("{id}.cast"));
    let sidecar_path = sidecar_path(&cast_path);
    let (meta, meta_error) = if sidecar_path.exists() {
        match Sidecar::read(&sidecar_path) {
            Ok(m) => (Some(m), None),
            Err(e) => (None, Some(e.to_string())),
        }
    } else {
        (None, None)
    };
    let (reviews, review_error) = read_reviews(&review_path(&cast_path));
    let state = match reviews.last() {
        None => ReviewState::Unreviewed,
        Some(r) if r.flagged => ReviewState::Flagged,
        Some(_) => ReviewState::Reviewed,
    };
    RecordingInfo {
        id: id.to_owned(),
        date: date.to_owned(),
        cast_exists: cast_path.exists(),
        cast_path,
        sidecar_path,
        meta,
        meta_error,
        state,
        reviews,
        review_error,
    }
}

fn read_reviews(path: &Path) -> (Vec<Review>, Option<String>) {
    match std::fs::read_to_string(path) {
        Ok(text) => match serde_json::from_str::<ReviewFile>(&text) {
            Ok(f) => (f.reviews, None),
            Err(e) => (Vec::new(), Some(format!("{}: {e}", path.display()))),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Vec::new(), None),
        Err(e) => (Vec::new(), Some(format!("{}: {e}", path.display()))),
    }
}
