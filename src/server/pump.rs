//! Pumping: moves one client channel's bytes to one target channel and
//! back until either side is done, through the recorder and the shell and
//! SFTP inspectors when the session has them. Used by the session bridge
//! and by the forwards alike.
//!
//! May import the bottom of `server/` (`chan`, `flow`, `conn`, `lineedit`,
//! `notice`, `sftp`); never the bridge, the forwards, command mode or the
//! dispatcher.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use russh::client::Msg as ClientMsg;
use russh::{Channel, ChannelMsg};

use super::chan::{ChanEvent, ClientWriter, refuse};
use super::conn::ConnState;
use super::flow::InboxRx;
use super::lineedit::{BLOCKED_ENTER, LineTracker, Segment};
use super::notice::{self, OutputSeen};
use super::sftp::{SftpAudit, SftpOp};
use crate::audit::EventKind;
use crate::policy;
use crate::recording::Recorder;

/// How a pumped channel ended.
#[derive(Debug, Default)]
pub struct PumpEnd {
    pub up: u64,
    pub down: u64,
    pub exit_status: Option<u32>,
    pub exit_signal: Option<String>,
    /// The pump finished (sealed) the recording itself, before passing the
    /// exit status on: the caller must not finish it again.
    pub recording_finished: bool,
}

/// How long a recorded session's exit status waits for its recording to
/// be sealed (flushed, hashed, signed): normally milliseconds; past this
/// the status is sent anyway and the recorder finishes on its own.
const SEAL_WAIT: Duration = Duration::from_secs(10);

/// A forward through the target's sshd: a client direct-tcpip channel piped
/// to a target direct-tcpip channel. Returns bytes each way.
pub async fn pipe_channels(
    state: &Arc<ConnState>,
    client: ClientWriter,
    rx: &mut InboxRx,
    target: Channel<ClientMsg>,
) -> (u64, u64) {
    let opts = PumpOptions {
        session: false,
        has_pty: false,
        recorder: None,
        inspect: &Inspect::None,
    };
    let o = pump(state, client, rx, target, opts).await;
    (o.up, o.down)
}

/// Moves bytes both ways until the target's side is done (the client's
/// close ends the target's side too) or the session is ended. Not waiting
/// for the client's answer to the bastion's close matters: russh does not
/// pass it on, and a multiplexed connection (ControlMaster) would keep
/// each finished channel, and its recording, open until the end.
/// With a recorder, every byte passes through it first; a recording
/// failure ends the channel (fail closed).
/// How [`pump`] treats one channel.
pub(super) struct PumpOptions<'a> {
    /// A session channel (its EOF waits for the exit status, and the
    /// target side starts once the target confirms it); false for a forward.
    pub session: bool,
    /// The client asked for a PTY: refusals end lines with CRLF.
    pub has_pty: bool,
    /// Every byte passes through it first, when the session is recorded.
    pub recorder: Option<&'a Recorder>,
    pub inspect: &'a Inspect,
}

pub(super) async fn pump(
    state: &Arc<ConnState>,
    client: ClientWriter,
    rx: &mut InboxRx,
    target: Channel<ClientMsg>,
    opts: PumpOptions<'_>,
) -> PumpEnd {
    let (mut tread, twrite) = target.split();
    let pipe = Pipe {
        state,
        client: &client,
        rec: opts.recorder,
        inspect: opts.inspect,
        policy_stop: CancellationToken::new(),
        up: AtomicU64::new(0),
        down: AtomicU64::new(0),
        exit: Mutex::new((None, None)),
        finishing: AtomicBool::new(false),
    };
    let target_done = CancellationToken::new();
    let to_target = async {
        tokio::select! {
            _ = to_target(&pipe, rx, &twrite) => {}
            _ = target_done.cancelled() => {}
        }
    };
    let to_client = async {
        to_client(&pipe, &mut tread, opts.session, opts.has_pty).await;
        target_done.cancel();
    };
    let rec_failed = async {
        match opts.recorder {
            Some(r) => r.failed().await,
            None => std::future::pending().await,
        }
    };
    let ended = tokio::select! {
        _ = async { tokio::join!(to_target, to_client) } => None,
        _ = state.cancel.cancelled() => Some(state.end_reason()),
        _ = pipe.policy_stop.cancelled() => Some("the SFTP channel was closed by policy".to_string()),
        why = rec_failed => {
            tracing::error!(session = %state.id, "recording failed: {why}");
            Some("the recording of this session failed; session ended".to_string())
        }
    };
    if let Some(reason) = ended {
        refuse(&client, opts.has_pty, &format!("gatehouse: {reason}"), 255).await;
    }
    if let Inspect::Sftp { audit, .. } = opts.inspect {
        let rest = audit
            .lock()
            .map_err(|_| ())
            .map(|mut a| a.finish())
            .unwrap_or_default();
        audit_sftp(state, rest).await;
    }
    let (exit_status, exit_signal) = pipe.exit.lock().map(|e| e.clone()).unwrap_or_default();
    PumpEnd {
        up: pipe.up.load(Ordering::Relaxed),
        down: pipe.down.load(Ordering::Relaxed),
        exit_status,
        exit_signal,
        recording_finished: pipe.finishing.load(Ordering::Relaxed),
    }
}

