//! Health, reflection, graceful shutdown, and configuration refused at startup.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::*;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

both_backends!(health_and_reflection, shutdown_reports_not_serving);

async fn health_and_reflection(backend: Backend) {
    let s = TestServer::start(backend).await;
    let mut h = s.health_client();
    for service in ["", "auth.v1.AuthService", "auth.v1.AdminService"] {
        let r = h
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|e| panic!("{service:?}: {e:?}"))
            .into_inner();
        assert_eq!(r.status, ServingStatus::Serving as i32, "{service:?}");
    }
    let st = h
        .check(HealthCheckRequest {
            service: "demo.v1.Greeter".into(),
        })
        .await
        .expect_err("unknown service");
    assert_eq!(st.code(), tonic::Code::NotFound);

    let answer = reflect(&s, MessageRequest::ListServices(String::new())).await;
    let MessageResponse::ListServicesResponse(list) = answer else {
        panic!("unexpected reflection answer {answer:?}");
    };
    let names: BTreeSet<String> = list.service.into_iter().map(|s| s.name).collect();
    let app: BTreeSet<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| !n.starts_with("grpc.reflection."))
        .collect();
    assert_eq!(
        app,
        BTreeSet::from([
            "auth.v1.AdminService",
            "auth.v1.AuthService",
            "grpc.health.v1.Health"
        ]),
        "reflection lists {names:?}"
    );
    s.shutdown().await;
}

async fn shutdown_reports_not_serving(backend: Backend) {
    let mut s = TestServer::start(backend).await;
    // A separate connection for the watch, so the server can close it on shutdown.
    let mut h = tonic_health::pb::health_client::HealthClient::new(s.new_channel().await);
    let mut watch = h
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("watch")
        .into_inner();
    let first = bounded("first status", watch.message())
        .await
        .expect("stream")
        .expect("status");
    assert_eq!(first.status, ServingStatus::Serving as i32);
    s.trigger_shutdown();
    let next = bounded("status after shutdown", watch.message())
        .await
        .expect("stream")
        .expect("status");
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    drop(watch);
    drop(h);
    let result = s.join().await;
    assert!(result.is_ok(), "serve returned {result:?}");
    // The listener is gone: new calls fail.
    let r = tokio::time::timeout(Duration::from_secs(5), s.new_channel_result()).await;
    assert!(!matches!(r, Ok(Ok(_))), "still accepting connections");
    s.shutdown().await;
}

#[test]
fn config_errors_name_the_setting() {
    let key = random_master_key();
    let short_key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 16]);
    let zero_key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [0u8; 32]);
    let pg = "postgres://postgres@127.0.0.1:5432/x";
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--database-url", pg], "AUTH_MASTER_KEY"),
        (
            vec!["--database-url", pg, "--master-key", &short_key],
            "AUTH_MASTER_KEY",
        ),
        (
            vec!["--database-url", pg, "--master-key", &zero_key],
            "AUTH_MASTER_KEY",
        ),
        (
            vec!["--database-url", pg, "--master-key", "not base64!"],
            "AUTH_MASTER_KEY",
        ),
        (vec!["--signing-alg", "HS256"], "AUTH_HS256_SECRET"),
        (
            vec!["--signing-alg", "HS256", "--hs256-secret", "too-short"],
            "AUTH_HS256_SECRET",
        ),
        (
            vec![
                "--signing-alg",
                "HS256",
                "--hs256-secret",
                "abababababababababababababababababababab",
            ],
            "AUTH_HS256_SECRET",
        ),
        (vec!["--access-token-ttl", "5"], "AUTH_ACCESS_TOKEN_TTL"),
        (
            vec!["--access-token-ttl", "100000"],
            "AUTH_ACCESS_TOKEN_TTL",
        ),
        (vec!["--refresh-idle-ttl", "10"], "AUTH_REFRESH_IDLE_TTL"),
        (
            vec![
                "--refresh-idle-ttl",
                "7200",
                "--refresh-absolute-ttl",
                "3600",
            ],
            "AUTH_REFRESH_ABSOLUTE_TTL",
        ),
        (vec!["--leeway", "3600"], "AUTH_LEEWAY"),
        (vec!["--argon2-memory-kib", "64"], "AUTH_ARGON2_MEMORY_KIB"),
        (vec!["--argon2-iterations", "0"], "AUTH_ARGON2_ITERATIONS"),
        (vec!["--argon2-parallelism", "0"], "AUTH_ARGON2_PARALLELISM"),
        (vec!["--password-min-chars", "0"], "AUTH_PASSWORD_MIN_CHARS"),
        (
            vec!["--password-max-bytes", "10"],
            "AUTH_PASSWORD_MAX_BYTES",
        ),
        (vec!["--db-max-connections", "0"], "AUTH_DB_MAX_CONNECTIONS"),
        (
            vec!["--key-reload-interval", "0"],
            "AUTH_KEY_RELOAD_INTERVAL",
        ),
        (vec!["--database-url", "mysql://x"], "AUTH_DATABASE_URL"),
        (vec!["--issuer", " "], "AUTH_ISSUER"),
        (vec!["--audience", ""], "AUTH_AUDIENCE"),
        (
            vec!["--bootstrap-admin-username", "root"],
            "AUTH_BOOTSTRAP_ADMIN_PASSWORD",
        ),
        (
            vec!["--bootstrap-admin-password", "root-password-1"],
            "AUTH_BOOTSTRAP_ADMIN_USERNAME",
        ),
    ];
    for (args, setting) in cases {
        let err = try_parse_config(&args)
            .unwrap_or_else(|e| panic!("{args:?} does not parse: {e}"))
            .validate()
            .expect_err(&format!("{args:?} accepted"));
        assert_eq!(err.setting, setting, "{args:?}");
        let text = err.to_string();
        assert!(text.starts_with(&format!("{setting}: ")), "{text}");
        assert!(!text.contains('\n'), "{text}");
        for secret in [key.as_str(), short_key.as_str(), "too-short"] {
            assert!(!text.contains(secret), "error echoes a secret: {text}");
        }
    }
    // And the good ones.
    for args in [
        vec![],
        vec!["--database-url", pg, "--master-key", &key],
        vec![
            "--signing-alg",
            "HS256",
            "--hs256-secret",
            "q7Vx2LmZ9pTcR4wYb8NkHs3JdF6gAeUo",
        ],
    ] {
        try_parse_config(&args)
            .expect("parses")
            .validate()
            .unwrap_or_else(|e| panic!("{args:?} refused: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_fails_on_an_unreachable_database() {
    // An error, promptly, without the URL's password. (A weak bootstrap admin password stopping
    // startup is `passwords::a_weak_bootstrap_password_stops_startup`.)
    let key = random_master_key();
    let err = startup_error(&[
        "--database-url",
        "postgres://postgres:hunter2-secret@127.0.0.1:1/x",
        "--master-key",
        &key,
    ])
    .await;
    assert!(!err.to_string().contains("hunter2-secret"), "{err}");
}
