//! The audit trail: every security event is logged (`tracing` target `audit`) and stored in the
//! database, readable through `AdminService/ListAuditEvents`. Entries never hold secrets.

use crate::state::AppState;
use crate::store::AuditEvent;

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It happened.
    Success,
    /// It was attempted and failed (wrong password, reused token, ...).
    Failure,
    /// It was refused before being attempted (throttled).
    Refused,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Refused => "refused",
        }
    }
}

/// One event to record.
#[derive(Debug, Clone)]
pub(crate) struct Entry<'a> {
    /// e.g. `login.failed`.
    pub event: &'static str,
    /// How it ended.
    pub outcome: Outcome,
    /// Who acted (user id), if known.
    pub actor: Option<&'a str>,
    /// Whom or what it concerned.
    pub subject: Option<&'a str>,
    /// Source address.
    pub source: &'a str,
    /// A short detail (never a secret).
    pub detail: Option<String>,
}

impl<'a> Entry<'a> {
    /// An event with no actor, subject or detail yet.
    pub(crate) fn new(event: &'static str, outcome: Outcome, source: &'a str) -> Self {
        Self {
            event,
            outcome,
            actor: None,
            subject: None,
            source,
            detail: None,
        }
    }

    /// Sets the actor.
    pub(crate) fn actor(mut self, actor: &'a str) -> Self {
        self.actor = Some(actor);
        self
    }

    /// Sets the subject.
    pub(crate) fn subject(mut self, subject: &'a str) -> Self {
        self.subject = Some(subject);
        self
    }

    /// Sets the detail.
    pub(crate) fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

impl AppState {
    /// Logs and stores an audit event. A storage failure is logged, not returned: the audited action
    /// has already happened.
    pub(crate) async fn audit(&self, e: Entry<'_>) {
        record(self.store.as_ref(), self.now(), e).await;
    }
}

/// Logs and stores an audit event at `now` (also for the operator commands, which have no
/// [`AppState`]). A storage failure is logged, not returned.
pub(crate) async fn record(store: &dyn crate::store::Store, now: i64, e: Entry<'_>) {
    {
        let (event, outcome, source) = (e.event, e.outcome.as_str(), e.source);
        let (actor, subject, detail) = (
            e.actor.unwrap_or("-"),
            e.subject.unwrap_or("-"),
            e.detail.as_deref().unwrap_or(""),
        );
        match e.outcome {
            Outcome::Success => {
                tracing::info!(target: "audit", event, outcome, actor, subject, source, detail)
            }
            Outcome::Failure | Outcome::Refused => {
                tracing::warn!(target: "audit", event, outcome, actor, subject, source, detail)
            }
        }
        let row = AuditEvent {
            id: 0,
            time: now,
            event: e.event.to_owned(),
            outcome: outcome.to_owned(),
            actor: e.actor.map(str::to_owned),
            subject: e.subject.map(str::to_owned),
            source: Some(e.source.to_owned()),
            detail: e.detail,
        };
        if let Err(err) = store.insert_audit(&row).await {
            tracing::error!(error = %err, event, "audit event not stored");
        }
    }
}
