//! Key lifecycle on real sockets: rotation through unknown-kid refetch, single flight, rate limits,
//! the auth server down at startup and mid-run, the verified-token cache, and revocation checks.
//!
//! Refetch windows, staleness, revocation answers and (where injected) token lifetimes run on Tokio's
//! clock: the tests configure them in seconds and [`skip`] across them between calls, so nothing
//! sleeps for real and no outcome depends on how fast the machine is.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::support::*;
use auth_interceptor::testing::{self, TestKey, claims_at};
use auth_interceptor::{
    Authorizer, Clock, JwksSource, JwksSourceConfig, KeySet, KeySource, NoKeys, Policy,
    RevocationChecker, Rule, SharedKeys, TokioClock, Verifier, VerifierConfig,
};
use auth_interceptor::{FileJwksFetcher, GrpcJwksFetcher, load_jwks_file};
use auth_proto::demo::*;
use tonic::Code;

fn fast_config() -> JwksSourceConfig {
    JwksSourceConfig {
        refresh_interval: Duration::from_secs(3600),
        retry_interval: Duration::from_millis(100),
        min_refetch_interval: Duration::from_millis(300),
        max_kid_wait: Duration::ZERO,
        negative_ttl: Duration::from_millis(300),
        negative_capacity: 64,
        max_staleness: Duration::from_secs(3600),
    }
}

async fn grpc_source(state: &std::sync::Arc<AuthState>, config: JwksSourceConfig) -> JwksSource {
    let addr = serve_auth(state.clone()).await;
    JwksSource::start(GrpcJwksFetcher::new(lazy_channel(addr)), config)
}

#[tokio::test]
async fn rotation_is_picked_up_by_one_single_flight_refetch() {
    let state = AuthState::new(TestKey::ed25519("k1"));
    let source = grpc_source(&state, fast_config()).await;
    source.wait_for_keys(Duration::from_secs(5)).await.unwrap();
    assert_eq!(source.fetch_count(), 1);
    let addr = serve_greeter(greeter_layer(source.clone())).await;
    let mut c = greeter_client(addr).await;

    let old = state.issue("u1", &[]);
    c.who_am_i(bearer(WhoAmIRequest {}, &old)).await.unwrap();
    assert_eq!(source.fetch_count(), 1);

    // Rotate: 20 concurrent calls with tokens from the new key share one refetch.
    state.rotate_to(TestKey::ed25519("k2"));
    let calls = (0..20).map(|i| {
        let mut c = c.clone();
        let t = state.issue(&format!("u{i}"), &[]);
        tokio::spawn(async move { c.who_am_i(bearer(WhoAmIRequest {}, &t)).await })
    });
    for call in calls.collect::<Vec<_>>() {
        call.await.unwrap().unwrap();
    }
    assert_eq!(source.fetch_count(), 2);
    assert_eq!(state.jwks_calls.load(Ordering::SeqCst), 2);
    // Old and new keys both verify during the overlap.
    c.who_am_i(bearer(WhoAmIRequest {}, &old)).await.unwrap();
    assert_eq!(source.fetch_count(), 2);
}

#[tokio::test]
async fn unknown_kids_are_rate_limited_and_negatively_cached() {
    let state = AuthState::new(TestKey::ed25519("k1"));
    // Windows far longer than the 101 calls take, however slow the machine: skipped over below.
    let config = JwksSourceConfig {
        min_refetch_interval: Duration::from_secs(60),
        negative_ttl: Duration::from_secs(60),
        ..fast_config()
    };
    let source = grpc_source(&state, config).await;
    source.wait_for_keys(Duration::from_secs(5)).await.unwrap();
    let addr = serve_greeter(greeter_layer(source.clone())).await;
    let mut c = greeter_client(addr).await;
    // 100 tokens naming keys the auth server never published. The first kid's refetch settles it
    // (UNAUTHENTICATED, then remembered); the other kids arrive while refetching is rate-limited, so
    // nothing is known about them yet: UNAVAILABLE (retryable), never accepted.
    let ghost0 = TestKey::ed25519("ghost0").token("u1", &[]);
    let s = c
        .who_am_i(bearer(WhoAmIRequest {}, &ghost0))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);
    for i in 0..100 {
        let t = TestKey::ed25519(&format!("ghost{}", i % 5)).token("u1", &[]);
        let s = c.who_am_i(bearer(WhoAmIRequest {}, &t)).await.unwrap_err();
        let expected = if i % 5 == 0 {
            Code::Unauthenticated
        } else {
            Code::Unavailable
        };
        assert_eq!(s.code(), expected, "ghost{}", i % 5);
    }
    // One initial fetch plus one refetch (the rest are rate-limited or negatively cached).
    assert_eq!(source.fetch_count(), 2);
    // After the rate-limit window a genuinely new key is still picked up.
    skip(Duration::from_secs(61)).await;
    state.rotate_to(TestKey::ed25519("k2"));
    c.who_am_i(bearer(WhoAmIRequest {}, &state.issue("u1", &[])))
        .await
        .unwrap();
}

