//! `ServiceTokenSource` against the small AuthService of `support` (IssueServiceToken for the account
//! "payments", audiences "orders" and "demo"): single-flight, renewal ahead of expiry, backoff while
//! the server is away, permanent refusals, credentials kept out of sight, and RFC 7523 assertions.
//! The source reads a [`TokioClock`], so the tests [`skip`] time instead of sleeping.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::support::*;
use auth_interceptor::client::{
    AssertionKey, ClientAuthLayer, CredentialsError, SecretString, ServiceCredentials,
    ServiceTokenSource, ServiceTokenSourceConfig, TokenSource,
};
use auth_interceptor::testing::{self, TestKey};
use auth_interceptor::{Authorizer, Policy, SharedKeys, TokioClock, Verifier, VerifierConfig};
use auth_proto::demo::greeter_service_client::GreeterServiceClient;
use auth_proto::demo::{AdminHelloRequest, WhoAmIRequest};
use auth_proto::v1::issue_service_token_request::Credential;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair, UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value;
use tonic::Code;
use tower_layer::Layer;

async fn auth(ttl: u64) -> (Arc<AuthState>, SocketAddr) {
    let state = AuthState::new(TestKey::ed25519("k1"));
    state.ttl.store(ttl, Ordering::SeqCst);
    let addr = serve_auth(state.clone()).await;
    (state, addr)
}

fn secret(state: &AuthState) -> ServiceCredentials {
    ServiceCredentials::secret("payments", SecretString::from(state.service_secret.clone()))
}

/// A source for `audience` reading a Tokio clock (moved by [`skip`]).
fn source(addr: SocketAddr, creds: ServiceCredentials, audience: &str) -> ServiceTokenSource {
    ServiceTokenSource::new(
        lazy_channel(addr),
        creds,
        audience,
        ServiceTokenSourceConfig::default(),
    )
    .with_clock(Arc::new(TokioClock::new()))
}

fn issues(state: &AuthState) -> u64 {
    state.issues.load(Ordering::SeqCst)
}

/// The JSON of a JWT's `part` (0 = header, 1 = claims).
fn jwt_part(token: &str, part: usize) -> Value {
    let b = URL_SAFE_NO_PAD
        .decode(token.split('.').nth(part).unwrap())
        .unwrap();
    serde_json::from_slice(&b).unwrap()
}

async fn concurrently(source: &ServiceTokenSource, n: usize) -> Vec<Arc<str>> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let s = source.clone();
            tokio::spawn(async move { s.token().await.unwrap() })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test]
async fn concurrent_callers_share_one_call_and_renewal_comes_ahead_of_expiry() {
    let (state, addr) = auth(300).await;
    let src = source(addr, secret(&state), "orders");
    let tokens = concurrently(&src, 20).await;
    assert!(tokens.windows(2).all(|w| w[0] == w[1]));
    assert_eq!((issues(&state), src.issue_count()), (1, 1));
    let claims = jwt_part(&tokens[0], 1);
    assert_eq!(claims["aud"], "orders");
    assert_eq!(claims["client_id"], "payments");
    let sent = state.issue_requests.lock().unwrap()[0].clone();
    assert_eq!(sent.audience, "orders");
    assert_eq!(
        sent.credential,
        Some(Credential::ClientSecret(state.service_secret.clone()))
    );

    // Before 80% of the 300 s: the cached token, no call.
    skip(Duration::from_secs(239)).await;
    assert_eq!(src.token().await.unwrap(), tokens[0]);
    assert_eq!(issues(&state), 1);
    // Past it (still 59 s before expiry): one new call for 20 concurrent callers, who get the
    // current token meanwhile rather than wait.
    skip(Duration::from_secs(2)).await;
    let during = concurrently(&src, 20).await;
    assert_eq!(issues(&state), 2);
    let renewed = src.token().await.unwrap();
    assert_ne!(renewed, tokens[0]);
    assert!(during.iter().all(|t| *t == tokens[0] || *t == renewed));
    assert_eq!(issues(&state), 2);
    // Once the token has expired, concurrent callers wait for the one call (none has a token).
    skip(Duration::from_secs(300)).await;
    let after = concurrently(&src, 20).await;
    assert_eq!(issues(&state), 3);
    assert!(after.windows(2).all(|w| w[0] == w[1]));
    assert_ne!(after[0], renewed);

    // Another audience of the same account: its own token and cache.
    let demo = src.for_audience("demo");
    let t = demo.token().await.unwrap();
    assert_eq!(jwt_part(&t, 1)["aud"], "demo");
    assert_eq!(
        (demo.issue_count(), src.issue_count(), issues(&state)),
        (1, 3, 4)
    );
}

