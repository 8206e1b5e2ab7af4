//! The revocation watcher against the small auth service's `WatchRevocations` (snapshot in parts,
//! live revocations, heartbeats, outages on demand): the greeter behind the layer refuses what the
//! stream revokes, resumes without loss, fails over in order, and its fail-closed rules refuse
//! once the stream has been stale past their bound while the others keep accepting.
//!
//! Staleness is measured on Tokio's clock, so the tests [`skip`] past a bound instead of sleeping;
//! what is left of waiting is the watcher's own reconnection, polled with `wait_until`.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use auth_interceptor::client::StaticToken;
use auth_interceptor::testing::{TestKey, claims_at};
use auth_interceptor::{
    Policy, PolicyError, RevocationWatcher, RevocationWatcherConfig, Rule, SharedKeys,
    WatcherStatus, WhenStale,
};
use auth_proto::demo::greeter_service_client::GreeterServiceClient;
use auth_proto::demo::*;
use auth_proto::v1::RevocationKind;
use serde_json::json;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

const WAIT: Duration = Duration::from_secs(5);
/// The bound of the fail-closed rule (AdminHello).
const BOUND: Duration = Duration::from_secs(30);

fn config() -> RevocationWatcherConfig {
    let mut c = RevocationWatcherConfig::default();
    c.initial_backoff = Duration::from_millis(20);
    c.max_backoff = Duration::from_millis(200);
    c.connect_timeout = Duration::from_secs(1);
    c
}

/// WhoAmI accepts while the watcher is stale (the default); AdminHello fails closed after [`BOUND`].
fn policy() -> Policy {
    Policy::builder()
        .required("demo.v1.GreeterService/WhoAmI")
        .rule(
            "demo.v1.GreeterService/AdminHello",
            Rule::required().fail_closed_after(BOUND),
        )
        .build()
        .unwrap()
}

fn endpoint(addr: SocketAddr) -> Endpoint {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_millis(500))
}

struct Setup {
    state: Arc<AuthState>,
    key: Arc<TestKey>,
    watcher: RevocationWatcher,
    greeter: GreeterServiceClient<Channel>,
}

impl Setup {
    /// A token of `sub` in session `sid`, issued now (as the signer's key).
    fn token(&self, sub: &str, sid: &str) -> String {
        let mut c = claims_at(sub, &[], unix_now(), 600);
        c["sid"] = json!(sid);
        self.key.sign(&c)
    }

    /// The codes WhoAmI and AdminHello answer `token` with.
    async fn codes(&self, token: &str) -> (Code, Code) {
        let mut g = self.greeter.clone();
        let who = g.who_am_i(bearer(WhoAmIRequest {}, token)).await;
        let admin = g.admin_hello(bearer(AdminHelloRequest {}, token)).await;
        let code = |r: Result<_, tonic::Status>| r.map_or_else(|s| s.code(), |_| Code::Ok);
        (code(who.map(drop)), code(admin.map(drop)))
    }

    async fn wait(&self, what: &str, done: impl FnMut(&WatcherStatus) -> bool) -> WatcherStatus {
        match self.watcher.wait_until(WAIT, done).await {
            Ok(s) => s,
            Err(s) => panic!("{what}: not within {WAIT:?}: {s:?}"),
        }
    }
}

/// The auth service `state` on `extra` endpoints first (each tried before it), a watcher on them,
/// and the greeter behind the layer with [`policy`].
async fn setup_with(
    state: Arc<AuthState>,
    endpoints: Vec<Endpoint>,
    config: RevocationWatcherConfig,
) -> Setup {
    let key = state.signer.lock().unwrap().clone();
    let watcher =
        RevocationWatcher::start(endpoints, StaticToken::new("watch-token"), config).unwrap();
    let layer = authorizer(SharedKeys::new(key.key_set()))
        .with_revocation_watcher(watcher.clone())
        .layer(policy())
        .unwrap();
    let greeter = greeter_client(serve_greeter(layer).await).await;
    Setup {
        state,
        key,
        watcher,
        greeter,
    }
}

async fn setup() -> Setup {
    let state = AuthState::new(TestKey::ed25519("k1"));
    let addr = serve_auth(state.clone()).await;
    let s = setup_with(state, vec![endpoint(addr)], config()).await;
    s.watcher.wait_current(WAIT).await.unwrap();
    s
}

