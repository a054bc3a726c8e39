-- Whether the policy flagged the session (a `global` server, say), as its
-- `session.start` event says: 1, 0, or NULL for rows written before this
-- column. With it, an ended row says everything the daily report reads
-- about its session, and the report need not read the session's
-- start and end events (Store::report_events). Keep in step with
-- postgres/0007_sessions_flagged.sql.
ALTER TABLE sessions ADD COLUMN flagged INTEGER;
