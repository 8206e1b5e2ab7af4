//! Validate: valid tokens, revocation, expiry, and every forged-token case of the catalogue that applies
//! to the RPC (F01–F12, C01–C09, D04).

use std::time::Duration;

use auth_proto::v1::{InvalidReason, ValidateRequest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use e2e_tests::*;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

both_backends!(
    valid_token_claims_match_login,
    account_changes_revoke_tokens,
    expiry_uses_the_configured_leeway,
    forged_tokens_are_rejected,
    forged_claims_are_rejected,
    oversized_tokens_are_rejected,
);

async fn valid_token_claims_match_login(backend: Backend) {
    let s = TestServer::start(backend).await;
    let l = s.login(ADMIN_USER, ADMIN_PASSWORD).await;
    let jwt = claims_of(&l.access_token);
    let v = s.validate(&l.access_token).await;
    assert!(v.valid, "{v:?}");
    assert_eq!(v.reason(), InvalidReason::Unspecified);
    let c = v.claims.expect("claims");
    assert_eq!(c.subject, jwt["sub"].as_str().expect("sub"));
    assert_eq!(c.username, ADMIN_USER);
    assert_eq!(c.roles, vec!["admin".to_owned()]);
    assert_eq!(c.session_id, jwt["sid"].as_str().expect("sid"));
    assert_eq!(c.token_id, jwt["jti"].as_str().expect("jti"));
    assert_eq!(c.issuer, "auth-server");
    assert_eq!(c.audience, vec!["internal".to_owned()]);
    assert_eq!(
        c.issue_time.expect("iat").seconds,
        jwt["iat"].as_i64().expect("iat")
    );
    assert_eq!(
        c.expire_time.expect("exp").seconds,
        jwt["exp"].as_i64().expect("exp")
    );
    s.shutdown().await;
}

/// Disabling or deleting a user behind the API (directly in the database) is seen by Validate, Refresh
/// and Login at once. The admin-API versions are in `admin.rs`.
async fn account_changes_revoke_tokens(backend: Backend) {
    let s = TestServer::start(backend).await;
    let id = s.seed_user("ivan", "ivan-password-1", &["ops"]).await;
    let l = s.login("ivan", "ivan-password-1").await;
    assert!(s.validate(&l.access_token).await.valid);
    s.exec("UPDATE users SET disabled = (1=1) WHERE id = $1", &id)
        .await;
    assert_invalid(
        &s.validate(&l.access_token).await,
        Some(InvalidReason::Revoked),
        "disabled",
    );
    let st = bounded(
        "refresh",
        s.auth_client().refresh(auth_proto::v1::RefreshRequest {
            refresh_token: l.refresh_token.clone(),
        }),
    )
    .await
    .expect_err("refresh of a disabled user");
    assert_status(
        &st,
        Code::Unauthenticated,
        "invalid token",
        &[&l.refresh_token],
    );
    let st = s
        .try_login("ivan", "ivan-password-1")
        .await
        .expect_err("disabled");
    assert_status(
        &st,
        Code::Unauthenticated,
        "invalid credentials",
        &["ivan-password-1"],
    );

    s.exec("UPDATE users SET disabled = (1=0) WHERE id = $1", &id)
        .await;
    let l2 = s.login("ivan", "ivan-password-1").await;
    assert!(s.validate(&l2.access_token).await.valid);
    s.exec("DELETE FROM sessions WHERE user_id = $1", &id).await;
    s.exec("DELETE FROM users WHERE id = $1", &id).await;
    assert_invalid(
        &s.validate(&l2.access_token).await,
        Some(InvalidReason::Revoked),
        "deleted",
    );
    s.shutdown().await;
}

async fn expiry_uses_the_configured_leeway(backend: Backend) {
    let s = TestServer::start(backend).await;
    let l = s.login(ADMIN_USER, ADMIN_PASSWORD).await;
    s.clock.advance(ACCESS_TTL + LEEWAY - 1);
    assert!(s.validate(&l.access_token).await.valid, "inside the leeway");
    s.clock.advance(2);
    let v = s.validate(&l.access_token).await;
    assert_invalid(&v, Some(InvalidReason::Expired), "past exp + leeway");
    s.shutdown().await;
}

fn header(alg: &str, kid: &str) -> Value {
    json!({"alg": alg, "typ": "at+jwt", "kid": kid})
}

/// The tampered variants of F10: every member set to each odd value, signature kept.
fn tampered(token: &str) -> Vec<(String, String)> {
    let (h, p) = (header_of(token), claims_of(token));
    let odd = [
        json!(null),
        json!(true),
        json!(false),
        json!("jwt_tool"),
        json!(0),
    ];
    let mut out = Vec::new();
    for (which, obj) in [("header", &h), ("payload", &p)] {
        for key in obj.as_object().expect("object").keys() {
            for v in &odd {
                let mut h2 = h.clone();
                let mut p2 = p.clone();
                let target = if which == "header" { &mut h2 } else { &mut p2 };
                target[key.as_str()] = v.clone();
                out.push((
                    format!("F10 {which}.{key}={v}"),
                    resign_keep_signature(token, &h2, &p2),
                ));
            }
        }
    }
    let mut p2 = p.clone();
    p2["role"] = json!("admin");
    out.push((
        "F10 role=admin".into(),
        resign_keep_signature(token, &h, &p2),
    ));
    let mut p2 = p.clone();
    p2["roles"] = json!(["admin", "root"]);
    out.push((
        "F10 roles+=root".into(),
        resign_keep_signature(token, &h, &p2),
    ));
    out
}

async fn forged_tokens_are_rejected(backend: Backend) {
    let s = TestServer::start(backend).await;
    let l = s.login(ADMIN_USER, ADMIN_PASSWORD).await;
    let tok = l.access_token.clone();
    let other = s.login(ADMIN_USER, ADMIN_PASSWORD).await.access_token;
    let h = header_of(&tok);
    let p = claims_of(&tok);
    let kid = h["kid"].as_str().expect("kid").to_owned();
    let (hb, pb) = {
        let mut it = tok.split('.');
        (
            it.next().expect("h").to_owned(),
            it.next().expect("p").to_owned(),
        )
    };
    let jwks = s.jwks().await;
    let jwk = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("current key published")
        .clone();
    let x = URL_SAFE_NO_PAD
        .decode(jwk["x"].as_str().expect("x"))
        .expect("x is base64url");
    let mut spki = hex_bytes("302a300506032b6570032100");
    spki.extend_from_slice(&x);
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----",
        base64::engine::general_purpose::STANDARD.encode(&spki)
    );
    let before = s.db.fingerprint().await;

    let mut cases: Vec<(String, String, Option<InvalidReason>)> = Vec::new();
    let mut add =
        |what: &str, t: String, r: Option<InvalidReason>| cases.push((what.to_owned(), t, r));

    // F01: alg none, in every case, with and without typ/kid.
    for none in ["none", "None", "NONE", "nOnE"] {
        add(
            &format!("F01 {none}"),
            format!("{}.{pb}.", b64_json(&json!({"alg": none, "typ": "JWT"}))),
            None,
        );
        add(
            &format!("F01 {none} with kid"),
            format!(
                "{}.{pb}.",
                b64_json(&json!({"alg": none, "typ": "at+jwt", "kid": kid}))
            ),
            None,
        );
    }
    // F02: signature integrity.
    add(
        "F02a null signature",
        format!("{hb}.{pb}."),
        Some(InvalidReason::Malformed),
    );
    add(
        "F02b two parts",
        format!("{hb}.{pb}"),
        Some(InvalidReason::Malformed),
    );
    add(
        "F02c truncated signature",
        tok[..tok.len() - 4].to_owned(),
        None,
    );
    let mut p_u2 = p.clone();
    p_u2["sub"] = json!("u2");
    add(
        "F02d sub changed",
        resign_keep_signature(&tok, &h, &p_u2),
        Some(InvalidReason::BadSignature),
    );
    add(
        "F02e signature of another token",
        format!("{hb}.{pb}.{}", signature_of(&other)),
        Some(InvalidReason::BadSignature),
    );
    add(
        "F02 four parts",
        format!("{tok}.{}", signature_of(&tok)),
        Some(InvalidReason::Malformed),
    );
    add(
        "F02 padded",
        format!("{hb}=.{pb}.{}", signature_of(&tok)),
        Some(InvalidReason::Malformed),
    );
    // F03: HS256 with an empty key.
    add(
        "F03 empty HMAC key",
        hmac_sign(b"", Algorithm::HS256, &header("HS256", &kid), &p),
        None,
    );
    // F04: key confusion with the public key bytes as HMAC secret.
    let jwk_json = serde_json::to_vec(&jwk).expect("jwk json");
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("PEM", pem.clone().into_bytes()),
        ("PEM\\n", format!("{pem}\n").into_bytes()),
        ("DER", spki.clone()),
        ("JWK", jwk_json),
        ("raw x", x.clone()),
    ];
    for (form, secret) in &secrets {
        for (alg, name) in [
            (Algorithm::HS256, "HS256"),
            (Algorithm::HS384, "HS384"),
            (Algorithm::HS512, "HS512"),
        ] {
            add(
                &format!("F04 {name} {form}"),
                hmac_sign(secret, alg, &header(name, &kid), &p),
                None,
            );
        }
    }
    // F05: embedded JWK with the attacker's key (no kid, and with the real kid).
    let attacker = auth_server::keys::generate::generate(Algorithm::EdDSA).expect("attacker key");
    let attacker_enc =
        auth_server::keys::generate::encoding_key(Algorithm::EdDSA, &attacker.pkcs8).expect("enc");
    let attacker_jwk = serde_json::to_value(&attacker.public_jwk).expect("jwk");
    for with_kid in [false, true] {
        let mut hh = json!({"alg": "EdDSA", "typ": "at+jwt", "jwk": attacker_jwk});
        if with_kid {
            hh["kid"] = json!(kid);
        }
        add(
            &format!("F05 EdDSA jwk kid={with_kid}"),
            sign_with(&attacker_enc, Algorithm::EdDSA, &hh, &p),
            None,
        );
    }
    let hs_attacker = b"attacker-secret-attacker-secret-attacker";
    add(
        "F05 HS256 oct jwk",
        hmac_sign(
            hs_attacker,
            Algorithm::HS256,
            &json!({"alg": "HS256", "typ": "at+jwt", "kid": kid,
                    "jwk": {"kty": "oct", "k": URL_SAFE_NO_PAD.encode(hs_attacker)}}),
            &p,
        ),
        None,
    );
    // Attacker key under its own (unknown) kid.
    let mut hh = header("EdDSA", &attacker.kid);
    add(
        "K03 unknown kid",
        sign_with(&attacker_enc, Algorithm::EdDSA, &hh, &p),
        Some(InvalidReason::UnknownKey),
    );
    hh["kid"] = json!(kid);
    add(
        "attacker key, real kid",
        sign_with(&attacker_enc, Algorithm::EdDSA, &hh, &p),
        Some(InvalidReason::BadSignature),
    );
    add(
        "no kid",
        sign_with(
            &attacker_enc,
            Algorithm::EdDSA,
            &json!({"alg": "EdDSA", "typ": "at+jwt"}),
            &p,
        ),
        Some(InvalidReason::Malformed),
    );
    // F06: key pointers to a listener that must never be contacted.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/jwks.json", listener.local_addr().expect("addr"));
    for member in ["jku", "x5u"] {
        let mut hh = header("EdDSA", &kid);
        hh[member] = json!(url);
        add(
            &format!("F06 {member}"),
            sign_with(&attacker_enc, Algorithm::EdDSA, &hh, &p),
            None,
        );
    }
    let mut hh = header("EdDSA", &kid);
    hh["x5c"] = json!([base64::engine::general_purpose::STANDARD.encode(&spki)]);
    add(
        "F06 x5c",
        sign_with(&attacker_enc, Algorithm::EdDSA, &hh, &p),
        None,
    );
    let mut p_inject = p.clone();
    for k in ["iss", "sub", "jti", "username"] {
        p_inject[k] = json!(format!("{url}/inject_{k}"));
    }
    add(
        "F06 injected URLs",
        sign_with(
            &attacker_enc,
            Algorithm::EdDSA,
            &header("EdDSA", &kid),
            &p_inject,
        ),
        None,
    );
    // F08: psychic signatures.
    add(
        "F08 ES256 zero sig",
        format!(
            "{}.{pb}.{}",
            b64_json(&header("ES256", &kid)),
            "A".repeat(86)
        ),
        None,
    );
    let n = hex_bytes("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551");
    let rn_sn = [n.clone(), n].concat();
    add(
        "F08 ES256 r=s=n",
        format!(
            "{}.{pb}.{}",
            b64_json(&header("ES256", &kid)),
            URL_SAFE_NO_PAD.encode(&rn_sn)
        ),
        None,
    );
    let der = [
        hex_bytes("30440220"),
        vec![0; 32],
        hex_bytes("0220"),
        vec![0; 32],
    ]
    .concat();
    add(
        "F08 DER sig",
        format!("{hb}.{pb}.{}", URL_SAFE_NO_PAD.encode(&der)),
        None,
    );
    for len in [63usize, 65] {
        add(
            &format!("F08 {len}-byte sig"),
            format!("{hb}.{pb}.{}", URL_SAFE_NO_PAD.encode(vec![0u8; len])),
            None,
        );
    }
    add(
        "F08 EdDSA zero sig",
        format!("{hb}.{pb}.{}", URL_SAFE_NO_PAD.encode([0u8; 64])),
        Some(InvalidReason::BadSignature),
    );
    // F09: algorithm substitution, signature kept.
    for alg in [
        "ES256", "ES384", "RS256", "PS256", "HS256", "EdDSA2", "eddsa",
    ] {
        add(
            &format!("F09 alg={alg}"),
            resign_keep_signature(&tok, &header(alg, &kid), &p),
            None,
        );
    }
    // F10: tampering without re-signing.
    for (what, t) in tampered(&tok) {
        cases.push((what, t, None));
    }
    // Garbage.
    for (what, t) in [
        ("empty", ""),
        ("dots", ".."),
        ("junk", "not.a.token"),
        ("space", " "),
    ] {
        cases.push((
            format!("garbage {what}"),
            t.to_owned(),
            Some(InvalidReason::Malformed),
        ));
    }
    cases.push((
        "leading space".into(),
        format!(" {tok}"),
        Some(InvalidReason::Malformed),
    ));
    cases.push((
        "Bearer prefix".into(),
        format!("Bearer {tok}"),
        Some(InvalidReason::Malformed),
    ));

    let mut client = s.auth_client();
    for (what, t, reason) in &cases {
        let v = bounded(
            what,
            client.validate(ValidateRequest {
                access_token: t.clone(),
            }),
        )
        .await
        .unwrap_or_else(|st| panic!("{what}: RPC failed: {st:?}"))
        .into_inner();
        assert_invalid(&v, *reason, what);
    }
    // F06: nothing connected to the listener.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), listener.accept())
            .await
            .is_err(),
        "the server fetched a key from a URL in a token"
    );
    // D04: no lockout, no state change, still healthy, the real token still works.
    assert_eq!(s.db.fingerprint().await, before, "Validate wrote rows");
    let health = s
        .health_client()
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);
    assert!(
        s.validate(&tok).await.valid,
        "the original token still validates"
    );
    s.shutdown().await;
}

