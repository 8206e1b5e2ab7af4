//! The server's verification keys as a refreshing key source, fed from its own database: the same
//! [`JwksSource`] (background refresh, single-flight rate-limited refetch for an unknown `kid`,
//! negative cache) that downstream services run against `GetJwks`, so there is one reload path.
//! A refetch re-reads the key table, which also picks up a rotation made by another replica.

use std::sync::Arc;
use std::time::Duration;

use auth_interceptor::{FetchError, JwksSource, JwksSourceConfig, KeySet, KeySetFetcher};
use futures_util::future::BoxFuture;

use super::KeyManager;
use crate::clock::{Clock, unix_seconds};

/// At most one database re-read per this interval for tokens naming an unknown `kid`.
const KID_REFETCH_INTERVAL: Duration = Duration::from_secs(1);

/// Re-reads the signing keys from the database.
struct DatabaseKeys {
    keys: Arc<KeyManager>,
    clock: Arc<dyn Clock>,
}

impl KeySetFetcher for DatabaseKeys {
    fn fetch(&self) -> BoxFuture<'_, Result<KeySet, FetchError>> {
        Box::pin(async move {
            self.keys
                .reload(unix_seconds(&*self.clock))
                .await
                .map_err(|e| FetchError::Unreachable(format!("signing keys: {e}")))?;
            Ok(KeySet::clone(&self.keys.verification_keys().load()))
        })
    }
}

/// Starts the key source over `keys`, re-reading the database every `reload_interval` and for
/// unknown `kid`s (waiting at most a second for a rate-limited re-read), once loaded.
pub(crate) async fn start(
    keys: Arc<KeyManager>,
    clock: Arc<dyn Clock>,
    reload_interval: Duration,
) -> Result<JwksSource, FetchError> {
    let config = JwksSourceConfig {
        refresh_interval: reload_interval,
        retry_interval: reload_interval.min(Duration::from_secs(5)),
        min_refetch_interval: KID_REFETCH_INTERVAL,
        max_kid_wait: KID_REFETCH_INTERVAL,
        // The keys are this server's own: a database outage does not make them untrustworthy.
        max_staleness: Duration::from_secs(365 * 24 * 3600),
        ..JwksSourceConfig::default()
    };
    let source = JwksSource::start(DatabaseKeys { keys, clock }, config);
    // Joins the first background fetch, so the server starts with its keys loaded.
    source
        .refresh()
        .await
        .map_err(|_| FetchError::Unreachable("signing keys: first load failed".into()))?;
    Ok(source)
}
