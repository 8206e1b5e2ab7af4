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
    a_distributed_attack_locks_the_account_only_briefly,
    concurrent_attempts_check_no_more_passwords_than_allowed,
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

/// The audit rows of `event`.
async fn audit_rows(s: &TestServer, event: &str) -> i64 {
    s.db.scalar(&format!(
        "SELECT COUNT(*) FROM audit_events WHERE event = '{event}'"
    ))
    .await
}

/// Wrong passwords for `user` from `source` until one is refused; returns how many reached the
/// password check and the refusal's `retry-after`.
async fn fail_until_locked(s: &TestServer, source: &str, user: &str) -> (usize, i64) {
    for checked in 0..200 {
        match login_from(s, source, user, "wrong-password-9").await {
            Err(st) if st.code() == Code::Unauthenticated => {
                assert_eq!(st.message(), "invalid credentials");
            }
            r => return (checked, throttled(r, "locked", "wrong-password-9")),
        }
    }
    panic!("{user} from {source} never locked");
}

/// L03: wrong passwords for one account from one address lock that (account, address) pair after
/// AUTH_LOGIN_MAX_FAILURES, with back-off doubling from lock to lock up to AUTH_LOGIN_MAX_BACKOFF; a
/// lock re-arms only after as many new failures (one failure now and then cannot keep it locked); a
/// username that does not exist is throttled identically; the owner at another address is not
/// locked out; a success resets the pair.
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
    let attacker = "10.0.0.66";

    let mut locks = Vec::new();
    for _ in 0..8 {
        let (checked, wait) = fail_until_locked(&s, attacker, "victim").await;
        assert_eq!(
            checked, 5,
            "five attempts per lock reach the password check"
        );
        locks.push(wait);
        let before = s.db.fingerprint().await;
        let refused = login_from(&s, attacker, "victim", "victim-password-1").await;
        throttled(
            refused,
            "right password from the locked pair",
            "victim-password-1",
        );
        assert_eq!(
            s.db.fingerprint().await,
            before,
            "a refused login wrote rows"
        );
        s.clock.advance(wait);
    }
    assert_eq!(locks, vec![1, 2, 4, 8, 16, 32, 60, 60], "doubling, capped");

    // The owner, from another address, is not locked out by the attacker's failures.
    login_from(&s, "198.51.100.20", "victim", "victim-password-1")
        .await
        .expect("the owner elsewhere logs in");

    // After a lock, one failure now and then does not lock again (OWASP ASVS 5 V6.1.1).
    for _ in 0..3 {
        invalid_credentials(
            login_from(&s, attacker, "victim", "wrong-password-9").await,
            "a single failure after the lock",
            "wrong-password-9",
        );
        s.clock.advance(15 * 60);
    }
    login_from(&s, attacker, "victim", "victim-password-1")
        .await
        .expect("not locked by one failure every 15 minutes");

    // A username that does not exist: the same counter, the same answers.
    let (checked, wait) = fail_until_locked(&s, attacker, "ghost").await;
    assert_eq!(
        (checked, wait),
        (5, 1),
        "non-existent user throttled identically"
    );
    let (_, wait_v) = fail_until_locked(&s, "10.9.9.9", "victim").await;
    let st_v = login_from(&s, "10.9.9.9", "victim", "x-password-1")
        .await
        .expect_err("locked");
    let st_g = login_from(&s, attacker, "ghost", "x-password-1")
        .await
        .expect_err("locked");
    assert_eq!(wait_v, 1);
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

    // A success resets the pair: five more failures before the next lock.
    s.clock.advance(MAX_BACKOFF);
    login_from(&s, "10.9.9.9", "victim", "victim-password-1")
        .await
        .expect("right password after the lock");
    let (checked, _) = fail_until_locked(&s, "10.9.9.9", "victim").await;
    assert_eq!(checked, 5, "counter reset by success");
    // (The clock moved past the first tokens' lifetime: a fresh one.)
    let good = s.admin_token().await;
    s.assert_healthy(&good).await;
    s.shutdown().await;
}

