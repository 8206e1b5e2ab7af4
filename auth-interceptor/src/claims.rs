//! The claims of an `auth.v1` access token (RFC 9068 profile plus `sid`, `roles` and `username`).

use serde::{Deserialize, Serialize};

/// The `aud` claim: one audience or several (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience string.
    One(String),
    /// A list of audiences; a token is accepted when any of them is the expected one.
    Many(Vec<String>),
}

impl Audience {
    /// The audiences as a slice-like iterator.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let slice: &[String] = match self {
            Audience::One(a) => std::slice::from_ref(a),
            Audience::Many(v) => v,
        };
        slice.iter().map(String::as_str)
    }

    /// True when `aud` is one of the audiences.
    pub fn contains(&self, aud: &str) -> bool {
        self.iter().any(|a| a == aud)
    }
}

/// Verified claims of an access token.
///
/// Every field is typed: a token whose `exp` is a string, whose `sub` is a number or whose `roles` is
/// not a list of strings does not deserialize and is rejected as malformed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Subject: the stable user id.
    pub sub: String,
    /// Audience.
    pub aud: Audience,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    /// Not before, seconds since the Unix epoch.
    pub nbf: u64,
    /// Unique token id.
    pub jti: String,
    /// Session id: the refresh-token family this token was issued in.
    pub sid: String,
    /// The user's roles when the token was issued.
    #[serde(default)]
    pub roles: Vec<String>,
    /// The user's username when the token was issued.
    pub username: String,
    /// The OAuth client the token was issued to (RFC 9068 requires it; ours is the issuer's own login
    /// endpoint, so it is always `"auth-server"`).
    pub client_id: String,
}

impl Claims {
    /// True when the token carries `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}
