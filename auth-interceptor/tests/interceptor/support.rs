//! Shared helpers for the integration tests: a small real `AuthService` (Login, Refresh, GetJwks,
//! Validate) whose keys and availability the test controls, a demo greeter, server/client plumbing
//! on real sockets, and [`skip`], which moves Tokio's clock instead of sleeping.
//!
//! Time in these tests: everything the crate times (key-set ages and refetch windows, revocation
//! answers, a login token's refresh point, and a [`auth_interceptor::TokioClock`] where a test injects
//! one) runs on Tokio's clock. The tests keep that clock running while calls travel over the sockets —
//! a paused runtime auto-advances to the next timer whenever it waits for I/O, which would fire a
//! call's timeouts early — and jump it forward with [`skip`] between calls. What is left of real
//! waiting is short polls ([`eventually`]) for background work to finish.

#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth_interceptor::testing::{self, TestKey, claims_at};
use auth_interceptor::{AuthLayer, Authorizer, KeySource, Policy};
use auth_proto::demo::greeter_service_client::GreeterServiceClient;
use auth_proto::demo::greeter_service_server::GreeterServiceServer;
use auth_proto::v1::auth_service_server::{AuthService, AuthServiceServer};
use auth_proto::v1::*;
use tokio::net::TcpListener;
use tonic::metadata::MetadataValue;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Request, Response, Status};

pub const GREETER: &str = "demo.v1.GreeterService";

/// The example policy: SayHello public, WhoAmI and StreamHello need a token, AdminHello needs admin.
pub fn greeter_policy() -> Policy {
    Policy::builder()
        .with_health()
        .public("/demo.v1.GreeterService/SayHello")
        .required("/demo.v1.GreeterService/WhoAmI")
        .required("/demo.v1.GreeterService/StreamHello")
        .any_role("/demo.v1.GreeterService/AdminHello", ["admin"])
        .build()
        .unwrap()
}

pub fn authorizer(keys: impl KeySource) -> Authorizer {
    Authorizer::new(testing::verifier(), keys)
}

/// The greeter's policy over `keys`, as a layer.
pub fn greeter_layer(keys: impl KeySource) -> auth_interceptor::AuthLayer {
    authorizer(keys).layer(greeter_policy()).unwrap()
}

// ---------------------------------------------------------------------------------------------------
// Greeter

pub use auth_interceptor::testing::Greeter;

/// Serves the greeter behind `layer` (applied to the whole server) on 127.0.0.1:0.
pub async fn serve_greeter(layer: AuthLayer) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        Server::builder()
            .layer(layer)
            .add_service(GreeterServiceServer::new(Greeter))
            .serve_with_incoming(incoming(listener))
            .await
            .unwrap();
    });
    addr
}

/// The connections of `listener`, with `TCP_NODELAY` as `Server::serve` would set it
/// (`serve_with_incoming` leaves sockets as they come, and Nagle's algorithm meeting delayed ACKs
/// costs a loopback call tens of milliseconds).
fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

