//! The pure half of `Check`: what was decided about a request → the Envoy `CheckResponse`.
//!
//! Allowed: `OkHttpResponse` setting the caller's identity on the upstream request (`x-auth-*`,
//! overwriting whatever the client sent) and removing every other `x-auth-*` header the client sent.
//! Refused: the gRPC code and `www-authenticate` challenge of `auth_interceptor::AuthError`'s one
//! mapping to a status, as a `DeniedHttpResponse` with the matching HTTP status (401 / 403 / 503),
//! which Envoy turns into grpc-status 16 / 7 / 14 for gRPC callers. Nothing of the token is echoed.

use std::sync::Arc;

use auth_interceptor::{AuthError, Claims};
use envoy_types::ext_authz::v3::pb::{
    CheckResponse, DeniedHttpResponse, HeaderAppendAction, HeaderValue, HeaderValueOption,
    HttpResponse, HttpStatus, HttpStatusCode, OkHttpResponse,
};
use envoy_types::pb::google::rpc;
use tonic::Code;

/// The prefix of every identity header set on allowed requests (and stripped from the client's).
pub(crate) const IDENTITY_PREFIX: &str = "x-auth-";
/// The caller's user id (`sub`).
pub(crate) const SUBJECT: &str = "x-auth-subject";
/// The caller's username.
pub(crate) const USERNAME: &str = "x-auth-username";
/// The caller's roles, comma-separated (absent when the caller has none).
pub(crate) const ROLES: &str = "x-auth-roles";
/// The token's session id.
pub(crate) const SESSION_ID: &str = "x-auth-session-id";
/// The OAuth client the token was issued to.
pub(crate) const CLIENT_ID: &str = "x-auth-client-id";

/// Status message of a request without HTTP attributes (Envoy's network filter).
pub(crate) const NOT_HTTP_MESSAGE: &str = "not an HTTP request";

/// What `Check` decided.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Let the request through, with the caller's verified identity or anonymously (a public
    /// method, or an optional one called without a token).
    Allowed(Option<Arc<Claims>>),
    /// Refuse it, for this reason.
    Refused(AuthError),
    /// The request has no HTTP attributes (Istio's or Envoy's network-level ext_authz): there is no
    /// method to decide on, so it is refused.
    NotHttp,
}

/// The Envoy answer for `outcome`; `client_identity_headers` are the `x-auth-*` header names the
/// request carried (lower case), removed from an allowed request unless set here.
pub(crate) fn response(outcome: &Outcome, client_identity_headers: &[String]) -> CheckResponse {
    match outcome {
        Outcome::Allowed(identity) => allowed(identity.as_deref(), client_identity_headers),
        Outcome::Refused(error) => refused(error),
        Outcome::NotHttp => denied(
            Code::PermissionDenied,
            NOT_HTTP_MESSAGE,
            HttpStatusCode::Forbidden,
            None,
        ),
    }
}

fn allowed(identity: Option<&Claims>, client_identity_headers: &[String]) -> CheckResponse {
    let mut set: Vec<(&str, String)> = Vec::new();
    if let Some(c) = identity {
        // A header with nothing to say is not set but removed: Envoy drops an empty-valued header it
        // is told to set (`keep_empty_value` false), which would leave the client's forged one in
        // place. Service tokens have no username and no session.
        let mut put = |name, value: String| {
            if !value.is_empty() {
                set.push((name, value));
            }
        };
        put(SUBJECT, c.sub.clone());
        put(USERNAME, c.username.clone());
        put(ROLES, c.roles.join(","));
        put(SESSION_ID, c.sid.clone());
        put(CLIENT_ID, c.client_id.clone());
    }
    // Removing a header that is also set is left out, so the outcome does not depend on the order
    // in which Envoy applies the two lists.
    let headers_to_remove = client_identity_headers
        .iter()
        .filter(|h| !set.iter().any(|(name, _)| name == h))
        .cloned()
        .collect();
    let headers = set
        .into_iter()
        .map(|(key, value)| HeaderValueOption {
            header: Some(HeaderValue {
                key: key.to_owned(),
                value,
                raw_value: Vec::new(),
            }),
            append_action: HeaderAppendAction::OverwriteIfExistsOrAdd.into(),
            ..HeaderValueOption::default()
        })
        .collect();
    CheckResponse {
        status: Some(rpc::Status {
            code: Code::Ok.into(),
            ..rpc::Status::default()
        }),
        http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
            headers,
            headers_to_remove,
            ..OkHttpResponse::default()
        })),
        ..CheckResponse::default()
    }
}

