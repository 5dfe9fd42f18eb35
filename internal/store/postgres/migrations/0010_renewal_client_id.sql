-- Migration 0006 copied each row's transaction_id into
-- client_transaction_id. A renewal issued before it was stored under the
-- client's transactionID qualified by the serial it renews
-- ("<client ID>@<old serial>"), so that copy is not what the client sent:
-- a CertPoll for the client's ID then found the first enrollment, not the
-- renewal. Strip the qualifier where the row was backfilled (the copy is
-- unchanged) and its certificate renews exactly the serial its ID ends
-- with; a client ID that contains '@' of its own is left alone.
UPDATE transactions t
SET client_transaction_id = left(t.transaction_id, length(t.transaction_id) - length(c.renewed_serial) - 1)
FROM certificates c
WHERE c.serial = t.cert_serial AND c.renewed_serial <> ''
  AND t.client_transaction_id = t.transaction_id
  AND position('@' in t.transaction_id) > 0
  AND length(t.transaction_id) > length(c.renewed_serial) + 1
  AND right(t.transaction_id, length(c.renewed_serial) + 1) = '@' || c.renewed_serial;
