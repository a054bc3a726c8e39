//! Seal rows of the audit chain (migration 0009; what they mean and how
//! keys evolve: [`crate::seal`]). The store only keeps and reads them;
//! checking them is part of [`Store::verify_chain_with`].

use sqlx::any::AnyRow;

use super::{Ctx, Store, StoreError, get};

/// One seal: node `node`'s chain up to `seq`, whose hash was `hash`, sealed
/// at `ts` in epoch `epoch` with `mac`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SealRow {
    pub node: String,
    pub epoch: i64,
    pub seq: i64,
    pub hash: String,
    pub ts: String,
    pub mac: String,
}

impl SealRow {
    fn from_row(row: &AnyRow) -> Result<SealRow, StoreError> {
        Ok(SealRow {
            node: get(row, "node")?,
            epoch: get(row, "epoch")?,
            seq: get(row, "seq")?,
            hash: get(row, "hash")?,
            ts: get(row, "ts")?,
            mac: get(row, "mac")?,
        })
    }

    pub fn fields(&self) -> crate::seal::SealFields<'_> {
        crate::seal::SealFields {
            node: &self.node,
            epoch: self.epoch,
            seq: self.seq,
            hash: &self.hash,
            ts: &self.ts,
        }
    }
}

impl Store {
    /// Writes a seal; a second seal of the same node and epoch is refused.
    pub async fn insert_seal(&self, s: &SealRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_seals (node, epoch, seq, hash, ts, mac) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&s.node)
        .bind(s.epoch)
        .bind(s.seq)
        .bind(&s.hash)
        .bind(&s.ts)
        .bind(&s.mac)
        .execute(self.pool())
        .await
        .ctx("write audit seal")?;
        Ok(())
    }

    /// The seal of `node` at `epoch`, if any.
    pub async fn seal_at(&self, node: &str, epoch: i64) -> Result<Option<SealRow>, StoreError> {
        let row = sqlx::query(
            "SELECT node, epoch, seq, hash, ts, mac FROM audit_seals \
             WHERE node = $1 AND epoch = $2",
        )
        .bind(node)
        .bind(epoch)
        .fetch_optional(self.pool())
        .await
        .ctx("read audit seal")?;
        row.as_ref().map(SealRow::from_row).transpose()
    }

    /// Every node's last seal, by node.
    pub async fn last_seals(&self) -> Result<Vec<SealRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.node, s.epoch, s.seq, s.hash, s.ts, s.mac FROM audit_seals s \
             WHERE s.epoch = (SELECT MAX(t.epoch) FROM audit_seals t WHERE t.node = s.node) \
             ORDER BY s.node",
        )
        .fetch_all(self.pool())
        .await
        .ctx("read last audit seals")?;
        rows.iter().map(SealRow::from_row).collect()
    }

    /// A node's chain head: last `seq` and hash (`None` before its first event).
    pub async fn chain_head(&self, node: &str) -> Result<Option<(i64, String)>, StoreError> {
        let row = sqlx::query("SELECT seq, hash FROM audit_heads WHERE node = $1")
            .bind(node)
            .fetch_optional(self.pool())
            .await
            .ctx("read audit chain head")?;
        match row {
            Some(r) => Ok(Some((get(&r, "seq")?, get(&r, "hash")?))),
            None => Ok(None),
        }
    }

    /// Every node's chain head, by node.
    pub async fn chain_heads(&self) -> Result<Vec<(String, i64, String)>, StoreError> {
        let rows = sqlx::query("SELECT node, seq, hash FROM audit_heads ORDER BY node")
            .fetch_all(self.pool())
            .await
            .ctx("read audit chain heads")?;
        rows.iter()
            .map(|r| Ok((get(r, "node")?, get(r, "seq")?, get(r, "hash")?)))
            .collect()
    }

    /// Every seal inside the caller's snapshot, by node then epoch.
    pub(super) async fn all_seals(
        conn: &mut sqlx::AnyConnection,
    ) -> Result<Vec<SealRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT node, epoch, seq, hash, ts, mac FROM audit_seals ORDER BY node, epoch",
        )
        .fetch_all(conn)
        .await
        .ctx("read audit seals")?;
        rows.iter().map(SealRow::from_row).collect()
    }
}
