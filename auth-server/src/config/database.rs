//! Which database holds the server's state, how many connections it may use, and whether migrations
//! run at startup.

use std::path::PathBuf;

use clap::Args;
use secrecy::{ExposeSecret, SecretString};

use super::check::{ConfigError, bad, within};

/// Database flags (all that `auth-server migrate` takes).
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Database URL: `postgres://…` for PostgreSQL, `sqlite://PATH` for SQLite. Default: the SQLite file
    /// `auth.db` in `--data-dir`.
    #[arg(long, env = "AUTH_DATABASE_URL", hide_env_values = true, value_parser = secret)]
    pub database_url: Option<SecretString>,

    /// Directory for the zero-config SQLite database and its generated master key.
    #[arg(long, env = "AUTH_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Maximum PostgreSQL connections [1..=1000].
    #[arg(long, env = "AUTH_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,

    /// How long a call waits for a database connection before failing with UNAVAILABLE,
    /// milliseconds [100..=60000].
    #[arg(long, env = "AUTH_DB_ACQUIRE_TIMEOUT_MS", default_value_t = 1000)]
    pub db_acquire_timeout_ms: u64,

    /// Do not apply database migrations at startup (run `auth-server migrate` instead).
    #[arg(long, env = "AUTH_SKIP_MIGRATIONS")]
    pub skip_migrations: bool,
}

/// Parses a secret flag value (kept out of `Debug` output and zeroized on drop).
pub(super) fn secret(s: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(s))
}

/// The backend and where it is.
#[derive(Debug, Clone)]
pub enum Backend {
    /// PostgreSQL at this URL (which may carry a password).
    Postgres {
        /// `postgres://…`
        url: SecretString,
        /// Pool size.
        max_connections: u32,
    },
    /// SQLite at this URL.
    Sqlite {
        /// `sqlite:…`
        url: SecretString,
        /// The zero-config data directory to create (owner-only) before opening, when the URL is
        /// the default one inside it.
        create_dir: Option<PathBuf>,
    },
}

/// Validated database settings.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// Backend and URL.
    pub backend: Backend,
    /// Apply the embedded migrations at startup.
    pub migrate: bool,
    /// Longest wait for a pooled connection.
    pub acquire_timeout: std::time::Duration,
    /// The data directory (zero-config database and master key file).
    pub data_dir: PathBuf,
}

impl DatabaseArgs {
    /// Checks the database flags.
    pub fn validate(self) -> Result<DatabaseSettings, ConfigError> {
        let max_connections = within(
            "AUTH_DB_MAX_CONNECTIONS",
            self.db_max_connections,
            1,
            1000,
            "",
        )?;
        let backend = match self.database_url {
            None => Backend::Sqlite {
                url: SecretString::from(format!(
                    "sqlite://{}",
                    self.data_dir.join("auth.db").display()
                )),
                create_dir: Some(self.data_dir.clone()),
            },
            Some(url) => {
                let text = url.expose_secret();
                if text.starts_with("postgres://") || text.starts_with("postgresql://") {
                    Backend::Postgres {
                        url,
                        max_connections,
                    }
                } else if text.starts_with("sqlite:") {
                    Backend::Sqlite {
                        url,
                        create_dir: None,
                    }
                } else {
                    return Err(bad(
                        "AUTH_DATABASE_URL",
                        "must start with postgres://, postgresql:// or sqlite:",
                    ));
                }
            }
        };
        let acquire_ms = within(
            "AUTH_DB_ACQUIRE_TIMEOUT_MS",
            self.db_acquire_timeout_ms,
            100,
            60_000,
            " ms",
        )?;
        Ok(DatabaseSettings {
            backend,
            migrate: !self.skip_migrations,
            acquire_timeout: std::time::Duration::from_millis(acquire_ms),
            data_dir: self.data_dir,
        })
    }
}