#[tokio::test]
async fn snapshot_and_live_revocations_refuse_sessions_subjects_and_keys() {
    let state = AuthState::new(TestKey::ed25519("k1"));
    state
        .revlog
        .append(revocation(RevocationKind::Session, "old-session"));
    let addr = serve_auth(state.clone()).await;
    let s = setup_with(state, vec![endpoint(addr)], config()).await;
    let status = s.wait("first snapshot", |s| s.connected).await;
    assert_eq!(
        (status.last_sequence, status.entries, status.snapshots),
        (1, 1, 1)
    );

    // From the snapshot: the revoked session's token is refused as an invalid token.
    let refused = s
        .greeter
        .clone()
        .who_am_i(bearer(WhoAmIRequest {}, &s.token("u1", "old-session")))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert_eq!(refused.message(), "invalid token");
    assert_eq!(
        refused.metadata().get("www-authenticate").unwrap(),
        "Bearer error=\"invalid_token\""
    );

    // Live: a session, then a subject (tokens issued before its not-before), then the signing key.
    let session = s.token("u1", "s1");
    let other = s.token("u2", "s2");
    assert_eq!(s.codes(&session).await, (Code::Ok, Code::Ok));
    s.state
        .revlog
        .append(revocation(RevocationKind::Session, "s1"));
    s.wait("session revocation", |s| s.last_sequence == 2).await;
    assert_eq!(
        s.codes(&session).await,
        (Code::Unauthenticated, Code::Unauthenticated)
    );
    assert_eq!(s.codes(&other).await, (Code::Ok, Code::Ok));

    s.state
        .revlog
        .append(revocation(RevocationKind::Subject, "u2"));
    s.wait("subject revocation", |s| s.last_sequence == 3).await;
    assert_eq!(s.codes(&other).await.0, Code::Unauthenticated);
    let u3 = s.token("u3", "s3");
    assert_eq!(s.codes(&u3).await, (Code::Ok, Code::Ok));

    s.state
        .revlog
        .append(revocation(RevocationKind::Key, &s.key.kid));
    let status = s.wait("key revocation", |s| s.last_sequence == 4).await;
    assert_eq!(s.codes(&u3).await.0, Code::Unauthenticated);
    assert_eq!((status.events_applied, status.entries), (3, 4));
    assert!(status.connected);
    assert_eq!(status.lag, Duration::ZERO);
}

#[tokio::test]
async fn a_fresh_snapshot_in_parts_replaces_what_was_known() {
    let s = setup().await;
    s.state
        .revlog
        .append(revocation(RevocationKind::Session, "s1"));
    s.wait("live", |s| s.last_sequence == 1).await;
    let t1 = s.token("u1", "s1");
    assert_eq!(s.codes(&t1).await.0, Code::Unauthenticated);

    // The server forgets s1 (say its expiry was moved) and prunes past the watcher's sequence:
    // the resumed stream gets a fresh snapshot, in parts of two, without it.
    s.state.revlog.set_down(true);
    s.wait("down", |s| !s.connected).await;
    {
        let mut entries = s.state.revlog.entries.lock().unwrap();
        entries.clear();
        for (i, sid) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
            let mut r = revocation(RevocationKind::Session, sid);
            r.sequence = 10 + i as i64;
            entries.push(r);
        }
    }
    s.state
        .revlog
        .horizon
        .store(9, std::sync::atomic::Ordering::SeqCst);
    s.state
        .revlog
        .part_size
        .store(2, std::sync::atomic::Ordering::SeqCst);
    s.state.revlog.set_down(false);
    let status = s.wait("fresh snapshot", |s| s.snapshots == 2).await;
    assert_eq!((status.last_sequence, status.entries), (14, 5));
    assert!(status.connected);
    assert_eq!(s.codes(&t1).await.0, Code::Ok, "s1 is no longer revoked");
    for sid in ["a", "c", "e"] {
        assert_eq!(
            s.codes(&s.token("u", sid)).await.0,
            Code::Unauthenticated,
            "{sid}"
        );
    }
    let requests = s.state.revlog.requests();
    assert_eq!(requests.first(), Some(&0));
    assert!(
        requests[1..].iter().all(|&r| r == 1),
        "resumed from 1: {requests:?}"
    );
}

