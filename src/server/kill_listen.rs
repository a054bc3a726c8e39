//! `sessions kill` across nodes without waiting for the next poll: on
//! PostgreSQL the CLI announces a kill request with `NOTIFY` on
//! [`KILL_CHANNEL`] (payload: the node running the session), and each
//! node `LISTEN`s there and wakes its session sweeper, which reads and
//! carries out the request as it does on every tick. The notification is
//! only a wake-up: the request itself is the row in the database, so a
//! notification lost (listener reconnecting, SQLite, another database)
//! delays a kill by at most the sweeper's one-second poll.
//!
//! Layer: the bottom of `server/` (named apart from the `notify` crate that
//! `watch` uses); imports nothing of `server/`.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::Notify;

use crate::store::{Backend, Ctx, Store, StoreError};

/// The PostgreSQL notification channel of kill requests.
pub const KILL_CHANNEL: &str = "gatehouse_kill";

/// Tells `node` at once that a kill request for one of its sessions is
/// waiting. Does nothing on SQLite (one host: the poll is the path).
pub async fn announce_kill(store: &Store, node: &str) -> Result<(), StoreError> {
    if store.backend() != Backend::Postgres {
        return Ok(());
    }
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(KILL_CHANNEL)
        .bind(node)
        .execute(store.pool())
        .await
        .ctx("announce kill request")?;
    Ok(())
}

/// A connection listening on [`KILL_CHANNEL`].
pub struct KillListener(PgListener);

impl KillListener {
    /// Connects to the PostgreSQL database at `url` and starts listening.
    pub async fn connect(url: &str) -> Result<KillListener, sqlx::Error> {
        let mut l = PgListener::connect(url).await?;
        l.listen(KILL_CHANNEL).await?;
        Ok(KillListener(l))
    }

    /// Wakes `kick` for every announcement naming `node`, and after each
    /// reconnection (announcements made meanwhile are lost). Runs until
    /// the connection fails for good.
    pub async fn run(mut self, node: &str, kick: &Notify) -> sqlx::Error {
        loop {
            match self.0.try_recv().await {
                Ok(Some(n)) if n.payload() == node => kick.notify_one(),
                Ok(Some(_)) => {}
                Ok(None) => kick.notify_one(),
                Err(e) => return e,
            }
        }
    }
}

/// For `serve` on PostgreSQL: keeps a [`KillListener`] running, waking
/// `kick`; reconnects every few seconds after a failure (the sweeper's poll
/// keeps kills working meanwhile).
pub async fn listen_for_kills(url: String, node: String, kick: Arc<Notify>) {
    loop {
        let failed = match KillListener::connect(&url).await {
            Ok(l) => l.run(&node, &kick).await,
            Err(e) => e,
        };
        tracing::warn!("kill notifications: {failed}; polling only until reconnected");
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}
