//! The database goes away (issue 15): with its PostgreSQL stopped, the server reports NOT_SERVING
//! within about a second, answers calls that need the database at once with a retryable
//! `UNAVAILABLE` (and `grpc-retry-pushback-ms`) instead of hanging until the client's deadline, keeps
//! serving what needs no database (`GetJwks`; `Validate` from the revocation view, until it is
//! older than `AUTH_REVOCATION_MAX_STALENESS`, then `UNAVAILABLE`), counts no password failure for a login it could not
//! check, and recovers by itself within about a second of the database's return. The test runs its
//! own PostgreSQL cluster, which it stops and starts.

use std::time::{Duration, Instant};

use crate::support::*;
use auth_proto::v1::{GetJwksRequest, ValidateRequest};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_fails_fast_and_recovers() {
    run_bounded(scenario()).await
}

async fn status(s: &TestServer) -> Option<i32> {
    let mut health = s.health_client();
    let check = health.check(HealthCheckRequest {
        service: String::new(),
    });
    match tokio::time::timeout(Duration::from_secs(1), check).await {
        Ok(Ok(r)) => Some(r.into_inner().status),
        _ => None,
    }
}

/// How long until health reports `want` (polled every 50 ms, at most `limit`).
async fn time_until(s: &TestServer, want: ServingStatus, limit: Duration) -> Duration {
    let started = Instant::now();
    while status(s).await != Some(want as i32) {
        assert!(started.elapsed() < limit, "health never became {want:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

async fn scenario() {
    let cluster = PgCluster::start();
    let url = cluster.url();
    let s = TestServer::start_with(
        Backend::Postgres,
        Options::with_args(&["--database-url", &url]),
    )
    .await;
    let token = s.admin_token().await;

    cluster.stop();
    let noticed = time_until(&s, ServingStatus::NotServing, Duration::from_secs(5)).await;
    assert!(
        noticed < Duration::from_millis(1500),
        "NOT_SERVING after {noticed:?}"
    );

    // Calls that need the database fail fast and retryably.
    for _ in 0..3 {
        let started = Instant::now();
        let refused = s
            .try_login(ADMIN_USER, "a-wrong-password")
            .await
            .expect_err("refused");
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
        assert!(refused.metadata().get("grpc-retry-pushback-ms").is_some());
        // Validate answers from the revocation view, without the database.
        let started = Instant::now();
        let v = s.validate(&token).await;
        assert!(v.valid, "{v:?}");
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
    }
    // ... until the view is older than AUTH_REVOCATION_MAX_STALENESS (60 s): then UNAVAILABLE,
    // retryable, rather than a stale answer.
    s.clock.advance(61);
    let stale = poll_until("a stale view refused", Duration::from_secs(5), || async {
        let answer = s
            .auth_client()
            .validate(ValidateRequest {
                access_token: token.clone(),
                ..Default::default()
            })
            .await;
        answer.err()
    })
    .await;
    assert_eq!(stale.code(), Code::Unavailable, "{stale:?}");
    assert!(stale.metadata().get("grpc-retry-pushback-ms").is_some());
    assert_no_leak(&stale, &[&token]);
    // What needs no database still works.
    s.auth_client()
        .get_jwks(GetJwksRequest {})
        .await
        .expect("GetJwks is served from memory");

    cluster.start_again();
    let recovered = time_until(&s, ServingStatus::Serving, Duration::from_secs(10)).await;
    assert!(
        recovered < Duration::from_millis(1500),
        "SERVING after {recovered:?}"
    );
    s.login(ADMIN_USER, ADMIN_PASSWORD).await;
    // The view is read again: Validate trusts it again.
    poll_until("a fresh view", Duration::from_secs(5), || async {
        s.validate(&token).await.valid.then_some(())
    })
    .await;
    // The logins refused while the database was away were not counted as password failures: after
    // the successful login, nothing is counted for the admin or its address.
    let db = sqlx::PgPool::connect(&url).await.expect("cluster");
    let failures: i64 =
        sqlx::query_scalar("SELECT CAST(COALESCE(SUM(failures), 0) AS BIGINT) FROM login_throttle")
            .fetch_one(&db)
            .await
            .expect("count");
    assert_eq!(failures, 0);
    db.close().await;
    s.shutdown().await;
}
