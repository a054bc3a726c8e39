//! One sync: read the directory, build the copy, compare it with the stored
//! one under the sync lock, store it, and audit what changed (`user.*`,
//! `directory.synced`, `directory.unreachable` / `directory.recovered`
//! once per episode). Directory users' pending grant requests are decided
//! again here, by the node that syncs: those the new copy no longer lets
//! them ask for (removed, disabled, out of the group) are cancelled.
//! Ending live sessions is each node's own work (`server::directory`).

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use super::{DirectoryError, Skipped, Snapshot, diff::Diff, entries, ldap};
use crate::audit::{AuditEvent, EventKind};
use crate::config::DirectoryConfig;
use crate::grant_types::GrantState;
use crate::grants::flow::requestable;
use crate::policy::Policy;
use crate::store::{DirectoryRow, Store};

/// What a sync found.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    /// Enabled users in the new copy.
    pub users: usize,
    pub disabled: usize,
    pub groups: usize,
    pub diff: Diff,
    pub skipped: Vec<Skipped>,
    /// The stored copy was replaced (false: no change, or a dry run).
    pub stored: bool,
    pub dry_run: bool,
    /// Pending grant requests cancelled (ids).
    pub cancelled_grants: Vec<i64>,
}

/// A sync's result: done, or another node was syncing at that moment.
#[derive(Debug, Clone)]
pub enum SyncOutcome {
    Synced(Box<SyncReport>),
    Busy,
}

/// The copy in a stored row; a row that does not parse is a fault.
pub fn parse_copy(row: &DirectoryRow) -> Result<Snapshot, DirectoryError> {
    serde_json::from_str(&row.snapshot).map_err(|e| DirectoryError::Corrupt(e.to_string()))
}

/// Whether a copy last synced at `synced_at` may still serve at `now`.
pub fn fresh(synced_at: Option<OffsetDateTime>, max_stale: Duration, now: OffsetDateTime) -> bool {
    synced_at.is_some_and(|t| now - t <= max_stale)
}

/// Reads the directory and builds a copy (no store involved).
pub async fn read_copy(cfg: &DirectoryConfig) -> Result<(Snapshot, Vec<Skipped>), DirectoryError> {
    let read = ldap::read(cfg).await?;
    // Assembling 10,000s of entries is CPU work: off the runtime's threads.
    let (name, key) = (cfg.name_attribute.clone(), cfg.key_attribute.clone());
    tokio::task::spawn_blocking(move || entries::assemble(&read, &name, &key))
        .await
        .map_err(|e| DirectoryError::Ldap(format!("building the copy failed: {e}")))
}

async fn audit(store: &Store, ev: AuditEvent) {
    if let Err(e) = store.audit(&ev).await {
        tracing::error!(kind = %ev.kind, "audit write failed: {e}");
    }
}

