//! `gatehouse sessions list|kill`: live sessions on every node, and asking
//! the node that runs one to end it (it polls for kill requests, and on
//! PostgreSQL is woken at once by a notification).

use anyhow::Context;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Exit, SessionsCmd};
use crate::audit::{AuditEvent, EventKind};
use crate::config::Config;
use crate::store::{SessionRow, Store};

pub async fn run(config: Config, cmd: SessionsCmd) -> anyhow::Result<i32> {
    let store = Store::open(&config.database, &config.node).await?;
    match cmd {
        SessionsCmd::List { json } => list(&store, json).await,
        SessionsCmd::Kill { id, reason } => kill(&store, &id, reason.as_deref()).await,
    }
}

#[derive(serde::Serialize)]
struct Listed<'a> {
    #[serde(flatten)]
    session: &'a SessionRow,
    duration_secs: i64,
}

async fn list(store: &Store, json: bool) -> anyhow::Result<i32> {
    let sessions = store.sessions_live().await?;
    let now = OffsetDateTime::now_utc();
    let age = |s: &SessionRow| (now - s.started_at).whole_seconds().max(0);
    if json {
        let listed: Vec<Listed<'_>> = sessions
            .iter()
            .map(|s| Listed {
                session: s,
                duration_secs: age(s),
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
        rows.push([
            s.id.clone(),
            s.node.clone(),
            s.user.clone(),
            dash(&s.server),
            dash(&s.account),
            s.source.clone(),
            started,
            humantime::format_duration(std::time::Duration::from_secs(secs)).to_string(),
        ]);
    }
    print!("{}", table(&rows));
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

async fn kill(store: &Store, id: &str, reason: Option<&str>) -> anyhow::Result<i32> {
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
