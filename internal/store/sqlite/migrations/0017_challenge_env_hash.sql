-- profiles.challenge_env_hash is the argon2id hash (PHC string) of the
-- SCEPD_CHALLENGE value last applied to the default profile; NULL when none
-- was recorded. A start applies the environment's value only when it no
-- longer matches this hash, so a challenge rotated since (API, CLI,
-- console) is not replaced by the unchanged environment value. Rows from
-- before this migration have NULL: their first start applies as before.
ALTER TABLE profiles ADD COLUMN challenge_env_hash TEXT;
