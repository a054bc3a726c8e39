//! Port forwards: a client's direct-tcpip channel (`-L`, `-W`, ProxyJump
//! hops) and the channels a target opens for the client's remote forwards
//! (`-R`). Decides through the connection's policy, connects, then pipes
//! through [`super::pump`].
//!
//! May import the bottom of `server/` (`chan`, `flow`, `conn`, `pump`);
//! never the dispatcher, the session bridge or command mode.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use russh::server::{ChannelOpenHandle, Msg};
use russh::{Channel, ChannelOpenFailure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::chan::{ChanEvent, ClientWriter, refuse_open};
use super::conn::{ConnState, Target};
use super::flow::{self, InboxRx};
use super::pump::pipe_channels;
use crate::audit::EventKind;
use crate::policy::Route;

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
        Route::ThroughSshd => {
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
            pipe_channels(&state, client, &mut rx, target).await
        }
        Route::Direct | Route::Session => {
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
            let (up, down) = pipe_channels(&state, write, &mut events, f.channel).await;
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
async fn over_budget(state: &Arc<ConnState>, e: &flow::ChannelFlowError) {
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
