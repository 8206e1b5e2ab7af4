//! Per-call costs of the interceptor, side by side with the crypto it cannot avoid.
//!
//! - `verify/<alg>/raw_jsonwebtoken`: `jsonwebtoken::decode` with an equivalent `Validation` (the floor);
//!   `verify/<alg>/verifier`: [`Verifier::verify`] (header rules, kid lookup, claim checks on top).
//! - `layer/<alg>/{cold,warm}`: one request through [`AuthMiddleware`] around a no-op service, with
//!   the verified-token cache disabled (every call verifies) and warm (the token was seen before).
//! - `extract/bearer_token`, `cache/get_hit`: metadata extraction and the cache lookup alone.
//!
//! Run: `cargo bench -p auth-interceptor --bench verify` (figures in BENCHMARKS.md).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use auth_interceptor::testing::{AUDIENCE, ISSUER, TestKey, claims, verifier};
use auth_interceptor::{Authorizer, Claims, Policy, SharedKeys};
use aws_lc_rs::encoding::AsDer;
use base64::Engine;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use tower::{Layer, Service, ServiceExt};

/// An RS256 (2048-bit) test key: `auth_interceptor::testing` has none.
fn rs256(kid: &str) -> TestKey {
    let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der: aws_lc_rs::encoding::Pkcs8V1Der<'_> = kp.as_der().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    let mut jwk =
        serde_json::to_value(Jwk::from_encoding_key(&encoding, Algorithm::RS256).unwrap()).unwrap();
    jwk["kid"] = kid.into();
    jwk["alg"] = "RS256".into();
    jwk["use"] = "sig".into();
    TestKey {
        kid: kid.into(),
        alg: Algorithm::RS256,
        encoding,
        public_raw: Vec::new(),
        spki_der: Vec::new(),
        jwk,
    }
}

fn keys() -> Vec<(&'static str, TestKey)> {
    vec![
        (
            "HS256",
            TestKey::hs256("k-hs", b"0123456789abcdefghijklmnopqrstuv"),
        ),
        ("RS256", rs256("k-rs")),
        ("EdDSA", TestKey::ed25519("k-ed")),
        ("ES256", TestKey::es256("k-es")),
    ]
}

fn decoding_key(k: &TestKey) -> DecodingKey {
    match k.alg {
        Algorithm::HS256 => DecodingKey::from_secret(&k.public_raw),
        _ => DecodingKey::from_jwk(&serde_json::from_value(k.jwk.clone()).unwrap()).unwrap(),
    }
}

/// What the verifier enforces, as far as `jsonwebtoken` alone can express it.
fn raw_validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    v.set_issuer(&[ISSUER]);
    v.set_audience(&[AUDIENCE]);
    v.validate_nbf = true;
    v.leeway = 30;
    v
}

fn bench_verify(c: &mut Criterion) {
    let v = verifier();
    for (name, key) in keys() {
        let token = key.token("user-1", &["orders:read"]);
        let set = key.key_set();
        let dk = decoding_key(&key);
        let validation = raw_validation(key.alg);
        // Both paths accept the token.
        v.verify(&set, &token).unwrap();
        jsonwebtoken::decode::<Claims>(&token, &dk, &validation).unwrap();
        let mut g = c.benchmark_group(format!("verify/{name}"));
        g.bench_function("raw_jsonwebtoken", |b| {
            b.iter(|| jsonwebtoken::decode::<Claims>(black_box(&token), &dk, &validation).unwrap())
        });
        g.bench_function("verifier", |b| {
            b.iter(|| v.verify(&set, black_box(&token)).unwrap())
        });
        g.finish();
    }
}

fn request(token: &str) -> http::Request<()> {
    http::Request::builder()
        .uri("http://svc/demo.v1.GreeterService/WhoAmI")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap()
}