/// A distributed attack on one account (every attempt from a new address) locks the whole account
/// after AUTH_LOGIN_ACCOUNT_MAX_FAILURES, but never for longer than AUTH_LOGIN_ACCOUNT_MAX_BACKOFF:
/// the owner is slowed down at worst briefly, never locked out.
async fn a_distributed_attack_locks_the_account_only_briefly(backend: Backend) {
    let s = TestServer::start_with(
        backend,
        Options::with_args(&[
            "--trusted-proxy-header",
            "x-forwarded-for",
            "--login-account-max-failures",
            "8",
            "--login-account-max-backoff",
            "30",
        ]),
    )
    .await;
    s.seed_user("victim", "victim-password-1", &[]).await;
    let mut ip = 0;
    let mut next_source = || {
        ip += 1;
        format!("10.1.{}.{}", ip / 256, ip % 256)
    };
    let mut waits = Vec::new();
    for _ in 0..8 {
        let mut checked = 0;
        let wait = loop {
            match login_from(&s, &next_source(), "victim", "wrong-password-9").await {
                Err(st) if st.code() == Code::Unauthenticated => checked += 1,
                r => break throttled(r, "account locked", "wrong-password-9"),
            }
        };
        assert_eq!(checked, 8, "the account threshold, from as many addresses");
        // The owner is refused too while the account lock lasts...
        let owner = login_from(&s, "198.51.100.20", "victim", "victim-password-1").await;
        assert!(throttled(owner, "owner during the account lock", "victim-password-1") <= 30);
        waits.push(wait);
        s.clock.advance(wait);
    }
    // ...which doubles but never exceeds the short cap.
    assert_eq!(waits, vec![1, 2, 4, 8, 16, 30, 30, 30]);
    login_from(&s, "198.51.100.20", "victim", "victim-password-1")
        .await
        .expect("the owner logs in once the brief lock is over");
    s.shutdown().await;
}

/// 34 concurrent wrong passwords at a fresh account from one address: only AUTH_LOGIN_MAX_FAILURES of
/// them are checked against the hash (counted atomically before the check), the rest are refused
/// without hashing (issue 15, check-then-count race).
async fn concurrent_attempts_check_no_more_passwords_than_allowed(backend: Backend) {
    let s = TestServer::start_with(
        backend,
        Options::with_args(&["--trusted-proxy-header", "x-forwarded-for"]),
    )
    .await;
    s.seed_user("victim", "victim-password-1", &[]).await;
    let failed_before = audit_rows(&s, "login.failed").await;
    let calls: Vec<_> = (0..34)
        .map(|_| {
            let client = s.auth_client();
            tokio::spawn(async move {
                let mut client = client;
                let mut req = Request::new(LoginRequest {
                    username: "victim".into(),
                    password: "wrong-password-9".into(),
                });
                req.metadata_mut()
                    .insert("x-forwarded-for", "10.0.0.34".parse().expect("ascii"));
                client.login(req).await
            })
        })
        .collect();
    let (mut checked, mut refused) = (0, 0);
    for c in calls {
        match bounded("concurrent login", c).await.expect("task") {
            Err(st) if st.code() == Code::Unauthenticated => checked += 1,
            Err(st) if st.code() == Code::ResourceExhausted => refused += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((checked, refused), (5, 29));
    assert_eq!(audit_rows(&s, "login.failed").await - failed_before, 5);
    s.shutdown().await;
}

/// L04: one source, one password, many usernames → RESOURCE_EXHAUSTED after
/// AUTH_LOGIN_SOURCE_MAX_FAILURES; the refused attempts start no session and cost no hash, and are
/// audited in aggregate (`login.throttled` at the 1st and 10th refusal of the lock, with the count),
/// so spraying cannot fill the audit trail; the lock is bounded; other sources are unaffected.
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
    assert_eq!(
        throttled_rows - throttled_before,
        2,
        "{refused} refusals audited in two rows (the 1st and the 10th)"
    );
    let sources = s
        .db
        .scalar(&format!(
            "SELECT COUNT(*) FROM audit_events WHERE event = 'login.throttled' AND source = '{attacker}' \
             AND detail LIKE '%10 attempts refused%'"
        ))
        .await;
    assert_eq!(
        sources, 1,
        "the aggregated row carries the source and the count"
    );
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
    // A known account by its id, an unknown name by its label, never the name.
    let failed = find("login.failed", &|e| e.subject == uid);
    assert_eq!(
        (failed.outcome.as_str(), failed.source.as_str()),
        ("failure", "127.0.0.1")
    );
    let unknown = find("login.failed", &|e| e.detail == "unknown user");
    assert!(unknown.subject.starts_with("unknown:"), "{unknown:?}");
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
        "nobody-here",
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
