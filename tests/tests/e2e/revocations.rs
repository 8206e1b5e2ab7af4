//! Revocation in real time (issue 12): `Validate` answers from the replica's in-memory view, which
//! has every revocation made on the replica before its RPC returns and learns those of other
//! replicas within a second (PostgreSQL `LISTEN/NOTIFY`); key rotations reach other replicas at once;
//! `WatchRevocations` streams a snapshot, then live revocations, resumes without loss, re-snapshots a
//! pruned or unknown sequence, heartbeats when idle, needs its role and bounds its streams.

use std::time::{Duration, Instant};

use crate::support::*;
use auth_proto::v1::watch_revocations_response::Message;
use auth_proto::v1::{
    InvalidReason, LogoutRequest, Revocation, RevocationKind, RevocationSnapshot,
    RotateSigningKeyRequest, SetUserRolesRequest, WatchRevocationsResponse,
};
use tonic::Code;

both_backends!(
    validate_sees_revocations_made_here_at_once,
    watch_streams_a_snapshot_then_live_revocations_and_resumes,
    a_pruned_or_unknown_sequence_gets_a_fresh_snapshot,
    idle_streams_get_heartbeats,
    watching_needs_the_role,
    a_service_account_with_the_role_watches,
    the_watcher_limit_holds_and_is_freed_on_cancel,
    a_forced_rotation_revokes_the_old_keys_tokens,
    a_stream_ends_when_its_own_token_is_revoked,
    streams_end_at_shutdown_without_holding_it,
);

/// The role `WatchRevocations` requires.
const WATCH_ROLE: &str = "revocations:watch";

/// The `sid` of an access token.
fn sid_of(token: &str) -> String {
    claims_of(token)["sid"].as_str().expect("sid").to_owned()
}

async fn logout(s: &TestServer, refresh_token: &str) {
    bounded(
        "logout",
        s.auth_client().logout(LogoutRequest {
            refresh_token: refresh_token.to_owned(),
        }),
    )
    .await
    .expect("logout");
}

/// A user holding the watch role, and its access token.
async fn watcher_token(s: &TestServer) -> String {
    let admin = s.admin_token().await;
    s.create_user(&admin, "watcher", "watcher-password-1", &[WATCH_ROLE])
        .await;
    s.login("watcher", "watcher-password-1").await.access_token
}

/// The next message of `stream` (within the step bound).
async fn next(stream: &mut tonic::Streaming<WatchRevocationsResponse>) -> Message {
    bounded("stream message", stream.message())
        .await
        .expect("stream ok")
        .expect("stream open")
        .message
        .expect("message set")
}

fn snapshot(m: Message) -> RevocationSnapshot {
    match m {
        Message::Snapshot(s) => s,
        other => panic!("expected a snapshot, got {other:?}"),
    }
}

fn revocation(m: Message) -> Revocation {
    match m {
        Message::Revocation(r) => r,
        other => panic!("expected a revocation, got {other:?}"),
    }
}

async fn validate_sees_revocations_made_here_at_once(backend: Backend) {
    let s = TestServer::start(backend).await;
    let admin = s.admin_token().await;
    let rita = s
        .create_user(&admin, "rita", "rita-password-1", &["ops"])
        .await;
    // Logout: the very next Validate (no wait) says REVOKED.
    let l = s.login("rita", "rita-password-1").await;
    assert!(s.validate(&l.access_token).await.valid);
    logout(&s, &l.refresh_token).await;
    assert_invalid(
        &s.validate(&l.access_token).await,
        Some(InvalidReason::Revoked),
        "after logout",
    );
    // A role change ends the tokens issued before it.
    let l = s.login("rita", "rita-password-1").await;
    s.clock.advance(1);
    bounded(
        "set roles",
        s.admin_client_with(&admin)
            .set_user_roles(SetUserRolesRequest {
                user_id: rita.id.clone(),
                roles: vec!["viewer".into()],
            }),
    )
    .await
    .expect("set roles");
    assert_invalid(
        &s.validate(&l.access_token).await,
        Some(InvalidReason::Revoked),
        "after the role change",
    );
    // Tokens issued after it are valid; a disable ends them.
    let l = s.login("rita", "rita-password-1").await;
    let v = s.validate(&l.access_token).await;
    assert!(v.valid, "{v:?}");
    assert_eq!(v.claims.expect("claims").roles, vec!["viewer".to_owned()]);
    s.disable_user(&rita.id).await;
    assert_invalid(
        &s.validate(&l.access_token).await,
        Some(InvalidReason::Revoked),
        "after disable",
    );
    s.shutdown().await;
}

