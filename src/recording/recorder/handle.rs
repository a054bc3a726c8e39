//! The recorder's handle: what the session task calls (bytes in, resize,
//! finish); it counts and hashes in the caller and queues to the writer in
//! the parent. May import: the parent (`recording::recorder`).

use super::*;

/// A handle on a live recording. Clone it to feed it from several tasks;
/// call [`Recorder::finish`] once, from any clone, when the channel closes.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Cmd>,
    state: watch::Receiver<State>,
    start: Instant,
    cast_path: Arc<PathBuf>,
    streams: Arc<Streams>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("cast_path", &self.cast_path)
            .finish()
    }
}

impl Recorder {
    /// Creates `ROOT/YYYY-MM-DD/ID.cast` (never overwriting one), writes the
    /// header and a provisional sidecar, and starts the writer task.
    pub async fn start(
        root: &Path,
        meta: RecordingMeta,
        signer: Arc<Signer>,
        opts: RecorderOptions,
    ) -> Result<Recorder, RecordingError> {
        validate_id(&meta.id)?;
        let started_at = meta.started_at.to_offset(time::UtcOffset::UTC);
        let cast_path = cast_path(root, started_at.date(), &meta.id);
        let sidecar_path = sidecar_path(&cast_path);
        let dir = cast_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| root.to_path_buf());
        tokio::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(&dir)
            .await
            .map_err(|e| RecordingError::io(&dir, e))?;
        let mut file = match tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&cast_path)
            .await
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(RecordingError::Exists(meta.id.clone()));
            }
            Err(e) => return Err(RecordingError::io(&cast_path, e)),
        };

        let pty = meta.term.is_some();
        // Exec channels usually come without a window size: play them in
        // a standard terminal rather than a 0x0 one.
        let (width, height) = if meta.width == 0 || meta.height == 0 {
            (80, 24)
        } else {
            (meta.width.min(10_000), meta.height.min(10_000))
        };
        let header = Header {
            version: 2,
            width,
            height,
            timestamp: Some(started_at.unix_timestamp()),
            command: meta.command.clone(),
            title: Some(title(&meta)),
            env: Some(Env {
                term: meta.term.clone(),
                shell: None,
            }),
        };
        let header_line = cast::header_line(&header)?;
        let mut cast_hash = Context::new(&SHA256);
        cast_hash.update(header_line.as_bytes());
        file.write_all(header_line.as_bytes())
            .await
            .map_err(|e| RecordingError::io(&cast_path, e))?;
        file.flush()
            .await
            .map_err(|e| RecordingError::io(&cast_path, e))?;
        // From here on the writer does its I/O in whole blocking steps
        // (write and sync together), not one pool trip per call.
        let file = Some(file.into_std().await);

        let sidecar = new_sidecar(&meta, &header, started_at, &opts, &signer)?;
        write_sidecar(sidecar.clone(), sidecar_path.clone()).await?;

        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let (state_tx, state_rx) = watch::channel(State::Running);
        let streams = Arc::new(Streams {
            pty,
            batch: Mutex::new(Batch::default()),
            wake: Notify::new(),
            stdin: Tally::new(),
            stdout: Tally::new(),
            stderr: Tally::new(),
            want_stdin: AtomicBool::new(pty && opts.record_input),
            want_stdout: AtomicBool::new(true),
            want_stderr: AtomicBool::new(true),
        });
        let writer = Writer {
            streams: streams.clone(),
            file,
            cast_path: cast_path.clone(),
            sidecar_path,
            sidecar,
            signer,
            pty,
            record_input: opts.record_input,
            text_cap: opts.text_cap as u64,
            text_recorded: 0,
            cap_reached: false,
            text_notes: Vec::new(),
            out_text: TextStream::default(),
            err_text: TextStream::default(),
            out_enc: TextEncoder::new(),
            err_enc: TextEncoder::new(),
            in_enc: TextEncoder::new(),
            cast_hash,
            spare: Vec::new(),
            staged: Default::default(),
            pending: Vec::new(),
            unsynced: false,
            due_since: None,
            last_time: 0.0,
        };
        tokio::spawn(writer.run(rx, state_tx));
        Ok(Recorder {
            tx,
            state: state_rx,
            start: Instant::now(),
            cast_path: Arc::new(cast_path),
            streams,
        })
    }

    /// Output from the server (stdout, or the PTY).
    pub async fn output(&self, data: Bytes) -> Result<(), RecordingError> {
        self.data(Stream::Stdout, data).await
    }

    /// Extended data (stderr) from the server.
    pub async fn stderr(&self, data: Bytes) -> Result<(), RecordingError> {
        self.data(Stream::Stderr, data).await
    }

    /// Input from the client: counted and hashed; kept as "i" events only
    /// with a PTY and `record_input`.
    pub async fn input(&self, data: Bytes) -> Result<(), RecordingError> {
        self.data(Stream::Stdin, data).await
    }

    /// A window size change.
    pub async fn resize(&self, cols: u32, rows: u32) -> Result<(), RecordingError> {
        let at = self.start.elapsed();
        self.check()?;
        if self.streams.queue(Event::Resize { at, cols, rows }, 16) {
            return self.send(Cmd::Drain).await;
        }
        Ok(())
    }

    /// Flushes, fsyncs, hashes the cast, signs and writes the final sidecar.
    /// Returns `Err` if recording failed at any point.
    pub async fn finish(
        self,
        exit_status: Option<i32>,
        exit_signal: Option<String>,
    ) -> Result<RecordingSummary, RecordingError> {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::Finish {
            exit_status,
            exit_signal,
            reply,
        })
        .await?;
        match rx.await {
            Ok(result) => result,
            Err(_) => Err(self.stopped_error()),
        }
    }

    /// Resolves with the reason once recording has failed; never resolves
    /// for a recording that finishes normally. Select on it in the session
    /// task to end the session when recording is no longer possible.
    pub fn failed(&self) -> impl Future<Output = String> + Send + 'static {
        let mut rx = self.state.clone();
        async move {
            loop {
                let state = rx.borrow_and_update().clone();
                match state {
                    State::Failed(reason) => return reason,
                    State::Finished => std::future::pending::<()>().await,
                    State::Running => {}
                }
                if rx.changed().await.is_err() {
                    let last = rx.borrow().clone();
                    return match last {
                        State::Failed(reason) => reason,
                        State::Finished => std::future::pending().await,
                        State::Running => "the recorder stopped unexpectedly".into(),
                    };
                }
            }
        }
    }

    /// The failure reason, if recording has failed.
    pub fn failure(&self) -> Option<String> {
        match &*self.state.borrow() {
            State::Failed(reason) => Some(reason.clone()),
            _ => None,
        }
    }

    /// Where the cast is being written.
    pub fn cast_path(&self) -> &Path {
        &self.cast_path
    }

    async fn data(&self, stream: Stream, data: Bytes) -> Result<(), RecordingError> {
        let at = self.start.elapsed();
        self.check()?;
        if data.is_empty() {
            return Ok(());
        }
        // With a PTY the wanted streams never change, and the writer
        // hashes what it is sent (in larger pieces, see
        // `Writer::hash_staged`); the rest is hashed here.
        let wanted = self.streams.want(stream).load(Ordering::Relaxed);
        {
            let mut t = self.streams.tally(stream);
            t.bytes += data.len() as u64;
            if !(self.streams.pty && wanted) {
                t.hash.update(&data);
            }
        }
        if !wanted {
            return Ok(());
        }
        let n = data.len();
        if self.streams.queue(Event::Data { stream, at, data }, n) {
            return self.send(Cmd::Drain).await;
        }
        Ok(())
    }

    fn check(&self) -> Result<(), RecordingError> {
        match &*self.state.borrow() {
            State::Running => Ok(()),
            State::Failed(reason) => Err(RecordingError::Failed(reason.clone())),
            State::Finished => Err(RecordingError::Finished),
        }
    }

    async fn send(&self, cmd: Cmd) -> Result<(), RecordingError> {
        self.check()?;
        self.tx.send(cmd).await.map_err(|_| self.stopped_error())
    }

    fn stopped_error(&self) -> RecordingError {
        match &*self.state.borrow() {
            State::Failed(reason) => RecordingError::Failed(reason.clone()),
            State::Finished => RecordingError::Finished,
            State::Running => RecordingError::Failed("the recorder stopped unexpectedly".into()),
        }
    }
}

