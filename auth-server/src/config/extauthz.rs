//! Envoy external authorization: the policy file `AUTH_EXTAUTHZ_POLICY` names, parsed once here (a
//! bad file stops the server with one line naming the setting, the file and the line).

use std::path::PathBuf;

use auth_interceptor::Policy;
use clap::Args;

use super::check::{ConfigError, bad};

/// Ext_authz flags.
#[derive(Debug, Clone, Args)]
pub struct ExtAuthzArgs {
    /// Serve Envoy's external authorization (`envoy.service.auth.v3.Authorization/Check`) on the
    /// gRPC port, enforcing the rules of this TOML policy file (the format of
    /// `auth_interceptor::Policy::load`; README, "Envoy / Istio external authorization"). Unset: not
    /// served.
    #[arg(long, env = "AUTH_EXTAUTHZ_POLICY")]
    pub extauthz_policy: Option<PathBuf>,
}

/// Validated ext_authz settings: present when `AUTH_EXTAUTHZ_POLICY` is set.
#[derive(Debug, Clone)]
pub struct ExtAuthzSettings {
    /// The file the policy came from.
    pub path: PathBuf,
    /// The rules `Check` enforces.
    pub policy: Policy,
}

impl ExtAuthzArgs {
    /// Reads and checks the policy file, if one is named.
    pub fn validate(self) -> Result<Option<ExtAuthzSettings>, ConfigError> {
        let Some(path) = self.extauthz_policy else {
            return Ok(None);
        };
        // The error already names the file and the line (or why the file cannot be read).
        let policy = Policy::load(&path).map_err(|e| bad("AUTH_EXTAUTHZ_POLICY", e.to_string()))?;
        Ok(Some(ExtAuthzSettings { path, policy }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(path: Option<PathBuf>) -> ExtAuthzArgs {
        ExtAuthzArgs {
            extauthz_policy: path,
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
        let e = args(Some(path.clone())).validate().unwrap_err();
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
        let missing = args(Some(dir.path().join("nope.toml")))
            .validate()
            .unwrap_err();
        assert!(missing.to_string().contains("nope.toml"), "{missing}");
    }

    #[test]
    fn unset_means_not_served() {
        assert!(args(None).validate().unwrap().is_none());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, "[methods]\n\"a.B/*\" = \"required\"\n").unwrap();
        let s = args(Some(path)).validate().unwrap().unwrap();
        assert_eq!(
            s.policy.rule_for("/a.B/C").access,
            auth_interceptor::Access::Required
        );
    }
}
