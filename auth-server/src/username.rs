//! Usernames: RFC 8265's UsernameCaseMapped profile (PRECIS IdentifierClass, RFC 8264), full Unicode
//! case folding for the account key, and the UTS #39 skeleton that keeps look-alike accounts apart.
//!
//! A username is one or more *userparts* separated by single spaces (U+0020; RFC 8265 §3.1). Each
//! userpart is enforced by the profile: full-width and half-width forms are mapped to their ordinary
//! form, upper case to lower case, the result NFC-normalized and held to the bidi rule (RFC 5893).
//! The IdentifierClass allows letters and digits of every script plus printable ASCII, and refuses
//! everything else — controls, spaces other than the separator, Default_Ignorable and format
//! characters (soft hyphen, combining grapheme joiner, variation selectors, tags, Hangul fillers, bidi
//! controls and isolates), non-ASCII symbols and punctuation, compatibility forms (ligatures,
//! circled letters, …), old Hangul jamo and code points unassigned in its tables (Unicode 6.3). The
//! key is then full-case-folded (so `ΟΔΟΣ`, `οδοσ` and `οδος` are one account, as are `STRASSE` and
//! `straße`). The skeleton of the key (UTS #39, `i`/`j` with a redundant combining dot above read as
//! the plain letter) is unique among accounts, so `аdmin` with a Cyrillic `а`, or `admın` with a
//! dotless `ı`, cannot be created beside `admin`.

use precis_core::profile::Profile;
use precis_core::{DerivedPropertyValue, Error as PrecisError};
use precis_profiles::{UsernameCaseMapped, UsernameCasePreserved};
use unicode_normalization::UnicodeNormalization;

use crate::error::AuthError;

/// Longest accepted username, in characters.
pub const MAX_USERNAME_CHARS: usize = 128;

/// A username in its three forms. Only `key` identifies an account; `skeleton` keeps look-alikes out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username {
    /// As shown: the UsernameCasePreserved form (width-mapped, NFC, case kept).
    pub display: String,
    /// The account key: the UsernameCaseMapped form, full-case-folded and NFC. Unique.
    pub key: String,
    /// The UTS #39 skeleton of `key`: two usernames with one skeleton look alike. Unique.
    pub skeleton: String,
}

/// Enforces the username profile on `raw`; a refusal says what is wrong without echoing the input.
pub fn parse(raw: &str) -> Result<Username, AuthError> {
    if raw.is_empty() {
        return Err(AuthError::invalid("username must not be empty"));
    }
    if raw.len() > MAX_USERNAME_CHARS * 4 || raw.chars().count() > MAX_USERNAME_CHARS {
        return Err(AuthError::invalid(format!(
            "username must be at most {MAX_USERNAME_CHARS} characters"
        )));
    }
    let mut display = String::with_capacity(raw.len());
    let mut mapped = String::with_capacity(raw.len());
    for (i, part) in raw.split(' ').enumerate() {
        if part.is_empty() {
            return Err(AuthError::invalid(
                "username must not start or end with a space, nor hold two spaces in a row",
            ));
        }
        if i > 0 {
            display.push(' ');
            mapped.push(' ');
        }
        display.push_str(
            &UsernameCasePreserved::new()
                .enforce(part)
                .map_err(refusal)?,
        );
        mapped.push_str(&UsernameCaseMapped::new().enforce(part).map_err(refusal)?);
    }
    let key: String = caseless::default_case_fold_str(&mapped).nfc().collect();
    let skeleton = skeleton(&key);
    Ok(Username {
        display,
        key,
        skeleton,
    })
}

/// The UTS #39 skeleton of a canonical key, with one addition: a combining dot above (U+0307) right
/// after `i` or `j` is dropped, since those letters already carry a dot (the Turkish `İ` folds to
/// `i` + U+0307, which renders as a plain `i`).
pub fn skeleton(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for c in unicode_security::skeleton(key) {
        if c == '\u{307}' && out.ends_with(['i', 'j']) {
            continue;
        }
        out.push(c);
    }
    out
}

