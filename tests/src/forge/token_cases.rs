//! Token and signature attacks of the catalogue (F01–F10, K03, garbage), built from a real token of a
//! running server: each must be refused by every verifier.

use auth_proto::v1::InvalidReason;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use super::super::harness::TestServer;
use super::super::tokens::{
    b64_json, claims_of, header_of, hex_bytes, hmac_sign, jwt_header, resign_keep_signature,
    sign_with, signature_of,
};
use super::{Case, ForgedTokens};

/// The tampered variants of F10: every member set to each odd value, signature kept.
pub fn tampered(token: &str) -> Vec<(String, String)> {
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

/// F01–F10 and K03 cases built from a real token `tok` of server `s` (and `other`, a second real
/// token): each must be refused by every verifier.
pub async fn forged_token_cases(s: &TestServer, tok: &str, other: &str) -> ForgedTokens {
    let h = header_of(tok);
    let p = claims_of(tok);
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
        STANDARD.encode(&spki)
    );

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
        resign_keep_signature(tok, &h, &p_u2),
        Some(InvalidReason::BadSignature),
    );
    add(
        "F02e signature of another token",
        format!("{hb}.{pb}.{}", signature_of(other)),
        Some(InvalidReason::BadSignature),
    );
    add(
        "F02 four parts",
        format!("{tok}.{}", signature_of(tok)),
        Some(InvalidReason::Malformed),
    );
    add(
        "F02 padded",
        format!("{hb}=.{pb}.{}", signature_of(tok)),
        Some(InvalidReason::Malformed),
    );
    // F03: HS256 with an empty key.
    add(
        "F03 empty HMAC key",
        hmac_sign(b"", Algorithm::HS256, &jwt_header("HS256", &kid), &p),
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
                hmac_sign(secret, alg, &jwt_header(name, &kid), &p),
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
    let mut hh = jwt_header("EdDSA", &attacker.kid);
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
        let mut hh = jwt_header("EdDSA", &kid);
        hh[member] = json!(url);
        add(
            &format!("F06 {member}"),
            sign_with(&attacker_enc, Algorithm::EdDSA, &hh, &p),
            None,
        );
    }
    let mut hh = jwt_header("EdDSA", &kid);
    hh["x5c"] = json!([STANDARD.encode(&spki)]);
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
            &jwt_header("EdDSA", &kid),
            &p_inject,
        ),
        None,
    );
    // F08: psychic signatures.
    add(
        "F08 ES256 zero sig",
        format!(
            "{}.{pb}.{}",
            b64_json(&jwt_header("ES256", &kid)),
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
            b64_json(&jwt_header("ES256", &kid)),
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
            resign_keep_signature(tok, &jwt_header(alg, &kid), &p),
            None,
        );
    }
    // F10: tampering without re-signing.
    for (what, t) in tampered(tok) {
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
    forged_extra(&mut cases, &kid, &p, &hb, &pb);
    ForgedTokens {
        cases: cases
            .into_iter()
            .map(|(what, t, r)| Case::new(what, t, r))
            .collect(),
        listener,
    }
}

/// Cases the catalogue lists that the first version of the suite did not build: F01 with a signature,
/// F05 with an attacker RSA key in `jwk`, F09 with an ES256 token (attacker key, real kid) presented
/// to the EdDSA verifier, and an unsupported-but-real alg name in lower case.
fn forged_extra(
    cases: &mut Vec<(String, String, Option<InvalidReason>)>,
    kid: &str,
    p: &Value,
    hb: &str,
    pb: &str,
) {
    let real_sig = "A".repeat(86);
    cases.push((
        "F01 none with a signature".into(),
        format!(
            "{}.{pb}.{real_sig}",
            b64_json(&json!({"alg": "none", "typ": "at+jwt", "kid": kid}))
        ),
        None,
    ));
    // F05: jwt_tool's RS256 embedded JWK with the attacker's modulus.
    let rsa = auth_server::keys::generate::generate(Algorithm::RS256).expect("attacker RSA key");
    let rsa_enc =
        auth_server::keys::generate::encoding_key(Algorithm::RS256, &rsa.pkcs8).expect("rsa enc");
    let mut rsa_jwk = serde_json::to_value(&rsa.public_jwk).expect("jwk");
    rsa_jwk["kid"] = json!("jwt_tool");
    for with_kid in [false, true] {
        let mut hh = json!({"alg": "RS256", "typ": "at+jwt", "jwk": rsa_jwk});
        if with_kid {
            hh["kid"] = json!(kid);
        }
        cases.push((
            format!("F05 RS256 jwk kid={with_kid}"),
            sign_with(&rsa_enc, Algorithm::RS256, &hh, p),
            None,
        ));
    }
    // F09: an ES256 token under the real kid, and under its own kid.
    let es = auth_server::keys::generate::generate(Algorithm::ES256).expect("attacker EC key");
    let es_enc =
        auth_server::keys::generate::encoding_key(Algorithm::ES256, &es.pkcs8).expect("ec enc");
    cases.push((
        "F09 ES256 token, real kid".into(),
        sign_with(&es_enc, Algorithm::ES256, &jwt_header("ES256", kid), p),
        None,
    ));
    cases.push((
        "F09 ES256 token, own kid".into(),
        sign_with(&es_enc, Algorithm::ES256, &jwt_header("ES256", &es.kid), p),
        None,
    ));
    // F02: a signature that is not base64url at all.
    cases.push((
        "F02 signature with +/".into(),
        format!("{hb}.{pb}.{}", STANDARD.encode([0xfbu8; 64])),
        Some(InvalidReason::Malformed),
    ));
}
