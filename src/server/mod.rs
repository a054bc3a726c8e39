//! The SSH front end and the bridge to targets.
use crate::config::Config;

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let _ = config;
    anyhow::bail!("serve: not implemented yet")
}