#[tokio::test]
async fn auth_server_down_at_startup_fails_closed_then_recovers() {
    // Nothing listens: no keys, wait_for_keys times out, protected calls are UNAVAILABLE.
    let source = JwksSource::start(
        GrpcJwksFetcher::new(lazy_channel(dead_addr().await)),
        fast_config(),
    );
    assert!(
        source
            .wait_for_keys(Duration::from_millis(50))
            .await
            .is_err()
    );
    let addr = serve_greeter(greeter_layer(source.clone())).await;
    let mut c = greeter_client(addr).await;
    let key = TestKey::ed25519("k1");
    let s = c
        .who_am_i(bearer(WhoAmIRequest {}, &key.token("u1", &[])))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unavailable);
    assert_eq!(s.message(), "authentication unavailable");
    c.say_hello(SayHelloRequest::default()).await.unwrap();

    // The server answers but GetJwks fails at first; once it works, the retry loop loads the keys.
    let state = AuthState::new(key);
    state.jwks_down.store(true, Ordering::SeqCst);
    let source = grpc_source(&state, fast_config()).await;
    assert!(
        source
            .wait_for_keys(Duration::from_millis(50))
            .await
            .is_err()
    );
    // The retry loop keeps trying while GetJwks fails (every 100 ms).
    eventually("a retried GetJwks", || {
        state.jwks_calls.load(Ordering::SeqCst) >= 2
    })
    .await;
    assert!(source.wait_for_keys(Duration::ZERO).await.is_err());
    state.jwks_down.store(false, Ordering::SeqCst);
    source.wait_for_keys(Duration::from_secs(5)).await.unwrap();
    let addr = serve_greeter(greeter_layer(source.clone())).await;
    let mut c = greeter_client(addr).await;
    c.who_am_i(bearer(WhoAmIRequest {}, &state.issue("u1", &[])))
        .await
        .unwrap();
}

#[tokio::test]
async fn auth_server_down_mid_run_keeps_stale_keys_until_max_staleness() {
    let state = AuthState::new(TestKey::ed25519("k1"));
    let config = JwksSourceConfig {
        refresh_interval: Duration::from_secs(10),
        retry_interval: Duration::from_secs(5),
        max_staleness: Duration::from_secs(60),
        ..fast_config()
    };
    // The clock jumps while a background fetch may be in flight: give it a timeout no jump reaches.
    let fetcher = GrpcJwksFetcher::new(lazy_channel(serve_auth(state.clone()).await))
        .with_timeout(Duration::from_secs(3600));
    let source = JwksSource::start(fetcher, config);
    source.wait_for_keys(Duration::from_secs(5)).await.unwrap();
    let auth = authorizer(source.clone()).with_cache(0, Duration::ZERO);
    let addr = serve_greeter(auth.layer(greeter_policy()).unwrap()).await;
    let mut c = greeter_client(addr).await;
    let tok = state.issue("u1", &[]);
    state.jwks_down.store(true, Ordering::SeqCst);
    // The next background refresh (10 s on) fails...
    skip(Duration::from_secs(10)).await;
    eventually("the failed refresh", || {
        state.jwks_calls.load(Ordering::SeqCst) >= 2 && source.fetch_count() >= 2
    })
    .await;
    // ...but the last good key set, 10 s old, is young enough.
    c.who_am_i(bearer(WhoAmIRequest {}, &tok)).await.unwrap();
    assert!(source.age().unwrap() < Duration::from_secs(60));
    // Past the 60 s staleness bound (retries failing all along): fail closed.
    skip(Duration::from_secs(55)).await;
    let s = c
        .who_am_i(bearer(WhoAmIRequest {}, &tok))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unavailable);
    // Back up: the refresh loop's next retry (at most 5 s on) restores service. Step through time a
    // second at a time, letting a fetch in flight finish in between.
    state.jwks_down.store(false, Ordering::SeqCst);
    for _ in 0..250 {
        if source.current().is_ok() {
            break;
        }
        skip(Duration::from_secs(1)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.who_am_i(bearer(WhoAmIRequest {}, &tok)).await.unwrap();
}

#[tokio::test]
async fn removed_key_stops_cached_tokens_at_the_next_refresh() {
    let state = AuthState::new(TestKey::ed25519("k1"));
    let source = grpc_source(&state, fast_config()).await;
    source.wait_for_keys(Duration::from_secs(5)).await.unwrap();
    let layer = greeter_layer(source.clone());
    let addr = serve_greeter(layer.clone()).await;
    let mut c = greeter_client(addr).await;
    let old = state.issue("u1", &[]);
    c.who_am_i(bearer(WhoAmIRequest {}, &old)).await.unwrap();
    assert_eq!(layer.authorizer().cache().len(), 1);
    state.rotate_to(TestKey::ed25519("k2"));
    state.unpublish("k1");
    source.refresh().await.unwrap();
    let s = c
        .who_am_i(bearer(WhoAmIRequest {}, &old))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);
    c.who_am_i(bearer(WhoAmIRequest {}, &state.issue("u1", &[])))
        .await
        .unwrap();
}