#[tokio::test]
async fn it_resumes_from_its_last_sequence_and_misses_nothing_issued_during_an_outage() {
    let s = setup().await;
    s.state
        .revlog
        .append(revocation(RevocationKind::Session, "before"));
    s.wait("live", |s| s.last_sequence == 1).await;
    s.state.revlog.set_down(true);
    s.wait("down", |s| !s.connected).await;
    for sid in ["d1", "d2", "d3"] {
        s.state
            .revlog
            .append(revocation(RevocationKind::Session, sid));
    }
    s.state.revlog.set_down(false);
    let status = s.wait("caught up", |s| s.last_sequence == 4).await;
    assert!(status.connected);
    assert_eq!((status.events_applied, status.snapshots), (4, 1));
    assert!(status.reconnects >= 1);
    for sid in ["before", "d1", "d2", "d3"] {
        assert_eq!(
            s.codes(&s.token("u", sid)).await.0,
            Code::Unauthenticated,
            "{sid}"
        );
    }
    // One snapshot at start, then only resumptions from the last sequence.
    let requests = s.state.revlog.requests();
    assert_eq!(requests.first(), Some(&0));
    assert_eq!(requests.last(), Some(&1), "{requests:?}");
    // A heartbeat says everything up to its sequence was sent (the server skips rows it need not
    // send, e.g. expired ones): the watcher resumes after it.
    s.state.revlog.heartbeat_at(9);
    let status = s.wait("heartbeat", |s| s.server_sequence == 9).await;
    assert_eq!(status.last_sequence, 9);
    s.state.revlog.set_down(true);
    s.wait("down again", |s| !s.connected).await;
    s.state.revlog.set_down(false);
    s.wait("back", |s| s.connected).await;
    assert_eq!(s.state.revlog.requests().last(), Some(&9));
}

#[tokio::test]
async fn it_fails_over_in_order_to_the_next_endpoint() {
    let key = TestKey::ed25519("k1");
    let a = AuthState::new(key);
    // Two replicas of one log: B serves the same entries as A.
    let b = AuthState::new(TestKey::ed25519("unused"));
    let (addr_a, addr_b) = (serve_auth(a.clone()).await, serve_auth(b.clone()).await);
    let dead = dead_addr().await;
    let endpoints = vec![endpoint(dead), endpoint(addr_a), endpoint(addr_b)];
    let s = setup_with(a.clone(), endpoints, config()).await;
    let status = s.wait("on A", |s| s.connected).await;
    assert_eq!(
        status.endpoint.as_deref(),
        Some(format!("http://{addr_a}/").as_str())
    );
    assert!(status.reconnects >= 1, "the dead endpoint was tried first");

    a.revlog.append(revocation(RevocationKind::Session, "s1"));
    b.revlog.append(revocation(RevocationKind::Session, "s1"));
    s.wait("s1", |s| s.last_sequence == 1).await;
    // A goes down; meanwhile B (sharing the database) learns of s2.
    a.revlog.set_down(true);
    b.revlog.append(revocation(RevocationKind::Session, "s2"));
    let status = s
        .wait("on B", |s| s.connected && s.last_sequence == 2)
        .await;
    assert_eq!(
        status.endpoint.as_deref(),
        Some(format!("http://{addr_b}/").as_str())
    );
    assert_eq!(b.revlog.requests(), [1], "B was asked to resume from 1");
    assert_eq!(s.codes(&s.token("u", "s2")).await.0, Code::Unauthenticated);
}

#[tokio::test]
async fn fail_closed_rules_refuse_once_stale_past_their_bound_and_the_others_accept() {
    let s = setup().await;
    let token = s.token("u", "s");
    assert_eq!(s.codes(&token).await, (Code::Ok, Code::Ok));
    s.state.revlog.set_down(true);
    let status = s.wait("down", |s| !s.connected).await;
    assert!(status.lag < BOUND);
    // Within the bound both accept.
    skip(BOUND - Duration::from_secs(1)).await;
    assert_eq!(s.codes(&token).await, (Code::Ok, Code::Ok));
    // Past it, the fail-closed rule answers UNAVAILABLE (retryable, fixed message); the default
    // rule keeps accepting the verified token.
    skip(Duration::from_secs(2)).await;
    let status = s.watcher.status();
    assert!(status.lag > BOUND, "{status:?}");
    assert_eq!(s.codes(&token).await, (Code::Ok, Code::Unavailable));
    let refused = s
        .greeter
        .clone()
        .admin_hello(bearer(AdminHelloRequest {}, &token))
        .await
        .unwrap_err();
    assert_eq!(refused.message(), "authentication unavailable");
    // Back: current again, both accept.
    s.state.revlog.set_down(false);
    s.wait("back", |s| s.connected).await;
    assert_eq!(s.codes(&token).await, (Code::Ok, Code::Ok));
}