pub async fn channel(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

pub async fn greeter_client(addr: SocketAddr) -> GreeterServiceClient<Channel> {
    GreeterServiceClient::new(channel(addr).await)
}

/// `req` with `authorization: Bearer <token>`.
pub fn bearer<T>(req: T, token: &str) -> Request<T> {
    with_auth(req, &format!("Bearer {token}"))
}

/// `req` with one raw `authorization` value.
pub fn with_auth<T>(req: T, value: &str) -> Request<T> {
    let mut r = Request::new(req);
    r.metadata_mut()
        .insert("authorization", MetadataValue::try_from(value).unwrap());
    r
}

// ---------------------------------------------------------------------------------------------------
// A small auth server

pub struct AuthState {
    /// Keys published by GetJwks.
    pub published: Mutex<Vec<Arc<TestKey>>>,
    /// The key Login/Refresh sign with.
    pub signer: Mutex<Arc<TestKey>>,
    /// Access-token lifetime, seconds.
    pub ttl: AtomicU64,
    /// When set, GetJwks answers UNAVAILABLE.
    pub jwks_down: AtomicBool,
    pub jwks_calls: AtomicU64,
    pub logins: AtomicU64,
    pub refreshes: AtomicU64,
    pub validates: AtomicU64,
    /// Live refresh tokens → subject.
    pub refresh_tokens: Mutex<HashMap<String, String>>,
    /// Tokens that Validate reports as revoked.
    pub revoked: Mutex<HashSet<String>>,
    pub password: String,
    /// What WatchRevocations serves.
    pub revlog: RevLog,
}

impl AuthState {
    pub fn new(key: TestKey) -> Arc<Self> {
        let key = Arc::new(key);
        Arc::new(Self {
            published: Mutex::new(vec![key.clone()]),
            signer: Mutex::new(key),
            ttl: AtomicU64::new(600),
            jwks_down: AtomicBool::new(false),
            jwks_calls: AtomicU64::new(0),
            logins: AtomicU64::new(0),
            refreshes: AtomicU64::new(0),
            validates: AtomicU64::new(0),
            refresh_tokens: Mutex::new(HashMap::new()),
            revoked: Mutex::new(HashSet::new()),
            password: "correct horse".into(),
            revlog: RevLog::default(),
        })
    }

    pub fn jwks(&self) -> String {
        let keys = self.published.lock().unwrap();
        let refs: Vec<&TestKey> = keys.iter().map(|k| k.as_ref()).collect();
        testing::jwks_json(&refs)
    }

    /// Publishes `key` and signs with it from now on (keeping the old keys published).
    pub fn rotate_to(&self, key: TestKey) -> Arc<TestKey> {
        let key = Arc::new(key);
        self.published.lock().unwrap().push(key.clone());
        *self.signer.lock().unwrap() = key.clone();
        key
    }

    /// Stops publishing `kid`.
    pub fn unpublish(&self, kid: &str) {
        self.published.lock().unwrap().retain(|k| k.kid != kid);
    }

    pub fn issue(&self, sub: &str, roles: &[&str]) -> String {
        let signer = self.signer.lock().unwrap().clone();
        signer.sign(&claims_at(
            sub,
            roles,
            unix_now(),
            self.ttl.load(Ordering::Relaxed),
        ))
    }

    fn tokens(&self, sub: &str) -> LoginResponse {
        let access = self.issue(sub, &["reader"]);
        let refresh = testing::b64(uuid_bytes());
        self.refresh_tokens
            .lock()
            .unwrap()
            .insert(refresh.clone(), sub.to_owned());
        LoginResponse {
            access_token: access,
            refresh_token: refresh,
            token_type: "Bearer".into(),
            expires_in: self.ttl.load(Ordering::Relaxed) as i64,
            refresh_expires_in: 3600,
        }
    }
}

fn uuid_bytes() -> [u8; 16] {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    b
}

#[derive(Clone)]
pub struct TestAuth(pub Arc<AuthState>);

#[tonic::async_trait]
impl AuthService for TestAuth {
    async fn login(
        &self,
        request: Request<LoginRequest>,
    ) -> Result<Response<LoginResponse>, Status> {
        self.0.logins.fetch_add(1, Ordering::SeqCst);
        let r = request.into_inner();
        if r.password != self.0.password {
            return Err(Status::unauthenticated("invalid credentials"));
        }
        Ok(Response::new(self.0.tokens(&r.username)))
    }

    async fn refresh(
        &self,
        request: Request<RefreshRequest>,
    ) -> Result<Response<RefreshResponse>, Status> {
        self.0.refreshes.fetch_add(1, Ordering::SeqCst);
        let rt = request.into_inner().refresh_token;
        let sub = self
            .0
            .refresh_tokens
            .lock()
            .unwrap()
            .remove(&rt)
            .ok_or_else(|| Status::unauthenticated("invalid token"))?;
        let t = self.0.tokens(&sub);
        Ok(Response::new(RefreshResponse {
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            token_type: t.token_type,
            expires_in: t.expires_in,
            refresh_expires_in: t.refresh_expires_in,
        }))
    }

    async fn validate(
        &self,
        request: Request<ValidateRequest>,
    ) -> Result<Response<ValidateResponse>, Status> {
        self.0.validates.fetch_add(1, Ordering::SeqCst);
        let token = request.into_inner().access_token;
        let valid = !self.0.revoked.lock().unwrap().contains(&token);
        Ok(Response::new(ValidateResponse {
            valid,
            claims: None,
            reason: if valid {
                0
            } else {
                InvalidReason::Revoked as i32
            },
        }))
    }

    async fn logout(&self, _: Request<LogoutRequest>) -> Result<Response<LogoutResponse>, Status> {
        Ok(Response::new(LogoutResponse {}))
    }

    async fn get_jwks(
        &self,
        _: Request<GetJwksRequest>,
    ) -> Result<Response<GetJwksResponse>, Status> {
        self.0.jwks_calls.fetch_add(1, Ordering::SeqCst);
        if self.0.jwks_down.load(Ordering::SeqCst) {
            return Err(Status::unavailable("down"));
        }
        Ok(Response::new(GetJwksResponse {
            jwks_json: self.0.jwks(),
        }))
    }

    async fn change_password(
        &self,
        _: Request<ChangePasswordRequest>,
    ) -> Result<Response<ChangePasswordResponse>, Status> {
        Err(Status::unimplemented("not in the test server"))
    }

    async fn issue_service_token(
        &self,
        _: Request<IssueServiceTokenRequest>,
    ) -> Result<Response<IssueServiceTokenResponse>, Status> {
        Err(Status::unimplemented("not in the test server"))
    }

    type WatchRevocationsStream = tonic::codegen::BoxStream<WatchRevocationsResponse>;

    async fn watch_revocations(
        &self,
        request: Request<WatchRevocationsRequest>,
    ) -> Result<Response<Self::WatchRevocationsStream>, Status> {
        RevLog::watch(self.0.clone(), request)
    }
}

/// Serves `state` as `auth.v1.AuthService` on 127.0.0.1:0.
pub async fn serve_auth(state: Arc<AuthState>) -> SocketAddr {
    serve_routes(Routes::new(AuthServiceServer::new(TestAuth(state)))).await
}

/// Serves `routes` (e.g. one service wrapped in a layer or an interceptor) on 127.0.0.1:0.
pub async fn serve_routes(routes: Routes) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        Server::builder()
            .add_routes(routes)
            .serve_with_incoming(incoming(listener))
            .await
            .unwrap();
    });
    addr
}