/// What the profile refused, in words that never quote the input.
fn refusal(e: PrecisError) -> AuthError {
    let msg = match e {
        PrecisError::BadCodepoint(info) => match info.property {
            DerivedPropertyValue::Disallowed => {
                "username must not contain control, invisible, formatting or bidirectional-control \
                 characters (e.g. soft hyphens, joiners, emoji variation marks, tags, fillers)"
            }
            DerivedPropertyValue::Unassigned => "username must not contain unassigned code points",
            DerivedPropertyValue::ContextJ | DerivedPropertyValue::ContextO => {
                "username holds a joiner or context-dependent character where it is not allowed"
            }
            _ => {
                "username may hold only letters, digits, printable ASCII and single spaces between \
                 parts (no other spaces, symbols, punctuation or compatibility characters)"
            }
        },
        PrecisError::Invalid => {
            "username breaks the bidi rule (right-to-left text mixed with left-to-right text)"
        }
        PrecisError::Unexpected(_) => {
            "username holds a joiner or context-dependent character where it is not allowed"
        }
    };
    AuthError::invalid(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(raw: &str) -> String {
        parse(raw).unwrap().key
    }

    #[test]
    fn forms_of_one_name_are_one_account() {
        let a = parse("Alice").unwrap();
        assert_eq!((a.display.as_str(), a.key.as_str()), ("Alice", "alice"));
        let wide = parse("ＡＬＩＣＥ").unwrap();
        assert_eq!(
            (wide.display.as_str(), wide.key.as_str()),
            ("ALICE", "alice")
        );
        assert_eq!(key("ali\u{301}ce"), key("al\u{ed}ce"));
        // Full case folding: the final sigma and ß.
        assert_eq!(key("ΟΔΟΣ"), "οδοσ");
        assert_eq!(key("οδος"), "οδοσ");
        assert_eq!(key("straße"), key("STRASSE"));
        assert_eq!(parse("ΟΔΟΣ").unwrap().display, "ΟΔΟΣ");
        // Userparts.
        assert_eq!(key("Ada Lovelace"), "ada lovelace");
        assert_eq!(key("o'brien-2"), "o'brien-2");
        assert_eq!(key("עברית"), "עברית");
    }

    #[test]
    fn look_alikes_are_refused() {
        for bad in [
            "adm\u{AD}in",
            "a\u{34F}dmin",
            "admin\u{FE0F}",
            "admin\u{E0041}",
            "\u{3164}admin",
            "admin\u{2066}",
            "admin\u{202E}",
            "a\u{200B}b",
            "a\u{200D}b",
            "al\u{0}ice",
            "al\nice",
            "\u{3000}alice",
            "a\u{A0}b",
            "ﬁle",
            "Ⓐdmin",
            "admin™",
            "abcעברית",
        ] {
            let err = parse(bad).expect_err(bad);
            let AuthError::InvalidArgument(msg) = err else {
                panic!("{bad:?}: {err:?}")
            };
            assert!(!msg.contains(bad), "{msg:?} echoes the input");
        }
    }

    #[test]
    fn spaces_length_and_emptiness() {
        for bad in ["", " alice", "alice ", "ad  min", " "] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse(&"a".repeat(129)).is_err());
        assert!(parse(&"a".repeat(128)).is_ok());
        assert!(parse(&"é".repeat(129)).is_err());
    }

    #[test]
    fn skeletons_catch_confusables() {
        let admin = parse("admin").unwrap().skeleton;
        for alike in [
            "\u{430}dmin",
            "adm\u{131}n",
            "adm\u{130}n",
            "ADM\u{130}N",
            "adrnin",
        ] {
            assert_eq!(parse(alike).unwrap().skeleton, admin, "{alike:?}");
            assert_ne!(parse(alike).unwrap().key, "admin", "{alike:?}");
        }
        assert_eq!(skeleton("user1"), skeleton("userl"));
        assert_ne!(skeleton("alice"), skeleton("alicia"));
    }
}
