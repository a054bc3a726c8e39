//! `gatehouse directory sync [--dry-run] [--json]` and
//! `gatehouse directory show USER [--json]` (contract section 12): a sync
//! on demand (the same one `serve` runs, under the same lock) and what the
//! stored copy gives one user.

use anyhow::Context;

use super::{DirectoryCmd, Exit};
use crate::config::{Config, DirectoryConfig};
use crate::directory::sync::{self, SyncOutcome, SyncReport};
use crate::policy::Policy;
use crate::store::Store;

pub async fn run(config: Config, cmd: DirectoryCmd) -> anyhow::Result<i32> {
    let Some(d) = config.directory.clone() else {
        return Err(Exit::new(1, "no [directory] section in the configuration").into());
    };
    let store = Store::open(&config.database, &config.node).await?;
    match cmd {
        DirectoryCmd::Sync { dry_run, json } => sync_now(&config, &store, &d, dry_run, json).await,
        DirectoryCmd::Show { user, json } => show(&config, &store, &d, &user, json).await,
    }
}

async fn sync_now(
    config: &Config,
    store: &Store,
    d: &DirectoryConfig,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<i32> {
    // The policy decides which pending requests still hold; a sync goes on
    // without it (only leavers' requests are then cancelled).
    let file = match Policy::load_dir_with(&config.policies, true) {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!(
                "warning: {} problem(s) in the policy files: only leavers' pending requests are cancelled",
                e.len()
            );
            None
        }
    };
    let mut seen = Default::default();
    let outcome = sync::sync_once(store, d, file.as_ref(), dry_run, &mut seen).await?;
    let SyncOutcome::Synced(report) = outcome else {
        return Err(Exit::new(1, "another node is syncing the directory now; try again").into());
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report_text(&report));
    }
    Ok(0)
}

/// The sync's findings for a person.
pub fn report_text(r: &SyncReport) -> String {
    let mut out = String::new();
    let verb = if r.dry_run { "would be" } else { "" };
    out.push_str(&format!(
        "directory: {} users ({} disabled), {} groups{}\n",
        r.users,
        r.disabled,
        r.groups,
        if r.dry_run {
            " (dry run: nothing stored)"
        } else if r.stored {
            ""
        } else {
            " (no change)"
        }
    ));
    let tag = |what: &str| {
        if verb.is_empty() {
            what.to_string()
        } else {
            format!("{verb} {what}")
        }
    };
    for n in &r.diff.added {
        out.push_str(&format!("  + {n}: {}\n", tag("added")));
    }
    for c in &r.diff.changed {
        let mut parts = Vec::new();
        if !c.groups_joined.is_empty() {
            parts.push(format!("joined {}", c.groups_joined.join(", ")));
        }
        if !c.groups_left.is_empty() {
            parts.push(format!("left {}", c.groups_left.join(", ")));
        }
        if !c.keys_added.is_empty() {
            parts.push(format!("{} key(s) added", c.keys_added.len()));
        }
        if !c.keys_removed.is_empty() {
            parts.push(format!("{} key(s) removed", c.keys_removed.len()));
        }
        out.push_str(&format!(
            "  ~ {}: {} ({})\n",
            c.name,
            tag("changed"),
            parts.join("; ")
        ));
    }
    for n in &r.diff.disabled {
        out.push_str(&format!("  - {n}: {}\n", tag("disabled")));
    }
    for n in &r.diff.removed {
        out.push_str(&format!("  - {n}: {}\n", tag("removed")));
    }
    for s in &r.skipped {
        out.push_str(&format!("  ! skipped {}: {}\n", s.dn, s.reason));
    }
    if !r.cancelled_grants.is_empty() {
        let ids: Vec<String> = r.cancelled_grants.iter().map(|i| format!("#{i}")).collect();
        out.push_str(&format!(
            "  pending requests cancelled: {}\n",
            ids.join(", ")
        ));
    }
    out
}

async fn show(
    config: &Config,
    store: &Store,
    d: &DirectoryConfig,
    user: &str,
    json: bool,
) -> anyhow::Result<i32> {
    let file = Policy::load_dir_with(&config.policies, true).map_err(|e| {
        anyhow::anyhow!(
            "{} problem(s) in the policy files: run `gatehouse policy check`",
            e.len()
        )
    })?;
    let (served, copy, fresh) = crate::directory::served(store, d, &file)
        .await
        .context("cannot read the directory copy")?;
    let row = store.directory_row().await?;
    let name = user.to_lowercase();
    let Some(entry) = copy.as_ref().and_then(|c| c.users.get(&name)) else {
        return Err(Exit::new(1, format!("{name}: not in the directory copy")).into());
    };
    let roles: Vec<&str> = d
        .roles
        .iter()
        .filter(|(_, groups)| groups.iter().any(|g| entry.groups.contains(g)))
        .map(|(r, _)| r.as_str())
        .collect();
    let source = crate::directory::describe_source(&name, &served, copy.as_ref(), fresh);
    let synced_at = row.and_then(|r| r.synced_at).and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    });
    if json {
        let v = serde_json::json!({
            "user": entry.name,
            "dn": entry.dn,
            "disabled": entry.disabled,
            "keys": entry.keys,
            "groups": entry.groups,
            "roles": roles,
            "served": served.directory_users.contains(&name),
            "source": source,
            "synced_at": synced_at,
            "fresh": fresh,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    println!("user:     {}", entry.name);
    println!("dn:       {}", entry.dn);
    println!("disabled: {}", if entry.disabled { "yes" } else { "no" });
    println!("groups:   {}", entry.groups.join(", "));
    println!("roles:    {}", roles.join(", "));
    println!("keys:     {}", entry.keys.len());
    for k in &entry.keys {
        if let Ok(key) = russh::keys::PublicKey::from_openssh(k) {
            println!(
                "  {} {}",
                key.algorithm().as_str(),
                crate::keys::fingerprint(&key)
            );
        }
    }
    println!("source:   {source}");
    println!(
        "synced:   {}{}",
        synced_at.unwrap_or_else(|| "never".into()),
        if fresh {
            ""
        } else {
            " (older than max_stale: not served)"
        }
    );
    Ok(0)
}
