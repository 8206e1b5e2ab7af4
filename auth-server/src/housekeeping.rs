//! Background work of a running server: the database health probe, and purging expired sessions,
//! keys, spent client-assertion `jti`s past their `exp`, throttle rows and old audit events. (Signing
//! keys are re-read by the key source itself, `keys::source`, and rotated on schedule by
//! `keys::rotation`.)

use std::sync::Arc;
use std::time::Duration;

use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::server::set_health;
use crate::state::AppState;

/// How often the database is probed for the health status (and the fast-fail switch): a lost
/// database is noticed, and a recovered one trusted again, within about a second.
const HEALTH_PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// How often expired sessions and retired keys are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(600);

/// How long housekeeping keeps rows, seconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retention {
    /// Audit events.
    pub(crate) audit: i64,
    /// Throttle rows whose last failure is older.
    pub(crate) throttle: i64,
}

/// Starts the background tasks; abort them at shutdown.
pub(crate) fn spawn_background(
    state: Arc<AppState>,
    health: HealthReporter,
    retention: Retention,
) -> Vec<tokio::task::JoinHandle<()>> {
    let probe = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEALTH_PROBE_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let ok = matches!(
                    tokio::time::timeout(HEALTH_PROBE_INTERVAL, state.store.ping()).await,
                    Ok(Ok(()))
                );
                if state.database.set(ok) {
                    if ok {
                        tracing::info!("database reachable again: SERVING");
                    } else {
                        tracing::error!("database unreachable: NOT_SERVING");
                    }
                    let status = if ok {
                        ServingStatus::Serving
                    } else {
                        ServingStatus::NotServing
                    };
                    set_health(&health, status).await;
                }
            }
        })
    };
    let purge = tokio::spawn(async move {
        let mut tick = tokio::time::interval(PURGE_INTERVAL);
        loop {
            tick.tick().await;
            let now = state.now();
            let purged = async {
                Ok::<_, crate::store::StoreError>((
                    state.store.purge_expired(now).await?,
                    state
                        .store
                        .purge_login_throttle(now.saturating_sub(retention.throttle), now)
                        .await?,
                    state
                        .store
                        .purge_audit(now.saturating_sub(retention.audit))
                        .await?,
                ))
            };
            match purged.await {
                Ok((sessions, throttle, audit)) if sessions + throttle + audit > 0 => {
                    tracing::info!(sessions, throttle, audit, "purged expired rows")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purge failed"),
            }
        }
    });
    vec![probe, purge]
}
