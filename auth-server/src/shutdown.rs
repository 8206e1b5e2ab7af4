//! Ends long-lived streams once shutdown has begun. gRPC client-side health checking keeps a
//! `grpc.health.v1.Health/Watch` stream open for good; the graceful drain would wait for it until the
//! grace period ran out. Wrapped in [`EndOnShutdown`], such a stream first delivers what is pending
//! (the `NOT_SERVING` sent at shutdown) and then ends with `UNAVAILABLE`, so the server exits as soon
//! as unary calls have drained.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::HeaderMap;
use http_body::{Frame, SizeHint};
use tokio::sync::watch;
use tonic::body::Body;
use tower::Service;

/// Wraps a service so its response streams end when `stopping` turns true.
#[derive(Debug, Clone)]
pub(crate) struct EndOnShutdown<S> {
    inner: S,
    stopping: watch::Receiver<bool>,
}

impl<S> EndOnShutdown<S> {
    pub(crate) fn new(inner: S, stopping: watch::Receiver<bool>) -> Self {
        Self { inner, stopping }
    }
}

impl<S, B> Service<http::Request<B>> for EndOnShutdown<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>> + Send,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let call = self.inner.call(req);
        let mut stopping = self.stopping.clone();
        Box::pin(async move {
            let response = call.await?;
            let stop: BoxFuture<'static, ()> = Box::pin(async move {
                let _ = stopping.wait_for(|s| *s).await;
            });
            Ok(response.map(|inner| {
                Body::new(UntilShutdown {
                    inner,
                    stop,
                    done: false,
                })
            }))
        })
    }
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for EndOnShutdown<S> {
    const NAME: &'static str = S::NAME;
}

/// A response body that ends with `UNAVAILABLE` trailers once shutdown has begun and nothing more is
/// ready to send.
struct UntilShutdown {
    inner: Body,
    stop: BoxFuture<'static, ()>,
    done: bool,
}

impl http_body::Body for UntilShutdown {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        // What the stream has ready goes out first (the NOT_SERVING update, typically).
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.done = !matches!(&frame, Some(Ok(f)) if f.is_data());
            return Poll::Ready(frame);
        }
        if this.stop.as_mut().poll(cx).is_ready() {
            this.done = true;
            let mut trailers = HeaderMap::new();
            let _ = tonic::Status::unavailable("server shutting down").add_header(&mut trailers);
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
