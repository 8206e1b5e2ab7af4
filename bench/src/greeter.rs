//! The demo `GreeterService` under test, served bare or behind the `auth-interceptor` layer.

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use auth_interceptor::{
    AuthLayer, Authorizer, KeySet, Policy, SharedKeys, Verifier, VerifierConfig,
};
use auth_proto::demo::greeter_service_server::{GreeterService, GreeterServiceServer};
use auth_proto::demo::{
    AdminHelloRequest, AdminHelloResponse, SayHelloRequest, SayHelloResponse, StreamHelloRequest,
    StreamHelloResponse, WhoAmIRequest, WhoAmIResponse,
};
use futures_util::Stream;
use tonic::{Request, Response, Status};

/// How the demo service is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protection {
    /// No auth layer at all (the same requests, bearer header included, are sent).
    None,
    /// The auth layer with its default verified-token cache (warm after the first call per token).
    Layer,
    /// The auth layer with the cache disabled: every call verifies the signature (the cold path).
    LayerNoCache,
}

/// The greeter: WhoAmI answers with the verified identity when the layer supplied one.
#[derive(Debug, Default, Clone, Copy)]
pub struct Greeter;

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
        use auth_interceptor::RequestAuthExt;
        Ok(Response::new(match request.auth() {
            Ok(c) => WhoAmIResponse {
                subject: c.sub.clone(),
                username: c.username.clone(),
                roles: c.roles.clone(),
            },
            Err(_) => WhoAmIResponse {
                subject: "anonymous".into(),
                username: String::new(),
                roles: Vec::new(),
            },
        }))
    }

    async fn admin_hello(
        &self,
        _request: Request<AdminHelloRequest>,
    ) -> Result<Response<AdminHelloResponse>, Status> {
        Ok(Response::new(AdminHelloResponse {
            message: "Hello, administrator!".into(),
        }))
    }

    type StreamHelloStream = HelloStream;

    async fn stream_hello(
        &self,
        request: Request<StreamHelloRequest>,
    ) -> Result<Response<HelloStream>, Status> {
        let count = request.get_ref().count.clamp(0, 10);
        let items = (1..=count).map(|i| {
            Ok(StreamHelloResponse {
                message: format!("Hello #{i}!"),
            })
        });
        Ok(Response::new(Box::pin(futures_util::stream::iter(items))))
    }
}

/// The layer the protected modes use: SayHello public, the rest needs a valid token.
pub fn layer(keys: KeySet, protection: Protection) -> anyhow::Result<AuthLayer> {
    let policy = Policy::builder()
        .with_health()
        .public("demo.v1.GreeterService/SayHello")
        .required("demo.v1.GreeterService/*")
        .build()?;
    let verifier = Verifier::new(VerifierConfig::new(
        crate::tokens::ISSUER,
        crate::tokens::AUDIENCE,
    ));
    let auth = Authorizer::new(verifier, SharedKeys::new(keys));
    let auth = match protection {
        Protection::LayerNoCache => auth.with_cache(0, Duration::from_secs(60)),
        _ => auth,
    };
    Ok(auth.layer(policy)?)
}

/// Serves the greeter on `addr` until the process ends.
pub async fn serve(addr: SocketAddr, keys: KeySet, protection: Protection) -> anyhow::Result<()> {
    let incoming = tonic::transport::server::TcpIncoming::bind(addr)?.with_nodelay(Some(true));
    let svc = GreeterServiceServer::new(Greeter);
    match protection {
        Protection::None => {
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(incoming)
                .await?
        }
        _ => {
            tonic::transport::Server::builder()
                .layer(layer(keys, protection)?)
                .add_service(svc)
                .serve_with_incoming(incoming)
                .await?
        }
    }
    Ok(())
}
