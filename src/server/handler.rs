//! The thin russh adapter: each callback becomes a decision or an event for
//! a per-channel task. Callbacks never wait on a target: the client-facing
//! session loop must keep running (it processes the client's window
//! adjustments that the target-to-client direction waits on), so requests are
//! answered at once and the work happens in the channel tasks.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use russh::server::{
    Auth, ChannelOpenHandle, Handler, Msg, PublicKeyOffer, Session, VerifiedPublicKey,
};
use russh::{Channel, ChannelId, ChannelOpenFailure, Pty, Sig};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use super::channel::{self, ChanEvent, refuse_open};
use super::conn::{ConnState, Target};
use super::login;
use super::shared::Shared;
use crate::audit::{AuditEvent, EventKind};

mod cert_auth;
use crate::policy::{self, Action, Decision, DenyCode, Request};

/// Client-to-target bytes queued in the bastion for one connection above
/// which the client's window is no longer refilled (see `adjust_window`).
const BACKLOG_HIGH: usize = 8 * 1024 * 1024;
/// The channel window granted while the backlog is under the mark.
pub const WINDOW: u32 = 2 * 1024 * 1024;
/// While throttled, a trickle keeps `adjust_window` being called so the
/// window reopens once the backlog drains.
const TRICKLE: u32 = 2;

pub struct ConnHandler {
    shared: Arc<Shared>,
    peer: SocketAddr,
    /// Session id (also the audit `session` field).
    id: String,
    /// Held until authentication succeeds: caps unauthenticated connections.
    startup: Option<OwnedSemaphorePermit>,
    authed: Arc<AtomicBool>,
    /// Set in `auth_publickey`, completed into `state` in `auth_succeeded`.
    pending: Option<(String, Target)>,
    state: Option<Arc<ConnState>>,
    channels: HashMap<ChannelId, mpsc::UnboundedSender<ChanEvent>>,
    backlog: Arc<AtomicUsize>,
    failures_here: u32,
    /// Number in the registry of unauthenticated connections.
    unauth_seq: u64,
}

impl ConnHandler {
    pub fn new(
        shared: Arc<Shared>,
        peer: SocketAddr,
        id: String,
        startup: OwnedSemaphorePermit,
        authed: Arc<AtomicBool>,
        unauth_seq: u64,
    ) -> Self {
        ConnHandler {
            shared,
            peer,
            id,
            startup: Some(startup),
            authed,
            pending: None,
            state: None,
            channels: HashMap::new(),
            backlog: Arc::new(AtomicUsize::new(0)),
            failures_here: 0,
            unauth_seq,
        }
    }

    fn source(&self) -> IpAddr {
        self.peer.ip()
    }

