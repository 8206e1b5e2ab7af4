//! `GET /.well-known/jwks.json`: the published verification keys — the very document `GetJwks`
//! returns ([`KeyManager::jwks_json`]), with a `Cache-Control` shorter than the key reload interval so
//! a cache never holds keys longer than a replica does. `{"keys":[]}` in HS256 mode.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::HeaderValue;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};

use super::SidePort;
use crate::keys::KeyManager;

/// `application/json`, as RFC 7517 allows for a JWK Set (and Envoy and Istio expect).
pub(super) const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// `public, max-age=…` for documents derived from the keys: half the key reload interval (a replica
/// re-reads the keys every interval, so a cache is never further behind than the replica it asked).
pub(super) fn cache_control(reload_interval: Duration) -> HeaderValue {
    let max_age = reload_interval.as_secs() / 2;
    HeaderValue::from_str(&format!("public, max-age={max_age}"))
        .unwrap_or(HeaderValue::from_static("no-cache"))
}

/// The JWKS document, as `GetJwks` serves it.
pub(super) fn document(keys: &KeyManager) -> String {
    keys.jwks_json().as_ref().clone()
}

pub(super) async fn get(State(side): State<Arc<SidePort>>) -> Response {
    (
        [
            (CONTENT_TYPE, JSON),
            (CACHE_CONTROL, side.cache_control.clone()),
        ],
        document(&side.app.keys),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_shorter_than_the_reload_interval() {
        for secs in [1, 2, 30, 3600] {
            let v = cache_control(Duration::from_secs(secs));
            let max_age: u64 = v
                .to_str()
                .unwrap()
                .strip_prefix("public, max-age=")
                .unwrap()
                .parse()
                .unwrap();
            assert!(max_age < secs, "{secs}: {v:?}");
        }
    }
}
