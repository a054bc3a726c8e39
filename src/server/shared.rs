//! State shared by every connection of one running bastion.
//!
//! Layer: low in `server/`; may import `refusals` and `slots`; never `conn`
//! (a live session's byte counts come through the [`Progress`] trait).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use russh::keys::PrivateKey;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::audit::AuditEvent;
use crate::config::Config;
use crate::policy::Policy;
use crate::store::Store;

/// The bastion's SSH identification string, what every client sees. It
/// names Gatehouse, never a target's software (clients that adapt to the
/// server's string are handled where it matters: `sftp::SymlinkSwap`).
pub const SERVER_ID: &str = "SSH-2.0-Gatehouse";

/// A live connection's byte counts, as the heartbeat writes them to the
/// session row. Implemented by `conn::ConnState`; a trait so that this
/// registry, below the connection, need not name it.
pub trait Progress: Send + Sync {
    /// (bytes up, bytes down, time of the last byte either way)
    fn progress(&self) -> (i64, i64, OffsetDateTime);
}

/// Why a live session was ended from outside its own connection.
#[derive(Debug, Clone)]
pub struct EndReason(pub String);

/// What the registry knows of a live session, so that kills, grant expiry
/// and shutdown can reach it.
pub struct LiveSession {
    pub user: String,
    #[allow(
        dead_code,
        reason = "kept for re-checks of live sessions against a new policy (issue 20)"
    )]
    pub server: Option<String>,
    pub grant: Option<i64>,
    /// The target account and the client's address, so that a directory
    /// change can re-run the decision for the live session.
    pub account: Option<String>,
    pub source: IpAddr,
    pub cancel: CancellationToken,
    /// Set before `cancel` fires: the message shown to the client.
    pub reason: Arc<Mutex<Option<EndReason>>>,
    /// The connection, for its byte counts (`server::heartbeat` writes
    /// them to the session row every few seconds).
    pub conn: std::sync::Weak<dyn Progress>,
}

impl LiveSession {
    pub fn end(&self, reason: &str) {
        end_session(&self.reason, &self.cancel, reason);
    }
}

/// Ends a session: the first reason given is the one the client sees,
/// then the session's token fires. `LiveSession` (from outside) and
/// `conn::ConnState` (from inside) share the reason and the token.
pub(crate) fn end_session(
    slot: &Mutex<Option<EndReason>>,
    cancel: &CancellationToken,
    reason: &str,
) {
    if let Ok(mut r) = slot.lock()
        && r.is_none()
    {
        *r = Some(EndReason(reason.to_string()));
    }
    cancel.cancel();
}

/// Why live sessions end when the audit log cannot be written.
pub const AUDIT_DOWN: &str = "the bastion cannot write its audit log (database unavailable)";

pub struct Shared {
    pub config: Config,
    /// The policy served, the same cell the console reads: the files'
    /// policy with the directory's users merged in
    /// (`crate::directory::merge`).
    policy: crate::policy::Live,
    /// The policy files as last loaded, and the directory copy served
    /// (`None`: no `[directory]`, no copy yet, or older than `max_stale`).
    sources: Mutex<(Arc<Policy>, Option<Arc<crate::directory::Snapshot>>)>,
    pub store: Store,
    pub identity: Arc<PrivateKey>,
    /// Target credentials; the identity key is used where it holds none.
    pub vault: crate::vault::Vault,
    /// Signs recordings' sidecars.
    pub signer: Arc<crate::recording::Signer>,
    /// Signs per-session certificates for `auth = "certificate"` servers.
    /// Read from the database at start-up, so empty while a node started
    /// during an outage waits for it (no login is served until then).
    pub ca: std::sync::OnceLock<crate::ca::UserCa>,
    /// Unauthenticated connections at once (`max_startups`), and which
    /// gives way to a newcomer when all slots are taken.
    pub startups: super::slots::Startups,
    /// Connections refused or dropped before authentication, summarised
    /// into `connection.refused` events.
    pub refusals: super::refusals::Refusals,
    /// Authentication attempts per source address (`auth_per_minute_per_source`).
    pub auth_limiter: DefaultKeyedRateLimiter<IpAddr>,
    pub sessions: Mutex<HashMap<String, LiveSession>>,
    /// Sources whose failed-authentication budget is spent, until when.
    blocked: Mutex<HashMap<IpAddr, std::time::Instant>>,
    /// Fires on SIGTERM/SIGINT.
    pub shutdown: CancellationToken,
}