    async fn refuse(&mut self, user: &str, reason: &str, code: &str, count_user: bool) -> Auth {
        self.failures_here += 1;
        self.shared.note_source_failure(self.source());
        let mut ev = AuditEvent::new(EventKind::AuthFailure)
            .source(self.source().to_string())
            .session(&self.id)
            .detail("reason", reason)
            .detail("code", code);
        if login::staff_part(user).is_some() {
            ev = ev.user(login::staff_part(user).unwrap_or_default());
        } else {
            ev = ev.detail("login", sanitize(user));
        }
        self.shared.audit(ev).await;
        if count_user && let Some(staff) = login::staff_part(user) {
            let now = super::shared::Shared::now();
            match self.shared.store.auth_failure(staff, now).await {
                Ok(n) if n >= self.shared.config.limits.lockout_after => {
                    let lockout_for =
                        time::Duration::try_from(self.shared.config.limits.lockout_for)
                            .unwrap_or(time::Duration::hours(6));
                    let until = now + lockout_for;
                    if self.shared.store.lock_user(staff, until).await.is_ok() {
                        self.shared
                            .audit(
                                AuditEvent::new(EventKind::AuthLockout)
                                    .user(staff)
                                    .source(self.source().to_string())
                                    .detail("failures", n)
                                    .detail(
                                        "until",
                                        until
                                            .format(&time::format_description::well_known::Rfc3339)
                                            .unwrap_or_default(),
                                    ),
                            )
                            .await;
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::error!("lockout counter: {e}"),
            }
        }
        Auth::reject()
    }

    /// Everything a key offer and a signed key both go through: the
    /// prechecks, then the policy's verdict on this key from this address
    /// now. `Ok` carries the staff name and the policy it was judged by;
    /// `Err` is the refusal to send.
    async fn check_key(
        &mut self,
        user: &str,
        key: &russh::keys::PublicKey,
    ) -> Result<(String, Arc<policy::Policy>), Auth> {
        if let Some(refusal) = self.precheck(user).await {
            return Err(refusal);
        }
        let staff = login::staff_part(user).unwrap_or_default().to_string();
        let policy = self.shared.policy();
        if let Err(d) = policy::authenticate(&policy, &staff, key, self.source(), Shared::now()) {
            let count = d.code != DenyCode::UnknownUser;
            return Err(self.refuse(user, &d.rule, d.code.as_str(), count).await);
        }
        Ok((staff, policy))
    }

    /// Checks that come before looking at the key: rate limit, login name
    /// shape, lockout. `Some(auth)` is a refusal.
    async fn precheck(&mut self, user: &str) -> Option<Auth> {
        if self.shared.source_blocked(self.source()) {
            return Some(
                self.refuse(
                    user,
                    "too many failed attempts from this address",
                    "RATE_LIMITED",
                    false,
                )
                .await,
            );
        }
        let Some(staff) = login::staff_part(user) else {
            return Some(
                self.refuse(user, "login name does not parse", "BAD_LOGIN", false)
                    .await,
            );
        };
        match self.shared.store.locked_until(staff).await {
            Ok(None) => None,
            Ok(Some(_)) => Some(self.refuse(user, "account locked", "LOCKED", false).await),
            Err(e) => {
                tracing::error!("lockout check failed, refusing: {e}");
                Some(
                    self.refuse(user, "database unavailable", "STORE_DOWN", false)
                        .await,
                )
            }
        }
    }

    /// Queues an event for a channel's task. Data bytes are counted in the
    /// backlog only when queued (channels the bastion opened itself, for
    /// remote forwards, are read through their own handles).
    fn event(&mut self, channel: ChannelId, ev: ChanEvent) {
        let Some(tx) = self.channels.get(&channel) else {
            return;
        };
        let n = match &ev {
            ChanEvent::Data(b) | ChanEvent::ExtData(_, b) => b.len(),
            _ => 0,
        };
        if tx.send(ev).is_err() {
            self.channels.remove(&channel);
        } else if n > 0 {
            self.backlog.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// A login name as it may appear in an audit event: bounded and printable.
fn sanitize(s: &str) -> String {
    s.chars()
        .take(100)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

impl Handler for ConnHandler {
    type Error = russh::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(Auth::Reject {
            proceed_with_methods: Some(russh::MethodSet::from(&[russh::MethodKind::PublicKey][..])),
            partial_success: false,
        })
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        // With staff CAs configured, a certificate's key arrives here bare,
        // indistinguishable from a plain key: the key is then checked once
        // signed (auth_publickey or auth_openssh_certificate).
        if !self.shared.config.cert_authorities.is_empty() {
            return Ok(self.precheck(user).await.unwrap_or(Auth::Accept));
        }
        match self.check_key(user, offer.public_key).await {
            Ok(_) => Ok(Auth::Accept),
            Err(refusal) => Ok(refusal),
        }
    }

    async fn auth_openssh_certificate(
        &mut self,
        user: &str,
        certificate: &russh::keys::Certificate,
    ) -> Result<Auth, Self::Error> {
        Ok(self.check_certificate(user, certificate).await)
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let (staff, policy) = match self.check_key(user, key.public_key).await {
            Ok(checked) => checked,
            Err(refusal) => return Ok(refusal),
        };
        if let Err(e) = self.shared.store.auth_success(&staff).await {
            tracing::error!("cannot reset failure counter, refusing: {e}");
            return Ok(self
                .refuse(user, "database unavailable", "STORE_DOWN", false)
                .await);
        }
        let audited = self
            .shared
            .audit(
                AuditEvent::new(EventKind::AuthSuccess)
                    .user(&staff)
                    .source(self.source().to_string())
                    .session(&self.id)
                    .detail("key", crate::keys::fingerprint(key.public_key))
                    .detail("login", sanitize(user)),
            )
            .await;
        if !audited {
            return Ok(Auth::reject());
        }
        let target = super::conn::decide_target(
            &self.shared,
            &policy,
            &staff,
            user,
            self.source(),
            &self.id,
        )
        .await;
        self.pending = Some((staff, target));
        Ok(Auth::Accept)
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        self.startup = None;
        self.authed.store(true, Ordering::SeqCst);
        self.shared.unauth_done(self.unauth_seq);
        let Some((staff, target)) = self.pending.take() else {
            return Err(russh::Error::Disconnect);
        };
        let state = ConnState::start(
            self.shared.clone(),
            self.id.clone(),
            staff,
            self.source(),
            target,
            session.handle(),
        )
        .await;
        self.state = Some(state);
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(state) = self.state.clone() else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        let id = channel.id();
        let (tx, rx) = mpsc::unbounded_channel();
        self.channels.insert(id, tx);
        reply.accept().await;
        let (_read, write) = channel.split();
        // The read half is dropped: data reaches the task through `rx`, in
        // order with the requests, and never blocks the session loop.
        tokio::spawn(channel::run_session_channel(
            state,
            id,
            write,
            rx,
            self.backlog.clone(),
        ));
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        originator_address: &str,
        originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(state) = self.state.clone() else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        let host: String = host_to_connect.chars().take(255).collect();
        let Ok(port) = u16::try_from(port_to_connect) else {
            refuse_open(reply, true, "invalid port".into()).await;
            return Ok(());
        };
        let id = channel.id();
        let (tx, rx) = mpsc::unbounded_channel();
        self.channels.insert(id, tx);
        let origin = (sanitize(originator_address), originator_port);
        // Deciding and connecting happen in the task: the reply handle
        // confirms or refuses the channel from there.
        tokio::spawn(channel::run_forward_channel(
            state,
            channel,
            reply,
            rx,
            self.backlog.clone(),
            host,
            port,
            origin,
        ));
        Ok(())
    }

    async fn channel_open_x11(
        &mut self,
        _channel: Channel<Msg>,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        refuse_open(reply, true, "X11 forwarding is refused".into()).await;
        Ok(())
    }

    async fn channel_open_direct_streamlocal(
        &mut self,
        _channel: Channel<Msg>,
        _socket_path: &str,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        refuse_open(reply, true, "unix socket forwarding is refused".into()).await;
        Ok(())
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(s) = &self.state {
            s.touch();
        }
        self.event(channel, ChanEvent::Data(Bytes::copy_from_slice(data)));
        Ok(())
    }

    async fn extended_data(
        &mut self,
        channel: ChannelId,
        code: u32,
        data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.event(
            channel,
            ChanEvent::ExtData(code, Bytes::copy_from_slice(data)),
        );
        Ok(())
    }

    fn adjust_window(&mut self, _channel: ChannelId, _current: u32) -> u32 {
        if self.backlog.load(Ordering::Relaxed) > BACKLOG_HIGH {
            TRICKLE
        } else {
            WINDOW
        }
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.event(channel, ChanEvent::Eof);
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.event(channel, ChanEvent::Close);
        self.channels.remove(&channel);
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        col_width: u32,
        row_height: u32,
        pix_width: u32,
        pix_height: u32,
        modes: &[(Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        self.event(
            channel,
            ChanEvent::Pty {
                term: term.chars().take(64).collect(),
                cols: col_width,
                rows: row_height,
                pix_width,
                pix_height,
                modes: modes.to_vec(),
            },
        );
        Ok(())
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        variable_name: &str,
        variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        self.event(
            channel,
            ChanEvent::Env(variable_name.to_string(), variable_value.to_string()),
        );
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        self.event(channel, ChanEvent::Shell);
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        self.event(channel, ChanEvent::Exec(data.to_vec()));
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        self.event(channel, ChanEvent::Subsystem(name.to_string()));
        Ok(())
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        col_width: u32,
        row_height: u32,
        pix_width: u32,
        pix_height: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.event(
            channel,
            ChanEvent::WindowChange {
                cols: col_width,
                rows: row_height,
                pix_width,
                pix_height,
            },
        );
        Ok(())
    }

    async fn signal(
        &mut self,
        channel: ChannelId,
        signal: Sig,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.event(channel, ChanEvent::Signal(signal));
        Ok(())
    }

    async fn agent_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<bool, Self::Error> {
        session.channel_failure(channel)?;
        if let Some(s) = &self.state {
            s.audit_denied(&Action::AgentForward, "agent forwarding is refused")
                .await;
        }
        Ok(false)
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        if let Some(s) = &self.state {
            s.audit_denied(&Action::X11Forward, "X11 forwarding is refused")
                .await;
        }
        Ok(())
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        let Some(state) = self.state.clone() else {
            return Ok(false);
        };
        let address: String = address.chars().take(255).collect();
        Ok(state.remote_forward(&address, port).await)
    }

    async fn cancel_tcpip_forward(
        &mut self,
        address: &str,
        port: u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        let Some(state) = self.state.clone() else {
            return Ok(false);
        };
        Ok(state.cancel_remote_forward(address, port).await)
    }
}

impl Drop for ConnHandler {
    fn drop(&mut self) {
        if let Some(state) = self.state.take() {
            state.connection_closed();
        }
    }
}

/// Builds the request for a session login (used by `conn`).
pub fn session_request<'a>(
    user: &'a str,
    server: &'a str,
    account: Option<&'a str>,
    source: IpAddr,
) -> Request<'a> {
    Request {
        user,
        server,
        account,
        source,
        action: Action::Session,
    }
}

pub fn is_allowed(d: &Decision) -> bool {
    matches!(d, Decision::Allow(_))
}
