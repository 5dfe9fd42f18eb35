CREATE TABLE cas (
    id         TEXT PRIMARY KEY,
    cert_der   BYTEA NOT NULL,
    chain_der  BYTEA[] NOT NULL,          -- root last
    key_ref    TEXT NOT NULL,
    crl_number BIGINT NOT NULL DEFAULT 0,    -- last CRL number handed out
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE profiles (
    id                    TEXT PRIMARY KEY,
    ca_id                 TEXT NOT NULL REFERENCES cas(id),
    ra_cert_der           BYTEA NOT NULL,
    ra_key_ref            TEXT NOT NULL,
    challenge_mode        TEXT NOT NULL,
    challenge_hash        TEXT NOT NULL,
    challenge_config      TEXT NOT NULL DEFAULT '{}',  -- JSON config.Challenge: mode settings, never a secret
    challenge_prev_hash   TEXT NOT NULL DEFAULT '', -- the static challenge before a rotation...
    challenge_prev_until  TIMESTAMPTZ,              -- ...accepted until then
    challenge_ttl_seconds INTEGER NOT NULL DEFAULT 3600,
    challenge_max_pending INTEGER NOT NULL DEFAULT 100,
    allow_des             BOOLEAN NOT NULL,
    include_ca_cert       BOOLEAN NOT NULL,
    ca_mode               BOOLEAN NOT NULL DEFAULT false,
    full_chain            BOOLEAN NOT NULL DEFAULT true,
    policy                TEXT NOT NULL DEFAULT '{}',   -- JSON ca.PolicyConfig
    source                TEXT NOT NULL DEFAULT 'api',
    lifecycle             TEXT NOT NULL DEFAULT '{}',   -- JSON config.Lifecycle
    next_ra_cert_der BYTEA,                 -- the RA for the next CA during a rollover
    next_ra_key_ref  TEXT NOT NULL DEFAULT '',
    created_at            TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL
);

CREATE TABLE certificates (
    serial         TEXT PRIMARY KEY,
    profile_id     TEXT NOT NULL REFERENCES profiles(id),
    transaction_id TEXT NOT NULL,
    subject        TEXT NOT NULL,
    sans           TEXT[] NOT NULL,
    not_before     TIMESTAMPTZ NOT NULL,
    not_after      TIMESTAMPTZ NOT NULL,
    der            BYTEA NOT NULL,
    status         TEXT NOT NULL,
    ca_id          TEXT NOT NULL DEFAULT '',
    renewed_serial TEXT NOT NULL DEFAULT '',
    revoked_at     TIMESTAMPTZ,
    revocation_reason INTEGER NOT NULL DEFAULT 0,
    created_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX certificates_revoked ON certificates(ca_id) WHERE status = 'revoked';
CREATE INDEX certificates_profile ON certificates(profile_id, created_at);
CREATE INDEX certificates_not_after ON certificates(not_after);
CREATE INDEX certificates_subject ON certificates(lower(subject));

CREATE TABLE transactions (
    profile_id        TEXT NOT NULL REFERENCES profiles(id),
    transaction_id    TEXT NOT NULL,
    status            TEXT NOT NULL,
    public_key_sha256 BYTEA NOT NULL,
    csr_der           BYTEA NOT NULL,
    cert_serial       TEXT REFERENCES certificates(serial),
    challenge_hash    BYTEA,            -- a one-time challenge reserved while pending
    expires_at        TIMESTAMPTZ,      -- when a pending request lapses
    decided_by        TEXT NOT NULL DEFAULT '',
    reason            TEXT NOT NULL DEFAULT '',
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (profile_id, transaction_id)
);
CREATE INDEX transactions_pending ON transactions(profile_id, created_at) WHERE status = 'pending';
CREATE INDEX transactions_cert_serial ON transactions(cert_serial);

CREATE TABLE challenges (
    hash        BYTEA PRIMARY KEY,        -- SHA-256 of the one-time secret
    profile_id  TEXT NOT NULL REFERENCES profiles(id),
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ,
    used_serial TEXT REFERENCES certificates(serial),
    reserved_by TEXT,                   -- transactionID of a pending request holding it
    bound_to    TEXT NOT NULL DEFAULT '',  -- a CN or SAN value the request must carry
    note        TEXT NOT NULL DEFAULT ''   -- who asked for it (an MDM's device identity)
);

CREATE TABLE entities (
    profile_id TEXT NOT NULL REFERENCES profiles(id),
    username   TEXT NOT NULL,            -- the CN the certificate must carry
    code_hash  BYTEA NOT NULL,            -- SHA-256 of the enrollment code
    uses_left  INTEGER NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (profile_id, username)
);
CREATE INDEX challenges_pending ON challenges(profile_id, expires_at) WHERE used_at IS NULL;

CREATE TABLE crls (
    ca_id       TEXT NOT NULL REFERENCES cas(id),
    number      BIGINT NOT NULL,
    this_update TIMESTAMPTZ NOT NULL,
    next_update TIMESTAMPTZ NOT NULL,
    der         BYTEA NOT NULL,
    PRIMARY KEY (ca_id, number)
);

CREATE TABLE tokens (
    id         TEXT PRIMARY KEY,
    hash       BYTEA NOT NULL,            -- SHA-256 of the secret part
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    profiles   TEXT[] NOT NULL,           -- empty: all profiles
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);

CREATE TABLE audit_events (
    seq       BIGSERIAL PRIMARY KEY,
    at        TIMESTAMPTZ NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    object    TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    details   TEXT NOT NULL,              -- JSON object, as hashed
    prev_hash BYTEA NOT NULL,
    hash      BYTEA NOT NULL
);
