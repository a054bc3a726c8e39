//! The thin russh adapter: each callback becomes a decision or an event for
//! a per-channel task. Callbacks never wait on a target: the client-facing
//! session loop must keep running (it processes the client's window
//! adjustments that the target-to-client direction waits on), so requests are
//! answered at once and the work happens in the channel tasks.
//!
//! Layer: above the channel dispatcher and the forwards (it spawns them);
//! may import `chan`, `channel`, `forwards`, `conn`, `flow`, `login`,
//! `shared`; only `mod.rs` imports it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use russh::server::{
    Auth, ChannelOpenHandle, Handler, Msg, PublicKeyOffer, Session, VerifiedPublicKey,
};
use russh::{Channel, ChannelId, ChannelOpenFailure, Pty, Sig};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use super::chan::{ChanEvent, refuse_open};
use super::conn::{ConnState, Target};
use super::flow::{self, Budget, ChannelFlowError, Inbox, Windows};
use super::login;
use super::shared::Shared;
use super::{channel, forwards};
use crate::audit::{AuditEvent, EventKind};
use crate::envfilter::{self, EnvFilter};

mod auth_steps;
mod cert_auth;
mod channel_steps;
mod second_factor;
use crate::policy::{self, Action, DenyCode};

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
    pending: Option<(String, Target, login::Factors)>,
    /// A key russh verified for a login name that still owes a second
    /// factor: the only way into keyboard-interactive.
    key_proven: Option<KeyProven>,
    /// Sent with the next refusal as an authentication banner (the
    /// vendored russh's `auth_rejection_banner`).
    banner: Option<String>,
    state: Option<Arc<ConnState>>,
    /// The queues of the channels the client opened, while their tasks run.
    channels: HashMap<ChannelId, Inbox>,
    /// Client-to-target bytes queued in the bastion for this connection.
    budget: Arc<Budget>,
    /// What each channel's window still allows the client to send.
    windows: Windows,
    /// Channel opens refused by `max_channels_per_connection`.
    channels_refused: u64,
    /// Set once the peer broke flow control: the connection is ending.
    violated: bool,
    /// Cuts the client's socket (see `Cuttable` in `server`).
    cut: CancellationToken,
    failures_here: u32,
    /// The staff name whose listed key was accepted on offer and whose
    /// signature has not been verified yet (`settle_unproven`).
    awaiting_proof: Option<String>,
    /// The signature algorithm of the last key offer: a certificate's
    /// signature uses it (russh checks), and `auth_openssh_certificate` is
    /// not told.
    offered_algorithm: Option<String>,
    /// `[limits] accept_env`, compiled at the first env request.
    env_filter: Option<EnvFilter>,
    /// Environment variables refused per channel, not audited yet.
    env_refused: HashMap<ChannelId, envfilter::Refused>,
    /// A RATE_LIMITED refusal of this connection was audited already.
    rate_limit_audited: bool,
    /// Number in the registry of unauthenticated connections.
    unauth_seq: u64,
    /// Times this connection waited for a database that did not answer
    /// (at most once per login: then the outage is known and refusals are
    /// at once); in the `STORE_DOWN` refusal's `detail.db_waits`.
    db_waits: u32,
}

impl ConnHandler {
    pub fn new(
        shared: Arc<Shared>,
        peer: SocketAddr,
        id: String,
        startup: OwnedSemaphorePermit,
        authed: Arc<AtomicBool>,
        unauth_seq: u64,
        cut: CancellationToken,
    ) -> Self {
        let max_channels = shared.config.limits.max_channels_per_connection;
        ConnHandler {
            shared,
            peer,
            id,
            startup: Some(startup),
            authed,
            pending: None,
            key_proven: None,
            banner: None,
            state: None,
            channels: HashMap::new(),
            budget: Budget::new(max_channels),
            windows: Windows::default(),
            channels_refused: 0,
            violated: false,
            cut,
            failures_here: 0,
            awaiting_proof: None,
            offered_algorithm: None,
            rate_limit_audited: false,
            env_filter: None,
            env_refused: HashMap::new(),
            unauth_seq,
            db_waits: 0,
        }
    }

