//! Which passwords are accepted: length bounds at login, and for a new password also no control
//! characters, not the username, and a minimum zxcvbn strength score (NIST SP 800-63B §3.1.1.2).
//!
//! zxcvbn's dictionaries hold the most common passwords of public breach corpora (30,000 of them),
//! English words, names and surnames, plus the user's own inputs (username, roles), and it prices
//! keyboard walks, sequences, repeats, dates and l33t substitutions: "password", "12345678" or
//! "qwerty123" score 0 and the username itself is refused outright. Its cost grows steeply with
//! length (about 0.5 ms for 32 characters, 4 ms for 64, 10 ms for 100 in a release build), so only
//! the first [`ANALYSED_CHARS`] characters are analysed and the caller runs it on a blocking thread.

use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

pub use zxcvbn::Score;

/// Characters of a new password the strength estimate looks at. A weak start makes the password
/// refused; whatever follows a strong start can only add to it.
pub const ANALYSED_CHARS: usize = 64;

/// Password rules: lengths for every password presented, and a strength floor for new ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Minimum length in characters (after NFC).
    pub min_chars: usize,
    /// Maximum length in bytes (after NFC); longer input is refused before any hashing.
    pub max_bytes: usize,
    /// Minimum zxcvbn score of a new password (0 accepts any; 3 means about 10^10 guesses).
    pub min_score: Score,
}

impl Default for PasswordPolicy {
    /// The documented defaults: 8 characters, 1024 bytes, score 3.
    fn default() -> Self {
        Self {
            min_chars: 8,
            max_bytes: 1024,
            min_score: Score::Three,
        }
    }
}

/// Whose new password it is: the words it must not be made of.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    /// The canonical username (as [`crate::username::parse`] gives it).
    pub username_key: &'a str,
    /// The user's roles (other user-specific words an attacker would try).
    pub roles: &'a [String],
}

/// Why a password was refused. Every message is fixed: none echoes the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRefused {
    /// Nothing given.
    #[error("password must not be empty")]
    Empty,
    /// Over `max_bytes` after NFC.
    #[error("password must be at most {0} bytes")]
    TooLong(usize),
    /// Under `min_chars` after NFC.
    #[error("password must be at least {0} characters")]
    TooShort(usize),
    /// A control character (tab, newline, …).
    #[error("password must not contain control characters")]
    ControlCharacters,
    /// The username itself, in any case.
    #[error("password must not be the username")]
    SameAsUsername,
    /// Scored under the minimum.
    #[error(
        "password is too easy to guess (it is or resembles a common or breached password, a word, a \
         name or a pattern); choose a longer or less common one"
    )]
    TooEasyToGuess,
}

impl PasswordPolicy {
    /// NFC form of a password presented at login (or as the old one): non-empty, at most `max_bytes`.
    pub fn login_input(&self, password: &str) -> Result<Zeroizing<String>, PasswordRefused> {
        if password.is_empty() {
            return Err(PasswordRefused::Empty);
        }
        // Cheap bound before normalising: NFC never shrinks input by more than a small factor.
        if password.len() > self.max_bytes * 4 {
            return Err(PasswordRefused::TooLong(self.max_bytes));
        }
        let nfc = super::normalize(password);
        if nfc.len() > self.max_bytes {
            return Err(PasswordRefused::TooLong(self.max_bytes));
        }
        Ok(nfc)
    }

    /// The cheap rules for a new password (microseconds): the login bounds, `min_chars`, no control
    /// characters, not the username. Returns the NFC form.
    pub fn check_shape(
        &self,
        password: &str,
        owner: Owner<'_>,
    ) -> Result<Zeroizing<String>, PasswordRefused> {
        let nfc = self.login_input(password)?;
        if nfc.chars().count() < self.min_chars {
            return Err(PasswordRefused::TooShort(self.min_chars));
        }
        if nfc.chars().any(char::is_control) {
            return Err(PasswordRefused::ControlCharacters);
        }
        // The username's own canonical form (NFKC, lower case): "Alice" is alice's username too.
        let folded = Zeroizing::new(nfc.nfkc().collect::<String>().to_lowercase());
        if folded.nfkc().eq(owner.username_key.chars()) {
            return Err(PasswordRefused::SameAsUsername);
        }
        Ok(nfc)
    }

    /// The strength floor: zxcvbn over the first [`ANALYSED_CHARS`] characters of `nfc`, with the
    /// owner's words as user inputs. Milliseconds for long input: run it off the async threads.
    pub fn check_strength(&self, nfc: &str, owner: Owner<'_>) -> Result<(), PasswordRefused> {
        if self.min_score == Score::Zero {
            return Ok(());
        }
        let end = nfc
            .char_indices()
            .nth(ANALYSED_CHARS)
            .map_or(nfc.len(), |(i, _)| i);
        let mut inputs: Vec<&str> = vec![owner.username_key];
        inputs.extend(owner.roles.iter().map(String::as_str));
        if zxcvbn::zxcvbn(&nfc[..end], &inputs).score() < self.min_score {
            return Err(PasswordRefused::TooEasyToGuess);
        }
        Ok(())
    }
}

