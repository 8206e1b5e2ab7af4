//! Access-token issuing per algorithm: [`AccessTokenIssuer::issue`] next to a bare
//! `jsonwebtoken::encode` of the same claims (the signing floor).
//!
//! Run: `cargo bench -p auth-server --bench issue` (figures in BENCHMARKS.md).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use auth_interceptor::{Audience, Claims};
use auth_server::keys::Signer;
use auth_server::keys::generate::{encoding_key, generate};
use auth_server::store::UserRecord;
use auth_server::token::access::AccessTokenIssuer;
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

fn signer(alg: Algorithm) -> Signer {
    if alg == Algorithm::HS256 {
        return Signer {
            kid: "hs256".into(),
            alg,
            key: EncodingKey::from_secret(b"0123456789abcdefghijklmnopqrstuv"),
        };
    }
    let g = generate(alg).unwrap();
    Signer {
        kid: g.kid.clone(),
        alg,
        key: encoding_key(alg, &g.pkcs8).unwrap(),
    }
}

fn bench_issue(c: &mut Criterion) {
    let issuer = AccessTokenIssuer {
        issuer: "auth-server".into(),
        audience: "internal".into(),
        ttl: 600,
    };
    let user = UserRecord {
        id: "0199a2b4-0000-7000-8000-000000000001".into(),
        username: "alice".into(),
        username_key: "alice".into(),
        username_skeleton: Some("alice".into()),
        password_hash: None,
        roles: vec!["orders:read".into()],
        disabled: false,
        created_at: 0,
        updated_at: 0,
    };
    let now = auth_interceptor::Clock::unix_now(&auth_interceptor::SystemClock) as i64;
    for (name, alg) in [
        ("HS256", Algorithm::HS256),
        ("RS256", Algorithm::RS256),
        ("EdDSA", Algorithm::EdDSA),
        ("ES256", Algorithm::ES256),
    ] {
        let s = signer(alg);
        let mut g = c.benchmark_group(format!("issue/{name}"));
        let claims = Claims {
            iss: "auth-server".into(),
            sub: user.id.clone(),
            aud: Audience::One("internal".into()),
            exp: now as u64 + 600,
            iat: now as u64,
            nbf: now as u64,
            jti: "0123456789abcdef0123456789abcdef".into(),
            sid: "0199a2b4-0000-7000-8000-000000000002".into(),
            roles: user.roles.clone(),
            username: user.username.clone(),
            client_id: "auth-server".into(),
        };
        let mut header = Header::new(alg);
        header.typ = Some("at+jwt".into());
        header.kid = Some(s.kid.clone());
        g.bench_function("raw_jsonwebtoken", |b| {
            b.iter(|| jsonwebtoken::encode(&header, black_box(&claims), &s.key).unwrap())
        });
        g.bench_function("issuer", |b| {
            b.iter(|| {
                issuer
                    .issue(
                        &s,
                        black_box(&user),
                        "0199a2b4-0000-7000-8000-000000000002",
                        now,
                        i64::MAX,
                    )
                    .unwrap()
            })
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = bench_issue
}
criterion_main!(benches);
