//! The records the store reads and writes. Each row type decodes by column name
//! (`#[derive(FromRow)]`), so a column missing from a query fails loudly instead of shifting values.

use sqlx::FromRow;

use super::{StoreError, StoreResult};

/// A user account (a row of `users`).
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct UserRecord {
    /// Stable id (UUID v7 text); the `sub` of the user's tokens.
    pub id: String,
    /// The username as created (display form).
    pub username: String,
    /// The canonical username (RFC 8265 UsernameCaseMapped, full-case-folded; see
    /// [`crate::username`]): unique.
    pub username_key: String,
    /// The UTS #39 skeleton of `username_key`: unique, so no account looks like another. `None` only
    /// for an account stored before it existed whose skeleton is an older account's (see
    /// `SqlStore::migrate`).
    pub username_skeleton: Option<String>,
    /// Argon2id PHC string; `None` for an account that cannot log in with a password.
    pub password_hash: Option<String>,
    /// Roles (stored as a JSON list).
    #[sqlx(try_from = "RolesColumn")]
    pub roles: Vec<String>,
    /// A disabled user cannot log in or refresh, and its tokens fail `Validate`.
    pub disabled: bool,
    /// Creation time.
    pub created_at: i64,
    /// Last change time.
    pub updated_at: i64,
}

/// A session: one login, i.e. one family of rotating refresh tokens (a row of `sessions`).
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct SessionRecord {
    /// Session id (UUID v7 text); the `sid` claim.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Login time.
    pub created_at: i64,
    /// Last refresh time (equals `created_at` until the first refresh).
    pub last_used_at: i64,
    /// The session ends at this time whatever its use (absolute lifetime).
    pub absolute_expires_at: i64,
    /// Set when the session was ended (logout, revocation, reuse detection, password change, ...).
    pub revoked_at: Option<i64>,
}

/// A new session with its first refresh token.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Session id.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// SHA-256 of the first refresh token.
    pub refresh_hash: Vec<u8>,
    /// When the first refresh token expires if unused (idle timeout).
    pub refresh_expires_at: i64,
    /// When the session ends regardless of use.
    pub absolute_expires_at: i64,
}

/// What happened to a presented refresh token in [`Store::rotate_refresh`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The token was live: it is now spent and `new_hash` is the session's live token.
    Rotated {
        /// The session (with `last_used_at` updated).
        session: SessionRecord,
        /// The session's owner, as stored now (current roles and username); boxed, as the largest
        /// part of the outcome.
        user: Box<UserRecord>,
        /// When the new refresh token expires if unused.
        refresh_expires_at: i64,
    },
    /// The token had already been used: the whole session was revoked (RFC 9700 reuse detection).
    /// This revocation is committed even though the call fails.
    Reused {
        /// The revoked session.
        session_id: String,
        /// Its owner.
        user_id: String,
    },
    /// The token is unknown, expired (idle), or its session is revoked or past its absolute lifetime, or
    /// its user is disabled. Nothing was changed.
    Rejected,
}

/// Which of a user's sessions to end alongside a password change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeScope<'a> {
    /// None (e.g. a transparent rehash on login).
    None,
    /// All of them (admin password reset).
    All,
    /// All but this session (the caller's own password change).
    AllExcept(&'a str),
}

/// What `Validate` needs to know about a session, in one query.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct SessionStatus {
    /// Owner.
    pub user_id: String,
    /// True when the session was ended.
    pub revoked: bool,
    /// Absolute end of the session.
    pub absolute_expires_at: i64,
    /// True when the owner is disabled.
    pub user_disabled: bool,
    /// Access tokens of the owner issued before this time (a role change, a disable, a password
    /// change) are no longer accepted, whatever their `exp`.
    pub tokens_not_before: i64,
}

/// Lifecycle state of a signing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// Signs new tokens. Exactly one key is current.
    Current,
    /// Published ahead of use; becomes current at the next rotation.
    Next,
    /// No longer signs; published until `publish_until` so its tokens keep verifying.
    Retired,
}

impl KeyStatus {
    /// Column value.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Current => "current",
            KeyStatus::Next => "next",
            KeyStatus::Retired => "retired",
        }
    }
}

impl TryFrom<String> for KeyStatus {
    type Error = StoreError;

