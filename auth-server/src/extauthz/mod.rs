//! Envoy external authorization (`envoy.service.auth.v3.Authorization/Check`), enabled by
//! `AUTH_EXTAUTHZ_POLICY`: Envoy (or Istio, through an `AuthorizationPolicy` of action `CUSTOM`) asks
//! for every request whether it may reach its upstream, and the answer follows the same rule file an
//! in-process `auth_interceptor` layer can load.
//!
//! The request's `:path` (query stripped) selects the rule; the bearer token is read from the
//! `authorization` header Envoy forwards, by the crate's one RFC 6750 parser; it is verified locally by
//! the server's own authorizer (verifier, key source, verified-token cache), then the revocation view
//! is consulted as `Validate` does (session not revoked, user not disabled or deleted, token not
//! older than the user's not-before, key not revoked — from memory, no database read), then the
//! rule's roles are checked. [`decision`] turns the outcome into the
//! Envoy answer.

mod decision;

use std::sync::Arc;

use auth_interceptor::{AuthError, Claims, Policy, Rule};
use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse,
};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;
use http::header::AUTHORIZATION;
use tonic::{Code, Request, Response, Status};

use crate::config::ExtAuthzSettings;
use crate::state::AppState;
use decision::{IDENTITY_PREFIX, Outcome};

/// The gRPC service name, for reflection and the server's own access policy.
pub(crate) const SERVICE_NAME: &str = "envoy.service.auth.v3.Authorization";

/// The `Authorization` service.
pub(crate) struct ExtAuthz {
    state: Arc<AppState>,
    policy: Policy,
}

impl std::fmt::Debug for ExtAuthz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtAuthz")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// The tonic service for `settings`, over the server's state.
pub(crate) fn service(
    state: Arc<AppState>,
    settings: ExtAuthzSettings,
) -> AuthorizationServer<ExtAuthz> {
    tracing::info!(policy = %settings.path.display(), "serving Envoy external authorization");
    AuthorizationServer::new(ExtAuthz {
        state,
        policy: settings.policy,
    })
    .max_decoding_message_size(crate::server::MAX_MESSAGE_BYTES)
}

impl ExtAuthz {
    async fn decide(&self, http: &HttpRequest) -> Outcome {
        let path = http
            .path
            .split_once('?')
            .map_or(http.path.as_str(), |(p, _)| p);
        match self.verify(self.policy.rule_for(path), http).await {
            Ok(identity) => Outcome::Allowed(identity),
            Err(error) => {
                // As the layer logs: bad tokens at debug, missing roles at info, no keys at warn.
                match error.code() {
                    Code::Unauthenticated => tracing::debug!(path, %error, "check refused"),
                    Code::PermissionDenied => tracing::info!(path, %error, "check refused"),
                    _ => tracing::warn!(path, %error, "check refused"),
                }
                Outcome::Refused(error)
            }
        }
    }

    /// Token → verified claims → not revoked → the rule's roles.
    async fn verify(
        &self,
        rule: &Rule,
        http: &HttpRequest,
    ) -> Result<Option<Arc<Claims>>, AuthError> {
        // None for a public rule (the header is not read) or an optional one called without a token.
        let authorizer = self.state.auth.authorizer();
        let Some(claims) = authorizer
            .authenticate(rule, authorization_values(http))
            .await?
        else {
            return Ok(None);
        };
        // Parsed again only for its `kid` (the authorizer accepted it, so it parses).
        let token = auth_interceptor::bearer_token_in(authorization_values(http), usize::MAX);
        let revoked = self
            .state
            .revocations
            .is_token_revoked(&claims, token.unwrap_or_default())
            .map_err(|e| {
                tracing::warn!(error = %e, "check: revocation state unavailable");
                AuthError::Unavailable
            })?;
        if revoked {
            return Err(AuthError::Revoked);
        }
        if !rule.access.permits(&claims) {
            return Err(AuthError::Forbidden);
        }
        Ok(Some(claims))
    }
}

/// The raw values of the request's `authorization` headers, for the crate's parser: from the
/// `headers` map (Envoy joins repeated headers with a comma, which the parser refuses), or from
/// `header_map` when Envoy sends raw headers instead (each entry a value of its own).
fn authorization_values(http: &HttpRequest) -> impl Iterator<Item = &[u8]> {
    let raw = http
        .header_map
        .iter()
        .flat_map(|m| &m.headers)
        .filter(|h| h.key.eq_ignore_ascii_case(AUTHORIZATION.as_str()))
        .map(|h| {
            if h.raw_value.is_empty() {
                h.value.as_bytes()
            } else {
                h.raw_value.as_slice()
            }
        });
    http.headers
        .get(AUTHORIZATION.as_str())
        .map(String::as_bytes)
        .into_iter()
        .chain(raw)
}

/// Every `x-auth-*` header name the client sent, lower case.
fn client_identity_headers(http: &HttpRequest) -> Vec<String> {
    let names = http.headers.keys().map(String::as_str).chain(
        http.header_map
            .iter()
            .flat_map(|m| m.headers.iter().map(|h| h.key.as_str())),
    );
    let mut out: Vec<String> = names
        .filter(|k| {
            k.len() >= IDENTITY_PREFIX.len()
                && k.as_bytes()[..IDENTITY_PREFIX.len()]
                    .eq_ignore_ascii_case(IDENTITY_PREFIX.as_bytes())
        })
        .map(str::to_ascii_lowercase)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[tonic::async_trait]
impl Authorization for ExtAuthz {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let request = request.into_inner();
        let http = request
            .attributes
            .as_ref()
            .and_then(|a| a.request.as_ref())
            .and_then(|r| r.http.as_ref());
        let Some(http) = http else {
            tracing::info!("check refused: no HTTP attributes (network-level ext_authz)");
            return Ok(Response::new(decision::response(&Outcome::NotHttp, &[])));
        };
        let outcome = self.decide(http).await;
        Ok(Response::new(decision::response(
            &outcome,
            &client_identity_headers(http),
        )))
    }
}
