//! One policy file, two enforcers: the decisions the shipped `deploy/extauthz-policy.toml` must give
//! for a table of (method, caller) cases, checked once through the auth server's Envoy ext_authz
//! `Check` and once through an `auth_interceptor` layer that loaded the same file — so both answer
//! alike — plus the Envoy `CheckRequest` builder and client of the ext_authz scenarios.

use std::net::SocketAddr;

use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse, HttpResponse};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use tonic::Code;
use tonic::transport::Channel;

use super::harness::{TestServer, bounded};

/// The example policy shipped for the demo greeter.
pub const POLICY_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/extauthz-policy.toml"
);

/// Who makes a call of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// No `authorization` header.
    Anonymous,
    /// `authorization: Bearer not.a.jwt`.
    Garbage,
    /// `authorization: Basic …`: not a bearer credential.
    Basic,
    /// A logged-in user without roles.
    User,
    /// The bootstrap admin (role `admin`).
    Admin,
}

/// The tokens of a [`Caller`]'s calls against one server.
#[derive(Debug, Clone)]
pub struct Callers {
    /// A user without roles.
    pub user: String,
    /// The admin.
    pub admin: String,
}

impl Callers {
    /// Logs in the admin and a role-less user `carol` (created here) on `s`.
    pub async fn log_in(s: &TestServer) -> Self {
        let admin = s.admin_token().await;
        s.create_user(&admin, "carol", "carol-password-0123", &[])
            .await;
        let user = s.login("carol", "carol-password-0123").await.access_token;
        Self { user, admin }
    }

    /// The `authorization` value `caller` sends, if any.
    pub fn authorization(&self, caller: Caller) -> Option<String> {
        match caller {
            Caller::Anonymous => None,
            Caller::Garbage => Some("Bearer not.a.jwt".into()),
            Caller::Basic => Some("Basic Y2Fyb2w6cGFzc3dvcmQ=".into()),
            Caller::User => Some(format!("Bearer {}", self.user)),
            Caller::Admin => Some(format!("Bearer {}", self.admin)),
        }
    }
}

/// (gRPC path, caller, the code the policy gives: `Ok` = let through).
pub const CASES: &[(&str, Caller, Code)] = &[
    (
        "/demo.v1.GreeterService/SayHello",
        Caller::Anonymous,
        Code::Ok,
    ),
    // Public: the header is not even read.
    (
        "/demo.v1.GreeterService/SayHello",
        Caller::Garbage,
        Code::Ok,
    ),
    ("/demo.v1.GreeterService/SayHello", Caller::User, Code::Ok),
    (
        "/demo.v1.GreeterService/WhoAmI",
        Caller::Anonymous,
        Code::Unauthenticated,
    ),
    (
        "/demo.v1.GreeterService/WhoAmI",
        Caller::Garbage,
        Code::Unauthenticated,
    ),
    (
        "/demo.v1.GreeterService/WhoAmI",
        Caller::Basic,
        Code::Unauthenticated,
    ),
    ("/demo.v1.GreeterService/WhoAmI", Caller::User, Code::Ok),
    ("/demo.v1.GreeterService/WhoAmI", Caller::Admin, Code::Ok),
    (
        "/demo.v1.GreeterService/AdminHello",
        Caller::Anonymous,
        Code::Unauthenticated,
    ),
    (
        "/demo.v1.GreeterService/AdminHello",
        Caller::Garbage,
        Code::Unauthenticated,
    ),
    (
        "/demo.v1.GreeterService/AdminHello",
        Caller::User,
        Code::PermissionDenied,
    ),
    (
        "/demo.v1.GreeterService/AdminHello",
        Caller::Admin,
        Code::Ok,
    ),
    // A method the greeter does not have: still the service rule.
    (
        "/demo.v1.GreeterService/Nope",
        Caller::Anonymous,
        Code::Unauthenticated,
    ),
    ("/demo.v1.GreeterService/Nope", Caller::User, Code::Ok),
    ("/grpc.health.v1.Health/Check", Caller::Anonymous, Code::Ok),
    ("/grpc.health.v1.Health/Check", Caller::Garbage, Code::Ok),
    // No rule: denied by default, to everyone.
    (
        "/demo.v1.OtherService/Call",
        Caller::Anonymous,
        Code::Unauthenticated,
    ),
    (
        "/demo.v1.OtherService/Call",
        Caller::Garbage,
        Code::Unauthenticated,
    ),
    (
        "/demo.v1.OtherService/Call",
        Caller::User,
        Code::PermissionDenied,
    ),
    (
        "/demo.v1.OtherService/Call",
        Caller::Admin,
        Code::PermissionDenied,
    ),
];

/// The code a layer-protected call ended with, as a policy decision: the refusals the layer makes
/// (16, 7, 14) as they are; anything else means the call got past the layer.
pub fn as_decision(code: Code) -> Code {
    match code {
        Code::Unauthenticated | Code::PermissionDenied | Code::Unavailable => code,
        _ => Code::Ok,
    }
}

/// An Envoy `CheckRequest` for an HTTP request to `path` with `headers` (lower-case names).
pub fn check_request(path: &str, headers: &[(&str, &str)]) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: "POST".into(),
                    path: path.to_owned(),
                    host: "greeter.demo.svc.cluster.local".into(),
                    protocol: "HTTP/2".into(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .chain([
                            ("content-type".to_owned(), "application/grpc".to_owned()),
                            (":path".to_owned(), path.to_owned()),
                        ])
                        .collect(),
                    ..HttpRequest::default()
                }),
                ..Request::default()
            }),
            ..AttributeContext::default()
        }),
    }
}

/// The ext_authz client of `addr` (the auth server's gRPC port).
pub fn extauthz_client(addr: SocketAddr) -> AuthorizationClient<Channel> {
    AuthorizationClient::new(super::harness::endpoint(addr).connect_lazy())
}

/// `Check(request)`; panics on an RPC error (a refusal is an answer, not an error).
pub async fn check(client: &AuthorizationClient<Channel>, request: CheckRequest) -> CheckResponse {
    bounded("Check", client.clone().check(request))
        .await
        .expect("Check answers")
        .into_inner()
}

/// The gRPC code of a `CheckResponse`.
pub fn check_code(r: &CheckResponse) -> Code {
    Code::from(r.status.as_ref().expect("a status").code)
}

/// (HTTP status, `www-authenticate`, body) of a refusal.
pub fn denial(r: &CheckResponse) -> (i32, Option<String>, String) {
    let Some(HttpResponse::DeniedResponse(d)) = &r.http_response else {
        panic!("not a denial: {r:?}");
    };
    let challenge = d
        .headers
        .iter()
        .filter_map(|h| h.header.as_ref())
        .find(|h| h.key == "www-authenticate")
        .map(|h| h.value.clone());
    (
        d.status.as_ref().expect("an HTTP status").code,
        challenge,
        d.body.clone(),
    )
}
