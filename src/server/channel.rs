//! Per-channel tasks: the bridge between a client channel and the target.
//!
//! Flow control: the client-facing session loop never waits on us (events
//! arrive through a [`flow::Inbox`] whose bytes count against the
//! connection's budget, and `ConnHandler::adjust_window` stops refilling the
//! client's window while it is high), so it always processes the client's
//! window adjustments. The target-facing direction keeps russh's bounded channel
//! queue as its backpressure: a slow client reader stops the bastion reading
//! from the target, and memory stays bounded both ways.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use russh::server::{ChannelOpenHandle, Msg};
use russh::{Channel, ChannelId, ChannelOpenFailure, ChannelWriteHalf, Pty, Sig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::conn::{ConnState, Target};
use super::flow::{self, InboxRx};
use crate::audit::EventKind;
use crate::policy::Path_;

/// What the client asked of a channel, in order.
#[derive(Debug)]
pub enum ChanEvent {
    Pty {
        term: String,
        cols: u32,
        rows: u32,
        pix_width: u32,
        pix_height: u32,
        modes: Vec<(Pty, u32)>,
    },
    Env(String, String),
    Shell,
    Exec(Vec<u8>),
    Subsystem(String),
    Data(Bytes),
    WindowChange {
        cols: u32,
        rows: u32,
        pix_width: u32,
        pix_height: u32,
    },
    Signal(Sig),
    Eof,
    Close,
}

/// What a session channel runs, once known.
#[derive(Debug, Clone)]
pub enum Start {
    Shell,
    Exec(String),
    Subsystem(String),
}

impl Start {
    pub fn kind(&self) -> &'static str {
        match self {
            Start::Shell => "shell",
            Start::Exec(_) => "exec",
            Start::Subsystem(_) => "subsystem",
        }
    }
}

pub struct PtyReq {
    pub term: String,
    pub cols: u32,
    pub rows: u32,
    pub pix_width: u32,
    pub pix_height: u32,
    pub modes: Vec<(Pty, u32)>,
}

pub type ClientWriter = ChannelWriteHalf<Msg>;

/// Refuses a channel open with a reason the client prints: code 1
/// (administratively prohibited) for policy refusals, shown as
/// `gatehouse: access denied: REASON`; code 2 (connect failed) when the
/// destination could not be reached, shown as `gatehouse: REASON`.
pub async fn refuse_open(reply: ChannelOpenHandle, denied: bool, reason: String) {
    let (code, reason) = if denied {
        (1, format!("gatehouse: access denied: {reason}"))
    } else {
        (2, format!("gatehouse: {reason}"))
    };
    reply
        .reject(ChannelOpenFailure::Other { code, reason })
        .await;
}

/// Writes a line to the client's stderr, then exit status, EOF and close.
/// Bounded in time: a client that stopped reading must not keep the task.
pub async fn refuse(write: &ClientWriter, pty: bool, line: &str, status: u32) {
    let nl = if pty { "\r\n" } else { "\n" };
    let text = format!("{line}{nl}");
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        let _ = write.extended_data_bytes(1, Bytes::from(text)).await;
        let _ = write.exit_status(status).await;
        let _ = write.eof().await;
        let _ = write.close().await;
    })
    .await;
}

/// Data a client may send on a session channel before it asks for a
/// shell, command or subsystem (held until then).
const EARLY_DATA_CAP: usize = 1024 * 1024;

pub async fn run_session_channel(
    state: Arc<ConnState>,
    id: ChannelId,
    write: ClientWriter,
    mut rx: InboxRx,
) {
    let mut pty: Option<PtyReq> = None;
    let mut env: Vec<(String, String)> = Vec::new();
    let mut early: Vec<ChanEvent> = Vec::new();
    let mut early_bytes = 0usize;
    let start = loop {
        let ev = tokio::select! {
            ev = rx.recv() => ev,
            _ = state.cancel.cancelled() => {
                refuse(&write, pty.is_some(), &format!("gatehouse: {}", state.end_reason()), 255).await;
                return;
            }
        };
        match ev {
            None | Some(ChanEvent::Close) => return,
            Some(ChanEvent::Pty {
                term,
                cols,
                rows,
                pix_width,
                pix_height,
                modes,
            }) => {
                pty = Some(PtyReq {
                    term,
                    cols,
                    rows,
                    pix_width,
                    pix_height,
                    modes,
                })
            }
            Some(ChanEvent::Env(k, v)) => {
                if env.len() < 64 {
                    env.push((k, v))
                }
            }
            Some(ChanEvent::Shell) => break Start::Shell,
            Some(ChanEvent::Exec(cmd)) => {
                break Start::Exec(String::from_utf8_lossy(&cmd).into_owned());
            }
            Some(ChanEvent::Subsystem(name)) => break Start::Subsystem(name),
            Some(ChanEvent::WindowChange {
                cols,
                rows,
                pix_width,
                pix_height,
            }) => {
                if let Some(p) = pty.as_mut() {
                    p.cols = cols;
                    p.rows = rows;
                    p.pix_width = pix_width;
                    p.pix_height = pix_height;
                }
            }
            Some(ChanEvent::Data(b)) => {
                // Held outside the connection's budget, hence its own cap.
                early_bytes += b.len();
                if early_bytes > EARLY_DATA_CAP {
                    refuse(
                        &write,
                        pty.is_some(),
                        "gatehouse: too much data before the session started",
                        255,
                    )
                    .await;
                    return;
                }
                early.push(ChanEvent::Data(b));
            }
            Some(ev @ (ChanEvent::Eof | ChanEvent::Signal(_))) => early.push(ev),
        }
    };
    match &state.target {
        Target::Denied {
            reason,
            audit_on_use,
            ..
        } => {
            if *audit_on_use {
                state
                    .shared
                    .audit(
                        state
                            .base_event(EventKind::AccessDenied)
                            .detail("code", "KO_MODE_REFUSES")
                            .detail("kind", start.kind())
                            .detail("reason", reason.clone()),
                    )
                    .await;
            }
            refuse(
                &write,
                pty.is_some(),
                &format!("gatehouse: access denied: {reason}"),
                1,
            )
            .await;
        }
        Target::CommandMode => {
            // Boxed: the task is sized for its largest branch, and the bridge's
            // is the one held while a session idles.
            Box::pin(super::command_mode::run(
                &state,
                &write,
                pty.is_some(),
                &start,
            ))
            .await;
        }
        Target::Server(_) => {
            super::bridge::run(state.clone(), id, write, rx, pty, env, start, early).await;
        }
    }
}

