//! Rows as the store's SQL reads them, decoded by name (`#[derive(FromRow)]`), and their conversion
//! into the records of [`super`]. A column added to a query without a field here fails loudly.

use sqlx::FromRow;

use super::{
    AuditEvent, KeyStatus, SessionRecord, SessionStatus, SigningKeyRecord, StoreError, StoreResult,
    UserRecord,
};

/// The columns of `users` that [`UserRow`] decodes (a macro, so queries stay `&'static str`).
macro_rules! user_columns {
    () => {
        "id, username, username_key, password_hash, roles, disabled, created_at, updated_at"
    };
}
/// The columns of `sessions` that [`SessionRow`] decodes.
macro_rules! session_columns {
    () => {
        "id, user_id, created_at, last_used_at, absolute_expires_at, revoked_at"
    };
}
/// The columns of `signing_keys` that [`KeyRow`] decodes.
macro_rules! key_columns {
    () => {
        "kid, alg, status, private_key_enc, public_jwk, created_at, publish_until"
    };
}
/// The columns of `audit_events` that [`AuditRow`] decodes.
macro_rules! audit_columns {
    () => {
        "id, event_time, event, outcome, actor, subject, source, detail"
    };
}
pub(super) use {audit_columns, key_columns, session_columns, user_columns};

/// A row of `users`.
#[derive(Debug, FromRow)]
pub(super) struct UserRow {
    id: String,
    username: String,
    username_key: String,
    password_hash: Option<String>,
    roles: String,
    disabled: bool,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<UserRow> for UserRecord {
    type Error = StoreError;

    fn try_from(r: UserRow) -> StoreResult<Self> {
        Ok(UserRecord {
            roles: decode_roles(&r.roles)?,
            id: r.id,
            username: r.username,
            username_key: r.username_key,
            password_hash: r.password_hash,
            disabled: r.disabled,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// A row of `sessions`.
#[derive(Debug, FromRow)]
pub(super) struct SessionRow {
    id: String,
    user_id: String,
    created_at: i64,
    last_used_at: i64,
    absolute_expires_at: i64,
    revoked_at: Option<i64>,
}

impl From<SessionRow> for SessionRecord {
    fn from(r: SessionRow) -> Self {
        SessionRecord {
            id: r.id,
            user_id: r.user_id,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            absolute_expires_at: r.absolute_expires_at,
            revoked_at: r.revoked_at,
        }
    }
}

/// A session joined with its owner, as `Validate` needs it.
#[derive(Debug, FromRow)]
pub(super) struct SessionStatusRow {
    user_id: String,
    revoked_at: Option<i64>,
    absolute_expires_at: i64,
    disabled: bool,
}

impl From<SessionStatusRow> for SessionStatus {
    fn from(r: SessionStatusRow) -> Self {
        SessionStatus {
            user_id: r.user_id,
            revoked: r.revoked_at.is_some(),
            absolute_expires_at: r.absolute_expires_at,
            user_disabled: r.disabled,
        }
    }
}

/// A session id with its owner (what a revocation reports).
#[derive(Debug, FromRow)]
pub(super) struct SessionOwnerRow {
    pub(super) id: String,
    pub(super) user_id: String,
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

/// A row of `signing_keys`.
#[derive(Debug, FromRow)]
pub(super) struct KeyRow {
    kid: String,
    alg: String,
    status: String,
    private_key_enc: Vec<u8>,
    public_jwk: String,
    created_at: i64,
    publish_until: Option<i64>,
}

impl TryFrom<KeyRow> for SigningKeyRecord {
    type Error = StoreError;

    fn try_from(r: KeyRow) -> StoreResult<Self> {
        Ok(SigningKeyRecord {
            status: KeyStatus::parse(&r.status)?,
            kid: r.kid,
            alg: r.alg,
            private_key_enc: r.private_key_enc,
            public_jwk: r.public_jwk,
            created_at: r.created_at,
            publish_until: r.publish_until,
        })
    }
}

/// A row of `audit_events`.
#[derive(Debug, FromRow)]
pub(super) struct AuditRow {
    id: i64,
    event_time: i64,
    event: String,
    outcome: String,
    actor: Option<String>,
    subject: Option<String>,
    source: Option<String>,
    detail: Option<String>,
}

impl From<AuditRow> for AuditEvent {
    fn from(r: AuditRow) -> Self {
        AuditEvent {
            id: r.id,
            time: r.event_time,
            event: r.event,
            outcome: r.outcome,
            actor: r.actor,
            subject: r.subject,
            source: r.source,
            detail: r.detail,
        }
    }
}

/// Decodes the JSON roles column.
fn decode_roles(json: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(json)
        .map_err(|_| StoreError::Corrupt("roles column is not a JSON list of strings".into()))
}

/// Encodes roles for the roles column.
pub(super) fn encode_roles(roles: &[String]) -> StoreResult<String> {
    serde_json::to_string(roles).map_err(|_| StoreError::Corrupt("roles cannot be encoded".into()))
}