#[tokio::test]
async fn before_its_first_snapshot_the_watcher_is_stale_since_start() {
    let state = AuthState::new(TestKey::ed25519("k1"));
    state.revlog.set_down(true);
    let addr = serve_auth(state.clone()).await;
    let s = setup_with(state, vec![endpoint(addr)], config()).await;
    let token = s.token("u", "s");
    assert_eq!(s.codes(&token).await, (Code::Ok, Code::Ok));
    skip(BOUND + Duration::from_secs(1)).await;
    assert_eq!(s.codes(&token).await, (Code::Ok, Code::Unavailable));
    let err = s
        .watcher
        .wait_current(Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(!err.0.connected && err.0.reconnects >= 1, "{err}");
    assert_eq!(err.0.since_last_contact, None);
}

#[tokio::test]
async fn an_overflowing_snapshot_keeps_the_watcher_stale_until_one_fits() {
    let state = AuthState::new(TestKey::ed25519("k1"));
    for sid in ["a", "b", "c"] {
        state
            .revlog
            .append(revocation(RevocationKind::Session, sid));
    }
    let addr = serve_auth(state.clone()).await;
    let mut c = config();
    c.capacity = 2;
    let s = setup_with(state, vec![endpoint(addr)], c).await;
    let status = s.wait("overflow", |s| s.overflowed).await;
    assert!(!status.connected);
    assert_eq!(
        status.entries, 0,
        "a snapshot that does not fit replaces nothing"
    );
    skip(BOUND + Duration::from_secs(1)).await;
    assert_eq!(
        s.codes(&s.token("u", "s")).await,
        (Code::Ok, Code::Unavailable)
    );
    // The server's log shrinks (entries expired): the next fresh snapshot fits.
    s.state.revlog.entries.lock().unwrap().remove(0);
    let status = s.wait("fits", |s| s.connected).await;
    assert!(!status.overflowed);
    assert_eq!(status.entries, 2);
    // Every retry asked for a full snapshot, none resumed a list it knew to be incomplete.
    assert!(s.state.revlog.requests().iter().all(|&r| r == 0));
}

#[tokio::test]
async fn expired_entries_are_pruned_on_the_injected_clock() {
    let state = AuthState::new(TestKey::ed25519("k1"));
    let addr = serve_auth(state.clone()).await;
    let mut c = config();
    c.clock = Arc::new(auth_interceptor::TokioClock::new());
    c.prune_interval = Duration::from_secs(1);
    c.expiry_grace = Duration::from_secs(30);
    let s = setup_with(state, vec![endpoint(addr)], c).await;
    s.wait("current", |s| s.connected).await;
    let mut r = revocation(RevocationKind::Session, "short");
    r.expire_time = Some(prost_types::Timestamp {
        seconds: unix_now() as i64 + 10,
        nanos: 0,
    });
    s.state.revlog.append(r);
    s.state
        .revlog
        .append(revocation(RevocationKind::Session, "long"));
    s.wait("applied", |s| s.entries == 2).await;
    skip(Duration::from_secs(11)).await;
    assert_eq!(s.watcher.status().entries, 2, "kept through the grace");
    skip(Duration::from_secs(30)).await;
    let status = s.wait("pruned", |s| s.entries == 1).await;
    assert_eq!(status.last_sequence, 2);
    assert_eq!(
        s.codes(&s.token("u", "long")).await.0,
        Code::Unauthenticated
    );
}

/// A [`StaticToken`] counting how often it was asked for, and invalidated.
#[derive(Default)]
struct CountingToken {
    asked: std::sync::atomic::AtomicU64,
    invalidated: std::sync::atomic::AtomicU64,
}

impl auth_interceptor::client::TokenSource for CountingToken {
    fn token(&self) -> futures_util::future::BoxFuture<'_, Result<Arc<str>, tonic::Status>> {
        self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async { Ok(Arc::from("watch-token")) })
    }
    fn invalidate(&self) {
        self.invalidated
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_stream_ended_as_unauthenticated_gets_a_fresh_token_and_resumes_at_once() {
    use std::sync::atomic::Ordering::SeqCst;
    let state = AuthState::new(TestKey::ed25519("k1"));
    let addr = serve_auth(state.clone()).await;
    let tokens = Arc::new(CountingToken::default());
    let mut c = config();
    // A long backoff: only an immediate reconnection passes this test.
    c.initial_backoff = Duration::from_secs(60);
    c.max_backoff = Duration::from_secs(60);
    let watcher = RevocationWatcher::start([endpoint(addr)], tokens.clone(), c).unwrap();
    watcher.wait_current(WAIT).await.unwrap();
    state
        .revlog
        .append(revocation(RevocationKind::Session, "s1"));
    watcher
        .wait_until(WAIT, |s| s.last_sequence == 1)
        .await
        .unwrap();
    state.revlog.expire_open_streams();
    state
        .revlog
        .append(revocation(RevocationKind::Session, "s2"));
    let status = watcher
        .wait_until(WAIT, |s| {
            s.connected && s.last_sequence == 2 && s.reconnects == 1
        })
        .await
        .unwrap();
    assert_eq!(status.events_applied, 2);
    assert_eq!(tokens.invalidated.load(SeqCst), 1);
    assert_eq!(tokens.asked.load(SeqCst), 2);
    assert_eq!(state.revlog.requests(), [0, 1]);
}

#[tokio::test]
async fn the_interceptor_consults_the_watcher_too() {
    let s = setup().await;
    let interceptor = authorizer(SharedKeys::new(s.key.key_set()))
        .with_revocation_watcher(s.watcher.clone())
        .interceptor(Rule::required().fail_closed_after(BOUND))
        .unwrap();
    let addr = serve_routes(tonic::service::Routes::new(
        auth_proto::demo::greeter_service_server::GreeterServiceServer::with_interceptor(
            Greeter,
            interceptor,
        ),
    ))
    .await;
    let mut client = greeter_client(addr).await;
    let token = s.token("u", "s1");
    client
        .who_am_i(bearer(WhoAmIRequest {}, &token))
        .await
        .unwrap();
    s.state
        .revlog
        .append(revocation(RevocationKind::Session, "s1"));
    s.wait("revoked", |s| s.last_sequence == 1).await;
    let refused = client
        .who_am_i(bearer(WhoAmIRequest {}, &token))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    // Stale past the bound: UNAVAILABLE for a token that is not revoked.
    s.state.revlog.set_down(true);
    s.wait("down", |s| !s.connected).await;
    skip(BOUND + Duration::from_secs(1)).await;
    let other = s.token("u", "s2");
    let refused = client
        .who_am_i(bearer(WhoAmIRequest {}, &other))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable);
}

