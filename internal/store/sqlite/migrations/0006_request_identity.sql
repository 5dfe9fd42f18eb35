-- A transaction row is one request. Its transaction_id is the client's
-- transactionID, or, for a request that reused one (a renewal keeping its
-- key, a retransmission with a changed CSR), that ID qualified so that it
-- never collides with the earlier request. client_transaction_id keeps
-- what the client sent, so that CertPoll finds the newest request of that
-- transactionID and key. signer_key_sha256 is the key that signed the
-- request (an old certificate's for a renewal), which may poll for it as
-- well as the CSR's key. renews_serial is the certificate a renewal
-- renews (a renewal held for approval is issued as one).
ALTER TABLE transactions ADD COLUMN client_transaction_id TEXT;
ALTER TABLE transactions ADD COLUMN signer_key_sha256 BLOB;
ALTER TABLE transactions ADD COLUMN renews_serial TEXT NOT NULL DEFAULT '';
UPDATE transactions SET client_transaction_id = transaction_id;
CREATE INDEX transactions_client_id ON transactions(profile_id, client_transaction_id);
