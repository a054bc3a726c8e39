-- Gatehouse schema, SQLite flavour. Keep in step with postgres/0001_init.sql:
-- the store runs the same SQL on both, through sqlx's Any driver.
--
-- Conventions (both backends):
--   * timestamps are TEXT, RFC 3339 UTC with exactly six fractional digits
--     (`2026-01-02T03:04:05.000006Z`), so they sort and compare lexically;
--   * integers are 64-bit (INTEGER here, BIGINT on PostgreSQL);
--   * flags are integers 0/1 (the Any driver has no portable boolean column);
--   * lists are JSON text.

-- Audit events: append-only, a hash chain per bastion node (`node`, `seq`
-- 1, 2, 3..). `hash` is SHA-256 over the event's fields and `prev_hash`.
CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    ts          TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    username    TEXT,
    server      TEXT,
    account     TEXT,
    session_id  TEXT,
    source      TEXT,
    detail      TEXT    NOT NULL,
    node        TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    prev_hash   TEXT    NOT NULL,
    hash        TEXT    NOT NULL,
    UNIQUE (node, seq)
);
CREATE INDEX audit_events_ts ON audit_events (ts);

-- The head of each node's chain: appends lock and advance this row, and
-- verification compares it with the last event (a removed tail shows here).
CREATE TABLE audit_heads (
    node  TEXT    PRIMARY KEY,
    seq   INTEGER NOT NULL,
    hash  TEXT    NOT NULL
);

CREATE TABLE sessions (
    id              TEXT    PRIMARY KEY,
    username        TEXT    NOT NULL,
    server          TEXT,
    account         TEXT,
    source          TEXT    NOT NULL,
    node            TEXT    NOT NULL,
    started_at      TEXT    NOT NULL,
    ended_at        TEXT,
    mode            TEXT,
    grant_id        INTEGER,
    recorded        INTEGER NOT NULL DEFAULT 0,
    bytes_up        INTEGER NOT NULL DEFAULT 0,
    bytes_down      INTEGER NOT NULL DEFAULT 0,
    exit_status     INTEGER,
    end_reason      TEXT,
    kill_requested  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sessions_node_live ON sessions (node, ended_at);
CREATE INDEX sessions_started ON sessions (started_at);

-- Consecutive authentication failures and lockouts, shared by all nodes.
CREATE TABLE lockouts (
    username      TEXT    PRIMARY KEY,
    failures      INTEGER NOT NULL DEFAULT 0,
    last_failure  TEXT,
    locked_until  TEXT
);

CREATE TABLE grants (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    username       TEXT    NOT NULL,
    server         TEXT    NOT NULL,
    accounts       TEXT    NOT NULL,
    ports          TEXT    NOT NULL,
    from_cidrs     TEXT    NOT NULL,
    reason         TEXT    NOT NULL,
    state          TEXT    NOT NULL,
    requested_by   TEXT    NOT NULL,
    approved_by    TEXT,
    decided_by     TEXT,
    decision_note  TEXT,
    requested_at   TEXT    NOT NULL,
    decided_at     TEXT,
    duration_secs  INTEGER,
    expires_at     TEXT
);
CREATE INDEX grants_user ON grants (username);
CREATE INDEX grants_state_expires ON grants (state, expires_at);

-- Source addresses each user has been seen from (first-seen detection).
CREATE TABLE seen_sources (
    username    TEXT NOT NULL,
    source      TEXT NOT NULL,
    first_seen  TEXT NOT NULL,
    PRIMARY KEY (username, source)
);