    fn source(&self) -> IpAddr {
        self.peer.ip()
    }
}

/// A key whose signature russh verified, for this login name, waiting for
/// its second factor (`handler::second_factor`). Only `after_key` sets it.
struct KeyProven {
    /// The login name exactly as sent: a request naming another one does
    /// not inherit the proof.
    login: String,
    staff: String,
    fingerprint: String,
    sig_alg: String,
    /// The `auth.success` event so far (key, algorithm, certificate...).
    success: AuditEvent,
}

/// What proved the key, for `after_key` (`handler::second_factor`).
struct KeyProof {
    fingerprint: String,
    sig_alg: String,
    /// The signature had the user-presence flag of a security key.
    security_key: bool,
    success: AuditEvent,
}

/// The refusal code of a login refused because the database is away.
const STORE_DOWN: &str = "STORE_DOWN";

/// The authentication banner while the database cannot be reached.
const STORE_DOWN_BANNER: &str =
    "gatehouse: the bastion cannot reach its database; logins are refused until it is back";

/// A login name as it may appear in an audit event: bounded and printable.
fn sanitize(s: &str) -> String {
    s.chars()
        .take(100)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

impl Handler for ConnHandler {
    type Error = russh::Error;

    /// Shown by the stock client (at its default log level) before it
    /// authenticates: the one way to tell a user why every login is
    /// refused while the database is away, instead of a bare "Permission
    /// denied".
    async fn authentication_banner(&mut self) -> Result<Option<String>, Self::Error> {
        let probe = Box::pin(self.shared.store.probe()).await;
        if probe.up {
            return Ok(None);
        }
        if probe.asked {
            self.db_waits += 1;
        }
        Ok(Some(format!("{STORE_DOWN_BANNER}\r\n")))
    }

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Box::pin(self.settle_unproven()).await;
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
        Box::pin(self.settle_unproven()).await;
        // SHA-1 signatures are refused on offer, before the client signs
        // (russh then checks that the signature uses the algorithm offered).
        if crate::algorithms::weak_signature_algorithm(offer.algorithm) {
            return Ok(Box::pin(self.refuse_weak(user, offer.algorithm)).await);
        }
        self.offered_algorithm = Some(offer.algorithm.as_str().to_string());
        // With staff CAs configured, a certificate's key arrives here bare,
        // indistinguishable from a plain key: the key is then checked once
        // signed (auth_publickey or auth_openssh_certificate).
        if !self.shared.config.cert_authorities.is_empty() {
            return Ok(Box::pin(self.precheck(user)).await.unwrap_or(Auth::Accept));
        }
        match Box::pin(self.check_key(user, offer.public_key)).await {
            Ok((staff, _)) => {
                self.awaiting_proof = Some(staff);
                Ok(Auth::Accept)
            }
            Err(refusal) => Ok(refusal),
        }
    }

    async fn auth_openssh_certificate(
        &mut self,
        user: &str,
        certificate: &russh::keys::Certificate,
    ) -> Result<Auth, Self::Error> {
        Ok(Box::pin(self.check_certificate(user, certificate)).await)
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        // russh calls this only once the signature verified: the offer was
        // proven, whatever the decision below.
        self.awaiting_proof = None;
        // The offer was checked already; this guards the signed request
        // whatever path russh took to it.
        if crate::algorithms::weak_signature_algorithm(key.algorithm) {
            return Ok(Box::pin(self.refuse_weak(user, key.algorithm)).await);
        }
        let (staff, policy) = match Box::pin(self.check_key(user, key.public_key)).await {
            Ok(checked) => checked,
            Err(refusal) => return Ok(refusal),
        };
        let fingerprint = crate::keys::fingerprint(key.public_key);
        // A security key proves a touch only with the user-presence flag
        // (signed over, so it cannot be forged): without it, no login.
        if let Some(sk) = key.security_key
            && !sk.user_present()
        {
            return Ok(Box::pin(self.refuse_no_presence(user, &fingerprint)).await);
        }
        let mut success = AuditEvent::new(EventKind::AuthSuccess)
            .detail("key", fingerprint.clone())
            .detail("sig_alg", key.algorithm.as_str());
        if let Some(sk) = key.security_key {
            success = success
                .detail("sk_flags", sk.flags)
                .detail("sk_counter", sk.counter);
        }
        let proof = KeyProof {
            fingerprint,
            sig_alg: key.algorithm.as_str().to_string(),
            security_key: key.security_key.is_some(),
            success,
        };
        Ok(Box::pin(self.after_key(user, staff, policy, proof)).await)
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        response: Option<russh::server::Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        Ok(Box::pin(self.keyboard_interactive(user, response)).await)
    }

    fn auth_rejection_banner(&mut self) -> Option<String> {
        self.banner.take()
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        self.startup = None;
        self.authed.store(true, Ordering::SeqCst);
        self.shared.unauth_done(self.unauth_seq);
        let Some((staff, target, factors)) = self.pending.take() else {
            return Err(russh::Error::Disconnect);
        };
        // Boxed, as are the other one-off steps here: russh's session task
        // holds room for the largest handler future for the whole
        // connection, and this one (the login to the target) is large.
        let state = Box::pin(ConnState::start(
            self.shared.clone(),
            self.id.clone(),
            staff,
            self.source(),
            String::from_utf8_lossy(session.remote_sshid())
                .chars()
                .take(255)
                .collect(),
            target,
            factors,
            session.handle(),
            self.budget.clone(),
        ))
        .await;
        self.state = Some(state);
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(state) = self.state.clone() else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        if !self.admit_channel(session) {
            Box::pin(self.channel_refused()).await;
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        }
        let id = channel.id();
        let (tx, rx) = flow::inbox(self.budget.clone());
        self.channels.insert(id, tx);
        reply.accept().await;
        let (_read, write) = channel.split();
        // The read half is dropped: data reaches the task through `rx`, in
        // order with the requests, and never blocks the session loop.
        tokio::spawn(channel::run_session_channel(state, id, write, rx));
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
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(state) = self.state.clone() else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        if !self.admit_channel(session) {
            Box::pin(self.channel_refused()).await;
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        }
        let host: String = host_to_connect.chars().take(255).collect();
        let Ok(port) = u16::try_from(port_to_connect) else {
            refuse_open(reply, true, "invalid port".into()).await;
            return Ok(());
        };
        let id = channel.id();
        let (tx, rx) = flow::inbox(self.budget.clone());
        self.channels.insert(id, tx);
        let origin = (sanitize(originator_address), originator_port);
        // Deciding and connecting happen in the task: the reply handle
        // confirms or refuses the channel from there.
        tokio::spawn(forwards::run_forward_channel(
            state, channel, reply, rx, host, port, origin,
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
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if !self.received(channel, data.len(), session) {
            return Ok(());
        }
        if let Some(s) = &self.state {
            s.touch();
        }
        if let Some(tx) = self.channels.get(&channel) {
            match tx.data(data) {
                Ok(()) => {}
                Err(ChannelFlowError::Closed) => {
                    self.channels.remove(&channel);
                }
                Err(e) => self.violation(channel, &e),
            }
        }
        Ok(())
    }

    /// Extended data from a client has no meaning on session or forward
    /// channels (RFC 4254 defines only the server's stderr): it counts
    /// against the window and is dropped.
    async fn extended_data(
        &mut self,
        channel: ChannelId,
        _code: u32,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.received(channel, data.len(), session);
        Ok(())
    }

    fn adjust_window(&mut self, _channel: ChannelId, _current: u32) -> u32 {
        if self.budget.throttled() {
            TRICKLE
        } else {
            flow::WINDOW
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
        Box::pin(self.audit_env_refused(channel)).await;
        self.event(channel, ChanEvent::Close);
        self.channels.remove(&channel);
        self.windows.forget(channel);
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
        let filter = self.env_filter.get_or_insert_with(|| {
            // The patterns were checked when the configuration was read.
            EnvFilter::new(&self.shared.config.limits.accept_env)
                .unwrap_or_else(|_| EnvFilter::deny_all())
        });
        if filter.allows(variable_name, variable_value) {
            session.channel_success(channel)?;
            self.event(
                channel,
                ChanEvent::Env(variable_name.to_string(), variable_value.to_string()),
            );
        } else if self.channels.contains_key(&channel) {
            session.channel_failure(channel)?;
            let refused = self.env_refused.entry(channel).or_default();
            refused.count += 1;
            if refused.names.len() < 16 {
                refused.names.push(envfilter::audit_name(variable_name));
            }
        } else {
            session.channel_failure(channel)?;
        }
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        Box::pin(self.audit_env_refused(channel)).await;
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
        Box::pin(self.audit_env_refused(channel)).await;
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
        Box::pin(self.audit_env_refused(channel)).await;
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
            Box::pin(s.audit_denied(
                &Action::AgentForward,
                DenyCode::AgentForwarding.as_str(),
                "agent forwarding is refused",
            ))
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
            Box::pin(s.audit_denied(
                &Action::X11Forward,
                DenyCode::X11Forwarding.as_str(),
                "X11 forwarding is refused",
            ))
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
        let ok = Box::pin(state.remote_forward(&address, port)).await;
        if ok && let Some(rx) = state.take_forwarded() {
            tokio::spawn(forwards::forwarded_loop(state.clone(), rx));
        }
        Ok(ok)
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
        Ok(Box::pin(state.cancel_remote_forward(address, port)).await)
    }
}

impl Drop for ConnHandler {
    fn drop(&mut self) {
        if let Some(state) = self.state.take() {
            state.connection_closed();
        }
        // The key was proven but the second factor never came (a
        // BatchMode client, a prompt left unanswered): audited, never
        // counted toward the lockout (no code was wrong).
        if let Some(proven) = self.key_proven.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let shared = self.shared.clone();
            let ev = AuditEvent::new(EventKind::AuthFailure)
                .user(&proven.staff)
                .source(self.source().to_string())
                .session(&self.id)
                .detail("key", proven.fingerprint)
                .detail("login", sanitize(&proven.login))
                .detail("reason", "no second factor given after the key")
                .detail("code", "MFA_NOT_GIVEN");
            rt.spawn(async move {
                shared.audit(ev).await;
            });
        }
        // The connection ended between an accepted offer and a verified
        // signature (a bad signature, then a disconnect).
        if let Some(staff) = self.awaiting_proof.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(unproven_key_failure(
                self.shared.clone(),
                staff,
                self.source(),
                self.id.clone(),
            ));
        }
    }
}

/// One failed proof of possession for `staff` (see
/// `ConnHandler::settle_unproven`): audited and counted against the
/// source's budget (`auth_per_minute_per_source`), never toward the user's
/// lockout. Public keys are public: whoever holds one can send an offer,
/// an unsigned query or a forged signature for it, so none of these says
/// anything about the user (`lockout_after` counts only what takes the
/// private key first; see [`counted_failure`]).
async fn unproven_key_failure(shared: Arc<Shared>, staff: String, source: IpAddr, session: String) {
    shared.note_source_failure(source);
    shared
        .audit(
            AuditEvent::new(EventKind::AuthFailure)
                .user(&staff)
                .source(source.to_string())
                .session(&session)
                .detail("reason", "no valid signature for an accepted key")
                .detail("code", "BAD_SIGNATURE"),
        )
        .await;
}

/// The one failure that counts toward `lockout_after`: a failure only the
/// holder of a valid key can produce (a wrong second-factor code after a
/// verified key signature). Key logins never call it: see
/// [`unproven_key_failure`]. Counts one consecutive failure for `staff`
/// on every node (the count is in the database) and, once
/// `lockout_after` is reached, locks the user for `lockout_for` and writes
/// `auth.lockout`. The caller audits the failure itself.
pub async fn counted_failure(shared: &Shared, staff: &str, source: IpAddr) -> bool {
    shared.counted_failure(staff, source).await
}