/// One sync. `file`: the policy files' policy, to decide which pending
/// requests still hold (`None` when it could not be read: then only the
/// requests of removed and disabled users are cancelled). `dry_run`: read
/// and compare, store and audit nothing. `skipped_before`: what the last
/// sync of this process skipped, so that an entry skipped at every sync
/// is one `directory.skipped`, not one a minute (updated here).
pub async fn sync_once(
    store: &Store,
    cfg: &DirectoryConfig,
    file: Option<&Policy>,
    dry_run: bool,
    skipped_before: &mut BTreeSet<(String, String)>,
) -> Result<SyncOutcome, DirectoryError> {
    let read = read_copy(cfg).await;
    let now = OffsetDateTime::now_utc();
    let (new, skipped) = match read {
        Ok(r) => r,
        Err(e) => {
            if !dry_run && !matches!(e, DirectoryError::Secret(_)) {
                let message = e.to_string();
                match store.directory_failed(now, &message).await {
                    Ok(true) => {
                        audit(
                            store,
                            AuditEvent::new(EventKind::DirectoryUnreachable)
                                .detail("url", cfg.url.clone())
                                .detail("error", message),
                        )
                        .await
                    }
                    Ok(false) => {}
                    Err(se) => tracing::warn!("directory state: {se}"),
                }
            }
            return Err(e);
        }
    };
    let Some(mut tx) = store.directory_begin().await? else {
        return Ok(SyncOutcome::Busy);
    };
    let row = tx.current().await?;
    let old = match parse_copy(&row) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("{e}; the new copy replaces it whole");
            Snapshot::default()
        }
    };
    let d = super::diff(&old, &new);
    let mut report = SyncReport {
        users: new.enabled_count(),
        disabled: new.users.len() - new.enabled_count(),
        groups: new.group_count(),
        diff: d,
        skipped,
        stored: false,
        dry_run,
        cancelled_grants: Vec::new(),
    };
    if dry_run {
        tx.rollback().await;
        return Ok(SyncOutcome::Synced(Box::new(report)));
    }
    let changed = new != old;
    let json = if changed {
        Some(serde_json::to_string(&new).map_err(|e| DirectoryError::Corrupt(e.to_string()))?)
    } else {
        None
    };
    let recovered = tx.write(json.as_deref(), now).await?;
    tx.commit().await?;
    report.stored = changed;

    if recovered {
        audit(
            store,
            AuditEvent::new(EventKind::DirectoryRecovered).detail("url", cfg.url.clone()),
        )
        .await;
    }
    audit_changes(store, &old, &new, &report.diff).await;
    let skipped_now: BTreeSet<(String, String)> = report
        .skipped
        .iter()
        .map(|s| (s.dn.clone(), s.reason.clone()))
        .collect();
    for (dn, reason) in skipped_now.difference(skipped_before) {
        audit(
            store,
            AuditEvent::new(EventKind::DirectorySkipped)
                .detail("entry", dn.clone())
                .detail("reason", reason.clone()),
        )
        .await;
    }
    *skipped_before = skipped_now;
    let served = file.map(|f| super::merge(f, Some(&new), &cfg.roles).policy);
    report.cancelled_grants = cancel_requests(store, &old, &new, served.as_ref(), now).await;
    if changed || recovered {
        audit(
            store,
            AuditEvent::new(EventKind::DirectorySynced)
                .detail("users", report.users)
                .detail("disabled", report.disabled)
                .detail("groups", report.groups)
                .detail("added", report.diff.added.len())
                .detail("changed", report.diff.changed.len())
                .detail("disabled_now", report.diff.disabled.len())
                .detail("removed", report.diff.removed.len())
                .detail("skipped", report.skipped.len()),
        )
        .await;
    }
    Ok(SyncOutcome::Synced(Box::new(report)))
}

/// `user.added`, `user.changed`, `user.disabled`, `user.removed`.
async fn audit_changes(store: &Store, old: &Snapshot, new: &Snapshot, d: &Diff) {
    for name in &d.added {
        let groups = new
            .users
            .get(name)
            .map(|u| u.groups.clone())
            .unwrap_or_default();
        let keys = new.users.get(name).map(|u| u.keys.len()).unwrap_or(0);
        audit(
            store,
            AuditEvent::new(EventKind::UserAdded)
                .user(name.clone())
                .detail("source", "directory")
                .detail("groups", groups)
                .detail("keys", keys),
        )
        .await;
    }
    for c in &d.changed {
        audit(
            store,
            AuditEvent::new(EventKind::UserChanged)
                .user(c.name.clone())
                .detail("source", "directory")
                .detail("groups_joined", c.groups_joined.clone())
                .detail("groups_left", c.groups_left.clone())
                .detail("keys_added", c.keys_added.len())
                .detail("keys_removed", c.keys_removed.len()),
        )
        .await;
    }
    for name in &d.disabled {
        audit(
            store,
            AuditEvent::new(EventKind::UserDisabled)
                .user(name.clone())
                .detail("source", "directory"),
        )
        .await;
    }
    for name in &d.removed {
        let groups = old
            .users
            .get(name)
            .map(|u| u.groups.clone())
            .unwrap_or_default();
        audit(
            store,
            AuditEvent::new(EventKind::UserRemoved)
                .user(name.clone())
                .detail("source", "directory")
                .detail("groups", groups),
        )
        .await;
    }
}

/// Why a user's pending request no longer holds, or `None` when it does.
/// `served`: the policy the new copy serves; without it only leavers (not
/// in the copy, or disabled) lose their requests.
fn request_void(
    name: &str,
    server: &str,
    new: &Snapshot,
    served: Option<&Policy>,
) -> Option<String> {
    match new.users.get(name) {
        None => return Some(format!("{name} is no longer in the site's directory")),
        Some(u) if u.disabled => {
            return Some(format!("{name} was disabled in the site's directory"));
        }
        Some(_) => {}
    }
    match served {
        Some(p) if !requestable(p, name, server) => Some(format!(
            "{name} may no longer ask for {server}: none of their directory groups is allowed it"
        )),
        _ => None,
    }
}

