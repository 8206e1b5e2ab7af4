-- Usernames follow RFC 8265 UsernameCaseMapped with full case folding, and no two accounts may look
-- alike: the UTS #39 skeleton of each canonical username is unique. SQL cannot compute skeletons, so
-- the column starts empty and `migrate` fills it (and recomputes the canonical key) in Rust; an
-- account whose skeleton is an older account's keeps NULL (NULLs do not collide) and is logged.

ALTER TABLE users ADD COLUMN username_skeleton TEXT;
CREATE UNIQUE INDEX users_username_skeleton_uniq ON users (username_skeleton);

-- Attempted usernames are no longer stored verbatim (a password typed into the username field would
-- sit at rest). Until now, a failed login at a name with no account stored that name as the subject
-- of `login.failed` and `login.throttled`: such subjects become 'unknown:redacted' (a name that is an
-- account's display name becomes that account's id; user and session ids stay), and throttle rows
-- keyed by a name are dropped (their counters restart, now keyed by a keyed hash of the name).
UPDATE audit_events
   SET subject = COALESCE(
       (SELECT MIN(u.id) FROM users u WHERE u.username = audit_events.subject), 'unknown:redacted')
 WHERE event IN ('login.failed', 'login.throttled')
   AND subject IS NOT NULL
   AND subject NOT IN (SELECT id FROM users)
   AND NOT (length(subject) = 36 AND substr(subject, 9, 1) = '-' AND substr(subject, 14, 1) = '-'
            AND substr(subject, 19, 1) = '-' AND substr(subject, 24, 1) = '-');
DELETE FROM login_throttle WHERE throttle_key LIKE 'user:%' OR throttle_key LIKE 'pair:%';
