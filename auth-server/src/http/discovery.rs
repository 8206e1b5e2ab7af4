//! `GET /.well-known/openid-configuration`: OpenID Connect Discovery 1.0 / RFC 8414 metadata, so JWT
//! verifiers that start from an issuer (Istio without `jwksUri`, OIDC libraries) find the keys.
//!
//! `issuer` is exactly the `iss` of issued tokens (`AUTH_ISSUER`) and `jwks_uri` is absolute
//! (`AUTH_PUBLIC_URL`, or the side port's own address). There is no `authorization_endpoint` or
//! `token_endpoint`: tokens come from the gRPC calls `AuthService/Login` and `Refresh`, not from OAuth
//! HTTP endpoints. The members the specifications require are present with the values that are
//! true of this server (`response_types_supported: ["token"]`, `subject_types_supported:
//! ["public"]`), and `id_token_signing_alg_values_supported` lists the algorithms of the published
//! keys and of the signing key (HS256 in HS256 mode, whose JWKS is empty: verifying needs the shared
//! secret).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use serde_json::{Value, json};

use super::SidePort;
use super::jwks::JSON;
use crate::keys::KeyManager;

/// Path of the JWKS document on the side port.
pub(crate) const JWKS_PATH: &str = "/.well-known/jwks.json";
/// Path of this document on the side port.
pub(crate) const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// The claims issued access tokens carry.
const CLAIMS: [&str; 11] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "client_id",
    "sid",
    "username",
    "roles",
];

/// The discovery document of `issuer` whose keys are at `jwks_uri`.
pub(crate) fn document(issuer: &str, jwks_uri: &str, keys: &KeyManager) -> Value {
    json!({
        "issuer": issuer,
        "jwks_uri": jwks_uri,
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": signing_algs(keys),
        "claims_supported": CLAIMS,
    })
}

/// The algorithms of the published keys and of the current signing key, sorted.
fn signing_algs(keys: &KeyManager) -> Vec<String> {
    let mut algs = BTreeSet::new();
    algs.insert(auth_interceptor::alg_name(keys.signer().alg).to_owned());
    if let Ok(set) = serde_json::from_str::<Value>(&keys.jwks_json()) {
        let published = set["keys"].as_array().into_iter().flatten();
        algs.extend(published.filter_map(|k| k["alg"].as_str().map(str::to_owned)));
    }
    algs.into_iter().collect()
}

pub(super) async fn get(State(side): State<Arc<SidePort>>) -> Response {
    let doc = document(&side.issuer, &side.jwks_uri, &side.app.keys);
    (
        [
            (CONTENT_TYPE, JSON),
            (CACHE_CONTROL, side.cache_control.clone()),
        ],
        doc.to_string(),
    )
        .into_response()
}
