//! The session bridge: one client session channel to one target session
//! channel, byte-exact both ways, with PTY, window changes, signals, EOF,
//! exit status and exit signal passed through.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use russh::client::Msg as ClientMsg;
use russh::{Channel, ChannelId, ChannelMsg};

use super::channel::{ChanEvent, ClientWriter, PtyReq, Start, refuse};
use super::conn::ConnState;
use super::flow::InboxRx;
use super::lineedit::{BLOCKED_ENTER, LineTracker, Segment};
use super::notice::{self, OutputSeen};
use super::sftp::{SftpAudit, SftpOp, symlink_swap_needed};
use crate::audit::EventKind;
use crate::policy;
use crate::recording::{Kind, Recorder, RecorderOptions, RecordingMeta};
use std::sync::Mutex;

#[allow(clippy::too_many_arguments)]
pub async fn run(
    state: Arc<ConnState>,
    id: ChannelId,
    client: ClientWriter,
    mut rx: InboxRx,
    pty: Option<PtyReq>,
    env: Vec<(String, String)>,
    start: Start,
    early: Vec<ChanEvent>,
) {
    let has_pty = pty.is_some();
    let Some(target) = state.server_target() else {
        return;
    };
    let server = target.server.name.clone();
    let mut ev = state
        .base_event(EventKind::Exec)
        .detail("kind", start.kind())
        .detail("pty", has_pty);
    let checked = match &start {
        Start::Exec(cmd) => crate::policy::check_command(&target.server, cmd, false),
        Start::Shell => crate::policy::check_open_session(&target.server, "a shell"),
        Start::Subsystem(name) => {
            crate::policy::check_open_session(&target.server, &format!("subsystem {name}"))
        }
    };
    match &start {
        Start::Exec(cmd) => ev = ev.detail("command", cmd.clone()),
        Start::Subsystem(name) => ev = ev.detail("subsystem", name.clone()),
        Start::Shell => {}
    }
    if let Err(d) = checked {
        let command = match &start {
            Start::Exec(cmd) => cmd.clone(),
            Start::Shell => "(shell)".to_string(),
            Start::Subsystem(name) => format!("(subsystem {name})"),
        };
        Box::pin(
            state.shared.audit(
                state
                    .base_event(EventKind::CommandBlocked)
                    .detail("command", command)
                    .detail("kind", start.kind())
                    .detail("reason", d.reason.clone())
                    .detail("rule", d.rule.clone()),
            ),
        )
        .await;
        refuse(
            &client,
            has_pty,
            &format!("gatehouse: access denied: {}", d.reason),
            1,
        )
        .await;
        return;
    }
    if !Box::pin(state.shared.audit(ev)).await {
        refuse(
            &client,
            has_pty,
            "gatehouse: the bastion cannot write its audit log",
            255,
        )
        .await;
        return;
    }
    let upstream = match Box::pin(state.upstream()).await {
        Ok(u) => u,
        Err(e) => {
            let status = if e.starts_with(super::conn::DENIED_PREFIX) {
                1
            } else {
                255
            };
            refuse(&client, has_pty, &format!("gatehouse: {e}"), status).await;
            return;
        }
    };
    let account = target.allowed.account.clone();
    let rec = if state.should_record_account(&account) {
        let meta = RecordingMeta {
            id: state.next_recording_id(),
            session: state.id.clone(),
            user: state.user.clone(),
            server: server.clone(),
            account: account.clone(),
            source: state.source.to_string(),
            grant: target.allowed.grant,
            kind: match &start {
                Start::Shell => Kind::Shell,
                Start::Exec(_) => Kind::Exec,
                Start::Subsystem(_) => Kind::Subsystem,
            },
            command: match &start {
                Start::Shell => None,
                Start::Exec(c) => Some(c.clone()),
                Start::Subsystem(n) => Some(n.clone()),
            },
            term: pty.as_ref().map(|p| p.term.clone()),
            width: pty.as_ref().map(|p| p.cols).unwrap_or(80),
            height: pty.as_ref().map(|p| p.rows).unwrap_or(24),
            started_at: crate::server::shared::Shared::now(),
        };
        let opts = RecorderOptions::from_config(&state.shared.config.recording);
        let rec_id = meta.id.clone();
        match Box::pin(Recorder::start(
            &state.shared.config.recordings,
            meta,
            state.shared.signer.clone(),
            opts,
        ))
        .await
        {
            // The database's word that this cast exists: `recordings
            // verify` reports it missing if it goes.
            Ok(r) => {
                let root = &state.shared.config.recordings;
                let cast = r.cast_path().strip_prefix(root).unwrap_or(r.cast_path());
                let ev = state
                    .base_event(EventKind::RecordingStart)
                    .detail("recording", rec_id)
                    .detail("cast", cast.display().to_string());
                if !Box::pin(state.shared.audit(ev)).await {
                    let _ = Box::pin(r.finish(None, None)).await;
                    refuse(
                        &client,
                        has_pty,
                        "gatehouse: the bastion cannot write its audit log",
                        255,
                    )
                    .await;
                    return;
                }
                Some(r)
            }
            Err(e) => {
                tracing::error!(session = %state.id, "recording cannot start: {e}");
                refuse(
                    &client,
                    has_pty,
                    "gatehouse: this session must be recorded and the recording cannot be written; refused",
                    255,
                )
                .await;
                return;
            }
        }
    } else {
        None
    };
    let target_ch = match Box::pin(upstream.handle.channel_open_session()).await {
        Ok(c) => c,
        Err(e) => {
            refuse(
                &client,
                has_pty,
                &format!("gatehouse: {server} refused a session: {e}"),
                255,
            )
            .await;
            return;
        }
    };
    if let Some(p) = &pty {
        let _ = target_ch
            .request_pty(
                false,
                &p.term,
                p.cols,
                p.rows,
                p.pix_width,
                p.pix_height,
                &p.modes,
            )
            .await;
    }
    for (k, v) in &env {
        let _ = target_ch.set_env(false, k.clone(), v.clone()).await;
    }
    let sent = match &start {
        Start::Shell => target_ch.request_shell(true).await,
        Start::Exec(cmd) => target_ch.exec(true, cmd.as_bytes().to_vec()).await,
        Start::Subsystem(name) => match (&target.server.sftp_command, name.as_str()) {
            // The server's own rule for SFTP (e.g. read-only sftp-server).
            (Some(cmd), "sftp") => target_ch.exec(true, cmd.as_bytes().to_vec()).await,
            _ => target_ch.request_subsystem(true, name.clone()).await,
        },
    };
    if let Err(e) = sent {
        refuse(&client, has_pty, &format!("gatehouse: {server}: {e}"), 255).await;
        return;
    }
    for ev in early {
        if let ChanEvent::Data(b) = ev {
            let _ = target_ch.data_bytes(b).await;
        } else if let ChanEvent::Eof = ev {
            let _ = target_ch.eof().await;
        }
    }
    let _ = id;
    let inspect = match &start {
        Start::Shell if has_pty => Inspect::Shell {
            tracker: Mutex::new(LineTracker::new()),
            server: Box::new(target.server.clone()),
            seen: OutputSeen::default(),
        },
        Start::Subsystem(name) if name == "sftp" => Inspect::Sftp {
            // Clients that choose SYMLINK's order from the server's
            // identification string saw the bastion's, not the target's.
            audit: Mutex::new(SftpAudit::with_symlink_swap(symlink_swap_needed(
                &state.client_id,
                super::SERVER_ID,
                &upstream.server_id,
            ))),
            server: Box::new(target.server.clone()),
        },
        _ => Inspect::None,
    };
    // The steps above are boxed: this future lives as long as the channel,
    // and only the pump's state need be held while it is idle.
    let outcome = pump(
        &state,
        client,
        &mut rx,
        target_ch,
        true,
        has_pty,
        rec.as_ref(),
        &inspect,
    )
    .await;
    if let Some(r) = rec {
        let status = outcome.exit_status.and_then(|s| i32::try_from(s).ok());
        if let Err(e) = Box::pin(r.finish(status, outcome.exit_signal)).await {
            tracing::error!(session = %state.id, "recording did not finish cleanly: {e}");
        }
    }
}

