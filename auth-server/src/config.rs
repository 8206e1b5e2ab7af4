//! The server's configuration: one typed struct parsed by clap from flags with `AUTH_*` environment
//! fallbacks, validated once at startup into [`Settings`].

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use jsonwebtoken::Algorithm;
use zeroize::Zeroizing;

use crate::keys::master::MasterKey;
use crate::password::{HashParams, PasswordPolicy};

/// Token signing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SigningAlg {
    /// Ed25519 (default): small, fast, no parameter pitfalls.
    #[value(name = "EdDSA")]
    EdDsa,
    /// ECDSA P-256 with SHA-256.
    #[value(name = "ES256")]
    Es256,
    /// RSA PKCS#1 v1.5 with SHA-256, 2048-bit keys.
    #[value(name = "RS256")]
    Rs256,
    /// HMAC-SHA-256 with a shared secret (`AUTH_HS256_SECRET`); publishes no JWKS.
    #[value(name = "HS256")]
    Hs256,
}

impl SigningAlg {
    /// The `jsonwebtoken` algorithm.
    pub fn algorithm(self) -> Algorithm {
        match self {
            SigningAlg::EdDsa => Algorithm::EdDSA,
            SigningAlg::Es256 => Algorithm::ES256,
            SigningAlg::Rs256 => Algorithm::RS256,
            SigningAlg::Hs256 => Algorithm::HS256,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Settings of `auth-server serve` (every flag also reads the environment variable shown).
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address the gRPC server listens on.
    #[arg(long, env = "AUTH_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,

    /// PEM certificate chain: serve gRPC over TLS (with `--tls-key`).
    #[arg(long, env = "AUTH_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "AUTH_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// PEM CA bundle: require client certificates signed by it (mutual TLS).
    #[arg(long, env = "AUTH_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,

    /// Serve plaintext (h2c) on a non-loopback address, e.g. behind a mesh sidecar that terminates
    /// mTLS. Without it, a non-loopback address requires TLS.
    #[arg(long, env = "AUTH_ALLOW_PLAINTEXT")]
    pub allow_plaintext: bool,

    /// Database URL: `postgres://…` for PostgreSQL, `sqlite://PATH` for SQLite. Default: the SQLite file
    /// `auth.db` in `--data-dir`.
    #[arg(long, env = "AUTH_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Directory for the zero-config SQLite database and its generated master key.
    #[arg(long, env = "AUTH_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Maximum database connections.
    #[arg(long, env = "AUTH_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,

    /// Do not apply database migrations at startup (run `auth-server migrate` instead).
    #[arg(long, env = "AUTH_SKIP_MIGRATIONS")]
    pub skip_migrations: bool,

    /// 32 random bytes, base64: encrypts private signing keys at rest. Required with PostgreSQL; with the
    /// zero-config SQLite default it is generated into `DATA_DIR/master.key` if absent.
    #[arg(long, env = "AUTH_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,

    /// The `iss` of issued tokens (and the only one accepted).
    #[arg(long, env = "AUTH_ISSUER", default_value = "auth-server")]
    pub issuer: String,

    /// The `aud` of issued tokens (and the only one accepted by `Validate`).
    #[arg(long, env = "AUTH_AUDIENCE", default_value = "internal")]
    pub audience: String,

    /// Signing algorithm of new keys.
    #[arg(long, env = "AUTH_SIGNING_ALG", value_enum, default_value = "EdDSA")]
    pub signing_alg: SigningAlg,

    /// Shared secret for HS256 mode (at least 32 bytes).
    #[arg(long, env = "AUTH_HS256_SECRET", hide_env_values = true)]
    pub hs256_secret: Option<String>,

    /// Access-token lifetime, seconds.
    #[arg(long, env = "AUTH_ACCESS_TOKEN_TTL", default_value_t = 600)]
    pub access_token_ttl: i64,

    /// Refresh-token idle timeout, seconds: a session unused this long ends.
    #[arg(long, env = "AUTH_REFRESH_IDLE_TTL", default_value_t = 7 * 24 * 3600)]
    pub refresh_idle_ttl: i64,

    /// Absolute session lifetime, seconds: rotation never extends a session beyond it.
    #[arg(long, env = "AUTH_REFRESH_ABSOLUTE_TTL", default_value_t = 30 * 24 * 3600)]
    pub refresh_absolute_ttl: i64,

    /// Clock-skew leeway when verifying tokens, seconds.
    #[arg(long, env = "AUTH_LEEWAY", default_value_t = 30)]
    pub leeway: u64,

    /// Argon2id memory cost, KiB.
    #[arg(long, env = "AUTH_ARGON2_MEMORY_KIB", default_value_t = 19456)]
    pub argon2_memory_kib: u32,

    /// Argon2id iterations.
    #[arg(long, env = "AUTH_ARGON2_ITERATIONS", default_value_t = 2)]
    pub argon2_iterations: u32,

    /// Argon2id parallelism (lanes).
    #[arg(long, env = "AUTH_ARGON2_PARALLELISM", default_value_t = 1)]
    pub argon2_parallelism: u32,

    /// Password hashes computed at once (0 = number of CPUs). Peak hashing memory is this × memory cost.
    #[arg(long, env = "AUTH_HASH_CONCURRENCY", default_value_t = 0)]
    pub hash_concurrency: usize,

    /// Logins allowed to wait for a hashing slot; more fail fast with UNAVAILABLE.
    #[arg(long, env = "AUTH_HASH_QUEUE", default_value_t = 32)]
    pub hash_queue: usize,

    /// Minimum password length for new passwords, characters.
    #[arg(long, env = "AUTH_PASSWORD_MIN_CHARS", default_value_t = 8)]
    pub password_min_chars: usize,

    /// Maximum password length, bytes (longer input is refused before hashing).
    #[arg(long, env = "AUTH_PASSWORD_MAX_BYTES", default_value_t = 1024)]
    pub password_max_bytes: usize,

    /// Create this admin user at startup when the database has no user.
    #[arg(long, env = "AUTH_BOOTSTRAP_ADMIN_USERNAME")]
    pub bootstrap_admin_username: Option<String>,

    /// Password of the bootstrap admin.
    #[arg(long, env = "AUTH_BOOTSTRAP_ADMIN_PASSWORD", hide_env_values = true)]
    pub bootstrap_admin_password: Option<String>,

    /// Throttle failed logins per account and per source address (stored in the database).
    #[arg(long, env = "AUTH_LOGIN_THROTTLE", default_value_t = true, action = clap::ArgAction::Set)]
    pub login_throttle: bool,

    /// Consecutive failed logins of one account before exponential back-off starts.
    #[arg(long, env = "AUTH_LOGIN_MAX_FAILURES", default_value_t = 5)]
    pub login_max_failures: i64,

    /// Failed logins from one source address before exponential back-off starts (password spraying).
    #[arg(long, env = "AUTH_LOGIN_SOURCE_MAX_FAILURES", default_value_t = 20)]
    pub login_source_max_failures: i64,

    /// Longest login back-off, seconds (a victim is never locked out for longer).
    #[arg(long, env = "AUTH_LOGIN_MAX_BACKOFF", default_value_t = 900)]
    pub login_max_backoff: i64,

    /// Failed logins older than this many seconds are forgotten.
    #[arg(long, env = "AUTH_LOGIN_FAILURE_WINDOW", default_value_t = 3600)]
    pub login_failure_window: i64,

    /// Take the client address from this header (e.g. `x-forwarded-for`, rightmost entry) instead of
    /// the TCP peer. Set only behind a proxy that always sets it.
    #[arg(long, env = "AUTH_TRUSTED_PROXY_HEADER")]
    pub trusted_proxy_header: Option<String>,

    /// Days to keep audit events.
    #[arg(long, env = "AUTH_AUDIT_RETENTION_DAYS", default_value_t = 90)]
    pub audit_retention_days: i64,

    /// How often to re-read signing keys from the database (picks up rotations by other replicas), seconds.
    #[arg(long, env = "AUTH_KEY_RELOAD_INTERVAL", default_value_t = 30)]
    pub key_reload_interval: u64,

    /// How long to wait for in-flight calls on shutdown, seconds.
    #[arg(long, env = "AUTH_SHUTDOWN_GRACE", default_value_t = 20)]
    pub shutdown_grace: u64,

    /// Log format.
    #[arg(long, env = "AUTH_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// A configuration error: which setting is wrong and why (one line).
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {reason}")]
pub struct ConfigError {
    /// The environment variable naming the setting.
    pub setting: &'static str,
    /// Why it is wrong.
    pub reason: String,
}

fn bad(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        setting,
        reason: reason.into(),
    }
}

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// PostgreSQL URL.
    Postgres(String),
    /// SQLite URL (`sqlite://path`).
    Sqlite(String),
}

/// The master key setting after validation.
#[derive(Debug)]
pub enum MasterKeySource {
    /// Given in configuration.
    Configured(MasterKey),
    /// To be read from (or generated into) this file (zero-config SQLite only).
    File(PathBuf),
}

/// Validated settings.
#[derive(Debug)]
pub struct Settings {
    /// Login throttling.
    pub throttle: crate::throttle::ThrottlePolicy,
    /// The raw configuration.
    pub config: Config,
    /// Which database.
    pub database: Database,
    /// Master key (asymmetric mode only).
    pub master_key: Option<MasterKeySource>,
    /// HS256 secret (shared-secret mode only).
    pub hs256_secret: Option<Zeroizing<Vec<u8>>>,
    /// Argon2 and pool parameters.
    pub hash: HashParams,
    /// Password policy.
    pub password: PasswordPolicy,
}

impl Config {
    /// Checks every setting; the error names the first wrong one.
    pub fn validate(self) -> Result<Settings, ConfigError> {
        let c = &self;
        let database = match c.database_url.as_deref() {
            None => Database::Sqlite(format!("sqlite://{}", c.data_dir.join("auth.db").display())),
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                Database::Postgres(u.into())
            }
            Some(u) if u.starts_with("sqlite:") => Database::Sqlite(u.into()),
            Some(_) => {
                return Err(bad(
                    "AUTH_DATABASE_URL",
                    "must start with postgres://, postgresql:// or sqlite:",
                ));
            }
        };
        match (&c.tls_cert, &c.tls_key) {
            (Some(_), None) => return Err(bad("AUTH_TLS_KEY", "is required with AUTH_TLS_CERT")),
            (None, Some(_)) => return Err(bad("AUTH_TLS_CERT", "is required with AUTH_TLS_KEY")),
            (None, None) if c.tls_client_ca.is_some() => {
                return Err(bad(
                    "AUTH_TLS_CLIENT_CA",
                    "needs AUTH_TLS_CERT and AUTH_TLS_KEY",
                ));
            }
            (None, None) if !c.grpc_addr.ip().is_loopback() && !c.allow_plaintext => {
                return Err(bad(
                    "AUTH_GRPC_ADDR",
                    "a non-loopback address needs TLS (AUTH_TLS_CERT and AUTH_TLS_KEY), or AUTH_ALLOW_PLAINTEXT=true \
                     behind a sidecar that terminates mTLS",
                ));
            }
            _ => {}
        }
        if c.issuer.trim().is_empty() {
            return Err(bad("AUTH_ISSUER", "must not be empty"));
        }
        if c.audience.trim().is_empty() {
            return Err(bad("AUTH_AUDIENCE", "must not be empty"));
        }
        if !(30..=24 * 3600).contains(&c.access_token_ttl) {
            return Err(bad(
                "AUTH_ACCESS_TOKEN_TTL",
                "must be between 30 and 86400 seconds",
            ));
        }
        if c.refresh_idle_ttl < 60 {
            return Err(bad("AUTH_REFRESH_IDLE_TTL", "must be at least 60 seconds"));
        }
        if c.refresh_absolute_ttl < c.refresh_idle_ttl {
            return Err(bad(
                "AUTH_REFRESH_ABSOLUTE_TTL",
                "must be at least AUTH_REFRESH_IDLE_TTL",
            ));
        }
        if c.leeway > 300 {
            return Err(bad("AUTH_LEEWAY", "must be at most 300 seconds"));
        }
        if c.argon2_memory_kib < 8 * 1024 || c.argon2_memory_kib > 4 * 1024 * 1024 {
            return Err(bad(
                "AUTH_ARGON2_MEMORY_KIB",
                "must be between 8192 and 4194304 KiB",
            ));
        }
        if c.argon2_iterations == 0 || c.argon2_iterations > 64 {
            return Err(bad("AUTH_ARGON2_ITERATIONS", "must be between 1 and 64"));
        }
        if c.argon2_parallelism == 0 || c.argon2_parallelism > 64 {
            return Err(bad("AUTH_ARGON2_PARALLELISM", "must be between 1 and 64"));
        }
        if c.password_min_chars == 0 {
            return Err(bad("AUTH_PASSWORD_MIN_CHARS", "must be at least 1"));
        }
        if c.password_max_bytes < 64 || c.password_max_bytes > 64 * 1024 {
            return Err(bad(
                "AUTH_PASSWORD_MAX_BYTES",
                "must be between 64 and 65536",
            ));
        }
        if c.db_max_connections == 0 {
            return Err(bad("AUTH_DB_MAX_CONNECTIONS", "must be at least 1"));
        }
        if c.key_reload_interval == 0 {
            return Err(bad("AUTH_KEY_RELOAD_INTERVAL", "must be at least 1 second"));
        }
        if c.login_max_failures < 1 || c.login_max_failures > 100 {
            return Err(bad("AUTH_LOGIN_MAX_FAILURES", "must be between 1 and 100"));
        }
        if c.login_source_max_failures < 1 {
            return Err(bad("AUTH_LOGIN_SOURCE_MAX_FAILURES", "must be at least 1"));
        }
        if !(1..=24 * 3600).contains(&c.login_max_backoff) {
            return Err(bad(
                "AUTH_LOGIN_MAX_BACKOFF",
                "must be between 1 and 86400 seconds",
            ));
        }
        if c.login_failure_window < 60 {
            return Err(bad(
                "AUTH_LOGIN_FAILURE_WINDOW",
                "must be at least 60 seconds",
            ));
        }
        if let Some(h) = &c.trusted_proxy_header
            && http::HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()).is_err()
        {
            return Err(bad(
                "AUTH_TRUSTED_PROXY_HEADER",
                "is not a valid header name",
            ));
        }
        if c.audit_retention_days < 1 {
            return Err(bad("AUTH_AUDIT_RETENTION_DAYS", "must be at least 1"));
        }
        match (&c.bootstrap_admin_username, &c.bootstrap_admin_password) {
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
            _ => {}
        }
        let (master_key, hs256_secret) = if c.signing_alg == SigningAlg::Hs256 {
            let secret = c.hs256_secret.as_deref().ok_or_else(|| {
                bad(
                    "AUTH_HS256_SECRET",
                    "is required with AUTH_SIGNING_ALG=HS256",
                )
            })?;
            check_hs_secret(secret)?;
            (None, Some(Zeroizing::new(secret.as_bytes().to_vec())))
        } else {
            let source = match (&c.master_key, &database) {
                (Some(k), _) => MasterKeySource::Configured(
                    MasterKey::from_base64(k).map_err(|e| bad("AUTH_MASTER_KEY", e.to_string()))?,
                ),
                (None, Database::Postgres(_)) => {
                    return Err(bad(
                        "AUTH_MASTER_KEY",
                        "is required with PostgreSQL (32 random bytes, base64; e.g. `openssl rand -base64 32`)",
                    ));
                }
                (None, Database::Sqlite(_)) => MasterKeySource::File(c.data_dir.join("master.key")),
            };
            (Some(source), None)
        };
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let hash = HashParams {
            memory_kib: c.argon2_memory_kib,
            iterations: c.argon2_iterations,
            parallelism: c.argon2_parallelism,
            max_concurrent: if c.hash_concurrency == 0 {
                cpus
            } else {
                c.hash_concurrency
            },
            max_queued: c.hash_queue,
        };
        let password = PasswordPolicy {
            min_chars: c.password_min_chars,
            max_bytes: c.password_max_bytes,
        };
        let throttle = crate::throttle::ThrottlePolicy {
            enabled: c.login_throttle,
            account_free_failures: c.login_max_failures,
            source_free_failures: c.login_source_max_failures,
            max_delay: c.login_max_backoff,
            window: c.login_failure_window,
        };
        Ok(Settings {
            throttle,
            config: self,
            database,
            master_key,
            hs256_secret,
            hash,
            password,
        })
    }
}