/// A lazily connecting channel to `addr` (nothing needs to listen yet).
pub fn lazy_channel(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_millis(500))
        .connect_lazy()
}

/// An address nothing listens on.
pub async fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

/// Moves Tokio's clock forward by `by` at once, without sleeping: every Tokio timer, every
/// `tokio::time::Instant` and every `TokioClock` of this runtime jump with it, and timers that come due
/// fire. The clock is frozen only for the jump, so call this with no call in flight (a paused runtime
/// waiting for I/O would auto-advance past that call's timeouts). Needs `#[tokio::test]`'s
/// current-thread runtime.
pub async fn skip(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

/// Waits until `done()` holds, polling every 10 ms for at most 5 s (real time), for background work
/// (a refresh loop's fetch in flight) to finish; panics naming `what` otherwise.
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: not within 5 s");
}

/// Now, in seconds since the Unix epoch (the system clock).
pub fn unix_now() -> u64 {
    auth_interceptor::Clock::unix_now(&auth_interceptor::SystemClock)
}

// ---------------------------------------------------------------------------------------------------
// WatchRevocations, as the contract describes it

/// The fake revocation log behind `WatchRevocations`: a snapshot of every entry (in parts of
/// `part_size`) when the watcher starts at 0 or before the pruned `horizon`, then every entry after
/// the watcher's sequence, live. `down` refuses new streams and ends open ones with `UNAVAILABLE`.
pub struct RevLog {
    pub entries: Mutex<Vec<Revocation>>,
    /// Sequences at or below this are pruned: a watcher resuming from one gets a fresh snapshot.
    pub horizon: std::sync::atomic::AtomicI64,
    pub part_size: std::sync::atomic::AtomicUsize,
    pub down: AtomicBool,
    /// The `after_sequence` of every stream opened.
    pub requests: Mutex<Vec<i64>>,
    /// Bumped on every change; open streams wake up on it.
    changed: tokio::sync::watch::Sender<u64>,
    /// Heartbeats asked for by [`RevLog::heartbeat`].
    beats: AtomicU64,
    /// The sequence heartbeats announce (the newest entry's when negative).
    beat_sequence: std::sync::atomic::AtomicI64,
}

impl Default for RevLog {
    fn default() -> Self {
        Self {
            entries: Mutex::new(Vec::new()),
            horizon: 0.into(),
            part_size: 1000.into(),
            down: AtomicBool::new(false),
            requests: Mutex::new(Vec::new()),
            changed: tokio::sync::watch::channel(0).0,
            beats: AtomicU64::new(0),
            beat_sequence: (-1).into(),
        }
    }
}

