//! The node's heartbeat, and closing the sessions of nodes that went
//! silent (issue 17 items 20 and 22).
//!
//! Every [`beat_every`] the node writes its heartbeat and, for each of its
//! live sessions whose counts moved, the bytes and last activity to the
//! session row, so that a crash close reports what was last known rather
//! than 0/0. Then it looks for lost nodes: a node silent for longer than
//! `[server] node_lost_after` by the database's clock (so skewed host
//! clocks do not matter). Their live sessions are closed with
//! `session.end` "node lost", ended when the node was last seen; of
//! several nodes doing it at once, each session comes back to one
//! (`Store::close_lost_sessions`), so it is ended once.
//!
//! A node only judges others once its own heartbeats have gone through
//! for a full `node_lost_after`: after an outage of the database every
//! node's heartbeat is old, and the first node back must give the others
//! the time to beat again before calling them lost.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::shared::Shared;

/// Why a session whose node went silent was ended.
pub const NODE_LOST: &str = "node lost";

/// The heartbeat period for a bound of `lost_after`: six beats fit in it,
/// at most one every 5 s and at least one a second.
pub fn beat_every(lost_after: Duration) -> Duration {
    (lost_after / 6).clamp(Duration::from_secs(1), Duration::from_secs(5))
}

/// Runs for as long as the node serves.
pub async fn run(shared: Arc<Shared>) {
    let lost_after = shared.config.node_lost_after;
    let mut tick = tokio::time::interval(beat_every(lost_after));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Since when this node's own heartbeats have gone through.
    let mut healthy_since: Option<Instant> = None;
    // What was last written per session: (bytes up, bytes down).
    let mut written: HashMap<String, (i64, i64)> = HashMap::new();
    loop {
        tick.tick().await;
        let node = &shared.config.node;
        if let Err(e) = shared.store.heartbeat(node).await {
            tracing::warn!("node heartbeat: {e}");
            healthy_since = None;
            continue;
        }
        let since = *healthy_since.get_or_insert_with(Instant::now);
        write_progress(&shared, &mut written).await;
        if since.elapsed() >= lost_after {
            close_lost_nodes(&shared).await;
        }
    }
}

/// Writes the counts of this node's live sessions that moved since the
/// last write; forgets the ones that ended.
async fn write_progress(shared: &Shared, written: &mut HashMap<String, (i64, i64)>) {
    let conns: Vec<_> = shared
        .sessions
        .lock()
        .map(|s| {
            s.iter()
                .filter_map(|(id, l)| l.conn.upgrade().map(|c| (id.clone(), c)))
                .collect()
        })
        .unwrap_or_default();
    written.retain(|id, _| conns.iter().any(|(c, _)| c == id));
    for (id, conn) in conns {
        let (up, down, last) = conn.progress();
        if written.get(&id) == Some(&(up, down)) {
            continue;
        }
        match shared.store.session_progress(&id, up, down, last).await {
            Ok(()) => {
                written.insert(id, (up, down));
            }
            Err(e) => {
                tracing::warn!(session = %id, "session progress: {e}");
                return;
            }
        }
    }
}

/// Closes the live sessions of every lost node other than this one.
async fn close_lost_nodes(shared: &Shared) {
    let nodes = match shared.store.nodes(shared.config.node_lost_after).await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!("node heartbeats: {e}");
            return;
        }
    };
    for lost in nodes
        .iter()
        .filter(|n| n.lost && n.node != shared.config.node)
    {
        let closed = match shared
            .store
            .close_lost_sessions(&lost.node, lost.last_seen, NODE_LOST, None)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(node = %lost.node, "closing a lost node's sessions: {e}");
                continue;
            }
        };
        if closed.is_empty() {
            continue;
        }
        tracing::warn!(
            node = %lost.node,
            "node silent for {:.0} s: closed {} of its session(s) as {NODE_LOST:?}",
            lost.silent_secs,
            closed.len()
        );
        for row in &closed {
            if let Some(ev) = crate::store::lost_session_end(row, NODE_LOST) {
                shared
                    .audit(ev.detail("closed_by", shared.config.node.clone()))
                    .await;
            }
        }
        if closed.iter().any(|r| r.recorded) {
            seal_recordings_of(shared, &closed);
        }
    }
}

/// The recordings of the sessions just closed are sealed, as a restarting
/// node seals its own: the lost node will not. Only those: a recording
/// another node begins meanwhile must be left alone.
fn seal_recordings_of(shared: &Shared, closed: &[crate::store::SessionRow]) {
    let dead: std::collections::HashSet<&str> = closed.iter().map(|r| r.id.as_str()).collect();
    match crate::recording::seal_interrupted_except(
        &shared.config.recordings,
        &shared.signer,
        |id| !dead.contains(id),
    ) {
        Ok(sealed) if !sealed.is_empty() => {
            tracing::warn!("sealed {} recording(s) of a lost node", sealed.len())
        }
        Ok(_) => {}
        Err(e) => tracing::error!("cannot seal a lost node's recordings: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_beats_fit_in_the_bound() {
        assert_eq!(beat_every(Duration::from_secs(30)), Duration::from_secs(5));
        assert_eq!(beat_every(Duration::from_secs(6)), Duration::from_secs(1));
        assert_eq!(beat_every(Duration::from_secs(5)), Duration::from_secs(1));
        assert_eq!(beat_every(Duration::from_secs(600)), Duration::from_secs(5));
    }
}
