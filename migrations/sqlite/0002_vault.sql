-- The credential vault (issue 5): target credentials, encrypted under the
-- master key (AES-256-GCM, see src/vault/crypto.rs). Timestamps are TEXT,
-- RFC 3339 UTC with microseconds (fixed width, so they sort as text).
-- Flags are integers 0/1 so that SQLite and PostgreSQL read back alike.

CREATE TABLE vault_credentials (
    server             TEXT    NOT NULL,
    account            TEXT    NOT NULL,
    kind               TEXT    NOT NULL CHECK (kind IN ('password', 'private-key')),
    -- base64(version || nonce || ciphertext || tag), bound to (server, account, kind)
    ciphertext         TEXT    NOT NULL,
    third_party        INTEGER NOT NULL DEFAULT 0,
    -- the policy verdict taken when the secret was set: reports never decrypt
    strength_ok        INTEGER NOT NULL DEFAULT 1,
    strength_reasons   TEXT    NOT NULL DEFAULT '[]',   -- JSON array of strings
    -- private keys: algorithm and SHA-256 fingerprint of the public half
    key_info           TEXT,
    created_at         TEXT    NOT NULL,
    -- when the secret last changed (set, generated or rotated)
    rotated_at         TEXT    NOT NULL,
    last_used_at       TEXT,
    -- a rotation's new password, kept until it is verified on the target and
    -- committed, so that a crash in between cannot lose it
    pending_ciphertext TEXT,
    pending_since      TEXT,
    PRIMARY KEY (server, account)
);

-- Salted Argon2id hashes of the passwords a row has had, to refuse reuse of
-- the last N. Never the passwords themselves.
CREATE TABLE vault_history (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    server     TEXT NOT NULL,
    account    TEXT NOT NULL,
    hash       TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX vault_history_row ON vault_history (server, account, id);

-- One row: a known value sealed under the current master key. Every write
-- locks and checks it first, so a wrong key is refused before it writes and
-- a writer cannot interleave with `vault rekey`.
CREATE TABLE vault_state (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    key_check TEXT NOT NULL
);
