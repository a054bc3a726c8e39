//! Recordings as data: a cast's bytes for the player (never HTML), and a
//! live session's cast as server-sent events while it is being written.
//!
//! The recorder flushes at least every second, so the stream polls the
//! file: each complete line (the asciicast header, then one event per
//! line) is one SSE message, in the form the asciinema player's
//! `eventsource` driver reads. When the session has ended and the file has
//! stopped growing, a `done` event closes the stream.
//!
//! Streams are capped in total and per staff member ([`Streams`]: each
//! holds a connection and the open cast); one over a cap is refused with
//! 429. A stream opens the cast where the recorder puts it (the session's
//! start date, or the day after for a session started just before
//! midnight) and then follows that one file; it scans the recordings
//! folders only as a fallback, at most every [`RESCAN`].

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use tokio::io::AsyncReadExt;

use super::auth::Viewer;
use super::pages::{visible_recording, visible_session};
use super::{WebError, WebState};

/// How often a growing cast is looked at.
const POLL: Duration = Duration::from_millis(250);
/// A line longer than this is not a cast event: the stream stops.
const MAX_LINE: usize = 4 << 20;
/// Least time between two scans of the recordings folders by one stream
/// (only when the cast is not where the recorder puts it).
const RESCAN: Duration = Duration::from_secs(10);

/// Live views open now, in total and per staff member.
#[derive(Clone)]
pub struct Streams {
    total: usize,
    per_user: usize,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

/// One live view's place; given back when the stream ends.
pub struct StreamPermit {
    open: Arc<Mutex<HashMap<String, usize>>>,
    user: String,
}

impl Streams {
    pub fn new(total: usize, per_user: usize) -> Streams {
        Streams {
            total,
            per_user,
            open: Arc::default(),
        }
    }

    /// A place for one more stream of `user`, or the refusal to show.
    pub fn acquire(&self, user: &str) -> Result<StreamPermit, WebError> {
        let mut open = match self.open.lock() {
            Ok(o) => o,
            Err(p) => p.into_inner(),
        };
        let all: usize = open.values().sum();
        let mine = open.get(user).copied().unwrap_or(0);
        if mine >= self.per_user || all >= self.total {
            return Err(WebError::TooMany(format!(
                "too many live views open (at most {} per person, {} in all): close one and reload",
                self.per_user, self.total
            )));
        }
        *open.entry(user.to_string()).or_insert(0) += 1;
        crate::metrics::web_live_stream(1);
        Ok(StreamPermit {
            open: self.open.clone(),
            user: user.to_string(),
        })
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut open = match self.open.lock() {
            Ok(o) => o,
            Err(p) => p.into_inner(),
        };
        if let Some(n) = open.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.user);
            }
        }
        crate::metrics::web_live_stream(-1);
    }
}

pub async fn cast(
    State(state): State<Arc<WebState>>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let info = visible_recording(&state, &viewer, &id).await?;
    let file = tokio::fs::File::open(&info.cast_path)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => WebError::NotFound,
            _ => WebError::io(&info.cast_path, e),
        })?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CONTENT_DISPOSITION, "attachment"),
        ],
        Body::from_stream(tokio_util::io::ReaderStream::new(file)),
    )
        .into_response())
}

struct Tail {
    state: Arc<WebState>,
    session: String,
    /// Where the recorder puts the cast: the session's start date, then
    /// the day after.
    expected: Vec<PathBuf>,
    /// The cast found by a scan, when it is not where expected.
    path: Option<PathBuf>,
    /// The last scan of the recordings folders.
    scanned: Option<Instant>,
    _permit: StreamPermit,
    file: Option<tokio::fs::File>,
    partial: Vec<u8>,
    pending: VecDeque<String>,
    /// The session has ended: drain the file, then finish.
    ended: bool,
    finished: bool,
    polls: u32,
}

