//! Validation of roles and other request fields (usernames have their own module, [`crate::username`]).

use crate::error::AuthError;

/// Longest accepted role name, in bytes.
pub const MAX_ROLE_LEN: usize = 64;
/// Most roles a user may have.
pub const MAX_ROLES: usize = 32;

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
