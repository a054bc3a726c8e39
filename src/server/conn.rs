//! One authenticated connection: what its login decided (a target, a
//! refusal to explain, or command mode), the lazily opened upstream SSH
//! connection, byte counters, and the watchdog that ends it on idle
//! timeout, `max_session`, grant expiry, kill or shutdown.
//!
//! Layer: below the channel modules; may import `flow`, `login`, `shared`
//! and `crate::upstream`; never a channel module (the handler spawns the
//! remote-forward loop, not this file).

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use super::login;
use super::shared::{EndReason, LiveSession, Shared};
use crate::audit::{AuditEvent, EventKind};
use crate::policy::{self, Action, Allowed, Decision, DenyCode, Policy, Request};
use crate::store::SessionRow;
use crate::upstream::{self, Credential, Endpoint, Upstream, UpstreamError};

/// Upstream failures that are refusals start with this.
/// Why a connection has no login on its target. The client's exit status
/// follows the variant ([`TargetError::is_refusal`]), never the wording.
#[derive(Debug, Clone)]
pub enum TargetError {
    /// The target (or the hop to it) failed or refused the bastion.
    Upstream(Arc<UpstreamError>),
    /// The bastion could not prepare the login (vault, CA, audit log).
    Bastion(String),
}

impl TargetError {
    /// A pinned host key that does not match is a refusal (contract
    /// section 5), not a fault: the client sees it as one.
    pub fn is_refusal(&self) -> bool {
        matches!(self, TargetError::Upstream(e) if matches!(**e, UpstreamError::HostKeyMismatch { .. }))
    }
}

impl std::fmt::Display for TargetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetError::Upstream(e) => match &**e {
                UpstreamError::HostKeyMismatch { server, .. } => write!(
                    f,
                    "access denied: the host key of {server} does not match its pinned fingerprint"
                ),
                e => e.fmt(f),
            },
            TargetError::Bastion(m) => f.write_str(m),
        }
    }
}

/// What the login name decided at authentication.
pub enum Target {
    /// A server the user may reach.
    Server(Box<ServerTarget>),
    /// A refusal, explained on the first channel.
    Denied {
        server: Option<String>,
        account: Option<String>,
        reason: String,
        /// The refusal is audited when a session channel is actually
        /// refused, not at login: a desktop login refuses sessions but its
        /// forwards may be allowed, so a `-W` must not count as a denial.
        audit_on_use: bool,
    },
    /// `ssh STAFF@bastion`: command mode (and ProxyJump).
    CommandMode,
}

pub struct ServerTarget {
    pub allowed: Allowed,
    pub server: policy::Server,
    /// The hop for `vpn` servers.
    pub via: Option<policy::Server>,
}

pub struct ConnState {
    pub shared: Arc<Shared>,
    pub id: String,
    pub user: String,
    pub source: IpAddr,
    /// The client's SSH identification string (`SSH-2.0-...`), at most
    /// 255 characters: SFTP needs it (`sftp::symlink_swap_needed`).
    pub client_id: String,
    pub target: Target,
    /// What proved this login (second factors, enroll-only).
    pub factors: login::Factors,
    pub handle: russh::server::Handle,
    /// Client-to-target bytes queued in the bastion for this connection.
    pub budget: Arc<super::flow::Budget>,
    upstream: OnceCell<Result<Arc<Upstream>, TargetError>>,
    pub cancel: CancellationToken,
    reason: Arc<Mutex<Option<EndReason>>>,
    started: Instant,
    pub started_at: OffsetDateTime,
    /// Milliseconds since `started` of the last byte either way.
    last_activity: AtomicI64,
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
    pub last_exit: Mutex<Option<i64>>,
    channel_seq: AtomicU32,
    closed: AtomicBool,
    /// Remote forwards (`-R`) the client asked for and the target bound:
    /// (address, port).
    remote_forwards: Mutex<std::collections::HashSet<(String, u32)>>,
    /// A vault password logged this session in (for `rotate_after_use`).
    used_vault_password: AtomicBool,
    /// Channels the target opens for those forwards; taken by the task
    /// that bridges them once the first forward is bound.
    forwarded_tx: tokio::sync::mpsc::UnboundedSender<Box<upstream::Forwarded>>,
    forwarded_rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Box<upstream::Forwarded>>>>,
}

