//! `AuthService/IssueServiceToken`: a service account proves who it is — with its client secret (one
//! MAC, compared in constant time) or an RFC 7523 assertion signed with one of its registered keys
//! (single-use `jti`) — and gets a short-lived token for one of its allowed audiences.
//!
//! Every failure to authenticate (unknown client, wrong or expired secret, disabled account, bad or
//! replayed assertion) is the same `UNAUTHENTICATED "invalid client credentials"`, audited with its
//! cause. Throttling uses the login throttle's buckets of the client id (by its label) and the source
//! address: a locked key refuses before anything is checked, and each failure is counted. Unlike a
//! login, the attempt is counted when it fails rather than reserved before the check: the check is a
//! MAC or a signature (microseconds, no hashing slot to hold), so a burst can only add the attempts in
//! flight to the threshold, against a 256-bit secret; and a success then writes no throttle row.
//!
//! The secret path's hot path is one database read, the throttle's lock check: the account comes
//! from the [`AccountCache`](crate::service_accounts::cache) when it admits the request (anything it
//! would refuse is judged on a fresh read), and issued tokens are audited once per account, audience
//! and minute ([`issued`](crate::service_accounts::issued)), not one row per token.

use std::sync::Arc;

use auth_proto::v1::issue_service_token_request::Credential;
use auth_proto::v1::{IssueServiceTokenRequest, IssueServiceTokenResponse};
use secrecy::{ExposeSecret, SecretString};

use crate::audit::{Entry, Outcome};
use crate::error::AuthError;
use crate::service_accounts::assertion::{self, AssertionRefused};
use crate::service_accounts::input;
use crate::state::AppState;
use crate::store::ServiceAccountRecord;
use crate::throttle::AttemptKeys;

/// Longest client id looked up (names are at most 64 characters; longer ones are refused as input).
const MAX_CLIENT_ID_LEN: usize = 256;

/// How the client proves who it is.
enum Proof {
    Secret(SecretString),
    Assertion(String),
}

/// Checks the request's form; nothing about the client is read yet.
fn parse(req: IssueServiceTokenRequest) -> Result<(String, Proof, String, Vec<String>), AuthError> {
    if req.client_id.is_empty() || req.client_id.len() > MAX_CLIENT_ID_LEN {
        return Err(AuthError::invalid(format!(
            "client_id must be 1-{MAX_CLIENT_ID_LEN} characters"
        )));
    }
    let proof = match req.credential {
        Some(Credential::ClientSecret(s)) if !s.is_empty() => Proof::Secret(SecretString::from(s)),
        Some(Credential::ClientAssertion(a)) if !a.is_empty() => Proof::Assertion(a),
        _ => {
            return Err(AuthError::invalid(
                "exactly one of client_secret or client_assertion is required",
            ));
        }
    };
    input::audience("audience", &req.audience)?;
    let scopes = crate::input::roles(&req.scopes)
        .map_err(|_| AuthError::invalid("scopes must be role names"))?;
    Ok((req.client_id, proof, req.audience, scopes))
}

