//! Fail closed on a database outage: while sessions are live, the
//! database is asked every two seconds whether it answers; when it does
//! not, every live session of this node ends with a message, since what it
//! would do next could not be audited (DESIGN.md, invariant 5). A session
//! that writes an event first is ended by the failed write itself
//! (`Shared::audit`); this covers the quiet ones, such as an idle shell.
//! Two probes in a row must fail: one slow answer on a loaded machine (a
//! pool briefly exhausted by a report) is not an outage.
//!
//! Layer: a background task beside `watch`; may import `shared` only.

use std::sync::Arc;
use std::time::Duration;

use super::shared::{AUDIT_DOWN, Shared};

const EVERY: Duration = Duration::from_secs(2);

/// Failed probes in a row that make an outage.
const FAILURES: u32 = 2;

pub fn spawn(shared: Arc<Shared>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut failed = 0;
        loop {
            // A pause after each probe, not a fixed rate: the next probe
            // comes after `Store::reachable`'s cached answer has lapsed.
            tokio::time::sleep(EVERY).await;
            let live = shared.sessions.lock().map(|s| s.len()).unwrap_or(0);
            if live == 0 || shared.store.reachable().await {
                failed = 0;
                continue;
            }
            failed += 1;
            if failed < FAILURES {
                continue;
            }
            failed = 0;
            let ended = shared.end_sessions(AUDIT_DOWN, |_, _| true);
            tracing::error!(
                "database unreachable: ended {} live session(s)",
                ended.len()
            );
        }
    })
}
