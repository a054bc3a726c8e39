//! `gatehouse access review|certify|suspend`: periodic access reviews
//! (contract section 14) for admins on the bastion host, through the same
//! workflow as the console (`grants::review`). The actor is the real
//! uid's login name (`operator`, as `unlock`); nobody certifies or
//! suspends their own access, which is checked before anything is read.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{AccessCmd, Exit};
use crate::config::Config;
use crate::grants::review::{self, Actor, ReviewError, Scope};
use crate::policy::Policy;
use crate::policy::entitlements::Reviewed;
use crate::store::Store;

fn policy(config: &Config) -> anyhow::Result<Policy> {
    Policy::load_dir_with(&config.policies, config.directory.is_some()).map_err(|d| {
        anyhow::anyhow!(
            "{} problem(s) in the policy files (run `gatehouse policy check`)",
            d.len()
        )
    })
}

fn refused(e: ReviewError) -> anyhow::Error {
    match e {
        ReviewError::Store(s) => anyhow::anyhow!("{s}"),
        other => Exit::new(1, other.to_string()).into(),
    }
}

fn ts(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "-".into())
}

pub async fn run(config: Config, cmd: AccessCmd) -> anyhow::Result<i32> {
    let actor = super::operator::name();
    let actor = Actor {
        name: &actor,
        via: "cli",
    };
    // Four eyes first: a refusal needs neither policy nor database.
    match &cmd {
        AccessCmd::Certify { user, .. } | AccessCmd::Suspend { user, .. } => {
            review::check_actor(actor.name, user).map_err(refused)?;
        }
        AccessCmd::Review { .. } => {}
    }
    let policy = policy(&config)?;
    let store = Store::open(&config.database, &config.node).await?;
    // With a directory, its users (the stored copy, while fresh) are
    // reviewed as the bastion serves them.
    let policy = match &config.directory {
        Some(d) => {
            crate::directory::served(&store, d, &policy)
                .await
                .map_err(|e| anyhow::anyhow!("cannot read the directory copy: {e}"))?
                .0
        }
        None => policy,
    };
    let now = OffsetDateTime::now_utc();
    match cmd {
        AccessCmd::Review { json, user } => {
            let mut list = review::current(&store, &policy, &config.review, now).await?;
            if let Some(u) = &user {
                list.retain(|r| &r.user == u);
            }
            print_list(&list, json)?;
        }
        AccessCmd::Certify { user, server, note } => {
            let scope = Scope {
                user: &user,
                server: server.as_deref(),
                account: None,
            };
            let done = review::certify(
                &store,
                &policy,
                &config.review,
                actor,
                scope,
                note.as_deref(),
                now,
            )
            .await
            .map_err(refused)?;
            for r in &done {
                println!("certified {} on {} as {}", r.user, r.server, r.account);
            }
        }
        AccessCmd::Suspend {
            user,
            server,
            reason,
        } => {
            let scope = Scope {
                user: &user,
                server: Some(&server),
                account: None,
            };
            let done = review::suspend(&store, &policy, &config.review, actor, scope, &reason, now)
                .await
                .map_err(refused)?;
            for r in &done {
                println!("suspended {} on {} as {}", r.user, r.server, r.account);
            }
        }
    }
    Ok(0)
}

fn print_list(list: &[Reviewed], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(list)?);
        return Ok(());
    }
    println!(
        "{:<16} {:<20} {:<14} {:<9} {:<21} {:<14} {:<21} STATE",
        "USER", "SERVER", "ACCOUNT", "SOURCE", "CERTIFIED", "BY", "DUE"
    );
    for r in list {
        println!(
            "{:<16} {:<20} {:<14} {:<9} {:<21} {:<14} {:<21} {}",
            r.user,
            r.server,
            r.account,
            r.source.as_str(),
            ts(r.certified_at),
            r.certified_by.as_deref().unwrap_or("-"),
            ts(r.due),
            r.state.as_str()
        );
    }
    Ok(())
}