#[tokio::test]
async fn an_unavailable_auth_server_is_retried_with_backoff_keeping_the_current_token() {
    let (state, addr) = auth(300).await;
    let src = source(addr, secret(&state), "orders");
    let first = src.token().await.unwrap();
    *state.issue_fails.lock().unwrap() = Some(Code::Unavailable);
    // Renewal fails: the current token is used until it expires, without a call per caller.
    skip(Duration::from_secs(250)).await;
    assert_eq!(src.token().await.unwrap(), first);
    assert_eq!(issues(&state), 2);
    for _ in 0..10 {
        assert_eq!(src.token().await.unwrap(), first);
    }
    assert_eq!(issues(&state), 2, "no call before the backoff has passed");
    // The first wait is 0.5 to 1 s.
    skip(Duration::from_secs(1)).await;
    assert_eq!(src.token().await.unwrap(), first);
    assert_eq!(issues(&state), 3);
    // Once the token has expired the error is surfaced.
    skip(Duration::from_secs(50)).await;
    assert_eq!(src.token().await.unwrap_err().code(), Code::Unavailable);
    // Two minutes of one call a second: the waits double (to 60 s at most), so a handful of calls.
    let before = issues(&state);
    for _ in 0..120 {
        skip(Duration::from_secs(1)).await;
        assert_eq!(src.token().await.unwrap_err().code(), Code::Unavailable);
    }
    let during = issues(&state) - before;
    assert!((2..=8).contains(&during), "{during} calls in 120 s");
    // The server is back: at the next attempt (within the 60 s cap) a token, and backoff is reset.
    *state.issue_fails.lock().unwrap() = None;
    skip(Duration::from_secs(60)).await;
    let back = src.token().await.unwrap();
    assert_ne!(back, first);
    *state.issue_fails.lock().unwrap() = Some(Code::Unavailable);
    skip(Duration::from_secs(241)).await;
    assert_eq!(src.token().await.unwrap(), back);
    let n = issues(&state);
    skip(Duration::from_secs(1)).await;
    src.token().await.unwrap();
    assert_eq!(issues(&state), n + 1, "the first wait again, not the last");
}

#[tokio::test]
async fn permanent_refusals_are_surfaced_and_not_hammered() {
    let (state, addr) = auth(300).await;
    let wrong = source(
        addr,
        ServiceCredentials::secret("payments", SecretString::from("svcsec_wrong")),
        "orders",
    );
    for _ in 0..10 {
        let e = wrong.token().await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
        assert_eq!(e.message(), "invalid client credentials");
    }
    assert_eq!(issues(&state), 1);
    skip(Duration::from_secs(59)).await;
    wrong.token().await.unwrap_err();
    assert_eq!(issues(&state), 1, "not asked again before backoff_max");
    skip(Duration::from_secs(1)).await;
    wrong.token().await.unwrap_err();
    assert_eq!(issues(&state), 2);

    // An audience the account may not ask for.
    let billing = source(addr, secret(&state), "billing");
    assert_eq!(
        billing.token().await.unwrap_err().code(),
        Code::PermissionDenied
    );

    // The account is disabled after a token was issued: the refusal is surfaced at renewal, and the
    // cached token (revoked by the server anyway) is no longer handed out.
    let src = source(addr, secret(&state), "orders");
    src.token().await.unwrap();
    *state.issue_fails.lock().unwrap() = Some(Code::Unauthenticated);
    skip(Duration::from_secs(241)).await;
    assert_eq!(src.token().await.unwrap_err().code(), Code::Unauthenticated);
    assert_eq!(src.token().await.unwrap_err().code(), Code::Unauthenticated);
    // invalidate() (a downstream refused the token) does not bypass the wait.
    let n = issues(&state);
    src.invalidate();
    src.token().await.unwrap_err();
    assert_eq!(issues(&state), n);
}