async fn watch_streams_a_snapshot_then_live_revocations_and_resumes(backend: Backend) {
    let s = TestServer::start(backend).await;
    let token = watcher_token(&s).await;
    let admin = s.admin_token().await;
    s.create_user(&admin, "una", "una-password-1", &[]).await;
    let [a, b, c] = [
        s.login("una", "una-password-1").await,
        s.login("una", "una-password-1").await,
        s.login("una", "una-password-1").await,
    ];
    logout(&s, &a.refresh_token).await;

    // A first start: one snapshot part holding the revocation made before.
    let mut stream = s.watch_revocations(&token, 0).await.expect("watch");
    let snap = snapshot(next(&mut stream).await);
    assert!(snap.first && snap.last, "{snap:?}");
    let known: Vec<_> = snap
        .revocations
        .iter()
        .map(|r| (r.kind(), r.target.as_str()))
        .collect();
    assert_eq!(
        known,
        [(RevocationKind::Session, sid_of(&a.access_token).as_str())]
    );
    let r = &snap.revocations[0];
    assert_eq!(r.sequence, snap.sequence);
    let exp = claims_of(&a.access_token)["exp"].as_i64().expect("exp");
    assert!(
        r.expire_time.expect("expiry").seconds >= exp,
        "kept at least as long as the token lives"
    );

    // Live: the next logout arrives on the open stream.
    logout(&s, &b.refresh_token).await;
    let live = revocation(next(&mut stream).await);
    assert_eq!(
        (live.kind(), live.target.as_str()),
        (RevocationKind::Session, sid_of(&b.access_token).as_str())
    );
    assert!(live.sequence > snap.sequence);
    let scrape = s.scrape().await;
    assert_eq!(
        scrape.get("auth_revocation_log_head", &[]),
        Some(live.sequence as f64)
    );
    assert_eq!(scrape.get("auth_revocation_view_entries", &[]), Some(2.0));
    drop(stream);

    // What happens while disconnected is replayed on resuming, with no snapshot.
    logout(&s, &c.refresh_token).await;
    let mut stream = s
        .watch_revocations(&token, live.sequence)
        .await
        .expect("resume");
    let missed = revocation(next(&mut stream).await);
    assert_eq!(missed.target, sid_of(&c.access_token));
    assert!(missed.sequence > live.sequence);
    // A subject revocation carries its not-before.
    let una = claims_of(&a.access_token)["sub"]
        .as_str()
        .expect("sub")
        .to_owned();
    s.disable_user(&una).await;
    let subject = revocation(next(&mut stream).await);
    assert_eq!(
        (subject.kind(), subject.target.as_str()),
        (RevocationKind::Subject, una.as_str())
    );
    assert_eq!(
        subject.not_before.expect("not before").seconds,
        s.clock.now()
    );
    s.shutdown().await;
}

async fn a_pruned_or_unknown_sequence_gets_a_fresh_snapshot(backend: Backend) {
    let s = TestServer::start(backend).await;
    let token = watcher_token(&s).await;
    let one = s.login(ADMIN_USER, ADMIN_PASSWORD).await;
    let two = s.login(ADMIN_USER, ADMIN_PASSWORD).await;
    logout(&s, &one.refresh_token).await;
    logout(&s, &two.refresh_token).await;
    let mut stream = s.watch_revocations(&token, 0).await.expect("watch");
    let head = snapshot(next(&mut stream).await).sequence;
    drop(stream);

    // A sequence beyond the log's head (e.g. a database restored from a backup): a snapshot.
    let mut stream = s
        .watch_revocations(&token, head + 1000)
        .await
        .expect("watch");
    let snap = snapshot(next(&mut stream).await);
    assert!(snap.first && snap.last);
    assert_eq!((snap.sequence, snap.revocations.len()), (head, 2));
    drop(stream);

    // Housekeeping pruned through the head: resuming from before it gets a snapshot too.
    s.exec(
        "UPDATE revocation_horizon SET pruned_through = CAST($1 AS BIGINT)",
        &head.to_string(),
    )
    .await;
    let mut stream = s.watch_revocations(&token, head - 1).await.expect("watch");
    let snap = snapshot(next(&mut stream).await);
    assert!(snap.first, "a pruned sequence starts over");
    assert_eq!(snap.revocations.len(), 2);
    // At the horizon itself nothing was lost: no snapshot, live from there.
    let mut stream = s.watch_revocations(&token, head).await.expect("watch");
    let three = s.login(ADMIN_USER, ADMIN_PASSWORD).await;
    logout(&s, &three.refresh_token).await;
    let live = revocation(next(&mut stream).await);
    assert_eq!(live.target, sid_of(&three.access_token));
    s.shutdown().await;
}

