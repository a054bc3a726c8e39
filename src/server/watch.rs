//! Background jobs of a running bastion: policy hot reload, grant expiry
//! and revocation, and `sessions kill` requests made from the CLI (or
//! another node) through the database.
//!
//! Layer: a background task below `mod.rs`; may import `shared` and
//! `kill_listen`.

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
    // Wakes the sweeper at once for a kill announced over PostgreSQL.
    let kick = Arc::new(tokio::sync::Notify::new());
    if shared.store.backend() == crate::store::Backend::Postgres {
        let (url, node) = (shared.config.database.clone(), shared.config.node.clone());
        set.spawn(super::kill_listen::listen_for_kills(
            url,
            node,
            kick.clone(),
        ));
    }
    set.spawn(session_sweeper(shared.clone(), kick));
    set.spawn(rotation_scheduler(shared.clone()));
    if let Some(d) = shared.config.directory.clone() {
        set.spawn(super::directory::sync_loop(shared.clone(), d.clone()));
        set.spawn(super::directory::serve_loop(shared.clone(), d));
    }
    // Yesterday's report, shortly after midnight UTC (and caught up at start).
    let s = shared.clone();
    set.spawn(crate::report::daily_job(
        shared.config.clone(),
        shared.store.clone(),
        Some(shared.signer.clone()),
        move || s.policy(),
    ));
    Jobs(set)
}

/// How long the policy folder must stay quiet before it is re-read:
/// editors and `git checkout` write in several steps.
const SETTLE: Duration = Duration::from_millis(300);
/// Longest wait for the folder to settle under a stream of changes.
const SETTLE_MAX: Duration = Duration::from_secs(2);

/// Re-reads the policy folder when it changes (debounced). A valid policy
/// applies to new sessions at once; an invalid one is rejected whole and
/// the old one keeps serving. Both are audit events.
///
/// Only changes count (create, write, close after writing, rename, remove,
/// attribute change): the watcher also reports the opens and reads of
/// every file, the reload's own included, and reacting to those made it
/// re-read the folder in a loop.
async fn policy_watcher(shared: Arc<Shared>) {
    let dir: PathBuf = shared.config.policies.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let root = dir.clone();
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        // An error (e.g. the kernel's queue overflowed) may hide a change.
        if res.as_ref().map_or(true, |ev| is_change(&root, ev)) {
            let _ = tx.send(());
        }
    });
    let mut reloader = Reloader::default();
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::error!("policy watcher unavailable: {e}; falling back to polling");
            return poll_policy(shared, reloader).await;
        }
    };
    if let Err(e) = watcher.watch(&dir, RecursiveMode::Recursive) {
        tracing::error!(
            "cannot watch {}: {e}; falling back to polling",
            dir.display()
        );
        return poll_policy(shared, reloader).await;
    }
    // A change made between the start-up load and the watch being in place
    // would otherwise go unseen until the next one.
    reloader.reload(&shared).await;
    while rx.recv().await.is_some() {
        let deadline = tokio::time::Instant::now() + SETTLE_MAX;
        loop {
            let wait = SETTLE.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
            match tokio::time::timeout(wait, rx.recv()).await {
                Ok(Some(())) if !wait.is_zero() => continue,
                Ok(None) => return,
                _ => break,
            }
        }
        reloader.reload(&shared).await;
    }
}

/// Whether a watcher event can have changed what the policy folder holds:
/// not an access (open, read, close after reading), and not only about
/// hidden files and folders inside it (`.git`, editor swap files), which
/// `Policy::load_dir` skips. A path not under `root` as spelled counts.
fn is_change(root: &std::path::Path, ev: &notify::Event) -> bool {
    use notify::EventKind as K;
    use notify::event::{AccessKind, AccessMode, MetadataKind, ModifyKind};
    let kind = match ev.kind {
        // A writer closing its file: the edit is complete. Our own reads
        // open files read-only, so never produce it.
        K::Access(AccessKind::Close(AccessMode::Write)) => true,
        K::Access(_) => false,
        K::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)) => false,
        K::Any | K::Create(_) | K::Modify(_) | K::Remove(_) | K::Other => true,
    };
    let hidden = |rel: &std::path::Path| {
        rel.components()
            .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
    };
    kind && (ev.paths.is_empty()
        || ev.paths.iter().any(|p| match p.strip_prefix(root) {
            Ok(rel) => !hidden(rel),
            // Only the part inside the folder may hide a path: the folder
            // itself may well live under a hidden one (~/.config/...).
            Err(_) => true,
        }))
}

async fn poll_policy(shared: Arc<Shared>, mut reloader: Reloader) {
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        reloader.reload(&shared).await;
    }
}

/// Applies the policy folder when it changed; remembers the folder it last
/// rejected, so that a bad file left in place is one `policy.rejected`,
/// not one per look.
#[derive(Default)]
struct Reloader {
    /// Digest of the files last rejected, and the problems found then.
    rejected: Option<(String, Vec<String>)>,
}

