//! Per-method access rules, deny by default.
//!
//! Rules are keyed by a full method (`/pkg.Svc/Method` or `pkg.Svc/Method`), a whole service
//! (`pkg.Svc/*`) or a prefix (`pkg.*`, `pkg.Svc/Get*`). The most specific rule wins: exact method, then
//! service, then the longest prefix, then the default (which denies unless changed). What each rule
//! asks of the caller is a [`Rule`] (`crate::rule`).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::revocation::WhenStale;
pub use crate::rule::{Access, Rule};

/// A policy that could not be built or does not fit the server it protects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A pattern is not `pkg.Svc/Method`, `pkg.Svc/*` or `prefix*`.
    #[error("invalid method pattern {0:?}")]
    InvalidPattern(String),
    /// Two rules have the same pattern.
    #[error("duplicate rule for {0:?}")]
    DuplicateRule(String),
    /// A rule names a service that is not registered on the server.
    #[error("rule {0:?} names a service that is not registered")]
    UnknownService(String),
    /// A role rule lists no roles.
    #[error("rule {0:?} lists no roles")]
    NoRoles(String),
    /// A rule limited to clients lists none.
    #[error("rule {0:?} lists no clients")]
    NoClients(String),
    /// A rule names clients but does not require a token (public, optional or deny).
    #[error(
        "rule {0:?} names clients, which needs a rule requiring a token (required or a role rule)"
    )]
    ClientsNeedToken(String),
    /// A rule asks for revalidation, but the authorizer has no revocation checker
    /// ([`Authorizer::with_revocation_check`](crate::Authorizer::with_revocation_check)), or is
    /// turned into an interceptor, which cannot wait for one.
    #[error("rule {0:?} asks for revalidation, which needs a revocation checker and the layer")]
    RevalidateUnsupported(String),
    /// A rule fails closed when the revocation watcher is stale, but the authorizer has no watcher
    /// ([`Authorizer::with_revocation_watcher`](crate::Authorizer::with_revocation_watcher)).
    #[error("rule {0:?} fails closed on a stale revocation watcher, but none is configured")]
    WatcherRequired(String),
}

#[derive(Debug, Clone)]
enum Pattern {
    Exact(String),
    Service(String),
    Prefix(String),
}

fn parse(pattern: &str) -> Result<Pattern, PolicyError> {
    let invalid = || PolicyError::InvalidPattern(pattern.to_owned());
    let p = pattern.strip_prefix('/').unwrap_or(pattern);
    if p.is_empty() || p.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(invalid());
    }
    if let Some(service) = p.strip_suffix("/*") {
        if service.is_empty() || service.contains(['/', '*']) {
            return Err(invalid());
        }
        return Ok(Pattern::Service(service.to_owned()));
    }
    if let Some(prefix) = p.strip_suffix('*') {
        if prefix.contains('*') {
            return Err(invalid());
        }
        return Ok(Pattern::Prefix(prefix.to_owned()));
    }
    match p.split_once('/') {
        Some((svc, method)) if !svc.is_empty() && !method.is_empty() && !p.contains('*') => {
            if method.contains('/') {
                return Err(invalid());
            }
            Ok(Pattern::Exact(p.to_owned()))
        }
        _ => Err(invalid()),
    }
}

#[derive(Debug, Clone)]
struct Entry {
    rule: Rule,
    /// Preset rules (health, reflection, the auth server's public methods) are not checked against
    /// the registered services.
    preset: bool,
}

/// Per-method rules; build with [`Policy::builder`].
///
/// ```
/// use auth_interceptor::{Policy, Rule, Access};
/// let policy = Policy::builder()
///     .with_health()
///     .public("/demo.v1.GreeterService/SayHello")
///     .required("demo.v1.GreeterService/*")
///     .any_role("demo.v1.GreeterService/AdminHello", ["admin"])
///     .clients("demo.v1.GreeterService/StreamHello", ["payments"])
///     .build()
///     .unwrap();
/// assert_eq!(policy.rule_for("/demo.v1.GreeterService/AdminHello").access,
///            Access::AnyRole(vec!["admin".into()]));
/// assert_eq!(policy.rule_for("/demo.v1.GreeterService/WhoAmI").access, Access::Required);
/// assert_eq!(policy.rule_for("/demo.v1.GreeterService/StreamHello").clients,
///            Some(vec!["payments".into()]));
/// assert_eq!(policy.rule_for("/grpc.health.v1.Health/Check").access, Access::Public);
/// assert_eq!(policy.rule_for("/other.Svc/M").access, Access::Deny);
/// policy.check_services(&["demo.v1.GreeterService"]).unwrap();
/// assert!(policy.check_services(&["demo.v1.Other"]).is_err());
/// ```
#[derive(Debug, Clone)]
pub struct Policy {
    exact: HashMap<String, Entry>,
    services: HashMap<String, Entry>,
    /// Longest prefix first.
    prefixes: Vec<(String, Entry)>,
    default: Rule,
}