#[tokio::test]
async fn shared_keys_updates_apply_to_cached_tokens() {
    let key = TestKey::ed25519("k1");
    let keys = SharedKeys::new(key.key_set());
    let layer = greeter_layer(keys.clone());
    let addr = serve_greeter(layer.clone()).await;
    let mut c = greeter_client(addr).await;
    let tok = key.token("u1", &[]);
    c.who_am_i(bearer(WhoAmIRequest {}, &tok)).await.unwrap();
    c.who_am_i(bearer(WhoAmIRequest {}, &tok)).await.unwrap();
    assert_eq!(layer.authorizer().cache().len(), 1);
    keys.store(KeySet::new());
    let s = c
        .who_am_i(bearer(WhoAmIRequest {}, &tok))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn verified_token_cache_never_outlives_exp() {
    let key = TestKey::ed25519("k1");
    let mut cfg = VerifierConfig::new(testing::ISSUER, testing::AUDIENCE);
    cfg.leeway = Duration::ZERO;
    // Token lifetimes on Tokio's clock, started half-way through one of its seconds: every whole-
    // second step below then lands half a second from a second boundary, whatever the calls take.
    let clock = TokioClock::new();
    tokio::time::pause();
    let start = clock.unix_now();
    while clock.unix_now() == start {
        tokio::time::advance(Duration::from_millis(1)).await;
    }
    tokio::time::advance(Duration::from_millis(500)).await;
    tokio::time::resume();
    let auth = Authorizer::new(Verifier::new(cfg), SharedKeys::new(key.key_set()))
        .with_clock(Arc::new(clock));
    let layer = auth.layer(greeter_policy()).unwrap();
    let addr = serve_greeter(layer.clone()).await;
    let mut c = greeter_client(addr).await;
    let now = clock.unix_now();
    let tok = key.sign(&claims_at("u1", &[], now, 2));
    c.who_am_i(bearer(WhoAmIRequest {}, &tok)).await.unwrap();
    assert_eq!(layer.authorizer().cache().len(), 1);
    // Served (from the cache) in every second before `exp`...
    for _ in 0..2 {
        assert!(clock.unix_now() < now + 2);
        c.who_am_i(bearer(WhoAmIRequest {}, &tok)).await.unwrap();
        assert_eq!(layer.authorizer().cache().len(), 1);
        skip(Duration::from_secs(1)).await;
    }
    // ...and refused from `exp` on, although it is still cached from before.
    assert_eq!(clock.unix_now(), now + 2);
    assert_eq!(layer.authorizer().cache().len(), 1);
    let s = c
        .who_am_i(bearer(WhoAmIRequest {}, &tok))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);
    assert!(layer.authorizer().cache().is_empty());
}

