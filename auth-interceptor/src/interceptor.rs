//! A plain tonic `Interceptor` for the all-or-nothing case: one [`Rule`] for every method of the
//! wrapped service (interceptors cannot see the method name).
//!
//! It runs synchronously, so it cannot wait for a key refetch: a token with an unknown `kid` gets
//! `UNAVAILABLE` and a refetch is scheduled in the background (the client's retry then succeeds). It
//! checks the token when the call starts only (no expiry bound on a call held open), and cannot
//! revalidate. Prefer [`AuthLayer`](crate::AuthLayer).

use std::sync::Arc;

use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::authorizer::Authorizer;
use crate::context::AuthContext;
use crate::extract::mark_sensitive;
use crate::policy::Rule;

/// Tonic interceptor applying one [`Rule`] to every call.
///
/// ```no_run
/// # use auth_proto::demo::greeter_service_server::GreeterService;
/// # fn f(authorizer: auth_interceptor::Authorizer, greeter: impl GreeterService) {
/// use auth_interceptor::Rule;
/// use auth_proto::demo::greeter_service_server::GreeterServiceServer;
/// let interceptor = authorizer.interceptor(Rule::required()).unwrap();
/// let server = GreeterServiceServer::with_interceptor(greeter, interceptor);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct AuthInterceptor {
    auth: Arc<Authorizer>,
    rule: Rule,
}

impl AuthInterceptor {
    /// Built by [`Authorizer::interceptor`].
    pub(crate) fn new(authorizer: Authorizer, rule: Rule) -> Self {
        Self {
            auth: Arc::new(authorizer),
            rule,
        }
    }
}

impl Interceptor for AuthInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        mark_sensitive(request.metadata_mut().as_mut());
        request.extensions_mut().remove::<AuthContext>();
        match self
            .auth
            .authorize_sync(&self.rule, request.metadata().as_ref())
        {
            Ok(ctx) => {
                if let Some(ctx) = ctx {
                    request.extensions_mut().insert(ctx);
                }
                Ok(request)
            }
            Err(error) => {
                crate::error::log_refusal("", &error);
                Err(error.into_status())
            }
        }
    }
}
