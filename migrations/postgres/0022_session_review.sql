-- Recordings waiting for review as an index (issue 21): the review state
-- of a session's recordings, kept beside the row so that the Today page
-- and the sessions list's review filter read index ranges instead of the
-- recordings folder. Keep in step with sqlite/0022_session_review.sql.
--
-- NULL: nothing recorded (yet). Once a recording of the session begins:
-- 'unreviewed' while any of its recordings has no review, else 'flagged'
-- when the latest review of any of them flagged it, else 'reviewed' (the
-- review states of src/recording/catalog.rs). The files beside the casts
-- remain the evidence (ID.review.json); this column is their index, set
-- when a recording begins and when a review is written, and reconciled
-- from the files when `serve` starts (recording::review::reconcile), which
-- also fills it for the recordings made before this migration.
--
-- Not the `flagged` column (0007): that one says the policy flagged the
-- session when it began; this one is what reviewers said afterwards.
ALTER TABLE sessions ADD COLUMN review TEXT;

-- "Recorded sessions waiting for review, oldest first": one range of this
-- partial index, its size the number waiting, whatever the number of
-- sessions. Queries name the state as this literal.
CREATE INDEX sessions_waiting_review ON sessions (started_at, id)
    WHERE review = 'unreviewed';
