//! The intercepted service of the suite: a `demo.v1.GreeterService` served on `127.0.0.1:0` behind
//! `auth_interceptor::Authorizer::layer()`, its keys fetched from a running [`TestServer`]'s `GetJwks`
//! or given ([`GreeterServer::start_with_keys`]); [`GreeterServer::start_as`] starts one verifying
//! with its own audience on the auth server's clock, for service-to-service scenarios.
//! Policy: SayHello public, WhoAmI and StreamHello need a token, AdminHello needs the role `admin`,
//! health public, everything else denied.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use auth_interceptor::GrpcJwksFetcher;
use auth_interceptor::{
    Authorizer, JwksSource, JwksSourceConfig, KeySource, Policy, RevocationChecker,
    RevocationWatcher, Verifier, VerifierConfig,
};
use auth_proto::demo::greeter_service_client::GreeterServiceClient;
use auth_proto::demo::greeter_service_server::GreeterServiceServer;
use auth_proto::demo::{
    AdminHelloRequest, AdminHelloResponse, SayHelloRequest, WhoAmIRequest, WhoAmIResponse,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::clients::{bearer, bearer_value};
use super::harness::{ACCESS_TTL, LEEWAY, TestServer, bounded, endpoint};

pub use auth_interceptor::testing::Greeter;

/// A running intercepted greeter.
pub struct GreeterServer {
    /// Where it listens.
    pub addr: SocketAddr,
    channel: Channel,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
}

impl std::fmt::Debug for GreeterServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GreeterServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// The verifier settings of the auth server's defaults (issuer, audience, leeway, lifetime bound), so
/// the layer and `Validate` judge tokens identically.
pub fn verifier_config() -> VerifierConfig {
    let mut vc = VerifierConfig::new("auth-server", "internal");
    vc.leeway = Duration::from_secs(LEEWAY as u64);
    vc.max_lifetime = Duration::from_secs(ACCESS_TTL as u64);
    vc
}

/// A key source over the `GetJwks` of the auth server behind `channel`, once it has keys.
pub async fn auth_keys(channel: Channel) -> JwksSource {
    let keys = JwksSource::start(GrpcJwksFetcher::new(channel), JwksSourceConfig::default());
    keys.wait_for_keys(Duration::from_secs(10))
        .await
        .expect("greeter got the auth server's keys");
    keys
}

impl GreeterServer {
    /// Starts a greeter trusting `auth`'s keys (fetched through its `GetJwks`), waiting for the keys.
    pub async fn start(auth: &TestServer) -> Self {
        Self::start_enforcing(auth, Self::policy()).await
    }

    /// Like [`GreeterServer::start`], enforcing `policy` (e.g. `Policy::load` of a file).
    pub async fn start_enforcing(auth: &TestServer, policy: Policy) -> Self {
        Self::start_with_policy(auth_keys(auth.channel()).await, policy).await
    }

    /// Starts a greeter trusting `keys` (e.g. `SharedKeys::new(KeySet::hs256(secret))` for a server in
    /// HS256 mode, which publishes no JWKS).
    pub async fn start_with_keys(keys: impl KeySource) -> Self {
        Self::start_with_policy(keys, Self::policy()).await
    }

    /// The greeter's policy in code: SayHello public, WhoAmI and StreamHello need a token,
    /// AdminHello the role `admin`, health public.
    pub fn policy() -> Policy {
        let policy = Policy::builder()
            .with_health()
            .public("demo.v1.GreeterService/SayHello")
            .required("demo.v1.GreeterService/WhoAmI")
            .required("demo.v1.GreeterService/StreamHello")
            .any_role("demo.v1.GreeterService/AdminHello", ["admin"])
            .build()
            .expect("policy");
        policy
            .check_services(&["demo.v1.GreeterService"])
            .expect("policy names only served services");
        policy
    }

    /// Starts a greeter trusting `keys` and enforcing `policy` (e.g. `Policy::load` of a file).
    pub async fn start_with_policy(keys: impl KeySource, policy: Policy) -> Self {
        Self::start_with_authorizer(
            Authorizer::new(Verifier::new(verifier_config()), keys),
            policy,
        )
        .await
    }

    /// Starts a greeter that is the service `audience` (its verifier accepts only tokens for that
    /// audience, as `VerifierConfig::new(issuer, audience)` in a downstream service), trusting `auth`'s
    /// keys, reading `auth`'s clock (so tokens issued after the test advanced it are not from the
    /// future), and enforcing `policy`; rules marked `revalidate` ask `auth`'s `Validate` on every
    /// call (answers not cached).
    pub async fn start_as(auth: &TestServer, audience: &str, policy: Policy) -> Self {
        let keys = JwksSource::start(
            GrpcJwksFetcher::new(auth.channel()),
            JwksSourceConfig::default(),
        );
        keys.wait_for_keys(Duration::from_secs(10))
            .await
            .expect("greeter got the auth server's keys");
        let mut vc = verifier_config();
        vc.audiences = vec![audience.to_owned()];
        let mut authorizer =
            Authorizer::new(Verifier::new(vc), keys).with_clock(Arc::new(auth.clock.clone()));
        if policy.uses_revalidation() {
            authorizer = authorizer.with_revocation_check(
                RevocationChecker::new(auth.channel()).with_ttl(Duration::ZERO),
            );
        }
        Self::start_with_authorizer(authorizer, policy).await
    }

    /// Starts a greeter trusting `auth`'s keys (as [`GreeterServer::start`]) that also refuses what
    /// `watcher` learns is revoked, enforcing `policy` (the greeter's own when `None`).
    pub async fn start_watching(
        keys: impl KeySource,
        watcher: RevocationWatcher,
        policy: Option<Policy>,
    ) -> Self {
        let authorizer = Authorizer::new(Verifier::new(verifier_config()), keys)
            .with_revocation_watcher(watcher);
        Self::start_with_authorizer(authorizer, policy.unwrap_or_else(Self::policy)).await
    }

    /// Starts a greeter deciding with `authorizer` and enforcing `policy`.
    pub async fn start_with_authorizer(authorizer: Authorizer, policy: Policy) -> Self {
        let auth_layer = authorizer.layer(policy).expect("layer");
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter
            .set_serving::<GreeterServiceServer<Greeter>>()
            .await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("addr");
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(
            Server::builder()
                .layer(auth_layer)
                .add_service(health)
                .add_service(GreeterServiceServer::new(Greeter))
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener),
                    async move {
                        let _ = stop_rx.await;
                    },
                ),
        );
        let channel = endpoint(addr).connect_lazy();
        Self {
            addr,
            channel,
            stop: Some(stop_tx),
            handle: Some(handle),
        }
    }

    /// A channel to the greeter (shared HTTP/2 connection).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// A greeter client.
    pub fn client(&self) -> GreeterServiceClient<Channel> {
        GreeterServiceClient::new(self.channel())
    }

    /// `WhoAmI` with `authorization: Bearer <token>`.
    pub async fn who_am_i(&self, token: &str) -> Result<WhoAmIResponse, Status> {
        self.who_am_i_with(|m| {
            m.insert("authorization", bearer_value(token));
        })
        .await
    }

    /// `WhoAmI` with metadata set by `meta`.
    pub async fn who_am_i_with(
        &self,
        meta: impl FnOnce(&mut MetadataMap),
    ) -> Result<WhoAmIResponse, Status> {
        let mut req = Request::new(WhoAmIRequest {});
        meta(req.metadata_mut());
        bounded("WhoAmI", self.client().who_am_i(req))
            .await
            .map(Response::into_inner)
    }

    /// `AdminHello` with `authorization: Bearer <token>`.
    pub async fn admin_hello(&self, token: &str) -> Result<AdminHelloResponse, Status> {
        bounded(
            "AdminHello",
            self.client()
                .admin_hello(bearer(AdminHelloRequest {}, token)),
        )
        .await
        .map(Response::into_inner)
    }

    /// Health SERVING, the public SayHello works, and `good_token` still passes WhoAmI.
    pub async fn assert_healthy(&self, good_token: &str) {
        let h = bounded(
            "greeter health",
            HealthClient::new(self.channel()).check(HealthCheckRequest {
                service: String::new(),
            }),
        )
        .await
        .expect("greeter health")
        .into_inner();
        assert_eq!(h.status, ServingStatus::Serving as i32, "greeter health");
        let r = bounded(
            "SayHello",
            self.client()
                .say_hello(SayHelloRequest { name: "x".into() }),
        )
        .await
        .expect("public SayHello");
        assert_eq!(r.into_inner().message, "Hello, x!");
        self.who_am_i(good_token)
            .await
            .expect("a known-good token still passes the layer");
    }

    /// Stops the greeter.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), h).await;
        }
    }
}

impl Drop for GreeterServer {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}