impl Policy {
    /// An empty builder: every method is denied until a rule says otherwise.
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder::default()
    }

    /// The first rule asking for revalidation, by its pattern (`"default"` for the default rule).
    pub(crate) fn first_revalidating_rule(&self) -> Option<String> {
        self.first_rule_where(|rule| rule.revalidate)
    }

    /// The first rule failing closed on a stale revocation watcher, by its pattern.
    pub(crate) fn first_fail_closed_rule(&self) -> Option<String> {
        self.first_rule_where(|rule| rule.when_stale != WhenStale::Accept)
    }

    fn first_rule_where(&self, pred: impl Fn(&Rule) -> bool) -> Option<String> {
        let named = self
            .exact
            .iter()
            .chain(self.services.iter())
            .map(|(k, e)| (k.as_str(), &e.rule))
            .chain(self.prefixes.iter().map(|(k, e)| (k.as_str(), &e.rule)));
        named
            .chain(std::iter::once(("default", &self.default)))
            .find(|(_, rule)| pred(rule))
            .map(|(name, _)| name.to_owned())
    }

    /// A policy that denies every method.
    pub fn deny_all() -> Policy {
        Policy {
            exact: HashMap::new(),
            services: HashMap::new(),
            prefixes: Vec::new(),
            default: Rule::deny(),
        }
    }

    /// The rule for a gRPC path (`/pkg.Svc/Method`); the most specific rule wins.
    pub fn rule_for(&self, path: &str) -> &Rule {
        let p = path.strip_prefix('/').unwrap_or(path);
        if let Some(e) = self.exact.get(p) {
            return &e.rule;
        }
        if let Some((service, _)) = p.rsplit_once('/')
            && let Some(e) = self.services.get(service)
        {
            return &e.rule;
        }
        self.prefixes
            .iter()
            .find(|(prefix, _)| p.starts_with(prefix.as_str()))
            .map(|(_, e)| &e.rule)
            .unwrap_or(&self.default)
    }

    /// True when some rule asks for a revocation check.
    pub fn uses_revalidation(&self) -> bool {
        self.exact
            .values()
            .chain(self.services.values())
            .chain(self.prefixes.iter().map(|(_, e)| e))
            .any(|e| e.rule.revalidate)
            || self.default.revalidate
    }

    /// Checks that every rule (other than presets) names one of `registered` services, so a typo in a
    /// rule is found at startup instead of silently leaving the method denied. Pass the names of the
    /// services added to the server, e.g. `GreeterServiceServer::<S>::NAME` via
    /// `tonic::server::NamedService`.
    pub fn check_services(&self, registered: &[&str]) -> Result<(), PolicyError> {
        let known: HashSet<&str> = registered.iter().copied().collect();
        for (pattern, e) in &self.exact {
            let service = pattern
                .rsplit_once('/')
                .map_or(pattern.as_str(), |(s, _)| s);
            if !e.preset && !known.contains(service) {
                return Err(PolicyError::UnknownService(pattern.clone()));
            }
        }
        for (service, e) in &self.services {
            if !e.preset && !known.contains(service.as_str()) {
                return Err(PolicyError::UnknownService(format!("{service}/*")));
            }
        }
        for (prefix, e) in &self.prefixes {
            let matches = known.iter().any(|s| {
                s.starts_with(prefix.as_str())
                    || prefix.split_once('/').is_some_and(|(svc, _)| svc == *s)
            });
            if !e.preset && !matches {
                return Err(PolicyError::UnknownService(format!("{prefix}*")));
            }
        }
        Ok(())
    }
}

/// Builds a [`Policy`]; errors in patterns are reported by [`PolicyBuilder::build`].
#[derive(Debug, Clone, Default)]
pub struct PolicyBuilder {
    rules: Vec<(String, Rule, bool)>,
    default: Option<Rule>,
    fail_closed_after: Option<Duration>,
}

