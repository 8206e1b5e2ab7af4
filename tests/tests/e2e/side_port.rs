//! The HTTP side port on a real socket (issue 9): the JWKS and discovery documents agree with
//! `GetJwks` and the tokens' `iss`, and a token verifies with keys fetched from `jwks_uri` by an
//! independent JOSE implementation (`jsonwebtoken`'s JWK support, not our verifier); HS256 publishes
//! no keys; unknown paths, other methods, request bodies, oversized or slow headers and connections
//! over the cap are refused.

use http::{Method, StatusCode};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::Value;
use tokio::net::TcpStream;

use crate::support::*;

both_backends!(
    jwks_and_discovery_agree_with_the_grpc_api,
    hs256_publishes_no_keys
);

/// The `max-age` of a `Cache-Control: public, max-age=N`.
fn max_age(r: &HttpResponse) -> u64 {
    r.header("cache-control")
        .strip_prefix("public, max-age=")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cache-control {:?}", r.header("cache-control")))
}

/// Fetches `url` (an absolute `http://` URL on the side port) and returns the response.
async fn fetch(url: &str) -> HttpResponse {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (authority, path) = rest.split_at(rest.find('/').expect("a path"));
    http_request(
        authority.parse().expect("host:port"),
        Method::GET,
        path,
        &[],
    )
    .await
}

async fn jwks_and_discovery_agree_with_the_grpc_api(backend: Backend) {
    let s = TestServer::start(backend).await;
    let token = s.admin_token().await;

    let jwks = s.http_get("/.well-known/jwks.json").await;
    assert_eq!(jwks.status, StatusCode::OK);
    assert_eq!(jwks.header("content-type"), "application/json");
    // Shorter than the key reload interval (30 s by default).
    assert!(max_age(&jwks) < 30, "{jwks:?}");
    let grpc = bounded(
        "GetJwks",
        s.auth_client().get_jwks(auth_proto::v1::GetJwksRequest {}),
    )
    .await
    .expect("GetJwks")
    .into_inner()
    .jwks_json;
    assert_eq!(jwks.body, grpc, "the side port serves GetJwks' document");
    assert_public_jwks(&jwks.json(), "EdDSA");

    let discovery = s.http_get("/.well-known/openid-configuration").await;
    assert_eq!(discovery.status, StatusCode::OK);
    assert_eq!(discovery.header("content-type"), "application/json");
    let doc = discovery.json();
    assert_eq!(doc["issuer"], claims_of(&token)["iss"]);
    let jwks_uri = format!("http://{}/.well-known/jwks.json", s.side_port());
    assert_eq!(doc["jwks_uri"], jwks_uri.as_str());
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["EdDSA"])
    );
    assert_eq!(
        doc["subject_types_supported"],
        serde_json::json!(["public"])
    );
    assert!(doc["response_types_supported"].is_array());
    // Not an OAuth authorization server: no endpoints that do not exist.
    assert!(doc.get("token_endpoint").is_none() && doc.get("authorization_endpoint").is_none());

    // A verifier that starts from the discovery document: keys from jwks_uri, checked by jsonwebtoken.
    let fetched = fetch(doc["jwks_uri"].as_str().expect("jwks_uri")).await;
    let set: JwkSet = serde_json::from_str(&fetched.body).expect("a JWK Set");
    let header = jsonwebtoken::decode_header(&token).expect("token header");
    let jwk = set
        .find(header.kid.as_deref().expect("kid"))
        .expect("the token's key is published");
    let key = DecodingKey::from_jwk(jwk).expect("decoding key from the JWK");
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[doc["issuer"].as_str().expect("issuer")]);
    validation.set_audience(&["internal"]);
    let verified = jsonwebtoken::decode::<Value>(&token, &key, &validation)
        .expect("the token verifies with the published key");
    assert_eq!(verified.claims["username"], ADMIN_USER);
    // And a token whose claims were changed under the same signature does not.
    let mut claims = claims_of(&token);
    claims["roles"] = serde_json::json!(["admin", "root"]);
    let forged = resign_keep_signature(&token, &header_of(&token), &claims);
    assert!(jsonwebtoken::decode::<Value>(&forged, &key, &validation).is_err());

    // An explicit public URL is the base of jwks_uri; the path still serves the document.
    let p = TestServer::start_with(
        backend,
        Options::with_args(&["--public-url", "https://auth.example.test/base/"]),
    )
    .await;
    let doc = p.http_get("/.well-known/openid-configuration").await.json();
    assert_eq!(
        doc["jwks_uri"],
        "https://auth.example.test/base/.well-known/jwks.json"
    );
    assert_eq!(doc["issuer"], "auth-server");
    p.shutdown().await;
    s.shutdown().await;
}

