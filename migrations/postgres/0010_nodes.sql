-- Node heartbeats (issue 17 items 20-22). Each serving node writes its
-- row every few seconds, with the database's clock, so nodes with skewed
-- clocks still agree on who went silent: a node whose `last_seen` is
-- older than `[server] node_lost_after` is lost, and another node closes
-- its sessions ("node lost"). `beat` counts the heartbeats of the run
-- that began at `started_at`. Keep in step with sqlite/0010_nodes.sql.
CREATE TABLE nodes (
    node        TEXT PRIMARY KEY,
    started_at  TEXT COLLATE "C" NOT NULL,
    last_seen   TEXT COLLATE "C" NOT NULL,
    beat        BIGINT NOT NULL DEFAULT 0
);

-- When a live session last moved a byte, written with its byte counts a
-- few times a minute (Store::session_progress), so that a session whose
-- node died is closed with what was last known rather than 0/0 bytes.
ALTER TABLE sessions ADD COLUMN last_activity TEXT COLLATE "C";
