-- RA mode: a profile may obtain its certificates from an upstream CA.
-- profiles.upstream is its settings as JSON ('{}' for a local CA);
-- certificates.upstream names the upstream that issued one ('' for a
-- local CA's).
ALTER TABLE profiles ADD COLUMN upstream TEXT NOT NULL DEFAULT '{}';
ALTER TABLE certificates ADD COLUMN upstream TEXT NOT NULL DEFAULT '';
-- transactions.upstream_poll is the token a request held PENDING by the
-- upstream is polled with (NULL otherwise).
ALTER TABLE transactions ADD COLUMN upstream_poll BYTEA;