async fn hs256_publishes_no_keys(backend: Backend) {
    let s = TestServer::start_with(backend, Options::hs256()).await;
    let jwks = s.http_get("/.well-known/jwks.json").await;
    assert_eq!(jwks.status, StatusCode::OK);
    assert_eq!(jwks.body, r#"{"keys":[]}"#);
    assert_eq!(s.jwks().await, jwks.json());
    let doc = s.http_get("/.well-known/openid-configuration").await.json();
    // Tokens are HS256; verifying them needs the shared secret, which is never published.
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["HS256"])
    );
    let token = s.admin_token().await;
    assert_eq!(doc["issuer"], claims_of(&token)["iss"]);
    s.shutdown().await;
}

/// The status line of a raw response ("" when the server sent nothing).
fn status_line(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    text.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_what_it_does_not_serve_and_bounds_clients() {
    run_bounded(async {
        let s = TestServer::start(Backend::Sqlite).await;
        let addr = s.side_port();
        let live = s.http_get("/healthz/live").await;
        assert_eq!((live.status, live.body.as_str()), (StatusCode::OK, "ok\n"));

        for path in ["/", "/nope", "/.well-known/", "/metrics/", "/healthz"] {
            assert_eq!(s.http_get(path).await.status, StatusCode::NOT_FOUND, "{path}");
        }
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            let r = http_request(addr, method.clone(), "/metrics", &[]).await;
            assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
            assert!(r.header("allow").contains("GET"), "{r:?}");
        }
        // HEAD is GET without the body.
        let head = http_request(addr, Method::HEAD, "/healthz/live", &[]).await;
        assert_eq!((head.status, head.body.as_str()), (StatusCode::OK, ""));

        // No request bodies: declared by length or chunked, refused before anything reads them.
        let raw = raw_exchange(
            addr,
            b"GET /metrics HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
        )
        .await;
        assert!(status_line(&raw).starts_with("HTTP/1.1 413"), "{}", status_line(&raw));
        let raw = raw_exchange(
            addr,
            b"POST /healthz/live HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        )
        .await;
        assert!(status_line(&raw).starts_with("HTTP/1.1 413"), "{}", status_line(&raw));

        // Headers beyond the buffer bound: 431, connection closed.
        let big = format!(
            "GET /healthz/live HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
            "a".repeat(auth_server::http::MAX_HEADER_BYTES + 1024)
        );
        let raw = raw_exchange(addr, big.as_bytes()).await;
        assert!(status_line(&raw).starts_with("HTTP/1.1 431"), "{}", status_line(&raw));
        // Too many header lines: refused too.
        let mut many = String::from("GET /healthz/live HTTP/1.1\r\nhost: x\r\n");
        for i in 0..auth_server::http::MAX_HEADERS + 1 {
            many.push_str(&format!("x-h{i}: v\r\n"));
        }
        many.push_str("\r\n");
        let raw = raw_exchange(addr, many.as_bytes()).await;
        assert!(status_line(&raw).starts_with("HTTP/1.1 431"), "{}", status_line(&raw));

        // A client that never finishes its headers (slowloris) is cut off by the header timeout: the
        // server closes the connection by itself (read_until_closed is bounded by the step timeout).
        let raw = raw_exchange(addr, b"GET /healthz/live HTTP/1.1\r\nhost: x\r\n").await;
        assert!(!String::from_utf8_lossy(&raw).contains("200 OK"), "{raw:?}");

        // The connection cap: with every slot held by an idle connection, the next one is answered
        // 503 and closed without being read.
        let mut held = Vec::new();
        for _ in 0..auth_server::http::MAX_CONNECTIONS {
            held.push(TcpStream::connect(addr).await.expect("connect"));
        }
        let mut extra = TcpStream::connect(addr).await.expect("connect");
        let raw = read_until_closed(&mut extra).await;
        assert!(status_line(&raw).starts_with("HTTP/1.1 503"), "{}", status_line(&raw));
        drop(held);
        // Their slots come back once the server sees them closed.
        poll_until("a slot is free again", STEP_TIMEOUT, || async {
            let raw = raw_exchange(
                addr,
                b"GET /healthz/live HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
            )
            .await;
            status_line(&raw).starts_with("HTTP/1.1 200").then_some(())
        })
        .await;
        s.shutdown().await;
    })
    .await
}