/// A direct-tcpip channel: a local forward on a target login, or a
/// ProxyJump hop on a command-mode login. Decides, connects, and only then
/// confirms the channel, so a refusal reaches the client as an open failure
/// carrying the reason.
#[allow(clippy::too_many_arguments)]
pub async fn run_forward_channel(
    state: Arc<ConnState>,
    channel: Channel<Msg>,
    reply: ChannelOpenHandle,
    mut rx: InboxRx,
    host: String,
    port: u16,
    origin: (String, u32),
) {
    let allowed = match state.decide_forward(&host, port).await {
        Ok(a) => a,
        Err(reason) => {
            refuse_open(reply, true, reason).await;
            return;
        }
    };
    let jump = matches!(state.target, Target::CommandMode);
    let Some((dest_host, dest_port)) = allowed.dest.clone() else {
        refuse_open(reply, true, "no destination".into()).await;
        return;
    };
    let mut ev = state
        .base_event(if jump {
            EventKind::JumpOpen
        } else {
            EventKind::ForwardOpen
        })
        .detail("destination", format!("{dest_host}:{dest_port}"))
        .detail("requested", format!("{host}:{port}"))
        .detail("path", format!("{:?}", allowed.path))
        .detail("grant", allowed.grant)
        .detail("flagged", allowed.flagged);
    if jump {
        ev = ev
            .server(allowed.server.clone())
            .account(allowed.account.clone());
    }
    let (up, down) = match allowed.path {
        Path_::ThroughSshd => {
            let upstream = match state.upstream().await {
                Ok(u) => u,
                Err(e) => {
                    refuse_open(reply, false, e.to_string()).await;
                    return;
                }
            };
            let target = match upstream
                .handle
                .channel_open_direct_tcpip(
                    dest_host.clone(),
                    u32::from(dest_port),
                    origin.0.clone(),
                    origin.1,
                )
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    refuse_open(
                        reply,
                        false,
                        format!("{} refused the forward: {e}", allowed.server),
                    )
                    .await;
                    return;
                }
            };
            reply.accept().await;
            state.shared.audit(ev).await;
            let (read, client) = channel.split();
            // Dropped now: data reaches this task through `rx`. A held,
            // unread half fills russh's bounded per-channel queue after
            // `channel_buffer_size` packets and the session loop then waits
            // on it: the client's window is never refilled (uploads through
            // a forward stopped at 2 MiB) and the whole connection stalls.
            drop(read);
            super::bridge::pipe_channels(&state, client, &mut rx, target).await
        }
        Path_::Direct | Path_::Session => {
            let tcp = match tokio::time::timeout(
                std::time::Duration::from_secs(10),
                tokio::net::TcpStream::connect((dest_host.as_str(), dest_port)),
            )
            .await
            {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    refuse_open(
                        reply,
                        false,
                        format!("cannot connect to {}:{}: {e}", allowed.server, dest_port),
                    )
                    .await;
                    return;
                }
                Err(_) => {
                    refuse_open(
                        reply,
                        false,
                        format!("connecting to {}:{} timed out", allowed.server, dest_port),
                    )
                    .await;
                    return;
                }
            };
            let _ = tcp.set_nodelay(true);
            reply.accept().await;
            state.shared.audit(ev).await;
            let (read, client) = channel.split();
            // Dropped now, as above.
            drop(read);
            pipe_tcp(&state, client, &mut rx, tcp).await
        }
    };
    state
        .shared
        .audit(
            state
                .base_event(EventKind::ForwardClose)
                .detail("destination", format!("{dest_host}:{dest_port}"))
                .detail("bytes_up", up)
                .detail("bytes_down", down),
        )
        .await;
}

