//! Service accounts: machine identities that obtain short-lived access tokens for one audience with
//! `IssueServiceToken`, proving who they are with a client secret ([`secret`]) or an RFC 7523 client
//! assertion signed with a registered public key ([`jwk`], [`assertion`]). What an operator may
//! set is checked in [`input`]. `IssueServiceToken`'s hot path reads accounts through [`cache`] and
//! audits issued tokens through [`issued`].

pub(crate) mod assertion;
pub(crate) mod cache;
pub(crate) mod input;
pub(crate) mod issued;
pub(crate) mod jwk;
pub(crate) mod secret;

use secrecy::SecretString;

use crate::error::AuthError;
use crate::store::{ServiceAccountRecord, Store, StoreError};

/// The overlap of a secret rotation when none is given: 24 hours.
pub(crate) const DEFAULT_SECRET_OVERLAP_SECS: i64 = 24 * 3600;
/// The longest overlap of a secret rotation: 30 days.
pub(crate) const MAX_SECRET_OVERLAP_SECS: i64 = 30 * 24 * 3600;

/// What a new account is given.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewAccount<'a> {
    /// Its name (client id).
    pub(crate) name: &'a str,
    /// Its roles.
    pub(crate) roles: &'a [String],
    /// Its allowed audiences.
    pub(crate) audiences: &'a [String],
    /// Its description.
    pub(crate) description: &'a str,
}

/// Creates a service account with a fresh client secret (admin API and CLI): checks what it is
/// given, stores the account with the secret's MAC, and returns the secret — the only time it
/// exists outside the caller. A taken name is ALREADY_EXISTS.
pub(crate) async fn create(
    store: &dyn Store,
    secrets: &secret::SecretMacs,
    now: i64,
    new: NewAccount<'_>,
) -> Result<(ServiceAccountRecord, SecretString), AuthError> {
    let name = input::name(new.name)?;
    let roles = crate::input::roles(new.roles)?;
    let audiences = input::audiences(new.audiences)?;
    let description = input::description(new.description)?;
    let (secret, secret_hash) = secrets.generate()?;
    let account = ServiceAccountRecord {
        id: uuid::Uuid::now_v7().to_string(),
        name: name.to_owned(),
        description,
        roles,
        audiences,
        disabled: false,
        secret_hash,
        previous_secret_hash: None,
        previous_secret_expires_at: None,
        tokens_not_before: 0,
        created_at: now,
        updated_at: now,
        keys: vec![],
    };
    store
        .create_service_account(&account)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => AuthError::AlreadyExists("service account name taken"),
            other => other.into(),
        })?;
    Ok((account, secret))
}
