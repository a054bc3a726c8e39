//! The directory on a running node (contract section 12): a sync every
//! `sync_every` (one node at a time, `crate::directory::sync`), and every
//! second a look at the stored copy's serial and age, so that every node
//! serves the same copy within a second of it being stored, and stops
//! serving it `max_stale` after the last good sync (fail closed: directory
//! users are then unknown, policy users unaffected).
//!
//! When the copy served changes, live sessions of directory users are
//! decided again with the new policy: a session its user may no longer
//! have (user removed or disabled, key removed, group left) ends with the
//! reason on the user's terminal.
//!
//! Layer: a background task below `mod.rs`; may import `shared`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use super::shared::Shared;
use crate::audit::{AuditEvent, EventKind};
use crate::config::DirectoryConfig;
use crate::directory::sync::{self, SyncOutcome};
use crate::directory::{Snapshot, diff};
use crate::policy::{Action, Decision, Policy, Request};

/// How often each node looks at the stored copy.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Syncs with the directory every `sync_every`. A node skips its turn when
/// another node stored a good sync less than half a period ago.
pub async fn sync_loop(shared: Arc<Shared>, cfg: DirectoryConfig) {
    let mut skipped_before = BTreeSet::new();
    let mut tick = tokio::time::interval(cfg.sync_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Ok(Some(head)) = shared.store.directory_head().await
            && !head.unreachable
            && head
                .synced_at
                .is_some_and(|t| time::OffsetDateTime::now_utc() - t < cfg.sync_every / 2)
        {
            continue;
        }
        let file = shared.file_policy();
        match sync::sync_once(&shared.store, &cfg, Some(&file), false, &mut skipped_before).await {
            Ok(SyncOutcome::Synced(r)) if r.stored => tracing::info!(
                "directory synced: {} users, {} added, {} changed, {} disabled, {} removed",
                r.users,
                r.diff.added.len(),
                r.diff.changed.len(),
                r.diff.disabled.len(),
                r.diff.removed.len()
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("directory sync: {e}"),
        }
    }
}

/// What this node serves now.
#[derive(Default)]
struct Serving {
    serial: Option<i64>,
    /// The last good sync as last read, kept while the database is away.
    synced_at: Option<time::OffsetDateTime>,
    fresh: bool,
    copy: Option<Arc<Snapshot>>,
    /// Conflicts already reported, with the file policy's digest.
    conflicts: BTreeSet<String>,
    file_digest: String,
}

/// Every second: serve the stored copy when it changed or went stale.
pub async fn serve_loop(shared: Arc<Shared>, cfg: DirectoryConfig) {
    let mut serving = Serving::default();
    let mut tick = tokio::time::interval(LOOK_EVERY);
    loop {
        tick.tick().await;
        look(&shared, &cfg, &mut serving).await;
    }
}

async fn look(shared: &Arc<Shared>, cfg: &DirectoryConfig, s: &mut Serving) {
    let head = match shared.store.directory_head().await {
        Ok(Some(h)) => Some(h),
        // The database is away: the copy served goes on serving until it
        // is too old (checked against the last known sync time below).
        Err(e) => {
            tracing::debug!("directory head: {e}");
            None
        }
        // Never synced: nothing to serve.
        Ok(None) => {
            s.synced_at = None;
            None
        }
    };
    let now = time::OffsetDateTime::now_utc();
    let (serial, synced_at) = match head {
        Some(h) => (Some(h.serial), h.synced_at),
        None => (s.serial, s.synced_at),
    };
    s.synced_at = synced_at;
    let fresh = sync::fresh(synced_at, cfg.max_stale, now);
    if let Some(t) = synced_at {
        crate::metrics::directory_copy_age((now - t).whole_seconds());
    }
    let file_digest = shared.file_policy().digest.clone();
    if serial == s.serial && fresh == s.fresh && file_digest == s.file_digest {
        return;
    }
    let copy = if !fresh {
        None
    } else if serial == s.serial && s.copy.is_some() {
        s.copy.clone()
    } else {
        match shared.store.directory_row().await {
            Ok(Some(row)) => match sync::parse_copy(&row) {
                Ok(c) => Some(Arc::new(c)),
                Err(e) => {
                    tracing::error!("{e}: directory users refused");
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                tracing::warn!("directory copy: {e}");
                return;
            }
        }
    };
    if s.fresh && !fresh {
        tracing::warn!(
            "the directory copy is older than max_stale ({}s): directory users are refused",
            cfg.max_stale.as_secs()
        );
    }
    let before = shared.policy();
    let old_copy = s.copy.clone();
    shared.set_directory(copy.clone());
    s.serial = serial;
    s.fresh = fresh;
    s.copy = copy.clone();
    s.file_digest = file_digest;
    report_conflicts(shared, s).await;
    let after = shared.policy();
    cut_sessions(
        shared,
        &before,
        &after,
        old_copy.as_deref(),
        copy.as_deref(),
    )
    .await;
}

/// One `directory.conflict` per name that both sources define, when it
/// first appears.
async fn report_conflicts(shared: &Arc<Shared>, s: &mut Serving) {
    let file = shared.file_policy();
    let now: BTreeSet<String> = s
        .copy
        .iter()
        .flat_map(|c| c.users.values())
        .filter(|u| !u.disabled && file.users.contains_key(&u.name))
        .map(|u| u.name.clone())
        .collect();
    for name in now.difference(&s.conflicts) {
        let dn = s
            .copy
            .as_ref()
            .and_then(|c| c.users.get(name))
            .map(|u| u.dn.clone())
            .unwrap_or_default();
        tracing::warn!("directory user {name} is also a [[user]]: the policy entry wins");
        shared
            .audit(
                AuditEvent::new(EventKind::DirectoryConflict)
                    .user(name.clone())
                    .detail("dn", dn)
                    .detail("winner", "policy"),
            )
            .await;
    }
    s.conflicts = now;
}

/// Why a directory user's live session ends, for their terminal.
fn reason_for(user: &str, after: &Policy, new_copy: Option<&Snapshot>) -> String {
    match new_copy {
        None => "the site's directory could not be read for too long (directory users are refused until it answers)".to_string(),
        Some(c) => match c.users.get(user) {
            None => format!("{user} is no longer in the site's directory"),
            Some(u) if u.disabled => format!("{user} was disabled in the site's directory"),
            Some(_) if after.user(user).is_none() => {
                format!("{user} is no longer a directory staff member here")
            }
            Some(_) => "the site's directory no longer gives this access (group or key removed)"
                .to_string(),
        },
    }
}

/// A live session as re-decided: id, user, server, account, source.
type LiveRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    std::net::IpAddr,
);

/// Ends the live sessions of directory users that the new policy no
/// longer allows: the decision of the login, taken again.
async fn cut_sessions(
    shared: &Arc<Shared>,
    before: &Policy,
    after: &Policy,
    old_copy: Option<&Snapshot>,
    new_copy: Option<&Snapshot>,
) {
    // Keys removed per user, to check the key each session logged in with.
    let removed_keys: HashMap<String, Vec<String>> = match (old_copy, new_copy) {
        (Some(o), Some(n)) => diff(o, n)
            .changed
            .into_iter()
            .filter(|c| !c.keys_removed.is_empty())
            .map(|c| {
                let fps = c
                    .keys_removed
                    .iter()
                    .filter_map(|k| russh::keys::PublicKey::from_openssh(k).ok())
                    .map(|k| crate::keys::fingerprint(&k))
                    .collect();
                (c.name, fps)
            })
            .collect(),
        _ => HashMap::new(),
    };
    let live: Vec<LiveRow> = shared
        .sessions
        .lock()
        .map(|s| {
            s.iter()
                .filter(|(_, l)| before.directory_users.contains(&l.user))
                .map(|(id, l)| {
                    (
                        id.clone(),
                        l.user.clone(),
                        l.server.clone(),
                        l.account.clone(),
                        l.source,
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let now = time::OffsetDateTime::now_utc();
    for (id, user, server, account, source) in live {
        let still = match (&server, after.user(&user)) {
            (_, None) => false,
            // Command mode: the user is still staff.
            (None, Some(_)) => true,
            (Some(server), Some(_)) => {
                let grants = shared.store.grants_for(&user).await.unwrap_or_default();
                let req = Request {
                    user: &user,
                    server,
                    account: account.as_deref(),
                    source,
                    action: Action::Session,
                };
                matches!(
                    crate::policy::decide(after, &req, &grants, now),
                    Decision::Allow(_)
                )
            }
        };
        let key_gone = match removed_keys.get(&user) {
            Some(fps) if still => session_key(shared, &id)
                .await
                .is_some_and(|k| fps.contains(&k)),
            _ => false,
        };
        if still && !key_gone {
            continue;
        }
        let reason = if key_gone {
            "the key this session logged in with was removed from the site's directory".to_string()
        } else {
            reason_for(&user, after, new_copy)
        };
        for sid in shared.end_sessions(&reason, |sid, _| sid == id) {
            tracing::info!(session = %sid, user = %user, "session ended: {reason}");
        }
    }
}

/// The key fingerprint a session authenticated with (its `auth.success`).
async fn session_key(shared: &Arc<Shared>, session: &str) -> Option<String> {
    let events = shared.store.session_events(session, 20).await.ok()?;
    events
        .iter()
        .find(|e| e.kind == "auth.success")
        .and_then(|e| e.detail.get("key"))
        .and_then(|k| k.as_str())
        .map(str::to_string)
}