/// Bridges a client channel and a TCP connection; returns bytes each way.
/// Once the destination's side is done the client channel is closed, and
/// the bridge ends without waiting for the client's close (russh does not
/// pass on the answer to a close the bastion sent).
async fn pipe_tcp(
    state: &Arc<ConnState>,
    client: ClientWriter,
    rx: &mut InboxRx,
    tcp: tokio::net::TcpStream,
) -> (u64, u64) {
    let (mut tr, mut tw) = tcp.into_split();
    let mut up = 0u64;
    let mut down = 0u64;
    let client_done = tokio_util::sync::CancellationToken::new();
    let to_target = async {
        while let Some(ev) = rx.recv().await {
            match ev {
                ChanEvent::Data(b) => {
                    let n = b.len();
                    let r = tw.write_all(&b).await;
                    up += n as u64;
                    state.bytes_up.fetch_add(n as u64, Ordering::Relaxed);
                    state.touch();
                    if r.is_err() {
                        break;
                    }
                }
                ChanEvent::Eof => {
                    let _ = tw.shutdown().await;
                }
                ChanEvent::Close => break,
                _ => {}
            }
        }
    };
    let to_client = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match tr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let chunk = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
                    if client.data_bytes(chunk).await.is_err() {
                        break;
                    }
                    down += n as u64;
                    state.bytes_down.fetch_add(n as u64, Ordering::Relaxed);
                    state.touch();
                }
            }
        }
        let _ = client.eof().await;
        let _ = client.close().await;
        client_done.cancel();
    };
    let to_target = async {
        tokio::select! {
            _ = to_target => {}
            _ = client_done.cancelled() => {}
        }
    };
    tokio::select! {
        _ = async { tokio::join!(to_target, to_client) } => {}
        _ = state.cancel.cancelled() => {}
    }
    (up, down)
}

/// Bridges the channels the target opens for remote forwards (`-R`) to new
/// forwarded-tcpip channels towards the client, for ports the client asked
/// for; anything else is refused.
pub async fn forwarded_loop(
    state: Arc<ConnState>,
    mut rx: mpsc::UnboundedReceiver<Box<crate::upstream::Forwarded>>,
) {
    loop {
        let f = tokio::select! {
            f = rx.recv() => match f { Some(f) => *f, None => return },
            _ = state.cancel.cancelled() => return,
        };
        if !state.remote_forward_known(&f.connected_address, f.connected_port) {
            f.reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            continue;
        }
        let client = state
            .handle
            .channel_open_forwarded_tcpip(
                f.connected_address.clone(),
                f.connected_port,
                f.originator_address.clone(),
                f.originator_port,
            )
            .await;
        let Ok(client) = client else {
            f.reply.reject(ChannelOpenFailure::ConnectFailed).await;
            continue;
        };
        f.reply.accept().await;
        let state = state.clone();
        tokio::spawn(async move {
            let (mut read, write) = client.split();
            let (tx, mut events) = flow::inbox(state.budget.clone());
            // Drain the client side promptly so the client-facing session
            // loop never waits on this forward; the bytes count against the
            // connection's budget like those of the client's own channels.
            let drain_state = state.clone();
            let drain = tokio::spawn(async move {
                while let Some(msg) = read.wait().await {
                    let ev = match msg {
                        russh::ChannelMsg::Data { data } => ChanEvent::Data(data),
                        russh::ChannelMsg::Eof => ChanEvent::Eof,
                        russh::ChannelMsg::Close => ChanEvent::Close,
                        _ => continue,
                    };
                    match tx.event(ev) {
                        Ok(()) => {}
                        Err(e) if e.is_violation() => {
                            over_budget(&drain_state, &e).await;
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let _ = tx.event(ChanEvent::Close);
            });
            let (up, down) =
                super::bridge::pipe_channels(&state, write, &mut events, f.channel).await;
            drain.abort();
            state
                .shared
                .audit(
                    state
                        .base_event(EventKind::ForwardClose)
                        .detail("direction", "remote")
                        .detail(
                            "bind",
                            format!("{}:{}", f.connected_address, f.connected_port),
                        )
                        .detail(
                            "originator",
                            format!("{}:{}", f.originator_address, f.originator_port),
                        )
                        .detail("bytes_up", up)
                        .detail("bytes_down", down),
                )
                .await;
        });
    }
}

/// A remote forward's client side went over the connection's budget: the
/// peer ignored flow control. Ends the session, audited.
async fn over_budget(state: &Arc<ConnState>, e: &flow::FlowError) {
    let reason = format!("protocol violation: {e}");
    state
        .shared
        .audit(
            state
                .base_event(EventKind::ProtocolViolation)
                .detail("reason", reason.clone())
                .detail("queued_bytes", state.budget.queued()),
        )
        .await;
    state.end(&reason);
}