#[tokio::test]
async fn secrets_never_show_and_a_mounted_secret_file_is_reread() {
    let (state, addr) = auth(300).await;
    let dir = std::env::temp_dir().join(format!("svc-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("client-secret");
    std::fs::write(&file, "svcsec_old-secret\n").unwrap();
    let creds = ServiceCredentials::secret_file("payments", &file).unwrap();
    let src = source(addr, creds.clone(), "orders");
    let given = secret(&state);
    for shown in [
        format!("{creds:?}"),
        format!("{src:?}"),
        format!("{given:?}"),
        format!("{:?}", src.for_audience("demo")),
    ] {
        assert!(!shown.contains("svcsec_"), "{shown}");
        assert!(shown.contains("payments"), "{shown}");
    }
    // The old secret is refused; the rotated one, written in place, is read at the next call.
    assert_eq!(src.token().await.unwrap_err().code(), Code::Unauthenticated);
    std::fs::write(&file, format!("{}\n", state.service_secret)).unwrap();
    skip(Duration::from_secs(60)).await;
    src.token().await.unwrap();
    let sent: Vec<_> = state
        .issue_requests
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.credential.clone())
        .collect();
    assert_eq!(
        sent,
        [
            Some(Credential::ClientSecret("svcsec_old-secret".into())),
            Some(Credential::ClientSecret(state.service_secret.clone())),
        ]
    );

    // Mistakes are found at startup, naming the variable or file only.
    std::fs::write(&file, " \n").unwrap();
    let e = ServiceCredentials::secret_file("payments", &file).unwrap_err();
    assert_eq!(e, CredentialsError::EmptySecret(file.display().to_string()));
    let e = ServiceCredentials::secret_file("payments", dir.join("missing")).unwrap_err();
    assert!(matches!(e, CredentialsError::Unreadable { .. }), "{e}");
    let e = ServiceCredentials::secret_from_env("payments", "SVC_TEST_SECRET_NOT_SET").unwrap_err();
    assert_eq!(
        e.to_string(),
        "environment variable SVC_TEST_SECRET_NOT_SET is not set (it should hold the client secret)"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

#[tokio::test]
async fn assertions_are_rfc7523_jwts_signed_with_the_key() {
    let (state, addr) = auth(300).await;
    let rng = SystemRandom::new();
    let ed = Ed25519KeyPair::generate_pkcs8v1(&rng).unwrap();
    let ed_public = Ed25519KeyPair::from_pkcs8(ed.as_ref())
        .unwrap()
        .public_key()
        .as_ref()
        .to_vec();
    let ec = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let ec_public = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, ec.as_ref())
        .unwrap()
        .public_key()
        .as_ref()
        .to_vec();
    let dir = std::env::temp_dir().join(format!("svc-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ed_file = dir.join("ed25519.pem");
    std::fs::write(&ed_file, pem(ed.as_ref())).unwrap();
    let keys = [
        (
            AssertionKey::from_pem_file("ed-1", &ed_file).unwrap(),
            "EdDSA",
            UnparsedPublicKey::new(&ED25519, ed_public),
        ),
        (
            AssertionKey::from_pem("ec-1", &SecretString::from(pem(ec.as_ref()))).unwrap(),
            "ES256",
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, ec_public),
        ),
    ];
    let mut jtis = std::collections::HashSet::new();
    for (key, alg, public) in keys {
        assert!(!format!("{key:?}").contains("BEGIN"));
        let creds = ServiceCredentials::assertion("payments", key, "https://auth.example");
        let src = source(addr, creds, "orders");
        for _ in 0..2 {
            src.invalidate();
            src.token().await.unwrap();
            let last = state.issue_requests.lock().unwrap().last().unwrap().clone();
            let Some(Credential::ClientAssertion(jwt)) = last.credential else {
                panic!("not an assertion: {last:?}");
            };
            let header = jwt_part(&jwt, 0);
            assert_eq!(header["alg"], alg);
            assert_eq!(header["kid"], if alg == "EdDSA" { "ed-1" } else { "ec-1" });
            let c = jwt_part(&jwt, 1);
            assert_eq!(
                (&c["iss"], &c["sub"]),
                (&"payments".into(), &"payments".into())
            );
            assert_eq!(c["aud"], "https://auth.example");
            assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 60);
            assert!(
                jtis.insert(c["jti"].as_str().unwrap().to_owned()),
                "jti reused"
            );
            let (input, sig) = jwt.rsplit_once('.').unwrap();
            public
                .verify(input.as_bytes(), &URL_SAFE_NO_PAD.decode(sig).unwrap())
                .expect("signed with the key");
        }
    }

    // Keys that are not unencrypted PKCS#8 Ed25519 / P-256 are refused when loaded, saying why.
    for (text, needle) in [
        (
            "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
            "openssl pkcs8",
        ),
        ("-----BEGIN ENCRYPTED PRIVATE KEY-----\n", "encrypted"),
        (
            "-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n",
            "base64",
        ),
        (&pem(b"not a key"), "not an Ed25519 or P-256"),
    ] {
        let e = AssertionKey::from_pem("k", &SecretString::from(text.to_owned())).unwrap_err();
        assert!(e.to_string().contains(needle), "{e}");
    }
    let e = AssertionKey::from_pem("", &SecretString::from(pem(ed.as_ref()))).unwrap_err();
    assert!(e.to_string().contains("kid"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_client_channel_reaches_a_service_of_its_audience_only() {
    let (state, addr) = auth(300).await;
    let keys = SharedKeys::new(state.signer.lock().unwrap().key_set());
    // The demo service verifies with its own audience and lets only "billing" call AdminHello.
    let policy = Policy::builder()
        .required("demo.v1.GreeterService/WhoAmI")
        .clients("demo.v1.GreeterService/AdminHello", ["billing"])
        .build()
        .unwrap();
    let verifier = Verifier::new(VerifierConfig::new(testing::ISSUER, "demo"));
    let greeter = serve_greeter(Authorizer::new(verifier, keys).layer(policy).unwrap()).await;
    let demo = source(addr, secret(&state), "demo");
    let mut client =
        GreeterServiceClient::new(ClientAuthLayer::new(demo.clone()).layer(channel(greeter).await));
    let me = client
        .who_am_i(WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.subject, "acct-payments");
    let e = client.admin_hello(AdminHelloRequest {}).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // A token of the same account for another audience is refused by this service.
    let orders = demo.for_audience("orders");
    let mut wrong =
        GreeterServiceClient::new(ClientAuthLayer::new(orders).layer(channel(greeter).await));
    let e = wrong.who_am_i(WhoAmIRequest {}).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn refused_tokens_are_replaced_but_not_in_a_loop() {
    let (state, addr) = auth(300).await;
    let src = source(addr, secret(&state), "orders");
    let first = src.token().await.unwrap();
    // The first refusal: a new token at once.
    src.invalidate();
    let second = src.token().await.unwrap();
    assert_ne!(second, first);
    assert_eq!(issues(&state), 2);
    // A service refusing every token: no call per refusal, the replacements are spaced.
    for _ in 0..10 {
        src.invalidate();
        assert_eq!(src.token().await.unwrap(), second);
    }
    assert_eq!(issues(&state), 2);
    skip(Duration::from_secs(1)).await;
    src.invalidate();
    let third = src.token().await.unwrap();
    assert_ne!(third, second);
    assert_eq!(issues(&state), 3);
    // Then 2 s, 4 s, ...
    src.invalidate();
    skip(Duration::from_secs(1)).await;
    assert_eq!(src.token().await.unwrap(), third);
    skip(Duration::from_secs(1)).await;
    assert_ne!(src.token().await.unwrap(), third);
    assert_eq!(issues(&state), 4);
    // A renewal that was not caused by a refusal resets the spacing.
    skip(Duration::from_secs(241)).await;
    let renewed = src.token().await.unwrap();
    assert_eq!(issues(&state), 5);
    src.invalidate();
    assert_ne!(src.token().await.unwrap(), renewed);
    assert_eq!(issues(&state), 6);
}
