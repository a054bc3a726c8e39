//! Connections refused or dropped before authentication, audited without
//! letting a flood fill the database: each is counted per source and
//! reason, and one `connection.refused` event per (source, reason)
//! carries the count: the first batch at once (a flood is noticed without
//! delay), then at most one batch per [`INTERVAL`]. At most
//! [`MAX_SOURCES`] sources are told apart per batch; the rest are counted
//! under `source = "*"`.
//!
//! Layer: the bottom of `server/`; imports nothing of `server/`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::Notify;

use crate::audit::{AuditEvent, EventKind};

/// The least time between two batches of summaries.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// Sources told apart per batch.
pub const MAX_SOURCES: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// `max_startups` reached and no connection could give way.
    MaxStartups,
    /// Evicted to make room for a newcomer (see `server::slots`).
    Evicted,
    /// No authentication within `login_grace_time`.
    GraceExpired,
    /// Not SSH, or an SSH protocol error before authentication.
    Malformed,
    /// The client and the bastion share no key exchange, host key,
    /// cipher or MAC algorithm (a client of its own era, not an attack).
    NoCommonAlgorithm,
    /// As many connections as the open-file limit leaves room for (see
    /// `server::max_connections`).
    TooManyConnections,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MaxStartups => "max_startups reached",
            Reason::Evicted => "evicted (max_startups)",
            Reason::GraceExpired => "login grace time expired",
            Reason::Malformed => "malformed",
            Reason::NoCommonAlgorithm => "no common algorithm",
            Reason::TooManyConnections => "connection limit (open-file limit) reached",
        }
    }

    /// The stable code of the `connection.refused` event.
    pub fn code(self) -> &'static str {
        match self {
            Reason::MaxStartups => "KO_MAX_STARTUPS",
            Reason::Evicted => "KO_EVICTED",
            Reason::GraceExpired => "KO_LOGIN_GRACE_TIME",
            Reason::Malformed => "KO_MALFORMED",
            Reason::NoCommonAlgorithm => "KO_NO_COMMON_ALGORITHM",
            Reason::TooManyConnections => "KO_TOO_MANY_CONNECTIONS",
        }
    }
}

/// What the last refused connection of a kind showed, for the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Example {
    /// The error, as text (malformed connections).
    Error(String),
    /// The negotiation that failed: which list (`kex`, `key`, `cipher`,
    /// `mac`, `compression`), what the client offered, what we offer.
    NoCommon {
        kind: String,
        offered: Vec<String>,
        ours: Vec<String>,
    },
}

/// At most this many names of a peer's list are kept (each bounded too).
const MAX_NAMES: usize = 64;

struct Tally {
    count: u64,
    first: OffsetDateTime,
    /// What went wrong the last time.
    example: Option<Example>,
}

/// `None` for the catch-all bucket past [`MAX_SOURCES`].
type Key = (Option<IpAddr>, Reason);

#[derive(Default)]
pub struct Refusals {
    tallies: Mutex<HashMap<Key, Tally>>,
    /// Wakes the writer when there is something to write.
    pending: Notify,
}

impl Refusals {
    /// Counts one connection of `source` ended for `reason`.
    pub fn note(&self, source: IpAddr, reason: Reason, example: Option<Example>) {
        let mut t = match self.tallies.lock() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
        let mut key = (Some(source), reason);
        if !t.contains_key(&key) && t.len() >= MAX_SOURCES {
            key = (None, reason);
        }
        let tally = t.entry(key).or_insert_with(|| Tally {
            count: 0,
            first: OffsetDateTime::now_utc(),
            example: None,
        });
        tally.count += 1;
        if let Some(e) = example {
            tally.example = Some(match e {
                Example::Error(e) => Example::Error(sanitize(&e)),
                Example::NoCommon {
                    kind,
                    offered,
                    ours,
                } => Example::NoCommon {
                    kind: sanitize(&kind),
                    offered: offered
                        .iter()
                        .take(MAX_NAMES)
                        .map(|n| sanitize(n))
                        .collect(),
                    ours,
                },
            });
        }
        drop(t);
        self.pending.notify_one();
    }

