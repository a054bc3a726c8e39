//! Connections refused or dropped before authentication, audited without
//! letting a flood fill the database: each is counted per source and
//! reason, and one `connection.refused` event per (source, reason)
//! carries the count: the first batch at once (a flood is noticed without
//! delay), then at most one batch per [`INTERVAL`]. At most
//! [`MAX_SOURCES`] sources are told apart per batch; the rest are counted
//! under `source = "*"`.

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
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MaxStartups => "max_startups reached",
            Reason::Evicted => "evicted (max_startups)",
            Reason::GraceExpired => "login grace time expired",
            Reason::Malformed => "malformed",
        }
    }
}

struct Tally {
    count: u64,
    first: OffsetDateTime,
    /// What went wrong the last time (malformed connections).
    example: Option<String>,
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
    pub fn note(&self, source: IpAddr, reason: Reason, example: Option<String>) {
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
            tally.example = Some(sanitize(&e));
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
                    .detail("count", tally.count)
                    .detail("since", since);
                if let Some(e) = tally.example {
                    ev = ev.detail("error", e);
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
        r.note(a, Reason::Malformed, Some("bad\u{1b}[31m version".into()));
        r.note(b, Reason::Evicted, None);
        let mut evs = r.take();
        evs.sort_by_key(|e| (e.source.clone(), e.detail["reason"].to_string()));
        assert_eq!(evs.len(), 3);
        assert_eq!(evs[0].detail["count"], 1);
        assert_eq!(evs[0].detail["reason"], "malformed");
        assert_eq!(evs[0].detail["error"], "bad?[31m version");
        assert_eq!(evs[1].detail["count"], 1000);
        assert_eq!(evs[2].source.as_deref(), Some("127.0.0.3"));
        assert!(r.take().is_empty(), "counts restart after each summary");
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