async fn idle_streams_get_heartbeats(backend: Backend) {
    let s = TestServer::start_with(
        backend,
        Options::with_args(&["--revocation-heartbeat-interval", "1"]),
    )
    .await;
    let token = watcher_token(&s).await;
    let mut stream = s.watch_revocations(&token, 0).await.expect("watch");
    let snap = snapshot(next(&mut stream).await);
    let started = Instant::now();
    match next(&mut stream).await {
        Message::Heartbeat(h) => {
            assert_eq!(h.sequence, snap.sequence);
            assert_eq!(h.time.expect("time").seconds, s.clock.now());
        }
        other => panic!("expected a heartbeat, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    s.shutdown().await;
}

async fn watching_needs_the_role(backend: Backend) {
    let s = TestServer::start(backend).await;
    let admin = s.admin_token().await;
    let refused = s
        .watch_revocations(&admin, 0)
        .await
        .expect_err("admin has no watch role");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let refused = bounded(
        "watch",
        s.auth_client()
            .watch_revocations(auth_proto::v1::WatchRevocationsRequest { after_sequence: 0 }),
    )
    .await
    .expect_err("no token");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    // A watcher whose account is disabled is refused from then on (current state, not the token).
    let token = watcher_token(&s).await;
    s.watch_revocations(&token, 0).await.expect("allowed");
    let id = claims_of(&token)["sub"].as_str().expect("sub").to_owned();
    s.disable_user(&id).await;
    let refused = s
        .watch_revocations(&token, 0)
        .await
        .expect_err("disabled watcher");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let refused = s.watch_revocations(&admin, -1).await.expect_err("negative");
    assert!(
        matches!(
            refused.code(),
            Code::PermissionDenied | Code::InvalidArgument
        ),
        "{refused:?}"
    );
    s.shutdown().await;
}

/// The intended watcher is a service account: with the role and the server's own audience it gets
/// the snapshot and the live revocations; disabled, it is refused at once.
async fn a_service_account_with_the_role_watches(backend: Backend) {
    let s = TestServer::start(backend).await;
    let admin = s.admin_token().await;
    let (account, secret) = s
        .create_service_account(&admin, "orders-watcher", &[WATCH_ROLE], &["internal"])
        .await;
    let token = s.service_token("orders-watcher", &secret, "internal").await;
    let mut stream = s.watch_revocations(&token, 0).await.expect("allowed");
    let first = snapshot(next(&mut stream).await);
    assert!(first.first, "{first:?}");
    let mut last = first.last;
    while !last {
        last = snapshot(next(&mut stream).await).last;
    }
    let login = s.login(ADMIN_USER, ADMIN_PASSWORD).await;
    logout(&s, &login.refresh_token).await;
    let r = revocation(next(&mut stream).await);
    assert_eq!(r.target, sid_of(&login.access_token));
    // A service token for another audience is not this server's to accept.
    let (_, other_secret) = s
        .create_service_account(&admin, "other-watcher", &[WATCH_ROLE], &["orders"])
        .await;
    let other = s
        .service_token("other-watcher", &other_secret, "orders")
        .await;
    let refused = s
        .watch_revocations(&other, 0)
        .await
        .expect_err("wrong audience");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    s.clock.advance(1);
    s.disable_service_account(&admin, &account.id).await;
    let refused = s
        .watch_revocations(&token, 0)
        .await
        .expect_err("disabled account");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    s.shutdown().await;
}

async fn the_watcher_limit_holds_and_is_freed_on_cancel(backend: Backend) {
    let s = TestServer::start_with(
        backend,
        Options::with_args(&["--max-revocation-watchers", "2"]),
    )
    .await;
    let token = watcher_token(&s).await;
    let mut first = s.watch_revocations(&token, 0).await.expect("first");
    let mut second = s.watch_revocations(&token, 0).await.expect("second");
    snapshot(next(&mut first).await);
    snapshot(next(&mut second).await);
    let refused = s
        .watch_revocations(&token, 0)
        .await
        .expect_err("beyond the limit");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(!refused.message().contains(&token));
    let scrape = s.scrape().await;
    assert_eq!(scrape.get("auth_revocation_watchers", &[]), Some(2.0));
    assert_eq!(
        scrape.get("auth_revocation_follower_lag_seconds", &[]),
        Some(0.0)
    );
    // Cancelling one stream frees its place.
    drop(first);
    let mut third = poll_until("a freed watcher place", Duration::from_secs(5), || async {
        s.watch_revocations(&token, 0).await.ok()
    })
    .await;
    snapshot(next(&mut third).await);
    let refused = s
        .watch_revocations(&token, 0)
        .await
        .expect_err("full again");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    drop(second);
    s.shutdown().await;
}

async fn a_forced_rotation_revokes_the_old_keys_tokens(backend: Backend) {
    let s = TestServer::start(backend).await;
    let token = watcher_token(&s).await;
    let old = s.admin_token().await;
    let old_kid = header_of(&old)["kid"].as_str().expect("kid").to_owned();
    let mut stream = s.watch_revocations(&token, 0).await.expect("watch");
    let snap = snapshot(next(&mut stream).await);
    assert!(snap.revocations.is_empty(), "{snap:?}");
    // A forced rotation (the key may be compromised): its tokens are revoked for every verifier.
    bounded(
        "forced rotation",
        s.admin_client_with(&old)
            .rotate_signing_key(RotateSigningKeyRequest { force: true }),
    )
    .await
    .expect("rotate");
    let key = revocation(next(&mut stream).await);
    assert_eq!(
        (key.kind(), key.target.as_str()),
        (RevocationKind::Key, old_kid.as_str())
    );
    assert!(
        key.sequence > snap.sequence + 1,
        "the keys-changed row is not streamed"
    );
    // ... and no longer published, so nothing here verifies them either.
    assert!(!jwks_kids(&s.jwks().await).contains(&old_kid));
    let v = s.validate(&old).await;
    assert!(!v.valid, "{v:?}");
    let fresh = s.admin_token().await;
    assert!(s.validate(&fresh).await.valid);
    s.shutdown().await;
}

async fn a_stream_ends_when_its_own_token_is_revoked(backend: Backend) {
    let s = TestServer::start(backend).await;
    watcher_token(&s).await;
    let own = s.login("watcher", "watcher-password-1").await;
    let mut stream = s
        .watch_revocations(&own.access_token, 0)
        .await
        .expect("watch");
    snapshot(next(&mut stream).await);
    logout(&s, &own.refresh_token).await;
    // The revocation of its own session is delivered, then the stream ends, naming where to resume.
    let last = revocation(next(&mut stream).await);
    assert_eq!(last.target, sid_of(&own.access_token));
    let ended = bounded("end of stream", stream.message())
        .await
        .expect_err("ended");
    assert_eq!(ended.code(), Code::Unauthenticated, "{ended:?}");
    assert!(
        ended
            .message()
            .contains(&format!("resume from sequence {}", last.sequence)),
        "{ended:?}"
    );
    assert_no_leak(&ended, &[&own.access_token]);
    s.shutdown().await;
}

async fn streams_end_at_shutdown_without_holding_it(backend: Backend) {
    let s = TestServer::start_with(backend, Options::with_args(&["--shutdown-grace", "20"])).await;
    let token = watcher_token(&s).await;
    let mut stream = s.watch_revocations(&token, 0).await.expect("watch");
    let head = snapshot(next(&mut stream).await).sequence;
    let started = Instant::now();
    let shutdown = tokio::spawn(s.shutdown());
    let ended = bounded("end of stream", stream.message())
        .await
        .expect_err("ended");
    assert_eq!(ended.code(), Code::Unavailable, "{ended:?}");
    assert!(
        ended
            .message()
            .contains(&format!("resume from sequence {head}")),
        "{ended:?}"
    );
    bounded("shutdown", shutdown).await.expect("shutdown");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "an open stream held the shutdown for {:?}",
        started.elapsed()
    );
}

/// A watcher that stops reading is not kept: flooded with more revocations than HTTP/2 flow
/// control, its 64-message buffer and the fan-out's 4,096 rows can hold, its stream is ended (it
/// fell behind the fan-out; the 30 s send timeout is the backstop) and its place freed — the bound
/// on what a stalled or hostile watcher holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_stops_reading_is_dropped() {
    run_bounded(stalled_watcher()).await
}

