//! The client side against a small real AuthService issuing short-lived tokens. A token's refresh
//! point is measured on Tokio's clock, so the tests [`skip`] to it instead of sleeping.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::support::*;
use auth_interceptor::SharedKeys;
use auth_interceptor::client::{
    ClientAuthLayer, LoginTokenSource, LoginTokenSourceConfig, StaticToken, TokenSource,
    with_auth_retry,
};
use auth_interceptor::testing::TestKey;
use auth_proto::demo::greeter_service_client::GreeterServiceClient;
use auth_proto::demo::*;
use tonic::Code;
use tower_layer::Layer;

struct Setup {
    state: std::sync::Arc<AuthState>,
    source: LoginTokenSource,
    greeter: std::net::SocketAddr,
}

async fn setup(ttl: u64, password: &str) -> Setup {
    let key = TestKey::ed25519("k1");
    let keys = SharedKeys::new(key.key_set());
    let state = AuthState::new(key);
    state.ttl.store(ttl, Ordering::SeqCst);
    let auth_addr = serve_auth(state.clone()).await;
    let greeter = serve_greeter(greeter_layer(keys)).await;
    let source = LoginTokenSource::new(
        lazy_channel(auth_addr),
        "svc-account",
        password,
        LoginTokenSourceConfig::default(),
    );
    Setup {
        state,
        source,
        greeter,
    }
}

#[tokio::test]
async fn login_then_refresh_before_expiry() {
    let s = setup(2, "correct horse").await;
    let channel = channel(s.greeter).await;
    let mut client =
        GreeterServiceClient::new(ClientAuthLayer::new(s.source.clone()).layer(channel));
    let me = client
        .who_am_i(WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.subject, "svc-account");
    assert_eq!((s.source.login_count(), s.source.refresh_count()), (1, 0));
    // Within 80% of the 2 s lifetime: the same token.
    let first = s.source.token().await.unwrap();
    client.who_am_i(WhoAmIRequest {}).await.unwrap();
    assert_eq!(s.source.refresh_count(), 0);
    // Past 1.6 s: refreshed (not a new login) before the token expires.
    skip(Duration::from_millis(1700)).await;
    client.who_am_i(WhoAmIRequest {}).await.unwrap();
    assert_eq!((s.source.login_count(), s.source.refresh_count()), (1, 1));
    assert_ne!(s.source.token().await.unwrap(), first);
    // Streaming calls carry the token too.
    let mut stream = client
        .stream_hello(StreamHelloRequest { count: 2 })
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_some());
}

#[tokio::test]
async fn concurrent_callers_share_one_login_and_one_refresh() {
    let s = setup(2, "correct horse").await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let src = s.source.clone();
            tokio::spawn(async move { src.token().await.unwrap() })
        })
        .collect();
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(t.await.unwrap());
    }
    assert!(tokens.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(s.state.logins.load(Ordering::SeqCst), 1);
    skip(Duration::from_millis(1700)).await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let src = s.source.clone();
            tokio::spawn(async move { src.token().await.unwrap() })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(s.state.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(s.state.logins.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn rejected_refresh_token_falls_back_to_login() {
    let s = setup(1, "correct horse").await;
    s.source.token().await.unwrap();
    // The server forgets every refresh token (e.g. the session was revoked).
    s.state.refresh_tokens.lock().unwrap().clear();
    skip(Duration::from_millis(900)).await;
    s.source.token().await.unwrap();
    assert_eq!(s.state.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(s.state.logins.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn bad_credentials_are_reported_without_sending_the_call() {
    let s = setup(60, "wrong").await;
    let channel = channel(s.greeter).await;
    let mut client =
        GreeterServiceClient::new(ClientAuthLayer::new(s.source.clone()).layer(channel));
    let st = client.who_am_i(WhoAmIRequest {}).await.unwrap_err();
    assert_eq!(st.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn with_auth_retry_retries_once_with_a_fresh_token() {
    let s = setup(600, "correct horse").await;
    let channel = channel(s.greeter).await;
    let client = GreeterServiceClient::new(ClientAuthLayer::new(s.source.clone()).layer(channel));
    s.source.token().await.unwrap();
    // AdminHello needs `admin`, which the service account lacks.
    let calls = std::sync::atomic::AtomicU32::new(0);
    let r = with_auth_retry(&s.source, || {
        calls.fetch_add(1, Ordering::SeqCst);
        let mut c = client.clone();
        async move { c.admin_hello(AdminHelloRequest {}).await }
    })
    .await;
    // PERMISSION_DENIED is not retried.
    assert_eq!(r.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // A static token the server rejects: invalidate is a no-op, one retry, then the error.
    let bad = StaticToken::new("not.a.token");
    let channel = crate::support::channel(s.greeter).await;
    let client = GreeterServiceClient::new(ClientAuthLayer::new(bad.clone()).layer(channel));
    let calls = std::sync::atomic::AtomicU32::new(0);
    let r = with_auth_retry(&bad, || {
        calls.fetch_add(1, Ordering::SeqCst);
        let mut c = client.clone();
        async move { c.who_am_i(WhoAmIRequest {}).await }
    })
    .await;
    assert_eq!(r.unwrap_err().code(), Code::Unauthenticated);
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // A login source whose token was rejected renews it (refresh) and the retry succeeds.
    let refreshes = s.state.refreshes.load(Ordering::SeqCst);
    let channel = crate::support::channel(s.greeter).await;
    let client = GreeterServiceClient::new(ClientAuthLayer::new(s.source.clone()).layer(channel));
    let first = std::sync::atomic::AtomicBool::new(true);
    let r = with_auth_retry(&s.source, || {
        let mut c = client.clone();
        let fail = first.swap(false, Ordering::SeqCst);
        async move {
            if fail {
                Err(tonic::Status::unauthenticated("invalid token"))
            } else {
                c.who_am_i(WhoAmIRequest {}).await
            }
        }
    })
    .await;
    assert_eq!(r.unwrap().into_inner().subject, "svc-account");
    assert_eq!(s.state.refreshes.load(Ordering::SeqCst), refreshes + 1);
}
