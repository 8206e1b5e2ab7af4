//! The records of service accounts: the account row (with the MACs of its secrets), its registered
//! public keys, and what `Validate` needs to know about an account.

use sqlx::FromRow;

use super::records::RolesColumn;

/// Most public keys one service account may register.
pub const MAX_SERVICE_ACCOUNT_KEYS: usize = 8;

/// A service account (a row of `service_accounts`) with its keys.
#[derive(Clone, PartialEq, Eq, FromRow)]
pub struct ServiceAccountRecord {
    /// Stable id (UUID v7 text); the `sub` of the account's tokens.
    pub id: String,
    /// The client id: unique among service accounts.
    pub name: String,
    /// Free text for operators.
    pub description: String,
    /// Roles carried in the account's tokens (a JSON list).
    #[sqlx(try_from = "RolesColumn")]
    pub roles: Vec<String>,
    /// The audiences the account may ask tokens for (a JSON list).
    #[sqlx(try_from = "RolesColumn")]
    pub audiences: Vec<String>,
    /// A disabled account obtains no token, and its tokens fail `Validate`.
    pub disabled: bool,
    /// HMAC-SHA-256 of the current client secret (see `service_accounts::secret`); never the secret.
    pub secret_hash: Vec<u8>,
    /// The MAC of the rotated-out secret, accepted until `previous_secret_expires_at`.
    pub previous_secret_hash: Option<Vec<u8>>,
    /// When the rotated-out secret stops working.
    pub previous_secret_expires_at: Option<i64>,
    /// The account's tokens issued before this time are no longer accepted.
    pub tokens_not_before: i64,
    /// Creation time.
    pub created_at: i64,
    /// Last change time.
    pub updated_at: i64,
    /// The registered public keys, oldest first (filled by the store; not a column).
    #[sqlx(skip)]
    pub keys: Vec<ServiceAccountKeyRecord>,
}

impl std::fmt::Debug for ServiceAccountRecord {
    /// Everything but the MACs of the secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountRecord")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("roles", &self.roles)
            .field("audiences", &self.audiences)
            .field("disabled", &self.disabled)
            .field(
                "previous_secret_expires_at",
                &self.previous_secret_expires_at,
            )
            .field("tokens_not_before", &self.tokens_not_before)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// A public key registered for client assertions (a row of `service_account_keys`).
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ServiceAccountKeyRecord {
    /// The key id assertions name in their header.
    pub kid: String,
    /// `EdDSA` or `ES256`.
    pub alg: String,
    /// The public JWK as JSON (public members only).
    pub public_jwk: String,
    /// When it was registered.
    pub created_at: i64,
}

/// What an update changes: the account's roles, allowed audiences and description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountUpdate {
    /// The new roles.
    pub roles: Vec<String>,
    /// The new allowed audiences.
    pub audiences: Vec<String>,
    /// The new description.
    pub description: String,
}

/// What `Validate` needs to know about the holder of a service token.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ServiceAccountStatus {
    /// True when the account is disabled.
    pub disabled: bool,
    /// The account's tokens issued before this time are no longer accepted.
    pub tokens_not_before: i64,
}

/// What registering a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyAdded {
    /// Registered; the account after the change.
    Added(Box<ServiceAccountRecord>),
    /// The account has [`MAX_SERVICE_ACCOUNT_KEYS`] keys already; nothing changed.
    Full,
    /// The account already has a key with this `kid`; nothing changed.
    KidTaken,
}
