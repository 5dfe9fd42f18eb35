-- The dashboard counts refused enrollments of the last days by reason
-- (EnrollFailures) without reading the whole audit trail.
CREATE INDEX audit_events_action_at ON audit_events(action, outcome, at);