/// Every pending request of a directory user (in the old or the new
/// copy, and not a `[[user]]` of the same name, whom the directory never
/// gave anything) that no longer holds becomes denied, by `directory` (a
/// `grant.denied` each). All of them at every sync, not only those of the
/// users who changed: a request asked for through a node still serving
/// the previous copy (it looks once a second) is caught by the next sync.
async fn cancel_requests(
    store: &Store,
    old: &Snapshot,
    new: &Snapshot,
    served: Option<&Policy>,
    now: OffsetDateTime,
) -> Vec<i64> {
    let pending = match store.grants_pending().await {
        Ok(g) => g,
        Err(e) => {
            tracing::warn!("pending requests: {e}");
            return Vec::new();
        }
    };
    let mut cancelled = Vec::new();
    for mut g in pending {
        let name = g.user.clone();
        let directory_user = old.users.contains_key(&name) || new.users.contains_key(&name);
        let policy_user =
            served.is_some_and(|p| p.user(&name).is_some() && !p.directory_users.contains(&name));
        if !directory_user || policy_user {
            continue;
        }
        let Some(note) = request_void(&name, &g.server, new, served) else {
            continue;
        };
        g.state = GrantState::Denied;
        g.decided_by = Some("directory".to_string());
        g.decided_at = Some(now);
        g.decision_note = Some(note);
        match store.grant_update_if(&g, GrantState::Pending).await {
            Ok(true) => {
                cancelled.push(g.id);
                audit(
                    store,
                    AuditEvent::new(EventKind::GrantDenied)
                        .user(name)
                        .server(g.server.clone())
                        .detail("grant", g.id)
                        .detail("by", "directory")
                        .detail("note", g.decision_note.clone()),
                )
                .await;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!("cancel request #{}: {e}", g.id),
        }
    }
    cancelled
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::directory::{DirUser, merge};

    const FP: &str = "SHA256:uW/wWVh7lMqOJqNDP3G5gZ9mZFhQG2oIFjelE+vdrnM";

    fn copy(users: &[(&str, &[&str], bool)]) -> Snapshot {
        let mut s = Snapshot::default();
        for (name, groups, disabled) in users {
            s.users.insert(
                name.to_string(),
                DirUser {
                    name: name.to_string(),
                    dn: format!("uid={name},dc=x"),
                    keys: Vec::new(),
                    groups: groups.iter().map(|g| g.to_string()).collect(),
                    disabled: *disabled,
                },
            );
        }
        s
    }

    #[test]
    fn a_request_holds_while_a_group_of_the_user_may_ask_for_the_server() {
        let file = Policy::from_sources(&[(
            PathBuf::from("p.toml"),
            format!(
                "[[user]]\nname = \"pat\"\nkeys = []\ngroups = [\"dbas\"]\n\n\
                 [[server]]\nname = \"db\"\naddress = \"10.0.0.1:22\"\nhost_key = \"{FP}\"\n\
                 mode = \"on-request\"\naccounts = [\"root\"]\nallow = [\"group:dbas\"]\n"
            ),
        )])
        .unwrap_or_else(|e| panic!("{e:?}"));
        let new = copy(&[
            ("kurt", &["dbas"], false),
            ("jade", &["web"], false),
            ("ivan", &["dbas"], true),
        ]);
        let served = merge(&file, Some(&new), &[]).policy;
        assert_eq!(request_void("kurt", "db", &new, Some(&served)), None);
        let moved = request_void("jade", "db", &new, Some(&served)).unwrap_or_default();
        assert!(moved.contains("jade may no longer ask for db"), "{moved}");
        let disabled = request_void("ivan", "db", &new, Some(&served)).unwrap_or_default();
        assert!(disabled.contains("disabled"), "{disabled}");
        let gone = request_void("olga", "db", &new, Some(&served)).unwrap_or_default();
        assert!(gone.contains("no longer in the site's directory"), "{gone}");
        // Without the policy only leavers lose their requests.
        assert_eq!(request_void("jade", "db", &new, None), None);
        assert!(request_void("ivan", "db", &new, None).is_some());
    }
}