impl PolicyBuilder {
    /// Adds `rule` for `pattern`.
    pub fn rule(mut self, pattern: &str, rule: Rule) -> Self {
        self.rules.push((pattern.to_owned(), rule, false));
        self
    }
    /// `pattern` is public.
    pub fn public(self, pattern: &str) -> Self {
        self.rule(pattern, Rule::public())
    }
    /// `pattern` verifies a token if present.
    pub fn optional(self, pattern: &str) -> Self {
        self.rule(pattern, Rule::optional())
    }
    /// `pattern` requires a valid token.
    pub fn required(self, pattern: &str) -> Self {
        self.rule(pattern, Rule::required())
    }
    /// `pattern` requires any of `roles`.
    pub fn any_role<I: IntoIterator<Item = S>, S: Into<String>>(
        self,
        pattern: &str,
        roles: I,
    ) -> Self {
        self.rule(pattern, Rule::any_role(roles))
    }
    /// `pattern` requires all of `roles`.
    pub fn all_roles<I: IntoIterator<Item = S>, S: Into<String>>(
        self,
        pattern: &str,
        roles: I,
    ) -> Self {
        self.rule(pattern, Rule::all_roles(roles))
    }
    /// `pattern` requires a token issued to one of `clients` (see [`Rule::clients`]); combine with
    /// roles through [`PolicyBuilder::rule`] and [`Rule::with_clients`].
    pub fn clients<I: IntoIterator<Item = S>, S: Into<String>>(
        self,
        pattern: &str,
        clients: I,
    ) -> Self {
        self.rule(pattern, Rule::clients(clients))
    }
    /// `pattern` is denied to everyone (useful to carve a hole out of a broader rule).
    pub fn deny(self, pattern: &str) -> Self {
        self.rule(pattern, Rule::deny())
    }
    /// The rule for methods no other rule matches (default: [`Rule::deny`]).
    pub fn default_rule(mut self, rule: Rule) -> Self {
        self.default = Some(rule);
        self
    }
    /// Every rule that admits a verified token (all but public and deny rules, the default included)
    /// fails closed after `bound` ([`Rule::fail_closed_after`]), unless it set its own bound.
    pub fn fail_closed_after(mut self, bound: Duration) -> Self {
        self.fail_closed_after = Some(bound);
        self
    }
    /// Rules added so far, presets included.
    pub(crate) fn rule_count(&self) -> usize {
        self.rules.len()
    }
    fn preset(mut self, pattern: &str, rule: Rule) -> Self {
        self.rules.push((pattern.to_owned(), rule, true));
        self
    }
    /// Preset: `grpc.health.v1.Health/*` is public.
    pub fn with_health(self) -> Self {
        self.preset("grpc.health.v1.Health/*", Rule::public())
    }
    /// Preset: `grpc.reflection.*` (v1 and v1alpha server reflection) is public.
    pub fn with_reflection(self) -> Self {
        self.preset("grpc.reflection.*", Rule::public())
    }
    /// Preset: `auth.v1.AuthService/Login` and `/Refresh` are public (for a gateway that forwards them).
    pub fn with_auth_public(self) -> Self {
        self.preset("auth.v1.AuthService/Login", Rule::public())
            .preset("auth.v1.AuthService/Refresh", Rule::public())
    }

    /// Validates the patterns and builds the policy.
    pub fn build(self) -> Result<Policy, PolicyError> {
        self.build_indexed().map_err(|(_, e)| e)
    }

    /// Like [`PolicyBuilder::build`], also saying which rule (by the order rules were added, presets
    /// included) is wrong; `None` for the default rule.
    pub(crate) fn build_indexed(self) -> Result<Policy, (Option<usize>, PolicyError)> {
        let mut policy = Policy::deny_all();
        let bound = self.fail_closed_after;
        let tune = |mut rule: Rule| {
            if let Some(bound) = bound
                && rule.admits_tokens()
                && rule.when_stale == WhenStale::Accept
            {
                rule.when_stale = WhenStale::RefuseAfter(bound);
            }
            rule
        };
        policy.default = tune(policy.default);
        if let Some(d) = self.default.map(tune) {
            d.check("default").map_err(|e| (None, e))?;
            policy.default = d;
        }
        for (index, (pattern, rule, preset)) in self.rules.into_iter().enumerate() {
            let at = |e| (Some(index), e);
            rule.check(&pattern).map_err(at)?;
            let entry = Entry {
                rule: tune(rule),
                preset,
            };
            let (map_key, clash) = match parse(&pattern).map_err(at)? {
                Pattern::Exact(k) => {
                    let clash = policy.exact.insert(k.clone(), entry).is_some();
                    (k, clash)
                }
                Pattern::Service(k) => {
                    let clash = policy.services.insert(k.clone(), entry).is_some();
                    (k, clash)
                }
                Pattern::Prefix(k) => {
                    let clash = policy.prefixes.iter().any(|(p, _)| *p == k);
                    policy.prefixes.push((k.clone(), entry));
                    (k, clash)
                }
            };
            if clash {
                return Err(at(PolicyError::DuplicateRule(map_key)));
            }
        }
        policy
            .prefixes
            .sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        Ok(policy)
    }
}
