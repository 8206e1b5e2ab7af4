//! Persistence: the [`Store`] trait (users and sessions, plus one supertrait per other part:
//! [`AuditStore`], [`KeyStore`], [`RevocationStore`], [`ServiceAccountStore`], [`ThrottleStore`]) and
//! its records, implemented once ([`sql::SqlStore`], one file per part) over two backends whose
//! differences live in one [`dialect::Dialect`] file each: [`postgres::PgStore`] for production,
//! [`sqlite::SqliteStore`] as the zero-config default.
//!
//! Every method that depends on time takes `now` (seconds since the Unix epoch) from the caller, so
//! the services own the clock and tests can move it. Secrets never reach this layer in clear: refresh
//! tokens arrive as SHA-256 digests, passwords as PHC strings, private keys encrypted.

use async_trait::async_trait;

mod audit;
pub mod dialect;
mod keys;
pub mod postgres;
mod records;
pub(crate) mod revocations;
mod rows;
mod service_account_records;
mod service_accounts;
pub mod sql;
pub mod sqlite;
mod throttle;
mod usernames;

pub use records::{
    AttemptRule, AuditEvent, AuditQuery, KeyRotation, KeyStatus, NewSession, Reservation,
    RevokeScope, RotateOutcome, SessionRecord, SessionStatus, SigningKeyRecord, UserRecord,
};
pub use service_account_records::{
    KeyAdded, MAX_SERVICE_ACCOUNT_KEYS, ServiceAccountKeyRecord, ServiceAccountRecord,
    ServiceAccountStatus, ServiceAccountUpdate,
};

pub use revocations::{LogBounds, RevocationKind, RevocationRecord};

#[cfg(test)]
mod tests;

/// Storage failures. The message of [`StoreError::Database`] is for logs only, never for callers.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was violated (e.g. the username is taken).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The username's skeleton is an existing account's: it looks like that username.
    #[error("the username looks like an existing one")]
    LookAlike,
    /// The database could not be reached or the query failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored row could not be decoded (e.g. roles column is not a JSON list).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The change would leave no enabled user with the role [`ADMIN_ROLE`]; nothing was changed.
    #[error("the last enabled admin cannot be demoted, disabled or deleted")]
    LastAdmin,
}

/// A spent refresh token presented again within this many seconds of its use, while its successor is
/// still the session's live token, is taken for a concurrent duplicate of the rotation that won (a
/// client retrying, two tabs): it is refused, but the session is not revoked. Any other reuse revokes
/// the whole session (RFC 9700 §4.14.2). Times are whole seconds, so the window is 2 s to just under
/// 3 s of wall time.
pub const CONCURRENT_REFRESH_WINDOW_SECS: i64 = 2;

/// True when a spent token's reuse is a concurrent duplicate (see [`CONCURRENT_REFRESH_WINDOW_SECS`]).
pub(crate) fn is_concurrent_duplicate(
    used_at: Option<i64>,
    token_gen: i64,
    session_gen: i64,
    now: i64,
) -> bool {
    session_gen == token_gen + 1
        && used_at.is_some_and(|t| now - t <= CONCURRENT_REFRESH_WINDOW_SECS)
}

/// The role that administers the server. The store keeps at least one enabled user holding it: every
/// change that could remove the last one (roles, disable, delete) is refused with
/// [`StoreError::LastAdmin`] in the same transaction, under concurrency on both backends.
pub const ADMIN_ROLE: &str = "admin";

/// Result alias for storage calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// How long after its issue an access token can still pass a verifier, seconds, when the store is not
/// told ([`sql::SqlStore::with_token_lifetime`]): the longest access-token lifetime (1 day) plus the
/// largest leeway (300 s). A revocation log row expires this long after it is appended.
pub const DEFAULT_TOKEN_LIFETIME: i64 = 86_400 + 300;

/// A stream of wake-ups from other processes appending to the revocation log (see
/// [`RevocationStore::revocation_wakeups`]).
pub type Wakeups = futures_util::stream::BoxStream<'static, StoreResult<()>>;

