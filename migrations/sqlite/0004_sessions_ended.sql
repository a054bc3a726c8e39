-- Sessions by end time, for the daily report's "sessions overlapping the
-- day": those that began before the day are found by when they ended (or
-- by having no end yet), instead of among every session ever started
-- before the day. Keep in step with postgres/0004_sessions_ended.sql.
CREATE INDEX sessions_ended ON sessions (ended_at);
