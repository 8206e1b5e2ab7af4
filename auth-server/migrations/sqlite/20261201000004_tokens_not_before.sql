-- Per-user "not before" watermark: access tokens issued before it (a role change, a disable, a
-- password change) no longer pass Validate or the admin API, whatever their exp.

ALTER TABLE users ADD COLUMN tokens_not_before INTEGER NOT NULL DEFAULT 0;