fn bench_layer(c: &mut Criterion) {
    let policy = || {
        Policy::builder()
            .required("demo.v1.GreeterService/*")
            .build()
            .unwrap()
    };
    let inner = tower::service_fn(|_req: http::Request<()>| async {
        Ok::<_, Infallible>(http::Response::new(tonic::body::Body::empty()))
    });
    for (name, key) in keys() {
        let token = key.token("user-1", &["orders:read"]);
        let mut g = c.benchmark_group(format!("layer/{name}"));
        for (mode, cache) in [("cold", 0usize), ("warm", 10_000)] {
            let auth = Authorizer::new(verifier(), SharedKeys::new(key.key_set()))
                .with_cache(cache, Duration::from_secs(600));
            let mut svc = auth.layer(policy()).unwrap().layer(inner);
            // Prime (and check) the path once.
            let resp = svc.ready().now_or_never().unwrap().unwrap();
            let _ = resp;
            let ok = svc.call(request(&token)).now_or_never().unwrap().unwrap();
            assert!(ok.headers().get("grpc-status").is_none(), "{name} {mode}");
            g.bench_function(BenchmarkId::from_parameter(mode), |b| {
                b.iter_batched(
                    || request(&token),
                    |req| svc.call(req).now_or_never().unwrap().unwrap(),
                    criterion::BatchSize::SmallInput,
                )
            });
        }
        g.finish();
    }
}

fn bench_extract_and_cache(c: &mut Criterion) {
    let key = TestKey::ed25519("k-ed");
    let token = key.sign(&claims("user-1", &["orders:read"]));
    let req = request(&token);
    let headers = req.headers().clone();
    c.bench_function("extract/bearer_token", |b| {
        b.iter(|| auth_interceptor::bearer_token(black_box(&headers), 8192).unwrap())
    });
    let set = key.key_set();
    let claims = Arc::new(verifier().verify(&set, &token).unwrap());
    let cache = auth_interceptor::TokenCache::default();
    let now = auth_interceptor::Clock::unix_now(&auth_interceptor::SystemClock);
    cache.insert(&token, &set, "k-ed", claims, now);
    c.bench_function("cache/get_hit", |b| {
        b.iter(|| cache.get(black_box(&token), &set, now).unwrap())
    });
}

/// Two threads reading the verified-token cache at once (the request path of a 2-core service):
/// the quick_cache-backed `TokenCache` beside a single mutex-guarded map (what it replaced).
fn bench_cache_contention(c: &mut Criterion) {
    use std::collections::HashMap;
    use std::sync::Mutex;
    const THREADS: usize = 2;
    let key = TestKey::ed25519("k-ed");
    let set = key.key_set();
    let tokens: Vec<String> = (0..1000)
        .map(|i| key.sign(&claims(&format!("user-{i}"), &[])))
        .collect();
    let now = auth_interceptor::Clock::unix_now(&auth_interceptor::SystemClock);
    let cache = auth_interceptor::TokenCache::default();
    let mutex_map: Mutex<HashMap<[u8; 32], Arc<auth_interceptor::Claims>>> =
        Mutex::new(HashMap::new());
    let digest = |t: &str| {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, t.as_bytes());
        let mut h = [0u8; 32];
        h.copy_from_slice(d.as_ref());
        h
    };
    for t in &tokens {
        let claims = Arc::new(verifier().verify(&set, t).unwrap());
        cache.insert(t, &set, "k-ed", claims.clone(), now);
        mutex_map.lock().unwrap().insert(digest(t), claims);
    }
    let mut g = c.benchmark_group("cache/2-thread-hits");
    g.bench_function("quick_cache", |b| {
        b.iter_custom(|iters| {
            let start = std::time::Instant::now();
            std::thread::scope(|s| {
                for _ in 0..THREADS {
                    s.spawn(|| {
                        for i in 0..iters as usize {
                            black_box(cache.get(&tokens[i % tokens.len()], &set, now));
                        }
                    });
                }
            });
            start.elapsed() / THREADS as u32
        })
    });
    g.bench_function("mutex_hashmap", |b| {
        b.iter_custom(|iters| {
            let start = std::time::Instant::now();
            std::thread::scope(|s| {
                for _ in 0..THREADS {
                    s.spawn(|| {
                        for i in 0..iters as usize {
                            let h = digest(&tokens[i % tokens.len()]);
                            black_box(mutex_map.lock().unwrap().get(&h).cloned());
                        }
                    });
                }
            });
            start.elapsed() / THREADS as u32
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = bench_verify, bench_layer, bench_extract_and_cache, bench_cache_contention
}
criterion_main!(benches);
