//! [`Policy`] from a TOML file: the same rules as [`Policy::builder`], written down once so the
//! in-process layer and the auth server's Envoy `ext_authz` (`AUTH_EXTAUTHZ_POLICY`) enforce the same
//! file. Every mistake — an unknown key, a bad pattern, an unknown access, an empty role list, a rule
//! given twice — is an error naming its line.
//!
//! ```toml
//! default = "deny"                  # optional; any access below; deny when absent
//! presets = ["health", "reflection"] # also "auth_public" (auth.v1 Login and Refresh)
//! fail_closed_after_secs = 30        # optional; see below
//!
//! [methods]
//! "demo.v1.GreeterService/SayHello" = "public"
//! "demo.v1.GreeterService/*" = "required"
//! "demo.v1.GreeterService/AdminHello" = { any_role = ["admin"] }
//! "demo.v1.GreeterService/Audit" = { all_roles = ["admin", "auditor"] }
//! "demo.v1.GreeterService/Refund" = { any_role = ["refunds"], clients = ["payments"] }
//! "demo.v1.GreeterService/Sync" = { clients = ["billing"] }
//! "demo.v1.Internal*" = "deny"
//! ```
//!
//! Keys of `[methods]` are patterns as in [`PolicyBuilder::rule`](crate::PolicyBuilder::rule)
//! (`pkg.Svc/Method`, `pkg.Svc/*`, `prefix*`; a leading `/` is allowed); accesses are `"public"`,
//! `"optional"`, `"required"`, `"deny"`, or a table with at most one of `any_role = [..]` /
//! `all_roles = [..]` and an optional `clients = [..]` (the token's `client_id` must be one of them,
//! see [`Rule::clients`](crate::Rule::clients); `{ clients = [..] }` alone means a valid token of one
//! of those clients).
//!
//! `fail_closed_after_secs` (0 to 86 400) makes every rule that admits tokens refuse with
//! `UNAVAILABLE` once the revocation watcher has been stale that long
//! ([`PolicyBuilder::fail_closed_after`](crate::PolicyBuilder::fail_closed_after)); without it they
//! accept verified tokens until expiry. A layer built from such a file needs a watcher.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::policy::{Policy, PolicyError, Rule};

/// A policy file that could not be read or is not a valid policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyFileError {
    /// The file could not be read.
    #[error("{file}: cannot read: {reason}")]
    Unreadable {
        /// The path as given.
        file: String,
        /// The I/O error.
        reason: String,
    },
    /// The text is not TOML, or has a key or value the format does not know.
    #[error("{}line {line}: {message}", origin(.file))]
    Syntax {
        /// The path, when read from a file.
        file: Option<String>,
        /// 1-based line of the mistake.
        line: usize,
        /// What is wrong (one line).
        message: String,
    },
    /// A rule the policy refuses (bad pattern, empty role list, duplicate).
    #[error("{}line {line}: {error}", origin(.file))]
    Rule {
        /// The path, when read from a file.
        file: Option<String>,
        /// 1-based line of the rule.
        line: usize,
        /// Why the policy refuses it.
        error: PolicyError,
    },
}

fn origin(file: &Option<String>) -> String {
    file.as_ref().map(|f| format!("{f} ")).unwrap_or_default()
}

impl PolicyFileError {
    /// The 1-based line of the mistake (none when the file could not be read).
    pub fn line(&self) -> Option<usize> {
        match self {
            PolicyFileError::Unreadable { .. } => None,
            PolicyFileError::Syntax { line, .. } | PolicyFileError::Rule { line, .. } => {
                Some(*line)
            }
        }
    }

    fn in_file(mut self, path: &Path) -> Self {
        match &mut self {
            PolicyFileError::Syntax { file, .. } | PolicyFileError::Rule { file, .. } => {
                *file = Some(path.display().to_string());
            }
            PolicyFileError::Unreadable { .. } => {}
        }
        self
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    default: Option<Spanned<toml::Value>>,
    #[serde(default)]
    presets: Vec<Spanned<String>>,
    #[serde(default)]
    methods: BTreeMap<Spanned<String>, toml::Value>,
    fail_closed_after_secs: Option<Spanned<i64>>,
}

/// Largest `fail_closed_after_secs` (a day: no token lives longer).
const MAX_FAIL_CLOSED_AFTER_SECS: i64 = 86_400;

/// Byte offsets → 1-based lines.
struct Lines<'a>(&'a str);

impl Lines<'_> {
    fn of(&self, span: &Range<usize>) -> usize {
        let end = span.start.min(self.0.len());
        self.0.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }
}

