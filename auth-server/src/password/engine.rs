//! The argon2 computation itself, into memory blocks reused across calls: each hash needs
//! `m_cost` KiB, and allocating that afresh per login lets the allocator keep every freed block
//! (hundreds of MiB under load). A pool of at most "concurrent hashes" buffers keeps peak memory at
//! permits × m_cost.

use std::sync::Mutex;

use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use subtle::ConstantTimeEq;

use crate::error::AuthError;

/// Salt length, bytes.
const SALT_LEN: usize = 16;
/// Tag length, bytes.
const TAG_LEN: usize = 32;

/// Hashes with fixed parameters into pooled memory.
pub(super) struct Engine {
    params: Params,
    pool: Mutex<Vec<Vec<Block>>>,
}

/// Outcome of [`Engine::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Checked {
    pub ok: bool,
    pub current_params: bool,
}

impl Engine {
    pub(super) fn new(params: Params) -> Self {
        Self {
            params,
            pool: Mutex::new(Vec::new()),
        }
    }

    pub(super) fn params(&self) -> &Params {
        &self.params
    }

    /// A PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$tag`) for `password` with a fresh salt.
    pub(super) fn hash(&self, password: &[u8]) -> Result<String, AuthError> {
        let mut salt = [0u8; SALT_LEN];
        aws_lc_rs::rand::fill(&mut salt).map_err(|_| AuthError::Internal("rng".into()))?;
        let mut tag = [0u8; TAG_LEN];
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone());
        self.with_memory(&self.params, |blocks| {
            argon.hash_password_into_with_memory(password, &salt, &mut tag, blocks)
        })
        .map_err(|e| AuthError::Internal(format!("argon2: {e}")))?;
        let p = &self.params;
        Ok(format!(
            "$argon2id$v=19$m={},t={},p={}${}${}",
            p.m_cost(),
            p.t_cost(),
            p.p_cost(),
            STANDARD_NO_PAD.encode(salt),
            STANDARD_NO_PAD.encode(tag)
        ))
    }

    /// Recomputes the tag of `phc` for `password` and compares in constant time.
    pub(super) fn verify(&self, password: &[u8], phc: &str) -> Result<Checked, AuthError> {
        let invalid =
            || AuthError::Internal("stored password hash is not a valid argon2 PHC string".into());
        let parsed = PasswordHash::new(phc).map_err(|_| invalid())?;
        let algorithm = Algorithm::try_from(parsed.algorithm).map_err(|_| invalid())?;
        let version = match parsed.version {
            Some(v) => Version::try_from(v).map_err(|_| invalid())?,
            None => Version::V0x10,
        };
        let expected = parsed.hash.ok_or_else(invalid)?;
        let mut salt = [0u8; 64];
        let salt = parsed
            .salt
            .ok_or_else(invalid)?
            .decode_b64(&mut salt)
            .map_err(|_| invalid())?;
        let stored = Params::try_from(&parsed).map_err(|_| invalid())?;
        let params = Params::new(
            stored.m_cost(),
            stored.t_cost(),
            stored.p_cost(),
            Some(expected.len()),
        )
        .map_err(|_| invalid())?;
        let mut tag = vec![0u8; expected.len()];
        let argon = Argon2::new(algorithm, version, params.clone());
        self.with_memory(&params, |blocks| {
            argon.hash_password_into_with_memory(password, salt, &mut tag, blocks)
        })
        .map_err(|e| AuthError::Internal(format!("argon2: {e}")))?;
        let ok = bool::from(tag.ct_eq(expected.as_bytes()));
        let current_params = algorithm == Algorithm::Argon2id
            && version == Version::V0x13
            && stored.m_cost() == self.params.m_cost()
            && stored.t_cost() == self.params.t_cost()
            && stored.p_cost() == self.params.p_cost()
            && expected.len() == TAG_LEN;
        Ok(Checked { ok, current_params })
    }

    /// Memory buffers kept for reuse (each `m_cost` KiB).
    #[cfg(test)]
    pub(super) fn pooled_buffers(&self) -> usize {
        self.pool.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Runs `f` over a memory buffer for `params`: a pooled one when `params` use our block count,
    /// otherwise (a hash stored under older parameters) a one-off allocation.
    fn with_memory<R>(&self, params: &Params, f: impl FnOnce(&mut [Block]) -> R) -> R {
        let count = params.block_count();
        if count != self.params.block_count() {
            return f(&mut vec![Block::default(); count]);
        }
        let pooled = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut blocks = pooled.unwrap_or_else(|| vec![Block::default(); count]);
        let result = f(&mut blocks);
        self.pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(blocks);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordVerifier;

    fn engine(m: u32) -> Engine {
        Engine::new(Params::new(m, 2, 1, Some(TAG_LEN)).unwrap())
    }

    #[test]
    fn phc_strings_interoperate_with_the_argon2_crate() {
        let e = engine(1024);
        let phc = e.hash(b"correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=1024,t=2,p=1$"));
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        // And the other way: a hash made by the crate's own API verifies here.
        let salt = argon2::password_hash::SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let theirs = argon2::PasswordHasher::hash_password(&Argon2::default(), b"pw", &salt)
            .unwrap()
            .to_string();
        assert!(e.verify(b"pw", &theirs).unwrap().ok);
        assert!(!e.verify(b"pW", &theirs).unwrap().ok);
    }

    #[test]
    fn reused_memory_gives_the_same_results() {
        let e = engine(1024);
        let phc = e.hash(b"first").unwrap();
        for _ in 0..3 {
            // The pooled buffer now holds another computation's blocks.
            e.hash(b"something else").unwrap();
            assert!(e.verify(b"first", &phc).unwrap().ok);
            assert!(!e.verify(b"firsT", &phc).unwrap().ok);
        }
        assert_eq!(
            e.pool.lock().unwrap().len(),
            1,
            "one buffer serves sequential calls"
        );
    }

    #[test]
    fn older_parameters_verify_and_are_flagged() {
        let old = engine(2048).hash(b"pw").unwrap();
        let c = engine(1024).verify(b"pw", &old).unwrap();
        assert_eq!(
            c,
            Checked {
                ok: true,
                current_params: false
            }
        );
        assert!(engine(1024).verify(b"pw", "not a phc").is_err());
    }
}
