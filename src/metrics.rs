//! Prometheus metrics of a running bastion: one process-wide registry and
//! its typed families, exposed in the Prometheus text format (0.0.4) by the
//! admin listener (`[metrics] listen`, see [`crate::admin`]).
//!
//! The registry exists only once [`init`] ran, which `serve` does when the
//! admin listener is configured. Every hook below is a no-op before that,
//! so the CLI and a bastion without metrics pay nothing, and
//! instrumentation points elsewhere stay one-line calls.
//!
//! What is counted where:
//! - sessions live and total, by node and mode: [`session_started`] and
//!   [`session_ended`] from `server::conn` (mode `command` for command-mode
//!   logins); bytes by direction are added when a session ends;
//! - authentications by result, refusals by event kind and reason code,
//!   and policy reloads: [`observe`], from the one place the bastion writes
//!   audit events (`Shared::audit`), so the figures match the audit log;
//! - recording flush time (write + fsync, the recording's write lag) and
//!   failures: from the recorder's writer task;
//! - database errors, by what the store was doing: from the store's one
//!   error conversion.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::audit::{AuditEvent, EventKind};

/// `Content-Type` of what [`encode`] returns.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionLabels {
    node: String,
    mode: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    kind: String,
    code: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: String,
}

/// The registry and every family in it.
pub struct Metrics {
    node: String,
    registry: Registry,
    sessions_live: Family<SessionLabels, Gauge>,
    sessions: Family<SessionLabels, Counter>,
    auth: Family<ResultLabels, Counter>,
    refusals: Family<RefusalLabels, Counter>,
    /// Resolved once: adding bytes is then one atomic add.
    bytes_up: Counter,
    bytes_down: Counter,
    recording_flush: Histogram,
    recording_failures: Counter,
    database_errors: Family<OpLabels, Counter>,
    policy_reloads: Family<ResultLabels, Counter>,
    web_login_refused: Family<ReasonLabels, Counter>,
    web_connections: Family<ListenerLabels, Counter>,
    web_live_streams: Gauge,
    /// Seconds since the directory copy's last good sync (`[directory]`).
    directory_copy_age: Gauge,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// Creates the process-wide registry, labelling sessions with `node`.
/// Later calls keep the first registry.
pub fn init(node: &str) -> &'static Metrics {
    METRICS.get_or_init(|| Metrics::new(node))
}

/// The registry, once [`init`] ran.
pub fn get() -> Option<&'static Metrics> {
    METRICS.get()
}

