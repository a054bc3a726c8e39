-- The bastion's user CA (issue 17 item 17), kept in the database so that
-- every node sharing it signs target certificates with the same key: one
-- row, the OpenSSH Ed25519 private key sealed under the vault's master key
-- (AES-256-GCM with a row binding, src/vault/crypto.rs), re-sealed by
-- `vault rekey`. Keep in step with the other backend's 0013_user_ca.sql.
CREATE TABLE user_ca (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    ciphertext TEXT    NOT NULL,
    -- `generated`, or `imported` from the `[ca] key` file of the first node
    origin     TEXT    NOT NULL,
    -- RFC 3339 UTC
    created_at TEXT    NOT NULL
);