    /// Resolves once something was counted since the last [`Self::take`]
    /// (or a wake-up is pending).
    pub async fn counted(&self) {
        self.pending.notified().await
    }

    /// The summary events for everything counted since the last call.
    pub fn take(&self) -> Vec<AuditEvent> {
        let drained: Vec<(Key, Tally)> = match self.tallies.lock() {
            Ok(mut t) => t.drain().collect(),
            Err(p) => p.into_inner().drain().collect(),
        };
        drained
            .into_iter()
            .map(|((source, reason), tally)| {
                let since = tally
                    .first
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default();
                let mut ev = AuditEvent::new(EventKind::ConnectionRefused)
                    .source(source.map(|s| s.to_string()).unwrap_or_else(|| "*".into()))
                    .detail("reason", reason.as_str())
                    .detail("code", reason.code())
                    .detail("count", tally.count)
                    .detail("since", since);
                match tally.example {
                    Some(Example::Error(e)) => ev = ev.detail("error", e),
                    Some(Example::NoCommon {
                        kind,
                        offered,
                        ours,
                    }) => {
                        ev = ev
                            .detail("kind", kind)
                            .detail("offered", offered)
                            .detail("ours", ours);
                    }
                    None => {}
                }
                ev
            })
            .collect()
    }
}

/// Bounded and printable: peer-controlled text goes into the audit log.
fn sanitize(s: &str) -> String {
    s.chars()
        .take(200)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_becomes_one_event_per_source_and_reason() {
        let r = Refusals::default();
        let a: IpAddr = [127, 0, 0, 2].into();
        let b: IpAddr = [127, 0, 0, 3].into();
        for _ in 0..1000 {
            r.note(a, Reason::MaxStartups, None);
        }
        r.note(
            a,
            Reason::Malformed,
            Some(Example::Error("bad\u{1b}[31m version".into())),
        );
        r.note(b, Reason::Evicted, None);
        let mut evs = r.take();
        evs.sort_by_key(|e| (e.source.clone(), e.detail["reason"].to_string()));
        assert_eq!(evs.len(), 3);
        assert_eq!(evs[0].detail["count"], 1);
        assert_eq!(evs[0].detail["reason"], "malformed");
        assert_eq!(evs[0].detail["code"], "KO_MALFORMED");
        assert_eq!(evs[0].detail["error"], "bad?[31m version");
        assert_eq!(evs[1].detail["count"], 1000);
        assert_eq!(evs[2].source.as_deref(), Some("127.0.0.3"));
        assert!(r.take().is_empty(), "counts restart after each summary");
    }

    #[test]
    fn no_common_algorithm_names_both_lists() {
        let r = Refusals::default();
        let a: IpAddr = [127, 0, 0, 2].into();
        r.note(
            a,
            Reason::NoCommonAlgorithm,
            Some(Example::NoCommon {
                kind: "mac".into(),
                offered: vec!["hmac-md5".into(), "x\u{7}".into()],
                ours: vec!["hmac-sha2-256-etm@openssh.com".into()],
            }),
        );
        let evs = r.take();
        assert_eq!(evs.len(), 1);
        let d = &evs[0].detail;
        assert_eq!(d["code"], "KO_NO_COMMON_ALGORITHM");
        assert_eq!(d["reason"], "no common algorithm");
        assert_eq!(d["kind"], "mac");
        assert_eq!(d["offered"], serde_json::json!(["hmac-md5", "x?"]));
        assert_eq!(
            d["ours"],
            serde_json::json!(["hmac-sha2-256-etm@openssh.com"])
        );
    }

    #[test]
    fn sources_past_the_cap_share_one_bucket() {
        let r = Refusals::default();
        for i in 0..(MAX_SOURCES as u32 + 500) {
            r.note(IpAddr::from(i.to_be_bytes()), Reason::Malformed, None);
        }
        let evs = r.take();
        assert_eq!(evs.len(), MAX_SOURCES + 1);
        let rest = evs.iter().find(|e| e.source.as_deref() == Some("*"));
        assert_eq!(rest.map(|e| e.detail["count"].clone()), Some(500.into()));
    }
}