impl Metrics {
    fn new(node: &str) -> Metrics {
        let mut registry = Registry::with_prefix("gatehouse");
        let sessions_live = Family::<SessionLabels, Gauge>::default();
        registry.register(
            "sessions_live",
            "Authenticated SSH sessions open now, by node and access mode",
            sessions_live.clone(),
        );
        let sessions = Family::<SessionLabels, Counter>::default();
        registry.register(
            "sessions",
            "Authenticated SSH sessions started, by node and access mode",
            sessions.clone(),
        );
        let auth = Family::<ResultLabels, Counter>::default();
        registry.register(
            "auth",
            "Authentication outcomes (success, failure, lockout)",
            auth.clone(),
        );
        let refusals = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "refusals",
            "Refusals, by audit event kind and reason code",
            refusals.clone(),
        );
        let bytes = Family::<DirectionLabels, Counter>::default();
        registry.register(
            "session_bytes",
            "Bytes carried by ended sessions: up (client to target) and down",
            bytes.clone(),
        );
        let direction = |d: &str| {
            bytes.get_or_create_owned(&DirectionLabels {
                direction: d.into(),
            })
        };
        let (bytes_up, bytes_down) = (direction("up"), direction("down"));
        // 1 ms to about 16 s: a healthy disk flushes in milliseconds, and the
        // contract wants data on disk at least every second.
        let recording_flush = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        registry.register(
            "recording_flush_seconds",
            "Time to write and fsync a recording's pending lines (recording write lag)",
            recording_flush.clone(),
        );
        let recording_failures = Counter::default();
        registry.register(
            "recording_failures",
            "Recordings that failed to write (their sessions were ended)",
            recording_failures.clone(),
        );
        let database_errors = Family::<OpLabels, Counter>::default();
        registry.register(
            "database_errors",
            "Failed database statements, by what the store was doing",
            database_errors.clone(),
        );
        let policy_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "policy_reloads",
            "Policy loads: applied (at start or on change) or rejected",
            policy_reloads.clone(),
        );
        let web_login_refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "web_login_refused",
            "Console sign-in links refused, by reason (each attempt, rate-limited ones too)",
            web_login_refused.clone(),
        );
        let web_connections = Family::<ListenerLabels, Counter>::default();
        registry.register(
            "web_connections",
            "Console and admin connections, by listener (web, admin) and outcome \
             (accepted, evicted: gave way to a newcomer, refused: at the cap with none idle, \
             idle_closed, handshake_failed)",
            web_connections.clone(),
        );
        let web_live_streams = Gauge::default();
        registry.register(
            "web_live_streams",
            "Live views (server-sent event streams) open now",
            web_live_streams.clone(),
        );
        let directory_copy_age = Gauge::default();
        registry.register(
            "directory_copy_age_seconds",
            "Seconds since the last good directory sync (the copy served; refused past max_stale)",
            directory_copy_age.clone(),
        );
        Metrics {
            directory_copy_age,
            node: node.to_string(),
            registry,
            sessions_live,
            sessions,
            auth,
            refusals,
            bytes_up,
            bytes_down,
            recording_flush,
            recording_failures,
            database_errors,
            policy_reloads,
            web_login_refused,
            web_connections,
            web_live_streams,
        }
    }

    fn session_labels(&self, mode: &str) -> SessionLabels {
        SessionLabels {
            node: self.node.clone(),
            mode: mode.to_string(),
        }
    }

    /// The registry in the Prometheus text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

impl Metrics {
    /// See [`session_started`].
    pub fn session_started(&self, mode: &str) {
        let l = self.session_labels(mode);
        self.sessions.get_or_create(&l).inc();
        self.sessions_live.get_or_create(&l).inc();
    }

    /// See [`session_ended`].
    pub fn session_ended(&self, mode: &str, up: u64, down: u64) {
        self.sessions_live
            .get_or_create(&self.session_labels(mode))
            .dec();
        self.bytes_up.inc_by(up);
        self.bytes_down.inc_by(down);
    }

    /// See [`observe`].
    pub fn observe(&self, ev: &AuditEvent) {
        let counted = match ev.kind {
            EventKind::AuthSuccess => Some((&self.auth, "success")),
            EventKind::AuthFailure => Some((&self.auth, "failure")),
            EventKind::AuthLockout => Some((&self.auth, "lockout")),
            EventKind::PolicyReloaded => Some((&self.policy_reloads, "applied")),
            EventKind::PolicyRejected => Some((&self.policy_reloads, "rejected")),
            _ => None,
        };
        if let Some((family, result)) = counted {
            family
                .get_or_create(&ResultLabels {
                    result: result.into(),
                })
                .inc();
        }
        if is_refusal(ev.kind) {
            let labels = RefusalLabels {
                kind: ev.kind.as_str().to_string(),
                code: reason_code(ev),
            };
            self.refusals.get_or_create(&labels).inc();
        }
    }

    /// See [`database_error`].
    pub fn database_error(&self, op: &'static str) {
        self.database_errors
            .get_or_create(&OpLabels { op: op.into() })
            .inc();
    }
}

/// A session in `mode` (the server's access mode, `command`, or `denied`
/// for a login whose target was refused) started.
pub fn session_started(mode: &str) {
    if let Some(m) = get() {
        m.session_started(mode);
    }
}

/// A session that [`session_started`] counted ended, having carried `up`
/// bytes from client to target and `down` bytes back.
pub fn session_ended(mode: &str, up: u64, down: u64) {
    if let Some(m) = get() {
        m.session_ended(mode, up, down);
    }
}

/// The directory copy's age, in seconds since its last good sync.
pub fn directory_copy_age(secs: i64) {
    if let Some(m) = get() {
        m.directory_copy_age.set(secs);
    }
}

