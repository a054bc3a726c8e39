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
                .detail("requested_by", super::operator::name()),
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
