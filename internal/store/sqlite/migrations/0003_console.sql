-- Web console sessions: only the SHA-256 of the cookie value is stored.
CREATE TABLE console_sessions (
    id_hash    BLOB PRIMARY KEY,
    token_id   TEXT NOT NULL REFERENCES tokens(id),
    csrf       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
