//! Test-token helpers: freshly generated signing keys and a signer for arbitrary headers and claims.
//!
//! Compiled for this crate's unit tests and, behind the `testing` cargo feature, for integration and
//! end-to-end tests elsewhere in the workspace. Never enable `testing` in production builds: it exists
//! to forge tokens.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod greeter;

pub use greeter::Greeter;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use crate::keys::{KeySet, VerificationKey};
use crate::verify::{ACCESS_TOKEN_TYP, Verifier, VerifierConfig, alg_name, unix_now};

/// The issuer the test helpers put in tokens and expect in [`verifier`].
pub const ISSUER: &str = "https://auth.test";
/// The audience the test helpers put in tokens and expect in [`verifier`].
pub const AUDIENCE: &str = "svc";

/// A verifier for [`ISSUER`] / [`AUDIENCE`] with the default leeway (30 s).
pub fn verifier() -> Verifier {
    Verifier::new(VerifierConfig::new(ISSUER, AUDIENCE))
}

/// Base64url without padding.
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Claims of a valid token for `sub` with `roles`, issued now and expiring in 600 s.
pub fn claims(sub: &str, roles: &[&str]) -> Value {
    claims_at(sub, roles, unix_now(), 600)
}

/// Claims of a valid token issued at `iat` and living `ttl` seconds.
pub fn claims_at(sub: &str, roles: &[&str], iat: u64, ttl: u64) -> Value {
    json!({
        "iss": ISSUER,
        "sub": sub,
        "aud": AUDIENCE,
        "exp": iat + ttl,
        "iat": iat,
        "nbf": iat,
        "jti": uuid_like(),
        "sid": "session-1",
        "roles": roles,
        "username": format!("user-{sub}"),
        "client_id": "auth-server",
    })
}

/// Claims of a valid service token (`"token_use": "service"`, no `sid`, no `username`) for the
/// account `sub` named `client_id`, for the one audience `aud`, issued now and expiring in 300 s.
pub fn service_claims(sub: &str, client_id: &str, aud: &str, roles: &[&str]) -> Value {
    let iat = unix_now();
    json!({
        "iss": ISSUER,
        "sub": sub,
        "aud": aud,
        "exp": iat + 300,
        "iat": iat,
        "nbf": iat,
        "jti": uuid_like(),
        "roles": roles,
        "client_id": client_id,
        "token_use": crate::SERVICE_TOKEN_USE,
    })
}

fn uuid_like() -> String {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    b64(b)
}

/// One signing key of a test issuer, with its public forms.
pub struct TestKey {
    /// The `kid` put in token headers.
    pub kid: String,
    /// The algorithm the key signs with.
    pub alg: Algorithm,
    /// The private signing key.
    pub encoding: EncodingKey,
    /// The public key as raw bytes (Ed25519 `x`, the uncompressed EC point, or the HMAC secret).
    pub public_raw: Vec<u8>,
    /// The public key as SPKI DER (empty for HMAC).
    pub spki_der: Vec<u8>,
    /// The public JWK (without private members), as JSON.
    pub jwk: Value,
}

impl TestKey {
    /// A new Ed25519 key.
    pub fn ed25519(kid: &str) -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8v1(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let raw = pair.public_key().as_ref().to_vec();
        let mut spki = hex("302a300506032b6570032100");
        spki.extend_from_slice(&raw);
        Self::asymmetric(
            kid,
            Algorithm::EdDSA,
            EncodingKey::from_ed_der(pkcs8.as_ref()),
            raw,
            spki,
        )
    }

    /// A new ECDSA P-256 key.
    pub fn es256(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let raw = pair.public_key().as_ref().to_vec();
        let mut spki = hex("3059301306072a8648ce3d020106082a8648ce3d030107034200");
        spki.extend_from_slice(&raw);
        Self::asymmetric(
            kid,
            Algorithm::ES256,
            EncodingKey::from_ec_der(pkcs8.as_ref()),
            raw,
            spki,
        )
    }

    /// An HS256 key with `secret`.
    pub fn hs256(kid: &str, secret: &[u8]) -> Self {
        Self {
            kid: kid.into(),
            alg: Algorithm::HS256,
            encoding: EncodingKey::from_secret(secret),
            public_raw: secret.to_vec(),
            spki_der: Vec::new(),
            jwk: Value::Null,
        }
    }

    fn asymmetric(
        kid: &str,
        alg: Algorithm,
        encoding: EncodingKey,
        raw: Vec<u8>,
        spki: Vec<u8>,
    ) -> Self {
        let mut jwk =
            serde_json::to_value(Jwk::from_encoding_key(&encoding, alg).unwrap()).unwrap();
        jwk["kid"] = json!(kid);
        jwk["alg"] = json!(alg_name(alg));
        jwk["use"] = json!("sig");
        Self {
            kid: kid.into(),
            alg,
            encoding,
            public_raw: raw,
            spki_der: spki,
            jwk,
        }
    }

    /// The public key as SPKI PEM (with a trailing newline).
    pub fn spki_pem(&self) -> String {
        let body = STANDARD.encode(&self.spki_der);
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for chunk in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(chunk).unwrap());
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        pem
    }

    /// The verification key matching this signing key.
    pub fn verification_key(&self) -> VerificationKey {
        match self.alg {
            Algorithm::HS256 => VerificationKey::hmac(self.alg, &self.public_raw).unwrap(),
            _ => VerificationKey::from_jwk(&serde_json::from_value(self.jwk.clone()).unwrap())
                .unwrap(),
        }
    }

    /// A key set holding only this key.
    pub fn key_set(&self) -> KeySet {
        KeySet::new()
            .with(self.kid.clone(), self.verification_key())
            .unwrap()
    }

    /// The standard access-token header for this key.
    pub fn header(&self) -> Value {
        json!({"alg": alg_name(self.alg), "typ": ACCESS_TOKEN_TYP, "kid": self.kid})
    }

    /// Signs `claims` under the standard header.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(&self.header(), claims)
    }

    /// Signs `claims` under an arbitrary `header`, with this key and its own algorithm (whatever the
    /// header's `alg` says).
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let input = signing_input(header, claims);
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &self.encoding, self.alg).unwrap();
        format!("{input}.{sig}")
    }

    /// A valid token for `sub` with `roles`.
    pub fn token(&self, sub: &str, roles: &[&str]) -> String {
        self.sign(&claims(sub, roles))
    }
}

/// `b64(header).b64(claims)`.
pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64(serde_json::to_vec(header).unwrap()),
        b64(serde_json::to_vec(claims).unwrap())
    )
}

/// Signs `input` with HMAC-SHA-`alg` under an arbitrary (possibly empty or public) `secret`.
pub fn hmac_sign(input: &str, alg: Algorithm, secret: &[u8]) -> String {
    let key = EncodingKey::from_secret(secret);
    jsonwebtoken::crypto::sign(input.as_bytes(), &key, alg).unwrap()
}

/// A JWKS JSON document publishing `keys`.
pub fn jwks_json(keys: &[&TestKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}).to_string()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