impl Reloader {
    async fn reload(&mut self, shared: &Arc<Shared>) {
        let dir = shared.config.policies.clone();
        let open_groups = shared.config.directory.is_some();
        let (digest, loaded) = match tokio::task::spawn_blocking(move || {
            Policy::load_dir_with_digest_opts(&dir, open_groups)
        })
        .await
        {
            Ok(r) => r,
            Err(_) => return,
        };
        match loaded {
            Ok(policy) => {
                // After a rejection, the folder being valid again is news
                // even when it is back to the policy serving (the bad edit
                // was undone): the audit shows the episode closed.
                let recovered = self.rejected.take().is_some();
                let unchanged = policy.digest == shared.file_policy().digest;
                if unchanged && !recovered {
                    return;
                }
                let ev = AuditEvent::new(EventKind::PolicyReloaded)
                    .detail("digest", policy.digest.clone())
                    .detail("previous", shared.policy().digest.clone())
                    .detail("users", policy.users.len())
                    .detail("servers", policy.servers.len())
                    .detail("reason", if unchanged { "restored" } else { "changed" });
                tracing::info!(
                    "policy reloaded ({} users, {} servers)",
                    policy.users.len(),
                    policy.servers.len()
                );
                // A user the new policy makes need a second factor again
                // loses the cached approvals the old one let stand.
                let old = shared.policy();
                let ev = match crate::identity::clear_cache_on_policy_change(
                    &shared.store,
                    &shared.config.auth,
                    &old,
                    &policy,
                )
                .await
                {
                    Ok(users) if !users.is_empty() => ev.detail("mfa_cache_cleared", users),
                    Ok(_) => ev,
                    Err(e) => {
                        tracing::error!("clearing cached second-factor approvals: {e}");
                        ev.detail("mfa_cache_cleared", "failed")
                    }
                };
                shared.set_policy(policy);
                shared.audit(ev).await;
            }
            Err(diags) => {
                let problems: Vec<String> = diags.iter().take(50).map(|d| d.to_string()).collect();
                // The same files with the same problems (an unreadable file
                // changes the problems, not the digest): already rejected.
                let key = (digest, problems);
                if self.rejected.as_ref() == Some(&key) {
                    return;
                }
                tracing::warn!(
                    "policy change rejected: {} problem(s); the previous policy keeps serving",
                    diags.len()
                );
                let ev = AuditEvent::new(EventKind::PolicyRejected)
                    .detail("problems", key.1.clone())
                    .detail("count", diags.len())
                    .detail("rejected_digest", key.0.clone())
                    .detail("serving", shared.policy().digest.clone());
                self.rejected = Some(key);
                shared.audit(ev).await;
            }
        }
    }
}

/// Every second (and when `kick` fires): expire grants, end sessions whose
/// grant is no longer active (expired, revoked on any node) and sessions
/// an admin killed.
async fn session_sweeper(shared: Arc<Shared>, kick: Arc<tokio::sync::Notify>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = kick.notified() => {}
        }
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
                    // Whoever asked (`sessions kill`, the console) wrote
                    // the one `session.killed`, with who and why; the
                    // session's own `session.end` follows.
                    for sid in shared.end_sessions(&reason, |sid, _| sid == id) {
                        tracing::info!(session = %sid, "session ended on request");
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
            algorithms: &shared.config.ssh.target,
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, MetadataKind, ModifyKind};
    use notify::{Event, EventKind as K};

    use super::is_change;

    fn ev(kind: K, path: &str) -> Event {
        Event::new(kind).add_path(Path::new("/p").join(path))
    }

    #[test]
    fn reads_are_not_changes() {
        let root = Path::new("/p");
        // What a reload's own read of the folder produces.
        for kind in [
            K::Access(AccessKind::Open(AccessMode::Any)),
            K::Access(AccessKind::Read),
            K::Access(AccessKind::Close(AccessMode::Read)),
            K::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)),
        ] {
            assert!(!is_change(root, &ev(kind, "a.toml")), "{kind:?}");
        }
        for kind in [
            K::Create(CreateKind::File),
            K::Modify(ModifyKind::Data(DataChange::Any)),
            K::Modify(ModifyKind::Name(notify::event::RenameMode::To)),
            K::Modify(ModifyKind::Metadata(MetadataKind::Permissions)),
            K::Remove(notify::event::RemoveKind::File),
            K::Access(AccessKind::Close(AccessMode::Write)),
        ] {
            assert!(is_change(root, &ev(kind, "a.toml")), "{kind:?}");
        }
        // Hidden files and folders are not read, so not watched either.
        let write = K::Modify(ModifyKind::Data(DataChange::Any));
        assert!(!is_change(root, &ev(write, ".git/index")));
        assert!(!is_change(root, &ev(write, "sub/.a.toml.swp")));
        assert!(is_change(root, &ev(write, "sub/a.toml")));
        // The folder's own place does not hide it.
        let under_hidden = Path::new("/home/u/.config/policies");
        let e = Event::new(write).add_path(under_hidden.join("a.toml"));
        assert!(is_change(under_hidden, &e));
        let e = Event::new(write).add_path("/elsewhere/.x/a.toml".into());
        assert!(is_change(root, &e), "not under root as spelled: counts");
    }
}
