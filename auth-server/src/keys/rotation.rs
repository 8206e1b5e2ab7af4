//! When signing keys rotate: the schedule (`AUTH_KEY_ROTATION_INTERVAL`), the pre-publication rule
//! (`AUTH_KEY_PREPUBLISH`: the next key is in the JWKS at least this long before it signs, so the
//! caches of Envoy, istiod and downstream verifiers hold it in time), and the background task that
//! performs due rotations. Every replica runs the task; the store's conditional update lets exactly
//! one of them perform each rotation, and the others pick it up at their next key reload.

use std::sync::Arc;
use std::time::Duration;

use crate::audit::{Entry, Outcome};
use crate::store::KeyRotation;

/// The rotation schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationPolicy {
    /// Seconds a key stays current before it is rotated automatically; `None`: only on request.
    pub interval: Option<i64>,
    /// Seconds the next key must have been published before it may become current.
    pub prepublish: i64,
}

impl RotationPolicy {
    /// No automatic rotation and no pre-publication wait.
    pub const MANUAL: RotationPolicy = RotationPolicy {
        interval: None,
        prepublish: 0,
    };
}

/// Why a rotation is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The schedule: only when the current key is due and the next one published long enough.
    Scheduled,
    /// An operator (`RotateSigningKey`, `auth-server keys rotate`): at once, if the next key has been
    /// published for the pre-publication time, or regardless of it when `force`d (a compromised
    /// key: verifiers that have not fetched the new key refuse its tokens until they refetch).
    Requested {
        /// Skip the pre-publication rule.
        force: bool,
    },
}

/// When the keys of this replica last changed, as read from the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct KeyTimes {
    /// When the current key became current.
    pub(crate) current_since: i64,
    /// When the next key was first published.
    pub(crate) next_since: i64,
}

impl RotationPolicy {
    /// The conditions of a rotation at `now`, or `None` when it is not allowed: a scheduled rotation
    /// that is not due yet (or with no schedule), or a requested one whose next key is too young.
    /// The store checks the conditions again in its transaction, against the keys as they are then.
    pub(crate) fn conditions(
        &self,
        trigger: Trigger,
        times: KeyTimes,
        now: i64,
        retire_until: i64,
    ) -> Option<KeyRotation> {
        let next_since = match trigger {
            Trigger::Requested { force: true } => now,
            _ => now.saturating_sub(self.prepublish),
        };
        let current_since = match trigger {
            Trigger::Scheduled => now.saturating_sub(self.interval?),
            Trigger::Requested { .. } => now,
        };
        // A forced rotation is for a key that may be compromised: it stops being published at once
        // and the tokens it signed are revoked (the revocation log tells every verifier).
        let forced = matches!(trigger, Trigger::Requested { force: true });
        (times.current_since <= current_since && times.next_since <= next_since).then_some(
            KeyRotation {
                now,
                retire_until: if forced { now } else { retire_until },
                current_since,
                next_since,
                revoke_retired: forced,
            },
        )
    }
}

/// Performs due rotations: checks at every key reload interval (a rotation is at most that late),
/// audits each one it performed (actor `scheduler`) and publishes it on this replica at once.
pub(crate) fn spawn_scheduler(
    state: Arc<crate::state::AppState>,
    check_every: Duration,
) -> Option<tokio::task::JoinHandle<()>> {
    state.keys.rotation_policy().interval?;
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(check_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match state.keys.rotate(state.now(), Trigger::Scheduled).await {
                Ok(None) => {}
                Ok(Some(r)) => {
                    tracing::info!(current = %r.current, next = %r.next, retired = %r.retired, "signing key rotated on schedule");
                    if state.key_source.refresh().await.is_err() {
                        tracing::warn!("key source refresh after rotation failed; it retries");
                    }
                    let entry = Entry::new("key.rotated", Outcome::Success, "scheduler")
                        .actor("scheduler")
                        .subject(&r.current)
                        .detail(r.audit_detail(false));
                    state.audit(entry).await;
                }
                // A replica that lost the race reloads with the next tick; a database outage is
                // retried at the next tick too.
                Err(e) => tracing::warn!(error = %e, "scheduled key rotation failed"),
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const T: i64 = 1_800_000_000;

    fn policy() -> RotationPolicy {
        RotationPolicy {
            interval: Some(7 * DAY),
            prepublish: 3600,
        }
    }

    fn times(current_since: i64, next_since: i64) -> KeyTimes {
        KeyTimes {
            current_since,
            next_since,
        }
    }

    #[test]
    fn scheduled_rotation_waits_for_the_interval_and_the_prepublication() {
        let p = policy();
        let t = times(T, T);
        assert_eq!(
            p.conditions(Trigger::Scheduled, t, T + 7 * DAY - 1, 0),
            None
        );
        let c = p
            .conditions(Trigger::Scheduled, t, T + 7 * DAY, 9)
            .expect("due");
        assert_eq!(
            c,
            KeyRotation {
                now: T + 7 * DAY,
                retire_until: 9,
                current_since: T,
                next_since: T + 7 * DAY - 3600,
                revoke_retired: false,
            }
        );
        // Due, but the next key was published only 10 minutes ago (a forced rotation just ran).
        let young = times(T, T + 7 * DAY - 600);
        assert_eq!(
            p.conditions(Trigger::Scheduled, young, T + 7 * DAY, 0),
            None
        );
        assert!(
            p.conditions(Trigger::Scheduled, young, T + 7 * DAY + 3000, 0)
                .is_some()
        );
    }

    #[test]
    fn manual_policy_never_rotates_on_schedule() {
        let t = times(T, T);
        assert_eq!(
            RotationPolicy::MANUAL.conditions(Trigger::Scheduled, t, T + 3650 * DAY, 0),
            None
        );
        assert!(
            RotationPolicy::MANUAL
                .conditions(Trigger::Requested { force: false }, t, T, 0)
                .is_some()
        );
    }

    #[test]
    fn a_request_respects_the_prepublication_unless_forced() {
        let p = policy();
        let t = times(T, T);
        let asked = Trigger::Requested { force: false };
        assert_eq!(p.conditions(asked, t, T + 3599, 0), None);
        assert_eq!(
            p.conditions(asked, t, T + 3600, 0).map(|c| c.current_since),
            Some(T + 3600),
            "a request does not wait for the interval"
        );
        let forced = p
            .conditions(Trigger::Requested { force: true }, t, T + 1, 0)
            .expect("forced");
        assert_eq!(forced.next_since, T + 1);
        // The possibly compromised key is unpublished at once and its tokens revoked.
        assert_eq!((forced.retire_until, forced.revoke_retired), (T + 1, true));
        let asked = p.conditions(asked, t, T + 3600, 9).unwrap();
        assert_eq!((asked.retire_until, asked.revoke_retired), (9, false));
    }
}