/// What the two directions of one pumped channel share. The counts and
/// the exit live here, not in either direction, so that a channel cut
/// short (session ended, policy, recording failure) still reports them.
struct Pipe<'a> {
    state: &'a Arc<ConnState>,
    client: &'a ClientWriter,
    rec: Option<&'a Recorder>,
    inspect: &'a Inspect,
    /// Fired when policy ends the channel from the client side (a refused
    /// SFTP path): the target side is then not waited for.
    policy_stop: CancellationToken,
    up: AtomicU64,
    down: AtomicU64,
    /// (exit status, exit signal) as the target reported them.
    exit: Mutex<(Option<u32>, Option<String>)>,
    /// Set once this pump has asked the recorder to finish.
    finishing: AtomicBool,
}

/// A recorded session's end, held back until its recording is sealed.
enum HeldExit {
    Status(u32),
    Signal {
        name: russh::Sig,
        core_dumped: bool,
        message: String,
        lang: String,
    },
}

type TargetWriter = russh::ChannelWriteHalf<ClientMsg>;

/// Client -> target. Waits on the target's window: fine, the
/// client-facing loop never waits on this task.
async fn to_target(p: &Pipe<'_>, rx: &mut InboxRx, twrite: &TargetWriter) {
    while let Some(ev) = rx.recv().await {
        match ev {
            ChanEvent::Data(b) => {
                let n = b.len() as u64;
                if let Some(rec) = p.rec
                    && rec.input(b.clone()).await.is_err()
                {
                    break;
                }
                let r = client_data(p, twrite, b).await;
                p.up.fetch_add(n, Ordering::Relaxed);
                p.state.bytes_up.fetch_add(n, Ordering::Relaxed);
                p.state.touch();
                if r.is_err() {
                    break;
                }
            }
            ChanEvent::WindowChange {
                cols,
                rows,
                pix_width,
                pix_height,
            } => {
                let _ = twrite
                    .window_change(cols, rows, pix_width, pix_height)
                    .await;
                if let Some(rec) = p.rec {
                    let _ = rec.resize(cols, rows).await;
                }
            }
            ChanEvent::Signal(sig) => {
                let _ = twrite.signal(sig).await;
            }
            ChanEvent::Eof => {
                let _ = twrite.eof().await;
            }
            ChanEvent::Close => {
                let _ = twrite.close().await;
                break;
            }
            ChanEvent::Pty { .. }
            | ChanEvent::Env(..)
            | ChanEvent::Shell
            | ChanEvent::Exec(_)
            | ChanEvent::Subsystem(_) => {}
        }
    }
}

/// One chunk of client data, through the channel's inspector.
async fn client_data(p: &Pipe<'_>, twrite: &TargetWriter, b: bytes::Bytes) -> Result<(), ()> {
    match p.inspect {
        Inspect::None => twrite.data_bytes(b).await.map_err(|_| ()),
        Inspect::Shell { .. } => shell_input(p.state, p.client, twrite, p.inspect, &b).await,
        Inspect::Sftp { audit, server } => sftp_input(p, twrite, audit, server, b).await,
    }
}

