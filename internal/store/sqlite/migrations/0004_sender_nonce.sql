-- The senderNonce of the message that created a transaction. A nonce seen
-- again under another transactionID is a replay (RFC 8894 §3.2.1.5 makes
-- it unique per message); retransmissions keep their transactionID and are
-- answered from the stored row before this column matters.
ALTER TABLE transactions ADD COLUMN sender_nonce BLOB;
CREATE UNIQUE INDEX transactions_sender_nonce ON transactions(sender_nonce);
