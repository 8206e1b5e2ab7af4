//! A bounded cache of already verified tokens, so a token used for many calls is verified once.
//!
//! Entries are keyed by the SHA-256 of the token (the token itself is not kept), expire no later than
//! the token's `exp` (without leeway) and after a configurable maximum age, and are only honoured while
//! the key that signed them (`kid`) is still in the current key set — so removing a key stops its
//! tokens at the next key-set refresh. Failed verifications are never cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use aws_lc_rs::digest::{SHA256, digest};

use crate::claims::Claims;
use crate::keys::KeySet;

/// Default number of cached tokens.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;
/// Default maximum age of a cache entry.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60);

type TokenHash = [u8; 32];

#[derive(Debug)]
struct Entry {
    claims: Arc<Claims>,
    kid: String,
    inserted: Instant,
}

/// A bounded map from token hash to verified claims.
#[derive(Debug)]
pub struct TokenCache {
    entries: Mutex<HashMap<TokenHash, Entry>>,
    capacity: usize,
    max_age: Duration,
}

fn hash(token: &str) -> TokenHash {
    let d = digest(&SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl TokenCache {
    /// A cache of at most `capacity` tokens, each kept at most `max_age` (and never past its `exp`).
    pub fn new(capacity: usize, max_age: Duration) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity,
            max_age,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<TokenHash, Entry>> {
        // The map holds no invariant a panic could break; keep serving after poisoning.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached claims of `token`, if it was verified before, has not reached `exp` at `now`
    /// (seconds since the epoch), and its `kid` is still in `keys`.
    pub fn get(&self, token: &str, keys: &KeySet, now: u64) -> Option<Arc<Claims>> {
        if self.capacity == 0 {
            return None;
        }
        let h = hash(token);
        let mut map = self.lock();
        let entry = map.get(&h)?;
        if now < entry.claims.exp
            && entry.inserted.elapsed() < self.max_age
            && keys.get(&entry.kid).is_some()
        {
            return Some(entry.claims.clone());
        }
        map.remove(&h);
        None
    }

    /// Remembers that `token`, signed by `kid`, verified to `claims`.
    pub fn insert(&self, token: &str, kid: &str, claims: Arc<Claims>, now: u64) {
        if self.capacity == 0 || now >= claims.exp {
            return;
        }
        let h = hash(token);
        let mut map = self.lock();
        if map.len() >= self.capacity && !map.contains_key(&h) {
            let max_age = self.max_age;
            map.retain(|_, e| now < e.claims.exp && e.inserted.elapsed() < max_age);
            if map.len() >= self.capacity {
                // Still full of live entries: start over rather than scan on every insert.
                map.clear();
            }
        }
        map.insert(
            h,
            Entry {
                claims,
                kid: kid.to_owned(),
                inserted: Instant::now(),
            },
        );
    }

    /// Number of cached tokens.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every entry.
    pub fn clear(&self) {
        self.lock().clear();
    }
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::new(DEFAULT_CACHE_CAPACITY, DEFAULT_CACHE_TTL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TestKey, claims, verifier};
    use crate::verify::unix_now;

    #[test]
    fn hit_miss_expiry_and_key_removal() {
        let k = TestKey::ed25519("k1");
        let set = k.key_set();
        let token = k.token("u1", &[]);
        let c = Arc::new(verifier().verify(&set, &token).unwrap());
        let cache = TokenCache::new(2, Duration::from_secs(60));
        let now = unix_now();
        assert!(cache.get(&token, &set, now).is_none());
        cache.insert(&token, "k1", c.clone(), now);
        assert_eq!(cache.get(&token, &set, now).unwrap().sub, "u1");
        // Never past exp, even though the verifier's leeway would still accept the token.
        assert!(cache.get(&token, &set, c.exp).is_none());
        assert!(cache.is_empty());
        cache.insert(&token, "k1", c.clone(), now);
        // A key set without k1 stops the cached entry.
        assert!(cache.get(&token, &crate::KeySet::new(), now).is_none());
        // Bounded.
        for i in 0..10 {
            let t = k.sign(&claims(&format!("u{i}"), &[]));
            cache.insert(&t, "k1", c.clone(), now);
            assert!(cache.len() <= 2);
        }
        // Disabled cache and max age.
        let off = TokenCache::new(0, Duration::from_secs(60));
        off.insert(&token, "k1", c.clone(), now);
        assert!(off.get(&token, &set, now).is_none());
        let short = TokenCache::new(10, Duration::ZERO);
        short.insert(&token, "k1", c, now);
        assert!(short.get(&token, &set, now).is_none());
    }
}
