//! Refused console sign-ins, audited without letting a flood fill the
//! database, as the SSH side does with refused connections
//! (`server::refusals`): each refusal is counted per source, reason and
//! user, and one `web.login_refused` event per (source, reason, user)
//! carries the count, the first batch at once, then at most one batch per
//! [`INTERVAL`]. Past [`MAX_KEYS`] keys a batch counts the rest under
//! `source = "*"`. Every refusal is also counted in the metrics
//! (`gatehouse_web_login_refused_total`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::Notify;

use super::Core;
use super::auth::Refusal;
use crate::audit::{AuditEvent, EventKind};

/// The least time between two batches of summaries.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// Keys told apart per batch.
pub const MAX_KEYS: usize = 1000;

/// `None` source: the catch-all bucket past [`MAX_KEYS`].
type Key = (Option<IpAddr>, Refusal, Option<String>);

struct Tally {
    count: u64,
    first: OffsetDateTime,
}

#[derive(Default)]
pub struct LoginRefusals {
    tallies: Mutex<HashMap<Key, Tally>>,
    pending: Notify,
}

impl LoginRefusals {
    /// Counts one refused sign-in.
    pub fn note(&self, source: IpAddr, why: Refusal, user: Option<String>) {
        crate::metrics::web_login_refused(why.as_str());
        let mut t = match self.tallies.lock() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
        let mut key = (Some(source), why, user);
        if !t.contains_key(&key) && t.len() >= MAX_KEYS {
            key = (None, why, None);
        }
        t.entry(key)
            .or_insert_with(|| Tally {
                count: 0,
                first: OffsetDateTime::now_utc(),
            })
            .count += 1;
        drop(t);
        self.pending.notify_one();
    }

    /// The summary events for everything counted since the last call.
    pub fn take(&self) -> Vec<AuditEvent> {
        let drained: Vec<(Key, Tally)> = match self.tallies.lock() {
            Ok(mut t) => t.drain().collect(),
            Err(p) => p.into_inner().drain().collect(),
        };
        drained
            .into_iter()
            .map(|((source, why, user), tally)| {
                let since = tally
                    .first
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default();
                let mut ev = AuditEvent::new(EventKind::WebLoginRefused)
                    .source(source.map(|s| s.to_string()).unwrap_or_else(|| "*".into()))
                    .detail("reason", why.as_str())
                    .detail("method", why.method())
                    .detail("count", tally.count)
                    .detail("since", since);
                ev.user = user;
                ev
            })
            .collect()
    }
}

/// Writes the summaries as soon as there are some, then waits
/// [`INTERVAL`] before the next batch; writes what is left at shutdown.
pub async fn write_summaries(refusals: Arc<LoginRefusals>, core: Arc<Core>) {
    let stop = core.shutdown.clone();
    loop {
        tokio::select! {
            _ = refusals.pending.notified() => {}
            _ = stop.cancelled() => break,
        }
        write(&refusals, &core).await;
        tokio::select! {
            _ = tokio::time::sleep(INTERVAL) => {}
            _ = stop.cancelled() => break,
        }
    }
    write(&refusals, &core).await;
}

async fn write(refusals: &LoginRefusals, core: &Core) {
    for ev in refusals.take() {
        if let Err(e) = core.store.audit(&ev).await {
            tracing::error!("web: cannot write web.login_refused: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_becomes_one_event_per_source_reason_and_user() {
        let r = LoginRefusals::default();
        let a: IpAddr = [127, 0, 0, 2].into();
        for _ in 0..3000 {
            r.note(a, Refusal::RateLimited, None);
        }
        r.note(a, Refusal::Unknown, None);
        r.note(a, Refusal::Used, Some("alice".into()));
        r.note(a, Refusal::Used, Some("alice".into()));
        let mut evs = r.take();
        evs.sort_by_key(|e| e.detail["reason"].to_string());
        assert_eq!(evs.len(), 3);
        assert_eq!(evs[0].detail["reason"], "rate_limited");
        assert_eq!(evs[0].detail["count"], 3000);
        assert_eq!(evs[0].detail["method"], "link");
        assert_eq!(evs[2].detail["reason"], "used");
        assert_eq!(evs[2].detail["count"], 2);
        assert_eq!(evs[2].user.as_deref(), Some("alice"));
        assert!(r.take().is_empty());
    }
}
