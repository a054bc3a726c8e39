-- The review console (src/web). Keep in step with postgres/0006_web.sql.
--
-- One-time login links: only the SHA-256 of the token is stored, so a
-- database dump yields no usable link; any node can redeem a link another
-- node issued. used_at is set once, by the redemption that wins.
CREATE TABLE web_links (
    token_hash  TEXT PRIMARY KEY,
    username    TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT
);
CREATE INDEX web_links_expires ON web_links (expires_at);
-- Browser sessions: the cookie carries a random token, the row its
-- SHA-256 and the per-session CSRF token. A cookie without a row is
-- refused, so a forged cookie opens nothing.
CREATE TABLE web_sessions (
    token_hash  TEXT PRIMARY KEY,
    username    TEXT NOT NULL,
    csrf        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    last_seen   TEXT NOT NULL,
    ended_at    TEXT
);
-- Why an administrator ended a session: shown on the user's terminal.
ALTER TABLE sessions ADD COLUMN kill_reason TEXT;
-- The console's sessions list: newest first, keyset-paginated on
-- (started_at, id), optionally for one user or one server.
CREATE INDEX sessions_started_id ON sessions (started_at, id);
-- It serves every query sessions_started (0001) served, so that one goes.
DROP INDEX sessions_started;
CREATE INDEX sessions_user_started ON sessions (username, started_at, id);
CREATE INDEX sessions_server_started ON sessions (server, started_at, id);
-- A session's detail page lists its audit events.
CREATE INDEX audit_events_session ON audit_events (session_id, id);
