//! The live recorder: one per recorded channel.
//!
//! The session task hands bytes to a [`Recorder`] (cheap to clone, one clone
//! per direction); a writer task owns the file. The channel between them is
//! bounded, so a slow disk slows the session instead of growing memory. The
//! writer turns bytes into whole asciicast lines, writes them out and
//! `fsync`s them within [`FLUSH_INTERVAL`] of their arrival, so a bastion
//! killed mid-session leaves a playable cast up to then. An idle recording
//! costs nothing: the writer sleeps until the first event after a flush
//! wakes it, and then flushes once, [`FLUSH_INTERVAL`] later, writing and
//! syncing in one trip to the blocking pool.
//!
//! Fail closed: the first write error puts the recorder in a failed state.
//! From then on every call returns `Err`, and [`Recorder::failed`] resolves
//! so the session task can end the session with the reason. Recording never
//! stops silently.
//!
//! Two modes, chosen by whether the channel has a PTY (`meta.term`):
//! - PTY (shells, `ssh -t` commands): every output byte becomes "o" events
//!   (UTF-8 split across chunks is carried over, invalid bytes become
//!   U+FFFD), resizes "r", keystrokes "i" when `record_input` is on.
//! - No PTY (exec, subsystems): the data may be binary and huge, so only
//!   the first `text_cap` bytes of output that is text are kept as "o"
//!   events (bare `\n` shown as `\r\n` so it plays like a terminal), and
//!   the sidecar carries the byte counts and BLAKE3 hashes of stdin, stdout
//!   and stderr. Input is hashed and counted, never stored.
//!
//! Byte counts and stream hashes are taken in the calling task, where the
//! bytes pass anyway; only what the cast needs is queued to the writer
//! (and, without a PTY, nothing once the text cap is reached or the stream
//! turned binary). A gigabyte through exec is hashed, not copied and queued.
//! Queued chunks keep their own timestamps and wait in a shared batch that
//! the writer takes at each flush, or as soon as it holds [`DRAIN_AT`]
//! bytes: a terminal's stream of small chunks costs the writer one wake-up
//! per batch, not one per chunk.
//!
//! This file holds the writer task and what it shares with the handle
//! (`handle`). May import: the rest of `recording`, config, metrics.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use ring::digest::{Context, SHA256};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::io::AsyncWriteExt;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::time::Instant;

use super::cast::{self, Code, Env, Header, TextEncoder, Utf8Decoder};
use super::sidecar::{self, ByteCounts, Sidecar};
use super::signing::Signer;
use super::{RecordingError, cast_path, sidecar_path, validate_id};

mod handle;

pub use handle::Recorder;

/// An event reaches the file and is `fsync`ed at most this long after it
/// was queued (plus the time the write and the sync take).
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(500);

/// Commands queued to the writer; a full queue makes callers wait.
const QUEUE_DEPTH: usize = 16;

/// A batch this large is handed to the writer at once. With the queue
/// bound above, at most about `DRAIN_AT * QUEUE_DEPTH` bytes wait for a
/// slow disk before the session waits too.
const DRAIN_AT: usize = 64 * 1024;

/// Pending lines are written out early once they reach this size. Each
/// write is a trip to the blocking pool (a wake-up of another thread and
/// one back), so a terminal streaming output makes one per this many
/// bytes of cast: at 64 KiB those trips cost more CPU than the writes
/// themselves (bench/RESULTS.md, issue 22). The buffer is freed at each
/// sync, so only a session streaming output holds it.
const WRITE_THRESHOLD: usize = 512 * 1024;

/// With a PTY, stream bytes are hashed in pieces at least this large.
const HASH_STAGE: usize = 32 * 1024;

/// What kind of channel is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Shell,
    Exec,
    Subsystem,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Shell => "shell",
            Kind::Exec => "exec",
            Kind::Subsystem => "subsystem",
        }
    }
}

