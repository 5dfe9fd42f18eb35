-- Keys whose certificate was revoked for key compromise (reason 1): no
-- new certificate is issued for them, whatever the request (another
-- transactionID, another subject, another profile). key_sha256 is the
-- SHA-256 of the key's SubjectPublicKeyInfo as scepd encodes it; serial
-- names the certificate whose revocation recorded it.
CREATE TABLE compromised_keys (
    key_sha256 BYTEA PRIMARY KEY,
    serial     TEXT NOT NULL,
    at         TIMESTAMPTZ NOT NULL
);
