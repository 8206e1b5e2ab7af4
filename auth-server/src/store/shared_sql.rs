//! SQL text that is identical on PostgreSQL and SQLite (throttling and audit trail), kept once.

/// Upserts a failure; `$1` key, `$2` now, `$3` window start. Returns the consecutive failure count.
pub(super) const RECORD_LOGIN_FAILURE: &str = "INSERT INTO login_throttle (throttle_key, failures, last_failure_at) \
     VALUES ($1, 1, $2) \
     ON CONFLICT (throttle_key) DO UPDATE SET \
       failures = CASE WHEN login_throttle.last_failure_at < $3 THEN 1 ELSE login_throttle.failures + 1 END, \
       last_failure_at = $2 \
     RETURNING failures";

/// `$1` key, `$2` locked until.
pub(super) const LOCK_LOGIN: &str =
    "UPDATE login_throttle SET locked_until = $2 WHERE throttle_key = $1";

/// `$1` user key, `$2` source key.
pub(super) const LOGIN_LOCKED_UNTIL: &str = "SELECT COALESCE(MAX(locked_until), 0) FROM login_throttle WHERE throttle_key = $1 OR throttle_key = $2";

/// `$1` key.
pub(super) const RESET_LOGIN_FAILURES: &str = "DELETE FROM login_throttle WHERE throttle_key = $1";

/// `$1` before, `$2` now.
pub(super) const PURGE_LOGIN_THROTTLE: &str =
    "DELETE FROM login_throttle WHERE last_failure_at < $1 AND locked_until <= $2";

/// Inserts an event; `$1`..`$7` = time, event, outcome, actor, subject, source, detail.
pub(super) const INSERT_AUDIT: &str = "INSERT INTO audit_events \
     (event_time, event, outcome, actor, subject, source, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// `$1` user id (or NULL), `$2` since (or NULL), `$3` until (or NULL), `$4` before id (or NULL), `$5` limit.
pub(super) const LIST_AUDIT: &str = "SELECT id, event_time, event, outcome, actor, subject, source, detail \
     FROM audit_events \
     WHERE ($1 IS NULL OR actor = $1 OR subject = $1) \
       AND ($2 IS NULL OR event_time >= $2) \
       AND ($3 IS NULL OR event_time < $3) \
       AND ($4 IS NULL OR id < $4) \
     ORDER BY id DESC LIMIT $5";

/// `$1` before.
pub(super) const PURGE_AUDIT: &str = "DELETE FROM audit_events WHERE event_time < $1";

/// An audit row as read.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct AuditRow {
    pub id: i64,
    pub event_time: i64,
    pub event: String,
    pub outcome: String,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub source: Option<String>,
    pub detail: Option<String>,
}

impl From<AuditRow> for super::AuditEvent {
    fn from(r: AuditRow) -> Self {
        Self {
            id: r.id,
            time: r.event_time,
            event: r.event,
            outcome: r.outcome,
            actor: r.actor,
            subject: r.subject,
            source: r.source,
            detail: r.detail,
        }
    }
}
