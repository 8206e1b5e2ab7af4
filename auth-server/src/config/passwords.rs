//! How passwords are hashed (argon2id cost, how many hashes run and wait at once) and which new
//! passwords are accepted.

use clap::Args;

use super::check::{ConfigError, bad, within};
use crate::password::{HashParams, PasswordPolicy, Score};

/// Password flags.
#[derive(Debug, Clone, Args)]
pub struct PasswordArgs {
    /// Argon2id memory cost, KiB [8192..=4194304].
    #[arg(long, env = "AUTH_ARGON2_MEMORY_KIB", default_value_t = 19456)]
    pub argon2_memory_kib: u32,

    /// Argon2id iterations [1..=64].
    #[arg(long, env = "AUTH_ARGON2_ITERATIONS", default_value_t = 2)]
    pub argon2_iterations: u32,

    /// Argon2id parallelism (lanes) [1..=64].
    #[arg(long, env = "AUTH_ARGON2_PARALLELISM", default_value_t = 1)]
    pub argon2_parallelism: u32,

    /// Password hashes computed at once [0..=256] (0 = number of CPUs). Peak hashing memory is this ×
    /// memory cost.
    #[arg(long, env = "AUTH_HASH_CONCURRENCY", default_value_t = 0)]
    pub hash_concurrency: usize,

    /// Logins allowed to wait for a hashing slot [0..=10000]; more fail fast with UNAVAILABLE.
    #[arg(long, env = "AUTH_HASH_QUEUE", default_value_t = 32)]
    pub hash_queue: usize,

    /// Minimum password length for new passwords, characters [1..=1024].
    #[arg(long, env = "AUTH_PASSWORD_MIN_CHARS", default_value_t = 8)]
    pub password_min_chars: usize,

    /// Maximum password length, bytes [64..=65536] (longer input is refused before hashing).
    #[arg(long, env = "AUTH_PASSWORD_MAX_BYTES", default_value_t = 1024)]
    pub password_max_bytes: usize,

    /// Minimum zxcvbn strength score of new passwords [0..=4] (0 accepts any, 3 ≈ 10^10 guesses,
    /// 4 > 10^10); common and breached passwords score 0.
    #[arg(long, env = "AUTH_PASSWORD_MIN_SCORE", default_value_t = 3)]
    pub password_min_score: u8,
}

/// Validated password settings.
#[derive(Debug, Clone, Copy)]
pub struct PasswordSettings {
    /// Argon2 parameters and hashing pool bounds.
    pub hash: HashParams,
    /// Rules for new passwords.
    pub policy: PasswordPolicy,
}

impl PasswordArgs {
    /// Checks the password flags.
    pub fn validate(self) -> Result<PasswordSettings, ConfigError> {
        let memory_kib = within(
            "AUTH_ARGON2_MEMORY_KIB",
            self.argon2_memory_kib,
            8 * 1024,
            4 * 1024 * 1024,
            " KiB",
        )?;
        let iterations = within("AUTH_ARGON2_ITERATIONS", self.argon2_iterations, 1, 64, "")?;
        let parallelism = within(
            "AUTH_ARGON2_PARALLELISM",
            self.argon2_parallelism,
            1,
            64,
            "",
        )?;
        let concurrency = within("AUTH_HASH_CONCURRENCY", self.hash_concurrency, 0, 256, "")?;
        let max_queued = within("AUTH_HASH_QUEUE", self.hash_queue, 0, 10_000, "")?;
        let min_chars = within(
            "AUTH_PASSWORD_MIN_CHARS",
            self.password_min_chars,
            1,
            1024,
            "",
        )?;
        let max_bytes = within(
            "AUTH_PASSWORD_MAX_BYTES",
            self.password_max_bytes,
            64,
            64 * 1024,
            "",
        )?;
        let min_score = within("AUTH_PASSWORD_MIN_SCORE", self.password_min_score, 0, 4, "")?;
        let min_score = Score::try_from(min_score)
            .map_err(|e| bad("AUTH_PASSWORD_MIN_SCORE", e.to_string()))?;
        if min_chars > max_bytes {
            return Err(bad(
                "AUTH_PASSWORD_MIN_CHARS",
                "must not exceed AUTH_PASSWORD_MAX_BYTES",
            ));
        }
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(PasswordSettings {
            hash: HashParams {
                memory_kib,
                iterations,
                parallelism,
                max_concurrent: if concurrency == 0 { cpus } else { concurrency },
                max_queued,
            },
            policy: PasswordPolicy {
                min_chars,
                max_bytes,
                min_score,
            },
        })
    }
}
