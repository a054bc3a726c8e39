//! `gatehouse serve`.
use crate::config::Config;

pub async fn run(config: Config) -> anyhow::Result<i32> {
    crate::server::serve(config).await?;
    Ok(0)
}
