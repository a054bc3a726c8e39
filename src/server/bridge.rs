//! The session bridge: one client session channel to one target session
//! channel, byte-exact both ways, with PTY, window changes, signals, EOF,
//! exit status and exit signal passed through.
//!
//! Layer: beside `forwards` and `command_mode`, below the dispatcher
//! `channel`; may import `chan`, `conn`, `flow`, `pump`, `lineedit`,
//! `notice`, `sftp`, `shared`; never its siblings.

use std::sync::Arc;

use russh::client::Msg as ClientMsg;
use russh::{Channel, ChannelId};

use super::chan::{ChanEvent, ClientWriter, PtyReq, Start, refuse};
use super::conn::{ConnState, ServerTarget};
use super::flow::InboxRx;
use super::lineedit::LineTracker;
use super::notice::OutputSeen;
use super::pump::{Inspect, PumpOptions, pump};
use super::sftp::{SftpAudit, symlink_swap_needed};
use crate::audit::EventKind;
use crate::recording::{Kind, Recorder, RecorderOptions, RecordingMeta};
use crate::upstream::Upstream;
use std::sync::Mutex;

/// Runs one session channel on the target: admit and audit, log in,
/// start the recording, open the target's channel, then pump until done.
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
    if !Box::pin(admit(&state, target, &start, &client, has_pty)).await {
        return;
    }
    let upstream = match Box::pin(state.upstream()).await {
        Ok(u) => u,
        Err(e) => {
            let status = if e.is_refusal() { 1 } else { 255 };
            refuse(&client, has_pty, &format!("gatehouse: {e}"), status).await;
            return;
        }
    };
    let Ok(rec) = Box::pin(start_recording(
        &state,
        target,
        &start,
        pty.as_ref(),
        &client,
    ))
    .await
    else {
        return;
    };
    let opened = open_target(&upstream, target, &client, pty.as_ref(), &env, &start);
    let Some(target_ch) = Box::pin(opened).await else {
        return;
    };
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
                super::shared::SERVER_ID,
                &upstream.server_id,
            ))),
            server: Box::new(target.server.clone()),
        },
        _ => Inspect::None,
    };
    // The steps above are boxed: this future lives as long as the channel,
    // and only the pump's state need be held while it is idle.
    let opts = PumpOptions {
        session: true,
        has_pty,
        recorder: rec.as_ref(),
        inspect: &inspect,
    };
    let outcome = pump(&state, client, &mut rx, target_ch, opts).await;
    if let Some(r) = rec
        && !outcome.recording_finished
    {
        let status = outcome.exit_status.and_then(|s| i32::try_from(s).ok());
        if let Err(e) = Box::pin(r.finish(status, outcome.exit_signal)).await {
            tracing::error!(session = %state.id, "recording did not finish cleanly: {e}");
        }
    }
}

/// Checks the request against the server's rules and audits it: a refusal
/// is audited as `command.blocked` and answered (status 1), an audit log
/// that cannot be written refuses (status 255). True: go on.
async fn admit(
    state: &Arc<ConnState>,
    target: &ServerTarget,
    start: &Start,
    client: &ClientWriter,
    has_pty: bool,
) -> bool {
    let mut ev = state
        .base_event(EventKind::Exec)
        .detail("kind", start.kind())
        .detail("pty", has_pty);
    let checked = match start {
        Start::Exec(cmd) => crate::policy::check_command(&target.server, cmd, false),
        Start::Shell => crate::policy::check_open_session(&target.server, "a shell"),
        Start::Subsystem(name) => {
            crate::policy::check_open_session(&target.server, &format!("subsystem {name}"))
        }
    };
    match start {
        Start::Exec(cmd) => ev = ev.detail("command", cmd.clone()),
        Start::Subsystem(name) => ev = ev.detail("subsystem", name.clone()),
        Start::Shell => {}
    }
    if let Err(d) = checked {
        let command = match start {
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
            client,
            has_pty,
            &format!("gatehouse: access denied: {}", d.reason),
            1,
        )
        .await;
        return false;
    }
    if !Box::pin(state.shared.audit(ev)).await {
        refuse(
            client,
            has_pty,
            "gatehouse: the bastion cannot write its audit log",
            255,
        )
        .await;
        return false;
    }
    true
}