#[tokio::test]
async fn revocation_check_asks_validate_and_caches_briefly() {
    let key = TestKey::ed25519("k1");
    let state = AuthState::new(key);
    let auth_addr = serve_auth(state.clone()).await;
    let policy = Policy::builder()
        .required("demo.v1.GreeterService/WhoAmI")
        .rule(
            "demo.v1.GreeterService/AdminHello",
            Rule::required().revalidate(),
        )
        .build()
        .unwrap();
    assert!(policy.uses_revalidation());
    let checker = RevocationChecker::new(lazy_channel(auth_addr)).with_ttl(Duration::from_secs(5));
    let auth = Authorizer::new(
        testing::verifier(),
        SharedKeys::new(state.signer.lock().unwrap().key_set()),
    )
    .with_revocation_check(checker);
    let addr = serve_greeter(auth.layer(policy.clone()).unwrap()).await;
    let mut c = greeter_client(addr).await;
    let tok = state.issue("u1", &[]);
    c.admin_hello(bearer(AdminHelloRequest {}, &tok))
        .await
        .unwrap();
    c.admin_hello(bearer(AdminHelloRequest {}, &tok))
        .await
        .unwrap();
    assert_eq!(state.validates.load(Ordering::SeqCst), 1);
    // The service asks about its own audience, not the auth server's default.
    assert_eq!(
        *state.validate_audiences.lock().unwrap(),
        [testing::AUDIENCE]
    );
    state.revoked.lock().unwrap().insert(tok.clone());
    // Within the answer's 5 s the revocation is not seen yet; after them it is.
    skip(Duration::from_secs(4)).await;
    c.admin_hello(bearer(AdminHelloRequest {}, &tok))
        .await
        .unwrap();
    assert_eq!(state.validates.load(Ordering::SeqCst), 1);
    skip(Duration::from_secs(1)).await;
    let s = c
        .admin_hello(bearer(AdminHelloRequest {}, &tok))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);
    // Methods without the flag never call Validate.
    c.who_am_i(bearer(WhoAmIRequest {}, &tok)).await.unwrap();
    assert_eq!(state.validates.load(Ordering::SeqCst), 2);

    // Auth server unreachable, or no checker configured: fail closed.
    let keys = SharedKeys::new(state.signer.lock().unwrap().key_set());
    let checker = RevocationChecker::new(lazy_channel(dead_addr().await));
    let auth = Authorizer::new(testing::verifier(), keys.clone()).with_revocation_check(checker);
    let mut c = greeter_client(serve_greeter(auth.layer(policy.clone()).unwrap()).await).await;
    let s = c
        .admin_hello(bearer(AdminHelloRequest {}, &tok))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unavailable);
    // Without a checker, a revalidating rule is refused when the layer is built, not at request time.
    let refused = Authorizer::new(testing::verifier(), keys.clone())
        .layer(policy.clone())
        .unwrap_err();
    assert!(
        matches!(
            refused,
            auth_interceptor::PolicyError::RevalidateUnsupported(_)
        ),
        "{refused:?}"
    );
    let refused = Authorizer::new(testing::verifier(), keys)
        .interceptor(Rule::required().revalidate())
        .unwrap_err();
    assert!(
        matches!(
            refused,
            auth_interceptor::PolicyError::RevalidateUnsupported(_)
        ),
        "{refused:?}"
    );
    let s = c
        .admin_hello(bearer(AdminHelloRequest {}, &tok))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unavailable);
}

#[tokio::test]
async fn interceptor_schedules_a_background_refetch_for_unknown_kids() {
    let state = AuthState::new(TestKey::ed25519("k1"));
    let source = grpc_source(&state, fast_config()).await;
    source.wait_for_keys(Duration::from_secs(5)).await.unwrap();
    let interceptor = authorizer(source.clone())
        .interceptor(Rule::required())
        .unwrap();
    let addr = serve_routes(tonic::service::Routes::new(
        auth_proto::demo::greeter_service_server::GreeterServiceServer::with_interceptor(
            Greeter,
            interceptor,
        ),
    ))
    .await;
    let mut c = greeter_client(addr).await;
    state.rotate_to(TestKey::ed25519("k2"));
    let tok = state.issue("u1", &[]);
    // The interceptor cannot wait: it schedules the refetch and answers UNAVAILABLE (retryable),
    // not UNAUTHENTICATED, since the kid may be a key rotated in a moment ago.
    let s = c
        .who_am_i(bearer(WhoAmIRequest {}, &tok))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unavailable);
    for _ in 0..50 {
        if source.shared_keys().load().get("k2").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.who_am_i(bearer(WhoAmIRequest {}, &tok)).await.unwrap();
}

#[tokio::test]
async fn jwks_file_sources() {
    let a = TestKey::ed25519("f1");
    let path =
        std::env::temp_dir().join(format!("auth-interceptor-jwks-{}.json", std::process::id()));
    std::fs::write(&path, testing::jwks_json(&[&a])).unwrap();
    let set = load_jwks_file(&path).unwrap();
    assert!(set.get("f1").is_some());
    let source = JwksSource::start(FileJwksFetcher::new(&path), fast_config());
    source.wait_for_keys(Duration::from_secs(5)).await.unwrap();
    let mut c = greeter_client(serve_greeter(greeter_layer(source.clone())).await).await;
    c.who_am_i(bearer(WhoAmIRequest {}, &a.token("u1", &[])))
        .await
        .unwrap();
    // A key added to the file is found through the unknown-kid refetch.
    let b = TestKey::es256("f2");
    std::fs::write(&path, testing::jwks_json(&[&a, &b])).unwrap();
    c.who_am_i(bearer(WhoAmIRequest {}, &b.token("u1", &[])))
        .await
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(load_jwks_file(&path).is_err());
}

