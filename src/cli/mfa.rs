//! `gatehouse mfa list|reset|forget|allow-enroll`: staff second factors,
//! on every node at once (they live in the shared database). Each change
//! is audited with who ran it (the real uid's login name, as `unlock`),
//! the event written before the change: one that cannot be recorded does
//! not happen. Nothing here prints or exports a secret.

use anyhow::Context;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::MfaCmd;
use crate::audit::{AuditEvent, EventKind};
use crate::config::Config;
use crate::identity::factors::ALLOW_ENROLL_FOR;
use crate::store::Store;

pub async fn run(config: Config, cmd: MfaCmd) -> anyhow::Result<i32> {
    let store = Store::open(&config.database, &config.node).await?;
    match cmd {
        MfaCmd::List { json } => list(&store, json).await,
        MfaCmd::Reset { user } => reset(&store, &user).await,
        MfaCmd::Forget { user } => forget(&store, &user).await,
        MfaCmd::AllowEnroll { user } => allow_enroll(&store, &user).await,
    }
}

fn ts(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

async fn list(store: &Store, json: bool) -> anyhow::Result<i32> {
    let rows = store.mfa_list().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    println!(
        "{:<20} {:<8} {:<25} {:<25} RECOVERY CODES LEFT",
        "USER", "FACTOR", "ENROLLED", "LAST USED"
    );
    for r in &rows {
        println!(
            "{:<20} {:<8} {:<25} {:<25} {}",
            r.user,
            r.factor,
            ts(r.enrolled),
            r.last_used.map(ts).unwrap_or_else(|| "never".into()),
            r.recovery_codes_left
        );
    }
    Ok(0)
}

async fn reset(store: &Store, user: &str) -> anyhow::Result<i32> {
    let was = crate::identity::reset(store, user, &super::operator::name())
        .await
        .context("nothing was reset")?;
    if was {
        println!("reset the second factor of {user}");
    } else {
        println!("{user} had no second factor (cached approvals cleared)");
    }
    Ok(0)
}

async fn forget(store: &Store, user: &str) -> anyhow::Result<i32> {
    store
        .audit(
            &AuditEvent::new(EventKind::MfaForget)
                .user(user)
                .detail("by", super::operator::name()),
        )
        .await
        .context("cannot write the audit event; nothing was cleared")?;
    let n = crate::identity::forget(store, user).await?;
    println!("cleared {n} cached approval(s) of {user}");
    Ok(0)
}

async fn allow_enroll(store: &Store, user: &str) -> anyhow::Result<i32> {
    let until = OffsetDateTime::now_utc() + ALLOW_ENROLL_FOR;
    store
        .audit(
            &AuditEvent::new(EventKind::MfaAllowEnroll)
                .user(user)
                .detail("by", super::operator::name())
                .detail("until", ts(until)),
        )
        .await
        .context("cannot write the audit event; nothing was allowed")?;
    store.mfa_allow_enroll(user, until).await?;
    println!("{user} may enroll a second factor until {}", ts(until));
    Ok(0)
}
