//! Envoy external authorization (issue 10) on a real socket, through the `envoy-types` client: the
//! shipped policy file's decision table; identity headers set and forged `x-auth-*` removed; missing,
//! invalid, role-less and revoked (logged out, demoted, disabled) tokens refused with the right codes
//! and challenges; requests without HTTP attributes refused; reflection lists the service; a broken
//! policy file stops `serve` with the line named.

use crate::support::*;
use auth_proto::v1::{DisableUserRequest, LogoutRequest, SetUserRolesRequest};
use envoy_types::ext_authz::v3::pb::{CheckRequest, HttpResponse, OkHttpResponse};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use tonic::Code;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

both_backends!(
    the_shipped_policy_decides_the_table,
    allowed_requests_carry_the_identity_and_never_a_forged_one,
    refusals_have_the_right_codes_and_challenges,
    revoked_tokens_are_refused,
);

/// A server serving ext_authz with the shipped policy.
async fn server(backend: Backend) -> TestServer {
    TestServer::start_with(
        backend,
        Options::with_args(&["--extauthz-policy", POLICY_FILE]),
    )
    .await
}

fn ok_response(r: &envoy_types::ext_authz::v3::pb::CheckResponse) -> &OkHttpResponse {
    assert_eq!(check_code(r), Code::Ok, "{r:?}");
    match &r.http_response {
        Some(HttpResponse::OkResponse(ok)) => ok,
        other => panic!("allowed without an OkHttpResponse: {other:?}"),
    }
}

/// The upstream headers an allowed request gets, in order.
fn set_headers(ok: &OkHttpResponse) -> Vec<(String, String)> {
    ok.headers
        .iter()
        .map(|h| {
            // OVERWRITE_IF_EXISTS_OR_ADD: whatever the client sent under that name is replaced.
            assert_eq!(h.append_action, 2, "{h:?}");
            let v = h.header.as_ref().expect("header");
            (v.key.clone(), v.value.clone())
        })
        .collect()
}

async fn the_shipped_policy_decides_the_table(backend: Backend) {
    let s = server(backend).await;
    let callers = Callers::log_in(&s).await;
    let client = extauthz_client(s.addr);
    for (path, caller, expected) in CASES {
        let auth = callers.authorization(*caller);
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        let r = check(&client, check_request(path, &headers)).await;
        assert_eq!(check_code(&r), *expected, "{path} as {caller:?}: {r:?}");
    }
    // Reflection lists the service next to the server's own.
    let MessageResponse::ListServicesResponse(list) =
        reflect(&s, MessageRequest::ListServices(String::new())).await
    else {
        panic!("not a service list");
    };
    let names: Vec<_> = list.service.iter().map(|svc| svc.name.as_str()).collect();
    assert!(
        names.contains(&"envoy.service.auth.v3.Authorization"),
        "{names:?}"
    );
    let MessageResponse::FileDescriptorResponse(files) = reflect(
        &s,
        MessageRequest::FileContainingSymbol("envoy.service.auth.v3.Authorization".into()),
    )
    .await
    else {
        panic!("no descriptor for the service");
    };
    assert!(!files.file_descriptor_proto.is_empty());
    s.shutdown().await;
}

