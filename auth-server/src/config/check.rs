//! The checks every setting goes through: one-line errors naming the `AUTH_*` variable and the flag,
//! and range checks for numbers.

use std::fmt::Display;

/// A configuration error: which setting is wrong and why, on one line
/// (`AUTH_LEEWAY: must be between 0 and 300 seconds (--leeway, got 3600)`).
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {reason}")]
pub struct ConfigError {
    /// The environment variable naming the setting.
    pub setting: &'static str,
    /// Why it is wrong.
    pub reason: String,
}

/// A [`ConfigError`] for `setting`.
pub(crate) fn bad(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        setting,
        reason: reason.into(),
    }
}

/// `AUTH_FOO_BAR` → `--foo-bar`.
fn flag(setting: &str) -> String {
    let name = setting.strip_prefix("AUTH_").unwrap_or(setting);
    format!("--{}", name.to_ascii_lowercase().replace('_', "-"))
}

/// Checks that `value` of `setting` lies in `lo..=hi` (`unit` is appended to the bounds, e.g.
/// `" seconds"`), and returns it.
pub(crate) fn within<T: PartialOrd + Display + Copy>(
    setting: &'static str,
    value: T,
    lo: T,
    hi: T,
    unit: &str,
) -> Result<T, ConfigError> {
    if value < lo || value > hi {
        return Err(bad(
            setting,
            format!(
                "must be between {lo} and {hi}{unit} ({}, got {value})",
                flag(setting)
            ),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_names_variable_flag_and_value_on_one_line() {
        let e = within("AUTH_LEEWAY", 3600_u64, 0, 300, " seconds").unwrap_err();
        assert_eq!(
            e.to_string(),
            "AUTH_LEEWAY: must be between 0 and 300 seconds (--leeway, got 3600)"
        );
        assert_eq!(within("AUTH_HASH_QUEUE", 5_usize, 0, 10, "").unwrap(), 5);
    }
}