async fn forged_claims_are_rejected(backend: Backend) {
    let s = TestServer::start(backend).await;
    let l = s.login(ADMIN_USER, ADMIN_PASSWORD).await;
    let key = s.signing_key().await;
    let h = key.header();
    let p = claims_of(&l.access_token);
    let now = s.now();

    // Sanity: the harness signs exactly like the server.
    assert!(
        s.validate(&key.sign(&h, &p)).await.valid,
        "S(h,p) with the real claims is valid"
    );

    let mut cases: Vec<(String, Value, Value, Option<InvalidReason>)> = Vec::new();
    let with = |k: &str, v: Value| {
        let mut p2 = p.clone();
        p2[k] = v;
        p2
    };
    let without = |k: &str| {
        let mut p2 = p.clone();
        p2.as_object_mut().expect("object").remove(k);
        p2
    };
    // F12: crit.
    let mut hc = h.clone();
    hc["crit"] = json!(["b64"]);
    hc["b64"] = json!(false);
    cases.push((
        "F12 crit b64".into(),
        hc,
        p.clone(),
        Some(InvalidReason::Malformed),
    ));
    let mut hc = h.clone();
    hc["crit"] = json!(["x-unknown"]);
    cases.push((
        "F12 crit unknown".into(),
        hc,
        p.clone(),
        Some(InvalidReason::Malformed),
    ));
    // C01/C02: exp missing or mistyped.
    cases.push((
        "C01 no exp".into(),
        h.clone(),
        without("exp"),
        Some(InvalidReason::Malformed),
    ));
    for v in [
        json!("9999999999"),
        json!("never"),
        json!(true),
        json!(null),
        json!(-1),
        json!(1e300),
        json!(18446744073709551616.0_f64),
    ] {
        cases.push((format!("C02 exp={v}"), h.clone(), with("exp", v), None));
    }
    cases.push((
        "C02 nbf=x".into(),
        h.clone(),
        with("nbf", json!("x")),
        Some(InvalidReason::Malformed),
    ));
    // C03: leeway boundary.
    let mut expired = p.clone();
    expired["iat"] = json!(now - ACCESS_TTL - LEEWAY - 1);
    expired["nbf"] = expired["iat"].clone();
    expired["exp"] = json!(now - LEEWAY - 1);
    cases.push((
        "C03 exp=now-(L+1)".into(),
        h.clone(),
        expired,
        Some(InvalidReason::Expired),
    ));
    // C04: lifetime beyond the configured TTL.
    cases.push((
        "C04 exp-iat > ttl".into(),
        h.clone(),
        with("exp", json!(now + 2 * ACCESS_TTL)),
        Some(InvalidReason::Malformed),
    ));
    cases.push((
        "C04 exp < iat".into(),
        h.clone(),
        with("exp", json!(now - 1)),
        None,
    ));
    // C05: not yet valid.
    cases.push((
        "C05 nbf=now+3600".into(),
        h.clone(),
        with("nbf", json!(now + 3600)),
        Some(InvalidReason::NotYetValid),
    ));
    let mut future = p.clone();
    future["iat"] = json!(now + 3600);
    future["nbf"] = json!(now + 3600);
    future["exp"] = json!(now + 3600 + ACCESS_TTL);
    cases.push((
        "C05 iat=now+3600".into(),
        h.clone(),
        future,
        Some(InvalidReason::NotYetValid),
    ));
    // C06/C07: audience and issuer.
    cases.push((
        "C06 no aud".into(),
        h.clone(),
        without("aud"),
        Some(InvalidReason::WrongAudience),
    ));
    cases.push((
        "C06 aud=123".into(),
        h.clone(),
        with("aud", json!(123)),
        None,
    ));
    cases.push((
        "C06 aud=[1,2]".into(),
        h.clone(),
        with("aud", json!([1, 2])),
        None,
    ));
    cases.push((
        "C07 aud=billing".into(),
        h.clone(),
        with("aud", json!("billing")),
        Some(InvalidReason::WrongAudience),
    ));
    cases.push((
        "C07 aud=INTERNAL".into(),
        h.clone(),
        with("aud", json!("INTERNAL")),
        Some(InvalidReason::WrongAudience),
    ));
    cases.push((
        "C07 iss=evil".into(),
        h.clone(),
        with("iss", json!("evil")),
        Some(InvalidReason::WrongIssuer),
    ));
    cases.push((
        "C07 no iss".into(),
        h.clone(),
        without("iss"),
        Some(InvalidReason::WrongIssuer),
    ));
    // C08: token type.
    for typ in [
        json!("JWT"),
        json!("refresh+jwt"),
        json!(null),
        json!(""),
        json!(1),
    ] {
        let mut ht = h.clone();
        ht["typ"] = typ.clone();
        cases.push((
            format!("C08 typ={typ}"),
            ht,
            p.clone(),
            Some(InvalidReason::Malformed),
        ));
    }
    let mut ht = h.clone();
    ht.as_object_mut().expect("object").remove("typ");
    cases.push((
        "C08 no typ".into(),
        ht,
        p.clone(),
        Some(InvalidReason::Malformed),
    ));
    // C09: subject.
    cases.push(("C09 no sub".into(), h.clone(), without("sub"), None));
    cases.push((
        "C09 sub=\"\"".into(),
        h.clone(),
        with("sub", json!("")),
        None,
    ));
    cases.push((
        "C09 sub=123".into(),
        h.clone(),
        with("sub", json!(123)),
        None,
    ));
    cases.push((
        "C09 sub of nobody".into(),
        h.clone(),
        with("sub", json!("u2")),
        Some(InvalidReason::Revoked),
    ));
    cases.push((
        "C09 unknown sid".into(),
        h.clone(),
        with("sid", json!("no-such-session")),
        Some(InvalidReason::Revoked),
    ));
    for k in ["jti", "sid", "username", "nbf", "iat"] {
        cases.push((format!("missing {k}"), h.clone(), without(k), None));
    }
    cases.push((
        "roles not a list".into(),
        h.clone(),
        with("roles", json!("admin")),
        Some(InvalidReason::Malformed),
    ));

    let before = s.db.fingerprint().await;
    for (what, hh, pp, reason) in &cases {
        let v = s.validate(&key.sign(hh, pp)).await;
        assert_invalid(&v, *reason, what);
    }
    assert_eq!(s.db.fingerprint().await, before);

    // C03, the other side: exp = now-(L-1) still verifies.
    let mut inside = p.clone();
    inside["iat"] = json!(now - ACCESS_TTL - LEEWAY + 1);
    inside["nbf"] = inside["iat"].clone();
    inside["exp"] = json!(now - LEEWAY + 1);
    assert!(
        s.validate(&key.sign(&h, &inside)).await.valid,
        "C03 exp=now-(L-1)"
    );
    // typ is matched case-insensitively, and the media-type form is accepted (RFC 9068 §2.1).
    let mut ht = h.clone();
    ht["typ"] = json!("application/at+jwt");
    assert!(
        s.validate(&key.sign(&ht, &p)).await.valid,
        "typ application/at+jwt"
    );
    // C09: the sub of a disabled user.
    let uid = s.seed_user("judy", "judy-password-1", &[]).await;
    let jl = s.login("judy", "judy-password-1").await;
    s.exec("UPDATE users SET disabled = (1=1) WHERE id = $1", &uid)
        .await;
    let v = s
        .validate(&key.sign(&h, &claims_of(&jl.access_token)))
        .await;
    assert_invalid(&v, Some(InvalidReason::Revoked), "C09 disabled user");
    // A real session id with another user's sub.
    let v = s
        .validate(&key.sign(&h, &with("sid", claims_of(&jl.access_token)["sid"].clone())))
        .await;
    assert_invalid(&v, Some(InvalidReason::Revoked), "C09 sid of another user");
    assert!(s.validate(&l.access_token).await.valid);
    s.shutdown().await;
}

