//! Revocation in real time: how long the in-memory view is trusted without reading the log, and the
//! bounds of `WatchRevocations` (concurrent streams, heartbeat interval).

use std::time::Duration;

use clap::Args;

use super::check::{ConfigError, within};

/// Revocation flags.
#[derive(Debug, Clone, Args)]
pub struct RevocationArgs {
    /// How long `Validate`, the server's own checks and ext_authz answer from the in-memory
    /// revocation view when the revocation log cannot be read (database unreachable), seconds
    /// [5..=3600]; beyond it they answer UNAVAILABLE rather than trust a stale view.
    #[arg(long, env = "AUTH_REVOCATION_MAX_STALENESS", default_value_t = 60)]
    pub revocation_max_staleness: i64,

    /// `WatchRevocations` streams open at once on this replica [1..=100000]; beyond it a new one
    /// is refused with RESOURCE_EXHAUSTED.
    #[arg(long, env = "AUTH_MAX_REVOCATION_WATCHERS", default_value_t = 4096)]
    pub max_revocation_watchers: usize,

    /// How often an idle `WatchRevocations` stream gets a heartbeat, seconds [1..=300].
    #[arg(long, env = "AUTH_REVOCATION_HEARTBEAT_INTERVAL", default_value_t = 15)]
    pub revocation_heartbeat_interval: u64,
}

/// Validated revocation settings.
#[derive(Debug, Clone, Copy)]
pub struct RevocationSettings {
    /// Longest trust in the view without a successful read, seconds.
    pub max_staleness: i64,
    /// Concurrent `WatchRevocations` streams.
    pub max_watchers: usize,
    /// Heartbeat interval of idle streams.
    pub heartbeat: Duration,
}

impl RevocationArgs {
    /// Checks the revocation flags.
    pub fn validate(self) -> Result<RevocationSettings, ConfigError> {
        Ok(RevocationSettings {
            max_staleness: within(
                "AUTH_REVOCATION_MAX_STALENESS",
                self.revocation_max_staleness,
                5,
                3600,
                " seconds",
            )?,
            max_watchers: within(
                "AUTH_MAX_REVOCATION_WATCHERS",
                self.max_revocation_watchers,
                1,
                100_000,
                "",
            )?,
            heartbeat: Duration::from_secs(within(
                "AUTH_REVOCATION_HEARTBEAT_INTERVAL",
                self.revocation_heartbeat_interval,
                1,
                300,
                " seconds",
            )?),
        })
    }
}