/// Loads zxcvbn's dictionaries (tens of milliseconds, once per process), so the first password set
/// after startup does not pay for it.
pub(super) fn warm_up() {
    let _ = zxcvbn::zxcvbn("warm-up", &[]);
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: Owner<'static> = Owner {
        username_key: "alice.liddell",
        roles: &[],
    };

    fn check(policy: &PasswordPolicy, pw: &str, owner: Owner<'_>) -> Result<(), PasswordRefused> {
        let nfc = policy.check_shape(pw, owner)?;
        policy.check_strength(&nfc, owner)
    }

    #[test]
    fn common_breached_and_patterned_passwords_are_refused() {
        let p = PasswordPolicy::default();
        for pw in [
            "password",
            "12345678",
            "qwerty123",
            "iloveyou",
            "Password1!",
            "P@ssw0rd",
            "aaaaaaaaaaaa",
            "abcdefghijkl",
            "qwertyuiop",
            "letmein2024",
            "1q2w3e4r5t",
            "01/02/1990",
        ] {
            assert_eq!(
                check(&p, pw, ALICE),
                Err(PasswordRefused::TooEasyToGuess),
                "{pw}"
            );
        }
        // Too short is said as such, before any estimate.
        assert_eq!(
            check(&p, "123456", ALICE),
            Err(PasswordRefused::TooShort(8))
        );
    }

    #[test]
    fn the_username_and_variations_of_it_are_refused() {
        let p = PasswordPolicy::default();
        for pw in [
            "alice.liddell",
            "Alice.Liddell",
            "ALICE.LIDDELL",
            "ａｌｉｃｅ.liddell",
        ] {
            assert_eq!(
                check(&p, pw, ALICE),
                Err(PasswordRefused::SameAsUsername),
                "{pw}"
            );
        }
        // Built from the username: the estimate knows it (a user input).
        assert_eq!(
            check(&p, "alice.liddell1", ALICE),
            Err(PasswordRefused::TooEasyToGuess)
        );
        // Also from a role.
        let ops = ["payments-admin".to_owned()];
        let owner = Owner {
            username_key: "zed",
            roles: &ops,
        };
        assert_eq!(
            check(&p, "payments-admin1", owner),
            Err(PasswordRefused::TooEasyToGuess)
        );
        // Even with no strength floor, the username itself is refused.
        let none = PasswordPolicy {
            min_score: Score::Zero,
            ..p
        };
        assert_eq!(
            check(&none, "Alice.Liddell", ALICE),
            Err(PasswordRefused::SameAsUsername)
        );
        assert_eq!(check(&none, "password", ALICE), Ok(()));
    }

    #[test]
    fn strong_passwords_are_accepted() {
        let p = PasswordPolicy::default();
        for pw in [
            "vivid-otter-lantern-42",
            "correct horse battery staple",
            "🔑 パスワード with spaces",
            "ma\u{f1}ana-ma\u{f1}ana",
            &"Zq7!vR2#mK9p".repeat(80),
        ] {
            assert_eq!(check(&p, pw, ALICE), Ok(()), "{pw}");
        }
        // The minimum is a setting: 4 refuses what 3 accepts.
        let strict = PasswordPolicy {
            min_score: Score::Four,
            ..p
        };
        assert_eq!(check(&p, "tina-password-1", ALICE), Ok(()));
        assert_eq!(
            check(&strict, "tina-password-1", ALICE),
            Err(PasswordRefused::TooEasyToGuess)
        );
    }

    #[test]
    fn only_the_first_analysed_characters_are_estimated() {
        let p = PasswordPolicy::default();
        // Weak start, strong end: refused (the end is never looked at).
        let weak_start = format!("{}Zq7!vR2#mK9p", "a".repeat(ANALYSED_CHARS));
        assert_eq!(
            check(&p, &weak_start, ALICE),
            Err(PasswordRefused::TooEasyToGuess)
        );
        // Multi-byte characters are cut on a character boundary.
        let wide = "é".repeat(2 * ANALYSED_CHARS);
        assert_eq!(
            check(&p, &wide, ALICE),
            Err(PasswordRefused::TooEasyToGuess)
        );
    }

    #[test]
    fn length_and_character_rules() {
        let p = PasswordPolicy::default();
        assert_eq!(p.login_input("").unwrap_err(), PasswordRefused::Empty);
        assert!(p.login_input(&"a".repeat(1024)).is_ok());
        assert_eq!(
            p.login_input(&"a".repeat(1025)).unwrap_err(),
            PasswordRefused::TooLong(1024)
        );
        assert_eq!(
            p.login_input(&"a".repeat(1 << 20)).unwrap_err(),
            PasswordRefused::TooLong(1024)
        );
        assert_eq!(check(&p, "short", ALICE), Err(PasswordRefused::TooShort(8)));
        assert_eq!(
            check(&p, "vivid-otter\tlantern-42", ALICE),
            Err(PasswordRefused::ControlCharacters)
        );
    }

    #[test]
    fn messages_never_echo_the_password() {
        let p = PasswordPolicy::default();
        for pw in ["qwerty123", "alice.liddell", "hunter22", "x"] {
            let err = check(&p, pw, ALICE).unwrap_err();
            assert!(!err.to_string().contains(pw), "{err}");
        }
    }

    /// How long the estimate takes at its worst: printed, never asserted (no timing in unit tests).
    #[test]
    fn cost_of_the_longest_password() {
        warm_up();
        let p = PasswordPolicy::default();
        let long = "Zq7!vR2#mK9pXw4$".repeat(64);
        assert_eq!(long.len(), 1024);
        let started = std::time::Instant::now();
        assert_eq!(check(&p, &long, ALICE), Ok(()));
        println!("zxcvbn over a 1024-byte password: {:?}", started.elapsed());
    }
}
