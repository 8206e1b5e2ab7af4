//! How an attempted username is recorded without recording it: a keyed hash of its canonical key, so
//! a password typed into the username field never reaches the logs, the audit trail or the throttle
//! table, while one name always gives one label (the throttle keeps one bucket per name, and an
//! operator can correlate attempts across restarts and replicas).
//!
//! The label is the first 64 bits of HMAC-SHA-256 over the canonical username, hex-encoded. Its key is
//! derived with HKDF-SHA-256 from the deployment's key material — the master key (`AUTH_MASTER_KEY` or
//! the generated `master.key`) or, in HS256 mode, the shared secret — so every replica of one
//! deployment computes the same labels, and a copy of the database alone cannot test guesses.

use aws_lc_rs::{hkdf, hmac};

use crate::error::AuthError;

/// HKDF salt: this application.
const SALT: &[u8] = b"auth-server";
/// HKDF info: this purpose and its version (a new version would give new labels).
const INFO: &[u8] = b"attempted-username-label v1";
/// Bytes of the MAC kept in a label.
const LABEL_BYTES: usize = 8;
/// Prefix of the audit subject of an attempt at a username that has no account.
pub(crate) const UNKNOWN_PREFIX: &str = "unknown:";

/// Computes labels of attempted usernames. Never prints its key.
pub(crate) struct NameLabels {
    key: hmac::Key,
}

impl std::fmt::Debug for NameLabels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NameLabels(..)")
    }
}

impl NameLabels {
    /// Derives the label key from the deployment's secret key material.
    pub(crate) fn derive(secret: &[u8]) -> Result<Self, AuthError> {
        Ok(Self {
            key: derive_hmac_key(secret, INFO)?,
        })
    }

    /// The label of a canonical username: 16 hex digits.
    pub(crate) fn digest(&self, username_key: &str) -> String {
        let tag = hmac::sign(&self.key, username_key.as_bytes());
        tag.as_ref()[..LABEL_BYTES]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// How an attempt at a username without an account is recorded: `unknown:` and its label.
    pub(crate) fn unknown(&self, username_key: &str) -> String {
        format!("{UNKNOWN_PREFIX}{}", self.digest(username_key))
    }
}

/// An HMAC-SHA-256 key for one purpose (`info`, with its version), derived with HKDF-SHA-256 from the
/// deployment's secret key material: keys of different purposes are independent.
pub(crate) fn derive_hmac_key(material: &[u8], info: &[u8]) -> Result<hmac::Key, AuthError> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(material);
    let info = [info];
    let okm = prk
        .expand(&info, hmac::HMAC_SHA256)
        .map_err(|_| AuthError::Internal("key derivation failed".into()))?;
    Ok(hmac::Key::from(okm))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_stable_keyed_and_opaque() {
        let a = NameLabels::derive(&[7u8; 32]).unwrap();
        let again = NameLabels::derive(&[7u8; 32]).unwrap();
        let other = NameLabels::derive(&[8u8; 32]).unwrap();
        let label = a.unknown("hunter2-typed-here");
        assert_eq!(label, again.unknown("hunter2-typed-here"), "stable");
        assert_ne!(label, other.unknown("hunter2-typed-here"), "keyed");
        assert_ne!(a.digest("alice"), a.digest("alicf"));
        assert_eq!(label.len(), UNKNOWN_PREFIX.len() + 2 * LABEL_BYTES);
        assert!(!label.contains("hunter2"));
        assert!(
            label[UNKNOWN_PREFIX.len()..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit())
        );
        assert_eq!(format!("{a:?}"), "NameLabels(..)");
    }
}
