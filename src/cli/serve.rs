//! `gatehouse serve`.
use crate::config::Config;

pub async fn run(config: Config) -> anyhow::Result<i32> {
    // Before any listener: the web and admin caps are sized from it.
    match crate::rlimit::raise_nofile() {
        Ok(n) => tracing::info!("open-file limit: {n}"),
        Err(e) => tracing::warn!("cannot raise the open-file limit: {e}"),
    }
    crate::server::serve(config).await?;
    Ok(0)
}
