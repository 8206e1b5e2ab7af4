//! The verified identity handed to handlers through request extensions.
//!
//! Identity comes only from here — never from other metadata such as `x-user-id`.

use std::sync::Arc;

use tonic::Status;

use crate::claims::Claims;
use crate::error::AuthError;

/// The verified claims of the caller's access token, put in the request extensions by
/// [`AuthLayer`](crate::AuthLayer) or [`AuthInterceptor`](crate::AuthInterceptor).
#[derive(Debug, Clone)]
pub struct AuthContext {
    claims: Arc<Claims>,
}

impl AuthContext {
    /// Wraps verified claims.
    pub fn new(claims: Arc<Claims>) -> Self {
        Self { claims }
    }

    /// The verified claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// The caller's user id (`sub`).
    pub fn subject(&self) -> &str {
        &self.claims.sub
    }

    /// True when the caller's token carries `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.claims.has_role(role)
    }
}

/// Access to the caller's verified identity from a request.
///
/// ```
/// use auth_interceptor::RequestAuthExt;
/// fn handler(request: tonic::Request<()>) -> Result<String, tonic::Status> {
///     let claims = request.auth()?;
///     Ok(claims.sub.clone())
/// }
/// // Without the layer there is no identity: UNAUTHENTICATED.
/// assert_eq!(handler(tonic::Request::new(())).unwrap_err().code(), tonic::Code::Unauthenticated);
/// ```
pub trait RequestAuthExt {
    /// The verified claims, or `UNAUTHENTICATED` when the request carried no verified token (for
    /// example on a public or optional method).
    fn auth(&self) -> Result<&Claims, Status>;

    /// The [`AuthContext`], if the request carried a verified token.
    fn auth_context(&self) -> Option<&AuthContext>;
}

impl<T> RequestAuthExt for tonic::Request<T> {
    fn auth(&self) -> Result<&Claims, Status> {
        self.auth_context()
            .map(AuthContext::claims)
            .ok_or_else(|| AuthError::MissingToken.into_status())
    }

    fn auth_context(&self) -> Option<&AuthContext> {
        self.extensions().get::<AuthContext>()
    }
}

impl<B> RequestAuthExt for http::Request<B> {
    fn auth(&self) -> Result<&Claims, Status> {
        self.auth_context()
            .map(AuthContext::claims)
            .ok_or_else(|| AuthError::MissingToken.into_status())
    }

    fn auth_context(&self) -> Option<&AuthContext> {
        self.extensions().get::<AuthContext>()
    }
}
