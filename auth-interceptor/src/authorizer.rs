//! The request-path core shared by [`AuthLayer`](crate::AuthLayer) and
//! [`AuthInterceptor`](crate::AuthInterceptor): policy lookup, token extraction, verification through
//! the cache and the key source, role checks and the optional revocation check.

use std::sync::Arc;
use std::time::Duration;

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};

use crate::cache::TokenCache;
use crate::claims::Claims;
use crate::clock::Clock;
use crate::context::AuthContext;
use crate::error::AuthError;
use crate::extract::bearer_token_in;
use crate::policy::{Access, Policy, PolicyError, Rule};
use crate::revocation::RevocationWatcher;
use crate::revoke::RevocationChecker;
use crate::source::{KeySource, KidRefresh};
use crate::verify::{AudienceCheck, Verifier, VerifyError};

/// Decides whether a request may proceed, and with which identity.
///
/// Build one from a verifier and a key source, tune it (cache, clock, revocation check), then turn it
/// into an [`AuthLayer`](crate::AuthLayer) enforcing a [`Policy`] with [`Authorizer::layer`], or an
/// [`AuthInterceptor`](crate::AuthInterceptor) enforcing one [`Rule`] with
/// [`Authorizer::interceptor`]. Both refuse, when built, a rule they could only fail at request time.
pub struct Authorizer {
    verifier: Verifier,
    keys: Box<dyn KeySource>,
    policy: Policy,
    cache: TokenCache,
    revocation: Option<RevocationChecker>,
    watcher: Option<RevocationWatcher>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer")
            .field("verifier", &self.verifier)
            .field("policy", &self.policy)
            .field("revocation", &self.revocation.is_some())
            .field("watcher", &self.watcher.is_some())
            .finish_non_exhaustive()
    }
}

/// What a successful verification left unknown.
enum Outcome {
    Verified(Arc<Claims>),
    UnknownKid(String),
}

impl Authorizer {
    /// An authorizer verifying with `verifier` against `keys`, with the default verified-token cache
    /// and the system clock.
    pub fn new(verifier: Verifier, keys: impl KeySource) -> Self {
        Self {
            verifier,
            keys: Box::new(keys),
            policy: Policy::deny_all(),
            cache: TokenCache::default(),
            revocation: None,
            watcher: None,
            clock: crate::clock::system(),
        }
    }

    /// Reads time from `clock` instead of the system clock (token lifetimes, cache ages, and the
    /// deadline that ends a call when its token expires).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The clock in use.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Replaces the verified-token cache (`capacity` 0 disables it).
    pub fn with_cache(mut self, capacity: usize, max_age: Duration) -> Self {
        self.cache = TokenCache::new(capacity, max_age);
        self
    }

    /// Enables the `Validate` revocation check for rules marked [`Rule::revalidate`] (without it, a
    /// layer with such rules is refused when built).
    pub fn with_revocation_check(mut self, checker: RevocationChecker) -> Self {
        self.revocation = Some(checker);
        self
    }

    /// Refuses, after verification, tokens that `watcher`'s denylist revokes (`UNAUTHENTICATED`, like
    /// an invalid token), and applies each rule's [`Rule::when_stale`] while the watcher is stale.
    /// Without it, a layer with a rule that fails closed is refused when built.
    pub fn with_revocation_watcher(mut self, watcher: RevocationWatcher) -> Self {
        self.watcher = Some(watcher);
        self
    }

    /// The revocation watcher consulted, if any.
    pub fn revocation_watcher(&self) -> Option<&RevocationWatcher> {
        self.watcher.as_ref()
    }

