//! A call lives no longer than its token (issue 13): an AdminService call whose request message
//! arrives after the caller's token expired is refused with `UNAUTHENTICATED` and never handled, on
//! the real server's own access layer. The server runs with no leeway, and its clock is moved so the
//! admin's token has one second left when the call opens.

use std::time::{Duration, Instant};

use crate::support::*;
use auth_proto::v1::{CreateUserRequest, CreateUserResponse};
use tonic::{Code, Status};

both_backends!(a_call_opened_before_expiry_and_completed_after_is_refused);

/// Opens CreateUser with `token` and sends its request message only after `hold`.
async fn create_user_held(
    s: &TestServer,
    token: &str,
    username: &str,
    hold: Duration,
) -> Result<CreateUserResponse, Status> {
    let request = CreateUserRequest {
        username: username.into(),
        password: "backdoor-password-1".into(),
        roles: vec!["admin".into()],
    };
    let held = futures_util::stream::once(async move {
        tokio::time::sleep(hold).await;
        request
    });
    let mut req = tonic::Request::new(held);
    req.metadata_mut()
        .insert("authorization", bearer_value(token));
    let mut grpc = tonic::client::Grpc::new(s.channel());
    bounded("ready", grpc.ready()).await.expect("ready");
    bounded(
        "held-open CreateUser",
        grpc.client_streaming(
            req,
            "/auth.v1.AdminService/CreateUser".parse().expect("path"),
            tonic_prost::ProstCodec::<CreateUserRequest, CreateUserResponse>::default(),
        ),
    )
    .await
    .map(tonic::Response::into_inner)
}

async fn a_call_opened_before_expiry_and_completed_after_is_refused(backend: Backend) {
    let s = TestServer::start_with(backend, Options::with_args(&["--leeway", "0"])).await;
    // Control: a call whose message comes late but well within its token's life is served.
    let fresh = s.admin_token().await;
    create_user_held(&s, &fresh, "latecomer", Duration::from_millis(300))
        .await
        .expect("a slow call within the token's life is served");
    // The admin's next token has one second left when the call opens; the message comes after 1.5 s.
    let token = s.admin_token().await;
    s.clock.advance(ACCESS_TTL - 1);
    let users_before = s.db.count("users").await;
    let started = Instant::now();
    let answer = create_user_held(&s, &token, "backdoor", Duration::from_millis(1500)).await;
    let status = answer.expect_err("the call outlived its token and must be refused");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(status.message(), "invalid token");
    // Accepted when it opened, ended when the token expired (~1 s), before the late message.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_millis(1400),
        "refused at expiry: {took:?}"
    );
    // The handler never ran: no backdoor admin.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.db.count("users").await, users_before);
    s.shutdown().await;
}