/// One recording flush (write and fsync) took `took`.
pub fn recording_flushed(took: Duration) {
    if let Some(m) = get() {
        m.recording_flush.observe(took.as_secs_f64());
    }
}

/// A recording failed to write.
pub fn recording_failed() {
    if let Some(m) = get() {
        m.recording_failures.inc();
    }
}

/// A database statement failed while the store was doing `op`.
pub fn database_error(op: &'static str) {
    if let Some(m) = get() {
        m.database_error(op);
    }
}

/// A console sign-in was refused for `reason` (`web.login_refused`).
pub fn web_login_refused(reason: &str) {
    if let Some(m) = get() {
        m.web_login_refused
            .get_or_create(&ReasonLabels {
                reason: reason.into(),
            })
            .inc();
    }
}

/// A connection to the console (`listener` = `web`) or the admin listener
/// (`admin`) had `outcome`.
pub fn web_connection(listener: &str, outcome: &str) {
    if let Some(m) = get() {
        m.web_connections
            .get_or_create(&ListenerLabels {
                listener: listener.into(),
                outcome: outcome.into(),
            })
            .inc();
    }
}

/// A live view opened (`+1`) or closed (`-1`).
pub fn web_live_stream(delta: i64) {
    if let Some(m) = get() {
        m.web_live_streams.inc_by(delta);
    }
}

/// Counts what an audit event says about authentication, refusals and
/// policy reloads. Called for every event the bastion writes, whether or
/// not the write then succeeds.
pub fn observe(ev: &AuditEvent) {
    if let Some(m) = get() {
        m.observe(ev);
    }
}

fn is_refusal(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::AuthFailure
            | EventKind::AccessDenied
            | EventKind::ForwardDenied
            | EventKind::CommandBlocked
            | EventKind::HostkeyMismatch
            | EventKind::ConnectionRefused
    )
}

/// The event's `detail.code` when it looks like one of the bastion's own
/// stable codes, else `none` (or `other`): label values must stay a small
/// set, whatever a detail holds.
fn reason_code(ev: &AuditEvent) -> String {
    match ev.detail.get("code").and_then(|c| c.as_str()) {
        None => "none".into(),
        Some(c)
            if !c.is_empty()
                && c.len() <= 40
                && c.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') =>
        {
            c.to_string()
        }
        Some(_) => "other".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_kept_only_when_they_look_like_codes() {
        let ev =
            |code: serde_json::Value| AuditEvent::new(EventKind::AccessDenied).detail("code", code);
        assert_eq!(
            reason_code(&ev("KO_MODE_REFUSES".into())),
            "KO_MODE_REFUSES"
        );
        assert_eq!(reason_code(&ev("x\"} 1\n".into())), "other");
        assert_eq!(reason_code(&ev(3.into())), "none");
        assert_eq!(
            reason_code(&AuditEvent::new(EventKind::AccessDenied)),
            "none"
        );
    }

    #[test]
    fn exposition_names_every_family() {
        let m = Metrics::new("n1");
        m.session_started("global");
        m.session_started("global");
        m.session_ended("global", 5, 0);
        m.observe(&AuditEvent::new(EventKind::AuthFailure).detail("code", "KO_UNKNOWN_USER"));
        m.database_error("read kill requests");
        m.recording_failures.inc();
        let text = m.encode().expect("encode");
        for name in [
            "gatehouse_sessions_live{node=\"n1\",mode=\"global\"} 1",
            "gatehouse_sessions_total{node=\"n1\",mode=\"global\"} 2",
            "gatehouse_session_bytes_total{direction=\"up\"} 5",
            "gatehouse_session_bytes_total{direction=\"down\"} 0",
            "gatehouse_recording_flush_seconds_bucket",
            "gatehouse_refusals_total{kind=\"auth.failure\",code=\"KO_UNKNOWN_USER\"} 1",
            "gatehouse_auth_total{result=\"failure\"} 1",
            "gatehouse_database_errors_total{op=\"read kill requests\"} 1",
            "gatehouse_recording_failures_total 1",
        ] {
            assert!(text.contains(name), "{name} missing in:\n{text}");
        }
    }
}