pub async fn events(
    State(state): State<Arc<WebState>>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, WebError> {
    let s = visible_session(&state, &viewer, &id).await?;
    let permit = state.streams.acquire(&viewer.user)?;
    let root = &state.core.config.recordings;
    let day = s.started_at.to_offset(time::UtcOffset::UTC).date();
    let expected = std::iter::once(day)
        .chain(day.next_day())
        .map(|d| crate::recording::cast_path(root, d, &s.id))
        .collect();
    let tail = Tail {
        state: state.clone(),
        session: s.id.clone(),
        expected,
        path: None,
        scanned: None,
        _permit: permit,
        file: None,
        partial: Vec::new(),
        pending: VecDeque::new(),
        ended: s.ended_at.is_some(),
        finished: false,
        polls: 0,
    };
    let stream = futures::stream::unfold(tail, |mut t| async move {
        loop {
            if let Some(line) = t.pending.pop_front() {
                return Some((Ok(Event::default().data(line)), t));
            }
            if t.finished {
                return None;
            }
            match t.step().await {
                Step::Data => continue,
                Step::Idle => {
                    if t.ended && t.file.is_some() {
                        t.finished = true;
                        return Some((Ok(Event::default().event("done").data("{}")), t));
                    }
                    let stop = t.state.core.shutdown.clone();
                    tokio::select! {
                        _ = tokio::time::sleep(POLL) => {}
                        _ = stop.cancelled() => t.finished = true,
                    }
                }
                Step::Stop => {
                    t.finished = true;
                    return Some((Ok(Event::default().event("done").data("{}")), t));
                }
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

enum Step {
    /// New lines are pending.
    Data,
    /// Nothing new yet.
    Idle,
    /// Cannot go on (no recording, unreadable, malformed).
    Stop,
}

impl Tail {
    async fn step(&mut self) -> Step {
        self.polls = self.polls.wrapping_add(1);
        // Has the session ended? Asked about once a second, before reading,
        // so that what was written before the end is still read.
        if !self.ended && self.polls % 4 == 1 {
            match self.state.core.store.session_get(&self.session).await {
                Ok(Some(s)) => self.ended = s.ended_at.is_some(),
                Ok(None) => return Step::Stop,
                Err(e) => {
                    tracing::warn!("web: live: {e}");
                }
            }
        }
        if self.file.is_none() {
            for path in self.expected.iter().chain(self.path.iter()) {
                if let Ok(f) = tokio::fs::File::open(path).await {
                    self.file = Some(f);
                    break;
                }
            }
            if self.file.is_none()
                && self.path.is_none()
                && self.scanned.is_none_or(|t| t.elapsed() >= RESCAN)
            {
                self.scanned = Some(Instant::now());
                let root = self.state.core.config.recordings.clone();
                let id = self.session.clone();
                self.path = tokio::task::spawn_blocking(move || {
                    crate::recording::find(&root, &id).ok().map(|r| r.cast_path)
                })
                .await
                .ok()
                .flatten();
                if let Some(path) = &self.path
                    && let Ok(f) = tokio::fs::File::open(path).await
                {
                    self.file = Some(f);
                }
            }
            if self.file.is_none() {
                // Not recorded (or not yet): an ended session never will be.
                return if self.ended { Step::Stop } else { Step::Idle };
            }
        }
        let Some(file) = self.file.as_mut() else {
            return Step::Stop;
        };
        let mut buf = vec![0u8; 64 * 1024];
        let n = match file.read(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("web: live: {e}");
                return Step::Stop;
            }
        };
        if n == 0 {
            // At the end for now; the next read returns what is appended.
            return Step::Idle;
        }
        self.partial
            .extend_from_slice(buf.get(..n).unwrap_or_default());
        while let Some(i) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            let text = String::from_utf8_lossy(&line);
            let text = text.trim();
            if !text.is_empty() {
                self.pending.push_back(text.to_string());
            }
        }
        if self.partial.len() > MAX_LINE {
            return Step::Stop;
        }
        Step::Data
    }
}