/// Who, where, as whom, from where, when: fixed at the start.
#[derive(Debug, Clone)]
pub struct RecordingMeta {
    /// File name stem: `[A-Za-z0-9._-]`, e.g. the session id, or
    /// `SESSION-2` for a session's second channel.
    pub id: String,
    pub session: String,
    pub user: String,
    pub server: String,
    pub account: String,
    /// Client address, `IP:PORT`.
    pub source: String,
    pub grant: Option<i64>,
    pub kind: Kind,
    /// Exec command or subsystem name.
    pub command: Option<String>,
    /// The client's TERM when a PTY was requested; `None` means no PTY.
    pub term: Option<String>,
    pub width: u32,
    pub height: u32,
    /// Decides the date folder (its UTC date).
    pub started_at: OffsetDateTime,
}

/// Recorder settings, usually from `[recording]` in gatehouse.toml.
#[derive(Debug, Clone, Copy)]
pub struct RecorderOptions {
    /// Keep keystrokes as "i" events (PTY sessions).
    pub record_input: bool,
    /// Without a PTY: at most this many output bytes are kept as text.
    pub text_cap: usize,
}

impl RecorderOptions {
    pub fn from_config(c: &crate::config::RecordingConfig) -> Self {
        RecorderOptions {
            record_input: c.record_input,
            text_cap: c.exec_text_cap,
        }
    }
}

/// What a finished recording produced.
#[derive(Debug, Clone)]
pub struct RecordingSummary {
    pub cast_path: PathBuf,
    pub sidecar_path: PathBuf,
    /// The signed sidecar as written.
    pub sidecar: Sidecar,
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Running,
    Failed(String),
    Finished,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdin,
    Stdout,
    Stderr,
}

/// A chunk or resize waiting in the batch.
enum Event {
    Data {
        stream: Stream,
        at: Duration,
        data: Bytes,
    },
    Resize {
        at: Duration,
        cols: u32,
        rows: u32,
    },
}

#[derive(Default)]
struct Batch {
    events: Vec<Event>,
    bytes: usize,
}

enum Cmd {
    /// The batch is full: take it now.
    Drain,
    Finish {
        exit_status: Option<i32>,
        exit_signal: Option<String>,
        reply: oneshot::Sender<Result<RecordingSummary, RecordingError>>,
    },
}

/// One stream's byte count and running BLAKE3 (several times cheaper per
/// byte than SHA-256 here: the stream hash was most of the cost of
/// recording an exec channel). The cast's own hash stays SHA-256.
struct Tally {
    bytes: u64,
    hash: blake3::Hasher,
}

impl Tally {
    fn new() -> Mutex<Tally> {
        Mutex::new(Tally {
            bytes: 0,
            hash: blake3::Hasher::new(),
        })
    }
}

/// Shared by the handles and the writer: the tallies, which streams the
/// writer still wants the bytes of, and the batch waiting for it.
struct Streams {
    /// With a PTY every byte a handle queues is hashed by the writer
    /// (see [`Writer::hash_staged`]); otherwise the handles hash.
    pty: bool,
    batch: Mutex<Batch>,
    /// Signalled when the batch goes from empty to not: the writer, asleep
    /// while there is nothing to flush, arms its flush deadline.
    wake: Notify,
    stdin: Mutex<Tally>,
    stdout: Mutex<Tally>,
    stderr: Mutex<Tally>,
    want_stdin: AtomicBool,
    want_stdout: AtomicBool,
    want_stderr: AtomicBool,
}

impl Streams {
    fn tally(&self, s: Stream) -> MutexGuard<'_, Tally> {
        let m = match s {
            Stream::Stdin => &self.stdin,
            Stream::Stdout => &self.stdout,
            Stream::Stderr => &self.stderr,
        };
        // Hashing cannot panic halfway, so a poisoned lock still holds a
        // consistent tally.
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an event; true when the batch should be drained now.
    fn queue(&self, ev: Event, bytes: usize) -> bool {
        let (first, full) = {
            let mut b = self.batch.lock().unwrap_or_else(|e| e.into_inner());
            let first = b.events.is_empty();
            b.events.push(ev);
            b.bytes += bytes;
            (first, b.bytes >= DRAIN_AT)
        };
        if first {
            // Stores a permit if the writer is busy: it is not lost.
            self.wake.notify_one();
        }
        full
    }