/// The sidecar as written at the start: what is known before any byte.
fn new_sidecar(
    meta: &RecordingMeta,
    header: &Header,
    started_at: OffsetDateTime,
    opts: &RecorderOptions,
    signer: &Signer,
) -> Result<Sidecar, RecordingError> {
    let pty = meta.term.is_some();
    Ok(Sidecar {
        format: sidecar::FORMAT,
        id: meta.id.clone(),
        session: meta.session.clone(),
        user: meta.user.clone(),
        server: meta.server.clone(),
        account: meta.account.clone(),
        source: meta.source.clone(),
        grant: meta.grant,
        kind: meta.kind,
        command: meta.command.clone(),
        term: meta.term.clone(),
        width: header.width,
        height: header.height,
        started_at: started_at
            .format(&Rfc3339)
            .map_err(|e| RecordingError::Format(format!("start time: {e}")))?,
        ended_at: None,
        complete: false,
        exit_status: None,
        exit_signal: None,
        bytes: ByteCounts::default(),
        stdin_sha256: None,
        stdout_sha256: None,
        stderr_sha256: None,
        stdin_blake3: None,
        stdout_blake3: None,
        stderr_blake3: None,
        input_recorded: pty && opts.record_input,
        text_cap: (!pty).then_some(opts.text_cap as u64),
        text_recorded_bytes: None,
        text_truncated: None,
        interrupted: false,
        cast: format!("{}.cast", meta.id),
        cast_sha256: None,
        signing_key: Some(signer.public_key_hex()),
        signature: None,
        error: None,
    })
}
