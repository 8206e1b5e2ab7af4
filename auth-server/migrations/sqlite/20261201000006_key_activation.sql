-- When a signing key became current, so automatic rotation (AUTH_KEY_ROTATION_INTERVAL) knows when
-- the current key is due. A key's created_at is when it was first published (as the next key).
-- Keys that became current before this migration count from their creation: an old deployment's
-- first automatic rotation may come early, never late.

ALTER TABLE signing_keys ADD COLUMN activated_at INTEGER;
UPDATE signing_keys SET activated_at = created_at WHERE status IN ('current', 'retired');