async fn oversized_tokens_are_rejected(backend: Backend) {
    let s = TestServer::start(backend).await;
    let l = s.login(ADMIN_USER, ADMIN_PASSWORD).await;
    // Over the verifier's 8 KiB cap, under the 64 KiB message cap: TOO_LARGE.
    let big = format!(
        "{}.{}.{}",
        "a".repeat(4096),
        "b".repeat(4096),
        "c".repeat(100)
    );
    assert_invalid(
        &s.validate(&big).await,
        Some(InvalidReason::TooLarge),
        "9 KiB token",
    );
    // 100 KiB: TOO_LARGE, or refused by the transport; never valid.
    let huge = "a".repeat(100 * 1024);
    match s
        .auth_client()
        .validate(ValidateRequest { access_token: huge })
        .await
    {
        Ok(r) => assert_invalid(
            &r.into_inner(),
            Some(InvalidReason::TooLarge),
            "100 KiB token",
        ),
        Err(st) => {
            assert!(
                matches!(st.code(), Code::ResourceExhausted | Code::OutOfRange),
                "{st:?}"
            );
            assert_no_leak(&st, &[]);
        }
    }
    assert!(s.validate(&l.access_token).await.valid);
    s.shutdown().await;
}

fn hex_bytes(h: &str) -> Vec<u8> {
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex"))
        .collect()
}
