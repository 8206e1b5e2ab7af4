//! The server's configuration: flags with `AUTH_*` environment fallbacks, grouped by concern, each
//! group validated once at startup into the typed settings its consumers take. Nothing outside this
//! module reads a raw flag.
//!
//! Every number has a documented range (in its flag's help) enforced here, so no arithmetic on
//! configuration can overflow; secrets are held as [`secrecy::SecretString`] (redacted in `Debug`,
//! zeroized on drop).

use clap::{Args, ValueEnum};

mod check;
mod database;
mod extauthz;
mod http;
mod keys;
mod listen;
mod operations;
mod passwords;
mod revocation;
mod throttle;
mod tokens;

pub use check::ConfigError;
pub use database::{Backend, DatabaseArgs, DatabaseSettings};
pub use extauthz::{ExtAuthzArgs, ExtAuthzSettings};
pub use http::{HttpArgs, HttpSettings, PublicUrl};
pub use keys::{KeyArgs, KeySettings, MasterKeySource, Signing, SigningAlg};
pub use listen::{ListenArgs, ListenSettings, TlsFiles};
pub use operations::{BootstrapAdmin, OperationArgs, OperationSettings};
pub use passwords::{PasswordArgs, PasswordSettings};
pub use revocation::{RevocationArgs, RevocationSettings};
pub use throttle::{ThrottleArgs, ThrottleSettings};
pub use tokens::{TokenArgs, TokenSettings};

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
    /// Listener and TLS.
    #[command(flatten, next_help_heading = "Listener")]
    pub listen: ListenArgs,
    /// HTTP side port.
    #[command(flatten, next_help_heading = "HTTP side port")]
    pub http: HttpArgs,
    /// Database.
    #[command(flatten, next_help_heading = "Database")]
    pub database: DatabaseArgs,
    /// Signing keys.
    #[command(flatten, next_help_heading = "Signing keys")]
    pub keys: KeyArgs,
    /// Tokens and sessions.
    #[command(flatten, next_help_heading = "Tokens and sessions")]
    pub tokens: TokenArgs,
    /// Passwords.
    #[command(flatten, next_help_heading = "Passwords")]
    pub passwords: PasswordArgs,
    /// Login throttling.
    #[command(flatten, next_help_heading = "Login throttling")]
    pub throttle: ThrottleArgs,
    /// Audit, bootstrap and shutdown.
    #[command(flatten, next_help_heading = "Operations")]
    pub operations: OperationArgs,
    /// Envoy external authorization.
    #[command(flatten, next_help_heading = "Envoy external authorization")]
    pub extauthz: ExtAuthzArgs,
    /// Revocation view and stream.
    #[command(flatten, next_help_heading = "Revocation")]
    pub revocation: RevocationArgs,
}

/// Everything `serve` needs, validated.
#[derive(Debug)]
pub struct Settings {
    /// Listener and TLS.
    pub listen: ListenSettings,
    /// HTTP side port.
    pub http: HttpSettings,
    /// Database.
    pub database: DatabaseSettings,
    /// Signing keys.
    pub keys: KeySettings,
    /// Tokens and sessions.
    pub tokens: TokenSettings,
    /// Passwords.
    pub passwords: PasswordSettings,
    /// Login throttling.
    pub throttle: ThrottleSettings,
    /// Audit retention, bootstrap admin, shutdown.
    pub operations: OperationSettings,
    /// Envoy external authorization, when enabled.
    pub extauthz: Option<ExtAuthzSettings>,
    /// Revocation view and stream.
    pub revocation: RevocationSettings,
}

impl Config {
    /// Checks every setting; the error names the first wrong one.
    pub fn validate(self) -> Result<Settings, ConfigError> {
        let database = self.database.validate()?;
        Ok(Settings {
            listen: self.listen.validate()?,
            http: self.http.validate()?,
            tokens: self.tokens.validate()?,
            passwords: self.passwords.validate()?,
            throttle: self.throttle.validate()?,
            operations: self.operations.validate()?,
            extauthz: self.extauthz.validate()?,
            revocation: self.revocation.validate()?,
            keys: self.keys.validate(&database)?,
            database,
        })
    }
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
        assert!(matches!(s.database.backend, Backend::Sqlite { .. }));
        assert!(matches!(
            s.keys.signing,
            Signing::Asymmetric {
                master: MasterKeySource::File(_),
                ..
            }
        ));
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