async fn stalled_watcher() {
    let s = TestServer::start_with(
        Backend::Postgres,
        Options::with_args(&["--max-revocation-watchers", "1"]),
    )
    .await;
    let token = watcher_token(&s).await;
    let mut stalled = s.watch_revocations(&token, 0).await.expect("watch");
    snapshot(next(&mut stalled).await);
    // 200,000 revocations at once (written behind the API's back, then a wake-up): ≈ 9 MB of
    // stream messages, beyond what the client's HTTP/2 window (2 MiB by default) lets the server
    // send unread plus its send buffer (400 KiB), the stream's 64 messages and the fan-out's 4,096
    // rows. Nothing is read from `stalled` from here on.
    s.exec(
        "INSERT INTO revocations (kind, target, not_before, expires_at, created_at) \
         SELECT 'session', $1 || g, NULL, 4102444800, 0 FROM generate_series(1, 200000) g",
        "flood-",
    )
    .await;
    s.exec("SELECT pg_notify('auth_revocations', $1)", "").await;
    let started = Instant::now();
    poll_until(
        "the stalled watcher's place freed",
        Duration::from_secs(45),
        || async {
            let watchers = s.scrape().await.get("auth_revocation_watchers", &[]);
            (watchers == Some(0.0)).then_some(())
        },
    )
    .await;
    let took = started.elapsed();
    eprintln!("stalled watcher dropped after {took:?}");
    assert!(took < Duration::from_secs(40), "took {took:?}");

    // Its place serves the next watcher.
    let mut next_watcher = s.watch_revocations(&token, 0).await.expect("a free place");
    assert!(snapshot(next(&mut next_watcher).await).first);
    drop(stalled);
    s.shutdown().await;
}