/// Decides, at authentication, what this login may do.
pub async fn decide_target(
    shared: &Arc<Shared>,
    policy: &Policy,
    staff: &str,
    login_name: &str,
    source: IpAddr,
    session: &str,
) -> Target {
    let parsed = match login::parse(login_name) {
        Ok(l) => l,
        Err(e) => {
            shared
                .audit(
                    AuditEvent::new(EventKind::AccessDenied)
                        .user(staff)
                        .source(source.to_string())
                        .session(session)
                        .detail("code", "KO_BAD_LOGIN")
                        .detail("reason", e.to_string()),
                )
                .await;
            return Target::Denied {
                server: None,
                account: None,
                reason: e.to_string(),
                audit_on_use: false,
            };
        }
    };
    let Some(server_name) = parsed.server.clone() else {
        return Target::CommandMode;
    };
    let grants = match shared.store.grants_for(staff).await {
        Ok(g) => g,
        Err(e) => {
            tracing::error!("grants lookup failed, refusing: {e}");
            return Target::Denied {
                server: Some(server_name),
                account: parsed.account,
                reason: "the bastion cannot reach its database".into(),
                audit_on_use: false,
            };
        }
    };
    // Access reviews (contract section 14): read with the grants, fail
    // closed like them.
    let marks = match shared.store.review_marks(Some(staff)).await {
        Ok(m) => m,
        Err(e) => {
            tracing::error!("access review lookup failed, refusing: {e}");
            return Target::Denied {
                server: Some(server_name),
                account: parsed.account,
                reason: "the bastion cannot reach its database".into(),
                audit_on_use: false,
            };
        }
    };
    let review = policy::ReviewInput {
        every: shared.config.review.every,
        enforce: shared.config.review.enforce,
        marks: &marks,
    };
    let req = Request {
        user: staff,
        server: &server_name,
        account: parsed.account.as_deref(),
        source,
        action: Action::Session,
    };
    match policy::decide_reviewed(policy, &req, &grants, &review, Shared::now()) {
        Decision::Allow(allowed) => {
            let server = policy.server(&allowed.server).cloned();
            match server {
                Some(server) => {
                    let via = server
                        .via
                        .as_deref()
                        .and_then(|v| policy.server(v))
                        .cloned();
                    Target::Server(Box::new(ServerTarget {
                        allowed,
                        server,
                        via,
                    }))
                }
                None => Target::Denied {
                    server: Some(server_name),
                    account: parsed.account,
                    reason: "no such server, or you may not reach it".into(),
                    audit_on_use: false,
                },
            }
        }
        Decision::Deny(d) if d.code == crate::policy::DenyCode::ModeRefuses => Target::Denied {
            server: Some(server_name),
            account: parsed.account,
            reason: d.reason,
            audit_on_use: true,
        },
        Decision::Deny(d) => {
            shared
                .audit(
                    AuditEvent::new(EventKind::AccessDenied)
                        .user(staff)
                        .server(&server_name)
                        .account(parsed.account.clone().unwrap_or_default())
                        .source(source.to_string())
                        .session(session)
                        .detail("code", d.code.as_str())
                        .detail("reason", d.reason.clone())
                        .detail("rule", d.rule.clone()),
                )
                .await;
            Target::Denied {
                server: Some(server_name),
                account: parsed.account,
                reason: d.reason,
                audit_on_use: false,
            }
        }
    }
}

mod remote;
mod target_login;

