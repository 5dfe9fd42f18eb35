-- Fewer index pages written per enrollment (issue #15): each index an
-- enrollment inserts into dirties a page of its own in every commit, and
-- one on a random key (a serial, a transactionID, an object name) a
-- different page each time, which the checkpoint writes again.
--
-- No query reads these: the subject search is a substring match
-- (instr), which no index serves; certificates are never deleted and
-- their serials never change, so transactions.cert_serial is looked up
-- only by CheckIntegrity, which joins them (SQLite with an automatic
-- index built for the query).
DROP INDEX certificates_subject;
DROP INDEX transactions_cert_serial;
-- Both queries of 0013 read a few enrollment events, never an issued
-- one: the dashboard counts refused enrollments (EnrollFailures), the
-- console finds who sent a pending or refused request (RequestedBy, which
-- names outcome <> 'issued' so that this index applies). Issued
-- enrollments, nearly every event, are left out of both.
DROP INDEX audit_events_action_at;
CREATE INDEX audit_events_rejected ON audit_events(action, outcome, at) WHERE action = 'enroll' AND outcome = 'rejected';
DROP INDEX audit_events_object;
CREATE INDEX audit_events_requests ON audit_events(object, seq) WHERE action = 'enroll' AND outcome <> 'issued';
-- A request's client_transaction_id is now stored only when it differs
-- from its transaction_id (a renewal or a changed CSR under a used ID);
-- the rows without one are found by the primary key (LatestRequest's
-- second half), as rows written before 0006 always were.
DROP INDEX transactions_client_id;
CREATE INDEX transactions_client_id ON transactions(profile_id, client_transaction_id) WHERE client_transaction_id IS NOT NULL;
