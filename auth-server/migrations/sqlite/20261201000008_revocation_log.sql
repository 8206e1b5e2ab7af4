-- The revocation log: every change that ends tokens before their expiry appends a row in the same
-- transaction, with a strictly increasing `seq` whose order is the commit order (SQLite serializes
-- writers with `BEGIN IMMEDIATE`; AUTOINCREMENT never reuses a pruned `seq`), so a reader that has passed `seq` never sees a
-- smaller one commit later). Replicas and `WatchRevocations` follow it from their last `seq`.
-- `kind`: 'session' (target = sid), 'subject' (target = sub, tokens with iat < not_before), 'key'
-- (target = kid), 'keys' (the signing keys changed: reload them; not streamed).
-- `expires_at`: when no token the row concerns can still be valid; housekeeping prunes the row then.

CREATE TABLE revocations (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL CHECK (kind IN ('session', 'subject', 'key', 'keys')),
    target      TEXT NOT NULL,
    not_before  BIGINT,
    expires_at  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX revocations_expires_at ON revocations (expires_at);

-- The highest `seq` pruned so far: a watcher that resumes from an older one gets a snapshot.
CREATE TABLE revocation_horizon (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    pruned_through  BIGINT NOT NULL
);
INSERT INTO revocation_horizon (id, pruned_through) VALUES (1, 0);

-- What ended tokens before the log existed and may still matter: sessions revoked, and per-user
-- watermarks, within the longest access-token lifetime (1 day) plus the largest leeway (300 s).
INSERT INTO revocations (kind, target, not_before, expires_at, created_at)
SELECT 'session', id, NULL, revoked_at + 86700, revoked_at FROM sessions
 WHERE revoked_at IS NOT NULL AND revoked_at + 86700 > CAST(strftime('%s', 'now') AS INTEGER)
 ORDER BY revoked_at, id;
INSERT INTO revocations (kind, target, not_before, expires_at, created_at)
SELECT 'subject', id, tokens_not_before, tokens_not_before + 86700, tokens_not_before FROM users
 WHERE tokens_not_before + 86700 > CAST(strftime('%s', 'now') AS INTEGER)
 ORDER BY tokens_not_before, id;