impl ConnState {
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        shared: Arc<Shared>,
        id: String,
        user: String,
        source: IpAddr,
        client_id: String,
        target: Target,
        factors: login::Factors,
        handle: russh::server::Handle,
        budget: Arc<super::flow::Budget>,
    ) -> Arc<ConnState> {
        let cancel = shared.shutdown.child_token();
        let reason = Arc::new(Mutex::new(None));
        let (forwarded_tx, forwarded_rx) = tokio::sync::mpsc::unbounded_channel();
        let state = Arc::new(ConnState {
            shared: shared.clone(),
            id: id.clone(),
            user: user.clone(),
            source,
            client_id,
            target,
            factors,
            handle,
            budget,
            upstream: OnceCell::new(),
            cancel: cancel.clone(),
            reason: reason.clone(),
            started: Instant::now(),
            started_at: Shared::now(),
            last_activity: AtomicI64::new(0),
            bytes_up: AtomicU64::new(0),
            bytes_down: AtomicU64::new(0),
            last_exit: Mutex::new(None),
            channel_seq: AtomicU32::new(0),
            closed: AtomicBool::new(false),
            remote_forwards: Mutex::new(std::collections::HashSet::new()),
            used_vault_password: AtomicBool::new(false),
            forwarded_tx,
            forwarded_rx: Mutex::new(Some(forwarded_rx)),
        });
        let (server, grant) = match &state.target {
            Target::Server(t) => (Some(t.server.name.clone()), t.allowed.grant),
            _ => (None, None),
        };
        shared.register(
            &id,
            LiveSession {
                user: user.clone(),
                server: server.clone(),
                grant,
                account: state.account().map(str::to_string),
                source,
                cancel,
                reason,
                conn: Arc::downgrade(&state) as std::sync::Weak<ConnState>,
            },
        );
        crate::metrics::session_started(state.metrics_mode());
        let row = SessionRow {
            id: id.clone(),
            user: user.clone(),
            server: server.clone(),
            account: state.account().map(str::to_string),
            source: source.to_string(),
            node: shared.config.node.clone(),
            started_at: state.started_at,
            ended_at: None,
            mode: state
                .server_target()
                .map(|t| t.server.mode.as_str().to_string()),
            grant_id: grant,
            recorded: state
                .server_target()
                .is_some_and(|t| state.should_record_account(&t.allowed.account)),
            bytes_up: 0,
            bytes_down: 0,
            exit_status: None,
            end_reason: None,
            flagged: state.server_target().map(|t| t.allowed.flagged),
            review: None,
        };
        if let Err(e) = shared.store.session_start(&row).await {
            tracing::error!("session row: {e}");
            state.end("the bastion cannot reach its database");
        }
        if let Some(t) = state.server_target() {
            let ok = shared
                .audit(
                    AuditEvent::new(EventKind::SessionStart)
                        .user(&user)
                        .server(&t.server.name)
                        .account(&t.allowed.account)
                        .source(source.to_string())
                        .session(&id)
                        .detail("mode", t.server.mode.as_str())
                        .detail("grant", t.allowed.grant)
                        .detail("rule", t.allowed.rule.clone())
                        .detail("flagged", t.allowed.flagged),
                )
                .await;
            if !ok {
                state.end("the bastion cannot write its audit log");
            }
        }
        tokio::spawn(watchdog(state.clone()));
        state
    }

    pub fn server_target(&self) -> Option<&ServerTarget> {
        match &self.target {
            Target::Server(t) => Some(t),
            _ => None,
        }
    }

    pub fn server_name(&self) -> Option<&str> {
        match &self.target {
            Target::Server(t) => Some(&t.server.name),
            Target::Denied { server, .. } => server.as_deref(),
            Target::CommandMode => None,
        }
    }

    pub fn account(&self) -> Option<&str> {
        match &self.target {
            Target::Server(t) => Some(&t.allowed.account),
            Target::Denied { account, .. } => account.as_deref(),
            Target::CommandMode => None,
        }
    }

    pub fn should_record_account(&self, account: &str) -> bool {
        match self.server_target() {
            Some(t) => policy::should_record(
                &t.server,
                account,
                &self.shared.config.recording.privileged_accounts,
            ),
            None => false,
        }
    }

    /// A fresh recording id: the session id for the first recorded
    /// channel, `ID-2`, `ID-3`... for the next ones.
    pub fn next_recording_id(&self) -> String {
        let n = self.channel_seq.fetch_add(1, Ordering::SeqCst);
        if n == 0 {
            self.id.clone()
        } else {
            format!("{}-{}", self.id, n + 1)
        }
    }

    pub fn touch(&self) {
        let ms = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.last_activity.store(ms, Ordering::Relaxed);
    }

    /// Bytes up and down so far, and when the last one moved (the start
    /// if none has): what a crash close reports (`Store::session_progress`).
    pub fn progress(&self) -> (i64, i64, OffsetDateTime) {
        let up = i64::try_from(self.bytes_up.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
        let down = i64::try_from(self.bytes_down.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
        let ms = self.last_activity.load(Ordering::Relaxed);
        let last = self.started_at + time::Duration::milliseconds(ms);
        (up, down, last)
    }

    fn idle_for(&self) -> Duration {
        let last = self.last_activity.load(Ordering::Relaxed);
        let now = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        Duration::from_millis(u64::try_from(now.saturating_sub(last)).unwrap_or(0))
    }

    /// Ends the whole session with a reason the client will see.
    pub fn end(&self, reason: &str) {
        super::shared::end_session(&self.reason, &self.cancel, reason);
    }

    pub fn end_reason(&self) -> String {
        self.reason
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .map(|r| r.0)
            .unwrap_or_else(|| "session ended".into())
    }

    pub fn base_event(&self, kind: EventKind) -> AuditEvent {
        let mut ev = AuditEvent::new(kind)
            .user(&self.user)
            .source(self.source.to_string())
            .session(&self.id);
        if let Some(s) = self.server_name() {
            ev = ev.server(s);
        }
        if let Some(a) = self.account() {
            ev = ev.account(a);
        }
        ev
    }

    /// Audits a refused `action` (`forward.denied`, or `access.denied` for
    /// a session) with its stable `code`, the reason, and the action in
    /// words (`describe_action`).
    pub async fn audit_denied(&self, action: &Action, code: &str, reason: &str) {
        let kind = match action {
            Action::Session => EventKind::AccessDenied,
            _ => EventKind::ForwardDenied,
        };
        self.shared
            .audit(
                self.base_event(kind)
                    .detail("code", code)
                    .detail("action", describe_action(action))
                    .detail("reason", reason),
            )
            .await;
    }

    /// Records an exit status for the session's end event.
    pub fn set_exit(&self, code: i64) {
        if let Ok(mut e) = self.last_exit.lock() {
            *e = Some(code);
        }
    }

    /// Called when the client connection is gone.
    pub fn connection_closed(self: &Arc<Self>) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        self.cancel.cancel();
        let state = self.clone();
        tokio::spawn(async move { state.finish().await });
    }

    /// The `mode` label of this session in the metrics.
    fn metrics_mode(&self) -> &'static str {
        match &self.target {
            Target::Server(t) => t.server.mode.as_str(),
            Target::Denied { .. } => "denied",
            Target::CommandMode => "command",
        }
    }

    async fn finish(&self) {
        self.shared.unregister(&self.id);
        if self.used_vault_password.load(Ordering::SeqCst)
            && let Some(t) = self.server_target()
            && t.server.rotate_after_use
        {
            let shared = self.shared.clone();
            let (server, account) = (t.server.name.clone(), t.allowed.account.clone());
            tokio::spawn(async move {
                let policy = shared.policy();
                let rotator = crate::vault::rotate::Rotator {
                    vault: &shared.vault,
                    store: &shared.store,
                    policy: &policy,
                    identity: shared.identity.clone(),
                    admin_account: &shared.config.vault.rotation_admin_account,
                    algorithms: &shared.config.ssh.target,
                    actor: "rotate_after_use",
                };
                if let Err(e) = rotator.rotate(&server, &account).await {
                    tracing::warn!("rotation after use of {account}@{server}: {e}");
                }
            });
        }
        let up = i64::try_from(self.bytes_up.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
        let down = i64::try_from(self.bytes_down.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
        crate::metrics::session_ended(self.metrics_mode(), up.unsigned_abs(), down.unsigned_abs());
        let exit = self.last_exit.lock().ok().and_then(|e| *e);
        let reason = self.end_reason();
        let now = Shared::now();
        if let Err(e) = self
            .shared
            .store
            .session_end(&self.id, now, up, down, exit, &reason)
            .await
        {
            tracing::error!("session end row: {e}");
        }
        if self.server_target().is_some() {
            let secs = (now - self.started_at).as_seconds_f64();
            self.shared
                .audit(
                    self.base_event(EventKind::SessionEnd)
                        .detail("bytes_up", up)
                        .detail("bytes_down", down)
                        .detail("exit_status", exit)
                        .detail("duration_secs", secs)
                        .detail("reason", reason),
                )
                .await;
        }
    }
}

impl super::shared::Progress for ConnState {
    fn progress(&self) -> (i64, i64, OffsetDateTime) {
        ConnState::progress(self)
    }
}

/// Ends the connection on idle timeout, `max_session` or grant expiry, and
/// disconnects the client shortly after any cancellation (kill, shutdown).
async fn watchdog(state: Arc<ConnState>) {
    let idle_limit = state
        .server_target()
        .and_then(|t| t.server.idle_timeout)
        .unwrap_or(state.shared.config.limits.idle_timeout);
    let max_session = state.server_target().and_then(|t| t.server.max_session);
    let grant_expires = state.server_target().and_then(|t| t.allowed.grant_expires);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = state.cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        if state.idle_for() >= idle_limit {
            state.end("idle timeout");
        } else if max_session.is_some_and(|m| state.started.elapsed() >= m) {
            state.end("maximum session duration reached");
        } else if grant_expires.is_some_and(|e| Shared::now() >= e) {
            state.end("the grant that authorized this session has expired");
        }
    }
    if state.closed.load(Ordering::SeqCst) {
        return;
    }
    // Give channel tasks a moment to tell the client why, then hang up.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let reason = state.end_reason();
    let _ = state
        .handle
        .disconnect(
            russh::Disconnect::ByApplication,
            format!("gatehouse: {reason}"),
            "en".into(),
        )
        .await;
}

