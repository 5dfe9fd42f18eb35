-- Each revocation bumps its CA's revocation generation in the transaction
-- that revokes; a CRL records the generation it covers. A CRL older than
-- its CA's generation is stale, and the next request for it signs a new
-- one, on whichever replica it arrives (issue #13).
ALTER TABLE cas ADD COLUMN revocation_gen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE crls ADD COLUMN revocation_gen INTEGER NOT NULL DEFAULT 0;
-- CRLs signed before this migration may miss revocations (renewal's
-- revoke_old did not publish): have every CA with revocations re-sign.
UPDATE cas SET revocation_gen = 1 WHERE id IN (SELECT ca_id FROM certificates WHERE status = 'revoked');
