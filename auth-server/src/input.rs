//! Validation and canonicalisation of usernames, roles and other request fields.

use unicode_normalization::UnicodeNormalization;

use crate::error::AuthError;

/// Longest accepted username, in characters.
pub const MAX_USERNAME_CHARS: usize = 128;
/// Longest accepted role name, in bytes.
pub const MAX_ROLE_LEN: usize = 64;
/// Most roles a user may have.
pub const MAX_ROLES: usize = 32;

/// A username in display form (NFC) and canonical form (NFKC, lower-cased) used for uniqueness and
/// lookup, so that `Alice`, `ALICE` and full-width `ａｌｉｃｅ` are one account (RFC 8265 spirit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username {
    /// As the user typed it (NFC).
    pub display: String,
    /// Canonical key.
    pub key: String,
}

/// Validates a username: 1–128 characters, no control characters, no surrounding whitespace.
pub fn username(raw: &str) -> Result<Username, AuthError> {
    if raw.is_empty() {
        return Err(AuthError::invalid("username must not be empty"));
    }
    if raw.len() > MAX_USERNAME_CHARS * 4 || raw.chars().count() > MAX_USERNAME_CHARS {
        return Err(AuthError::invalid(format!(
            "username must be at most {MAX_USERNAME_CHARS} characters"
        )));
    }
    if raw.chars().any(|c| c.is_control() || is_invisible(c)) {
        return Err(AuthError::invalid(
            "username must not contain control characters",
        ));
    }
    let display: String = raw.nfc().collect();
    let folded: String = raw.nfkc().collect::<String>().to_lowercase();
    let key: String = folded.nfkc().collect();
    if raw.trim() != raw || key.trim() != key {
        return Err(AuthError::invalid(
            "username must not start or end with whitespace",
        ));
    }
    Ok(Username { display, key })
}

fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}')
}

/// Validates and de-duplicates roles: ASCII letters, digits and `_ - . :`, 1–64 bytes, at most 32.
pub fn roles(raw: &[String]) -> Result<Vec<String>, AuthError> {
    if raw.len() > MAX_ROLES {
        return Err(AuthError::invalid(format!("at most {MAX_ROLES} roles")));
    }
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for r in raw {
        // One spelling per role: lower case only, so "Admin" and "ADMIN" are refused, not distinct.
        let ok = !r.is_empty()
            && r.len() <= MAX_ROLE_LEN
            && r.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'_' | b'-' | b'.' | b':')
            });
        if !ok {
            return Err(AuthError::invalid(format!(
                "roles must be 1-{MAX_ROLE_LEN} characters of lower-case letters, digits, '_', '-', '.', ':'"
            )));
        }
        if !out.contains(r) {
            out.push(r.clone());
        }
    }
    Ok(out)
}

/// Validates an id field (user or session id): non-empty, bounded, printable ASCII.
pub fn id<'a>(field: &'static str, raw: &'a str) -> Result<&'a str, AuthError> {
    if raw.is_empty() || raw.len() > 64 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AuthError::invalid(format!("{field} must be a valid id")));
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_canonicalise() {
        let a = username("Alice").unwrap();
        assert_eq!(a.display, "Alice");
        assert_eq!(a.key, "alice");
        assert_eq!(username("ＡＬＩＣＥ").unwrap().key, "alice");
        assert_eq!(
            username("ali\u{301}ce").unwrap().key,
            username("al\u{ed}ce").unwrap().key
        );
    }

    #[test]
    fn usernames_rejected() {
        for bad in [
            "",
            " alice",
            "alice ",
            "al\u{0}ice",
            "al\nice",
            "\u{3000}alice",
            "a\u{200B}b",
        ] {
            assert!(username(bad).is_err(), "{bad:?} accepted");
        }
        assert!(username(&"a".repeat(129)).is_err());
        assert!(username(&"a".repeat(128)).is_ok());
    }

    #[test]
    fn roles_validated_and_deduplicated() {
        let r = roles(&["admin".into(), "orders:read".into(), "admin".into()]).unwrap();
        assert_eq!(r, vec!["admin", "orders:read"]);
        assert!(roles(&["".into()]).is_err());
        assert!(roles(&["has space".into()]).is_err());
    }

    #[test]
    fn roles_have_one_spelling() {
        for bad in ["ADMIN", "Admin", "admin ", "ad min", "rôle", ""] {
            assert!(roles(&[bad.to_owned()]).is_err(), "{bad:?}");
        }
        assert_eq!(
            roles(&["admin".into(), "orders:read".into(), "team-a.ops_1".into()]).unwrap(),
            vec!["admin", "orders:read", "team-a.ops_1"]
        );
    }
}