/// The recorder, when this account's sessions are recorded. `Err`: it
/// must be and cannot be (the client has been told; fail closed).
async fn start_recording(
    state: &Arc<ConnState>,
    target: &ServerTarget,
    start: &Start,
    pty: Option<&PtyReq>,
    client: &ClientWriter,
) -> Result<Option<Recorder>, ()> {
    let has_pty = pty.is_some();
    let account = target.allowed.account.clone();
    if !state.should_record_account(&account) {
        return Ok(None);
    }
    let meta = RecordingMeta {
        id: state.next_recording_id(),
        session: state.id.clone(),
        user: state.user.clone(),
        server: target.server.name.clone(),
        account: account.clone(),
        source: state.source.to_string(),
        grant: target.allowed.grant,
        kind: match start {
            Start::Shell => Kind::Shell,
            Start::Exec(_) => Kind::Exec,
            Start::Subsystem(_) => Kind::Subsystem,
        },
        command: match start {
            Start::Shell => None,
            Start::Exec(c) => Some(c.clone()),
            Start::Subsystem(n) => Some(n.clone()),
        },
        term: pty.map(|p| p.term.clone()),
        width: pty.map(|p| p.cols).unwrap_or(80),
        height: pty.map(|p| p.rows).unwrap_or(24),
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
        // The database's word that this cast exists: `recordings verify`
        // reports it missing if it goes.
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
                    client,
                    has_pty,
                    "gatehouse: the bastion cannot write its audit log",
                    255,
                )
                .await;
                return Err(());
            }
            // The session now waits for review (`sessions.review`,
            // migration 0022): the index of the review files. A database
            // that does not take it does not stop the recording; `serve`
            // reconciles the index from the files at its next start.
            if let Err(e) = state
                .shared
                .store
                .session_review_set(&state.id, Some(crate::store::SessionReview::Unreviewed))
                .await
            {
                tracing::error!(session = %state.id, "cannot mark the session unreviewed: {e}");
            }
            Ok(Some(r))
        }
        Err(e) => {
            tracing::error!(session = %state.id, "recording cannot start: {e}");
            refuse(
                client,
                has_pty,
                "gatehouse: this session must be recorded and the recording cannot be written; refused",
                255,
            )
            .await;
            Err(())
        }
    }
}

/// Opens the target's session channel and asks it for what the client
/// asked (PTY, environment, then shell, command or subsystem). `None`: the
/// target refused (the client has been told).
async fn open_target(
    upstream: &Upstream,
    target: &ServerTarget,
    client: &ClientWriter,
    pty: Option<&PtyReq>,
    env: &[(String, String)],
    start: &Start,
) -> Option<Channel<ClientMsg>> {
    let has_pty = pty.is_some();
    let target_ch = match Box::pin(upstream.handle.channel_open_session()).await {
        Ok(c) => c,
        Err(e) => {
            refuse(
                client,
                has_pty,
                &format!("gatehouse: {} refused a session: {e}", target.server.name),
                255,
            )
            .await;
            return None;
        }
    };
    if let Some(p) = pty {
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
    for (k, v) in env {
        let _ = target_ch.set_env(false, k.clone(), v.clone()).await;
    }
    let sent = match start {
        Start::Shell => target_ch.request_shell(true).await,
        Start::Exec(cmd) => target_ch.exec(true, cmd.as_bytes().to_vec()).await,
        Start::Subsystem(name) => match (&target.server.sftp_command, name.as_str()) {
            // The server's own rule for SFTP (e.g. read-only sftp-server).
            (Some(cmd), "sftp") => target_ch.exec(true, cmd.as_bytes().to_vec()).await,
            _ => target_ch.request_subsystem(true, name.clone()).await,
        },
    };
    if let Err(e) = sent {
        refuse(
            client,
            has_pty,
            &format!("gatehouse: {}: {e}", target.server.name),
            255,
        )
        .await;
        return None;
    }
    Some(target_ch)
}
