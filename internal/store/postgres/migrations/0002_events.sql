-- Event delivery: each configured sink follows the audit log with a
-- cursor; one replica at a time holds a sink's lease.
CREATE TABLE event_sinks (
    name          TEXT PRIMARY KEY,
    delivered_seq BIGINT NOT NULL,      -- last audit seq handed to the sink
    holder        TEXT NOT NULL DEFAULT '',
    lease_until   TIMESTAMPTZ NOT NULL DEFAULT 'epoch'
);

-- Expiry notices raised, one per certificate and threshold.
CREATE TABLE expiry_notices (
    serial         TEXT NOT NULL REFERENCES certificates(serial),
    before_seconds BIGINT NOT NULL,
    at             TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (serial, before_seconds)
);

CREATE INDEX certificates_renewed ON certificates(renewed_serial) WHERE renewed_serial <> '';