async fn allowed_requests_carry_the_identity_and_never_a_forged_one(backend: Backend) {
    let s = server(backend).await;
    let admin = s.admin_token().await;
    let claims = claims_of(&admin);
    let client = extauthz_client(s.addr);
    let bearer = format!("Bearer {admin}");
    let forged = [
        ("x-auth-subject", "someone-else"),
        ("x-auth-roles", "admin,root"),
        ("x-auth-impersonate", "yes"),
        ("X-Auth-Shouting", "yes"),
    ];
    let mut headers = vec![("authorization", bearer.as_str())];
    headers.extend(forged);
    // The query string does not change the method (nor the rule).
    let r = check(
        &client,
        check_request("/demo.v1.GreeterService/AdminHello?via=envoy", &headers),
    )
    .await;
    let ok = ok_response(&r);
    assert_eq!(
        set_headers(ok),
        [
            ("x-auth-subject", claims["sub"].as_str().expect("sub")),
            ("x-auth-username", ADMIN_USER),
            ("x-auth-roles", "admin"),
            ("x-auth-session-id", claims["sid"].as_str().expect("sid")),
            ("x-auth-client-id", "auth-server"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    // The forged headers it does not overwrite are removed (names lower-cased, as Envoy sends them).
    assert_eq!(
        ok.headers_to_remove,
        ["x-auth-impersonate", "x-auth-shouting"]
    );

    // A public method: no identity, and every forged header removed.
    let r = check(
        &client,
        check_request("/demo.v1.GreeterService/SayHello", &headers),
    )
    .await;
    let ok = ok_response(&r);
    assert!(ok.headers.is_empty(), "{ok:?}");
    assert_eq!(
        ok.headers_to_remove,
        [
            "x-auth-impersonate",
            "x-auth-roles",
            "x-auth-shouting",
            "x-auth-subject"
        ]
    );
    // A role-less user: no x-auth-roles set, and a forged one removed.
    s.create_user(&admin, "dave", "dave-password-0123", &[])
        .await;
    let dave = s.login("dave", "dave-password-0123").await.access_token;
    let dave_bearer = format!("Bearer {dave}");
    let r = check(
        &client,
        check_request(
            "/demo.v1.GreeterService/WhoAmI",
            &[("authorization", &dave_bearer), ("x-auth-roles", "admin")],
        ),
    )
    .await;
    let ok = ok_response(&r);
    assert!(set_headers(ok).iter().all(|(k, _)| k != "x-auth-roles"));
    assert!(set_headers(ok).contains(&("x-auth-username".into(), "dave".into())));
    assert_eq!(ok.headers_to_remove, ["x-auth-roles"]);
    s.shutdown().await;
}

/// Asserts `r` refuses with `code`, HTTP `http` and challenge `challenge`, echoing no token.
fn assert_denied(
    r: &envoy_types::ext_authz::v3::pb::CheckResponse,
    code: Code,
    http: i32,
    challenge: Option<&str>,
    token: &str,
) {
    assert_eq!(check_code(r), code, "{r:?}");
    let (got_http, got_challenge, body) = denial(r);
    assert_eq!(
        (got_http, got_challenge.as_deref()),
        (http, challenge),
        "{r:?}"
    );
    let message = &r.status.as_ref().expect("status").message;
    for text in [&body, message] {
        assert!(!text.is_empty() && !text.contains(token), "{text:?}");
    }
}

async fn refusals_have_the_right_codes_and_challenges(backend: Backend) {
    let s = server(backend).await;
    let callers = Callers::log_in(&s).await;
    let client = extauthz_client(s.addr);
    let who = "/demo.v1.GreeterService/WhoAmI";
    // No token at all: 401 with a bare challenge (RFC 6750 §3.1: no error code).
    let r = check(&client, check_request(who, &[])).await;
    assert_denied(&r, Code::Unauthenticated, 401, Some("Bearer"), "-");
    // Presented but invalid: malformed, signed by someone else, expired.
    let forged = hmac_sign(
        random_secret().as_bytes(),
        jsonwebtoken::Algorithm::HS256,
        &header_of(&callers.user),
        &claims_of(&callers.user),
    );
    let expired = s.clock.now() + ACCESS_TTL + LEEWAY + 1;
    for token in ["not.a.jwt", forged.as_str()] {
        let bearer = format!("Bearer {token}");
        let r = check(&client, check_request(who, &[("authorization", &bearer)])).await;
        assert_denied(
            &r,
            Code::Unauthenticated,
            401,
            Some("Bearer error=\"invalid_token\""),
            token,
        );
    }
    // Two credentials (Envoy joins repeated headers with a comma): refused, not guessed at.
    let two = format!("Bearer {0}, Bearer {0}", callers.user);
    let r = check(&client, check_request(who, &[("authorization", &two)])).await;
    assert_denied(
        &r,
        Code::Unauthenticated,
        401,
        Some("Bearer error=\"invalid_token\""),
        &callers.user,
    );
    // Valid, without the role: 403 insufficient_scope.
    let bearer = format!("Bearer {}", callers.user);
    let r = check(
        &client,
        check_request(
            "/demo.v1.GreeterService/AdminHello",
            &[("authorization", &bearer)],
        ),
    )
    .await;
    assert_denied(
        &r,
        Code::PermissionDenied,
        403,
        Some("Bearer error=\"insufficient_scope\""),
        &callers.user,
    );
    // No HTTP attributes (Istio's network filter), or none at all: refused.
    for request in [
        CheckRequest { attributes: None },
        CheckRequest {
            attributes: Some(AttributeContext::default()),
        },
    ] {
        let r = check(&client, request).await;
        assert_denied(&r, Code::PermissionDenied, 403, None, "-");
    }
    // Expired, once the clock has moved past exp + leeway.
    s.clock.set(expired);
    let r = check(&client, check_request(who, &[("authorization", &bearer)])).await;
    assert_denied(
        &r,
        Code::Unauthenticated,
        401,
        Some("Bearer error=\"invalid_token\""),
        &callers.user,
    );
    s.shutdown().await;
}

async fn revoked_tokens_are_refused(backend: Backend) {
    let s = server(backend).await;
    let root = s.admin_token().await;
    let client = extauthz_client(s.addr);
    let who = "/demo.v1.GreeterService/WhoAmI";
    let allowed = |token: &str| {
        let bearer = format!("Bearer {token}");
        let client = client.clone();
        async move {
            check_code(&check(&client, check_request(who, &[("authorization", &bearer)])).await)
        }
    };

    // Logged out: refused by the very next Check (the revocation view has it before Logout returns).
    let login = s.login(ADMIN_USER, ADMIN_PASSWORD).await;
    assert_eq!(allowed(&login.access_token).await, Code::Ok);
    bounded(
        "logout",
        s.auth_client().logout(LogoutRequest {
            refresh_token: login.refresh_token.clone(),
        }),
    )
    .await
    .expect("logout");
    assert_eq!(allowed(&login.access_token).await, Code::Unauthenticated);
    assert!(!s.validate(&login.access_token).await.valid);

    // Demoted: the older token still says "admin", but its user's tokens_not_before moved.
    let bob = s
        .create_user(&root, "bob", "bob-password-0123", &["admin"])
        .await;
    let bob_token = s.login("bob", "bob-password-0123").await.access_token;
    let admin_hello = |token: &str| {
        let bearer = format!("Bearer {token}");
        let client = client.clone();
        async move {
            check(
                &client,
                check_request(
                    "/demo.v1.GreeterService/AdminHello",
                    &[("authorization", &bearer)],
                ),
            )
            .await
        }
    };
    assert_eq!(check_code(&admin_hello(&bob_token).await), Code::Ok);
    s.clock.advance(1);
    let root = s.admin_token().await;
    bounded(
        "demote",
        s.admin_client_with(&root)
            .set_user_roles(SetUserRolesRequest {
                user_id: bob.id.clone(),
                roles: vec![],
            }),
    )
    .await
    .expect("demoted");
    s.clock.advance(1);
    let r = admin_hello(&bob_token).await;
    assert_denied(
        &r,
        Code::Unauthenticated,
        401,
        Some("Bearer error=\"invalid_token\""),
        &bob_token,
    );

    // Disabled: every token of the user, whatever its session.
    let eve = s.create_user(&root, "eve", "eve-password-0123", &[]).await;
    let eve_token = s.login("eve", "eve-password-0123").await.access_token;
    assert_eq!(allowed(&eve_token).await, Code::Ok);
    s.clock.advance(1);
    bounded(
        "disable",
        s.admin_client_with(&root).disable_user(DisableUserRequest {
            user_id: eve.id.clone(),
        }),
    )
    .await
    .expect("disabled");
    s.clock.advance(1);
    assert_eq!(allowed(&eve_token).await, Code::Unauthenticated);
    s.shutdown().await;
}

/// A broken policy file stops `serve` at configuration time: one line naming the setting, the file
/// and the line.
#[test]
fn a_broken_policy_file_is_refused_naming_the_line() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("policy.toml");
    std::fs::write(
        &path,
        "default = \"deny\"\n[methods]\n\"demo.v1.GreeterService/*\" = \"required\"\n\
         \"demo.v1.GreeterService/AdminHello\" = { any_role = [] }\n",
    )
    .expect("write");
    let path = path.display().to_string();
    let e = try_parse_config(&["--extauthz-policy", &path])
        .expect("flags parse")
        .validate()
        .expect_err("refused");
    assert_eq!(
        e.to_string(),
        format!(
            "AUTH_EXTAUTHZ_POLICY: {path} line 4: rule \"demo.v1.GreeterService/AdminHello\" lists no roles"
        )
    );
    // The shipped example is valid.
    try_parse_config(&["--extauthz-policy", POLICY_FILE])
        .expect("flags parse")
        .validate()
        .expect("the shipped policy is valid");
}
