//! `gatehouse grant request|approve|deny|revoke|list`: the grant workflow
//! for admins on the bastion host, the same as SSH command mode.

use super::{Exit, GrantCmd};
use crate::config::Config;
use crate::grants::Grant;
use crate::grants::flow::{self, FlowError, NewRequest, parse_cidrs};
use crate::policy::Policy;
use crate::store::Store;

fn policy(config: &Config) -> anyhow::Result<Policy> {
    Policy::load_dir_with(&config.policies, config.directory.is_some()).map_err(|d| {
        anyhow::anyhow!(
            "{} problem(s) in the policy files (run `gatehouse policy check`)",
            d.len()
        )
    })
}

fn refused(e: FlowError) -> anyhow::Error {
    match e {
        FlowError::Store(s) => anyhow::anyhow!("{s}"),
        other => Exit::new(1, other.to_string()).into(),
    }
}

fn print(g: &Grant, json: bool, verb: &str) {
    if json {
        println!("{}", serde_json::to_string(g).unwrap_or_default());
    } else {
        println!("grant #{} {verb}", g.id);
        println!(
            "{}",
            crate::grants::grant_line(g, time::OffsetDateTime::now_utc())
        );
    }
}

pub async fn run(config: Config, cmd: GrantCmd) -> anyhow::Result<i32> {
    let policy = policy(&config)?;
    let store = Store::open(&config.database, &config.node).await?;
    let now = time::OffsetDateTime::now_utc();
    match cmd {
        GrantCmd::Request(a) => {
            let mut from = Vec::new();
            for f in &a.from {
                from.extend(parse_cidrs(f).map_err(|e| Exit::new(2, e))?);
            }
            let duration = match &a.duration {
                Some(d) => Some(crate::config::parse_duration(d).map_err(|e| Exit::new(2, e))?),
                None => None,
            };
            let req = NewRequest {
                user: a.user,
                server: a.server,
                accounts: a.account.into_iter().collect(),
                ports: a.ports,
                from,
                duration,
                permanent: a.permanent,
                reason: a.reason,
            };
            let g = flow::request(&store, &policy, req, None, now)
                .await
                .map_err(refused)?;
            print(&g, a.json, "requested");
        }
        GrantCmd::Approve { id, by, json } => {
            let g = flow::approve(&store, &policy, id, &by, now)
                .await
                .map_err(refused)?;
            print(&g, json, "approved");
        }
        GrantCmd::Deny {
            id,
            by,
            reason,
            json,
        } => {
            let g = flow::deny(&store, &policy, id, &by, reason, now)
                .await
                .map_err(refused)?;
            print(&g, json, "denied");
        }
        GrantCmd::Revoke { id, by, json } => {
            let g = flow::revoke(&store, &policy, id, &by, now)
                .await
                .map_err(refused)?;
            print(&g, json, "revoked");
        }
        GrantCmd::List { user, json } => {
            let gs = store.grants_list(user.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string(&gs)?);
            } else if gs.is_empty() {
                println!("(no grants)");
            } else {
                for g in &gs {
                    println!("{}", crate::grants::grant_line(g, now));
                }
            }
        }
    }
    Ok(0)
}
