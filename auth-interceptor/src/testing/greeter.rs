//! The demo `demo.v1.GreeterService` with the behaviour of the `greeter_server` example: SayHello for
//! anyone, WhoAmI / AdminHello / StreamHello answering with the identity the auth layer verified. Shared
//! by the tests of this crate and the workspace's end-to-end suite.

use std::pin::Pin;

use auth_proto::demo::greeter_service_server::GreeterService;
use auth_proto::demo::{
    AdminHelloRequest, AdminHelloResponse, SayHelloRequest, SayHelloResponse, StreamHelloRequest,
    StreamHelloResponse, WhoAmIRequest, WhoAmIResponse,
};
use futures_util::Stream;
use tonic::{Request, Response, Status};

use crate::RequestAuthExt;

/// The greeter implementation (the same behaviour as the `greeter_server` example).
#[derive(Debug, Clone, Copy, Default)]
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
        // The identity comes only from the verified token (request extensions), never from metadata.
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
            message: format!("Hello, administrator {}!", claims.username),
        }))
    }

    type StreamHelloStream = HelloStream;

    async fn stream_hello(
        &self,
        request: Request<StreamHelloRequest>,
    ) -> Result<Response<HelloStream>, Status> {
        let username = request.auth()?.username.clone();
        let count = request.get_ref().count.clamp(0, 10);
        let items = (1..=count).map(move |i| {
            Ok(StreamHelloResponse {
                message: format!("Hello #{i}, {username}!"),
            })
        });
        Ok(Response::new(Box::pin(futures_util::stream::iter(items))))
    }
}
