//! Background jobs of a running bastion: policy hot reload, grant expiry
//! and revocation, and `sessions kill` requests made from the CLI (or
//! another node) through the database.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::task::JoinSet;

use super::shared::Shared;
use crate::audit::{AuditEvent, EventKind};
use crate::policy::Policy;

pub struct Jobs(JoinSet<()>);

impl Jobs {
    pub fn abort(mut self) {
        self.0.abort_all();
    }
}

pub fn spawn_jobs(shared: Arc<Shared>) -> Jobs {
    let mut set = JoinSet::new();
    set.spawn(policy_watcher(shared.clone()));
    set.spawn(session_sweeper(shared.clone()));
    set.spawn(rotation_scheduler(shared.clone()));
    // Yesterday's report, shortly after midnight UTC (and caught up at start).
    let s = shared.clone();
    set.spawn(crate::report::daily_job(
        shared.config.clone(),
        shared.store.clone(),
        move || s.policy(),
    ));
    Jobs(set)
}

/// Re-reads the policy folder when it changes (debounced). A valid policy
/// applies to new sessions at once; an invalid one is rejected whole and
/// the old one keeps serving. Both are audit events.
async fn policy_watcher(shared: Arc<Shared>) {
    let dir: PathBuf = shared.config.policies.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.is_ok() {
            let _ = tx.send(());
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::error!("policy watcher unavailable: {e}; falling back to polling");
            return poll_policy(shared).await;
        }
    };
    if let Err(e) = watcher.watch(&dir, RecursiveMode::Recursive) {
        tracing::error!(
            "cannot watch {}: {e}; falling back to polling",
            dir.display()
        );
        return poll_policy(shared).await;
    }
    // A change made between the start-up load and the watch being in place
    // would otherwise go unseen until the next one.
    reload(&shared).await;
    while rx.recv().await.is_some() {
        // Editors write in several steps: wait for the burst to settle.
        tokio::time::sleep(Duration::from_millis(300)).await;
        while rx.try_recv().is_ok() {}
        reload(&shared).await;
    }
}

async fn poll_policy(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let dir = shared.config.policies.clone();
        if let Ok(p) = tokio::task::spawn_blocking(move || Policy::load_dir(&dir)).await
            && let Ok(p) = p
            && p.digest == shared.policy().digest
        {
            continue;
        }
        reload(&shared).await;
    }
}

pub async fn reload(shared: &Arc<Shared>) {
    let dir = shared.config.policies.clone();
    let loaded = match tokio::task::spawn_blocking(move || Policy::load_dir(&dir)).await {
        Ok(r) => r,
        Err(_) => return,
    };
    match loaded {
        Ok(policy) => {
            if policy.digest == shared.policy().digest {
                return;
            }
            let ev = AuditEvent::new(EventKind::PolicyReloaded)
                .detail("digest", policy.digest.clone())
                .detail("previous", shared.policy().digest.clone())
                .detail("users", policy.users.len())
                .detail("servers", policy.servers.len())
                .detail("reason", "changed");
            tracing::info!(
                "policy reloaded ({} users, {} servers)",
                policy.users.len(),
                policy.servers.len()
            );
            shared.set_policy(policy);
            shared.audit(ev).await;
        }
        Err(diags) => {
            tracing::warn!(
                "policy change rejected: {} problem(s); the previous policy keeps serving",
                diags.len()
            );
            let problems: Vec<String> = diags.iter().take(50).map(|d| d.to_string()).collect();
            shared
                .audit(
                    AuditEvent::new(EventKind::PolicyRejected)
                        .detail("problems", problems)
                        .detail("count", diags.len())
                        .detail("serving", shared.policy().digest.clone()),
                )
                .await;
        }
    }
}

/// Every second: expire grants, end sessions whose grant is no longer
/// active (expired, revoked on any node) and sessions an admin killed.
async fn session_sweeper(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let now = Shared::now();
        match crate::grants::flow::expire_due(&shared.store, now).await {
            Ok(expired) => {
                for g in expired {
                    shared.end_sessions(
                        "the grant that authorized this session has expired",
                        |_, live| live.grant == Some(g.id),
                    );
                }
            }
            Err(e) => tracing::warn!("grant expiry: {e}"),
        }
        let grant_ids: Vec<(i64, String)> = shared
            .sessions
            .lock()
            .map(|s| {
                s.values()
                    .filter_map(|l| l.grant.map(|g| (g, l.user.clone())))
                    .collect()
            })
            .unwrap_or_default();
        for (gid, user) in grant_ids {
            match shared.store.grants_for(&user).await {
                Ok(grants) => {
                    let active = grants.iter().any(|g| g.id == gid && g.is_active(now));
                    if !active {
                        shared.end_sessions(
                            "the grant that authorized this session was revoked or expired",
                            |_, l| l.grant == Some(gid),
                        );
                    }
                }
                Err(e) => tracing::warn!("grant check: {e}"),
            }
        }
        match shared.store.kill_requests(&shared.config.node).await {
            Ok(ids) => {
                for id in ids {
                    // The reason given with the kill (review console) is
                    // what the user reads on their terminal.
                    let reason = match shared.store.kill_reason(&id).await {
                        Ok(Some(r)) => format!("session ended by an administrator: {r}"),
                        _ => "session ended by an administrator".to_string(),
                    };
                    let ended = shared.end_sessions(&reason, |sid, _| sid == id);
                    for sid in ended {
                        shared
                            .audit(AuditEvent::new(EventKind::SessionKilled).session(sid))
                            .await;
                    }
                }
            }
            Err(e) => tracing::warn!("kill requests: {e}"),
        }
    }
}

/// Rotates vault passwords whose rotation is due, in the background, with
/// bounded concurrency (`[vault] rotation_concurrency`): a minute after
/// start, then hourly. Each rotation is audited (`vault.rotated` or
/// `vault.rotation_failed`); a failure leaves the old password in force.
async fn rotation_scheduler(shared: Arc<Shared>) {
    tokio::time::sleep(Duration::from_secs(60)).await;
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let policy = shared.policy();
        let rotator = crate::vault::rotate::Rotator {
            vault: &shared.vault,
            store: &shared.store,
            policy: &policy,
            identity: shared.identity.clone(),
            admin_account: &shared.config.vault.rotation_admin_account,
            actor: "scheduler",
        };
        let (ok, failed) = crate::vault::rotate::rotate_due(
            &rotator,
            shared.config.vault.rotation_concurrency,
            Shared::now(),
        )
        .await;
        if ok + failed > 0 {
            tracing::info!("scheduled rotation: {ok} rotated, {failed} failed");
        }
    }
}
