-- Login throttling shared by all replicas, and the audit trail.

CREATE TABLE login_throttle (
    -- "user:<canonical username>" or "source:<ip>"
    throttle_key    TEXT PRIMARY KEY,
    failures        INTEGER NOT NULL,
    last_failure_at INTEGER NOT NULL,
    locked_until    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    event_time INTEGER NOT NULL,
    event      TEXT    NOT NULL,
    outcome    TEXT    NOT NULL,
    actor      TEXT,
    subject    TEXT,
    source     TEXT,
    detail     TEXT
);

CREATE INDEX audit_events_time_idx ON audit_events (event_time);
CREATE INDEX audit_events_actor_idx ON audit_events (actor, id);
CREATE INDEX audit_events_subject_idx ON audit_events (subject, id);
