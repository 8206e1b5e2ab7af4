//! Envoy external authorization: the policy file `AUTH_EXTAUTHZ_POLICY` names, parsed once here (a
//! bad file stops the server with one line naming the setting, the file and the line), and how long
//! `Check` may reuse a session's state read from the database.

use std::path::PathBuf;

use auth_interceptor::Policy;
use clap::Args;

use super::check::{ConfigError, bad, within};

/// Ext_authz flags.
#[derive(Debug, Clone, Args)]
pub struct ExtAuthzArgs {
    /// Serve Envoy's external authorization (`envoy.service.auth.v3.Authorization/Check`) on the
    /// gRPC port, enforcing the rules of this TOML policy file (the format of
    /// `auth_interceptor::Policy::load`; README, "Envoy / Istio external authorization"). Unset: not
    /// served.
    #[arg(long, env = "AUTH_EXTAUTHZ_POLICY")]
    pub extauthz_policy: Option<PathBuf>,

    /// How long `Check` reuses a session's state (revoked, user disabled, tokens-not-before) read
    /// from the database, seconds [0..=10]: a logout, disable or role change reaches `Check` at most
    /// this late. 0 reads the database on every `Check` that carries a token.
    #[arg(long, env = "AUTH_EXTAUTHZ_SESSION_CACHE_TTL", default_value_t = 1)]
    pub extauthz_session_cache_ttl: u64,
}

/// Validated ext_authz settings: present when `AUTH_EXTAUTHZ_POLICY` is set.
#[derive(Debug, Clone)]
pub struct ExtAuthzSettings {
    /// The file the policy came from.
    pub path: PathBuf,
    /// The rules `Check` enforces.
    pub policy: Policy,
    /// Longest reuse of a session's state, seconds (0: none).
    pub session_cache_ttl: u64,
}

impl ExtAuthzArgs {
    /// Reads and checks the policy file, if one is named.
    pub fn validate(self) -> Result<Option<ExtAuthzSettings>, ConfigError> {
        let session_cache_ttl = within(
            "AUTH_EXTAUTHZ_SESSION_CACHE_TTL",
            self.extauthz_session_cache_ttl,
            0,
            10,
            " seconds",
        )?;
        let Some(path) = self.extauthz_policy else {
            return Ok(None);
        };
        // The error already names the file and the line (or why the file cannot be read).
        let policy = Policy::load(&path).map_err(|e| bad("AUTH_EXTAUTHZ_POLICY", e.to_string()))?;
        Ok(Some(ExtAuthzSettings {
            path,
            policy,
            session_cache_ttl,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(path: Option<PathBuf>, ttl: u64) -> ExtAuthzArgs {
        ExtAuthzArgs {
            extauthz_policy: path,
            extauthz_session_cache_ttl: ttl,
        }
    }

    #[test]
    fn a_bad_policy_file_is_one_line_naming_the_setting_the_file_and_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(
            &path,
            "presets = [\"health\"]\n[methods]\n\"a.B/*\" = \"admins\"\n",
        )
        .unwrap();
        let e = args(Some(path.clone()), 1).validate().unwrap_err();
        assert_eq!(e.setting, "AUTH_EXTAUTHZ_POLICY");
        let line = e.to_string();
        assert!(
            line.starts_with(&format!(
                "AUTH_EXTAUTHZ_POLICY: {} line 3: ",
                path.display()
            )),
            "{line}"
        );
        assert!(line.contains("unknown access \"admins\""), "{line}");
        assert!(!line.contains('\n'), "{line}");
        let missing = args(Some(dir.path().join("nope.toml")), 1)
            .validate()
            .unwrap_err();
        assert!(missing.to_string().contains("nope.toml"), "{missing}");
    }

    #[test]
    fn unset_means_not_served_and_the_ttl_is_bounded() {
        assert!(args(None, 1).validate().unwrap().is_none());
        let e = args(None, 11).validate().unwrap_err();
        assert_eq!(e.setting, "AUTH_EXTAUTHZ_SESSION_CACHE_TTL");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, "[methods]\n\"a.B/*\" = \"required\"\n").unwrap();
        let s = args(Some(path), 0).validate().unwrap().unwrap();
        assert_eq!(s.session_cache_ttl, 0);
        assert_eq!(
            s.policy.rule_for("/a.B/C").access,
            auth_interceptor::Access::Required
        );
    }
}