    #[test]
    fn every_number_is_bounded_and_refused_on_one_line() {
        for (flag, value, setting) in [
            (
                "--audit-retention-days",
                "9223372036854775807",
                "AUTH_AUDIT_RETENTION_DAYS",
            ),
            (
                "--refresh-absolute-ttl",
                "9223372036854775807",
                "AUTH_REFRESH_ABSOLUTE_TTL",
            ),
            (
                "--refresh-idle-ttl",
                "9223372036854775807",
                "AUTH_REFRESH_IDLE_TTL",
            ),
            (
                "--login-failure-window",
                "9223372036854775807",
                "AUTH_LOGIN_FAILURE_WINDOW",
            ),
            (
                "--login-source-max-failures",
                "0",
                "AUTH_LOGIN_SOURCE_MAX_FAILURES",
            ),
            (
                "--key-reload-interval",
                "18446744073709551615",
                "AUTH_KEY_RELOAD_INTERVAL",
            ),
            (
                "--shutdown-grace",
                "18446744073709551615",
                "AUTH_SHUTDOWN_GRACE",
            ),
            ("--hash-queue", "18446744073709551615", "AUTH_HASH_QUEUE"),
            ("--hash-concurrency", "100000", "AUTH_HASH_CONCURRENCY"),
            (
                "--db-max-connections",
                "4294967295",
                "AUTH_DB_MAX_CONNECTIONS",
            ),
            ("--password-min-chars", "100000", "AUTH_PASSWORD_MIN_CHARS"),
            (
                "--key-rotation-interval",
                "59",
                "AUTH_KEY_ROTATION_INTERVAL",
            ),
            ("--key-prepublish", "99999999", "AUTH_KEY_PREPUBLISH"),
            ("--password-min-score", "5", "AUTH_PASSWORD_MIN_SCORE"),
            (
                "--revocation-max-staleness",
                "4",
                "AUTH_REVOCATION_MAX_STALENESS",
            ),
            (
                "--max-revocation-watchers",
                "0",
                "AUTH_MAX_REVOCATION_WATCHERS",
            ),
            (
                "--revocation-heartbeat-interval",
                "301",
                "AUTH_REVOCATION_HEARTBEAT_INTERVAL",
            ),
        ] {
            let e = parse(&[flag, value]).unwrap_err();
            assert_eq!(e.setting, setting, "{flag}");
            let line = e.to_string();
            assert!(!line.contains('\n'), "{line}");
            assert!(line.starts_with(&format!("{setting}: ")), "{line}");
            assert!(line.contains(flag), "{line}");
        }
        let r = parse(&[]).unwrap().revocation;
        assert_eq!((r.max_staleness, r.max_watchers), (60, 4096));
        assert_eq!(r.heartbeat, std::time::Duration::from_secs(15));
        let s = parse(&["--audit-retention-days", "3650"]).unwrap();
        assert_eq!(s.operations.audit_retention, 3650 * 86_400);
        use crate::password::Score;
        assert_eq!(parse(&[]).unwrap().passwords.policy.min_score, Score::Three);
        let s = parse(&["--password-min-score", "0"]).unwrap();
        assert_eq!(s.passwords.policy.min_score, Score::Zero);
    }

    #[test]
    fn rotation_schedule_defaults_and_consistency() {
        let r = parse(&[]).unwrap().keys.rotation;
        assert_eq!((r.interval, r.prepublish), (Some(7 * 86_400), 3600));
        let r = parse(&["--key-rotation-interval", "0", "--key-prepublish", "0"])
            .unwrap()
            .keys
            .rotation;
        assert_eq!((r.interval, r.prepublish), (None, 0));
        // Automatic rotation needs a pre-publication every replica's reload can meet, within the
        // interval.
        for args in [
            &["--key-prepublish", "10"][..],
            &[
                "--key-rotation-interval",
                "3600",
                "--key-prepublish",
                "7200",
            ],
        ] {
            let e = parse(args).unwrap_err();
            assert_eq!(e.setting, "AUTH_KEY_PREPUBLISH", "{args:?}");
            assert!(e.to_string().contains("AUTH_KEY_RELOAD_INTERVAL"), "{e}");
        }
    }

    #[test]
    fn validate_bounds_token_lifetimes_by_the_servers_own_ttl() {
        // Not the interceptor's generic default (1 h): exactly what this server issues.
        let vc = parse(&[]).unwrap().tokens.verifier_config();
        assert_eq!(vc.max_lifetime, std::time::Duration::from_secs(600));
        assert!(vc.max_lifetime < auth_interceptor::DEFAULT_MAX_LIFETIME);
        // A TTL beyond the interceptor's default still verifies the server's own tokens.
        let vc = parse(&["--access-token-ttl", "7200"])
            .unwrap()
            .tokens
            .verifier_config();
        assert_eq!(vc.max_lifetime, std::time::Duration::from_secs(7200));
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let s = parse(&[
            "--database-url",
            "postgres://u:pg-password-123@db/auth",
            "--master-key",
            "q7Vx2LmZ9pTcR4wYb8NkHs3JdF6gAeUoq7Vx2LmZ9pQ=",
            "--bootstrap-admin-username",
            "root",
            "--bootstrap-admin-password",
            "bootstrap-password-123",
        ])
        .unwrap();
        let debug = format!("{s:?}");
        for secret in [
            "pg-password-123",
            "q7Vx2LmZ9pTcR4wYb8NkHs3JdF6gAeUo",
            "bootstrap-password-123",
        ] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
    }
}
