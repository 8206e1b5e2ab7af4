//! The access policy of the server's own RPCs, enforced by the `auth-interceptor` layer (the same policy
//! engine downstream services use): Login, Refresh, Validate, Logout and GetJwks are public;
//! ChangePassword needs a valid token; WatchRevocations the role `revocations:watch`;
//! `AdminService/*` needs the role `admin`; health, reflection and
//! Envoy's ext_authz `Check` (which judges the token it is asked about itself) are public; anything
//! else is denied.

use std::sync::Arc;

use auth_interceptor::{AuthLayer, Authorizer, JwksSource, Policy, PolicyError, Verifier};

use crate::clock::Clock;
use crate::service::admin::ADMIN_ROLE;

/// The fully-qualified names of the services this server registers.
pub(crate) const REGISTERED_SERVICES: [&str; 6] = [
    "auth.v1.AuthService",
    "auth.v1.AdminService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
    crate::extauthz::SERVICE_NAME,
];

/// The rules of this server's own RPCs: `Login`, `Refresh`, `Validate`, `Logout` and `GetJwks`
/// public; `ChangePassword` requires a token; `WatchRevocations` the role `revocations:watch`;
/// `auth.v1.AdminService/*` requires the role `admin`;
/// health, reflection and ext_authz `Check` public; everything else denied.
fn server_policy() -> Result<Policy, PolicyError> {
    let mut b = Policy::builder().with_health().with_reflection();
    for m in ["Login", "Refresh", "Validate", "Logout", "GetJwks"] {
        b = b.public(&format!("auth.v1.AuthService/{m}"));
    }
    // Envoy calls Check with no token of its own; the token Check is asked about is in the message.
    b = b.public(&format!("{}/Check", crate::extauthz::SERVICE_NAME));
    b.required("auth.v1.AuthService/ChangePassword")
        .any_role(
            "auth.v1.AuthService/WatchRevocations",
            [crate::service::watch::WATCH_ROLE],
        )
        .any_role("auth.v1.AdminService/*", [ADMIN_ROLE])
        .build()
}

/// The layer protecting every service of this server: the server's policy, verifying with the
/// server's own keys (`keys`, fed from the database) on `clock`. `Validate` verifies through the same
/// authorizer, so the two judge a token identically.
pub(crate) fn layer(
    verifier: Verifier,
    keys: JwksSource,
    clock: Arc<dyn Clock>,
) -> Result<AuthLayer, PolicyError> {
    let policy = server_policy()?;
    policy.check_services(&REGISTERED_SERVICES)?;
    Authorizer::new(verifier, keys)
        .with_clock(clock)
        .layer(policy)
}

#[cfg(test)]
mod tests {
    use auth_interceptor::Access;

    use super::*;

    #[test]
    fn server_policy_rules() {
        let p = server_policy().unwrap();
        for m in ["Login", "Refresh", "Validate", "Logout", "GetJwks"] {
            assert_eq!(
                p.rule_for(&format!("/auth.v1.AuthService/{m}")).access,
                Access::Public
            );
        }
        assert_eq!(
            p.rule_for("/auth.v1.AuthService/ChangePassword").access,
            Access::Required
        );
        assert_eq!(
            p.rule_for("/auth.v1.AuthService/WatchRevocations").access,
            Access::AnyRole(vec!["revocations:watch".into()])
        );
        assert_eq!(
            p.rule_for("/auth.v1.AdminService/CreateUser").access,
            Access::AnyRole(vec!["admin".into()])
        );
        assert_eq!(
            p.rule_for("/auth.v1.AuthService/Unknown").access,
            Access::Deny
        );
        assert_eq!(
            p.rule_for("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
                .access,
            Access::Public
        );
        assert_eq!(
            p.rule_for("/envoy.service.auth.v3.Authorization/Check")
                .access,
            Access::Public
        );
        p.check_services(&[
            "auth.v1.AuthService",
            "auth.v1.AdminService",
            crate::extauthz::SERVICE_NAME,
        ])
        .unwrap();
        assert!(p.check_services(&["auth.v1.AuthService"]).is_err());
    }

    #[test]
    fn every_registered_service_has_rules() {
        server_policy()
            .unwrap()
            .check_services(&REGISTERED_SERVICES)
            .unwrap();
    }
}
