//! The token toolkit every forged token is made with: the server's own signing key
//! ([`TestServer::signing_key`], the catalogue's `S(h,p)`), signing any header and payload with any key
//! or HMAC secret, and taking a JWT apart without verifying it. [`forge`](super::forge) builds the
//! catalogue's attack cases from these.

use auth_server::keys::master::MasterKey;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use super::harness::TestServer;

/// A key that signs tokens as the server does.
pub struct SigningKey {
    /// Its kid.
    pub kid: String,
    /// Its algorithm.
    pub alg: Algorithm,
    /// The private key.
    pub key: EncodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({}, {:?})", self.kid, self.alg)
    }
}

impl SigningKey {
    /// The header the server puts on its tokens.
    pub fn header(&self) -> Value {
        jwt_header(auth_interceptor::alg_name(self.alg), &self.kid)
    }

    /// `S(h, p)`: signs arbitrary header and payload JSON with this key.
    pub fn sign(&self, header: &Value, payload: &Value) -> String {
        sign_with(&self.key, self.alg, header, payload)
    }
}

impl TestServer {
    /// The current signing key, decrypted with the master key (the catalogue's test key).
    pub async fn signing_key(&self) -> SigningKey {
        if let Some(secret) = &self.hs256_secret {
            let token = self.admin_token().await;
            let kid = header_of(&token)["kid"].as_str().expect("kid").to_owned();
            return SigningKey {
                kid,
                alg: Algorithm::HS256,
                key: EncodingKey::from_secret(secret.as_bytes()),
            };
        }
        let (kid, alg, enc) = self.db.current_key().await;
        let master = MasterKey::from_base64(self.master_key.as_deref().expect("master key"))
            .expect("master key parses");
        let pkcs8 = master.open(&kid, &enc).expect("decrypt signing key");
        let alg: Algorithm = alg.parse().expect("alg");
        let key = auth_server::keys::generate::encoding_key(alg, &pkcs8).expect("encoding key");
        SigningKey { kid, alg, key }
    }
}

/// `{"alg": alg, "typ": "at+jwt", "kid": kid}`: the header of the server's tokens, for any `alg`.
pub fn jwt_header(alg: &str, kid: &str) -> Value {
    json!({"alg": alg, "typ": "at+jwt", "kid": kid})
}

/// base64url (no padding) of JSON.
pub fn b64_json(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"))
}

/// Signs `header.payload` with `key` under `alg`, whatever the header says.
pub fn sign_with(key: &EncodingKey, alg: Algorithm, header: &Value, payload: &Value) -> String {
    let input = format!("{}.{}", b64_json(header), b64_json(payload));
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).expect("sign");
    format!("{input}.{sig}")
}

/// Signs raw bytes as HMAC (`HS256`/`HS384`/`HS512`) with an arbitrary secret (empty allowed).
pub fn hmac_sign(secret: &[u8], alg: Algorithm, header: &Value, payload: &Value) -> String {
    let input = format!("{}.{}", b64_json(header), b64_json(payload));
    let algorithm = match alg {
        Algorithm::HS384 => aws_lc_rs::hmac::HMAC_SHA384,
        Algorithm::HS512 => aws_lc_rs::hmac::HMAC_SHA512,
        _ => aws_lc_rs::hmac::HMAC_SHA256,
    };
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(algorithm, secret),
        input.as_bytes(),
    );
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// Decodes a JWT's header (no verification).
pub fn header_of(token: &str) -> Value {
    part_of(token, 0)
}

/// Decodes a JWT's payload (no verification).
pub fn claims_of(token: &str) -> Value {
    part_of(token, 1)
}

fn part_of(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).expect("JWT part");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON part")
}

/// The signature part of a JWT.
pub fn signature_of(token: &str) -> &str {
    token.rsplit('.').next().expect("signature")
}

/// Replaces header and payload of `token` while keeping its signature (tampering).
pub fn resign_keep_signature(token: &str, header: &Value, payload: &Value) -> String {
    format!(
        "{}.{}.{}",
        b64_json(header),
        b64_json(payload),
        signature_of(token)
    )
}

/// Hex to bytes.
pub fn hex_bytes(h: &str) -> Vec<u8> {
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The `kid`s of a JWKS document, in its order.
pub fn jwks_kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}
