-- The time index carries what the daily report filters on, so that the
-- day's range is filtered inside the index: the report reads the events
-- of some kinds and leaves out the session events of settled sessions
-- (Store::report_events). With (ts) alone, every event of the day cost a
-- table look-up for its kind, a million look-ups for a million events.
-- `id` follows `ts` so that the index still gives the report's order
-- (ts, id) without a sort. Keep in step with sqlite/0008_audit_ts_covering.sql.
DROP INDEX audit_events_ts;
CREATE INDEX audit_events_ts ON audit_events (ts, id, kind, session_id);
