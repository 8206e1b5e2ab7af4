-- Throttling by (account, source), account and source, with locks that re-arm only after the failures
-- that earn them: how many locks a key earned in the current window, and how many attempts its
-- current lock refused (for an aggregated audit trail).

ALTER TABLE login_throttle ADD COLUMN level INTEGER NOT NULL DEFAULT 0;
ALTER TABLE login_throttle ADD COLUMN refused INTEGER NOT NULL DEFAULT 0;