fn check_hs_secret(secret: &str) -> Result<(), ConfigError> {
    let b = secret.as_bytes();
    if b.len() < auth_interceptor::keys::MIN_HMAC_SECRET_LEN {
        return Err(bad("AUTH_HS256_SECRET", "must be at least 32 bytes"));
    }
    let mut distinct = b.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    // Guessable shapes: few symbols, a short pattern repeated, or a run like "abcdef…"/"0123…".
    let periodic = (1..=b.len() / 2).any(|p| b[p..].iter().zip(b).all(|(x, y)| x == y));
    let steps = b.windows(2).filter(|w| w[1].abs_diff(w[0]) <= 1).count();
    if distinct.len() < 10 || periodic || steps * 2 >= b.len() {
        return Err(bad(
            "AUTH_HS256_SECRET",
            "is not random enough (generate one with `openssl rand -base64 48`)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: Config,
    }

    fn parse(args: &[&str]) -> Result<Settings, ConfigError> {
        let mut argv = vec!["auth-server"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap().config.validate()
    }

    #[test]
    fn zero_config_is_valid_sqlite() {
        let s = parse(&[]).unwrap();
        assert!(matches!(s.database, Database::Sqlite(_)));
        assert!(matches!(s.master_key, Some(MasterKeySource::File(_))));
    }

    #[test]
    fn postgres_requires_a_strong_master_key() {
        let e = parse(&["--database-url", "postgres://localhost/x"]).unwrap_err();
        assert_eq!(e.setting, "AUTH_MASTER_KEY");
        let e = parse(&["--database-url", "postgres://x", "--master-key", "c2hvcnQ="]).unwrap_err();
        assert_eq!(e.setting, "AUTH_MASTER_KEY");
        assert!(e.to_string().contains("32 bytes"));
    }

    #[test]
    fn hs256_refuses_weak_secrets() {
        assert_eq!(
            parse(&["--signing-alg", "HS256"]).unwrap_err().setting,
            "AUTH_HS256_SECRET"
        );
        for weak in [
            "",
            "secret",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "01234567890123456789012345678901",
            "abcdefghijabcdefghijabcdefghijab",
            "abcdefghijklmnopqrstuvwxyz012345",
        ] {
            let e = parse(&["--signing-alg", "HS256", "--hs256-secret", weak]).unwrap_err();
            assert_eq!(e.setting, "AUTH_HS256_SECRET", "{weak:?}");
        }
        assert!(
            parse(&[
                "--signing-alg",
                "HS256",
                "--hs256-secret",
                "q7Vx2LmZ9pTcR4wYb8NkHs3JdF6gAeUo"
            ])
            .is_ok()
        );
    }

    #[test]
    fn plaintext_only_on_loopback_unless_allowed() {
        assert_eq!(
            parse(&["--grpc-addr", "0.0.0.0:50051"])
                .unwrap_err()
                .setting,
            "AUTH_GRPC_ADDR"
        );
        assert!(parse(&["--grpc-addr", "0.0.0.0:50051", "--allow-plaintext"]).is_ok());
        assert!(
            parse(&[
                "--grpc-addr",
                "0.0.0.0:50051",
                "--tls-cert",
                "c.pem",
                "--tls-key",
                "k.pem"
            ])
            .is_ok()
        );
        assert_eq!(
            parse(&["--tls-cert", "c.pem"]).unwrap_err().setting,
            "AUTH_TLS_KEY"
        );
        assert_eq!(
            parse(&["--tls-client-ca", "ca.pem"]).unwrap_err().setting,
            "AUTH_TLS_CLIENT_CA"
        );
        assert!(parse(&["--grpc-addr", "[::1]:50051"]).is_ok());
    }

    #[test]
    fn bounds_are_checked() {
        assert_eq!(
            parse(&["--access-token-ttl", "5"]).unwrap_err().setting,
            "AUTH_ACCESS_TOKEN_TTL"
        );
        assert_eq!(
            parse(&["--argon2-memory-kib", "64"]).unwrap_err().setting,
            "AUTH_ARGON2_MEMORY_KIB"
        );
        assert_eq!(
            parse(&["--database-url", "mysql://x"]).unwrap_err().setting,
            "AUTH_DATABASE_URL"
        );
        assert_eq!(
            parse(&["--bootstrap-admin-username", "root"])
                .unwrap_err()
                .setting,
            "AUTH_BOOTSTRAP_ADMIN_PASSWORD"
        );
    }
}
