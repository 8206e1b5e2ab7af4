//! How tokens are signed: asymmetric keys kept in the database under a master key, or one shared
//! HS256 secret; and how often replicas re-read the keys.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use jsonwebtoken::Algorithm;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::check::{ConfigError, bad, within};
use super::database::{Backend, DatabaseSettings, secret};
use crate::keys::master::MasterKey;
use crate::keys::rotation::RotationPolicy;

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

/// Signing-key flags.
#[derive(Debug, Clone, Args)]
pub struct KeyArgs {
    /// 32 random bytes, base64: encrypts private signing keys at rest. Required with PostgreSQL; with
    /// SQLite it is generated into `DATA_DIR/master.key` if absent.
    #[arg(long, env = "AUTH_MASTER_KEY", hide_env_values = true, value_parser = secret)]
    pub master_key: Option<SecretString>,

    /// Signing algorithm of new keys.
    #[arg(long, env = "AUTH_SIGNING_ALG", value_enum, default_value = "EdDSA")]
    pub signing_alg: SigningAlg,

    /// Shared secret for HS256 mode (at least 32 random bytes).
    #[arg(long, env = "AUTH_HS256_SECRET", hide_env_values = true, value_parser = secret)]
    pub hs256_secret: Option<SecretString>,

    /// Let HS256 tokens use the admin API. Off by default: every holder of the shared secret (every
    /// downstream verifier) can mint tokens, so in HS256 mode AdminService refuses them unless this
    /// is set.
    #[arg(long, env = "AUTH_HS256_ADMIN")]
    pub hs256_admin: bool,

    /// How often to re-read signing keys from the database (picks up rotations by other replicas),
    /// seconds [1..=3600]. Due automatic rotations are performed at this pace too.
    #[arg(long, env = "AUTH_KEY_RELOAD_INTERVAL", default_value_t = 30)]
    pub key_reload_interval: u64,

    /// Rotate the signing key automatically after it has signed for this long, seconds: 0 (only on
    /// request) or [3600..=31536000]; default 7 days. Exactly one replica performs each rotation.
    #[arg(long, env = "AUTH_KEY_ROTATION_INTERVAL", default_value_t = 7 * 24 * 3600)]
    pub key_rotation_interval: u64,

    /// The next key is published (in the JWKS) at least this long before it signs, so mesh and
    /// verifier caches hold it in time (Envoy caches a remote JWKS 10 min by default, istiod
    /// refreshes every 20 min), seconds [0..=2592000]; at least AUTH_KEY_RELOAD_INTERVAL and at most
    /// AUTH_KEY_ROTATION_INTERVAL when rotating automatically. Requested rotations respect it unless
    /// forced.
    #[arg(long, env = "AUTH_KEY_PREPUBLISH", default_value_t = 3600)]
    pub key_prepublish: u64,
}

/// Where the master key comes from.
#[derive(Debug)]
pub enum MasterKeySource {
    /// Given in configuration.
    Configured(MasterKey),
    /// To be read from (or generated into) this file (SQLite only).
    File(PathBuf),
}

/// How tokens are signed.
#[derive(Debug)]
pub enum Signing {
    /// Keys of `alg` generated and stored in the database, encrypted under the master key.
    Asymmetric {
        /// Algorithm of new keys.
        alg: Algorithm,
        /// The master key.
        master: MasterKeySource,
    },
    /// HS256 with this shared secret; no JWKS is published.
    SharedSecret(Zeroizing<Vec<u8>>),
}

/// Validated key settings.
#[derive(Debug)]
pub struct KeySettings {
    /// Signing mode.
    pub signing: Signing,
    /// How often replicas re-read the key table.
    pub reload_interval: Duration,
    /// When keys rotate by themselves and how long a key is published before it signs.
    pub rotation: RotationPolicy,
    /// AdminService refuses every token (HS256 mode without `AUTH_HS256_ADMIN`).
    pub admin_api_refused: bool,
}

impl KeyArgs {
    /// Checks the key flags against the chosen database (PostgreSQL needs a configured master key).
    pub fn validate(self, database: &DatabaseSettings) -> Result<KeySettings, ConfigError> {
        let reload = within(
            "AUTH_KEY_RELOAD_INTERVAL",
            self.key_reload_interval,
            1,
            3600,
            " seconds",
        )?;
        let rotation = rotation_policy(self.key_rotation_interval, self.key_prepublish, reload)?;
        let signing = if self.signing_alg == SigningAlg::Hs256 {
            let secret = self.hs256_secret.ok_or_else(|| {
                bad(
                    "AUTH_HS256_SECRET",
                    "is required with AUTH_SIGNING_ALG=HS256",
                )
            })?;
            check_hs_secret(secret.expose_secret())?;
            Signing::SharedSecret(Zeroizing::new(secret.expose_secret().as_bytes().to_vec()))
        } else {
            let master = match (&self.master_key, &database.backend) {
                (Some(k), _) => MasterKeySource::Configured(
                    MasterKey::from_base64(k.expose_secret())
                        .map_err(|e| bad("AUTH_MASTER_KEY", e.to_string()))?,
                ),
                (None, Backend::Postgres { .. }) => {
                    return Err(bad(
                        "AUTH_MASTER_KEY",
                        "is required with PostgreSQL (32 random bytes, base64; e.g. `openssl rand -base64 32`)",
                    ));
                }
                (None, Backend::Sqlite { .. }) => {
                    MasterKeySource::File(database.data_dir.join("master.key"))
                }
            };
            Signing::Asymmetric {
                alg: self.signing_alg.algorithm(),
                master,
            }
        };
        let admin_api_refused = matches!(signing, Signing::SharedSecret(_)) && !self.hs256_admin;
        Ok(KeySettings {
            signing,
            reload_interval: Duration::from_secs(reload),
            rotation,
            admin_api_refused,
        })
    }
}

/// The rotation schedule: an interval of 0 or 1 h..1 year (so at most 25 retired keys are published
/// with the longest token lifetime), a pre-publication time that every replica's reload can meet and
/// that fits in the interval.
fn rotation_policy(
    interval: u64,
    prepublish: u64,
    reload: u64,
) -> Result<RotationPolicy, ConfigError> {
    const YEAR: u64 = 365 * 24 * 3600;
    let prepublish = within(
        "AUTH_KEY_PREPUBLISH",
        prepublish,
        0,
        30 * 24 * 3600,
        " seconds",
    )?;
    if interval == 0 {
        return Ok(RotationPolicy {
            interval: None,
            prepublish: prepublish as i64,
        });
    }
    let interval = within(
        "AUTH_KEY_ROTATION_INTERVAL",
        interval,
        3600,
        YEAR,
        " seconds (or 0)",
    )?;
    if prepublish < reload || prepublish > interval {
        return Err(bad(
            "AUTH_KEY_PREPUBLISH",
            format!(
                "must be at least AUTH_KEY_RELOAD_INTERVAL ({reload} s), so every replica publishes \
                 the next key before it signs, and at most AUTH_KEY_ROTATION_INTERVAL ({interval} s) \
                 (--key-prepublish, got {prepublish})"
            ),
        ));
    }
    Ok(RotationPolicy {
        interval: Some(interval as i64),
        prepublish: prepublish as i64,
    })
}

/// Refuses HS256 secrets that are short or have a guessable shape.
fn check_hs_secret(secret: &str) -> Result<(), ConfigError> {
    let b = secret.as_bytes();
    if b.len() < auth_interceptor::MIN_HMAC_SECRET_LEN {
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
