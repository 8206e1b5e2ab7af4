//! One policy file, two enforcers: the decisions the shipped `deploy/extauthz-policy.toml` must give
//! for a table of (method, caller) cases, checked once through the auth server's Envoy ext_authz
//! `Check` and once through an `auth_interceptor` layer that loaded the same file — so both answer
//! alike — plus the Envoy `CheckRequest` builder and client of the ext_authz scenarios. A second
//! file, [`CLIENTS_POLICY`], and its table [`CLIENT_CASES`] do the same for rules that name the
//! calling service accounts (`clients = [..]`).

use std::net::SocketAddr;

use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse, HttpResponse};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use tonic::Code;
use tonic::transport::Channel;

use super::clients::raw_unary;
use super::greeter::GreeterServer;
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
    /// The service account `payments` (role `refunds`), with a token for the deployment's audience.
    Payments,
    /// The service account `billing` (role `refunds` too), with a token for the same audience.
    Billing,
}

/// The tokens of a [`Caller`]'s calls against one server.
#[derive(Debug, Clone)]
pub struct Callers {
    /// A user without roles.
    pub user: String,
    /// The admin.
    pub admin: String,
    /// A service token of `payments`.
    pub payments: String,
    /// A service token of `billing`.
    pub billing: String,
}

impl Callers {
    /// Logs in the admin and a role-less user `carol` (created here) on `s`, and gets tokens for the
    /// service accounts `payments` and `billing` (created here, role `refunds`, audience
    /// `internal`: the server's default, which the greeter and ext_authz verify).
    pub async fn log_in(s: &TestServer) -> Self {
        let admin = s.admin_token().await;
        s.create_user(&admin, "carol", "carol-password-0123", &[])
            .await;
        let user = s.login("carol", "carol-password-0123").await.access_token;
        let mut service = Vec::new();
        for name in ["payments", "billing"] {
            let (_, secret) = s
                .create_service_account(&admin, name, &["refunds"], &["internal"])
                .await;
            service.push(s.service_token(name, &secret, "internal").await);
        }
        let [payments, billing] = <[String; 2]>::try_from(service).expect("two tokens");
        Self {
            user,
            admin,
            payments,
            billing,
        }
    }

    /// The `authorization` value `caller` sends, if any.
    pub fn authorization(&self, caller: Caller) -> Option<String> {
        match caller {
            Caller::Anonymous => None,
            Caller::Garbage => Some("Bearer not.a.jwt".into()),
            Caller::Basic => Some("Basic Y2Fyb2w6cGFzc3dvcmQ=".into()),
            Caller::User => Some(format!("Bearer {}", self.user)),
            Caller::Admin => Some(format!("Bearer {}", self.admin)),
            Caller::Payments => Some(format!("Bearer {}", self.payments)),
            Caller::Billing => Some(format!("Bearer {}", self.billing)),
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
    // A service token is a valid token too; its roles are checked like a user's.
    ("/demo.v1.GreeterService/WhoAmI", Caller::Payments, Code::Ok),
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
    (
        "/demo.v1.GreeterService/AdminHello",
        Caller::Payments,
        Code::PermissionDenied,
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
    (
        "/demo.v1.OtherService/Call",
        Caller::Payments,
        Code::PermissionDenied,
    ),
];

/// A policy whose rules name the calling service accounts: WhoAmI for `payments` and `billing`,
/// AdminHello for `payments` with the role `refunds`, StreamHello for `payments` with the role
/// `admin` (which it lacks). A user's token never matches a client rule.
pub const CLIENTS_POLICY: &str = r#"presets = ["health"]

[methods]
"demo.v1.GreeterService/SayHello" = "public"
"demo.v1.GreeterService/WhoAmI" = { clients = ["payments", "billing"] }
"demo.v1.GreeterService/AdminHello" = { any_role = ["refunds"], clients = ["payments"] }
"demo.v1.GreeterService/StreamHello" = { all_roles = ["admin"], clients = ["payments"] }
"#;

/// (gRPC path, caller, the code [`CLIENTS_POLICY`] gives).
pub const CLIENT_CASES: &[(&str, Caller, Code)] = &[
    (
        "/demo.v1.GreeterService/SayHello",
        Caller::Billing,
        Code::Ok,
    ),
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
    ("/demo.v1.GreeterService/WhoAmI", Caller::Payments, Code::Ok),
    ("/demo.v1.GreeterService/WhoAmI", Caller::Billing, Code::Ok),
    // Users are not clients, not even the admin.
    (
        "/demo.v1.GreeterService/WhoAmI",
        Caller::User,
        Code::PermissionDenied,
    ),
    (
        "/demo.v1.GreeterService/WhoAmI",
        Caller::Admin,
        Code::PermissionDenied,
    ),
    (
        "/demo.v1.GreeterService/AdminHello",
        Caller::Payments,
        Code::Ok,
    ),
    // The role is there, the client is not.
    (
        "/demo.v1.GreeterService/AdminHello",
        Caller::Billing,
        Code::PermissionDenied,
    ),
    (
        "/demo.v1.GreeterService/AdminHello",
        Caller::Anonymous,
        Code::Unauthenticated,
    ),
    // The client is there, the role is not.
    (
        "/demo.v1.GreeterService/StreamHello",
        Caller::Payments,
        Code::PermissionDenied,
    ),
    (
        "/demo.v1.GreeterService/StreamHello",
        Caller::Admin,
        Code::PermissionDenied,
    ),
    // No rule: denied to every caller.
    (
        "/demo.v1.GreeterService/Nope",
        Caller::Payments,
        Code::PermissionDenied,
    ),
];

/// Asserts that `greeter`'s layer decides every case of `cases` as listed (calls with an empty body;
/// a call the layer lets through is a decision `Ok` whatever the method answers).
pub async fn assert_layer_decides(
    greeter: &GreeterServer,
    callers: &Callers,
    cases: &[(&str, Caller, Code)],
) {
    for (path, caller, expected) in cases {
        let auth = callers.authorization(*caller);
        let result = raw_unary(greeter.channel(), path, Vec::new(), |m| {
            if let Some(a) = &auth {
                m.insert("authorization", a.parse().expect("ascii"));
            }
        })
        .await;
        let code = result.err().map_or(Code::Ok, |status| status.code());
        assert_eq!(
            as_decision(code),
            *expected,
            "{path} as {caller:?}: the layer answered {code:?}"
        );
    }
}

/// Asserts that the ext_authz `Check` of `s` decides every case of `cases` as listed.
pub async fn assert_extauthz_decides(
    s: &TestServer,
    callers: &Callers,
    cases: &[(&str, Caller, Code)],
) {
    let client = extauthz_client(s.addr);
    for (path, caller, expected) in cases {
        let auth = callers.authorization(*caller);
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        let r = check(&client, check_request(path, &headers)).await;
        assert_eq!(check_code(&r), *expected, "{path} as {caller:?}: {r:?}");
    }
}

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