#[tokio::test]
async fn start_refuses_no_endpoint_and_settings_out_of_range() {
    use auth_interceptor::WatcherError;
    let token = || StaticToken::new("t");
    let none: Vec<Endpoint> = Vec::new();
    assert_eq!(
        RevocationWatcher::start(none, token(), config()).unwrap_err(),
        WatcherError::NoEndpoints
    );
    let addr = dead_addr().await;
    let bad: [fn(&mut RevocationWatcherConfig); 5] = [
        |c| c.capacity = 0,
        |c| c.initial_backoff = Duration::ZERO,
        |c| c.max_backoff = Duration::from_millis(1),
        |c| c.idle_timeout = Duration::from_millis(999),
        |c| c.connect_timeout = Duration::ZERO,
    ];
    for tweak in bad {
        let mut c = config();
        tweak(&mut c);
        let err = RevocationWatcher::start([endpoint(addr)], token(), c).unwrap_err();
        assert!(matches!(err, WatcherError::InvalidConfig(_)), "{err}");
    }
}

#[test]
fn fail_closed_rules_need_a_watcher() {
    let layer = authorizer(SharedKeys::new(TestKey::ed25519("k").key_set())).layer(policy());
    assert_eq!(
        layer.unwrap_err(),
        PolicyError::WatcherRequired("demo.v1.GreeterService/AdminHello".into())
    );
    let interceptor = authorizer(SharedKeys::new(TestKey::ed25519("k").key_set()))
        .interceptor(Rule::required().fail_closed_after(BOUND));
    assert!(matches!(interceptor, Err(PolicyError::WatcherRequired(_))));
    assert_eq!(Rule::required().when_stale, WhenStale::Accept);
}
