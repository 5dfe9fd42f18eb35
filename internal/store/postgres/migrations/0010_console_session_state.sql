-- Console sessions: the last request, for the idle timeout, and a note
-- for the next page (a message, or a minted challenge shown once),
-- encrypted by the console to the session's cookie, which the database
-- does not hold.
ALTER TABLE console_sessions ADD COLUMN last_seen_at TIMESTAMPTZ;
UPDATE console_sessions SET last_seen_at = created_at;
ALTER TABLE console_sessions ADD COLUMN flash BYTEA;
