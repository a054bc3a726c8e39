-- The console at scale (issue 21): the sessions list by duration and the
-- Today page's first-seen check each walk one index range.
-- Keep in step with postgres/0020_console_scale.sql.

-- A session's duration in milliseconds, written when it ends (NULL while
-- live): the list by duration walks these indexes in order instead of
-- computing and sorting every row's duration.
ALTER TABLE sessions ADD COLUMN duration_ms BIGINT;
UPDATE sessions
   SET duration_ms = CAST(ROUND((julianday(ended_at) - julianday(started_at)) * 86400000.0) AS INTEGER)
 WHERE ended_at IS NOT NULL;
CREATE INDEX sessions_duration ON sessions (duration_ms, id);
CREATE INDEX sessions_user_duration ON sessions (username, duration_ms, id);
CREATE INDEX sessions_server_duration ON sessions (server, duration_ms, id);

-- Successful logins by (user, source): "was this pair seen in the 90 days
-- before today?" is one index probe per pair the day saw, not a read of
-- the 90 days' logins. Partial, as audit_events_logins (0003): queries name
-- the kind as this literal.
CREATE INDEX audit_events_login_pairs ON audit_events (username, source, ts)
    WHERE kind = 'auth.success';

-- Users locked out now: the lockouts table keeps a row for every name that
-- ever failed to log in (sprayed names too); the Today page reads only the
-- rows locked past now.
CREATE INDEX lockouts_until ON lockouts (locked_until);
