//! `/metrics` after traffic (issue 9), parsed strictly in both text formats: the gRPC server metrics
//! and the auth metrics moved by exactly the calls made — logins by result, tokens by kind and
//! grant, validations by result and reason, refresh reuse, revoked sessions, hash durations —
//! `started == handled` per method with the right `grpc_code`, a cancelled health `Watch` counted as
//! a server stream, unknown paths folded into one `unknown` series, and no username, token or address
//! anywhere in the exposition.

use auth_proto::v1::{LogoutRequest, RefreshRequest, ValidateRequest};
use http::Method;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::support::*;

both_backends!(counters_move_by_exactly_the_calls_made);

/// Logins that succeed, fail, and validations made.
const N_OK: usize = 3;
const M_FAILED: usize = 2;
const K_VALID: usize = 4;
/// A username that must never appear in the exposition.
const UNKNOWN_USER: &str = "no-such-user-7f3a";

fn method(name: &'static str, service: &'static str) -> [(&'static str, &'static str); 2] {
    [("grpc_service", service), ("grpc_method", name)]
}

const AUTH: &str = "auth.v1.AuthService";

async fn counters_move_by_exactly_the_calls_made(backend: Backend) {
    let s = TestServer::start(backend).await;
    let before = s.scrape().await;

    let mut logins = Vec::new();
    for _ in 0..N_OK {
        logins.push(s.login(ADMIN_USER, ADMIN_PASSWORD).await);
    }
    for _ in 0..M_FAILED {
        let e = s
            .try_login(UNKNOWN_USER, "wrong-password-1")
            .await
            .expect_err("unknown user");
        assert_eq!(e.code(), Code::Unauthenticated);
    }
    for _ in 0..K_VALID {
        assert!(s.validate(&logins[0].access_token).await.valid);
    }
    let garbage = s
        .auth_client()
        .validate(ValidateRequest {
            access_token: "not.a.jwt".into(),
            ..Default::default()
        })
        .await
        .expect("validate")
        .into_inner();
    assert!(!garbage.valid);
    // One rotation, then the spent token again: reuse, and the session ends.
    let spent = logins[1].refresh_token.clone();
    s.auth_client()
        .refresh(RefreshRequest {
            refresh_token: spent.clone(),
        })
        .await
        .expect("refresh");
    // Past the window in which a duplicate of a concurrent rotation is only refused.
    s.clock
        .advance(auth_server::store::CONCURRENT_REFRESH_WINDOW_SECS + 1);
    let reuse = s
        .auth_client()
        .refresh(RefreshRequest {
            refresh_token: spent,
        })
        .await
        .expect_err("reuse refused");
    assert_eq!(reuse.code(), Code::Unauthenticated);
    s.auth_client()
        .logout(LogoutRequest {
            refresh_token: logins[2].refresh_token.clone(),
        })
        .await
        .expect("logout");
    // Paths the server does not serve, each different: one `unknown` series for all (the access
    // policy may refuse them before routing: whatever code the caller got is what is counted).
    let mut unknown_codes = Vec::new();
    for path in [
        "/auth.v1.AuthService/NoSuchMethod",
        "/evil.Service/a1b2c3",
        "/evil.Service/d4e5f6",
    ] {
        let e = raw_unary(s.channel(), path, vec![], |_| {})
            .await
            .expect_err("not served");
        unknown_codes.push(e.code());
    }
    // A health Watch, cancelled by its client after the first status.
    {
        let mut health = HealthClient::new(s.new_channel().await);
        let mut watch = health
            .watch(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("watch")
            .into_inner();
        bounded("first status", watch.message())
            .await
            .expect("status");
    }
    let watch = [
        ("grpc_service", "grpc.health.v1.Health"),
        ("grpc_method", "Watch"),
        ("grpc_type", "server_stream"),
        ("grpc_code", "Canceled"),
    ];
    poll_until("the cancelled Watch is handled", STEP_TIMEOUT, || async {
        (s.scrape().await.sum("grpc_server_handled_total", &watch) == 1.0).then_some(())
    })
    .await;

    let r = s.http_get("/metrics").await;
    let after = Exposition::parse(&r.body, Format::Prometheus).unwrap_or_else(|e| panic!("{e}"));
    let delta =
        |name: &str, labels: &[(&str, &str)]| after.sum(name, labels) - before.sum(name, labels);
    let n = |x: usize| x as f64;

    // Logins and what they issued.
    assert_eq!(
        delta("auth_logins_total", &[("result", "success")]),
        n(N_OK)
    );
    assert_eq!(
        delta("auth_logins_total", &[("result", "invalid_credentials")]),
        n(M_FAILED)
    );
    assert_eq!(delta("auth_logins_total", &[]), n(N_OK + M_FAILED));
    let issued = |kind, grant| {
        delta(
            "auth_tokens_issued_total",
            &[("kind", kind), ("grant", grant)],
        )
    };
    assert_eq!(issued("access", "password"), n(N_OK));
    assert_eq!(issued("refresh", "password"), n(N_OK));
    assert_eq!(issued("access", "refresh_token"), 1.0);
    assert_eq!(issued("refresh", "refresh_token"), 1.0);
    // One verification per login attempt, unknown users included (the dummy hash).
    assert_eq!(
        delta(
            "auth_password_hash_duration_seconds_count",
            &[("op", "verify")]
        ),
        n(N_OK + M_FAILED)
    );
    assert_eq!(
        delta(
            "auth_validations_total",
            &[("result", "valid"), ("reason", "none")]
        ),
        n(K_VALID)
    );
    assert_eq!(
        delta(
            "auth_validations_total",
            &[("result", "invalid"), ("reason", "malformed")]
        ),
        1.0
    );
    assert_eq!(delta("auth_validations_total", &[]), n(K_VALID + 1));
    assert_eq!(delta("auth_refresh_reuse_detected_total", &[]), 1.0);
    assert_eq!(
        delta(
            "auth_sessions_revoked_total",
            &[("reason", "refresh_reuse")]
        ),
        1.0
    );
    assert_eq!(
        delta("auth_sessions_revoked_total", &[("reason", "logout")]),
        1.0
    );
    assert_eq!(delta("auth_sessions_revoked_total", &[]), 2.0);

    // gRPC: started and handled by code, per method.
    let login = method("Login", AUTH);
    let code = |m: [(&'static str, &'static str); 2], c: &'static str| {
        delta(
            "grpc_server_handled_total",
            &[m[0], m[1], ("grpc_type", "unary"), ("grpc_code", c)],
        )
    };
    assert_eq!(
        delta("grpc_server_started_total", &login),
        n(N_OK + M_FAILED)
    );
    assert_eq!(code(login, "OK"), n(N_OK));
    assert_eq!(code(login, "Unauthenticated"), n(M_FAILED));
    assert_eq!(
        delta("grpc_server_handling_seconds_count", &login),
        n(N_OK + M_FAILED)
    );
    let validate = method("Validate", AUTH);
    assert_eq!(
        delta("grpc_server_started_total", &validate),
        n(K_VALID + 1)
    );
    assert_eq!(code(validate, "OK"), n(K_VALID + 1));
    let refresh = method("Refresh", AUTH);
    assert_eq!(delta("grpc_server_started_total", &refresh), 2.0);
    assert_eq!(code(refresh, "OK"), 1.0);
    assert_eq!(code(refresh, "Unauthenticated"), 1.0);
    assert_eq!(code(method("Logout", AUTH), "OK"), 1.0);
    let unknown = [
        ("grpc_service", "unknown"),
        ("grpc_method", "unknown"),
        ("grpc_type", "unknown"),
    ];
    assert_eq!(delta("grpc_server_started_total", &unknown), 3.0);
    for (code, name) in [
        (Code::Unauthenticated, "Unauthenticated"),
        (Code::PermissionDenied, "PermissionDenied"),
        (Code::Unimplemented, "Unimplemented"),
    ] {
        let seen = unknown_codes.iter().filter(|c| **c == code).count();
        let handled = [unknown[0], unknown[1], ("grpc_code", name)];
        assert_eq!(
            delta("grpc_server_handled_total", &handled),
            n(seen),
            "{name}"
        );
    }
    assert_eq!(delta("grpc_server_handled_total", &unknown), 3.0);
    for label in ["NoSuchMethod", "a1b2c3", "evil.Service"] {
        assert!(!r.body.contains(label), "{label} became a label value");
    }
    // Every call that started has ended (the Watch included), under the code it ended with.
    for started in after.samples("grpc_server_started_total", &[]) {
        let l: Vec<(&str, &str)> = started
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            after.sum("grpc_server_handled_total", &l),
            started.value,
            "{l:?}"
        );
        assert_eq!(
            after.sum("grpc_server_handling_seconds_count", &l),
            started.value,
            "{l:?}"
        );
    }
    assert_eq!(after.sum("grpc_server_started_total", &watch[..3]), 1.0);

    // State read at scrape time.
    assert_eq!(after.get("auth_database_up", &[]), Some(1.0));
    assert_eq!(
        after.get("auth_signing_keys", &[("state", "current")]),
        Some(1.0)
    );
    assert_eq!(
        after.get("auth_signing_keys", &[("state", "next")]),
        Some(1.0)
    );
    assert_eq!(
        after.get("auth_signing_keys", &[("state", "retired")]),
        Some(0.0)
    );
    assert_eq!(after.get("auth_password_hash_queue_depth", &[]), Some(0.0));
    assert_eq!(
        after.get("auth_password_hash_permits_in_use", &[]),
        Some(0.0)
    );
    assert!(after.get("auth_password_hash_permits", &[]) >= Some(1.0));

    // Nothing personal in any label or line.
    let mut secrets = vec![UNKNOWN_USER.to_owned(), "127.0.0.1".to_owned()];
    for l in &logins {
        secrets.push(l.access_token[..40].to_owned());
        secrets.push(l.refresh_token.clone());
    }
    for secret in &secrets {
        assert!(!r.body.contains(secret.as_str()), "{secret} in /metrics");
    }

    // OpenMetrics on request, same families.
    let om = http_request(
        s.side_port(),
        Method::GET,
        "/metrics",
        &[(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )],
    )
    .await;
    assert_eq!(
        om.header("content-type"),
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let parsed = Exposition::parse(&om.body, Format::OpenMetrics).unwrap_or_else(|e| panic!("{e}"));
    assert!(parsed.sum("auth_logins_total", &[("result", "success")]) >= n(N_OK));
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_metrics_can_be_turned_off() {
    run_bounded(async {
        let s = TestServer::start_with(
            Backend::Sqlite,
            Options::with_args(&["--grpc-metrics", "false"]),
        )
        .await;
        s.login(ADMIN_USER, ADMIN_PASSWORD).await;
        let m = s.scrape().await;
        assert_eq!(m.samples("grpc_server_started_total", &[]).count(), 0);
        assert_eq!(
            m.get("auth_logins_total", &[("result", "success")]),
            Some(1.0)
        );
        s.shutdown().await;
    })
    .await
}
