-- Single sign-ons under way (src/web/oidc.rs, src/store/oidc.rs), shared
-- by every node so that the provider's redirect may land on any of them.
-- Keep in step with sqlite/0021_oidc_pending.sql.
--
-- A row is keyed by the SHA-256 of the `state` and holds the SHA-256 of
-- the browser's binding cookie and of the nonce, never their values. The
-- PKCE verifier must be sent to the provider, so it is kept as it is, for
-- PENDING_TTL at most: blanked when the sign-in is taken, and the row
-- deleted once expired. used_at is set once, by the callback that wins;
-- the row stays until it expires so that a replay is told apart.
CREATE TABLE oidc_pending (
    state_hash    TEXT PRIMARY KEY,
    binding_hash  TEXT NOT NULL,
    nonce_hash    TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    created_at    TEXT COLLATE "C" NOT NULL,
    expires_at    TEXT COLLATE "C" NOT NULL,
    used_at       TEXT COLLATE "C"
);
CREATE INDEX oidc_pending_expires ON oidc_pending (expires_at);
