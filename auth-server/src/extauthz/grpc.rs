//! The `envoy.service.auth.v3.Authorization` tonic service, written out instead of generated so that
//! `Check` decodes its request as [`wire::CheckRequest`] (borrowed header slices, unread fields skipped)
//! while answering with `envoy-types`' `CheckResponse`. Otherwise it is what `tonic-prost-build`
//! generates: one unary route, UNIMPLEMENTED for any other path, the server's message size bound.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use envoy_types::ext_authz::v3::pb::CheckResponse;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, StdError, http};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic_prost::ProstCodec;

use super::{ExtAuthz, SERVICE_NAME, wire};

/// The route of the one method.
const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

/// The service, cheap to clone (tonic clones it per request).
#[derive(Debug, Clone)]
pub(crate) struct AuthorizationService {
    inner: Arc<ExtAuthz>,
    max_decoding_message_size: usize,
}

impl AuthorizationService {
    /// Serves `inner`, refusing requests larger than `max_decoding_message_size` bytes.
    pub(crate) fn new(inner: ExtAuthz, max_decoding_message_size: usize) -> Self {
        Self {
            inner: Arc::new(inner),
            max_decoding_message_size,
        }
    }
}

impl NamedService for AuthorizationService {
    const NAME: &'static str = SERVICE_NAME;
}

/// `Check` as a unary service of tonic's server machinery.
struct Check(Arc<ExtAuthz>);

impl UnaryService<wire::CheckRequest> for Check {
    type Response = CheckResponse;
    type Future = BoxFuture<tonic::Response<CheckResponse>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<wire::CheckRequest>) -> Self::Future {
        let inner = Arc::clone(&self.0);
        Box::pin(async move {
            Ok(tonic::Response::new(
                inner.check(request.into_inner()).await,
            ))
        })
    }
}

impl<B> tower::Service<http::Request<B>> for AuthorizationService
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != CHECK_PATH {
            return Box::pin(async { Ok(tonic::Status::unimplemented("").into_http()) });
        }
        let check = Check(Arc::clone(&self.inner));
        let limit = self.max_decoding_message_size;
        Box::pin(async move {
            let codec = ProstCodec::<CheckResponse, wire::CheckRequest>::default();
            let mut grpc = Grpc::new(codec).apply_max_message_size_config(Some(limit), None);
            Ok(grpc.unary(check, req).await)
        })
    }
}