/// SFTP requests from the client: audited, checked against the server's
/// `sftp_deny` globs, and forwarded (rewritten where the target's SYMLINK
/// order differs). A denied path ends the channel; it is never delivered.
async fn sftp_input(
    p: &Pipe<'_>,
    twrite: &TargetWriter,
    audit: &Mutex<SftpAudit>,
    server: &policy::Server,
    b: bytes::Bytes,
) -> Result<(), ()> {
    let (ops, paths) = audit
        .lock()
        .map_err(|_| ())
        .map(|mut a| (a.client_bytes_to_forward(&b), a.take_requested_paths()))?;
    let (ops, rewritten) = ops.map_err(|_| ())?;
    audit_sftp(p.state, ops).await;
    if let Some(path) = paths
        .iter()
        .find(|path| server.sftp_deny_globs.is_match(path.as_str()))
    {
        sftp_path_refused(p.state, p.client, path).await;
        let _ = twrite.close().await;
        p.policy_stop.cancel();
        return Err(());
    }
    match rewritten {
        None => twrite.data_bytes(b).await.map_err(|_| ()),
        Some(v) if v.is_empty() => Ok(()),
        Some(v) => twrite.data_bytes(v).await.map_err(|_| ()),
    }
}

/// Target -> client. Waits on the client's window; russh's bounded queue
/// on the target connection is the backpressure towards the target.
async fn to_client(p: &Pipe<'_>, tread: &mut russh::ChannelReadHalf, session: bool, has_pty: bool) {
    let client = p.client;
    let mut started = !session;
    let mut refused = false;
    // A session's EOF is held until its exit status (or close): a client
    // whose input is done closes the channel on EOF, and russh answers
    // that close at once, so a later exit status would be lost.
    let mut eof_held = false;
    // A recorded session's exit status (or signal) and EOF wait until the
    // target can send nothing more (its EOF and its exit both seen, or
    // its close), and the recording is sealed first: a client that has
    // its exit status finds the signed sidecar on disk.
    let seal_first = session && p.rec.is_some();
    let mut held: Option<HeldExit> = None;
    let mut target_eof = false;
    let mut sealed = false;
    // A message read ahead while gathering data, handled next.
    let mut next: Option<ChannelMsg> = None;
    loop {
        let msg = match next.take() {
            Some(m) => m,
            None => match tread.wait().await {
                Some(m) => m,
                None => break,
            },
        };
        match msg {
            ChannelMsg::Data { data } => {
                let (data, after) = gather(tread, data);
                next = after;
                let Ok(()) = target_data(p, data).await else {
                    break;
                };
            }
            ChannelMsg::ExtendedData { data, ext } => {
                let n = data.len() as u64;
                if let Some(rec) = p.rec
                    && rec.stderr(data.clone()).await.is_err()
                {
                    break;
                }
                if client.extended_data_bytes(ext, data).await.is_err() {
                    break;
                }
                p.down.fetch_add(n, Ordering::Relaxed);
                p.state.bytes_down.fetch_add(n, Ordering::Relaxed);
                p.state.touch();
            }
            ChannelMsg::Eof if seal_first => {
                eof_held = true;
                target_eof = true;
                if held.is_some() && !sealed {
                    sealed = true;
                    seal_then_exit(p, held.take(), std::mem::take(&mut eof_held)).await;
                }
            }
            ChannelMsg::Eof if session => eof_held = true,
            ChannelMsg::Eof => {
                let _ = client.eof().await;
            }
            ChannelMsg::ExitStatus { exit_status } => {
                p.state.set_exit(i64::from(exit_status));
                if let Ok(mut e) = p.exit.lock() {
                    e.0 = Some(exit_status);
                }
                if seal_first {
                    held = Some(HeldExit::Status(exit_status));
                    if target_eof && !sealed {
                        sealed = true;
                        seal_then_exit(p, held.take(), std::mem::take(&mut eof_held)).await;
                    }
                    continue;
                }
                let _ = client.exit_status(exit_status).await;
                if std::mem::take(&mut eof_held) {
                    let _ = client.eof().await;
                }
            }
            ChannelMsg::ExitSignal {
                signal_name,
                core_dumped,
                error_message,
                lang_tag,
            } => {
                p.state.set_exit(128);
                if let Ok(mut e) = p.exit.lock() {
                    e.1 = Some(format!("{signal_name:?}"));
                }
                if seal_first {
                    held = Some(HeldExit::Signal {
                        name: signal_name,
                        core_dumped,
                        message: error_message,
                        lang: lang_tag,
                    });
                    if target_eof && !sealed {
                        sealed = true;
                        seal_then_exit(p, held.take(), std::mem::take(&mut eof_held)).await;
                    }
                    continue;
                }
                let _ = p
                    .state
                    .handle
                    .exit_signal_request(
                        client.id(),
                        signal_name,
                        core_dumped,
                        error_message,
                        lang_tag,
                    )
                    .await;
                if std::mem::take(&mut eof_held) {
                    let _ = client.eof().await;
                }
            }
            ChannelMsg::Success => started = true,
            ChannelMsg::Failure if !started => {
                refused = true;
                break;
            }
            ChannelMsg::Close => break,
            _ => {}
        }
    }
    if seal_first && !sealed {
        seal_then_exit(p, held.take(), std::mem::take(&mut eof_held)).await;
    }
    if eof_held {
        let _ = client.eof().await;
    }
    if refused {
        refuse(
            client,
            has_pty,
            "gatehouse: the server refused the request",
            255,
        )
        .await;
    } else {
        let _ = client.close().await;
    }
}

