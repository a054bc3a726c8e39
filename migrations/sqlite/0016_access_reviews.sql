-- Access reviews (issue 21 item 6, contract section 14), shared by every
-- node. Keep in step with the other backend's 0016_access_reviews.sql.
-- Timestamps are RFC 3339 UTC text (src/store). Both tables only grow:
-- they are the history of who certified or suspended what; the state of
-- an entitlement is its latest row of each (src/store/reviews.rs).

-- An auditor certified that USERNAME may keep ACCOUNT on SERVER.
CREATE TABLE access_certifications (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    username     TEXT NOT NULL,
    server       TEXT NOT NULL,
    account      TEXT NOT NULL,
    certified_at TEXT NOT NULL,
    certified_by TEXT NOT NULL,
    note         TEXT
);
CREATE INDEX access_certifications_key
    ON access_certifications (username, server, account, certified_at);

-- An auditor suspended it; a later certification lifts the suspension.
CREATE TABLE access_suspensions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    username     TEXT NOT NULL,
    server       TEXT NOT NULL,
    account      TEXT NOT NULL,
    suspended_at TEXT NOT NULL,
    suspended_by TEXT NOT NULL,
    reason       TEXT NOT NULL
);
CREATE INDEX access_suspensions_key
    ON access_suspensions (username, server, account, suspended_at);
