//! `gatehouse unlock USER`: lifts a lockout (and resets the failure count)
//! on every node, since lockouts live in the shared database.

use anyhow::Context;

use crate::audit::{AuditEvent, EventKind};
use crate::config::Config;
use crate::store::Store;

pub async fn run(config: Config, user: &str) -> anyhow::Result<i32> {
    let store = Store::open(&config.database, &config.node).await?;
    let was_locked = store.locked_until(user).await?.is_some();
    // Loosening access: the audit event is written first, so an unlock
    // that cannot be recorded does not happen.
    store
        .audit(
            &AuditEvent::new(EventKind::Unlock)
                .user(user)
                .detail("was_locked", was_locked)
                .detail("requested_via", "cli")
                .detail("requested_by", os_user()),
        )
        .await
        .context("cannot write the audit event; nothing was unlocked")?;
    store.unlock(user).await?;
    if was_locked {
        println!("unlocked {user}");
    } else {
        println!("{user} was not locked out (failure count reset)");
    }
    Ok(0)
}

/// Who ran this command on the bastion host, for the audit detail: the
/// sudo caller when there is one, else the login name, else the uid.
pub(super) fn os_user() -> String {
    ["SUDO_USER", "LOGNAME", "USER"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| {
            // SAFETY: getuid has no preconditions and cannot fail.
            let uid = unsafe { libc::getuid() };
            format!("uid {uid}")
        })
}
