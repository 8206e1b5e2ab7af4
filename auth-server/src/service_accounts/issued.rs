//! The audit trail of issued service tokens, bounded: a service asks for a token every few minutes,
//! but a busy one (or a misconfigured loop) may ask thousands of times a second, and one audit row
//! (and log line) per token would let any account grow the trail without limit. So the first token
//! of an account for an audience in each [`WINDOW_SECS`] is audited, with the number issued since
//! the previous audited one; the others are only counted (and in the `auth_tokens_issued_total`
//! metric). Failures and refusals are audited one by one, as before (throttling bounds them).

use std::collections::HashMap;
use std::sync::Mutex;

/// Length of an audit window, seconds of the server's clock.
pub(crate) const WINDOW_SECS: i64 = 60;
/// Most (account, audience) windows kept; beyond, expired ones are dropped first, and when none
/// has expired every token is audited (correct, only not aggregated).
const CAPACITY: usize = 10_000;

/// The open window of one account and audience.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: i64,
    /// Tokens issued in it after the audited first one.
    unaudited: u64,
}

/// Open audit windows by (account id, audience).
#[derive(Debug, Default)]
pub(crate) struct IssuedTokens {
    windows: Mutex<HashMap<(String, String), Window>>,
}

impl IssuedTokens {
    /// Notes a token issued to `account` for `audience` at `now`. `Some(n)`: audit it, mentioning
    /// the `n` tokens issued unaudited since the last audited one; `None`: it is counted only.
    pub(crate) fn note(&self, account: &str, audience: &str, now: i64) -> Option<u64> {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let key = (account.to_owned(), audience.to_owned());
        if let Some(w) = windows.get_mut(&key) {
            if now >= w.start && now - w.start < WINDOW_SECS {
                w.unaudited += 1;
                return None;
            }
            let before = w.unaudited;
            *w = Window {
                start: now,
                unaudited: 0,
            };
            return Some(before);
        }
        if windows.len() >= CAPACITY {
            windows.retain(|_, w| now >= w.start && now - w.start < WINDOW_SECS);
            if windows.len() >= CAPACITY {
                return Some(0);
            }
        }
        windows.insert(
            key,
            Window {
                start: now,
                unaudited: 0,
            },
        );
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_token_of_each_window_is_audited_with_the_count_before_it() {
        let issued = IssuedTokens::default();
        assert_eq!(issued.note("a", "orders", 100), Some(0));
        for _ in 0..5 {
            assert_eq!(issued.note("a", "orders", 130), None);
        }
        assert_eq!(issued.note("a", "billing", 130), Some(0), "own window");
        assert_eq!(issued.note("b", "orders", 130), Some(0), "own window");
        assert_eq!(issued.note("a", "orders", 100 + WINDOW_SECS), Some(5));
        assert_eq!(issued.note("a", "orders", 100 + WINDOW_SECS + 1), None);
        // A clock that went back opens a new window rather than extending one.
        assert_eq!(issued.note("a", "orders", 50), Some(1));
    }

    #[test]
    fn windows_are_bounded_and_expired_ones_make_room() {
        let issued = IssuedTokens::default();
        for i in 0..CAPACITY {
            assert_eq!(issued.note(&format!("a{i}"), "x", 0), Some(0));
        }
        // Full of open windows: audited, not remembered.
        assert_eq!(issued.note("new", "x", 1), Some(0));
        assert_eq!(issued.note("new", "x", 1), Some(0));
        assert_eq!(issued.windows.lock().unwrap().len(), CAPACITY);
        // Once they have expired, they make room.
        assert_eq!(issued.note("new", "x", WINDOW_SECS), Some(0));
        assert_eq!(issued.note("new", "x", WINDOW_SECS), None);
        assert_eq!(issued.windows.lock().unwrap().len(), 1);
    }
}