/// Two replicas on one PostgreSQL: a logout through B is REVOKED on A within a second; a key
/// rotated on A is published and verified by B at once; failed logins on A count on B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_one_database_stay_in_step() {
    run_bounded(replicas()).await
}

async fn replicas() {
    let a = TestServer::start(Backend::Postgres).await;
    let b = a.start_replica(Options::default()).await;
    let admin = a.admin_token().await;
    a.create_user(&admin, "vera", "vera-password-1", &[]).await;

    // Logout through B → REVOKED on A, measured.
    let l = b.login("vera", "vera-password-1").await;
    assert!(a.validate(&l.access_token).await.valid);
    logout(&b, &l.refresh_token).await;
    let started = Instant::now();
    poll_until_revoked(&a, &l.access_token).await;
    let took = started.elapsed();
    eprintln!("revocation through B seen by Validate on A after {took:?}");
    assert!(took < Duration::from_secs(1), "took {took:?}");

    // A rotation on A: B publishes and verifies the new key without waiting for its reload poll.
    a.clock.advance(3601);
    let admin = a.admin_token().await;
    let rotated = bounded(
        "rotate",
        a.admin_client_with(&admin)
            .rotate_signing_key(RotateSigningKeyRequest { force: false }),
    )
    .await
    .expect("rotate")
    .into_inner();
    let started = Instant::now();
    poll_until(
        "B publishes the new next key",
        Duration::from_secs(1),
        || async {
            jwks_kids(&b.jwks().await)
                .contains(&rotated.next_kid)
                .then_some(())
        },
    )
    .await;
    eprintln!("rotation on A published by B after {:?}", started.elapsed());
    let fresh = a.login("vera", "vera-password-1").await;
    assert_eq!(
        header_of(&fresh.access_token)["kid"].as_str(),
        Some(rotated.current_kid.as_str())
    );
    assert!(b.validate(&fresh.access_token).await.valid);

    // Failed logins on A lock the account on B.
    let mut locked = false;
    for _ in 0..50 {
        match a.try_login("vera", "wrong-password-9").await {
            Err(st) if st.code() == Code::ResourceExhausted => {
                locked = true;
                break;
            }
            Err(st) => assert_eq!(st.code(), Code::Unauthenticated, "{st:?}"),
            Ok(_) => panic!("a wrong password was accepted"),
        }
    }
    assert!(locked, "A never throttled");
    let refused = b
        .try_login("vera", "vera-password-1")
        .await
        .expect_err("throttled on B too");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    b.shutdown().await;
    a.shutdown().await;
}

async fn poll_until_revoked(s: &TestServer, token: &str) {
    poll_until("REVOKED", Duration::from_secs(5), || async {
        let v = s.validate(token).await;
        (!v.valid && v.reason() == InvalidReason::Revoked).then_some(())
    })
    .await;
}