    /// Parses a column value.
    fn try_from(s: String) -> StoreResult<Self> {
        match s.as_str() {
            "current" => Ok(KeyStatus::Current),
            "next" => Ok(KeyStatus::Next),
            "retired" => Ok(KeyStatus::Retired),
            other => Err(StoreError::Corrupt(format!("unknown key status {other:?}"))),
        }
    }
}

/// The `roles` column as stored: a JSON list of strings.
#[derive(Debug, sqlx::Type)]
#[sqlx(transparent)]
pub(super) struct RolesColumn(String);

impl RolesColumn {
    /// Encodes roles for the column.
    pub(super) fn encode(roles: &[String]) -> StoreResult<String> {
        serde_json::to_string(roles)
            .map_err(|_| StoreError::Corrupt("roles cannot be encoded".into()))
    }
}

impl TryFrom<RolesColumn> for Vec<String> {
    type Error = StoreError;

    fn try_from(column: RolesColumn) -> StoreResult<Self> {
        serde_json::from_str(&column.0)
            .map_err(|_| StoreError::Corrupt("roles column is not a JSON list of strings".into()))
    }
}

/// A signing key as stored (a row of `signing_keys`).
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct SigningKeyRecord {
    /// Key id (`kid`).
    pub kid: String,
    /// JOSE algorithm name, e.g. `"EdDSA"`.
    pub alg: String,
    /// Lifecycle state.
    #[sqlx(try_from = "String")]
    pub status: KeyStatus,
    /// PKCS#8 private key, encrypted under the master key (nonce ‖ AES-256-GCM ciphertext).
    pub private_key_enc: Vec<u8>,
    /// The public JWK as JSON (no private members).
    pub public_jwk: String,
    /// Creation time: from then on the key is published (first as the next key).
    pub created_at: i64,
    /// For retired keys: stop publishing (and delete) after this time.
    pub publish_until: Option<i64>,
    /// When it became current (`None` while it is the next key).
    pub activated_at: Option<i64>,
}

/// The conditions of one signing-key rotation, checked inside the rotating transaction: of several
/// replicas racing for the same due rotation exactly one performs it, and the others see `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRotation {
    /// The time of the rotation: the new current key's `activated_at`, the new next key's
    /// `created_at`.
    pub now: i64,
    /// The retired key's `publish_until`.
    pub retire_until: i64,
    /// Rotate only if the current key became current at or before this time.
    pub current_since: i64,
    /// Rotate only if the next key has been published since this time or earlier.
    pub next_since: i64,
    /// Revoke every token the retired key signed (a forced rotation: the key may be compromised).
    pub revoke_retired: bool,
}

/// One security event of the audit trail (a row of `audit_events`). Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct AuditEvent {
    /// Sequence number (assigned by the database; ignored on insert).
    pub id: i64,
    /// When it happened.
    #[sqlx(rename = "event_time")]
    pub time: i64,
    /// What happened, e.g. `login.failed`, `refresh.reuse_detected`, `user.disabled`.
    pub event: String,
    /// `success`, `failure` or `refused`.
    pub outcome: String,
    /// Who acted (user id), when known.
    pub actor: Option<String>,
    /// Whom or what it concerned (user id, session id, key id, or `unknown:` and the label of an
    /// attempted username that has no account — never the name itself).
    pub subject: Option<String>,
    /// Source address of the request.
    pub source: Option<String>,
    /// Short free text (a cause, a count); never a secret.
    pub detail: Option<String>,
}

/// The throttling rule of one key (see `Store::reserve_login_attempt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptRule {
    /// Failures before the key locks.
    pub free: i64,
    /// Longest lock, seconds.
    pub max_delay: i64,
    /// Failures before this time are forgotten.
    pub window_start: i64,
}

/// What reserving an attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromRow)]
pub struct Reservation {
    /// The key's lock end after this attempt (in the past when not locked).
    pub locked_until: i64,
    /// Attempts refused by the current lock; non-zero only when the key was already locked, so this
    /// attempt was not counted and must be refused.
    pub refused: i64,
    /// Failures counted since the last lock (0 right after this attempt locked the key).
    pub failures: i64,
}

/// A page of the audit trail, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only events whose actor or subject is this user id.
    pub user_id: Option<String>,
    /// Only events at or after this time.
    pub since: Option<i64>,
    /// Only events before this time.
    pub until: Option<i64>,
    /// Only events with an id below this (pagination cursor).
    pub before_id: Option<i64>,
    /// At most this many.
    pub limit: i64,
}
