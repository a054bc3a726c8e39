-- The console's Today page counts pending grant requests on every load:
-- with this index that is one index range, not a scan of every grant
-- ever requested. Keep in step with postgres/0019_console.sql.
CREATE INDEX grants_state ON grants (state, id);
