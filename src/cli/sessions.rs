//! `gatehouse sessions list|kill`: live sessions on every node, and asking
//! the node that runs one to end it (it polls for kill requests, and on
//! PostgreSQL is woken at once by a notification).
//!
//! A session whose node is lost (no heartbeat for `[server]
//! node_lost_after`, `server::heartbeat`) is marked so in the list until
//! another node closes it; `kill` of such a session closes it at once,
//! since no node will act on the request, and says so.

use anyhow::Context;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Exit, SessionsCmd};
use crate::audit::{AuditEvent, EventKind};
use crate::config::Config;
use crate::store::{NodeStatus, SessionRow, Store};

pub async fn run(config: Config, cmd: SessionsCmd) -> anyhow::Result<i32> {
    let store = Store::open(&config.database, &config.node).await?;
    let lost_after = config.node_lost_after;
    match cmd {
        SessionsCmd::List { json } => list(&store, json, lost_after).await,
        SessionsCmd::Kill { id, reason } => kill(&store, &id, reason.as_deref(), lost_after).await,
    }
}

#[derive(serde::Serialize)]
struct Listed<'a> {
    #[serde(flatten)]
    session: &'a SessionRow,
    duration_secs: i64,
    /// The session's node has gone silent: the session is dead, and
    /// another node (or `sessions kill`) will close it.
    node_lost: bool,
    /// The node's last heartbeat (`None` for a node that never wrote one).
    #[serde(with = "time::serde::rfc3339::option")]
    node_last_seen: Option<OffsetDateTime>,
}

/// The heartbeat of each node, by name.
async fn node_status(
    store: &Store,
    lost_after: std::time::Duration,
) -> anyhow::Result<std::collections::HashMap<String, NodeStatus>> {
    Ok(store
        .nodes(lost_after)
        .await?
        .into_iter()
        .map(|n| (n.node.clone(), n))
        .collect())
}

async fn list(store: &Store, json: bool, lost_after: std::time::Duration) -> anyhow::Result<i32> {
    let sessions = store.sessions_live().await?;
    let nodes = node_status(store, lost_after).await?;
    let lost = |s: &SessionRow| nodes.get(&s.node).is_some_and(|n| n.lost);
    let now = OffsetDateTime::now_utc();
    let age = |s: &SessionRow| (now - s.started_at).whole_seconds().max(0);
    if json {
        let listed: Vec<Listed<'_>> = sessions
            .iter()
            .map(|s| Listed {
                session: s,
                duration_secs: age(s),
                node_lost: lost(s),
                node_last_seen: nodes.get(&s.node).map(|n| n.last_seen),
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&listed).context("encode sessions")?
        );
        return Ok(0);
    }
    if sessions.is_empty() {
        println!("no live sessions");
        return Ok(0);
    }
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let mut rows = vec![[
        "ID".to_string(),
        "NODE".into(),
        "USER".into(),
        "SERVER".into(),
        "ACCOUNT".into(),
        "SOURCE".into(),
        "STARTED".into(),
        "DURATION".into(),
    ]];
    for s in &sessions {
        let started = s
            .started_at
            .replace_nanosecond(0)
            .unwrap_or(s.started_at)
            .format(&Rfc3339)
            .unwrap_or_else(|_| s.started_at.to_string());
        let secs = u64::try_from(age(s)).unwrap_or(0);
        let node = if lost(s) {
            format!("{} (lost)", s.node)
        } else {
            s.node.clone()
        };
        rows.push([
            s.id.clone(),
            node,
            s.user.clone(),
            dash(&s.server),
            dash(&s.account),
            s.source.clone(),
            started,
            humantime::format_duration(std::time::Duration::from_secs(secs)).to_string(),
        ]);
    }
    print!("{}", table(&rows));
    let mut gone: Vec<&NodeStatus> = nodes
        .values()
        .filter(|n| n.lost && sessions.iter().any(|s| s.node == n.node))
        .collect();
    gone.sort_by(|a, b| a.node.cmp(&b.node));
    for n in gone {
        println!(
            "node {} is lost (no heartbeat for {}): its sessions are dead and will be closed \
             by another node, or now by `gatehouse sessions kill ID`",
            n.node,
            humantime::format_duration(std::time::Duration::from_secs(n.silent_secs as u64))
        );
    }
    Ok(0)
}