/// How a pumped channel ended.
#[derive(Debug, Default)]
pub struct Outcome {
    pub up: u64,
    pub down: u64,
    pub exit_status: Option<u32>,
    pub exit_signal: Option<String>,
}

/// A forward through the target's sshd: a client direct-tcpip channel piped
/// to a target direct-tcpip channel. Returns bytes each way.
pub async fn pipe_channels(
    state: &Arc<ConnState>,
    client: ClientWriter,
    rx: &mut InboxRx,
    target: Channel<ClientMsg>,
) -> (u64, u64) {
    let o = pump(
        state,
        client,
        rx,
        target,
        false,
        false,
        None,
        &Inspect::None,
    )
    .await;
    (o.up, o.down)
}

/// Moves bytes both ways until the target's side is done (the client's
/// close ends the target's side too) or the session is ended. Not waiting
/// for the client's answer to the bastion's close matters: russh does not
/// pass it on, and a multiplexed connection (ControlMaster) would keep
/// each finished channel, and its recording, open until the end.
/// With a recorder, every byte passes through it first; a recording
/// failure ends the channel (fail closed).
#[allow(clippy::too_many_arguments)]
async fn pump(
    state: &Arc<ConnState>,
    client: ClientWriter,
    rx: &mut InboxRx,
    target: Channel<ClientMsg>,
    session: bool,
    has_pty: bool,
    rec: Option<&Recorder>,
    inspect: &Inspect,
) -> Outcome {
    let (mut tread, twrite) = target.split();
    // Fired when policy ends the channel from the client side (a refused
    // SFTP path): the target side is then not waited for.
    let policy_stop = tokio_util::sync::CancellationToken::new();
    let mut up = 0u64;
    let mut down = 0u64;
    let mut refused = false;
    // Client -> target. Waits on the target's window: fine, the
    // client-facing loop never waits on this task.
    let to_target = async {
        while let Some(ev) = rx.recv().await {
            match ev {
                ChanEvent::Data(b) => {
                    let n = b.len();
                    if let Some(rec) = rec
                        && rec.input(b.clone()).await.is_err()
                    {
                        break;
                    }
                    let r = match inspect {
                        Inspect::None => twrite.data_bytes(b).await.map_err(|_| ()),
                        Inspect::Shell { .. } => {
                            shell_input(state, &client, &twrite, inspect, &b).await
                        }
                        Inspect::Sftp { audit, server } => {
                            let ops = audit.lock().map_err(|_| ()).map(|mut a| {
                                (a.client_bytes_to_forward(&b), a.take_requested_paths())
                            });
                            match ops {
                                Ok((Ok((ops, rewritten)), paths)) => {
                                    audit_sftp(state, ops).await;
                                    match paths
                                        .iter()
                                        .find(|p| server.sftp_deny_globs.is_match(p.as_str()))
                                    {
                                        None => match rewritten {
                                            None => twrite.data_bytes(b).await.map_err(|_| ()),
                                            Some(v) if v.is_empty() => Ok(()),
                                            Some(v) => twrite.data_bytes(v).await.map_err(|_| ()),
                                        },
                                        Some(p) => {
                                            // Never delivered: the channel ends here.
                                            sftp_path_refused(state, &client, p).await;
                                            let _ = twrite.close().await;
                                            policy_stop.cancel();
                                            Err(())
                                        }
                                    }
                                }
                                _ => Err(()),
                            }
                        }
                    };
                    up += n as u64;
                    state.bytes_up.fetch_add(n as u64, Ordering::Relaxed);
                    state.touch();
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
                    if let Some(rec) = rec {
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
    };
    // Target -> client. Waits on the client's window; russh's bounded queue
    // on the target connection is the backpressure towards the target.
    let mut exit_code = None;
    let mut exit_sig = None;
    let mut sftp_broken = false;
    let target_done = tokio_util::sync::CancellationToken::new();
    let to_client = async {
        let mut started = !session;
        // A session's EOF is held until its exit status (or close): a
        // client whose input is done closes the channel on EOF, and russh
        // answers that close at once, so a later exit status would be lost.
        let mut eof_held = false;
        while let Some(msg) = tread.wait().await {
            match msg {
                ChannelMsg::Data { data } => {
                    let n = data.len() as u64;
                    match inspect {
                        Inspect::Shell { tracker, .. } => {
                            if let Ok(mut t) = tracker.lock() {
                                t.scan_output(&data);
                            }
                        }
                        Inspect::Sftp { audit, .. } => {
                            let ops = audit
                                .lock()
                                .map_err(|_| ())
                                .map(|mut a| a.server_bytes(&data));
                            match ops {
                                Ok(Ok(ops)) => audit_sftp(state, ops).await,
                                _ => {
                                    sftp_broken = true;
                                    break;
                                }
                            }
                        }
                        Inspect::None => {}
                    }
                    if let Some(rec) = rec
                        && rec.output(data.clone()).await.is_err()
                    {
                        break;
                    }
                    if client.data_bytes(data).await.is_err() {
                        break;
                    }
                    if let Inspect::Shell { seen, .. } = inspect {
                        seen.bump();
                    }
                    down += n;
                    state.bytes_down.fetch_add(n, Ordering::Relaxed);
                    state.touch();
                }
                ChannelMsg::ExtendedData { data, ext } => {
                    let n = data.len() as u64;
                    if let Some(rec) = rec
                        && rec.stderr(data.clone()).await.is_err()
                    {
                        break;
                    }
                    if client.extended_data_bytes(ext, data).await.is_err() {
                        break;
                    }
                    down += n;
                    state.bytes_down.fetch_add(n, Ordering::Relaxed);
                    state.touch();
                }
                ChannelMsg::Eof if session => eof_held = true,
                ChannelMsg::Eof => {
                    let _ = client.eof().await;
                }
                ChannelMsg::ExitStatus { exit_status } => {
                    state.set_exit(i64::from(exit_status));
                    exit_code = Some(exit_status);
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
                    state.set_exit(128);
                    exit_sig = Some(format!("{signal_name:?}"));
                    let _ = state
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
        if eof_held {
            let _ = client.eof().await;
        }
        if refused {
            refuse(
                &client,
                has_pty,
                "gatehouse: the server refused the request",
                255,
            )
            .await;
        } else {
            let _ = client.close().await;
        }
        target_done.cancel();
    };
    let to_target = async {
        tokio::select! {
            _ = to_target => {}
            _ = target_done.cancelled() => {}
        }
    };
    let rec_failed = async {
        match rec {
            Some(r) => r.failed().await,
            None => std::future::pending().await,
        }
    };
    let ended = tokio::select! {
        _ = async { tokio::join!(to_target, to_client) } => None,
        _ = state.cancel.cancelled() => Some(state.end_reason()),
        _ = policy_stop.cancelled() => Some("the SFTP channel was closed by policy".to_string()),
        why = rec_failed => {
            tracing::error!(session = %state.id, "recording failed: {why}");
            Some("the recording of this session failed; session ended".to_string())
        }
    };
    if let Some(reason) = ended {
        refuse(&client, has_pty, &format!("gatehouse: {reason}"), 255).await;
    }
    if let Inspect::Sftp { audit, .. } = inspect {
        let rest = audit
            .lock()
            .map_err(|_| ())
            .map(|mut a| a.finish())
            .unwrap_or_default();
        audit_sftp(state, rest).await;
    }
    Outcome {
        up,
        down,
        exit_status: exit_code,
        exit_signal: exit_sig,
    }
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
