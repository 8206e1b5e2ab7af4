//! Generation of signing key pairs (EdDSA, ES256, RS256) as PKCS#8, with their public JWK and kid.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::jwk::{Jwk, KeyAlgorithm, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey};
use zeroize::Zeroizing;

/// A generated key pair.
pub struct GeneratedKey {
    /// RFC 7638 thumbprint of the public key (SHA-256, base64url).
    pub kid: String,
    /// PKCS#8 DER private key.
    pub pkcs8: Zeroizing<Vec<u8>>,
    /// Public JWK with `kid`, `alg` and `use: sig`.
    pub public_jwk: Jwk,
}

/// Why a key could not be generated or loaded.
#[derive(Debug, thiserror::Error)]
#[error("signing key: {0}")]
pub struct KeyGenError(pub String);

/// Generates a key pair for `alg`.
pub fn generate(alg: Algorithm) -> Result<GeneratedKey, KeyGenError> {
    let err = |what: &str| KeyGenError(format!("cannot generate {what} key"));
    let pkcs8: Vec<u8> = match alg {
        Algorithm::EdDSA => Ed25519KeyPair::generate_pkcs8v1(&SystemRandom::new())
            .map_err(|_| err("Ed25519"))?
            .as_ref()
            .to_vec(),
        Algorithm::ES256 => {
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| err("P-256"))?
                .as_ref()
                .to_vec()
        }
        Algorithm::RS256 => {
            let kp = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).map_err(|_| err("RSA"))?;
            let der: aws_lc_rs::encoding::Pkcs8V1Der<'_> = kp.as_der().map_err(|_| err("RSA"))?;
            der.as_ref().to_vec()
        }
        other => {
            return Err(KeyGenError(format!(
                "{other:?} is not an asymmetric signing algorithm"
            )));
        }
    };
    let pkcs8 = Zeroizing::new(pkcs8);
    let encoding = encoding_key(alg, &pkcs8)?;
    let mut jwk = Jwk::from_encoding_key(&encoding, alg).map_err(|e| KeyGenError(e.to_string()))?;
    let kid = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|e| KeyGenError(e.to_string()))?;
    jwk.common.key_id = Some(kid.clone());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_algorithm = Some(key_algorithm(alg));
    Ok(GeneratedKey {
        kid,
        pkcs8,
        public_jwk: jwk,
    })
}

/// The `jsonwebtoken` signing key for a PKCS#8 DER private key.
pub fn encoding_key(alg: Algorithm, pkcs8: &[u8]) -> Result<EncodingKey, KeyGenError> {
    let pem = Zeroizing::new(to_pem(pkcs8));
    let key = match alg {
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
        Algorithm::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes()),
        other => {
            return Err(KeyGenError(format!(
                "{other:?} is not supported for stored keys"
            )));
        }
    };
    key.map_err(|e| KeyGenError(format!("stored private key does not parse: {e}")))
}

fn to_pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

fn key_algorithm(alg: Algorithm) -> KeyAlgorithm {
    match alg {
        Algorithm::ES256 => KeyAlgorithm::ES256,
        Algorithm::RS256 => KeyAlgorithm::RS256,
        _ => KeyAlgorithm::EdDSA,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth_interceptor::VerificationKey;

    #[test]
    fn generates_usable_public_only_jwks() {
        for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
            let k = generate(alg).unwrap();
            let json = serde_json::to_value(&k.public_jwk).unwrap();
            assert!(
                json.get("d").is_none() && json.get("k").is_none(),
                "{alg:?} leaks private members"
            );
            assert_eq!(json["kid"], k.kid.as_str());
            assert_eq!(json["use"], "sig");
            let vk = VerificationKey::from_jwk(&k.public_jwk).unwrap();
            assert_eq!(vk.algorithm(), alg);
            encoding_key(alg, &k.pkcs8).unwrap();
        }
    }
}
