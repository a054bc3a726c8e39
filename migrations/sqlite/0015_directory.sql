-- The site's directory (issue 20, contract section 12): the last copy a
-- sync read, shared by every node so that all serve the same staff. Keep
-- in step with the other backend's 0015_directory.sql. Timestamps are
-- RFC 3339 UTC text (src/store).

-- One row (id = 1). `serial` grows at every stored change, so nodes poll
-- a number, not the copy; `synced_at` is the last good sync (the copy
-- serves for `max_stale` from then); `unreachable_since` is set while the
-- directory cannot be read (one `directory.unreachable` per episode).
CREATE TABLE directory_copy (
    id                BIGINT PRIMARY KEY,
    serial            BIGINT NOT NULL,
    snapshot          TEXT   NOT NULL,
    synced_at         TEXT,
    unreachable_since TEXT,
    last_error        TEXT
);
