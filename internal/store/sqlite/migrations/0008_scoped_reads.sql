-- Reads limited to profiles: each audit event carries the profile it
-- concerns (store.AuditProfile: the "profile" detail, else an object
-- "profile:ID"), so a token limited to profiles is served its events by
-- the query, pages and counts included.
ALTER TABLE audit_events ADD COLUMN profile TEXT NOT NULL DEFAULT '';
UPDATE audit_events SET profile = COALESCE(
    NULLIF(json_extract(details, '$.profile'), ''),
    CASE WHEN object LIKE 'profile:%' THEN substr(object, 9) END,
    '');
CREATE INDEX audit_events_profile ON audit_events(profile, seq);

-- Console sessions now keep only the SHA-256 of their CSRF token; sessions
-- holding it in clear are ended (their users sign in again).
DELETE FROM console_sessions;
