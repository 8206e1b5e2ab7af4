//! Refresh tokens: rotation, reuse detection, races, malformed input, expiry and logout
//! (catalogue R01–R07, C10).

use std::sync::Arc;

use crate::support::*;
use auth_proto::v1::{InvalidReason, LogoutRequest, RefreshRequest, RefreshResponse};
use tonic::{Code, Status};

both_backends!(
    refresh_rotates_tokens,
    refresh_reuse_revokes_the_family,
    concurrent_refresh_has_exactly_one_winner,
    concurrent_refresh_leaves_the_winner_live,
    malformed_refresh_tokens_change_nothing,
    tokens_are_not_interchangeable,
    idle_timeout_ends_a_session,
    absolute_lifetime_is_never_extended,
    logout_ends_the_session_without_an_oracle,
);

async fn refresh(s: &TestServer, rt: &str) -> Result<RefreshResponse, Status> {
    bounded(
        "refresh",
        s.auth_client().refresh(RefreshRequest {
            refresh_token: rt.to_owned(),
        }),
    )
    .await
    .map(|r| r.into_inner())
}

#[track_caller]
fn assert_invalid_token(r: Result<RefreshResponse, Status>, rt: &str) {
    let st = r.expect_err("refresh must fail");
    assert_status(&st, Code::Unauthenticated, "invalid token", &[rt]);
}

async fn refresh_rotates_tokens(backend: Backend) {
    let s = TestServer::start(backend).await;
    let l = s.login(ADMIN_USER, ADMIN_PASSWORD).await;
    let c1 = claims_of(&l.access_token);
    s.clock.advance(60);
    let r2 = refresh(&s, &l.refresh_token).await.expect("rotate");
    assert_ne!(r2.refresh_token, l.refresh_token);
    assert_eq!(r2.token_type, "Bearer");
    assert_eq!(r2.expires_in, ACCESS_TTL);
    assert_eq!(r2.refresh_expires_in, IDLE_TTL);
    let c2 = claims_of(&r2.access_token);
    assert_ne!(c2["jti"], c1["jti"]);
    assert_eq!(c2["sid"], c1["sid"]);
    assert_eq!(c2["sub"], c1["sub"]);
    assert_eq!(c2["iat"].as_i64(), Some(s.now()));
    assert!(s.validate(&r2.access_token).await.valid);
    // The successor is live, the predecessor is spent.
    let r3 = refresh(&s, &r2.refresh_token).await.expect("rotate again");
    assert_eq!(s.db.live_refresh_tokens().await, 1);
    assert_eq!(
        s.db.scalar("SELECT COUNT(*) FROM refresh_tokens WHERE used_at IS NOT NULL")
            .await,
        2
    );
    assert_invalid_token(refresh(&s, &l.refresh_token).await, &l.refresh_token);
    drop(r3);
    s.shutdown().await;
}

async fn refresh_reuse_revokes_the_family(backend: Backend) {
    let s = TestServer::start(backend).await;
    let other = s.login(ADMIN_USER, ADMIN_PASSWORD).await;
    let l = s.login(ADMIN_USER, ADMIN_PASSWORD).await;
    let r2 = refresh(&s, &l.refresh_token).await.expect("rt1 -> rt2");
    let r3 = refresh(&s, &r2.refresh_token).await.expect("rt2 -> rt3");
    assert!(s.validate(&r3.access_token).await.valid);

    assert_invalid_token(refresh(&s, &l.refresh_token).await, &l.refresh_token);
    // The whole family is dead, including the live rt3 and the latest access token.
    assert_invalid_token(refresh(&s, &r3.refresh_token).await, &r3.refresh_token);
    let v = s.validate(&r3.access_token).await;
    assert_invalid(&v, Some(InvalidReason::Revoked), "access token after reuse");
    let reason =
        s.db.scalar("SELECT COUNT(*) FROM sessions WHERE revoke_reason = 'refresh_reuse'")
            .await;
    assert_eq!(reason, 1);
    // Other sessions of the user are untouched.
    assert!(s.validate(&other.access_token).await.valid);
    refresh(&s, &other.refresh_token)
        .await
        .expect("other session");
    s.shutdown().await;
}

