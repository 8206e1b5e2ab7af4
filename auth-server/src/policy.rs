//! The access policy of the server's own RPCs, enforced by the `auth-interceptor` layer (the same policy
//! engine downstream services use): Login, Refresh, Validate, Logout and GetJwks are public;
//! ChangePassword needs a valid token; `AdminService/*` needs the role `admin`; health and reflection
//! are public; anything else is denied.

use std::sync::Arc;

use auth_interceptor::{
    AuthLayer, Authorizer, KeySet, KeySource, KeysUnavailable, Policy, PolicyError,
};
use futures_util::future::BoxFuture;

use crate::state::AppState;

/// The fully-qualified names of the services this server registers.
pub const REGISTERED_SERVICES: [&str; 5] = [
    "auth.v1.AuthService",
    "auth.v1.AdminService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// The layer protecting every service of this server, verifying with the server's own published keys.
pub fn layer(state: &Arc<AppState>) -> Result<AuthLayer, PolicyError> {
    let policy = Policy::auth_server();
    policy.check_services(&REGISTERED_SERVICES)?;
    Ok(Authorizer::new(state.verifier.clone(), ServerKeys(state.clone()), policy).layer())
}

/// The server's published keys as a key source: an unknown `kid` triggers a rate-limited reload from
/// the database (another replica may have rotated).
struct ServerKeys(Arc<AppState>);

impl KeySource for ServerKeys {
    fn current(&self) -> Result<Arc<KeySet>, KeysUnavailable> {
        Ok(self.0.keys.verification_keys().load())
    }

    fn refresh_for_kid<'a>(&'a self, kid: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let state = &self.0;
            match state.keys.reload_rate_limited(state.now()).await {
                Ok(true) => state.keys.verification_keys().load().get(kid).is_some(),
                Ok(false) => false,
                Err(e) => {
                    tracing::warn!(error = %e, "key reload for an unknown kid failed");
                    false
                }
            }
        })
    }
}
