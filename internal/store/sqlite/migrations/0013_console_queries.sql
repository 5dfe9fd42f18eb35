-- The dashboard counts refused enrollments of the last days by reason
-- (EnrollFailures) without reading the whole audit trail.
CREATE INDEX audit_events_action_at ON audit_events(action, outcome, at);
-- The console finds who sent a request (RequestedBy) by its object.
CREATE INDEX audit_events_object ON audit_events(object, seq);
