//! kubelet's probes on the side port (issue 9): `/healthz/ready` follows the gRPC health status — `503`
//! while the database is lost (a private PostgreSQL cluster, stopped and started again) and from the
//! moment shutdown begins while a call is still draining — and `/healthz/live` stays `200` through
//! both; the side port closes with the server.

use std::time::Duration;

use auth_proto::v1::{CreateUserRequest, CreateUserResponse};
use http::StatusCode;
use tokio::sync::oneshot;

use crate::support::*;

both_backends!(readiness_goes_false_while_draining);

async fn ready(s: &TestServer) -> StatusCode {
    s.http_get("/healthz/ready").await.status
}

async fn ready_becomes(s: &TestServer, want: StatusCode) {
    poll_until("readiness", Duration::from_secs(10), || async {
        (ready(s).await == want).then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_a_lost_database() {
    run_bounded(async {
        let cluster = PgCluster::start();
        let url = cluster.url();
        let s = TestServer::start_with(
            Backend::Postgres,
            Options::with_args(&["--database-url", &url]),
        )
        .await;
        assert_eq!(ready(&s).await, StatusCode::OK);
        assert_eq!(s.scrape().await.get("auth_database_up", &[]), Some(1.0));

        cluster.stop();
        ready_becomes(&s, StatusCode::SERVICE_UNAVAILABLE).await;
        let r = s.http_get("/healthz/ready").await;
        assert_eq!(r.body, "not ready\n");
        assert_eq!(r.header("cache-control"), "no-store");
        assert_eq!(s.http_get("/healthz/live").await.status, StatusCode::OK);
        assert_eq!(s.scrape().await.get("auth_database_up", &[]), Some(0.0));

        cluster.start_again();
        ready_becomes(&s, StatusCode::OK).await;
        assert_eq!(s.scrape().await.get("auth_database_up", &[]), Some(1.0));
        s.shutdown().await;
    })
    .await
}

/// Opens CreateUser with `token`, its request message sent only when `release` fires.
fn held_create_user(
    s: &TestServer,
    token: &str,
    release: oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<Result<CreateUserResponse, tonic::Status>> {
    let request = CreateUserRequest {
        username: "drained".into(),
        password: "drained-password-1".into(),
        roles: vec![],
    };
    let held = futures_util::stream::once(async move {
        let _ = release.await;
        request
    });
    let mut req = tonic::Request::new(held);
    req.metadata_mut()
        .insert("authorization", bearer_value(token));
    let mut grpc = tonic::client::Grpc::new(s.channel());
    tokio::spawn(async move {
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unknown(e.to_string()))?;
        grpc.client_streaming(
            req,
            "/auth.v1.AdminService/CreateUser".parse().expect("path"),
            tonic_prost::ProstCodec::<CreateUserRequest, CreateUserResponse>::default(),
        )
        .await
        .map(tonic::Response::into_inner)
    })
}

async fn readiness_goes_false_while_draining(backend: Backend) {
    // A long grace, so the drain lasts as long as the held call does.
    let mut s =
        TestServer::start_with(backend, Options::with_args(&["--shutdown-grace", "60"])).await;
    let side = s.side_port();
    let token = s.admin_token().await;
    let create_user = [
        ("grpc_service", "auth.v1.AdminService"),
        ("grpc_method", "CreateUser"),
    ];
    let before = s
        .scrape()
        .await
        .sum("grpc_server_started_total", &create_user);
    let (release, held) = oneshot::channel();
    let call = held_create_user(&s, &token, held);
    // The call is open on the server once it is counted as started.
    poll_until("the held call has started", STEP_TIMEOUT, || async {
        let started = s
            .scrape()
            .await
            .sum("grpc_server_started_total", &create_user);
        (started > before).then_some(())
    })
    .await;
    assert_eq!(ready(&s).await, StatusCode::OK);

    s.trigger_shutdown();
    // Draining: not ready (new calls should go elsewhere), but alive, and still scraped.
    ready_becomes(&s, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(s.http_get("/healthz/live").await.status, StatusCode::OK);
    s.scrape().await;
    assert!(!s.is_finished(), "the server waits for the held call");

    let _ = release.send(());
    let created = bounded("the held call", call).await.expect("task");
    assert!(created.is_ok(), "the drained call is served: {created:?}");
    let result = s.join().await;
    assert!(result.is_ok(), "serve returned {result:?}");
    // The side port stopped with the server.
    assert!(tokio::net::TcpStream::connect(side).await.is_err());
    s.shutdown().await;
}
