//! Security suite, login abuse and resources: throttling per account (L03) and per source (L04), raw
//! protobuf with invalid UTF-8 (L09), the hashing queue under a burst (D02), oversized and compressed
//! bodies (D03), and the audit trail of logins (I03). L01 and L05–L08 are in `login`.
//!
//! Throttling runs on the server's clock, which the harness drives by hand (`ManualClock`).

use std::collections::BTreeSet;

use crate::support::*;
use auth_proto::v1::auth_service_client::AuthServiceClient;
use auth_proto::v1::{AuditEvent, ListAuditEventsRequest, LoginRequest, LoginResponse};
use tonic::codec::CompressionEncoding;
use tonic::{Code, Request, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

both_backends!(
    account_throttling_backs_off_and_resets,
    password_spraying_is_throttled_per_source,
    malformed_and_oversized_requests_are_refused,
    logins_are_audited_without_secrets,
);

/// Longest back-off of the throttling servers below (`--login-max-backoff`), seconds.
const MAX_BACKOFF: i64 = 60;

/// A login from `source` (the trusted proxy header `x-forwarded-for`).
async fn login_from(
    s: &TestServer,
    source: &str,
    user: &str,
    password: &str,
) -> Result<LoginResponse, Status> {
    let mut req = Request::new(LoginRequest {
        username: user.into(),
        password: password.into(),
    });
    req.metadata_mut()
        .insert("x-forwarded-for", source.parse().expect("ascii"));
    bounded("login", s.auth_client().login(req))
        .await
        .map(tonic::Response::into_inner)
}

/// The `retry-after` seconds of a throttled refusal (asserting its status and message).
#[track_caller]
fn throttled(r: Result<LoginResponse, Status>, what: &str, secret: &str) -> i64 {
    let st = r.expect_err(what);
    assert_status(
        &st,
        Code::ResourceExhausted,
        "too many failed attempts, retry later",
        &[secret],
    );
    st.metadata()
        .get("retry-after")
        .unwrap_or_else(|| panic!("{what}: no retry-after"))
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds")
}

#[track_caller]
fn invalid_credentials(r: Result<LoginResponse, Status>, what: &str, secret: &str) {
    assert_status(
        &r.expect_err(what),
        Code::Unauthenticated,
        "invalid credentials",
        &[secret],
    );
}

/// Sends wrong passwords for `user` from rotating sources until `n` of them reached the password check,
/// waiting out (on the manual clock) every back-off met. Returns the back-offs met.
async fn fail_n_times(s: &TestServer, user: &str, n: usize, first_ip: usize) -> Vec<i64> {
    let mut waits = Vec::new();
    let mut done = 0;
    let mut ip = first_ip;
    for _ in 0..(4 * n + 8) {
        if done == n {
            break;
        }
        ip += 1;
        let source = format!("10.{}.{}.{}", ip / 65536 % 256, ip / 256 % 256, ip % 256);
        match login_from(s, &source, user, "wrong-password-9").await {
            Err(st) if st.code() == Code::Unauthenticated => {
                assert_eq!(st.message(), "invalid credentials");
                done += 1;
            }
            r => {
                let wait = throttled(r, "back-off", "wrong-password-9");
                assert!((1..=MAX_BACKOFF).contains(&wait), "wait {wait}");
                waits.push(wait);
                s.clock.advance(wait);
            }
        }
    }
    assert_eq!(done, n, "failures reaching the password check");
    waits
}

/// L03: 10 wrong passwords for one account from rotating addresses → the next attempts, even with the
/// right password, get RESOURCE_EXHAUSTED + `retry-after`; a username that does not exist is throttled
/// identically; the back-off doubles and is capped at AUTH_LOGIN_MAX_BACKOFF; success resets the count.
async fn account_throttling_backs_off_and_resets(backend: Backend) {
    let s = TestServer::start_with(
        backend,
        Options::with_args(&[
            "--trusted-proxy-header",
            "x-forwarded-for",
            "--login-max-backoff",
            &MAX_BACKOFF.to_string(),
        ]),
    )
    .await;
    s.seed_user("victim", "victim-password-1", &[]).await;
    let good = s.admin_token().await;

    let waits = fail_n_times(&s, "victim", 10, 0).await;
    // Back-off from the 5th failure: 1, 2, 4, 8, 16 s met between failures 5..10.
    assert_eq!(waits, vec![1, 2, 4, 8, 16], "exponential back-off");
    let before = s.db.fingerprint().await;
    let wait = throttled(
        login_from(&s, "10.200.0.1", "victim", "victim-password-1").await,
        "right password while locked",
        "victim-password-1",
    );
    assert_eq!(wait, 32, "lock after 10 failures");
    assert_eq!(
        s.db.fingerprint().await,
        before,
        "a throttled login wrote rows"
    );

    // A username that does not exist: the same counter, the same answers.
    let ghost_waits = fail_n_times(&s, "ghost", 10, 1000).await;
    assert_eq!(
        ghost_waits, waits,
        "non-existent user throttled identically"
    );
    let st_v = login_from(&s, "10.201.0.1", "victim", "x-password-1")
        .await
        .expect_err("locked");
    let st_g = login_from(&s, "10.201.0.2", "ghost", "x-password-1")
        .await
        .expect_err("locked");
    let keys = |st: &Status| -> BTreeSet<String> {
        st.metadata()
            .keys()
            .map(|k| format!("{k:?}"))
            .filter(|k| !k.contains("date"))
            .collect()
    };
    assert_eq!(
        (st_v.code(), st_v.message(), keys(&st_v)),
        (st_g.code(), st_g.message(), keys(&st_g)),
        "existing and non-existent usernames are throttled alike"
    );

    // The cap: keep failing; no back-off ever exceeds MAX_BACKOFF, and it reaches it.
    s.clock.advance(MAX_BACKOFF);
    let more = fail_n_times(&s, "victim", 6, 2000).await;
    assert!(more.iter().all(|w| *w <= MAX_BACKOFF), "{more:?}");
    assert_eq!(more.last(), Some(&MAX_BACKOFF), "{more:?}");
    let wait = throttled(
        login_from(&s, "10.202.0.1", "victim", "victim-password-1").await,
        "locked at the cap",
        "victim-password-1",
    );
    assert_eq!(wait, MAX_BACKOFF, "capped lock");

    // After the wait the right password works, and resets the account's counter.
    s.clock.advance(MAX_BACKOFF);
    login_from(&s, "10.203.0.1", "victim", "victim-password-1")
        .await
        .expect("right password after the back-off");
    for i in 0..4 {
        invalid_credentials(
            login_from(&s, &format!("10.204.0.{i}"), "victim", "wrong-password-9").await,
            "counter reset by success",
            "wrong-password-9",
        );
    }
    s.assert_healthy(&good).await;
    s.shutdown().await;
}

/// L04: one source, one password, many usernames → RESOURCE_EXHAUSTED after
/// AUTH_LOGIN_SOURCE_MAX_FAILURES; the refused attempts are audited (`login.throttled`) but start no
/// session and cost no hash; the lock is bounded; other sources are unaffected.
async fn password_spraying_is_throttled_per_source(backend: Backend) {
    const SOURCE_MAX: usize = 5;
    let s = TestServer::start_with(
        backend,
        Options::with_args(&[
            "--trusted-proxy-header",
            "x-forwarded-for",
            "--login-source-max-failures",
            &SOURCE_MAX.to_string(),
            "--login-max-backoff",
            &MAX_BACKOFF.to_string(),
        ]),
    )
    .await;
    for i in 0..3 {
        s.seed_user(&format!("staff{i}"), &format!("staff-password-{i}"), &[])
            .await;
    }
    let good = s.admin_token().await;
    let attacker = "192.0.2.66";
    let spray = "Spring2026!";
    let before = s.db.fingerprint().await;
    let throttled_before =
        s.db.scalar("SELECT COUNT(*) FROM audit_events WHERE event = 'login.throttled'")
            .await;
    let mut refused = 0;
    for i in 0..40 {
        let user = if i % 10 < 3 {
            format!("staff{}", i % 10)
        } else {
            format!("user{i}")
        };
        let r = login_from(&s, attacker, &user, spray).await;
        if i < SOURCE_MAX {
            invalid_credentials(r, "below the source threshold", spray);
        } else {
            throttled(r, "spraying", spray);
            refused += 1;
        }
    }
    assert_eq!(refused, 40 - SOURCE_MAX as i64);
    let after = s.db.fingerprint().await;
    assert_eq!(after, before, "spraying started sessions or changed users");
    let throttled_rows =
        s.db.scalar("SELECT COUNT(*) FROM audit_events WHERE event = 'login.throttled'")
            .await;
    assert_eq!(throttled_rows - throttled_before, refused, "audit rows");
    let sources = s
        .db
        .scalar(&format!(
            "SELECT COUNT(*) FROM audit_events WHERE event = 'login.throttled' AND source = '{attacker}'"
        ))
        .await;
    assert_eq!(sources, refused, "throttled rows carry the source");
    // Another source is not affected, even for the same usernames.
    login_from(&s, "198.51.100.7", "staff1", "staff-password-1")
        .await
        .expect("another source");
    // The source lock is bounded: after the longest back-off the attacker may try again.
    s.clock.advance(MAX_BACKOFF + 1);
    invalid_credentials(
        login_from(&s, attacker, "staff2", spray).await,
        "after the back-off",
        spray,
    );
    s.assert_healthy(&good).await;
    s.shutdown().await;
}

/// Hand-encodes a message of string fields `(tag, raw bytes)` (wire type 2), so a field can carry bytes
/// that are not UTF-8.
fn encode_fields(fields: &[(u32, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (tag, bytes) in fields {
        prost::encoding::encode_key(*tag, prost::encoding::WireType::LengthDelimited, &mut out);
        prost::encoding::encode_varint(bytes.len() as u64, &mut out);
        out.extend_from_slice(bytes);
    }
    out
}

/// L09 (invalid UTF-8 in a `string` field → INVALID_ARGUMENT "malformed request message", nothing of
/// the input echoed) and D03 (a 5 MiB body → RESOURCE_EXHAUSTED "request message too large"; a
/// gzip-compressed request → UNIMPLEMENTED, compression is not enabled). The server stays healthy.
async fn malformed_and_oversized_requests_are_refused(backend: Backend) {
    let s = TestServer::start(backend).await;
    let good = s.admin_token().await;
    let before = s.db.fingerprint().await;
    // L09.
    let bad_utf8: &[u8] = &[b'p', 0xff, 0xfe, b'w'];
    for (path, body) in [
        (
            "/auth.v1.AuthService/Login",
            encode_fields(&[(1, b"admin"), (2, bad_utf8)]),
        ),
        (
            "/auth.v1.AuthService/Login",
            encode_fields(&[(1, bad_utf8), (2, b"admin-password-0123")]),
        ),
        (
            "/auth.v1.AuthService/Refresh",
            encode_fields(&[(1, bad_utf8)]),
        ),
        (
            "/auth.v1.AuthService/Validate",
            encode_fields(&[(1, bad_utf8)]),
        ),
        (
            "/auth.v1.AuthService/Logout",
            encode_fields(&[(1, bad_utf8)]),
        ),
        // Truncated: a length prefix beyond the end of the message.
        ("/auth.v1.AuthService/Login", vec![0x0a, 0x7f, b'a']),
    ] {
        let st = raw_unary(s.channel(), path, body, |_| {})
            .await
            .expect_err(path);
        assert_status(
            &st,
            Code::InvalidArgument,
            "malformed request message",
            &["admin-password", "UTF-8", "LoginRequest"],
        );
    }
    // D03: 5 MiB.
    let big = LoginRequest {
        username: ADMIN_USER.into(),
        password: "p".repeat(5 * 1024 * 1024),
    };
    let st = bounded("5 MiB login", s.auth_client().login(big))
        .await
        .expect_err("5 MiB login");
    assert_status(
        &st,
        Code::ResourceExhausted,
        "request message too large",
        &[],
    );
    // D03: a compressed request (a small gzip bomb: 4 MiB of zeros compresses to a few KiB).
    let mut gz = AuthServiceClient::new(s.channel()).send_compressed(CompressionEncoding::Gzip);
    for password in [
        "admin-password-0123".to_owned(),
        "\0".repeat(4 * 1024 * 1024),
    ] {
        let st = bounded(
            "gzip login",
            gz.login(LoginRequest {
                username: ADMIN_USER.into(),
                password: password.clone(),
            }),
        )
        .await
        .expect_err("compressed request");
        assert_eq!(st.code(), Code::Unimplemented, "{st:?}");
        assert_no_leak(&st, &[&password]);
    }
    assert_eq!(
        s.db.fingerprint().await,
        before,
        "refused requests wrote rows"
    );
    s.assert_healthy(&good).await;
    s.shutdown().await;
}

/// I03: failed and successful logins are in ListAuditEvents with the source address, and no audit
/// field holds a password or a token.
async fn logins_are_audited_without_secrets(backend: Backend) {
    let s = TestServer::start(backend).await;
    let uid = s.seed_user("nina", "nina-password-1", &[]).await;
    invalid_credentials(
        s.try_login("nina", "nina-wrong-password").await,
        "wrong",
        "nina-wrong-password",
    );
    invalid_credentials(
        s.try_login("nobody-here", "nobody-password").await,
        "unknown",
        "nobody-password",
    );
    let ok = s.login("nina", "nina-password-1").await;
    let admin = s.login(ADMIN_USER, ADMIN_PASSWORD).await;
    let resp = bounded(
        "audit",
        s.admin_client_with(&admin.access_token)
            .list_audit_events(ListAuditEventsRequest {
                page_size: 100,
                ..Default::default()
            }),
    )
    .await
    .expect("ListAuditEvents")
    .into_inner();
    let events: Vec<AuditEvent> = resp.events;
    let find = |event: &str, pred: &dyn Fn(&AuditEvent) -> bool| -> AuditEvent {
        events
            .iter()
            .find(|e| e.event == event && pred(e))
            .unwrap_or_else(|| panic!("no {event} in {events:#?}"))
            .clone()
    };
    let failed = find("login.failed", &|e| e.subject == "nina");
    assert_eq!(
        (failed.outcome.as_str(), failed.source.as_str()),
        ("failure", "127.0.0.1")
    );
    let unknown = find("login.failed", &|e| e.subject == "nobody-here");
    assert_eq!(unknown.source, "127.0.0.1");
    let succeeded = find("login.succeeded", &|e| e.actor == uid);
    assert_eq!(
        (succeeded.outcome.as_str(), succeeded.source.as_str()),
        ("success", "127.0.0.1")
    );
    assert!(succeeded.time.is_some());
    let secrets = [
        "nina-password-1",
        "nina-wrong-password",
        "nobody-password",
        ADMIN_PASSWORD,
        &ok.access_token,
        &ok.refresh_token,
        &admin.access_token,
        &admin.refresh_token,
    ];
    for e in &events {
        let text = format!("{e:?}");
        for secret in secrets {
            assert!(!text.contains(secret), "audit event holds a secret: {e:?}");
        }
    }
    s.assert_healthy(&admin.access_token).await;
    s.shutdown().await;
}

/// D02: 200 concurrent Logins on a server with one hashing slot and a queue of 4: the excess fails fast
/// with UNAVAILABLE + `grpc-retry-pushback-ms`, at least one succeeds, and health answers during the
/// burst. No state beyond the successful sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_burst_is_shed_not_queued() {
    run_bounded(async {
        let s = TestServer::start_with(
            Backend::Sqlite,
            Options::with_args(&["--hash-concurrency", "1", "--hash-queue", "4"]),
        )
        .await;
        let good = s.admin_token().await;
        let before = s.db.fingerprint().await;
        let burst = {
            let client = s.auth_client();
            tokio::spawn(async move {
                let calls = (0..200).map(|_| {
                    let mut c = client.clone();
                    async move {
                        c.login(LoginRequest {
                            username: ADMIN_USER.into(),
                            password: ADMIN_PASSWORD.into(),
                        })
                        .await
                    }
                });
                futures_util::future::join_all(calls).await
            })
        };
        // Health during the burst (a separate connection, like a kubelet probe).
        let probe = s.new_channel().await;
        let mut health = tonic_health::pb::health_client::HealthClient::new(probe);
        let h = bounded(
            "health during the burst",
            health.check(HealthCheckRequest {
                service: String::new(),
            }),
        )
        .await
        .expect("health during the burst")
        .into_inner();
        assert_eq!(h.status, ServingStatus::Serving as i32);
        let results = bounded("burst", burst).await.expect("burst task");
        let mut ok = 0i64;
        let mut shed = 0;
        for r in results {
            match r {
                Ok(_) => ok += 1,
                Err(st) => {
                    assert_status(
                        &st,
                        Code::Unavailable,
                        "server busy, retry later",
                        &[ADMIN_PASSWORD],
                    );
                    let pushback = st
                        .metadata()
                        .get("grpc-retry-pushback-ms")
                        .expect("grpc-retry-pushback-ms");
                    assert!(pushback.to_str().expect("ascii").parse::<u64>().is_ok());
                    shed += 1;
                }
            }
        }
        println!("D02: {ok} logins served, {shed} shed");
        assert!(ok >= 1, "no login succeeded");
        assert!(shed >= 1, "nothing was shed");
        let after = s.db.fingerprint().await;
        assert_eq!(after[1] - before[1], ok, "one session per successful login");
        s.assert_healthy(&good).await;
        s.shutdown().await;
    })
    .await;
}
