//! The sealer: writes this node's audit seal rows and evolves its seal key
//! (`serve` every `[audit] seal_interval` and at shutdown, `gatehouse audit
//! seal`). The maths and the key file are in `seal`; the rows in the store.
//! May import: seal, store (a workflow above both).

use std::path::{Path, PathBuf};

use crate::seal::{SealError, seal_mac, seal_mac_ok, with_keys};
use crate::store::{SealRow, Store, StoreError, now_utc, ts_text};

/// Why a seal could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SealerError {
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Seals this node's chain up to its head if anything is new since the
/// last seal: writes the seal row for the key file's epoch, then evolves
/// the key and rewrites the file. Returns the seal written, if any.
///
/// A crash between the row and the file leaves the file one epoch behind
/// a row it made; the next call sees that row (its MAC checks under the
/// file's key) and evolves past it first.
pub async fn seal_now(store: &Store, path: &Path) -> Result<Option<SealRow>, SealerError> {
    let node = store.node().to_string();
    let n = node.clone();
    let (ks, mut file) = with_keys(path, move |ks| ks.read_or_create(&n)).await?;
    if let Some(done) = store.seal_at(&node, file.epoch).await? {
        if !seal_mac_ok(&file.key, &done.fields(), &done.mac) {
            // Not ours: a row for an epoch this node has not sealed yet
            // was put there by someone else. Verification names it.
            tracing::error!(
                epoch = file.epoch,
                "audit seal: the database holds a seal this node did not write"
            );
            return Err(SealerError::Store(StoreError::Corrupt(format!(
                "audit seal of node {node} epoch {} was not written by this node",
                file.epoch
            ))));
        }
        file.key = file.key.evolve();
        file.epoch += 1;
        file.sealed = file.sealed.max(done.seq);
        ks.write(&file)?;
    }
    let Some((seq, hash)) = store.chain_head(&node).await? else {
        return Ok(None);
    };
    if seq <= file.sealed {
        return Ok(None);
    }
    let ts = ts_text(now_utc())?;
    let mut row = SealRow {
        node,
        epoch: file.epoch,
        seq,
        hash,
        ts,
        mac: String::new(),
    };
    row.mac = seal_mac(&file.key, &row.fields());
    store.insert_seal(&row).await?;
    file.key = file.key.evolve();
    file.epoch += 1;
    file.sealed = seq;
    tokio::task::spawn_blocking(move || ks.write(&file))
        .await
        .map_err(|e| SealError::Task(e.to_string()))??;
    Ok(Some(row))
}

/// `serve`'s sealer: one epoch every `every`, sealing only when there
/// are new events. A failure is logged and retried at the next tick (the
/// key does not evolve without its seal row).
pub async fn run_sealer(store: Store, path: PathBuf, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match seal_now(&store, &path).await {
            Ok(Some(row)) => {
                tracing::debug!(epoch = row.epoch, seq = row.seq, "audit chain sealed")
            }
            Ok(None) => {}
            Err(e) => tracing::error!("cannot seal the audit chain: {e}"),
        }
    }
}