impl Shared {
    pub fn new(
        config: Config,
        policy: Policy,
        store: Store,
        identity: PrivateKey,
        vault: crate::vault::Vault,
        signer: crate::recording::Signer,
        ca: Option<crate::ca::UserCa>,
    ) -> Arc<Shared> {
        let per_minute =
            NonZeroU32::new(config.limits.auth_per_minute_per_source).unwrap_or(NonZeroU32::MIN);
        // The budget is spent by the N-th failure: a burst of N-1 cells makes
        // the N-th check fail, so the source is refused from then on.
        let burst = NonZeroU32::new(per_minute.get().saturating_sub(1)).unwrap_or(NonZeroU32::MIN);
        let auth_limiter = RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst));
        Arc::new(Shared {
            startups: super::slots::Startups::new(config.limits.max_startups),
            refusals: Default::default(),
            config,
            sources: Mutex::new((Arc::new(policy.clone()), None)),
            policy: crate::policy::Live::new(policy),
            store,
            identity: Arc::new(identity),
            vault,
            signer: Arc::new(signer),
            ca: ca.map(std::sync::OnceLock::from).unwrap_or_default(),
            auth_limiter,
            sessions: Mutex::new(HashMap::new()),
            blocked: Mutex::new(HashMap::new()),
            shutdown: CancellationToken::new(),
        })
    }

    /// The policy in force now; a reload swaps it for new sessions.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy.get()
    }

    /// A new policy from the files: served with the directory's users.
    pub fn set_policy(&self, policy: Policy) {
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        sources.0 = Arc::new(policy);
        self.serve_merged(&sources);
    }

    /// A new directory copy to serve (`None`: none may serve).
    pub fn set_directory(&self, copy: Option<Arc<crate::directory::Snapshot>>) {
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        sources.1 = copy;
        self.serve_merged(&sources);
    }

    /// The policy files' policy, without directory users.
    pub fn file_policy(&self) -> Arc<Policy> {
        let sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        sources.0.clone()
    }

    fn serve_merged(&self, sources: &(Arc<Policy>, Option<Arc<crate::directory::Snapshot>>)) {
        let merged = match &self.config.directory {
            Some(d) => crate::directory::merge(&sources.0, sources.1.as_deref(), &d.roles).policy,
            None => (*sources.0).clone(),
        };
        self.policy.set(merged);
    }

    /// What the review console is given: configuration, store, the policy
    /// in force and the shutdown signal; never the vault, the CA or the
    /// identity key.
    pub fn console_core(&self) -> crate::web::Core {
        crate::web::Core {
            config: self.config.clone(),
            store: self.store.clone(),
            policy: self.policy.clone(),
            shutdown: self.shutdown.clone(),
        }
    }

    /// Writes an audit event. Returns false (and logs) when the store
    /// failed, so callers that must fail closed can. A failed write also
    /// ends every live session of this node (fail closed: what they do
    /// next could not be audited); the event itself is in the spool
    /// (`StoreError::Spooled`) unless even that failed.
    pub async fn audit(&self, ev: AuditEvent) -> bool {
        crate::metrics::observe(&ev);
        match self.store.audit(&ev).await {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(kind = %ev.kind, "audit write failed: {e}");
                self.end_sessions(AUDIT_DOWN, |_, _| true);
                false
            }
        }
    }

    pub fn register(&self, id: &str, live: LiveSession) {
        if let Ok(mut s) = self.sessions.lock() {
            s.insert(id.to_string(), live);
        }
    }

    pub fn unregister(&self, id: &str) {
        if let Ok(mut s) = self.sessions.lock() {
            s.remove(id);
        }
    }

    /// Ends the sessions selected by `pick` with `reason`; returns their ids.
    pub fn end_sessions(
        &self,
        reason: &str,
        pick: impl Fn(&str, &LiveSession) -> bool,
    ) -> Vec<String> {
        let mut ended = Vec::new();
        if let Ok(s) = self.sessions.lock() {
            for (id, live) in s.iter() {
                if pick(id, live) {
                    live.end(reason);
                    ended.push(id.clone());
                }
            }
        }
        ended
    }

    /// Counts a failed authentication against the source's budget
    /// (`auth_per_minute_per_source`); once spent, the source is refused
    /// until the budget refills. Successful logins cost nothing, so busy
    /// legitimate users are never throttled.
    pub fn note_source_failure(&self, source: IpAddr) {
        if let Err(not_until) = self.auth_limiter.check_key(&source) {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            if let Ok(mut b) = self.blocked.lock() {
                if b.len() > 100_000 {
                    let now = std::time::Instant::now();
                    b.retain(|_, until| *until > now);
                }
                b.insert(source, std::time::Instant::now() + wait);
            }
        }
    }

    pub fn source_blocked(&self, source: IpAddr) -> bool {
        self.blocked
            .lock()
            .ok()
            .and_then(|b| b.get(&source).copied())
            .is_some_and(|until| until > std::time::Instant::now())
    }

    /// The unauthenticated connection `seq` authenticated or ended.
    pub fn unauth_done(&self, seq: u64) {
        self.startups.done(seq);
    }

    pub fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    /// The body of `handler::counted_failure` (see there), here so that
    /// command mode's `mfa reset` counts a wrong code the same way.
    /// Returns whether the user is now locked.
    pub async fn counted_failure(&self, staff: &str, source: IpAddr) -> bool {
        let lockout_for = time::Duration::try_from(self.config.limits.lockout_for)
            .unwrap_or(time::Duration::hours(6));
        let after = self.config.limits.lockout_after;
        let (n, until) = match self
            .store
            .counted_failure(staff, Self::now(), after, lockout_for)
            .await
        {
            Ok(Some(locked)) => locked,
            Ok(None) => return false,
            Err(e) => {
                tracing::error!("lockout counter: {e}");
                return false;
            }
        };
        self.audit(
            AuditEvent::new(crate::audit::EventKind::AuthLockout)
                .user(staff)
                .source(source.to_string())
                .detail("failures", n)
                .detail(
                    "until",
                    until
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default(),
                ),
        )
        .await;
        true
    }
}