/// Logs in and releases 20 Refresh calls of the same token at once from a barrier; returns the server
/// and the successful responses.
async fn refresh_race(backend: Backend) -> (TestServer, Vec<RefreshResponse>) {
    let s = Arc::new(TestServer::start(backend).await);
    let l = s.login(ADMIN_USER, ADMIN_PASSWORD).await;
    const N: usize = 20;
    let barrier = Arc::new(tokio::sync::Barrier::new(N));
    let mut tasks = Vec::new();
    for _ in 0..N {
        let (s, b, rt) = (s.clone(), barrier.clone(), l.refresh_token.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = s.auth_client();
            b.wait().await;
            client
                .refresh(RefreshRequest { refresh_token: rt })
                .await
                .map(|r| r.into_inner())
        }));
    }
    let mut ok = Vec::new();
    for t in tasks {
        match bounded("refresh task", t).await.expect("task") {
            Ok(r) => ok.push(r),
            Err(st) => assert_status(
                &st,
                Code::Unauthenticated,
                "invalid token",
                &[&l.refresh_token],
            ),
        }
    }
    (Arc::try_unwrap(s).expect("sole owner"), ok)
}

async fn concurrent_refresh_has_exactly_one_winner(backend: Backend) {
    let (s, ok) = refresh_race(backend).await;
    assert_eq!(ok.len(), 1, "exactly one concurrent refresh succeeds");
    // Never two successors: exactly one unused refresh token exists.
    assert_eq!(
        s.db.scalar("SELECT COUNT(*) FROM refresh_tokens WHERE used_at IS NULL")
            .await,
        1,
        "successors written"
    );
    assert!(s.db.live_refresh_tokens().await <= 1);
    s.shutdown().await;
}

async fn concurrent_refresh_leaves_the_winner_live(backend: Backend) {
    let (s, ok) = refresh_race(backend).await;
    assert_eq!(ok.len(), 1);
    // Catalogue R03 and this suite's brief: "exactly one live successor in the database". The losers
    // of a race must not be treated as a replay that revokes the winner's session.
    assert_eq!(
        s.db.live_refresh_tokens().await,
        1,
        "the winner's successor is not live: the race losers revoked the session as 'reuse'"
    );
    refresh(&s, &ok[0].refresh_token)
        .await
        .expect("the winner can refresh again");
    s.shutdown().await;
}

async fn malformed_refresh_tokens_change_nothing(backend: Backend) {
    let s = TestServer::start(backend).await;
    let l = s.login(ADMIN_USER, ADMIN_PASSWORD).await;
    let rt = l.refresh_token.clone();
    let before = s.db.fingerprint().await;

    let mut changed = rt.clone().into_bytes();
    changed[0] = if changed[0] == b'A' { b'B' } else { b'A' };
    let changed = String::from_utf8(changed).expect("ascii");
    let cases = vec![
        String::new(),
        "a".into(),
        "x".repeat(10 * 1024),
        "' OR '1'='1".into(),
        "' OR '1'='1' --                                ".into(),
        "\u{0}".into(),
        format!("{}\u{0}", &rt[..42]),
        "é".repeat(43),
        rt.replace(|c: char| c.is_ascii_alphabetic(), "+"),
        changed,
        rt[..42].to_owned(),
        format!("{rt}A"),
        l.access_token.clone(),
    ];
    for bad in &cases {
        assert_invalid_token(refresh(&s, bad).await, &rt);
        // Logout with garbage is a no-op that answers OK.
        bounded(
            "logout",
            s.auth_client().logout(LogoutRequest {
                refresh_token: bad.clone(),
            }),
        )
        .await
        .expect("logout answers OK");
    }
    assert_eq!(
        s.db.fingerprint().await,
        before,
        "malformed tokens changed rows"
    );
    // The real token still works.
    refresh(&s, &rt).await.expect("real token still live");
    s.shutdown().await;
}

async fn tokens_are_not_interchangeable(backend: Backend) {
    let s = TestServer::start(backend).await;
    let l = s.login(ADMIN_USER, ADMIN_PASSWORD).await;
    // An access JWT is not a refresh token (R06) ...
    assert_invalid_token(refresh(&s, &l.access_token).await, &l.access_token);
    // ... and a refresh token is not an access token.
    let v = s.validate(&l.refresh_token).await;
    assert_invalid(
        &v,
        Some(InvalidReason::Malformed),
        "refresh token as access token",
    );
    // Neither attempt consumed anything.
    refresh(&s, &l.refresh_token).await.expect("still live");
    s.shutdown().await;
}

