//! `gatehouse healthz`: the admin listener's `/healthz` checks from the
//! command line (for container health checks and systemd watchdogs). One
//! line: `ok: ...` on stdout and exit 0, or `error: unhealthy: ...` on
//! stderr and exit 1. The probes write as the user running this command:
//! run it as the user `serve` runs as (`[server] user`), as the image's
//! health check does, for an answer about that user's rights.

use super::Exit;
use crate::config::Config;
use crate::health::{self, Unhealthy};
use crate::store::Store;

pub async fn run(config: Config) -> anyhow::Result<i32> {
    let mut problems = match Store::open(&config.database, &config.node).await {
        Ok(store) => {
            let mut p = health::check(&store, &config.recordings).await;
            p.extend(health::directory(&store, &config).await.err());
            store.close().await;
            p
        }
        Err(e) => {
            let mut p = vec![Unhealthy::Database(e.to_string())];
            p.extend(health::recordings_writable(&config.recordings).await.err());
            p
        }
    };
    // This command's store does not spool (only `serve`'s does): probe the
    // configured spool itself.
    problems.extend(health::spool_writable(&config.audit_spool).await.err());
    if problems.is_empty() {
        println!(
            "ok: database takes writes, audit spool {} and recordings folder {} writable{}",
            config.audit_spool.display(),
            config.recordings.display(),
            if config.directory.is_some() {
                ", directory copy fresh"
            } else {
                ""
            }
        );
        return Ok(0);
    }
    Err(Exit::new(1, format!("unhealthy: {}", health::summary(&problems))).into())
}
