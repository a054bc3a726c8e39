-- Successful logins by time, for the daily report's login history ("first
-- login from this address", "no login for 90 days"): the report reads who
-- logged in from where in the 90 days before the day from this index alone,
-- instead of every audit event of those days. Partial, so only auth.success
-- rows pay for it on append; queries must name the kind as this literal. `kind`
-- is in the key too so that SQLite answers from the index alone (covering).
-- Keep in step with sqlite/0003_login_index.sql.
CREATE INDEX audit_events_logins ON audit_events (kind, ts, username, source)
    WHERE kind = 'auth.success';