/// An action as a person reads it in an audit event's `action`.
fn describe_action(action: &Action) -> String {
    match action {
        Action::Session => "session".into(),
        Action::LocalForward { host, port } => format!("local forward to {host}:{port}"),
        Action::RemoteForward { port } => format!("remote forward (-R) of port {port}"),
        Action::Jump { host, port } => format!("jump to {host}:{port}"),
        Action::AgentForward => "agent forwarding".into(),
        Action::X11Forward => "X11 forwarding".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_follows_the_error_not_its_wording() {
        let mismatch = TargetError::Upstream(Arc::new(UpstreamError::HostKeyMismatch {
            server: "prod-db".into(),
            expected: Some("SHA256:x".into()),
            presented: "SHA256:y".into(),
            presented_type: None,
        }));
        assert!(mismatch.is_refusal());
        assert_eq!(
            mismatch.to_string(),
            "access denied: the host key of prod-db does not match its pinned fingerprint"
        );
        // A fault worded like a refusal stays a fault (exit status 255).
        let fault = TargetError::Bastion("access denied: the vault is sealed".into());
        assert!(!fault.is_refusal());
        let refused_login = TargetError::Upstream(Arc::new(UpstreamError::AuthRefused {
            server: "prod-db".into(),
            account: "root".into(),
        }));
        assert!(!refused_login.is_refusal());
        assert_eq!(
            refused_login.to_string(),
            "prod-db refused the bastion's login as root"
        );
    }
}