/// Target output already waiting is sent on in one piece of at most this
/// many bytes.
const GATHER_MAX: usize = 32 * 1024;

/// Joins the data messages already queued behind `first` (never waiting
/// for more): a terminal's output arrives in many small packets, and each
/// one passed on alone costs a packet on the client's leg and an event in
/// the recording. Returns the data and the first other message read, if
/// any, to be handled next.
fn gather(
    tread: &mut russh::ChannelReadHalf,
    first: bytes::Bytes,
) -> (bytes::Bytes, Option<ChannelMsg>) {
    use futures::FutureExt as _;
    if first.len() >= GATHER_MAX {
        return (first, None);
    }
    let mut joined: Option<bytes::BytesMut> = None;
    let mut other = None;
    loop {
        let len = joined.as_ref().map_or(first.len(), |j| j.len());
        if len >= GATHER_MAX {
            break;
        }
        // `wait` is a channel receive: dropping it unfinished loses nothing.
        match tread.wait().now_or_never() {
            Some(Some(ChannelMsg::Data { data })) => {
                let j = joined.get_or_insert_with(|| {
                    let mut j = bytes::BytesMut::with_capacity(GATHER_MAX);
                    j.extend_from_slice(&first);
                    j
                });
                j.extend_from_slice(&data);
            }
            Some(Some(msg)) => {
                other = Some(msg);
                break;
            }
            Some(None) | None => break,
        }
    }
    (joined.map_or(first, bytes::BytesMut::freeze), other)
}

/// Seals the recording (bounded by [`SEAL_WAIT`]), then passes on the
/// held exit status or signal and the EOF.
async fn seal_then_exit(p: &Pipe<'_>, held: Option<HeldExit>, eof: bool) {
    if let Some(rec) = p.rec
        && !p.finishing.swap(true, Ordering::Relaxed)
    {
        let (status, signal) = p.exit.lock().map(|e| e.clone()).unwrap_or_default();
        let status = status.and_then(|s| i32::try_from(s).ok());
        match tokio::time::timeout(SEAL_WAIT, rec.clone().finish(status, signal)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::error!(session = %p.state.id, "recording did not finish cleanly: {e}");
            }
            Err(_) => tracing::warn!(
                session = %p.state.id,
                "sealing the recording took over {SEAL_WAIT:?}; exit status sent before it"
            ),
        }
    }
    let client = p.client;
    match held {
        Some(HeldExit::Status(s)) => {
            let _ = client.exit_status(s).await;
        }
        Some(HeldExit::Signal {
            name,
            core_dumped,
            message,
            lang,
        }) => {
            let _ = p
                .state
                .handle
                .exit_signal_request(client.id(), name, core_dumped, message, lang)
                .await;
        }
        None => {}
    }
    if eof {
        let _ = client.eof().await;
    }
}

/// One chunk of target output, through the inspector and the recorder to
/// the client. `Err`: the channel is done (SFTP stream unreadable,
/// recording failed, client gone).
async fn target_data(p: &Pipe<'_>, data: bytes::Bytes) -> Result<(), ()> {
    let n = data.len() as u64;
    match p.inspect {
        Inspect::Shell { tracker, .. } => {
            if let Ok(mut t) = tracker.lock() {
                t.scan_output(&data);
            }
        }
        Inspect::Sftp { audit, .. } => {
            let ops = audit
                .lock()
                .map_err(|_| ())
                .map(|mut a| a.server_bytes(&data))?
                .map_err(|_| ())?;
            audit_sftp(p.state, ops).await;
        }
        Inspect::None => {}
    }
    if let Some(rec) = p.rec
        && rec.output(data.clone()).await.is_err()
    {
        return Err(());
    }
    p.client.data_bytes(data).await.map_err(|_| ())?;
    if let Inspect::Shell { seen, .. } = p.inspect {
        seen.bump();
    }
    p.down.fetch_add(n, Ordering::Relaxed);
    p.state.bytes_down.fetch_add(n, Ordering::Relaxed);
    p.state.touch();
    Ok(())
}

