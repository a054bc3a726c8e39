-- Second factors (issue 19, contract section 11), shared by every node so
-- that any node verifies any user's code. Keep in step with the other
-- backend's 0014_mfa.sql. Timestamps are RFC 3339 UTC text (src/store).

-- One enrolled factor per user and kind (`totp`). The secret is sealed
-- under the vault's master key (AES-256-GCM with a row binding naming the
-- user, src/identity/totp.rs), never stored or shown in the clear.
CREATE TABLE mfa_factors (
    username     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    secret       TEXT NOT NULL,
    enrolled_at  TEXT NOT NULL,
    last_used_at TEXT,
    PRIMARY KEY (username, kind)
);

-- The last TOTP time step accepted per user: a code is accepted only for
-- a later step, so a code works once, on every node (one conditional
-- upsert decides, whichever node asks first).
CREATE TABLE mfa_totp_steps (
    username TEXT   PRIMARY KEY,
    step     BIGINT NOT NULL
);

-- Recovery codes: salted SHA-256 hashes, single use.
CREATE TABLE mfa_recovery_codes (
    username TEXT   NOT NULL,
    idx      BIGINT NOT NULL,
    hash     TEXT   NOT NULL,
    used_at  TEXT,
    PRIMARY KEY (username, idx)
);

-- Approvals a good code earns: the same user, key fingerprint and source
-- address skip the code until `until`.
CREATE TABLE mfa_cache (
    username    TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    source      TEXT NOT NULL,
    until       TEXT NOT NULL,
    PRIMARY KEY (username, fingerprint, source)
);

-- `gatehouse mfa allow-enroll USER` under `mfa_self_enroll = false`.
CREATE TABLE mfa_allow_enroll (
    username TEXT PRIMARY KEY,
    until    TEXT NOT NULL
);
