-- Listings walk an index newest-first and stop at the page size instead of
-- sorting every certificate: all (the console, the API, the CLI), per
-- profile, and revoked ones.
CREATE INDEX certificates_created ON certificates(created_at, serial);
DROP INDEX certificates_profile;
CREATE INDEX certificates_profile ON certificates(profile_id, created_at, serial);
CREATE INDEX certificates_revoked_created ON certificates(created_at, serial) WHERE status = 'revoked';