/// The storage interface of the auth server. Implementations must make each method atomic: a failed
/// call leaves the database as it was.
///
/// Every change that ends tokens before their expiry (session revocation, logout, refresh-token
/// reuse, disable, delete, password change, role change, key rotation) appends to the revocation log
/// in the same transaction (see [`revocations`]).
#[async_trait]
pub trait Store:
    AuditStore
    + KeyStore
    + RevocationStore
    + ServiceAccountStore
    + ThrottleStore
    + Send
    + Sync
    + 'static
{
    /// Applies the embedded migrations, then gives accounts stored before usernames had a skeleton
    /// their canonical key and skeleton under the current profile (SQL cannot compute them).
    async fn migrate(&self) -> StoreResult<()>;
    /// Checks that the database answers (health).
    async fn ping(&self) -> StoreResult<()>;

    /// Inserts a user; [`StoreError::Conflict`] when `username_key` is taken, [`StoreError::LookAlike`]
    /// when `username_skeleton` is.
    async fn create_user(&self, user: &UserRecord) -> StoreResult<()>;
    /// A user by id.
    async fn user_by_id(&self, id: &str) -> StoreResult<Option<UserRecord>>;
    /// A user by canonical username.
    async fn user_by_username_key(&self, key: &str) -> StoreResult<Option<UserRecord>>;
    /// Users ordered by `username_key`, strictly after `after_key`, at most `limit`.
    async fn list_users(&self, after_key: Option<&str>, limit: i64)
    -> StoreResult<Vec<UserRecord>>;
    /// Number of users.
    async fn count_users(&self) -> StoreResult<i64>;
    /// Replaces a user's roles, ending the access tokens issued before (`tokens_not_before`), in one
    /// statement; `None` when the user does not exist.
    async fn set_roles(
        &self,
        id: &str,
        roles: &[String],
        now: i64,
    ) -> StoreResult<Option<UserRecord>>;
    /// Sets `disabled`; disabling also ends the user's access tokens and revokes all of the user's live
    /// sessions in the same transaction.
    /// Returns the updated user and the number of sessions revoked; `None` when the user does not exist.
    async fn set_disabled(
        &self,
        id: &str,
        disabled: bool,
        now: i64,
    ) -> StoreResult<Option<(UserRecord, u64)>>;
    /// Sets the password hash and revokes sessions per `scope`, atomically; unless the scope is
    /// [`RevokeScope::None`] (a rehash), the user's access tokens issued before end too. Returns the number of
    /// sessions revoked; `None` when the user does not exist.
    async fn set_password_hash(
        &self,
        id: &str,
        hash: &str,
        now: i64,
        scope: RevokeScope<'_>,
    ) -> StoreResult<Option<u64>>;
    /// Deletes a user with its sessions and refresh tokens, ending every token issued to it up to
    /// `now`. False when it did not exist.
    async fn delete_user(&self, id: &str, now: i64) -> StoreResult<bool>;

    /// Creates a session with its first refresh token.
    async fn create_session(&self, session: &NewSession, now: i64) -> StoreResult<()>;
    /// Consumes the refresh token whose digest is `old_hash` and stores `new_hash` as its successor, in
    /// one transaction, such that of N concurrent calls with the same `old_hash` exactly one rotates.
    /// `idle_ttl` (seconds) sets the successor's expiry, capped by the session's absolute lifetime.
    async fn rotate_refresh(
        &self,
        old_hash: &[u8],
        new_hash: &[u8],
        now: i64,
        idle_ttl: i64,
    ) -> StoreResult<RotateOutcome>;
    /// Revokes the session that owns the refresh token `hash` (any token of the family, spent or live).
    /// Returns the session id and owner when a live session was revoked.
    async fn revoke_session_by_refresh(
        &self,
        hash: &[u8],
        now: i64,
    ) -> StoreResult<Option<(String, String)>>;
    /// Revokes one session; false when unknown or already revoked.
    async fn revoke_session(&self, session_id: &str, now: i64) -> StoreResult<bool>;
    /// Revokes all live sessions of a user, except `except`; returns how many.
    async fn revoke_user_sessions(
        &self,
        user_id: &str,
        except: Option<&str>,
        now: i64,
    ) -> StoreResult<u64>;
    /// Session and owner status for `Validate`; `None` when the session (or its user) does not exist.
    async fn session_status(&self, session_id: &str) -> StoreResult<Option<SessionStatus>>;
    /// A session by id.
    async fn session_by_id(&self, session_id: &str) -> StoreResult<Option<SessionRecord>>;
    /// Live sessions of a user (not revoked, absolute lifetime not over), newest first.
    async fn list_active_sessions(
        &self,
        user_id: &str,
        now: i64,
    ) -> StoreResult<Vec<SessionRecord>>;

    /// Housekeeping: deletes retired keys past `publish_until`, sessions past their absolute lifetime
    /// (with their refresh tokens, which until then serve as reuse-detection tombstones), spent
    /// client-assertion `jti`s past their expiry and revocation log rows past their `expires_at`
    /// (raising the pruned horizon). Returns the number of rows deleted.
    async fn purge_expired(&self, now: i64) -> StoreResult<u64>;
}

