//! Staff from the site's directory (LDAP or Active Directory, contract
//! section 12): what a sync reads ([`Snapshot`]), what changed between two
//! copies ([`diff`]), the policy served from the file policy and the copy
//! ([`merge`]), the LDAP client ([`ldap`]) and the sync over the store
//! ([`sync`]).
//!
//! The copy lives in the database (store `directory`), so every node serves
//! the same one; only a sync (one node at a time) writes it. A directory
//! user acts as a `[[user]]` of the same shape; a policy `[[user]]` of the
//! same name wins (break-glass accounts).
//!
//! Layer: an identity workflow on the store; may import config, policy's
//! types, store, audit, grants and metrics; never server or web.

pub mod diff;
pub mod entries;
pub mod ldap;
pub mod merge;
pub mod sync;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use diff::{Change, Diff, diff};
pub use merge::{Merged, merge};

/// One staff member as the directory gives them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirUser {
    /// The staff name (`name_attribute`, lowercased, a valid staff name).
    pub name: String,
    /// The entry's DN, for people reading `directory show`.
    pub dn: String,
    /// OpenSSH public key lines, each parsed once; sorted, no duplicates.
    pub keys: Vec<String>,
    /// Directory groups (their `cn`) the user belongs to; sorted.
    pub groups: Vec<String>,
    /// Matched `disabled_filter`: kept in the copy, refused everywhere.
    pub disabled: bool,
}

/// A whole copy of the directory's staff, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub users: BTreeMap<String, DirUser>,
}

impl Snapshot {
    /// Distinct groups any user belongs to.
    pub fn group_count(&self) -> usize {
        let mut g: Vec<&str> = self
            .users
            .values()
            .flat_map(|u| u.groups.iter().map(String::as_str))
            .collect();
        g.sort_unstable();
        g.dedup();
        g.len()
    }

    pub fn enabled_count(&self) -> usize {
        self.users.values().filter(|u| !u.disabled).count()
    }
}

/// Something read from the directory that was left out of the copy, and
/// why (a `directory.skipped` event each).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The entry's DN (or the referral's URL).
    pub dn: String,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The bind password file is unreadable or not 0600.
    #[error("{0}")]
    Secret(String),
    /// The directory could not be reached or refused the bind or a search.
    #[error("directory: {0}")]
    Ldap(String),
    #[error("directory: TLS: {0}")]
    Tls(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The stored copy does not parse.
    #[error("directory copy in the database: {0}")]
    Corrupt(String),
}

/// The copy stored in the database, whether it may serve now (not older
/// than `max_stale`), and the policy a node serves from it and `file`:
/// what the CLI and the daily report see. `None` copy: never synced.
pub async fn served(
    store: &crate::store::Store,
    cfg: &crate::config::DirectoryConfig,
    file: &crate::policy::Policy,
) -> Result<(crate::policy::Policy, Option<Snapshot>, bool), DirectoryError> {
    let row = store.directory_row().await?;
    let now = time::OffsetDateTime::now_utc();
    let (copy, fresh) = match &row {
        Some(r) => (
            Some(sync::parse_copy(r)?),
            sync::fresh(r.synced_at, cfg.max_stale, now),
        ),
        None => (None, false),
    };
    let merged = merge(file, copy.as_ref().filter(|_| fresh), &cfg.roles);
    Ok((merged.policy, copy, fresh))
}

/// Where a user's access comes from, for a person: `policy` or
/// `directory (DN; groups a, b)`, with the reason a directory user is not
/// served when that is the case.
pub fn describe_source(
    user: &str,
    policy: &crate::policy::Policy,
    copy: Option<&Snapshot>,
    fresh: bool,
) -> String {
    let entry = copy.and_then(|c| c.users.get(user));
    if policy.directory_users.contains(user) {
        let (dn, groups) = entry
            .map(|u| (u.dn.clone(), u.groups.join(", ")))
            .unwrap_or_default();
        return format!("directory ({dn}; groups: {groups})");
    }
    match entry {
        Some(_) if policy.users.contains_key(user) => {
            "policy (a [[user]] entry; the directory entry of the same name is ignored)".to_string()
        }
        Some(u) if u.disabled => format!("none: disabled in the directory ({})", u.dn),
        Some(u) if !fresh => format!(
            "none: the directory copy is older than max_stale ({})",
            u.dn
        ),
        _ if policy.users.contains_key(user) => "policy".to_string(),
        _ => "none: unknown user".to_string(),
    }
}
