//! The running server's housekeeping and lifecycle: how long audit events are kept, the admin created
//! on first start, and how long shutdown waits for in-flight calls.

use std::time::Duration;

use clap::Args;
use secrecy::SecretString;

use super::check::{ConfigError, bad, within};
use super::database::secret;

/// Housekeeping and lifecycle flags.
#[derive(Debug, Clone, Args)]
pub struct OperationArgs {
    /// Days to keep audit events [1..=3650].
    #[arg(long, env = "AUTH_AUDIT_RETENTION_DAYS", default_value_t = 90)]
    pub audit_retention_days: i64,

    /// Create this admin user at startup when the database has no user.
    #[arg(long, env = "AUTH_BOOTSTRAP_ADMIN_USERNAME")]
    pub bootstrap_admin_username: Option<String>,

    /// Password of the bootstrap admin.
    #[arg(long, env = "AUTH_BOOTSTRAP_ADMIN_PASSWORD", hide_env_values = true, value_parser = secret)]
    pub bootstrap_admin_password: Option<SecretString>,

    /// How long to wait for in-flight calls on shutdown, seconds [0..=3600].
    #[arg(long, env = "AUTH_SHUTDOWN_GRACE", default_value_t = 20)]
    pub shutdown_grace: u64,
}

/// The admin account created when the database has no user.
#[derive(Debug, Clone)]
pub struct BootstrapAdmin {
    /// Username.
    pub username: String,
    /// Password.
    pub password: SecretString,
}

/// Validated housekeeping and lifecycle settings.
#[derive(Debug, Clone)]
pub struct OperationSettings {
    /// Audit events older than this are purged, seconds.
    pub audit_retention: i64,
    /// Created on first start, if set.
    pub bootstrap_admin: Option<BootstrapAdmin>,
    /// Longest wait for in-flight calls at shutdown.
    pub shutdown_grace: Duration,
}

impl OperationArgs {
    /// Checks the housekeeping and lifecycle flags.
    pub fn validate(self) -> Result<OperationSettings, ConfigError> {
        let days = within(
            "AUTH_AUDIT_RETENTION_DAYS",
            self.audit_retention_days,
            1,
            3650,
            " days",
        )?;
        let bootstrap_admin = match (self.bootstrap_admin_username, self.bootstrap_admin_password) {
            (Some(username), Some(password)) => Some(BootstrapAdmin { username, password }),
            (Some(_), None) => {
                return Err(bad(
                    "AUTH_BOOTSTRAP_ADMIN_PASSWORD",
                    "is required with AUTH_BOOTSTRAP_ADMIN_USERNAME",
                ));
            }
            (None, Some(_)) => {
                return Err(bad(
                    "AUTH_BOOTSTRAP_ADMIN_USERNAME",
                    "is required with AUTH_BOOTSTRAP_ADMIN_PASSWORD",
                ));
            }
            (None, None) => None,
        };
        let grace = within(
            "AUTH_SHUTDOWN_GRACE",
            self.shutdown_grace,
            0,
            3600,
            " seconds",
        )?;
        Ok(OperationSettings {
            // At most 3650 days: fits an i64 many times over.
            audit_retention: days * 24 * 3600,
            bootstrap_admin,
            shutdown_grace: Duration::from_secs(grace),
        })
    }
}
