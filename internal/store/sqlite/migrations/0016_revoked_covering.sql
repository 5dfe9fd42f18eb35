-- A CRL lists every revoked certificate of its CA (ListRevoked: serial,
-- time and reason, in serial order). The partial index of 0001 found the
-- rows; the query then read each row, whose columns after the DER span an
-- overflow page when pages are small (SQLite databases scepd creates have
-- 1 KiB pages). This one holds what the CRL needs, in its order, and is
-- still written only when a certificate is revoked.
DROP INDEX IF EXISTS certificates_revoked;
CREATE INDEX certificates_revoked ON certificates(ca_id, serial, revoked_at, revocation_reason) WHERE status = 'revoked';
