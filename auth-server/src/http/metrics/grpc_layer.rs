//! A tower layer recording the grpc-ecosystem server metrics of every call: `grpc_server_started_total`
//! when the request arrives, `grpc_server_handled_total` (with `grpc_code`) and
//! `grpc_server_handling_seconds` when the call ends — when a trailers-only response carries its
//! `grpc-status` in the headers, when the body's trailers arrive or the body fails with a status
//! (streaming calls such as health `Watch` end there), and as `Canceled` when the call is dropped
//! before it ends (client reset, deadline, server timeout).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::HeaderMap;
use http_body::{Frame, SizeHint};
use tonic::body::Body;
use tower::{Layer, Service};

use super::labels::GrpcCode;
use super::methods::{MethodMetrics, MethodTable};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Adds [`GrpcMetrics`] around the gRPC services.
#[derive(Debug, Clone)]
pub(crate) struct GrpcMetricsLayer {
    table: Arc<MethodTable>,
}

impl GrpcMetricsLayer {
    pub(super) fn new(table: Arc<MethodTable>) -> Self {
        Self { table }
    }
}

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics {
            inner,
            table: self.table.clone(),
        }
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct GrpcMetrics<S> {
    inner: S,
    table: Arc<MethodTable>,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for GrpcMetrics<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Error: Send + 'static,
    S::Future: Send + 'static,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let method = self.table.lookup(req.uri().path()).clone();
        method.started.inc();
        let mut call = Call {
            method,
            started: Instant::now(),
            done: false,
        };
        let response = self.inner.call(req);
        Box::pin(async move {
            match response.await {
                Ok(response) => Ok(call.respond(response)),
                Err(e) => {
                    // tonic answers a service error that is not a status with UNKNOWN (the layers
                    // inside this one answer with statuses and never fail).
                    call.finish(GrpcCode::Unknown);
                    Err(e)
                }
            }
        })
    }
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for GrpcMetrics<S> {
    const NAME: &'static str = S::NAME;
}

/// One call in progress; recorded as handled exactly once (as `Canceled` if dropped unfinished).
#[derive(Debug)]
struct Call {
    method: Arc<MethodMetrics>,
    started: Instant,
    done: bool,
}

impl Call {
    fn finish(&mut self, code: GrpcCode) {
        if !self.done {
            self.done = true;
            self.method.handled(code).inc();
            self.method
                .handling
                .observe(self.started.elapsed().as_secs_f64());
        }
    }

    /// A trailers-only response (errors, typically) ends the call now; otherwise the body does.
    fn respond<B>(mut self, response: http::Response<B>) -> http::Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        if let Some(code) = status_in(response.headers()) {
            self.finish(code);
            return response.map(Body::new);
        }
        response.map(|inner| {
            Body::new(Metered {
                inner: Body::new(inner),
                call: self,
            })
        })
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.finish(GrpcCode::Canceled);
    }
}

/// The `grpc-status` of a header or trailer map, if it has one.
fn status_in(headers: &HeaderMap) -> Option<GrpcCode> {
    headers
        .get("grpc-status")
        .map(|v| GrpcCode::from_status_value(v.as_bytes()))
}

/// A response body that ends its call when its trailers (or a failure) come.
struct Metered {
    inner: Body,
    call: Call,
}

