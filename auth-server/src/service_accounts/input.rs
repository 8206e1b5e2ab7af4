//! What an operator may set on a service account, checked before anything is stored: its name (the
//! client id), description, roles and allowed audiences. Messages say what to fix and echo no input.

use crate::error::AuthError;

/// Longest name (client id), in characters.
pub(crate) const MAX_NAME_LEN: usize = 64;
/// Longest description, in characters.
pub(crate) const MAX_DESCRIPTION_LEN: usize = 256;
/// Most allowed audiences per account.
pub(crate) const MAX_AUDIENCES: usize = 32;
/// Longest audience, in characters.
pub(crate) const MAX_AUDIENCE_LEN: usize = 256;

/// Checks a name: 1 to 64 lower-case letters, digits, `-`, `_` and `.`, starting with a letter.
pub(crate) fn name(raw: &str) -> Result<&str, AuthError> {
    let ok = raw.len() <= MAX_NAME_LEN
        && raw.starts_with(|c: char| c.is_ascii_lowercase())
        && raw.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        });
    if raw == crate::token::access::CLIENT_ID {
        // The `client_id` of every user token: an account of that name would blur the two.
        return Err(AuthError::invalid(format!(
            "name {:?} is reserved (the client id of user tokens)",
            crate::token::access::CLIENT_ID
        )));
    }
    if ok {
        Ok(raw)
    } else {
        Err(AuthError::invalid(format!(
            "name must be 1-{MAX_NAME_LEN} characters of lower-case letters, digits, '-', '_' and \
             '.', starting with a letter"
        )))
    }
}

/// Checks a description: at most 256 characters, no control characters.
pub(crate) fn description(raw: &str) -> Result<String, AuthError> {
    if raw.chars().count() > MAX_DESCRIPTION_LEN || raw.chars().any(char::is_control) {
        return Err(AuthError::invalid(format!(
            "description must be at most {MAX_DESCRIPTION_LEN} characters without control characters"
        )));
    }
    Ok(raw.to_owned())
}

/// Checks and de-duplicates allowed audiences: 1 to 32 entries of 1 to 256 printable ASCII
/// characters (no spaces).
pub(crate) fn audiences(raw: &[String]) -> Result<Vec<String>, AuthError> {
    if raw.is_empty() || raw.len() > MAX_AUDIENCES {
        return Err(AuthError::invalid(format!(
            "allowed_audiences must have 1 to {MAX_AUDIENCES} entries"
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for a in raw {
        audience("allowed_audiences entries", a)?;
        if !out.contains(a) {
            out.push(a.clone());
        }
    }
    Ok(out)
}

/// Checks one audience (`field` names it in the message).
pub(crate) fn audience<'a>(field: &str, raw: &'a str) -> Result<&'a str, AuthError> {
    if raw.is_empty() || raw.len() > MAX_AUDIENCE_LEN || !raw.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(AuthError::invalid(format!(
            "{field} must be 1-{MAX_AUDIENCE_LEN} printable ASCII characters without spaces"
        )));
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["payments", "a", "orders-v1.worker_2"] {
            assert!(name(good).is_ok(), "{good}");
        }
        let long = "a".repeat(MAX_NAME_LEN + 1);
        for bad in [
            "",
            "1abc",
            "-abc",
            "Payments",
            "pay ments",
            "pay:ments",
            "päy",
            "auth-server",
            long.as_str(),
        ] {
            assert!(name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn audiences_and_descriptions() {
        let a = audiences(&["orders.v1.OrderService".into(), "b".into(), "b".into()]).unwrap();
        assert_eq!(a, vec!["orders.v1.OrderService", "b"]);
        assert!(audiences(&[]).is_err());
        assert!(audiences(&["has space".into()]).is_err());
        assert!(audiences(&["".into()]).is_err());
        assert!(audiences(&vec!["x".to_owned(); MAX_AUDIENCES + 1]).is_err());
        assert!(description("for the payments team").is_ok());
        assert!(description("line\nbreak").is_err());
        assert!(description(&"é".repeat(MAX_DESCRIPTION_LEN)).is_ok());
        assert!(description(&"é".repeat(MAX_DESCRIPTION_LEN + 1)).is_err());
    }
}