/// Left-aligned columns, two spaces apart.
fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

async fn kill(
    store: &Store,
    id: &str,
    reason: Option<&str>,
    lost_after: std::time::Duration,
) -> anyhow::Result<i32> {
    // It reaches a terminal: no control characters.
    let reason: Option<String> = reason
        .map(|r| {
            r.chars()
                .filter(|c| !c.is_control())
                .take(500)
                .collect::<String>()
        })
        .filter(|r| !r.trim().is_empty());
    let no_such = || Exit::new(1, format!("no live session {id}"));
    let Some(session) = store
        .session_get(id)
        .await?
        .filter(|s| s.ended_at.is_none())
    else {
        return Err(no_such().into());
    };
    let node = node_status(store, lost_after).await?.remove(&session.node);
    if let Some(node) = node.filter(|n| n.lost) {
        return kill_on_lost_node(store, &session, &node, reason.as_deref()).await;
    }
    // Ending a session only tightens access: do it even if auditing then
    // fails, and report that failure.
    let requested = match &reason {
        Some(r) => store.request_kill_with_reason(id, r).await?,
        None => store.request_kill(id).await?,
    };
    if !requested {
        return Err(no_such().into());
    }
    let mut ev = AuditEvent::new(EventKind::SessionKilled)
        .user(session.user.clone())
        .session(session.id.clone())
        .source(session.source.clone())
        .detail("requested_via", "cli")
        .detail("requested_by", super::operator::name())
        .detail("reason", reason.clone())
        .detail("node", session.node.clone());
    ev.server = session.server.clone();
    ev.account = session.account.clone();
    // Wakes the node at once on PostgreSQL; it polls every second anyway.
    if let Err(e) = crate::server::notify::announce_kill(store, &session.node).await {
        tracing::warn!("kill requested; the node will see it at its next poll: {e}");
    }
    store
        .audit(&ev)
        .await
        .context("kill requested, but the audit event could not be written")?;
    println!("kill requested for session {id} on node {}", session.node);
    Ok(0)
}

/// `sessions kill` of a session whose node is lost: nobody would act on a
/// request, so the session is closed here as another node would close it
/// (`session.end` "node lost", as last known), and the kill is audited
/// saying so.
async fn kill_on_lost_node(
    store: &Store,
    session: &SessionRow,
    node: &NodeStatus,
    reason: Option<&str>,
) -> anyhow::Result<i32> {
    const NODE_LOST: &str = crate::server::heartbeat::NODE_LOST;
    let closed = store
        .close_lost_sessions(&node.node, node.last_seen, NODE_LOST, Some(&session.id))
        .await?;
    let silent =
        humantime::format_duration(std::time::Duration::from_secs(node.silent_secs as u64));
    let Some(row) = closed.into_iter().next() else {
        // Another node closed it a moment ago.
        println!(
            "node {} is gone (no heartbeat for {silent}); session {} was closed already",
            node.node, session.id
        );
        return Ok(0);
    };
    let mut killed = AuditEvent::new(EventKind::SessionKilled)
        .user(row.user.clone())
        .session(row.id.clone())
        .source(row.source.clone())
        .detail("requested_via", "cli")
        .detail("requested_by", super::operator::name())
        .detail("reason", reason.map(str::to_string))
        .detail("node", row.node.clone())
        .detail("node_lost", true);
    killed.server = row.server.clone();
    killed.account = row.account.clone();
    store
        .audit(&killed)
        .await
        .context("session closed, but the audit event could not be written")?;
    if let Some(end) = crate::store::lost_session_end(&row, NODE_LOST) {
        store
            .audit(&end.detail("closed_by", super::operator::name()))
            .await
            .context("session closed, but its session.end could not be written")?;
    }
    println!(
        "node {} is gone (no heartbeat for {silent}): session {} closed as \"{NODE_LOST}\", \
         ended when the node was last seen",
        node.node, row.id
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let rows = vec![
            ["ID".to_string(), "USER".into(), "X".into()],
            ["abc123".to_string(), "al".into(), "1s".into()],
        ];
        assert_eq!(table(&rows), "ID      USER  X\nabc123  al    1s\n");
    }
}
