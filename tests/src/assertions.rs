//! What a refused call must look like, asserted the same way everywhere: the exact status and fixed
//! message with no secret or internal detail leaked, a `Validate` answer that is "not valid" for the
//! right reason, a JWKS with public members only, and a server that still serves afterwards. (That
//! nothing was written is checked by comparing [`Db::fingerprint`](super::Db::fingerprint) before and after.)

use auth_proto::v1::ValidateResponse;
use serde_json::Value;
use tonic::{Code, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

use super::harness::{TestServer, bounded};

/// Asserts `status` has `code` and exactly `message`, and leaks none of `secrets` nor SQL.
#[track_caller]
pub fn assert_status(status: &Status, code: Code, message: &str, secrets: &[&str]) {
    assert_eq!(
        (status.code(), status.message()),
        (code, message),
        "unexpected status {status:?}"
    );
    assert_no_leak(status, secrets);
}

/// Asserts a status message contains none of `secrets`, no SQL and no crate error text.
#[track_caller]
pub fn assert_no_leak(status: &Status, secrets: &[&str]) {
    let msg = status.message();
    for s in secrets {
        if s.len() >= 4 {
            assert!(!msg.contains(s), "status message leaks a secret: {msg:?}");
        }
    }
    let lower = msg.to_ascii_lowercase();
    for bad in [
        "select", "insert", "update ", "sqlx", "postgres", "sqlite", "panicked",
    ] {
        assert!(
            !lower.contains(bad),
            "status message leaks internals: {msg:?}"
        );
    }
}

/// Asserts a Validate answer is "not valid" with `reason` (or any reason when `None`) and no claims.
#[track_caller]
pub fn assert_invalid(
    resp: &ValidateResponse,
    reason: Option<auth_proto::v1::InvalidReason>,
    what: &str,
) {
    assert!(!resp.valid, "{what}: accepted: {resp:?}");
    assert!(resp.claims.is_none(), "{what}: claims returned: {resp:?}");
    assert_ne!(
        resp.reason,
        auth_proto::v1::InvalidReason::Unspecified as i32,
        "{what}: no reason"
    );
    if let Some(r) = reason {
        assert_eq!(resp.reason(), r, "{what}: wrong reason");
    }
}

/// Asserts a published JWKS (catalogue K04) has at least one key and holds public members only, each
/// key a signing key (`use: sig`) of algorithm `alg` with its key type and a non-empty kid.
#[track_caller]
pub fn assert_public_jwks(jwks: &Value, alg: &str) {
    let kty = match alg {
        "EdDSA" => "OKP",
        "ES256" => "EC",
        "RS256" => "RSA",
        other => panic!("no published key type for {other}"),
    };
    let keys = jwks["keys"].as_array().expect("keys");
    assert!(!keys.is_empty(), "no key published: {jwks}");
    for k in keys {
        let members = k.as_object().expect("jwk");
        for private in ["d", "k", "p", "q", "dp", "dq", "qi", "oth"] {
            assert!(!members.contains_key(private), "JWKS leaks {private}: {k}");
        }
        assert_eq!(k["use"], "sig", "{k}");
        assert_eq!(k["alg"], alg, "{k}");
        assert_eq!(k["kty"], kty, "{k}");
        assert!(k["kid"].as_str().is_some_and(|s| !s.is_empty()), "{k}");
    }
}

impl TestServer {
    /// The server still serves: health SERVING, and `good_token` still validates.
    pub async fn assert_healthy(&self, good_token: &str) {
        let h = bounded(
            "health",
            self.health_client().check(HealthCheckRequest {
                service: String::new(),
            }),
        )
        .await
        .expect("health")
        .into_inner();
        assert_eq!(h.status, ServingStatus::Serving as i32, "health");
        assert!(
            self.validate(good_token).await.valid,
            "a known-good token still validates"
        );
    }
}
