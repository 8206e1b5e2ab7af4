//! The follower: reads the revocation log from the view's last sequence and applies it, woken by
//! the backend's notifications (PostgreSQL `LISTEN`) and by a poll every [`POLL_INTERVAL`], so a
//! lost notification delays a revocation by at most that.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;

use super::Revocations;
use crate::store::{RevocationKind, StoreError};

/// The longest a row committed by another replica waits for this one to read it when its
/// notification is lost.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Rows read per query.
const PAGE: i64 = 1000;

impl Revocations {
    /// Reads every row after the head and applies it (one reader at a time); `reload_keys` refreshes
    /// the key source when a row says the signing keys changed.
    pub(super) async fn read_log(&self, reload_keys: bool) -> Result<(), StoreError> {
        let _one = self.reading.lock().await;
        let mut keys_changed = false;
        loop {
            let rows = self.store.revocations_after(self.head(), PAGE).await?;
            let now = self.now();
            let Some(last) = rows.last().map(|r| r.seq) else {
                break;
            };
            {
                let mut view = self.view.write().unwrap_or_else(|p| p.into_inner());
                for row in &rows {
                    view.apply(row, now);
                }
                self.head.store(last, Ordering::Release);
            }
            for row in rows.iter() {
                keys_changed |= row.kind == RevocationKind::Keys;
                // Every row, so streams know their position; no receiver is not an error.
                let _ = self.events.send(Arc::new(row.clone()));
            }
            if (rows.len() as i64) < PAGE {
                break;
            }
        }
        self.read_ok();
        let now = self.now();
        self.view
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .prune(now);
        if keys_changed && reload_keys {
            let keys = self.keys.clone();
            tokio::spawn(async move {
                if keys.refresh().await.is_err() {
                    tracing::warn!(
                        "signing keys not reloaded after a rotation elsewhere; the next poll retries"
                    );
                }
            });
        }
        Ok(())
    }
}

/// Starts the follower of `revocations` (and, on PostgreSQL, its listener); abort the tasks at
/// shutdown.
pub(crate) fn spawn(revocations: Arc<Revocations>) -> Vec<tokio::task::JoinHandle<()>> {
    let wake = Arc::new(Notify::new());
    let listener = {
        let revocations = revocations.clone();
        let wake = wake.clone();
        tokio::spawn(async move { listen(&revocations, &wake).await })
    };
    let follower = tokio::spawn(async move {
        let mut failing = false;
        loop {
            let _ = tokio::time::timeout(POLL_INTERVAL, wake.notified()).await;
            match revocations.read_log(true).await {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("revocation log readable again");
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "revocation log unreadable; Validate answers from the view until AUTH_REVOCATION_MAX_STALENESS");
                }
                Err(_) => {}
            }
        }
    });
    vec![listener, follower]
}

/// Wakes the follower on every notification; reconnects (after [`POLL_INTERVAL`]) when the
/// listening connection fails. Returns at once when the backend has no notifications.
async fn listen(revocations: &Revocations, wake: &Notify) {
    loop {
        match revocations.store().revocation_wakeups().await {
            Ok(None) => return,
            Ok(Some(mut wakeups)) => {
                // Whatever was committed while not listening is read now.
                wake.notify_one();
                while let Some(item) = wakeups.next().await {
                    match item {
                        Ok(()) => wake.notify_one(),
                        Err(e) => {
                            tracing::debug!(error = %e, "revocation listener lost its connection");
                            tokio::time::sleep(POLL_INTERVAL).await;
                            wake.notify_one();
                        }
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "revocation listener cannot connect"),
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