impl http_body::Body for Metered {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    this.call
                        .finish(status_in(trailers).unwrap_or(GrpcCode::Unknown));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(status))) => {
                this.call.finish(status.code().into());
                Poll::Ready(Some(Err(status)))
            }
            Poll::Ready(None) => {
                // A gRPC response always ends with a status; one that did not is `Unknown`.
                this.call.finish(GrpcCode::Unknown);
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::{BodyExt, StreamBody};
    use tower::ServiceExt;

    use super::*;
    use crate::http::metrics::Metrics;
    use crate::http::metrics::labels::GrpcType;
    use crate::http::metrics::methods::Method;

    const PATH: &str = "/t.v1.T/Call";

    fn layer() -> GrpcMetricsLayer {
        let methods = [Method {
            service: "t.v1.T".into(),
            method: "Call".into(),
            kind: GrpcType::ServerStream,
        }];
        Metrics::new(Some(&methods)).grpc_layer().unwrap()
    }

    fn handled(layer: &GrpcMetricsLayer, code: GrpcCode) -> u64 {
        layer.table.lookup(PATH).handled(code).get()
    }

    fn trailers(code: i32) -> HeaderMap {
        let mut t = HeaderMap::new();
        t.insert("grpc-status", code.to_string().parse().unwrap());
        t
    }

    /// A response whose body yields `frames`, then ends.
    fn streaming(frames: Vec<Result<Frame<Bytes>, tonic::Status>>) -> http::Response<Body> {
        http::Response::new(Body::new(StreamBody::new(futures_util::stream::iter(
            frames,
        ))))
    }

    #[tokio::test]
    async fn the_status_decides_the_code_whether_in_headers_trailers_or_an_error() {
        let layer = layer();
        let cases: Vec<(http::Response<Body>, GrpcCode)> = vec![
            (
                streaming(vec![
                    Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\0"))),
                    Ok(Frame::trailers(trailers(0))),
                ]),
                GrpcCode::Ok,
            ),
            (
                {
                    let mut r = http::Response::new(Body::empty());
                    r.headers_mut().insert("grpc-status", "16".parse().unwrap());
                    r
                },
                GrpcCode::Unauthenticated,
            ),
            (
                streaming(vec![Err(tonic::Status::internal("x"))]),
                GrpcCode::Internal,
            ),
            (streaming(vec![]), GrpcCode::Unknown),
        ];
        for (response, code) in cases {
            let mut response = Some(response);
            let svc = layer.layer(tower::service_fn(move |_req: http::Request<()>| {
                let r = response.take().unwrap();
                async move { Ok::<_, Infallible>(r) }
            }));
            let answer = svc
                .oneshot(http::Request::get(PATH).body(()).unwrap())
                .await
                .unwrap();
            let _ = answer.into_body().collect().await;
            assert_eq!(handled(&layer, code), 1, "{code:?}");
        }
        let m = layer.table.lookup(PATH);
        assert_eq!(m.started.get(), 4);
    }

    #[tokio::test]
    async fn a_call_dropped_before_its_status_is_canceled() {
        let layer = layer();
        // The response never comes: the future is dropped (a deadline, a reset).
        let svc = layer.layer(tower::service_fn(|_req: http::Request<()>| {
            futures_util::future::pending::<Result<http::Response<Body>, Infallible>>()
        }));
        let pending = svc.oneshot(http::Request::get(PATH).body(()).unwrap());
        assert!(futures_util::FutureExt::now_or_never(pending).is_none());
        assert_eq!(handled(&layer, GrpcCode::Canceled), 1);
        // A stream whose client goes away after the first message.
        let (tx, rx) =
            tokio::sync::mpsc::unbounded_channel::<Result<Frame<Bytes>, tonic::Status>>();
        let frames = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|frame| (frame, rx))
        });
        let mut body = Some(Body::new(StreamBody::new(frames)));
        let svc = layer.layer(tower::service_fn(move |_req: http::Request<()>| {
            let b = body.take().unwrap();
            async move { Ok::<_, Infallible>(http::Response::new(b)) }
        }));
        let answer = svc
            .oneshot(http::Request::get(PATH).body(()).unwrap())
            .await
            .unwrap();
        tx.send(Ok(Frame::data(Bytes::from_static(b"x")))).unwrap();
        let mut body = answer.into_body();
        assert!(body.frame().await.unwrap().unwrap().is_data());
        assert_eq!(handled(&layer, GrpcCode::Canceled), 1, "not ended yet");
        drop(body);
        assert_eq!(handled(&layer, GrpcCode::Canceled), 2);
        // Unknown paths share one entry.
        let svc = layer.layer(tower::service_fn(|_req: http::Request<()>| async {
            Ok::<_, Infallible>(http::Response::new(Body::empty()))
        }));
        let _ = svc
            .oneshot(http::Request::get("/x.Y/Z").body(()).unwrap())
            .await;
        assert_eq!(layer.table.lookup("/a.B/C").started.get(), 1);
    }
}
