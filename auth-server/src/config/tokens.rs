//! What the server's tokens say and how long they live: issuer, audience, access-token lifetime,
//! session lifetimes, and the clock-skew leeway of verification.

use std::time::Duration;

use auth_interceptor::VerifierConfig;
use clap::Args;

use super::check::{ConfigError, bad, within};
use crate::state::SessionPolicy;
use crate::token::access::AccessTokenIssuer;

/// Longest session lifetime accepted, seconds (one year).
const MAX_SESSION_SECS: i64 = 366 * 24 * 3600;

/// Token flags.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The `iss` of issued tokens (and the only one accepted).
    #[arg(long, env = "AUTH_ISSUER", default_value = "auth-server")]
    pub issuer: String,

    /// The `aud` of issued tokens (and the only one accepted by `Validate`).
    #[arg(long, env = "AUTH_AUDIENCE", default_value = "internal")]
    pub audience: String,

    /// Access-token lifetime, seconds [30..=86400].
    #[arg(long, env = "AUTH_ACCESS_TOKEN_TTL", default_value_t = 600)]
    pub access_token_ttl: i64,

    /// Refresh-token idle timeout, seconds [60..=31622400]: a session unused this long ends.
    #[arg(long, env = "AUTH_REFRESH_IDLE_TTL", default_value_t = 7 * 24 * 3600)]
    pub refresh_idle_ttl: i64,

    /// Absolute session lifetime, seconds [AUTH_REFRESH_IDLE_TTL..=31622400]: rotation never
    /// extends a session beyond it.
    #[arg(long, env = "AUTH_REFRESH_ABSOLUTE_TTL", default_value_t = 30 * 24 * 3600)]
    pub refresh_absolute_ttl: i64,

    /// Clock-skew leeway when verifying tokens, seconds [0..=300].
    #[arg(long, env = "AUTH_LEEWAY", default_value_t = 30)]
    pub leeway: u64,
}

/// Validated token settings.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// How access tokens are issued.
    pub issuer: AccessTokenIssuer,
    /// Session lifetimes.
    pub sessions: SessionPolicy,
    /// Clock-skew leeway, seconds.
    pub leeway: u64,
}

impl TokenArgs {
    /// Checks the token flags.
    pub fn validate(self) -> Result<TokenSettings, ConfigError> {
        if self.issuer.trim().is_empty() {
            return Err(bad("AUTH_ISSUER", "must not be empty"));
        }
        if self.audience.trim().is_empty() {
            return Err(bad("AUTH_AUDIENCE", "must not be empty"));
        }
        let ttl = within(
            "AUTH_ACCESS_TOKEN_TTL",
            self.access_token_ttl,
            30,
            24 * 3600,
            " seconds",
        )?;
        let idle_ttl = within(
            "AUTH_REFRESH_IDLE_TTL",
            self.refresh_idle_ttl,
            60,
            MAX_SESSION_SECS,
            " seconds",
        )?;
        if self.refresh_absolute_ttl < idle_ttl {
            return Err(bad(
                "AUTH_REFRESH_ABSOLUTE_TTL",
                "must be at least AUTH_REFRESH_IDLE_TTL",
            ));
        }
        let absolute_ttl = within(
            "AUTH_REFRESH_ABSOLUTE_TTL",
            self.refresh_absolute_ttl,
            60,
            MAX_SESSION_SECS,
            " seconds",
        )?;
        Ok(TokenSettings {
            issuer: AccessTokenIssuer {
                issuer: self.issuer,
                audience: self.audience,
                ttl,
            },
            sessions: SessionPolicy {
                idle_ttl,
                absolute_ttl,
            },
            leeway: within("AUTH_LEEWAY", self.leeway, 0, 300, " seconds")?,
        })
    }
}

impl TokenSettings {
    /// The verifier's rules for this server's own tokens: its issuer and audience, its leeway, and no
    /// token living longer than the server issues them.
    pub fn verifier_config(&self) -> VerifierConfig {
        let mut vc = VerifierConfig::new(self.issuer.issuer.clone(), self.issuer.audience.clone());
        vc.leeway = Duration::from_secs(self.leeway);
        vc.max_lifetime = Duration::from_secs(self.issuer.ttl.unsigned_abs());
        vc
    }

    /// How long after its issue an access token can still pass a verifier, leeway included,
    /// seconds: how long a retired key stays published and a revocation log row is kept.
    pub fn token_lifetime(&self) -> i64 {
        // Both bounded at validation (≤ 86400 and ≤ 300): no overflow.
        self.issuer.ttl + self.leeway as i64
    }

    /// How long a retired signing key stays published: until the last token it signed has expired,
    /// leeway included, seconds.
    pub fn retired_key_lifetime(&self) -> i64 {
        self.token_lifetime()
    }
}
