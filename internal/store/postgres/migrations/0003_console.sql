-- Web console sessions: only the SHA-256 of the cookie value is stored.
CREATE TABLE console_sessions (
    id_hash    BYTEA PRIMARY KEY,
    token_id   TEXT NOT NULL REFERENCES tokens(id),
    csrf       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
