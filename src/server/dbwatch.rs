//! Fail closed on a database outage: while sessions are live, the
//! database is asked every two seconds whether it answers; when it does
//! not, every live session of this node ends with a message, since what it
//! would do next could not be audited (DESIGN.md, invariant 5). A session
//! that writes an event first is ended by the failed write itself
//! (`Shared::audit`); this covers the quiet ones, such as an idle shell.

use std::sync::Arc;
use std::time::Duration;

use super::shared::{AUDIT_DOWN, Shared};

const EVERY: Duration = Duration::from_secs(2);

pub fn spawn(shared: Arc<Shared>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let live = shared.sessions.lock().map(|s| s.len()).unwrap_or(0);
            if live == 0 || shared.store.reachable().await {
                continue;
            }
            let ended = shared.end_sessions(AUDIT_DOWN, |_, _| true);
            tracing::error!(
                "database unreachable: ended {} live session(s)",
                ended.len()
            );
        }
    })
}
