//! Verification keys: each `kid` bound to exactly one (key, algorithm) pair (RFC 8725 §3.1).
//!
//! A [`KeySet`] is an immutable snapshot; sources that change over time (the auth server's JWKS) swap
//! whole snapshots, so readers never lock.

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};

/// Minimum length of an HMAC secret, in bytes (RFC 7518 §3.2 for HS256).
pub const MIN_HMAC_SECRET_LEN: usize = 32;

/// Why a key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The algorithm is not one this crate verifies.
    #[error("unsupported algorithm {0}")]
    UnsupportedAlgorithm(String),
    /// An HMAC secret is shorter than [`MIN_HMAC_SECRET_LEN`].
    #[error("HMAC secret must be at least {MIN_HMAC_SECRET_LEN} bytes")]
    WeakSecret,
    /// A JWK is missing `kid` or `alg`, carries private members, or does not match its algorithm.
    #[error("invalid JWK: {0}")]
    InvalidJwk(String),
    /// The JWKS document is not valid JSON.
    #[error("invalid JWKS document: {0}")]
    InvalidJwks(String),
    /// A PEM key could not be parsed.
    #[error("invalid PEM key: {0}")]
    InvalidPem(String),
    /// Two keys share a `kid`.
    #[error("duplicate kid {0}")]
    DuplicateKid(String),
}

/// One verification key, pinned to one algorithm.
#[derive(Clone)]
pub struct VerificationKey {
    pub(crate) alg: Algorithm,
    pub(crate) key: DecodingKey,
    /// SHA-256 over the algorithm and the key material: the key's identity, whatever its `kid`.
    fingerprint: KeyFingerprint,
}

/// The identity of a key's material (SHA-256 over algorithm and key): two keys with the same
/// fingerprint verify the same signatures. Lets a cache tell a reused `kid` with new material apart.
pub(crate) type KeyFingerprint = [u8; 32];

fn fingerprint(alg: Algorithm, kind: &str, material: &[u8]) -> KeyFingerprint {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(crate::verify::alg_name(alg).as_bytes());
    ctx.update(&[0]);
    ctx.update(kind.as_bytes());
    ctx.update(&[0]);
    ctx.update(material);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material (an HMAC secret is a secret).
        f.debug_struct("VerificationKey")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerificationKey {
    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The identity of this key's material.
    pub(crate) fn fingerprint(&self) -> &KeyFingerprint {
        &self.fingerprint
    }

    /// An HMAC key (`HS256`, `HS384` or `HS512`); refuses secrets under 32 bytes.
    pub fn hmac(alg: Algorithm, secret: &[u8]) -> Result<Self, KeyError> {
        if !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
            return Err(KeyError::UnsupportedAlgorithm(format!("{alg:?}")));
        }
        if secret.len() < MIN_HMAC_SECRET_LEN {
            return Err(KeyError::WeakSecret);
        }
        Ok(Self {
            alg,
            key: DecodingKey::from_secret(secret),
            fingerprint: fingerprint(alg, "hmac", secret),
        })
    }

    /// A public key in SPKI PEM form (`-----BEGIN PUBLIC KEY-----`) for `alg`.
    pub fn from_public_pem(alg: Algorithm, pem: &[u8]) -> Result<Self, KeyError> {
        let key = match alg {
            Algorithm::EdDSA => DecodingKey::from_ed_pem(pem),
            Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem),
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => DecodingKey::from_rsa_pem(pem),
            other => return Err(KeyError::UnsupportedAlgorithm(format!("{other:?}"))),
        }
        .map_err(|e| KeyError::InvalidPem(e.to_string()))?;
        Ok(Self {
            alg,
            key,
            fingerprint: fingerprint(alg, "pem", pem),
        })
    }

    /// A public JWK. `alg` must be present and must match the key type; private members (`d`, or any
    /// symmetric `k`) are refused, since a JWKS is public by definition.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, KeyError> {
        let alg = match jwk.common.key_algorithm {
            Some(KeyAlgorithm::EdDSA) => Algorithm::EdDSA,
            Some(KeyAlgorithm::ES256) => Algorithm::ES256,
            Some(KeyAlgorithm::ES384) => Algorithm::ES384,
            Some(KeyAlgorithm::RS256) => Algorithm::RS256,
            Some(KeyAlgorithm::RS384) => Algorithm::RS384,
            Some(KeyAlgorithm::RS512) => Algorithm::RS512,
            Some(KeyAlgorithm::PS256) => Algorithm::PS256,
            Some(KeyAlgorithm::PS384) => Algorithm::PS384,
            Some(KeyAlgorithm::PS512) => Algorithm::PS512,
            Some(other) => return Err(KeyError::UnsupportedAlgorithm(format!("{other:?}"))),
            None => return Err(KeyError::InvalidJwk("missing alg".into())),
        };
        if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
            return Err(KeyError::InvalidJwk("use is not sig".into()));
        }
        let family_ok = match (&jwk.algorithm, alg) {
            (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA) => {
                p.curve == EllipticCurve::Ed25519
            }
            (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => {
                p.curve == EllipticCurve::P256
            }
            (AlgorithmParameters::EllipticCurve(p), Algorithm::ES384) => {
                p.curve == EllipticCurve::P384
            }
            (
                AlgorithmParameters::RSA(_),
                Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512,
            ) => true,
            _ => false,
        };
        if !family_ok {
            return Err(KeyError::InvalidJwk("key type does not match alg".into()));
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|e| KeyError::InvalidJwk(e.to_string()))?;
        let params =
            serde_json::to_vec(&jwk.algorithm).map_err(|e| KeyError::InvalidJwk(e.to_string()))?;
        Ok(Self {
            alg,
            key,
            fingerprint: fingerprint(alg, "jwk", &params),
        })
    }
}

