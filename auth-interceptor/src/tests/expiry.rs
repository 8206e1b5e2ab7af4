//! A call lives no longer than its token: a unary call whose request body arrives after `exp` +
//! leeway, and a response stream still open then, are both ended with `UNAUTHENTICATED` — on a paused
//! Tokio clock that the injected [`TokioClock`] follows, so nothing sleeps for real.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use auth_proto::demo::greeter_service_server::GreeterServiceServer;
use bytes::Bytes;
use http_body::{Body, Frame};
use tokio::sync::mpsc;
use tower::{Layer, Service, ServiceExt};

use crate::testing::{Greeter, TestKey, claims_at};
use crate::{Authorizer, Clock, Policy, SharedKeys, TokioClock};

/// A request or response body fed from a channel: it waits (pending) until the test sends data.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

const TTL: u64 = 60;
const LEEWAY: u64 = 30;

/// A layer over `inner` requiring a token on every Greeter method, on `clock`, and a token living
/// [`TTL`] seconds from the clock's now.
fn protect<S>(inner: S, clock: &TokioClock) -> (crate::AuthMiddleware<S>, String) {
    let key = TestKey::ed25519("k1");
    let policy = Policy::builder()
        .required("demo.v1.GreeterService/*")
        .build()
        .unwrap();
    let auth = Authorizer::new(crate::testing::verifier(), SharedKeys::new(key.key_set()))
        .with_clock(Arc::new(*clock));
    let token = key.sign(&claims_at("u1", &["admin"], clock.unix_now(), TTL));
    (auth.layer(policy).unwrap().layer(inner), token)
}

fn request<B>(path: &str, token: &str, body: B) -> http::Request<B> {
    http::Request::builder()
        .method("POST")
        .uri(format!("http://svc{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {token}"))
        .body(body)
        .unwrap()
}

/// The next frame of a response body.
async fn frame(body: &mut tonic::body::Body) -> Option<Result<Frame<Bytes>, tonic::Status>> {
    std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
}

fn grpc_status<B>(response: &http::Response<B>) -> Option<&str> {
    response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
}

#[tokio::test(start_paused = true)]
async fn a_unary_call_whose_body_arrives_after_expiry_is_refused_and_never_handled() {
    let clock = TokioClock::new();
    let (svc, token) = protect(GreeterServiceServer::new(Greeter), &clock);
    let (tx, rx) = mpsc::channel(1);
    let call = tokio::spawn(svc.oneshot(request(
        "/demo.v1.GreeterService/AdminHello",
        &token,
        ChannelBody(rx),
    )));
    // The headers were accepted; the body is held back until well after exp + leeway.
    tokio::time::sleep(Duration::from_secs(TTL + LEEWAY + 11)).await;
    let response = call.await.unwrap().unwrap();
    assert_eq!(grpc_status(&response), Some("16"), "UNAUTHENTICATED");
    assert_eq!(
        response.headers().get("grpc-message").unwrap(),
        "invalid%20token" // percent-encoded, as gRPC sends it
    );
    // The handler never ran: the request body has nowhere to go.
    let frame = Bytes::from_static(&[0, 0, 0, 0, 0]);
    assert!(tx.send(frame).await.is_err(), "the call was dropped");
}

#[tokio::test(start_paused = true)]
async fn a_unary_call_completed_before_expiry_is_answered() {
    let clock = TokioClock::new();
    let (svc, token) = protect(GreeterServiceServer::new(Greeter), &clock);
    let (tx, rx) = mpsc::channel(1);
    let call = tokio::spawn(svc.oneshot(request(
        "/demo.v1.GreeterService/AdminHello",
        &token,
        ChannelBody(rx),
    )));
    tokio::time::sleep(Duration::from_secs(TTL + LEEWAY - 1)).await;
    tx.send(Bytes::from_static(&[0, 0, 0, 0, 0])).await.unwrap();
    drop(tx);
    let response = call.await.unwrap().unwrap();
    assert_eq!(grpc_status(&response), None, "not refused at header time");
    let mut body = response.into_body();
    let first = frame(&mut body).await.unwrap().unwrap();
    assert!(first.is_data(), "the answer");
    let trailers = frame(&mut body)
        .await
        .unwrap()
        .unwrap()
        .into_trailers()
        .unwrap();
    assert_eq!(trailers.get("grpc-status").unwrap(), "0");
}

#[tokio::test(start_paused = true)]
async fn a_response_stream_still_open_at_expiry_is_ended_with_unauthenticated() {
    let clock = TokioClock::new();
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let rx = Arc::new(std::sync::Mutex::new(Some(rx)));
    let handled = Arc::new(AtomicBool::new(false));
    let inner = {
        let handled = handled.clone();
        tower::service_fn(move |_req: http::Request<()>| {
            handled.store(true, Ordering::SeqCst);
            let body = ChannelBody(rx.lock().unwrap().take().unwrap());
            async move { Ok::<_, Infallible>(http::Response::new(tonic::body::Body::new(body))) }
        })
    };
    let (mut svc, token) = protect(inner, &clock);
    let response = svc
        .ready()
        .await
        .unwrap()
        .call(request("/demo.v1.GreeterService/StreamHello", &token, ()))
        .await
        .unwrap();
    assert!(handled.load(Ordering::SeqCst));
    let mut body = response.into_body();
    // Messages flow while the token is valid...
    tx.send(Bytes::from_static(b"one")).await.unwrap();
    assert_eq!(
        frame(&mut body)
            .await
            .unwrap()
            .unwrap()
            .into_data()
            .unwrap(),
        "one"
    );
    tokio::time::sleep(Duration::from_secs(TTL)).await;
    tx.send(Bytes::from_static(b"two")).await.unwrap();
    assert_eq!(
        frame(&mut body)
            .await
            .unwrap()
            .unwrap()
            .into_data()
            .unwrap(),
        "two"
    );
    // ...and the stream ends at exp + leeway, although the handler would go on.
    let started = tokio::time::Instant::now();
    let trailers = frame(&mut body)
        .await
        .unwrap()
        .unwrap()
        .into_trailers()
        .unwrap();
    assert_eq!(trailers.get("grpc-status").unwrap(), "16");
    assert_eq!(trailers.get("grpc-message").unwrap(), "invalid%20token");
    assert_eq!(started.elapsed(), Duration::from_secs(LEEWAY));
    assert!(
        frame(&mut body).await.is_none(),
        "nothing after the trailers"
    );
    assert!(tx.send(Bytes::from_static(b"three")).await.is_err() || body.is_end_stream());
}
