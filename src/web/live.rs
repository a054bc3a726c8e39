//! Recordings as data: a cast's bytes for the player (never HTML), and a
//! live session's cast as server-sent events while it is being written.
//!
//! The recorder flushes at least every second, so the stream polls the
//! file: each complete line (the asciicast header, then one event per
//! line) is one SSE message, in the form the asciinema player's
//! `eventsource` driver reads. When the session has ended and the file has
//! stopped growing, a `done` event closes the stream.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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
    /// The cast, once it exists.
    path: Option<PathBuf>,
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
    let tail = Tail {
        state: state.clone(),
        session: s.id.clone(),
        path: None,
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
                    let stop = t.state.shared.shutdown.clone();
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
            match self.state.shared.store.session_get(&self.session).await {
                Ok(Some(s)) => self.ended = s.ended_at.is_some(),
                Ok(None) => return Step::Stop,
                Err(e) => {
                    tracing::warn!("web: live: {e}");
                }
            }
        }
        if self.file.is_none() {
            if self.path.is_none() {
                let root = self.state.shared.config.recordings.clone();
                let id = self.session.clone();
                self.path = tokio::task::spawn_blocking(move || {
                    crate::recording::find(&root, &id).ok().map(|r| r.cast_path)
                })
                .await
                .ok()
                .flatten();
            }
            let Some(path) = &self.path else {
                // Not recorded (or not yet): an ended session never will be.
                return if self.ended { Step::Stop } else { Step::Idle };
            };
            match tokio::fs::File::open(path).await {
                Ok(f) => self.file = Some(f),
                Err(_) if !self.ended => return Step::Idle,
                Err(_) => return Step::Stop,
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
