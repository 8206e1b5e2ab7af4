//! Calls the example greeter as a service account: logs in through the auth server, attaches the
//! access token to every call and refreshes it ahead of expiry.
//!
//! ```text
//! GREETER_USERNAME=alice GREETER_PASSWORD=... \
//!     cargo run -p auth-interceptor --example greeter_client
//! ```
//! `AUTH_ADDR` (default `http://127.0.0.1:50051`) and `GREETER_ADDR` (default
//! `http://127.0.0.1:50052`) select the servers.

use auth_interceptor::client::{
    ClientAuthLayer, LoginTokenSource, LoginTokenSourceConfig, with_auth_retry,
};
use auth_proto::demo::greeter_service_client::GreeterServiceClient;
use auth_proto::demo::{AdminHelloRequest, SayHelloRequest, StreamHelloRequest, WhoAmIRequest};
use tonic::transport::Endpoint;
use tower_layer::Layer;

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let auth_addr = env("AUTH_ADDR", "http://127.0.0.1:50051");
    let greeter_addr = env("GREETER_ADDR", "http://127.0.0.1:50052");
    let username = std::env::var("GREETER_USERNAME").map_err(|_| "set GREETER_USERNAME")?;
    let password = std::env::var("GREETER_PASSWORD").map_err(|_| "set GREETER_PASSWORD")?;

    let auth = Endpoint::from_shared(auth_addr)?.connect_lazy();
    let tokens = LoginTokenSource::new(auth, username, password, LoginTokenSourceConfig::default());
    let channel = Endpoint::from_shared(greeter_addr)?.connect().await?;
    let client = GreeterServiceClient::new(ClientAuthLayer::new(tokens.clone()).layer(channel));

    let hello = client
        .clone()
        .say_hello(SayHelloRequest {
            name: "world".into(),
        })
        .await?;
    println!("SayHello: {}", hello.into_inner().message);

    // Unary calls can be retried once with a fresh token if the server says UNAUTHENTICATED.
    let me = with_auth_retry(&tokens, || {
        let mut c = client.clone();
        async move { c.who_am_i(WhoAmIRequest {}).await }
    })
    .await?
    .into_inner();
    println!(
        "WhoAmI: {} ({}) roles={:?}",
        me.username, me.subject, me.roles
    );

    match client.clone().admin_hello(AdminHelloRequest {}).await {
        Ok(r) => println!("AdminHello: {}", r.into_inner().message),
        Err(s) => println!("AdminHello refused: {:?} {}", s.code(), s.message()),
    }

    let mut stream = client
        .clone()
        .stream_hello(StreamHelloRequest { count: 3 })
        .await?
        .into_inner();
    while let Some(item) = stream.message().await? {
        println!("StreamHello: {}", item.message);
    }
    Ok(())
}
