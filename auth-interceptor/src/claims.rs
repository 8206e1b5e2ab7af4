//! The claims of an `auth.v1` access token (RFC 9068 profile plus `sid`, `roles`, `username` and, on
//! service tokens, `token_use`), and the [`TokenKind`] that tells user tokens from service tokens.

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
    /// Session id: the refresh-token family this token was issued in. Empty on service tokens (the
    /// verifier requires it non-empty on user tokens).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sid: String,
    /// The roles of the user (or service account) when the token was issued.
    #[serde(default)]
    pub roles: Vec<String>,
    /// The user's username when the token was issued. Empty on service tokens (the verifier requires
    /// it non-empty on user tokens).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// The OAuth client the token was issued to (RFC 9068 requires it): `"auth-server"` (the issuer's
    /// own login endpoint) on user tokens, the service account's name on service tokens.
    pub client_id: String,
    /// Who holds the token: the `token_use` claim, absent on user tokens and `"service"` on service
    /// tokens. Any other value is refused as malformed.
    #[serde(
        rename = "token_use",
        default,
        skip_serializing_if = "TokenKind::is_user"
    )]
    pub kind: TokenKind,
}

/// Whether an access token was issued to a user (Login, Refresh) or to a service account
/// (IssueServiceToken). On the wire it is the `token_use` claim: absent for [`TokenKind::User`],
/// `"service"` for [`TokenKind::Service`]; no other value deserializes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// A user's token: carries `sid` and `username`, no `token_use`.
    #[default]
    User,
    /// A service account's token: `"token_use": "service"`, `sub` = the account id, `client_id` = its
    /// name, no `sid` and no `username`.
    Service,
}

/// The `token_use` value of service tokens.
pub const SERVICE_TOKEN_USE: &str = "service";

impl TokenKind {
    /// True for [`TokenKind::User`] (whose tokens carry no `token_use`).
    pub fn is_user(&self) -> bool {
        *self == TokenKind::User
    }
}

impl Serialize for TokenKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            // Only reached when a caller serializes the field on its own: user tokens omit it.
            TokenKind::User => serializer.serialize_none(),
            TokenKind::Service => serializer.serialize_str(SERVICE_TOKEN_USE),
        }
    }
}

impl<'de> Deserialize<'de> for TokenKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        if value == SERVICE_TOKEN_USE {
            Ok(TokenKind::Service)
        } else {
            Err(serde::de::Error::custom("unknown token_use"))
        }
    }
}

impl Claims {
    /// True when the token was issued to a service account (`"token_use": "service"`).
    pub fn is_service(&self) -> bool {
        self.kind == TokenKind::Service
    }

    /// True when the token carries `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}
