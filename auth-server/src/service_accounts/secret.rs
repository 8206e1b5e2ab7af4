//! Client secrets of service accounts: `svcsec_` and 43 base64url characters (256 random bits), a
//! prefix secret scanners can find. The server keeps only an HMAC-SHA-256 of a secret, under a key
//! derived (HKDF, its own purpose label) from the deployment's key material — the master key or, in
//! HS256 mode, the shared secret — so every replica computes the same MAC, a copy of the database
//! alone cannot test guesses, and checking a secret costs one MAC (no password hash on this path).
//! MACs are compared in constant time.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::error::AuthError;
use crate::store::ServiceAccountRecord;

/// The prefix of every client secret.
pub(crate) const SECRET_PREFIX: &str = "svcsec_";
/// Random bytes in a secret.
const SECRET_BYTES: usize = 32;
/// Length of a secret: the prefix and 43 base64url characters.
pub(crate) const SECRET_LEN: usize = SECRET_PREFIX.len() + 43;
/// HKDF info: this purpose and its version.
const INFO: &[u8] = b"service-account-secret-mac v1";

/// Computes and checks the MACs of client secrets. Never prints its key.
pub(crate) struct SecretMacs {
    key: hmac::Key,
}

impl std::fmt::Debug for SecretMacs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretMacs(..)")
    }
}

impl SecretMacs {
    /// Derives the MAC key from the deployment's secret key material.
    pub(crate) fn derive(material: &[u8]) -> Result<Self, AuthError> {
        Ok(Self {
            key: crate::labels::derive_hmac_key(material, INFO)?,
        })
    }

    /// The MAC of `secret`.
    pub(crate) fn mac(&self, secret: &str) -> Vec<u8> {
        hmac::sign(&self.key, secret.as_bytes()).as_ref().to_vec()
    }

    /// A fresh secret and its MAC.
    pub(crate) fn generate(&self) -> Result<(SecretString, Vec<u8>), AuthError> {
        let mut raw = zeroize::Zeroizing::new([0u8; SECRET_BYTES]);
        aws_lc_rs::rand::fill(raw.as_mut())
            .map_err(|_| AuthError::Internal("no randomness for a client secret".into()))?;
        let secret = SecretString::from(format!(
            "{SECRET_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(raw.as_ref())
        ));
        let mac = self.mac(secret.expose_secret());
        Ok((secret, mac))
    }

    /// True when `presented` is the account's secret, or its previous one before that expires
    /// (strictly before `previous_secret_expires_at`). Both MACs are compared, in constant time,
    /// whatever the first answer.
    pub(crate) fn matches(
        &self,
        presented: &str,
        account: &ServiceAccountRecord,
        now: i64,
    ) -> bool {
        let mac = self.mac(presented);
        let current = mac.as_slice().ct_eq(&account.secret_hash);
        let previous_live = account
            .previous_secret_expires_at
            .is_some_and(|until| now < until);
        let previous = account
            .previous_secret_hash
            .as_deref()
            .map_or(subtle::Choice::from(0), |p| mac.as_slice().ct_eq(p));
        // The form is checked last, on the same path: a malformed secret never matches.
        let well_formed = presented.len() == SECRET_LEN && presented.starts_with(SECRET_PREFIX);
        well_formed
            && bool::from(current | (previous & subtle::Choice::from(u8::from(previous_live))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(macs: &SecretMacs, secret: &str) -> ServiceAccountRecord {
        ServiceAccountRecord {
            id: "a".into(),
            name: "payments".into(),
            description: String::new(),
            roles: vec![],
            audiences: vec!["orders".into()],
            disabled: false,
            secret_hash: macs.mac(secret),
            previous_secret_hash: None,
            previous_secret_expires_at: None,
            tokens_not_before: 0,
            created_at: 0,
            updated_at: 0,
            keys: vec![],
        }
    }

    #[test]
    fn secrets_have_the_prefix_and_256_bits() {
        let macs = SecretMacs::derive(&[5u8; 32]).unwrap();
        let (a, mac) = macs.generate().unwrap();
        let (b, _) = macs.generate().unwrap();
        let a = a.expose_secret();
        assert!(a.starts_with(SECRET_PREFIX) && a.len() == SECRET_LEN);
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(&a[SECRET_PREFIX.len()..])
                .unwrap()
                .len(),
            32
        );
        assert_ne!(a, b.expose_secret());
        assert_eq!(mac, macs.mac(a));
        assert_ne!(mac, SecretMacs::derive(&[6u8; 32]).unwrap().mac(a), "keyed");
        assert_eq!(format!("{macs:?}"), "SecretMacs(..)");
    }

    #[test]
    fn current_and_unexpired_previous_secrets_match() {
        let macs = SecretMacs::derive(&[5u8; 32]).unwrap();
        let (old, _) = macs.generate().unwrap();
        let (new, _) = macs.generate().unwrap();
        let mut acct = account(&macs, new.expose_secret());
        assert!(macs.matches(new.expose_secret(), &acct, 100));
        assert!(!macs.matches(old.expose_secret(), &acct, 100));
        acct.previous_secret_hash = Some(macs.mac(old.expose_secret()));
        acct.previous_secret_expires_at = Some(200);
        assert!(macs.matches(old.expose_secret(), &acct, 199));
        assert!(!macs.matches(old.expose_secret(), &acct, 200));
        assert!(!macs.matches("svcsec_short", &acct, 100));
        assert!(!macs.matches("", &acct, 100));
    }
}
