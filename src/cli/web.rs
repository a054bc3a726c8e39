//! `gatehouse web link USER`: a one-time sign-in link for the review
//! console, for admins on the bastion host (staff use `ssh USER@BASTION
//! web`).

use crate::config::Config;
use crate::policy::Policy;
use crate::store::Store;

use super::{Exit, WebCmd};

pub async fn run(config: Config, cmd: WebCmd) -> anyhow::Result<i32> {
    match cmd {
        WebCmd::Link { user, json } => link(&config, &user, json).await,
    }
}

async fn link(config: &Config, user: &str, json: bool) -> anyhow::Result<i32> {
    let base = crate::web::base_url(config).map_err(|e| Exit::new(1, e.to_string()))?;
    let policy =
        Policy::load_dir_with(&config.policies, config.directory.is_some()).map_err(|d| {
            anyhow::anyhow!(
                "{} problem(s) in the policy files (run `gatehouse policy check`)",
                d.len()
            )
        })?;
    let store = Store::open(&config.database, &config.node).await?;
    let url = crate::web::auth::issue_link(&store, &policy, &base, user, "cli", None)
        .await
        .map_err(|e| match e {
            crate::web::WebError::Refused(m) => anyhow::Error::from(Exit::new(1, m)),
            other => other.into(),
        })?;
    if json {
        let v = serde_json::json!({
            "user": user,
            "url": url,
            "valid_secs": crate::web::auth::LINK_TTL.as_secs(),
        });
        println!("{v}");
    } else {
        println!("{url}");
        println!(
            "(valid once, for {} seconds)",
            crate::web::auth::LINK_TTL.as_secs()
        );
    }
    Ok(0)
}
