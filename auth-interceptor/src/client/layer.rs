//! The client tower layer: puts `authorization: Bearer <token>` (marked sensitive) on every request.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use http::HeaderValue;
use http::header::AUTHORIZATION;
use tonic::Status;
use tower_layer::Layer;
use tower_service::Service;

use super::TokenSource;

/// Tower layer attaching a bearer token from a [`TokenSource`].
///
/// ```no_run
/// # async fn f() {
/// use auth_interceptor::client::{ClientAuthLayer, StaticToken};
/// use auth_proto::demo::greeter_service_client::GreeterServiceClient;
/// use tower_layer::Layer;
/// let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:50052").connect_lazy();
/// let client = GreeterServiceClient::new(ClientAuthLayer::new(StaticToken::new("ey..")).layer(channel));
/// # }
/// ```
#[derive(Clone)]
pub struct ClientAuthLayer {
    source: Arc<dyn TokenSource>,
}

impl std::fmt::Debug for ClientAuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientAuthLayer(..)")
    }
}

impl ClientAuthLayer {
    /// A layer taking tokens from `source`.
    pub fn new(source: impl TokenSource) -> Self {
        Self {
            source: Arc::new(source),
        }
    }
}

impl<S> Layer<S> for ClientAuthLayer {
    type Service = ClientAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientAuth {
            inner,
            source: self.source.clone(),
        }
    }
}

/// The service produced by [`ClientAuthLayer`].
#[derive(Clone)]
pub struct ClientAuth<S> {
    inner: S,
    source: Arc<dyn TokenSource>,
}

impl<S> std::fmt::Debug for ClientAuth<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientAuth(..)")
    }
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for ClientAuth<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<ReqBody>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let source = self.source.clone();
        Box::pin(async move {
            let header = match source.token().await {
                Ok(token) => HeaderValue::try_from(format!("Bearer {token}"))
                    .map_err(|_| Status::unauthenticated("invalid token")),
                Err(status) => Err(status),
            };
            match header {
                Ok(mut value) => {
                    value.set_sensitive(true);
                    req.headers_mut().insert(AUTHORIZATION, value);
                    inner.call(req).await
                }
                // No token: answer locally, as the server would, without sending anything.
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}