/// Issues a service token (see the module documentation).
pub(crate) async fn issue(
    st: &AppState,
    peer: &str,
    req: IssueServiceTokenRequest,
) -> Result<IssueServiceTokenResponse, AuthError> {
    let (client_id, proof, audience, scopes) = parse(req)?;
    let now = st.now();
    let attempt = AttemptKeys::for_client(&st.labels, &client_id, peer);
    // A recently read row is used only when it admits the request as it stands.
    let cached = match &proof {
        Proof::Secret(secret) => st
            .account_cache
            .get(&client_id, now, |id, since| {
                st.revocations.subject_cut_since(id, since)
            })
            .filter(|a| admits(st, a, secret.expose_secret(), &audience, &scopes, now)),
        Proof::Assertion(_) => None,
    };
    let from_cache = cached.is_some();
    let account = match cached {
        Some(a) => Some(ServiceAccountRecord::clone(&a)),
        None => st.store.service_account_for_token(&client_id).await?,
    };
    // The audit trail names an account by its id, and a client id that has none by its label.
    let subject = match &account {
        Some(a) => a.id.clone(),
        None => format!("unknown-client:{}", st.labels.digest(&client_id)),
    };
    if let Err(refusal) = st.throttle.check(&*st.store, &attempt, now).await? {
        if let Some(count) = refusal.audit_count {
            let detail = format!(
                "{} locked for {} s more; {count} attempts refused by this lock",
                refusal.lock, refusal.retry_after
            );
            let entry = Entry::new("service_token.throttled", Outcome::Refused, peer)
                .subject(&subject)
                .detail(detail);
            st.audit(entry).await;
        }
        return Err(refusal.error());
    }
    let account = match authenticate(st, &client_id, account, &proof, now).await? {
        Ok(account) => {
            if !from_cache && matches!(proof, Proof::Secret(_)) {
                st.account_cache.put(Arc::new(account.clone()), now);
            }
            account
        }
        Err(cause) => {
            // Counted after the check (see the module documentation); a lock it sets refuses the next.
            let _ = st.throttle.count(&*st.store, &attempt, now).await?;
            let entry = Entry::new("service_token.failed", Outcome::Failure, peer)
                .subject(&subject)
                .detail(cause);
            st.audit(entry).await;
            return Err(AuthError::InvalidClientCredentials);
        }
    };
    if !account.audiences.contains(&audience) {
        let entry = Entry::new("service_token.failed", Outcome::Refused, peer)
            .subject(&account.id)
            .detail("audience not allowed");
        st.audit(entry).await;
        return Err(AuthError::AudienceNotAllowed);
    }
    let roles = if scopes.is_empty() {
        account.roles.clone()
    } else if scopes.iter().all(|s| account.roles.contains(s)) {
        scopes
    } else {
        return Err(AuthError::invalid(
            "scopes must be roles the service account holds",
        ));
    };
    let token = st
        .service_tokens
        .issue(&st.keys.signer(), &account, &audience, roles, now)?;
    st.metrics.service_token_issued();
    if let Some(unaudited) = st.issued_audit.note(&account.id, &audience, now) {
        let detail = match unaudited {
            0 => format!("audience {audience}"),
            n => format!("audience {audience}; {n} more issued since the last audited one"),
        };
        let entry = Entry::new("service_token.issued", Outcome::Success, peer)
            .actor(&account.id)
            .subject(&account.id)
            .detail(detail);
        st.audit(entry).await;
    }
    Ok(IssueServiceTokenResponse {
        access_token: token.token,
        token_type: "Bearer".into(),
        expires_in: token.exp - now,
    })
}

/// True when `account` (a cached row) would issue the token asked for with `secret`: the secret
/// matches, the account is enabled, the audience is allowed and the scopes are held.
fn admits(
    st: &AppState,
    account: &ServiceAccountRecord,
    secret: &str,
    audience: &str,
    scopes: &[String],
    now: i64,
) -> bool {
    st.secrets.matches(secret, account, now)
        && !account.disabled
        && account.audiences.iter().any(|a| a == audience)
        && scopes.iter().all(|s| account.roles.contains(s))
}

/// The account, when `proof` proves the client is it and it is enabled; otherwise the cause (for
/// the audit trail only).
async fn authenticate(
    st: &AppState,
    client_id: &str,
    account: Option<ServiceAccountRecord>,
    proof: &Proof,
    now: i64,
) -> Result<Result<ServiceAccountRecord, &'static str>, AuthError> {
    match proof {
        Proof::Secret(secret) => {
            // The MAC is computed for unknown clients too: the answer takes as long.
            let matched = match &account {
                Some(a) => st.secrets.matches(secret.expose_secret(), a, now),
                None => {
                    let _ = st.secrets.mac(secret.expose_secret());
                    false
                }
            };
            Ok(match account {
                None => Err("unknown client"),
                Some(_) if !matched => Err("wrong or expired secret"),
                Some(a) if a.disabled => Err("service account disabled"),
                Some(a) => Ok(a),
            })
        }
        Proof::Assertion(jwt) => {
            let Some(account) = account else {
                return Ok(Err("unknown client"));
            };
            let keys = st.store.service_account_keys(&account.id).await?;
            let leeway = st.leeway();
            let issuer = &st.service_tokens.issuer;
            let accepted = match assertion::verify(jwt, client_id, &keys, issuer, now, leeway)? {
                Ok(a) => a,
                Err(refused) => return Ok(Err(cause(refused))),
            };
            if account.disabled {
                return Ok(Err("service account disabled"));
            }
            // Remembered as long as the assertion could be accepted (its `exp` and the leeway).
            let until = accepted.exp.saturating_add(leeway);
            if !st
                .store
                .spend_assertion_jti(client_id, &accepted.jti, until)
                .await?
            {
                return Ok(Err("assertion replayed"));
            }
            Ok(Ok(account))
        }
    }
}

fn cause(refused: AssertionRefused) -> &'static str {
    match refused {
        AssertionRefused::Malformed => "assertion malformed",
        AssertionRefused::UnknownKey => "assertion key unknown",
        AssertionRefused::Invalid => "assertion signature or claims wrong",
        AssertionRefused::Expired => "assertion expired",
        AssertionRefused::Lifetime => "assertion lifetime too long",
        AssertionRefused::Jti => "assertion jti missing or too long",
    }
}