    /// The waiting events, leaving `empty` (with its capacity) in their
    /// place.
    fn take_batch(&self, empty: Vec<Event>) -> Vec<Event> {
        let mut b = self.batch.lock().unwrap_or_else(|e| e.into_inner());
        b.bytes = 0;
        std::mem::replace(&mut b.events, empty)
    }

    fn want(&self, s: Stream) -> &AtomicBool {
        match s {
            Stream::Stdin => &self.want_stdin,
            Stream::Stdout => &self.want_stdout,
            Stream::Stderr => &self.want_stderr,
        }
    }

    /// Counts and hashes so far.
    fn totals(&self) -> (ByteCounts, [String; 3]) {
        let mut bytes = ByteCounts::default();
        let hex = |s: Stream, n: &mut u64| {
            let t = self.tally(s);
            *n = t.bytes;
            t.hash.finalize().to_hex().to_string()
        };
        let stdin = hex(Stream::Stdin, &mut bytes.stdin);
        let stdout = hex(Stream::Stdout, &mut bytes.stdout);
        let stderr = hex(Stream::Stderr, &mut bytes.stderr);
        (bytes, [stdin, stdout, stderr])
    }
}

/// The cast title: who became whom where, and what ran.
fn title(meta: &RecordingMeta) -> String {
    let base = format!(
        "{} as {}@{} ({})",
        meta.user,
        meta.account,
        meta.server,
        meta.kind.as_str()
    );
    match &meta.command {
        Some(c) => {
            let short: String = c.chars().take(200).collect();
            let more = if short.len() < c.len() { "..." } else { "" };
            format!("{base}: {short}{more}")
        }
        None => base,
    }
}

async fn write_sidecar(sidecar: Sidecar, path: PathBuf) -> Result<(), RecordingError> {
    tokio::task::spawn_blocking(move || sidecar.write(&path))
        .await
        .map_err(|e| RecordingError::Failed(format!("sidecar writer: {e}")))?
}

/// Text kept from one stream when there is no PTY.
#[derive(Default)]
struct TextStream {
    decoder: Utf8Decoder,
    /// Binary data seen: no more text from this stream.
    stopped: bool,
    /// The last character kept was `\r` (so a following `\n` stays as is).
    last_cr: bool,
}

