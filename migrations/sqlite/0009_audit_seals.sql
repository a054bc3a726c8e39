-- Forward-secure seals of the audit chain (src/seal.rs). Keep in step with
-- postgres/0009_audit_seals.sql.
--
-- One row per node and epoch: the last `seq` the epoch covers, the chain
-- hash at that seq, when, and the HMAC-SHA256 of those fields under the
-- epoch's key. The keys are never here: each node keeps its current key
-- in a file (`[audit] seal_key`) and evolves it after each seal, and the
-- site keeps the first key offline (`gatehouse audit seal-key`).
CREATE TABLE audit_seals (
    node   TEXT    NOT NULL,
    epoch  INTEGER NOT NULL,
    seq    INTEGER NOT NULL,
    hash   TEXT    NOT NULL,
    ts     TEXT    NOT NULL,
    mac    TEXT    NOT NULL,
    PRIMARY KEY (node, epoch)
);
