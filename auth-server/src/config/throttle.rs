//! Login throttling: how many failures an (account, source) pair, an account and a source may have
//! before they lock, how long locks last, and where the client address comes from behind a proxy.

use clap::Args;

use super::check::{ConfigError, bad, within};
use crate::throttle::ThrottlePolicy;

/// Throttling flags.
#[derive(Debug, Clone, Args)]
pub struct ThrottleArgs {
    /// Throttle failed logins per account and per source address (stored in the database).
    #[arg(long, env = "AUTH_LOGIN_THROTTLE", default_value_t = true, action = clap::ArgAction::Set)]
    pub login_throttle: bool,

    /// Failed logins of one account from one source address before that pair locks, with
    /// exponential back-off from lock to lock [1..=100].
    #[arg(long, env = "AUTH_LOGIN_MAX_FAILURES", default_value_t = 5)]
    pub login_max_failures: i64,

    /// Failed logins of one account from all sources before the whole account locks [1..=10000];
    /// slows a distributed attack on one account.
    #[arg(long, env = "AUTH_LOGIN_ACCOUNT_MAX_FAILURES", default_value_t = 20)]
    pub login_account_max_failures: i64,

    /// Longest account-wide lock, seconds [1..=3600]: the owner, logging in from elsewhere, is
    /// refused at most this long by someone else's failures.
    #[arg(long, env = "AUTH_LOGIN_ACCOUNT_MAX_BACKOFF", default_value_t = 60)]
    pub login_account_max_backoff: i64,

    /// Failed logins from one source address before exponential back-off starts [1..=100000]
    /// (password spraying).
    #[arg(long, env = "AUTH_LOGIN_SOURCE_MAX_FAILURES", default_value_t = 20)]
    pub login_source_max_failures: i64,

    /// Longest lock of an (account, source) pair or of a source, seconds [1..=86400].
    #[arg(long, env = "AUTH_LOGIN_MAX_BACKOFF", default_value_t = 900)]
    pub login_max_backoff: i64,

    /// Failed logins older than this many seconds are forgotten [60..=2592000].
    #[arg(long, env = "AUTH_LOGIN_FAILURE_WINDOW", default_value_t = 3600)]
    pub login_failure_window: i64,

    /// Take the client address from this header (e.g. `x-forwarded-for`, rightmost entry) instead of
    /// the TCP peer. Set only behind a proxy that always sets it.
    #[arg(long, env = "AUTH_TRUSTED_PROXY_HEADER")]
    pub trusted_proxy_header: Option<String>,
}

/// Validated throttling settings.
#[derive(Debug, Clone)]
pub struct ThrottleSettings {
    /// Thresholds and back-off.
    pub policy: ThrottlePolicy,
    /// Header carrying the client address, set by a trusted proxy.
    pub proxy_header: Option<http::HeaderName>,
}

impl ThrottleArgs {
    /// Checks the throttling flags.
    pub fn validate(self) -> Result<ThrottleSettings, ConfigError> {
        let proxy_header = match &self.trusted_proxy_header {
            None => None,
            Some(h) => Some(
                http::HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes())
                    .map_err(|_| bad("AUTH_TRUSTED_PROXY_HEADER", "is not a valid header name"))?,
            ),
        };
        Ok(ThrottleSettings {
            policy: ThrottlePolicy {
                enabled: self.login_throttle,
                pair_free_failures: within(
                    "AUTH_LOGIN_MAX_FAILURES",
                    self.login_max_failures,
                    1,
                    100,
                    "",
                )?,
                account_free_failures: within(
                    "AUTH_LOGIN_ACCOUNT_MAX_FAILURES",
                    self.login_account_max_failures,
                    1,
                    10_000,
                    "",
                )?,
                account_max_delay: within(
                    "AUTH_LOGIN_ACCOUNT_MAX_BACKOFF",
                    self.login_account_max_backoff,
                    1,
                    3600,
                    " seconds",
                )?,
                source_free_failures: within(
                    "AUTH_LOGIN_SOURCE_MAX_FAILURES",
                    self.login_source_max_failures,
                    1,
                    100_000,
                    "",
                )?,
                max_delay: within(
                    "AUTH_LOGIN_MAX_BACKOFF",
                    self.login_max_backoff,
                    1,
                    24 * 3600,
                    " seconds",
                )?,
                window: within(
                    "AUTH_LOGIN_FAILURE_WINDOW",
                    self.login_failure_window,
                    60,
                    30 * 24 * 3600,
                    " seconds",
                )?,
            },
            proxy_header,
        })
    }
}
