-- Private keys scepd created, sealed under a key derived from the
-- operator's passphrase (SCEPD_KEY_PASSPHRASE), so that replicas need no
-- shared key files. Key references "db:ID" name these rows.
CREATE TABLE sealed_keys (
    id         TEXT PRIMARY KEY,
    kdf        TEXT NOT NULL,
    iterations INTEGER NOT NULL,
    salt       BLOB NOT NULL,
    cipher     TEXT NOT NULL,
    sealed     BLOB NOT NULL,
    created_at TEXT NOT NULL
);
