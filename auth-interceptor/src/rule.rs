//! What one method requires of its caller: an [`Access`] level (public, optional, a token, roles,
//! nobody), optionally the calling service accounts ([`Rule::clients`]), whether to confirm the
//! token with the auth server ([`Rule::revalidate`]), and what to do while the revocation watcher is
//! stale ([`Rule::fail_closed_after`]).
//!
//! A rule that requires a token may also require a caller identity: [`Rule::clients`] (or
//! [`Rule::with_clients`] on a role rule) admits only service tokens (`"token_use": "service"`,
//! from `IssueServiceToken`) whose `client_id` claim — the service account's name — is one of the
//! listed clients; user tokens never match (their `client_id` is the issuer's own). A caller that is
//! authenticated but not listed gets `PERMISSION_DENIED`, as for a missing role.

use std::time::Duration;

use crate::claims::Claims;
use crate::policy::PolicyError;
use crate::revocation::WhenStale;

/// What a method requires of the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Access {
    /// Anyone; the `authorization` metadata is not even read.
    Public,
    /// A token is verified if present (an invalid one is refused); calls without one get through with
    /// no [`AuthContext`](crate::AuthContext).
    Optional,
    /// A valid token.
    Required,
    /// A valid token carrying at least one of these roles.
    AnyRole(Vec<String>),
    /// A valid token carrying all of these roles.
    AllRoles(Vec<String>),
    /// Nobody: callers without a valid token get `UNAUTHENTICATED`, the others `PERMISSION_DENIED`.
    Deny,
}

impl Access {
    /// True when verified `claims` satisfy this requirement (always for public, optional and
    /// required; by role for the role rules; never for deny).
    pub fn permits(&self, claims: &Claims) -> bool {
        match self {
            Access::Public | Access::Optional | Access::Required => true,
            Access::AnyRole(roles) => roles.iter().any(|r| claims.has_role(r)),
            Access::AllRoles(roles) => roles.iter().all(|r| claims.has_role(r)),
            Access::Deny => false,
        }
    }
}

/// An [`Access`] requirement, the callers it is limited to, and whether to confirm the token with the
/// auth server's `Validate` RPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// What the caller needs.
    pub access: Access,
    /// When set, the token must also be a service token whose `client_id` is one of these (see
    /// [`Rule::clients`]); `None` admits any caller that satisfies [`Rule::access`].
    pub clients: Option<Vec<String>>,
    /// Ask the auth server whether the token's session is still active (see
    /// [`Authorizer::with_revocation_check`](crate::Authorizer::with_revocation_check)).
    pub revalidate: bool,
    /// What a verified token gets while the revocation watcher
    /// ([`Authorizer::with_revocation_watcher`](crate::Authorizer::with_revocation_watcher)) is
    /// stale: accepted (the default) or, past a bound, refused with `UNAVAILABLE`.
    pub when_stale: WhenStale,
}

impl Rule {
    /// Anyone may call.
    pub fn public() -> Self {
        Access::Public.into()
    }
    /// A token is verified if present.
    pub fn optional() -> Self {
        Access::Optional.into()
    }
    /// A valid token is required.
    pub fn required() -> Self {
        Access::Required.into()
    }
    /// A valid token with any of `roles`.
    pub fn any_role<I: IntoIterator<Item = S>, S: Into<String>>(roles: I) -> Self {
        Access::AnyRole(roles.into_iter().map(Into::into).collect()).into()
    }
    /// A valid token with all of `roles`.
    pub fn all_roles<I: IntoIterator<Item = S>, S: Into<String>>(roles: I) -> Self {
        Access::AllRoles(roles.into_iter().map(Into::into).collect()).into()
    }
    /// Nobody may call.
    pub fn deny() -> Self {
        Access::Deny.into()
    }
    /// A valid service token issued to one of `clients` (its `client_id` claim: a service account's
    /// name). User tokens never match, whatever their `client_id`.
    ///
    /// ```
    /// use auth_interceptor::Rule;
    /// // Only the service account "payments" may refund, and only with the role "refunds".
    /// let refund = Rule::any_role(["refunds"]).with_clients(["payments"]);
    /// // Any token of "payments" or "billing".
    /// let internal = Rule::clients(["payments", "billing"]);
    /// # let _ = (refund, internal);
    /// ```
    pub fn clients<I: IntoIterator<Item = S>, S: Into<String>>(clients: I) -> Self {
        Rule::required().with_clients(clients)
    }
    /// Also require a service token whose `client_id` is one of `clients` (on a rule requiring a token:
    /// [`Rule::required`] or a role rule; the policy refuses it on others).
    pub fn with_clients<I: IntoIterator<Item = S>, S: Into<String>>(mut self, clients: I) -> Self {
        self.clients = Some(clients.into_iter().map(Into::into).collect());
        self
    }
    /// Also confirm the token with the auth server's `Validate` RPC (revocation check).
    pub fn revalidate(mut self) -> Self {
        self.revalidate = true;
        self
    }
    /// Refuse with `UNAVAILABLE` once the revocation watcher has been stale (disconnected, or not
    /// yet through its first snapshot) for longer than `bound` — fail closed. Without this a rule
    /// accepts verified tokens until they expire whatever the watcher's state.
    pub fn fail_closed_after(mut self, bound: Duration) -> Self {
        self.when_stale = WhenStale::RefuseAfter(bound);
        self
    }
    /// True when the rule lets a verified token through (every access but public and deny).
    pub(crate) fn admits_tokens(&self) -> bool {
        !matches!(self.access, Access::Public | Access::Deny)
    }
    /// True when verified `claims` satisfy this rule: its [`Access`] and, if it names clients, a
    /// service token of one of them.
    pub fn permits(&self, claims: &Claims) -> bool {
        self.access.permits(claims)
            && self
                .clients
                .as_ref()
                .is_none_or(|clients| claims.is_service() && clients.contains(&claims.client_id))
    }

    /// The mistakes a rule can make on its own, whatever its pattern.
    pub(crate) fn check(&self, name: &str) -> Result<(), PolicyError> {
        if matches!(&self.access, Access::AnyRole(r) | Access::AllRoles(r) if r.is_empty()) {
            return Err(PolicyError::NoRoles(name.to_owned()));
        }
        match (&self.clients, &self.access) {
            (None, _) => Ok(()),
            (Some(c), _) if c.is_empty() => Err(PolicyError::NoClients(name.to_owned())),
            (Some(_), Access::Public | Access::Optional | Access::Deny) => {
                Err(PolicyError::ClientsNeedToken(name.to_owned()))
            }
            (Some(_), _) => Ok(()),
        }
    }
}

impl From<Access> for Rule {
    fn from(access: Access) -> Self {
        Rule {
            access,
            clients: None,
            revalidate: false,
            when_stale: WhenStale::Accept,
        }
    }
}