struct Writer {
    /// Counts and hashes (kept by the handles); which bytes to send here.
    streams: Arc<Streams>,
    /// The cast, open for appending while lines flow; closed at each
    /// sync and opened again by the next write, so that an idle recorded
    /// session holds no descriptor (a node's open-file limit is shared by
    /// two sockets per session already).
    file: Option<std::fs::File>,
    cast_path: PathBuf,
    sidecar_path: PathBuf,
    /// The provisional sidecar, completed at the end.
    sidecar: Sidecar,
    signer: Arc<Signer>,
    pty: bool,
    record_input: bool,
    text_cap: u64,
    text_recorded: u64,
    /// Output went over `text_cap`: no more text is kept.
    cap_reached: bool,
    text_notes: Vec<String>,
    out_text: TextStream,
    err_text: TextStream,
    /// With a PTY: output, stderr and keystrokes straight from bytes to
    /// cast lines, one pass per byte (`cast::TextEncoder`).
    out_enc: TextEncoder,
    err_enc: TextEncoder,
    in_enc: TextEncoder,
    /// Over every byte written to the cast, header included: taken over
    /// each batch of lines as it goes to the file, not line by line.
    cast_hash: Context,
    /// The batch's event list, kept to hand back empty: no allocation per
    /// batch.
    spare: Vec<Event>,
    /// With a PTY: stdin, stdout, stderr bytes waiting to be hashed.
    staged: [Vec<u8>; 3],
    /// Whole lines not yet written to the file.
    pending: Vec<u8>,
    /// Lines written since the last fsync.
    unsynced: bool,
    /// When the oldest event not yet synced was seen: the flush is due
    /// [`FLUSH_INTERVAL`] later. `None` while everything is on disk.
    due_since: Option<Instant>,
    /// Times only move forward, even if two tasks' events cross in the queue.
    last_time: f64,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Cmd>, state: watch::Sender<State>) {
        let streams = self.streams.clone();
        loop {
            let due = self.due_since.map(|t| t + FLUSH_INTERVAL);
            let step = tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Cmd::Finish { exit_status, exit_signal, reply }) => {
                        let result = self.close(exit_status, exit_signal, &state).await;
                        let _ = reply.send(result);
                        return;
                    }
                    Some(Cmd::Drain) => {
                        self.due_since.get_or_insert_with(Instant::now);
                        self.on_drain().await
                    }
                    None => {
                        // Every handle dropped without finish (the session
                        // task died): close the recording properly anyway.
                        let _ = self.close(None, None, &state).await;
                        return;
                    }
                },
                () = streams.wake.notified(), if due.is_none() => {
                    self.due_since = Some(Instant::now());
                    Ok(())
                }
                () = sleep_until_due(due) => self.sync().await,
            };
            // A steady stream of drains must not starve the flush.
            let step = match step {
                Ok(())
                    if self
                        .due_since
                        .is_some_and(|t| t.elapsed() >= FLUSH_INTERVAL) =>
                {
                    self.sync().await
                }
                other => other,
            };
            if let Err(e) = step {
                let reason = e.to_string();
                tracing::error!(cast = %self.cast_path.display(), "recording failed: {reason}");
                state.send_replace(State::Failed(reason.clone()));
                // Refuse everything still queued or yet to come.
                rx.close();
                while let Some(cmd) = rx.recv().await {
                    if let Cmd::Finish { reply, .. } = cmd {
                        let _ = reply.send(Err(RecordingError::Failed(reason.clone())));
                    }
                }
                self.record_failure(reason).await;
                return;
            }
        }
    }

    /// Finishes the recording and publishes the outcome.
    async fn close(
        &mut self,
        exit_status: Option<i32>,
        exit_signal: Option<String>,
        state: &watch::Sender<State>,
    ) -> Result<RecordingSummary, RecordingError> {
        let result = self.finish(exit_status, exit_signal).await;
        match &result {
            Ok(_) => {
                state.send_replace(State::Finished);
            }
            Err(e) => {
                let reason = e.to_string();
                tracing::error!(cast = %self.cast_path.display(), "recording failed: {reason}");
                state.send_replace(State::Failed(reason.clone()));
                self.record_failure(reason).await;
            }
        }
        result
    }

    /// A handle found the batch full.
    async fn on_drain(&mut self) -> Result<(), RecordingError> {
        self.drain();
        if self.pending.len() >= WRITE_THRESHOLD {
            self.write_pending().await?;
        }
        Ok(())
    }

    /// Turns the waiting batch into cast lines.
    fn drain(&mut self) {
        let mut events = self.streams.take_batch(std::mem::take(&mut self.spare));
        for ev in events.drain(..) {
            match ev {
                Event::Data { stream, at, data } => {
                    if self.pty {
                        self.hash_staged(stream, &data);
                    }
                    let t = self.time(at);
                    match stream {
                        Stream::Stdout | Stream::Stderr => self.output_text(t, stream, &data),
                        Stream::Stdin => {
                            if self.pty && self.record_input {
                                self.in_enc.event(&mut self.pending, t, Code::Input, &data);
                            }
                        }
                    }
                }
                Event::Resize { at, cols, rows } => {
                    let t = self.time(at);
                    self.push(t, Code::Resize, &format!("{cols}x{rows}"));
                }
            }
        }
        self.spare = events;
    }

    /// Hashes a PTY stream's bytes in pieces of [`HASH_STAGE`] bytes or
    /// more: BLAKE3 runs several 1 KiB chunks side by side (AVX2) on a
    /// large update, while a terminal's odd-sized packets kept it on one
    /// lane, and it cost as much as the cast's SHA-256. Moving the stream
    /// hash here (from the session task) is also what lets it see the
    /// bytes together. `flush` hashes what is left and frees the space
    /// (idle sessions hold none).
    fn hash_staged(&mut self, stream: Stream, data: &[u8]) {
        let buf = &mut self.staged[stream as usize];
        if buf.is_empty() && data.len() >= HASH_STAGE {
            self.streams.tally(stream).hash.update(data);
            return;
        }
        buf.extend_from_slice(data);
        if buf.len() >= HASH_STAGE {
            self.streams.tally(stream).hash.update(buf);
            buf.clear();
        }
    }

    fn flush_staged(&mut self) {
        for (buf, stream) in
            self.staged
                .iter_mut()
                .zip([Stream::Stdin, Stream::Stdout, Stream::Stderr])
        {
            if !buf.is_empty() {
                self.streams.tally(stream).hash.update(buf);
            }
            *buf = Vec::new();
        }
    }

    fn time(&mut self, at: Duration) -> f64 {
        let t = at.as_secs_f64().max(self.last_time);
        self.last_time = t;
        t
    }

    fn output_text(&mut self, t: f64, which: Stream, data: &[u8]) {
        if self.pty {
            let enc = match which {
                Stream::Stderr => &mut self.err_enc,
                _ => &mut self.out_enc,
            };
            enc.event(&mut self.pending, t, Code::Output, data);
            return;
        }
        let name = if which == Stream::Stderr {
            "stderr"
        } else {
            "stdout"
        };
        let stream = match which {
            Stream::Stderr => &mut self.err_text,
            _ => &mut self.out_text,
        };
        if stream.stopped || self.cap_reached {
            self.streams.want(which).store(false, Ordering::Relaxed);
            return;
        }
        let room = self.text_cap.saturating_sub(self.text_recorded);
        let take = usize::try_from(room).unwrap_or(usize::MAX).min(data.len());
        let (text, invalid) = stream.decoder.decode(data.get(..take).unwrap_or_default());
        if invalid || text.contains('\0') {
            stream.stopped = true;
            self.streams.want(which).store(false, Ordering::Relaxed);
            self.text_notes.push(format!(
                "binary data on {name} at {t:.3}s: not recorded as text from then on"
            ));
            self.push(
                t,
                Code::Output,
                &format!("\r\n[gatehouse: binary data on {name} not recorded as text]\r\n"),
            );
            return;
        }
        self.text_recorded += take as u64;
        let text = crlf(&text, &mut stream.last_cr);
        self.push(t, Code::Output, &text);
        if take < data.len() {
            // Output went over the cap: stop keeping text, and say so.
            self.cap_reached = true;
            self.streams.want_stdout.store(false, Ordering::Relaxed);
            self.streams.want_stderr.store(false, Ordering::Relaxed);
            self.text_notes.push(format!(
                "text cap of {} bytes reached at {t:.3}s: later output counted and hashed only",
                self.text_cap
            ));
            self.push(
                t,
                Code::Output,
                &format!(
                    "\r\n[gatehouse: output beyond {} bytes not recorded as text; see the sidecar]\r\n",
                    self.text_cap
                ),
            );
        }
    }

    /// Queues one event line (nothing for empty text).
    fn push(&mut self, t: f64, code: Code, text: &str) {
        if text.is_empty() {
            return;
        }
        cast::write_event(&mut self.pending, t, code, text);
    }

    async fn write_pending(&mut self) -> Result<(), RecordingError> {
        self.write(false).await
    }

    /// Everything queued so far reaches the disk.
    async fn sync(&mut self) -> Result<(), RecordingError> {
        self.drain();
        self.flush_staged();
        self.due_since = None;
        let started = Instant::now();
        if self.pending.is_empty() && !self.unsynced {
            return Ok(());
        }
        self.write(true).await?;
        crate::metrics::recording_flushed(started.elapsed());
        Ok(())
    }

    /// Writes the pending lines and, with `sync`, `fdatasync`s the file:
    /// one trip to the blocking pool either way.
    async fn write(&mut self, sync: bool) -> Result<(), RecordingError> {
        if self.pending.is_empty() && !sync {
            return Ok(());
        }
        self.cast_hash.update(&self.pending);
        let file = self.file.take();
        let path = self.cast_path.clone();
        let mut buf = std::mem::take(&mut self.pending);
        let done = tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let result = (|| {
                let mut file = match file {
                    Some(f) => f,
                    // Never created here: a cast removed under a live
                    // recording is a failure, not a fresh file.
                    None => std::fs::OpenOptions::new().append(true).open(&path)?,
                };
                file.write_all(&buf)?;
                if sync {
                    file.sync_data()?;
                    drop_cached(&file);
                    // Closed here, off the runtime's threads.
                    return Ok(None);
                }
                Ok(Some(file))
            })();
            buf.clear();
            (buf, result)
        })
        .await;
        let (buf, result) = match done {
            Ok(done) => done,
            Err(e) => (Vec::new(), Err(std::io::Error::other(e.to_string()))),
        };
        // Kept for the next batch while output streams; after a sync
        // (at most every FLUSH_INTERVAL) given back, so a session that
        // went quiet holds none of it.
        self.pending = if sync { Vec::new() } else { buf };
        self.file = result.map_err(|e| RecordingError::io(&self.cast_path, e))?;
        self.unsynced = !sync;
        Ok(())
    }

    async fn finish(
        &mut self,
        exit_status: Option<i32>,
        exit_signal: Option<String>,
    ) -> Result<RecordingSummary, RecordingError> {
        self.drain();
        let t = self.last_time;
        if self.pty {
            self.out_enc.finish(&mut self.pending, t, Code::Output);
            self.err_enc.finish(&mut self.pending, t, Code::Output);
            if self.record_input {
                self.in_enc.finish(&mut self.pending, t, Code::Input);
            }
        }
        self.sync().await?;
        let ended_at = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .map_err(|e| RecordingError::Format(format!("end time: {e}")))?;
        let cast_hash = std::mem::replace(&mut self.cast_hash, Context::new(&SHA256));
        let (bytes, [stdin, stdout, stderr]) = self.streams.totals();
        let mut s = self.sidecar.clone();
        s.ended_at = Some(ended_at);
        s.complete = true;
        s.exit_status = exit_status;
        s.exit_signal = exit_signal;
        s.bytes = bytes;
        s.stdin_blake3 = Some(stdin);
        s.stdout_blake3 = Some(stdout);
        s.stderr_blake3 = Some(stderr);
        if !self.pty {
            s.text_recorded_bytes = Some(self.text_recorded);
            s.text_truncated = (!self.text_notes.is_empty()).then(|| self.text_notes.join("; "));
        }
        s.cast_sha256 = Some(hex::encode(cast_hash.finish().as_ref()));
        s.signing_key = Some(self.signer.public_key_hex());
        let msg = s.signed_message().ok_or_else(|| {
            RecordingError::Format(format!("unknown sidecar format {}", s.format))
        })?;
        s.signature = Some(hex::encode(self.signer.sign(&msg)));
        write_sidecar(s.clone(), self.sidecar_path.clone()).await?;
        self.sidecar = s.clone();
        Ok(RecordingSummary {
            cast_path: self.cast_path.clone(),
            sidecar_path: self.sidecar_path.clone(),
            sidecar: s,
        })
    }

    /// Best effort: the provisional sidecar says why recording stopped.
    async fn record_failure(&mut self, reason: String) {
        crate::metrics::recording_failed();
        let mut s = self.sidecar.clone();
        s.complete = false;
        s.signature = None;
        s.bytes = self.streams.totals().0;
        s.error = Some(reason);
        if let Err(e) = write_sidecar(s, self.sidecar_path.clone()).await {
            tracing::error!("cannot note the recording failure in the sidecar: {e}");
        }
    }
}

/// Lets the kernel drop the cast's pages from its cache once they are on
/// disk: a recording is written once and read rarely, and reusing freed
/// pages for the next writes is much cheaper than filling fresh ones (the
/// copy into new page-cache pages was the largest single cost of
/// recording a terminal; see DESIGN.md). Advice only: its failure changes
/// nothing.
fn drop_cached(file: &std::fs::File) {
    use std::os::fd::AsRawFd as _;
    // SAFETY: posix_fadvise reads no memory of ours; the descriptor is
    // open for the duration of the call.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
    }
}

/// Shows bare `\n` as `\r\n`, as a terminal would after `onlcr`.
fn crlf(text: &str, last_cr: &mut bool) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 16);
    for c in text.chars() {
        if c == '\n' && !*last_cr {
            out.push('\r');
        }
        out.push(c);
        *last_cr = c == '\r';
    }
    out
}

/// Sleeps until `due`, or forever without one.
async fn sleep_until_due(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