/// A revocation of `kind` for `target`, expiring in an hour (a subject's not-before is now).
pub fn revocation(kind: RevocationKind, target: &str) -> Revocation {
    let now = unix_now() as i64;
    let at = |seconds| Some(prost_types::Timestamp { seconds, nanos: 0 });
    Revocation {
        sequence: 0,
        kind: kind as i32,
        target: target.into(),
        not_before: (kind == RevocationKind::Subject)
            .then(|| at(now + 1))
            .flatten(),
        expire_time: at(now + 3600),
    }
}

impl RevLog {
    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// Appends `r` with the next sequence; returns that sequence.
    pub fn append(&self, mut r: Revocation) -> i64 {
        let mut entries = self.entries.lock().unwrap();
        r.sequence = entries.last().map_or(0, |e| e.sequence) + 1;
        let seq = r.sequence;
        entries.push(r);
        drop(entries);
        self.bump();
        seq
    }

    /// Refuses new streams and ends the open ones (`true`), or serves again (`false`).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        self.bump();
    }

    /// Sends one heartbeat on every open stream.
    pub fn heartbeat(&self) {
        self.beats.fetch_add(1, Ordering::SeqCst);
        self.bump();
    }

    /// Sends one heartbeat announcing `sequence` on every open stream (as a server does after rows
    /// it did not need to send).
    pub fn heartbeat_at(&self, sequence: i64) {
        self.beat_sequence.store(sequence, Ordering::SeqCst);
        self.heartbeat();
    }

    pub fn requests(&self) -> Vec<i64> {
        self.requests.lock().unwrap().clone()
    }

    fn newest(&self) -> i64 {
        match self.beat_sequence.load(Ordering::SeqCst) {
            n if n >= 0 => n,
            _ => self
                .entries
                .lock()
                .unwrap()
                .last()
                .map_or(0, |e| e.sequence),
        }
    }

    fn after(&self, sequence: i64) -> Vec<Revocation> {
        let entries = self.entries.lock().unwrap();
        entries
            .iter()
            .filter(|e| e.sequence > sequence)
            .cloned()
            .collect()
    }

    fn watch(
        state: Arc<AuthState>,
        request: Request<WatchRevocationsRequest>,
    ) -> Result<Response<tonic::codegen::BoxStream<WatchRevocationsResponse>>, Status> {
        use watch_revocations_response::Message;
        let log = &state.revlog;
        if log.down.load(Ordering::SeqCst) {
            return Err(Status::unavailable("down"));
        }
        if request.metadata().get("authorization").is_none() {
            return Err(Status::unauthenticated("invalid token"));
        }
        let after = request.into_inner().after_sequence;
        log.requests.lock().unwrap().push(after);
        let mut messages = Vec::new();
        let mut sent = after;
        if after == 0 || after <= log.horizon.load(Ordering::SeqCst) {
            let entries = log.entries.lock().unwrap().clone();
            let sequence = entries.last().map_or(0, |e| e.sequence);
            let size = log.part_size.load(Ordering::SeqCst).max(1);
            let parts: Vec<&[Revocation]> = if entries.is_empty() {
                vec![&[]]
            } else {
                entries.chunks(size).collect()
            };
            let last = parts.len() - 1;
            for (i, part) in parts.into_iter().enumerate() {
                messages.push(Message::Snapshot(RevocationSnapshot {
                    revocations: part.to_vec(),
                    first: i == 0,
                    last: i == last,
                    sequence,
                }));
            }
            sent = sequence;
        }
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let mut changes = log.changed.subscribe();
        let mut beats = log.beats.load(Ordering::SeqCst);
        tokio::spawn(async move {
            let log = &state.revlog;
            let send = |m| tx.send(Ok(WatchRevocationsResponse { message: Some(m) }));
            for m in messages {
                if send(m).await.is_err() {
                    return;
                }
            }
            loop {
                if log.down.load(Ordering::SeqCst) {
                    let _ = tx.send(Err(Status::unavailable("down"))).await;
                    return;
                }
                for r in log.after(sent) {
                    sent = r.sequence;
                    if send(Message::Revocation(r)).await.is_err() {
                        return;
                    }
                }
                while beats < log.beats.load(Ordering::SeqCst) {
                    beats += 1;
                    let beat = RevocationHeartbeat {
                        sequence: log.newest(),
                        time: None,
                    };
                    if send(Message::Heartbeat(beat)).await.is_err() {
                        return;
                    }
                }
                tokio::select! {
                    r = changes.changed() => if r.is_err() { return },
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}