/// The `kid` of an HS256 shared secret: `hs-` and the base64url of the first 12 bytes of its SHA-256
/// (stable, and reveals nothing useful about the secret). The auth server signs with this `kid`;
/// [`KeySet::hs256`] verifies under it.
pub fn hs256_kid(secret: &[u8]) -> String {
    use base64::Engine;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret);
    let kid = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest.as_ref()[..12]);
    format!("hs-{kid}")
}

/// An immutable set of verification keys indexed by `kid`.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, Arc<VerificationKey>>,
}

impl KeySet {
    /// An empty key set (verifies nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key` under `kid`; a `kid` may be bound only once.
    pub fn insert(&mut self, kid: impl Into<String>, key: VerificationKey) -> Result<(), KeyError> {
        let kid = kid.into();
        if self.keys.contains_key(&kid) {
            return Err(KeyError::DuplicateKid(kid));
        }
        self.keys.insert(kid, Arc::new(key));
        Ok(())
    }

    /// Builder form of [`KeySet::insert`].
    pub fn with(mut self, kid: impl Into<String>, key: VerificationKey) -> Result<Self, KeyError> {
        self.insert(kid, key)?;
        Ok(self)
    }

    /// The key set of an auth server in HS256 (shared-secret) mode: the one HMAC key, under the same
    /// `kid` the server puts in its tokens ([`hs256_kid`]). Such a server publishes no JWKS, so this
    /// is how a downstream service builds its keys. Refuses secrets under 32 bytes.
    ///
    /// ```
    /// use auth_interceptor::{KeySet, hs256_kid};
    /// let secret = b"q7Vx2LmZ9pTcR4wYb8NkHs3JdF6gAeUo";
    /// let keys = KeySet::hs256(secret).unwrap();
    /// assert!(keys.get(&hs256_kid(secret)).is_some());
    /// ```
    pub fn hs256(secret: &[u8]) -> Result<Self, KeyError> {
        Self::new().with(
            hs256_kid(secret),
            VerificationKey::hmac(Algorithm::HS256, secret)?,
        )
    }

    /// Builds a key set from a parsed JWKS. Every key must have a `kid` and an `alg`.
    pub fn from_jwks(jwks: &JwkSet) -> Result<Self, KeyError> {
        let mut set = Self::new();
        for jwk in &jwks.keys {
            let kid = jwk
                .common
                .key_id
                .clone()
                .filter(|k| !k.is_empty())
                .ok_or_else(|| KeyError::InvalidJwk("missing kid".into()))?;
            set.insert(kid, VerificationKey::from_jwk(jwk)?)?;
        }
        Ok(set)
    }

    /// Parses a JWKS JSON document (`{"keys":[...]}`), refusing any key with private members.
    ///
    /// ```
    /// let jwks = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","alg":"EdDSA","use":"sig",
    ///     "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
    /// let keys = auth_interceptor::KeySet::from_jwks_json(jwks).unwrap();
    /// assert!(keys.get("k1").is_some());
    /// ```
    pub fn from_jwks_json(json: &str) -> Result<Self, KeyError> {
        let raw: serde_json::Value =
            serde_json::from_str(json).map_err(|e| KeyError::InvalidJwks(e.to_string()))?;
        let has_private = raw
            .get("keys")
            .and_then(|k| k.as_array())
            .is_some_and(|keys| {
                keys.iter()
                    .any(|k| k.get("d").is_some() || k.get("k").is_some())
            });
        if has_private {
            return Err(KeyError::InvalidJwk(
                "private or symmetric key material in a JWKS".into(),
            ));
        }
        let jwks: JwkSet =
            serde_json::from_value(raw).map_err(|e| KeyError::InvalidJwks(e.to_string()))?;
        Self::from_jwks(&jwks)
    }

    /// The key bound to `kid`.
    pub fn get(&self, kid: &str) -> Option<&VerificationKey> {
        self.keys.get(kid).map(Arc::as_ref)
    }

    /// The `kid`s in this set.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// A shared, atomically swapped [`KeySet`]: lock-free reads on the hot path, whole-snapshot updates.
///
/// Cloning is cheap and every clone sees the same keys. The auth server updates one of these when it
/// rotates keys; key sources in this crate update one when they fetch a JWKS.
#[derive(Debug, Clone, Default)]
pub struct SharedKeys {
    inner: Arc<arc_swap::ArcSwap<KeySet>>,
}

impl SharedKeys {
    /// A handle holding `keys`.
    pub fn new(keys: KeySet) -> Self {
        Self {
            inner: Arc::new(arc_swap::ArcSwap::from_pointee(keys)),
        }
    }

    /// The current snapshot.
    pub fn load(&self) -> Arc<KeySet> {
        self.inner.load_full()
    }

    /// Replaces the snapshot.
    pub fn store(&self, keys: KeySet) {
        self.inner.store(Arc::new(keys));
    }
}