fn refused(error: &AuthError) -> CheckResponse {
    // The one mapping of the crate (code, fixed message, RFC 6750 challenge), reused as is.
    let status = error.clone().into_status();
    let challenge = status
        .metadata()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok());
    let http = match status.code() {
        Code::Unauthenticated => HttpStatusCode::Unauthorized,
        Code::PermissionDenied => HttpStatusCode::Forbidden,
        _ => HttpStatusCode::ServiceUnavailable,
    };
    denied(status.code(), status.message(), http, challenge)
}

fn denied(
    code: Code,
    message: &str,
    http: HttpStatusCode,
    challenge: Option<&str>,
) -> CheckResponse {
    let headers = challenge
        .map(|c| HeaderValueOption {
            header: Some(HeaderValue {
                key: "www-authenticate".into(),
                value: c.to_owned(),
                raw_value: Vec::new(),
            }),
            append_action: HeaderAppendAction::OverwriteIfExistsOrAdd.into(),
            ..HeaderValueOption::default()
        })
        .into_iter()
        .collect();
    CheckResponse {
        status: Some(rpc::Status {
            code: code.into(),
            message: message.to_owned(),
            details: Vec::new(),
        }),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus { code: http.into() }),
            headers,
            body: message.to_owned(),
        })),
        ..CheckResponse::default()
    }
}

#[cfg(test)]
mod tests {
    use auth_interceptor::{
        Audience, INSUFFICIENT_SCOPE_CHALLENGE, INVALID_TOKEN_CHALLENGE, MISSING_TOKEN_CHALLENGE,
        VerifyError,
    };

    use super::*;

    fn claims(roles: &[&str]) -> Arc<Claims> {
        Arc::new(Claims {
            iss: "auth-server".into(),
            sub: "user-1".into(),
            aud: Audience::One("internal".into()),
            exp: 2,
            iat: 1,
            nbf: 1,
            jti: "jti-1".into(),
            sid: "session-1".into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            username: "ann".into(),
            client_id: "auth-server".into(),
            kind: auth_interceptor::TokenKind::User,
        })
    }

    fn ok(r: &CheckResponse) -> &OkHttpResponse {
        assert_eq!(r.status.as_ref().unwrap().code, 0);
        match &r.http_response {
            Some(HttpResponse::OkResponse(ok)) => ok,
            other => panic!("not allowed: {other:?}"),
        }
    }

    fn set_headers(ok: &OkHttpResponse) -> Vec<(String, String)> {
        ok.headers
            .iter()
            .map(|h| {
                assert_eq!(
                    h.append_action,
                    i32::from(HeaderAppendAction::OverwriteIfExistsOrAdd)
                );
                let v = h.header.as_ref().unwrap();
                (v.key.clone(), v.value.clone())
            })
            .collect()
    }

    /// (grpc code, http status, www-authenticate, body) of a refusal.
    fn denial(r: &CheckResponse) -> (i32, i32, Option<String>, String) {
        let Some(HttpResponse::DeniedResponse(d)) = &r.http_response else {
            panic!("not denied: {r:?}");
        };
        let challenge = d.headers.iter().find_map(|h| {
            let v = h.header.as_ref().unwrap();
            (v.key == "www-authenticate").then(|| v.value.clone())
        });
        (
            r.status.as_ref().unwrap().code,
            d.status.as_ref().unwrap().code,
            challenge,
            d.body.clone(),
        )
    }