/// The service-account part of the [`Store`] (implemented in `service_accounts.rs`): accounts, their
/// secrets' MACs, their public keys and the single-use `jti`s of client assertions. Every change
/// that ends an account's tokens also appends to the revocation log, in its transaction.
#[async_trait]
pub trait ServiceAccountStore: Send + Sync {
    /// Inserts a service account (with `secret_hash`, no previous secret, no keys);
    /// [`StoreError::Conflict`] when its name is taken.
    async fn create_service_account(&self, account: &ServiceAccountRecord) -> StoreResult<()>;
    /// A service account with its keys, by id or (`by_name`) by name.
    async fn service_account(
        &self,
        by_name: bool,
        value: &str,
    ) -> StoreResult<Option<ServiceAccountRecord>>;
    /// The account named `name` without its keys, in one query (the token-issuing hot path).
    async fn service_account_for_token(
        &self,
        name: &str,
    ) -> StoreResult<Option<ServiceAccountRecord>>;
    /// The public keys of account `id`, oldest first.
    async fn service_account_keys(&self, id: &str) -> StoreResult<Vec<ServiceAccountKeyRecord>>;
    /// Service accounts with their keys ordered by name, strictly after `after_name`, at most `limit`.
    async fn list_service_accounts(
        &self,
        after_name: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<ServiceAccountRecord>>;
    /// Replaces an account's roles, audiences and description; when a role or an audience is taken
    /// away, the account's tokens issued before end, in the same transaction. `None`: no such account.
    async fn update_service_account(
        &self,
        id: &str,
        update: &ServiceAccountUpdate,
        now: i64,
    ) -> StoreResult<Option<ServiceAccountRecord>>;
    /// Sets `disabled`; disabling also ends the account's tokens, atomically. `None`: no such account.
    async fn set_service_account_disabled(
        &self,
        id: &str,
        disabled: bool,
        now: i64,
    ) -> StoreResult<Option<ServiceAccountRecord>>;
    /// Deletes an account and its keys, ending its tokens. False when it did not exist.
    async fn delete_service_account(&self, id: &str, now: i64) -> StoreResult<bool>;
    /// Makes `new_hash` the account's secret; the current one stays accepted until `previous_until`,
    /// or (`None`) stops at once and the account's tokens end, atomically. `None`: no such account.
    async fn rotate_service_account_secret(
        &self,
        id: &str,
        new_hash: &[u8],
        previous_until: Option<i64>,
        now: i64,
    ) -> StoreResult<Option<ServiceAccountRecord>>;
    /// Registers a public key unless the account has [`MAX_SERVICE_ACCOUNT_KEYS`] already or the
    /// `kid` is taken (checked under the account's lock). `None`: no such account.
    async fn add_service_account_key(
        &self,
        id: &str,
        key: &ServiceAccountKeyRecord,
    ) -> StoreResult<Option<KeyAdded>>;
    /// Removes a key and ends the account's tokens, atomically. `None`: no such account or key.
    async fn remove_service_account_key(
        &self,
        id: &str,
        kid: &str,
        now: i64,
    ) -> StoreResult<Option<ServiceAccountRecord>>;
    /// What `Validate` needs about the holder of a service token; `None` when it does not exist.
    async fn service_account_status(&self, id: &str) -> StoreResult<Option<ServiceAccountStatus>>;
    /// Records the `jti` of a client assertion of `client` until `expires_at`: false when it was
    /// recorded already (a replay), on any replica; of concurrent callers exactly one gets true.
    async fn spend_assertion_jti(
        &self,
        client: &str,
        jti: &str,
        expires_at: i64,
    ) -> StoreResult<bool>;
}

/// The revocation-log part of the [`Store`] (implemented in `revocations.rs`): reading the log, its
/// bounds, and the wake-ups of other processes' appends. Appending happens inside the transactions
/// of the changes themselves (`revocations::append`).
#[async_trait]
pub trait RevocationStore: Send + Sync {
    /// Revocation log rows with `seq > after`, oldest first, at most `limit`.
    async fn revocations_after(&self, after: i64, limit: i64)
    -> StoreResult<Vec<RevocationRecord>>;
    /// The pruned horizon and head of the revocation log.
    async fn revocation_bounds(&self) -> StoreResult<LogBounds>;
    /// Wake-ups sent when another process commits an append to the revocation log (PostgreSQL
    /// `LISTEN/NOTIFY`); `None` when the backend has none. A wake-up carries nothing: read the log.
    async fn revocation_wakeups(&self) -> StoreResult<Option<Wakeups>>;
}

/// The login-throttle part of the [`Store`] (implemented in `throttle.rs`): per-key failure counts
/// and locks, shared by every replica.
#[async_trait]
pub trait ThrottleStore: Send + Sync {
    /// The one of `keys` locked at `now` with the latest end, and that end; `None` when none is.
    async fn login_lock(&self, keys: [&str; 3], now: i64) -> StoreResult<Option<(String, i64)>>;
    /// Counts an attempt refused by `key`'s lock; returns how many its current lock refused.
    async fn note_login_refused(&self, key: &str) -> StoreResult<i64>;
    /// Reserves one login attempt for `key` before the password is checked, atomically (of N
    /// concurrent callers, no more than the rule allows get through): counts it as a failure (a
    /// success resets the key later), and when the count reaches `rule.free`, locks the key for
    /// 2^level seconds (at most `rule.max_delay`) and starts counting again — a lock re-arms only after
    /// the failures that earn it. Failures older than `rule.window_start` are forgotten. A key locked
    /// at `now` is left as it is.
    async fn reserve_login_attempt(
        &self,
        key: &str,
        now: i64,
        rule: AttemptRule,
    ) -> StoreResult<Reservation>;
    /// Takes back one failure counted for `key` (a reserved attempt that succeeded).
    async fn refund_login_attempt(&self, key: &str) -> StoreResult<()>;
    /// Forgets the failures of `key` (after a successful login).
    async fn reset_login_failures(&self, key: &str) -> StoreResult<()>;
    /// Deletes throttling rows whose last failure is older than `before` and that are not locked at `now`.
    async fn purge_login_throttle(&self, before: i64, now: i64) -> StoreResult<u64>;
}

/// The audit-trail part of the [`Store`] (implemented in `audit.rs`).
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an event to the audit trail.
    async fn insert_audit(&self, event: &AuditEvent) -> StoreResult<()>;
    /// Reads the audit trail, newest first.
    async fn list_audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEvent>>;
    /// Deletes audit events older than `before`; returns how many.
    async fn purge_audit(&self, before: i64) -> StoreResult<u64>;
}

/// The signing-key part of the [`Store`] (implemented in `keys.rs`): the stored keys, their first
/// creation and the conditional rotation that replicas race for.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// All stored signing keys.
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>>;
    /// Inserts signing keys (first start: a current and a next key) unless a current key already exists,
    /// atomically. Returns false when keys already existed (another replica won the race).
    async fn init_signing_keys(&self, keys: &[SigningKeyRecord]) -> StoreResult<bool>;
    /// Rotation, atomically, if `rotation`'s conditions hold: the current key becomes retired with
    /// `publish_until = rotation.retire_until`, the next key becomes current, and `new_next` is
    /// inserted as the next key. Returns the kids `(current, retired)` after rotation, `None` when a
    /// condition does not hold (not due yet, or another replica rotated first); fails if there is no
    /// current or no next key.
    async fn rotate_signing_keys(
        &self,
        new_next: &SigningKeyRecord,
        rotation: &KeyRotation,
    ) -> StoreResult<Option<(String, String)>>;
}