    /// The policy enforced.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The verifier used.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// The verified-token cache.
    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }

    /// A tower layer enforcing `policy` on every method. Refused when a rule asks for revalidation
    /// and no revocation checker is configured, or fails closed on a stale revocation watcher and no
    /// watcher is configured.
    pub fn layer(mut self, policy: Policy) -> Result<crate::AuthLayer, PolicyError> {
        if self.revocation.is_none()
            && let Some(rule) = policy.first_revalidating_rule()
        {
            return Err(PolicyError::RevalidateUnsupported(rule));
        }
        if self.watcher.is_none()
            && let Some(rule) = policy.first_fail_closed_rule()
        {
            return Err(PolicyError::WatcherRequired(rule));
        }
        self.policy = policy;
        Ok(crate::AuthLayer::new(self))
    }

    /// A tonic interceptor applying `rule` to every call of the service it wraps. Refused when the
    /// rule asks for revalidation (an interceptor cannot wait for the auth server).
    pub fn interceptor(self, rule: impl Into<Rule>) -> Result<crate::AuthInterceptor, PolicyError> {
        let rule = rule.into();
        if rule.revalidate {
            return Err(PolicyError::RevalidateUnsupported(
                "interceptor rule".into(),
            ));
        }
        if self.watcher.is_none() && rule.when_stale != crate::WhenStale::Accept {
            return Err(PolicyError::WatcherRequired("interceptor rule".into()));
        }
        Ok(crate::AuthInterceptor::new(self, rule))
    }

    /// The audience to ask `Validate` about for verified `claims`: the first of the verifier's
    /// audiences the token names (verification guarantees one).
    fn audience_of(&self, claims: &Claims) -> &str {
        let audiences = &self.verifier.config().audiences;
        audiences
            .iter()
            .find(|a| claims.aud.contains(a))
            .or(audiences.first())
            .map_or("", String::as_str)
    }

    /// Verifies through the cache; reports an unknown `kid` instead of failing on it. The cache is
    /// shared by every audience rule, so a cached token's audience is checked again on every hit.
    fn verify_cached(
        &self,
        token: &str,
        audience: AudienceCheck<'_>,
    ) -> Result<Outcome, AuthError> {
        let keys = self.keys.current().map_err(|_| AuthError::Unavailable)?;
        let now = self.clock.unix_now();
        if let Some(claims) = self.cache.get(token, &keys, now) {
            if !audience.accepts(self.verifier.config(), &claims.aud) {
                return Err(AuthError::Invalid(VerifyError::WrongAudience));
            }
            return Ok(Outcome::Verified(claims));
        }
        match self
            .verifier
            .verify_with_kid_for(&keys, token, now, audience)
        {
            Ok(verified) => {
                let claims = Arc::new(verified.claims);
                self.cache
                    .insert(token, &keys, &verified.kid, claims.clone(), now);
                Ok(Outcome::Verified(claims))
            }
            Err(VerifyError::UnknownKey) => {
                let kid = self.verifier.token_kid(token)?;
                Ok(Outcome::UnknownKid(kid))
            }
            Err(e) => Err(AuthError::Invalid(e)),
        }
    }

    async fn verify(&self, token: &str) -> Result<Arc<Claims>, AuthError> {
        self.verify_for(token, AudienceCheck::Configured).await
    }

    async fn verify_for(
        &self,
        token: &str,
        audience: AudienceCheck<'_>,
    ) -> Result<Arc<Claims>, AuthError> {
        match self.verify_cached(token, audience)? {
            Outcome::Verified(c) => Ok(c),
            Outcome::UnknownKid(kid) => match self.keys.refresh_for_kid(&kid).await {
                KidRefresh::Found => match self.verify_cached(token, audience)? {
                    Outcome::Verified(c) => Ok(c),
                    Outcome::UnknownKid(_) => Err(AuthError::Invalid(VerifyError::UnknownKey)),
                },
                KidRefresh::Absent => Err(AuthError::Invalid(VerifyError::UnknownKey)),
                KidRefresh::Unavailable => Err(AuthError::Unavailable),
            },
        }
    }

    fn verify_now(&self, token: &str) -> Result<Arc<Claims>, AuthError> {
        match self.verify_cached(token, AudienceCheck::Configured)? {
            Outcome::Verified(c) => Ok(c),
            Outcome::UnknownKid(kid) => match self.keys.hint_unknown_kid(&kid) {
                KidRefresh::Unavailable => Err(AuthError::Unavailable),
                KidRefresh::Found | KidRefresh::Absent => {
                    Err(AuthError::Invalid(VerifyError::UnknownKey))
                }
            },
        }
    }

    /// Verifies `token` as the layer does — through the verified-token cache and the key source,
    /// refetching (single-flight, rate-limited) for an unknown `kid` — without any policy. The auth
    /// server's `Validate` uses it, so both judge a token the same way.
    pub async fn verify_token(&self, token: &str) -> Result<Arc<Claims>, AuthError> {
        self.verify(token).await
    }

    /// [`Authorizer::verify_token`] with the audience rule given by the caller (the auth server's
    /// `Validate` when the calling service names its own audience). One signature verification per
    /// token: the cache is shared with the configured rule.
    pub async fn verify_token_for(
        &self,
        token: &str,
        audience: AudienceCheck<'_>,
    ) -> Result<Arc<Claims>, AuthError> {
        self.verify_for(token, audience).await
    }

    /// Decides a call to `path` (`/pkg.Svc/Method`) carrying `headers`: `Ok(Some(_))` with the
    /// caller's identity, `Ok(None)` for an anonymous call that is allowed, or the reason to refuse.
    pub async fn authorize(
        &self,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<Option<AuthContext>, AuthError> {
        let rule = self.policy.rule_for(path);
        let Some(token) = self.token_for(rule, headers)? else {
            return Ok(None);
        };
        let claims = self.verify(token).await?;
        if rule.revalidate {
            // `layer` refuses revalidating rules without a checker; fail closed all the same.
            let checker = self.revocation.as_ref().ok_or(AuthError::Unavailable)?;
            checker.check(token, self.audience_of(&claims)).await?;
        }
        self.check_watched(rule, token, &claims)?;
        check_access(rule, &claims)?;
        Ok(Some(AuthContext::new(claims)))
    }

    /// The first half of [`Authorizer::authorize`] for `rule`, for a caller that adds checks of its
    /// own before the rule's roles (the auth server's Envoy `Check` confirms the session first): reads
    /// the bearer token from `authorization`, the raw values of the request's `authorization` headers,
    /// as the layer does ([`bearer_token_in`](crate::bearer_token_in); none for a public rule, none
    /// for an optional rule's call without one) and verifies it through the cache and the key source.
    /// The roles and clients are not checked: [`Rule::permits`] does that.
    pub async fn authenticate<'a>(
        &self,
        rule: &Rule,
        authorization: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Option<Arc<Claims>>, AuthError> {
        let Some(token) = self.token_in(rule, authorization)? else {
            return Ok(None);
        };
        let claims = self.verify(token).await?;
        self.check_watched(rule, token, &claims)?;
        Ok(Some(claims))
    }

    /// Like [`Authorizer::authorize`] with `rule`, without waiting: an unknown `kid` only schedules a
    /// background refetch, and revalidation is refused (`UNAVAILABLE`), since it needs I/O.
    pub fn authorize_sync(
        &self,
        rule: &Rule,
        headers: &HeaderMap,
    ) -> Result<Option<AuthContext>, AuthError> {
        let Some(token) = self.token_for(rule, headers)? else {
            return Ok(None);
        };
        let claims = self.verify_now(token)?;
        if rule.revalidate {
            return Err(AuthError::Unavailable);
        }
        self.check_watched(rule, token, &claims)?;
        check_access(rule, &claims)?;
        Ok(Some(AuthContext::new(claims)))
    }

    /// The revocation watcher's verdict on verified `claims` under `rule` (nothing to say without a
    /// watcher: building refuses fail-closed rules then). The token's `kid` is read only when some
    /// key is revoked.
    fn check_watched(&self, rule: &Rule, token: &str, claims: &Claims) -> Result<(), AuthError> {
        match &self.watcher {
            Some(watcher) => watcher.check(rule.when_stale, claims, || {
                self.verifier.token_kid(token).ok()
            }),
            None => Ok(()),
        }
    }

    fn token_for<'h>(
        &self,
        rule: &Rule,
        headers: &'h HeaderMap,
    ) -> Result<Option<&'h str>, AuthError> {
        self.token_in(
            rule,
            headers
                .get_all(AUTHORIZATION)
                .iter()
                .map(HeaderValue::as_bytes),
        )
    }

    fn token_in<'a>(
        &self,
        rule: &Rule,
        authorization: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Option<&'a str>, AuthError> {
        if rule.access == Access::Public {
            return Ok(None);
        }
        match bearer_token_in(authorization, self.verifier.config().max_token_len) {
            Ok(t) => Ok(Some(t)),
            Err(AuthError::MissingToken) if rule.access == Access::Optional => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn check_access(rule: &Rule, claims: &Claims) -> Result<(), AuthError> {
    if rule.permits(claims) {
        Ok(())
    } else {
        Err(AuthError::Forbidden)
    }
}