/// What the bastion reads in a channel's stream besides passing it on.
pub enum Inspect {
    None,
    /// An interactive shell: each submitted line is checked against the
    /// server's `deny_commands` and audited.
    Shell {
        tracker: Mutex<LineTracker>,
        server: Box<policy::Server>,
        /// Output written to the client, to place a blocked line's notice.
        seen: OutputSeen,
    },
    /// The sftp subsystem: file operations become `sftp.op` events.
    Sftp {
        audit: Mutex<SftpAudit>,
        server: Box<policy::Server>,
    },
}

/// Passes typed input to the target line by line: a submitted line that
/// matches `deny_commands` is not delivered (the shell's line is killed
/// instead), the user is told why, and `command.blocked` is written;
/// every delivered line is an `exec` event.
async fn shell_input(
    state: &Arc<ConnState>,
    client: &ClientWriter,
    twrite: &russh::ChannelWriteHalf<ClientMsg>,
    inspect: &Inspect,
    input: &[u8],
) -> Result<(), ()> {
    let Inspect::Shell {
        tracker,
        server,
        seen,
    } = inspect
    else {
        return Err(());
    };
    let segments = match tracker.lock() {
        Ok(mut t) => t.feed(input),
        Err(_) => return Err(()),
    };
    for seg in segments {
        match seg {
            Segment::Pass(bytes) => twrite.data_bytes(bytes).await.map_err(|_| ())?,
            Segment::Submit(sub) => {
                let shown = if sub.secret {
                    "[hidden input]".to_string()
                } else {
                    sub.line.clone()
                };
                let blocked = sub
                    .commands()
                    .into_iter()
                    .find_map(|c| policy::check_command(server, c, true).err());
                match blocked {
                    Some(d) => {
                        // Kill the line, let the shell's redraw reach the
                        // screen, tell the user, then the Enter for a fresh
                        // prompt below the notice (server::notice).
                        let mut redraw = seen.watch();
                        twrite
                            .data_bytes(sub.blocked_kill())
                            .await
                            .map_err(|_| ())?;
                        notice::redrawn(&mut redraw).await;
                        let _ = client
                            .extended_data_bytes(
                                1,
                                bytes::Bytes::from(notice::blocked_line(&d.reason)),
                            )
                            .await;
                        twrite
                            .data_bytes(vec![BLOCKED_ENTER])
                            .await
                            .map_err(|_| ())?;
                        state
                            .shared
                            .audit(
                                state
                                    .base_event(EventKind::CommandBlocked)
                                    .detail("command", shown)
                                    .detail("interactive", true)
                                    .detail("uncertain", sub.uncertain)
                                    .detail("reason", d.reason.clone())
                                    .detail("rule", d.rule.clone()),
                            )
                            .await;
                        if server.end_on_blocked_command {
                            state.end("a blocked command ended this session (server policy)");
                        }
                    }
                    None => {
                        twrite.data_bytes(sub.bytes.clone()).await.map_err(|_| ())?;
                        if !sub.line.trim().is_empty() {
                            state
                                .shared
                                .audit(
                                    state
                                        .base_event(EventKind::Exec)
                                        .detail("kind", "line")
                                        .detail("command", shown)
                                        .detail("uncertain", sub.uncertain),
                                )
                                .await;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// An SFTP request named a path the server's `sftp_deny_paths` refuses.
async fn sftp_path_refused(state: &Arc<ConnState>, client: &ClientWriter, path: &str) {
    state
        .shared
        .audit(
            state
                .base_event(EventKind::SftpOp)
                .detail("op", "refused")
                .detail("path", path)
                .detail("status", "refused")
                .detail("reason", "path refused by the server's sftp_deny_paths"),
        )
        .await;
    let _ = client
        .extended_data_bytes(
            1,
            bytes::Bytes::from(format!(
                "gatehouse: access denied: sftp path {path} is refused by policy\n"
            )),
        )
        .await;
}

async fn audit_sftp(state: &Arc<ConnState>, ops: Vec<SftpOp>) {
    for op in ops {
        let mut ev = state
            .base_event(EventKind::SftpOp)
            .detail("op", op.name())
            .detail("status", op.status.as_str())
            .detail("write", op.is_write());
        for (k, v) in op.details() {
            ev = ev.detail(k, v);
        }
        state.shared.audit(ev).await;
    }
}
