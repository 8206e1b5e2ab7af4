//! Calls the example greeter, attaching an access token to every call and renewing it ahead of
//! expiry — as a service account (`IssueServiceToken` for the greeter's audience) or as a user
//! (`Login`, then `Refresh`).
//!
//! ```text
//! # A service account, with its client secret in a file (or GREETER_CLIENT_SECRET), or with a
//! # registered private key (GREETER_KEY_FILE, PKCS#8 PEM, and GREETER_KEY_ID; AUTH_ISSUER, default
//! # "auth-server", is the assertion's audience). The token is for GREETER_AUDIENCE (default
//! # "demo.v1.GreeterService": start greeter_server with --audience demo.v1.GreeterService).
//! GREETER_CLIENT_ID=greeter-client GREETER_CLIENT_SECRET_FILE=./client-secret \
//!     cargo run -p auth-interceptor --example greeter_client
//! # A user.
//! GREETER_USERNAME=alice GREETER_PASSWORD=... \
//!     cargo run -p auth-interceptor --example greeter_client
//! ```
//! `AUTH_ADDR` (default `http://127.0.0.1:50051`) and `GREETER_ADDR` (default
//! `http://127.0.0.1:50052`) select the servers.

use std::sync::Arc;

use auth_interceptor::client::{
    AssertionKey, ClientAuthLayer, LoginTokenSource, LoginTokenSourceConfig, ServiceCredentials,
    ServiceTokenSource, ServiceTokenSourceConfig, TokenSource, with_auth_retry,
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
    let auth = Endpoint::from_shared(auth_addr)?.connect_lazy();
    let tokens: Arc<dyn TokenSource> = match std::env::var("GREETER_CLIENT_ID") {
        Ok(client_id) => Arc::new(ServiceTokenSource::new(
            auth,
            service_credentials(client_id)?,
            env("GREETER_AUDIENCE", "demo.v1.GreeterService"),
            ServiceTokenSourceConfig::default(),
        )),
        Err(_) => {
            let username = std::env::var("GREETER_USERNAME")
                .map_err(|_| "set GREETER_CLIENT_ID (a service account) or GREETER_USERNAME")?;
            let password = std::env::var("GREETER_PASSWORD").map_err(|_| "set GREETER_PASSWORD")?;
            let config = LoginTokenSourceConfig::default();
            Arc::new(LoginTokenSource::new(auth, username, password, config))
        }
    };
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
    // A service token names no user.
    let who = if me.username.is_empty() {
        "a service account"
    } else {
        &me.username
    };
    println!("WhoAmI: {who} ({}) roles={:?}", me.subject, me.roles);

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

/// The service account's proof: a key file, a secret file, or a secret in the environment.
fn service_credentials(
    client_id: String,
) -> Result<ServiceCredentials, Box<dyn std::error::Error>> {
    if let Ok(path) = std::env::var("GREETER_KEY_FILE") {
        let kid = std::env::var("GREETER_KEY_ID").map_err(|_| "set GREETER_KEY_ID")?;
        let key = AssertionKey::from_pem_file(kid, path)?;
        let issuer = env("AUTH_ISSUER", "auth-server");
        return Ok(ServiceCredentials::assertion(client_id, key, issuer));
    }
    if let Ok(path) = std::env::var("GREETER_CLIENT_SECRET_FILE") {
        return Ok(ServiceCredentials::secret_file(client_id, path)?);
    }
    Ok(ServiceCredentials::secret_from_env(
        client_id,
        "GREETER_CLIENT_SECRET",
    )?)
}
