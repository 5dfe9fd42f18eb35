-- RA mode: a profile may obtain its certificates from an upstream CA.
-- profiles.upstream is its settings as JSON ('{}' for a local CA);
-- certificates.upstream names the upstream that issued one ('' for a
-- local CA's).
ALTER TABLE profiles ADD COLUMN upstream TEXT NOT NULL DEFAULT '{}';
ALTER TABLE certificates ADD COLUMN upstream TEXT NOT NULL DEFAULT '';