impl Policy {
    /// Parses a policy file's text (format: see the [module](crate::Policy) docs and README).
    ///
    /// ```
    /// use auth_interceptor::{Access, Policy};
    /// let policy = Policy::from_toml(r#"
    ///     presets = ["health"]
    ///     [methods]
    ///     "demo.v1.GreeterService/SayHello" = "public"
    ///     "demo.v1.GreeterService/*" = "required"
    ///     "demo.v1.GreeterService/AdminHello" = { any_role = ["admin"] }
    /// "#).unwrap();
    /// assert_eq!(policy.rule_for("/demo.v1.GreeterService/SayHello").access, Access::Public);
    /// assert_eq!(policy.rule_for("/demo.v1.GreeterService/WhoAmI").access, Access::Required);
    /// assert_eq!(policy.rule_for("/grpc.health.v1.Health/Check").access, Access::Public);
    /// assert_eq!(policy.rule_for("/other.v1.Svc/M").access, Access::Deny);
    ///
    /// let err = Policy::from_toml("[methods]\n\"a.B/C\" = \"public\"\n\"a.B/C/D\" = \"public\"\n")
    ///     .unwrap_err();
    /// assert_eq!(err.line(), Some(3));
    /// assert_eq!(err.to_string(), "line 3: invalid method pattern \"a.B/C/D\"");
    /// ```
    pub fn from_toml(text: &str) -> Result<Policy, PolicyFileError> {
        let lines = Lines(text);
        let file: FileFormat = toml::from_str(text).map_err(|e| PolicyFileError::Syntax {
            file: None,
            line: e.span().map_or(1, |s| lines.of(&s)),
            message: e.message().trim().replace('\n', " "),
        })?;
        let syntax = |span: &Range<usize>, message: String| PolicyFileError::Syntax {
            file: None,
            line: lines.of(span),
            message,
        };
        let mut builder = Policy::builder();
        let mut rule_lines = Vec::new();
        for preset in &file.presets {
            let before = builder.rule_count();
            builder = match preset.get_ref().as_str() {
                "health" => builder.with_health(),
                "reflection" => builder.with_reflection(),
                "auth_public" => builder.with_auth_public(),
                other => {
                    return Err(syntax(
                        &preset.span(),
                        format!(
                            "unknown preset {other:?} (expected \"health\", \"reflection\" or \
                             \"auth_public\")"
                        ),
                    ));
                }
            };
            let added = builder.rule_count() - before;
            rule_lines.extend(std::iter::repeat_n(lines.of(&preset.span()), added));
        }
        // In the file's order, so a duplicate is reported at its second occurrence.
        let mut methods: Vec<_> = file.methods.iter().collect();
        methods.sort_by_key(|(k, _)| k.span().start);
        for (pattern, value) in methods {
            let (span, pattern) = (pattern.span(), pattern.get_ref());
            let rule = rule_from(value).map_err(|m| syntax(&span, format!("{pattern:?}: {m}")))?;
            builder = builder.rule(pattern, rule);
            rule_lines.push(lines.of(&span));
        }
        if let Some(default) = &file.default {
            let rule = rule_from(default.get_ref())
                .map_err(|m| syntax(&default.span(), format!("default: {m}")))?;
            builder = builder.default_rule(rule);
        }
        if let Some(secs) = &file.fail_closed_after_secs {
            let value = *secs.get_ref();
            if !(0..=MAX_FAIL_CLOSED_AFTER_SECS).contains(&value) {
                return Err(syntax(
                    &secs.span(),
                    format!(
                        "fail_closed_after_secs = {value}: expected 0 to \
                         {MAX_FAIL_CLOSED_AFTER_SECS}"
                    ),
                ));
            }
            builder =
                builder.fail_closed_after(std::time::Duration::from_secs(value.unsigned_abs()));
        }
        builder.build_indexed().map_err(|(index, error)| {
            let line = match index {
                Some(i) => rule_lines.get(i).copied().unwrap_or(1),
                None => file.default.as_ref().map_or(1, |d| lines.of(&d.span())),
            };
            PolicyFileError::Rule {
                file: None,
                line,
                error,
            }
        })
    }

    /// Reads and parses the policy file at `path`; errors name the file and the line.
    pub fn load(path: impl AsRef<Path>) -> Result<Policy, PolicyFileError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| PolicyFileError::Unreadable {
            file: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Policy::from_toml(&text).map_err(|e| e.in_file(path))
    }
}

const ACCESSES: &str = "expected \"public\", \"optional\", \"required\", \"deny\", \
                        { any_role = [...] } or { all_roles = [...] }, each table optionally with \
                        clients = [...], or { clients = [...] }";

/// One access value → a rule.
fn rule_from(value: &toml::Value) -> Result<Rule, String> {
    match value {
        toml::Value::String(s) => match s.as_str() {
            "public" => Ok(Rule::public()),
            "optional" => Ok(Rule::optional()),
            "required" => Ok(Rule::required()),
            "deny" => Ok(Rule::deny()),
            other => Err(format!("unknown access {other:?} ({ACCESSES})")),
        },
        toml::Value::Table(t) => {
            let mut roles: Option<Rule> = None;
            let mut clients: Option<Vec<String>> = None;
            for (key, value) in t {
                let names =
                    || names_from(value).ok_or_else(|| format!("{key} must be a list of names"));
                let role_rule = match key.as_str() {
                    "any_role" => Rule::any_role(names()?),
                    "all_roles" => Rule::all_roles(names()?),
                    "clients" => {
                        clients = Some(names()?);
                        continue;
                    }
                    other => return Err(format!("unknown key {other:?} ({ACCESSES})")),
                };
                if roles.replace(role_rule).is_some() {
                    return Err(format!(
                        "any_role and all_roles exclude each other ({ACCESSES})"
                    ));
                }
            }
            match (roles, clients) {
                (Some(rule), None) => Ok(rule),
                (Some(rule), Some(clients)) => Ok(rule.with_clients(clients)),
                (None, Some(clients)) => Ok(Rule::clients(clients)),
                (None, None) => Err(format!("an empty table is no access ({ACCESSES})")),
            }
        }
        _ => Err(ACCESSES.to_owned()),
    }
}

/// A list of role or client names.
fn names_from(value: &toml::Value) -> Option<Vec<String>> {
    value
        .as_array()?
        .iter()
        .map(|r| r.as_str().map(str::to_owned))
        .collect()
}
