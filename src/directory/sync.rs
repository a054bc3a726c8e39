//! One sync: read the directory, build the copy, compare it with the stored
//! one under the sync lock, store it, and audit what changed (`user.*`,
//! `directory.synced`, `directory.unreachable` / `directory.recovered`
//! once per episode). Removed and disabled users' pending grant requests
//! are cancelled here, once, by the node that saw the change. Ending live
//! sessions is each node's own work (`server::directory`).

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use super::{DirectoryError, Skipped, Snapshot, diff::Diff, entries, ldap};
use crate::audit::{AuditEvent, EventKind};
use crate::config::DirectoryConfig;
use crate::grant_types::GrantState;
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

/// One sync. `dry_run`: read and compare, store and audit nothing.
/// `skipped_before`: what the last sync of this process skipped, so that
/// an entry skipped at every sync is one `directory.skipped`, not one a
/// minute (updated here).
pub async fn sync_once(
    store: &Store,
    cfg: &DirectoryConfig,
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
    report.cancelled_grants = cancel_requests(store, &report.diff, now).await;
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

/// Pending requests of removed and disabled users become denied, by
/// `directory` (a `grant.denied` each).
async fn cancel_requests(store: &Store, d: &Diff, now: OffsetDateTime) -> Vec<i64> {
    let mut cancelled = Vec::new();
    for name in d.removed.iter().chain(d.disabled.iter()) {
        let grants = match store.grants_for(name).await {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!("pending requests of {name}: {e}");
                continue;
            }
        };
        for mut g in grants
            .into_iter()
            .filter(|g| g.state == GrantState::Pending)
        {
            g.state = GrantState::Denied;
            g.decided_by = Some("directory".to_string());
            g.decided_at = Some(now);
            g.decision_note = Some(format!("{name} left the directory or was disabled"));
            match store.grant_update_if(&g, GrantState::Pending).await {
                Ok(true) => {
                    cancelled.push(g.id);
                    audit(
                        store,
                        AuditEvent::new(EventKind::GrantDenied)
                            .user(name.clone())
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
    }
    cancelled
}
