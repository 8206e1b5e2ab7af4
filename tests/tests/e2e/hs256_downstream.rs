//! A downstream service in front of an auth server in HS256 mode: the server publishes no JWKS, so the
//! service builds its keys from the shared secret (`KeySet::hs256`, the README's recipe). A logged-in
//! user's token passes it; a token signed with any other secret does not.

use crate::support::*;
use auth_interceptor::{KeySet, SharedKeys, hs256_kid};
use jsonwebtoken::Algorithm;
use tonic::Code;

both_backends!(hs256_greeter_accepts_the_servers_tokens_and_only_those);

async fn hs256_greeter_accepts_the_servers_tokens_and_only_those(backend: Backend) {
    let s = TestServer::start_with(backend, Options::hs256()).await;
    let secret = s.hs256_secret.clone().expect("HS256 secret");
    let greeter = GreeterServer::start_with_keys(SharedKeys::new(
        KeySet::hs256(secret.as_bytes()).expect("a valid secret"),
    ))
    .await;

    // A logged-in user's token: signed by the server under the kid the downstream keys derive.
    let admin = s.login(ADMIN_USER, ADMIN_PASSWORD).await.access_token;
    let header = header_of(&admin);
    assert_eq!(header["alg"], "HS256");
    assert_eq!(header["kid"], hs256_kid(secret.as_bytes()).as_str());
    let who = greeter
        .who_am_i(&admin)
        .await
        .expect("the server's token passes");
    assert_eq!(who.username, ADMIN_USER);
    assert_eq!(who.roles, ["admin"]);
    greeter
        .admin_hello(&admin)
        .await
        .expect("roles from the token apply");

    // A user without the role: authenticated, not authorised.
    s.create_user(&s.admin_token().await, "bob", "bob-password-0123", &["ops"])
        .await;
    let bob = s.login("bob", "bob-password-0123").await.access_token;
    assert_eq!(
        greeter.who_am_i(&bob).await.expect("bob passes").username,
        "bob"
    );
    let denied = greeter
        .admin_hello(&bob)
        .await
        .expect_err("bob is no admin");
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");

    // The same claims signed with another secret: under the server's kid, and under the other
    // secret's own kid. Both refused by the service, as by Validate.
    let other = random_secret();
    let claims = claims_of(&admin);
    for (what, header) in [
        ("the server's kid", header.clone()),
        (
            "the other secret's kid",
            jwt_header("HS256", &hs256_kid(other.as_bytes())),
        ),
    ] {
        let forged = hmac_sign(other.as_bytes(), Algorithm::HS256, &header, &claims);
        let status = greeter.who_am_i(&forged).await.expect_err(what);
        assert_status(&status, Code::Unauthenticated, "invalid token", &[&secret]);
        assert!(!s.validate(&forged).await.valid, "{what}: Validate agrees");
    }

    greeter.shutdown().await;
    s.shutdown().await;
}
