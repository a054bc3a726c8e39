-- seen_sources was never written: the daily report judges "first-seen
-- source" from the 90 days of logins before the day (0003_login_index),
-- which also answers it for any past day. Dropped rather than left empty.
DROP TABLE IF EXISTS seen_sources;
