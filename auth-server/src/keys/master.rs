//! The master key that encrypts private signing keys at rest (AES-256-GCM, key id as associated data).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

/// Length of the master key in bytes.
pub const MASTER_KEY_LEN: usize = 32;

/// Why a master key or ciphertext was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MasterKeyError {
    /// Not base64.
    #[error("must be base64 (standard alphabet)")]
    NotBase64,
    /// Wrong length.
    #[error("must decode to exactly 32 bytes (got {0})")]
    WrongLength(usize),
    /// Too little variety to be random (e.g. all zero bytes).
    #[error("is not random (too few distinct bytes); generate one with `openssl rand -base64 32`")]
    Weak,
    /// Decryption failed: wrong master key or tampered ciphertext.
    #[error("cannot decrypt a signing key: wrong AUTH_MASTER_KEY or corrupted key row")]
    Decrypt,
    /// Encryption failed.
    #[error("encryption failed")]
    Encrypt,
}

/// A 32-byte AES-256-GCM key. Never printed.
pub struct MasterKey {
    key: LessSafeKey,
    /// The raw key, kept only to derive the other keys of the deployment from it.
    raw: Zeroizing<[u8; MASTER_KEY_LEN]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// Parses a base64 master key, refusing short or obviously non-random keys.
    pub fn from_base64(s: &str) -> Result<Self, MasterKeyError> {
        let raw = Zeroizing::new(
            STANDARD
                .decode(s.trim())
                .map_err(|_| MasterKeyError::NotBase64)?,
        );
        Self::from_bytes(&raw)
    }

    /// Builds a key from raw bytes.
    pub fn from_bytes(raw: &[u8]) -> Result<Self, MasterKeyError> {
        if raw.len() != MASTER_KEY_LEN {
            return Err(MasterKeyError::WrongLength(raw.len()));
        }
        let mut distinct = raw.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() < 12 {
            return Err(MasterKeyError::Weak);
        }
        let key = UnboundKey::new(&AES_256_GCM, raw)
            .map_err(|_| MasterKeyError::WrongLength(raw.len()))?;
        let mut copy = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        copy.copy_from_slice(raw);
        Ok(Self {
            key: LessSafeKey::new(key),
            raw: copy,
        })
    }

    /// The key that labels attempted usernames (see [`crate::labels`]), derived from this one.
    pub(crate) fn name_labels(&self) -> Result<crate::labels::NameLabels, crate::error::AuthError> {
        crate::labels::NameLabels::derive(self.raw.as_ref())
    }

    /// The raw key, for deriving purpose keys from it (never printed).
    pub(crate) fn raw(&self) -> &[u8] {
        self.raw.as_ref()
    }

    /// A fresh random key, base64-encoded (for the zero-config SQLite default).
    pub fn generate_base64() -> Result<Zeroizing<String>, MasterKeyError> {
        let mut raw = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        aws_lc_rs::rand::fill(raw.as_mut()).map_err(|_| MasterKeyError::Encrypt)?;
        Ok(Zeroizing::new(STANDARD.encode(raw.as_ref())))
    }

    /// Encrypts `plaintext`, binding it to `aad` (the key id). Output: nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, aad: &str, plaintext: &[u8]) -> Result<Vec<u8>, MasterKeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| MasterKeyError::Encrypt)?;
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut buf,
            )
            .map_err(|_| MasterKeyError::Encrypt)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Decrypts the output of [`MasterKey::seal`] with the same `aad`.
    pub fn open(&self, aad: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, MasterKeyError> {
        if sealed.len() < NONCE_LEN {
            return Err(MasterKeyError::Decrypt);
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| MasterKeyError::Decrypt)?;
        let mut buf = Zeroizing::new(ct.to_vec());
        let len = self
            .key
            .open_in_place(nonce, Aad::from(aad.as_bytes()), buf.as_mut())
            .map_err(|_| MasterKeyError::Decrypt)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_binding() {
        let k = MasterKey::from_base64(&MasterKey::generate_base64().unwrap()).unwrap();
        let sealed = k.seal("kid-1", b"private").unwrap();
        assert_eq!(k.open("kid-1", &sealed).unwrap().as_slice(), b"private");
        assert_eq!(
            k.open("kid-2", &sealed).unwrap_err(),
            MasterKeyError::Decrypt
        );
        let other = MasterKey::from_base64(&MasterKey::generate_base64().unwrap()).unwrap();
        assert_eq!(
            other.open("kid-1", &sealed).unwrap_err(),
            MasterKeyError::Decrypt
        );
    }

    #[test]
    fn weak_keys_refused() {
        assert_eq!(
            MasterKey::from_base64("not base64!").unwrap_err(),
            MasterKeyError::NotBase64
        );
        assert_eq!(
            MasterKey::from_base64(&STANDARD.encode([1u8; 16])).unwrap_err(),
            MasterKeyError::WrongLength(16)
        );
        assert_eq!(
            MasterKey::from_base64(&STANDARD.encode([0u8; 32])).unwrap_err(),
            MasterKeyError::Weak
        );
    }
}