/// Refetch timing for the lockout tests: a 5 s rate-limit window (skipped over, not slept through)
/// and a 60 s negative cache.
fn lockout_config() -> JwksSourceConfig {
    JwksSourceConfig {
        min_refetch_interval: Duration::from_secs(5),
        negative_ttl: Duration::from_secs(60),
        ..fast_config()
    }
}

#[tokio::test]
async fn a_forged_kid_does_not_lock_out_a_key_rotated_in_right_after() {
    let state = AuthState::new(TestKey::ed25519("k1"));
    let source = grpc_source(&state, lockout_config()).await;
    source.wait_for_keys(Duration::from_secs(5)).await.unwrap();
    let addr = serve_greeter(greeter_layer(source.clone())).await;
    let mut c = greeter_client(addr).await;
    // A forged token with a random kid uses up the refetch...
    let forged = TestKey::ed25519("random-kid").token("u1", &[]);
    let s = c
        .who_am_i(bearer(WhoAmIRequest {}, &forged))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);
    // ...then the operator rotates. The new key's tokens are not refused while the refetch is
    // rate-limited: they get UNAVAILABLE, which clients retry, and succeed once it is allowed.
    state.rotate_to(TestKey::ed25519("k2"));
    let genuine = state.issue("u1", &[]);
    let s = c
        .who_am_i(bearer(WhoAmIRequest {}, &genuine))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unavailable, "retryable, not invalid_token");
    skip(Duration::from_secs(5)).await;
    c.who_am_i(bearer(WhoAmIRequest {}, &genuine))
        .await
        .unwrap();
    // The forged kid is still known to be absent, without another fetch.
    let fetches = source.fetch_count();
    let s = c
        .who_am_i(bearer(WhoAmIRequest {}, &forged))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);
    assert_eq!(source.fetch_count(), fetches);
}

#[tokio::test]
async fn a_failed_refetch_does_not_remember_the_kid_as_unknown() {
    let state = AuthState::new(TestKey::ed25519("k1"));
    let source = grpc_source(&state, lockout_config()).await;
    source.wait_for_keys(Duration::from_secs(5)).await.unwrap();
    let addr = serve_greeter(greeter_layer(source.clone())).await;
    let mut c = greeter_client(addr).await;
    state.rotate_to(TestKey::ed25519("k2"));
    let genuine = state.issue("u1", &[]);
    // A network blip: the refetch for the new kid fails. Retryable, and nothing is remembered...
    state.jwks_down.store(true, Ordering::SeqCst);
    let s = c
        .who_am_i(bearer(WhoAmIRequest {}, &genuine))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unavailable);
    state.jwks_down.store(false, Ordering::SeqCst);
    // ...so the next permitted refetch (5 s later, not the 60 s negative TTL) brings the key.
    skip(Duration::from_secs(5)).await;
    c.who_am_i(bearer(WhoAmIRequest {}, &genuine))
        .await
        .unwrap();
}

/// The error of `wait_for_keys` once the first fetch has finished (each wait 10 ms, at most 5 s).
async fn no_keys_after_first_fetch(source: &JwksSource) -> NoKeys {
    for _ in 0..500 {
        let e = source
            .wait_for_keys(Duration::from_millis(10))
            .await
            .unwrap_err();
        if e.last_error.is_some() {
            return e;
        }
    }
    panic!("no fetch finished within 5 s");
}

#[tokio::test]
async fn wait_for_keys_says_why_there_are_none() {
    // The auth server is down: the error names the address and the cause.
    let dead = dead_addr().await;
    let uri = format!("http://{dead}");
    let source = JwksSource::start(GrpcJwksFetcher::from_uri(&uri).unwrap(), fast_config());
    let e = no_keys_after_first_fetch(&source).await;
    let text = e.to_string();
    assert!(text.contains(&uri), "{text}");
    assert!(text.contains("Unavailable"), "{text}");
    // An auth server that publishes no key (HS256 mode) is not "ready" either, and says so.
    let state = AuthState::new(TestKey::ed25519("k1"));
    state.published.lock().unwrap().clear();
    let source = grpc_source(&state, fast_config()).await;
    let e = no_keys_after_first_fetch(&source).await;
    assert!(e.to_string().contains("empty"), "{e}");
    assert!(e.to_string().contains("KeySet::hs256"), "{e}");
}
