//! The tower layer: sees `/package.Service/Method`, so it enforces the per-method [`Policy`].
//!
//! Works with `Server::builder().layer(..)` (every service) and around one generated server
//! (`Server::builder().add_service(layer.layer(FooServer::new(..)))` — the wrapped service keeps its
//! `NamedService` name). Rejections are ordinary gRPC responses (HTTP 200 with `grpc-status`).
//!
//! A call lives no longer than the token that authorised it: a handler still running (or still
//! waiting for the request body) when the token expires is cancelled, and a response stream still
//! open then is ended, with `UNAUTHENTICATED` (see [`crate::expiry`]).
//!
//! [`Policy`]: crate::Policy

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use tonic::body::Body;
use tower_layer::Layer;
use tower_service::Service;

use crate::authorizer::Authorizer;
use crate::context::AuthContext;
use crate::error::log_refusal;
use crate::expiry::{ExpiringBody, Expiry, expired, until_expiry};
use crate::extract::mark_sensitive;

/// Tower layer authenticating and authorising every gRPC call; see [`Authorizer`].
#[derive(Debug, Clone)]
pub struct AuthLayer {
    auth: Arc<Authorizer>,
}

impl AuthLayer {
    /// Built by [`Authorizer::layer`].
    pub(crate) fn new(authorizer: Authorizer) -> Self {
        Self {
            auth: Arc::new(authorizer),
        }
    }

    /// The shared authorizer.
    pub fn authorizer(&self) -> &Authorizer {
        &self.auth
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthMiddleware<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthMiddleware {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// The service produced by [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct AuthMiddleware<S> {
    inner: S,
    auth: Arc<Authorizer>,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for AuthMiddleware<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<tonic::codegen::StdError>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<ReqBody>) -> Self::Future {
        // The clone that was polled ready is the one that handles this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        Box::pin(async move {
            mark_sensitive(req.headers_mut());
            // Identity only ever comes from this layer's own verification.
            req.extensions_mut().remove::<AuthContext>();
            let decision = auth.authorize(req.uri().path(), req.headers()).await;
            let ctx = match decision {
                Ok(ctx) => ctx,
                Err(error) => {
                    log_refusal(req.uri().path(), &error);
                    return Ok(error.into_status().into_http());
                }
            };
            let Some(ctx) = ctx else {
                // Anonymous (public or optional) calls have no token to outlive.
                return Ok(inner.call(req).await?.map(Body::new));
            };
            let expiry = Expiry::of(ctx.claims(), auth.verifier().config().leeway, auth.clock());
            req.extensions_mut().insert(ctx);
            let path = req.uri().path().to_owned();
            match until_expiry(&expiry, inner.call(req)).await {
                Some(response) => {
                    Ok(response?.map(|body| Body::new(ExpiringBody::new(Body::new(body), expiry))))
                }
                None => {
                    let error = expired();
                    log_refusal(&path, &error);
                    Ok(error.into_status().into_http())
                }
            }
        })
    }
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for AuthMiddleware<S> {
    const NAME: &'static str = S::NAME;
}
