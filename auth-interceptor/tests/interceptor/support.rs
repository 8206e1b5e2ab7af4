//! Shared helpers for the integration tests: a small real `AuthService` (Login, Refresh, GetJwks,
//! Validate, and WatchRevocations from [`crate::fake_revocations`]) whose keys and availability the test controls, a demo greeter, server/client plumbing
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

pub use crate::fake_revocations::{RevLog, revocation};

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
    /// The `audience` of every Validate call, in order.
    pub validate_audiences: Mutex<Vec<String>>,
    /// IssueServiceToken: the one service account's client id and secret.
    pub service_client: String,
    pub service_secret: String,
    /// IssueServiceToken: the audiences the account may ask for.
    pub service_audiences: Vec<String>,
    /// IssueServiceToken calls, and every request received (its credential and audience).
    pub issues: AtomicU64,
    pub issue_requests: Mutex<Vec<IssueServiceTokenRequest>>,
    /// When set, IssueServiceToken fails with this code.
    pub issue_fails: Mutex<Option<tonic::Code>>,
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
            validate_audiences: Mutex::new(Vec::new()),
            service_client: "payments".into(),
            service_secret: "svcsec_test-secret".into(),
            service_audiences: vec!["orders".into(), "demo".into()],
            issues: AtomicU64::new(0),
            issue_requests: Mutex::new(Vec::new()),
            issue_fails: Mutex::new(None),
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
        let r = request.into_inner();
        self.0.validate_audiences.lock().unwrap().push(r.audience);
        let token = r.access_token;
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

    /// Checks the client id and, for a secret, the secret (an assertion is taken as is: the tests
    /// inspect it), then signs a token for the audience asked.
    async fn issue_service_token(
        &self,
        request: Request<IssueServiceTokenRequest>,
    ) -> Result<Response<IssueServiceTokenResponse>, Status> {
        let s = &self.0;
        s.issues.fetch_add(1, Ordering::SeqCst);
        let r = request.into_inner();
        s.issue_requests.lock().unwrap().push(r.clone());
        if let Some(code) = *s.issue_fails.lock().unwrap() {
            return Err(Status::new(code, "issue refused by the test"));
        }
        let secret_ok = match &r.credential {
            Some(issue_service_token_request::Credential::ClientSecret(c)) => {
                *c == s.service_secret
            }
            Some(issue_service_token_request::Credential::ClientAssertion(_)) => true,
            None => false,
        };
        if r.client_id != s.service_client || !secret_ok {
            return Err(Status::unauthenticated("invalid client credentials"));
        }
        if !s.service_audiences.contains(&r.audience) {
            return Err(Status::permission_denied("audience not allowed"));
        }
        let ttl = s.ttl.load(Ordering::Relaxed);
        let mut claims = claims_at(
            &format!("acct-{}", r.client_id),
            &["reader"],
            unix_now(),
            ttl,
        );
        claims["client_id"] = r.client_id.clone().into();
        claims["aud"] = r.audience.clone().into();
        claims["token_use"] = "service".into();
        let signer = s.signer.lock().unwrap().clone();
        Ok(Response::new(IssueServiceTokenResponse {
            access_token: signer.sign(&claims),
            token_type: "Bearer".into(),
            expires_in: ttl as i64,
        }))
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