async fn idle_timeout_ends_a_session(backend: Backend) {
    let s = TestServer::start(backend).await;
    // Used just before the idle timeout: rotation slides the window.
    let a = s.login(ADMIN_USER, ADMIN_PASSWORD).await;
    let b = s.login(ADMIN_USER, ADMIN_PASSWORD).await;
    s.clock.advance(IDLE_TTL - 60);
    let a2 = refresh(&s, &a.refresh_token)
        .await
        .expect("within idle ttl");
    // Unused past the idle timeout: dead.
    s.clock.advance(61);
    let before = s.db.fingerprint().await;
    assert_invalid_token(refresh(&s, &b.refresh_token).await, &b.refresh_token);
    assert_eq!(
        s.db.fingerprint().await,
        before,
        "expired refresh changed rows"
    );
    // a2 was issued 61 s ago: still fine.
    let a3 = refresh(&s, &a2.refresh_token).await.expect("slid window");
    s.clock.advance(IDLE_TTL + 1);
    assert_invalid_token(refresh(&s, &a3.refresh_token).await, &a3.refresh_token);
    s.shutdown().await;
}

async fn absolute_lifetime_is_never_extended(backend: Backend) {
    let s = TestServer::start(backend).await;
    let l = s.login(ADMIN_USER, ADMIN_PASSWORD).await;
    let start = s.now();
    let six_days = 6 * 24 * 3600;
    let mut rt = l.refresh_token;
    for i in 1..=4 {
        s.clock.advance(six_days);
        let r = refresh(&s, &rt)
            .await
            .unwrap_or_else(|e| panic!("day {}: {e:?}", 6 * i));
        let left = start + ABSOLUTE_TTL - s.now();
        assert_eq!(
            r.refresh_expires_in,
            IDLE_TTL.min(left),
            "refresh_expires_in is capped by the absolute lifetime"
        );
        rt = r.refresh_token;
    }
    // Day 30 + 1 s: past the absolute lifetime even though the token was used within the idle window.
    s.clock.advance(six_days + 1);
    assert_invalid_token(refresh(&s, &rt).await, &rt);
    s.shutdown().await;
}

async fn logout_ends_the_session_without_an_oracle(backend: Backend) {
    let s = TestServer::start(backend).await;
    let other = s.login(ADMIN_USER, ADMIN_PASSWORD).await;
    let l = s.login(ADMIN_USER, ADMIN_PASSWORD).await;
    let mut c = s.auth_client();
    let first = c
        .logout(LogoutRequest {
            refresh_token: l.refresh_token.clone(),
        })
        .await
        .expect("logout");
    assert_invalid_token(refresh(&s, &l.refresh_token).await, &l.refresh_token);
    let v = s.validate(&l.access_token).await;
    assert_invalid(
        &v,
        Some(InvalidReason::Revoked),
        "access token after logout",
    );
    assert!(
        s.validate(&other.access_token).await.valid,
        "other session untouched"
    );

    let before = s.db.fingerprint().await;
    let again = c
        .logout(LogoutRequest {
            refresh_token: l.refresh_token.clone(),
        })
        .await
        .expect("second logout");
    let random = c
        .logout(LogoutRequest {
            refresh_token: "random".into(),
        })
        .await
        .expect("unknown logout");
    let unknown_well_formed = c
        .logout(LogoutRequest {
            refresh_token: "A".repeat(43),
        })
        .await
        .expect("unknown logout");
    assert_eq!(s.db.fingerprint().await, before);
    let keys = |r: &tonic::Response<_>| {
        let mut k: Vec<String> = r.metadata().keys().map(|k| format!("{k:?}")).collect();
        k.sort();
        k
    };
    for r in [&again, &random, &unknown_well_formed] {
        assert_eq!(r.get_ref(), first.get_ref());
        assert_eq!(keys(r), keys(&first));
    }
    // Logging out by an earlier (spent) token of the family also ends it.
    let r2 = refresh(&s, &other.refresh_token).await.expect("rotate");
    c.logout(LogoutRequest {
        refresh_token: other.refresh_token.clone(),
    })
    .await
    .expect("logout by spent token");
    assert_invalid_token(refresh(&s, &r2.refresh_token).await, &r2.refresh_token);
    s.shutdown().await;
}