    #[test]
    fn allowed_with_identity_sets_the_headers_and_strips_other_forged_ones() {
        let forged = [
            "x-auth-subject".to_owned(),
            "x-auth-roles".to_owned(),
            "x-auth-admin".to_owned(),
        ];
        let r = response(&Outcome::Allowed(Some(claims(&["admin", "ops"]))), &forged);
        let ok = ok(&r);
        assert_eq!(
            set_headers(ok),
            [
                ("x-auth-subject", "user-1"),
                ("x-auth-username", "ann"),
                ("x-auth-roles", "admin,ops"),
                ("x-auth-session-id", "session-1"),
                ("x-auth-client-id", "auth-server"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        // Set headers overwrite the client's; the rest of the client's are removed.
        assert_eq!(ok.headers_to_remove, ["x-auth-admin"]);
    }

    #[test]
    fn a_service_token_sets_no_empty_headers_and_forged_ones_are_removed() {
        let mut service = Claims::clone(&claims(&["orders:read"]));
        service.sub = "account-1".into();
        service.username = String::new();
        service.sid = String::new();
        service.client_id = "payments".into();
        service.kind = auth_interceptor::TokenKind::Service;
        let forged = [
            USERNAME.to_owned(),
            SESSION_ID.to_owned(),
            SUBJECT.to_owned(),
        ];
        let r = response(&Outcome::Allowed(Some(Arc::new(service))), &forged);
        let ok = ok(&r);
        assert_eq!(
            set_headers(ok),
            [
                ("x-auth-subject", "account-1"),
                ("x-auth-roles", "orders:read"),
                ("x-auth-client-id", "payments"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert_eq!(ok.headers_to_remove, [USERNAME, SESSION_ID]);
    }

    #[test]
    fn no_roles_means_no_roles_header_and_a_forged_one_removed() {
        let r = response(
            &Outcome::Allowed(Some(claims(&[]))),
            &["x-auth-roles".to_owned()],
        );
        let ok = ok(&r);
        assert!(set_headers(ok).iter().all(|(k, _)| k != ROLES));
        assert_eq!(ok.headers_to_remove, [ROLES]);
    }

    #[test]
    fn anonymous_allowed_sets_nothing_and_strips_everything() {
        let forged = ["x-auth-subject".to_owned(), "x-auth-username".to_owned()];
        let r = response(&Outcome::Allowed(None), &forged);
        let ok = ok(&r);
        assert!(ok.headers.is_empty());
        assert_eq!(ok.headers_to_remove, forged);
    }

    #[test]
    fn refusals_carry_the_crates_codes_and_challenges() {
        let cases = [
            (
                AuthError::MissingToken,
                16,
                401,
                Some(MISSING_TOKEN_CHALLENGE),
            ),
            (
                AuthError::BadMetadata("scheme"),
                16,
                401,
                Some(INVALID_TOKEN_CHALLENGE),
            ),
            (
                AuthError::Invalid(VerifyError::Expired),
                16,
                401,
                Some(INVALID_TOKEN_CHALLENGE),
            ),
            (AuthError::Revoked, 16, 401, Some(INVALID_TOKEN_CHALLENGE)),
            (
                AuthError::Forbidden,
                7,
                403,
                Some(INSUFFICIENT_SCOPE_CHALLENGE),
            ),
            (AuthError::Unavailable, 14, 503, None),
        ];
        for (error, code, http, challenge) in cases {
            let r = response(&Outcome::Refused(error.clone()), &["x-auth-subject".into()]);
            let (got_code, got_http, got_challenge, body) = denial(&r);
            assert_eq!(
                (got_code, got_http, got_challenge.as_deref()),
                (code, http, challenge),
                "{error:?}"
            );
            assert_eq!(r.status.as_ref().unwrap().message, body);
            assert!(!body.is_empty());
        }
    }

    #[test]
    fn a_request_without_http_attributes_is_refused() {
        let (code, http, challenge, body) = denial(&response(&Outcome::NotHttp, &[]));
        assert_eq!((code, http, challenge), (7, 403, None));
        assert_eq!(body, NOT_HTTP_MESSAGE);
    }
}
