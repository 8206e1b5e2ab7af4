//! The column lists of the records, and the rows that only the store's own queries read (the steps
//! of a refresh-token rotation and of a revocation), decoded by column name.

use sqlx::FromRow;

/// The columns of `users` that [`super::UserRecord`] decodes (a macro, so queries stay `&'static str`).
macro_rules! user_columns {
    () => {
        "id, username, username_key, username_skeleton, password_hash, roles, disabled, created_at, \
         updated_at"
    };
}
/// The columns of `sessions` that [`super::SessionRecord`] decodes.
macro_rules! session_columns {
    () => {
        "id, user_id, created_at, last_used_at, absolute_expires_at, revoked_at"
    };
}
/// The columns of `signing_keys` that [`super::SigningKeyRecord`] decodes.
macro_rules! key_columns {
    () => {
        "kid, alg, status, private_key_enc, public_jwk, created_at, publish_until, activated_at"
    };
}
/// The columns of `audit_events` that [`super::AuditEvent`] decodes.
macro_rules! audit_columns {
    () => {
        "id, event_time, event, outcome, actor, subject, source, detail"
    };
}
pub(super) use {audit_columns, key_columns, session_columns, user_columns};

/// A session id with its owner (what a revocation reports).
#[derive(Debug, FromRow)]
pub(super) struct SessionOwnerRow {
    pub(super) id: String,
    pub(super) user_id: String,
}

/// A locked throttle key.
#[derive(Debug, FromRow)]
pub(super) struct LockRow {
    pub(super) throttle_key: String,
    pub(super) locked_until: i64,
}

/// A refresh token that was live and has just been spent.
#[derive(Debug, FromRow)]
pub(super) struct SpentTokenRow {
    pub(super) session_id: String,
    pub(super) expires_at: i64,
}

/// A refresh token that could not be spent (already used): its session, and the generations that
/// tell a concurrent duplicate from a replay.
#[derive(Debug, FromRow)]
pub(super) struct ReusedTokenRow {
    pub(super) session_id: String,
    pub(super) user_id: String,
    pub(super) used_at: Option<i64>,
    pub(super) token_generation: i64,
    pub(super) session_generation: i64,
}
