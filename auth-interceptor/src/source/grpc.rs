//! Fetches the JWKS from the auth server's `AuthService/GetJwks` RPC over a tonic `Channel`.

use std::time::Duration;

use auth_proto::v1::GetJwksRequest;
use auth_proto::v1::auth_service_client::AuthServiceClient;
use futures_util::future::BoxFuture;
use tonic::transport::Channel;

use super::jwks::{FetchError, KeySetFetcher};
use crate::keys::KeySet;

/// Default bound on one `GetJwks` call.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`KeySetFetcher`] calling `auth.v1.AuthService/GetJwks`.
#[derive(Debug, Clone)]
pub struct GrpcJwksFetcher {
    client: AuthServiceClient<Channel>,
    timeout: Duration,
    /// Named in errors (the auth server's address, when known).
    target: String,
}

impl GrpcJwksFetcher {
    /// A fetcher over `channel` (create it with `Endpoint::connect_lazy` so startup does not depend on
    /// the auth server being up).
    pub fn new(channel: Channel) -> Self {
        Self {
            client: AuthServiceClient::new(channel),
            timeout: DEFAULT_FETCH_TIMEOUT,
            target: "the auth server".into(),
        }
    }

    /// A fetcher for the auth server at `uri` (e.g. `http://127.0.0.1:50051`), connecting lazily; its
    /// errors name the address.
    pub fn from_uri(uri: &str) -> Result<Self, tonic::transport::Error> {
        let channel = tonic::transport::Endpoint::from_shared(uri.to_owned())?.connect_lazy();
        Ok(Self {
            target: uri.to_owned(),
            ..Self::new(channel)
        })
    }

    /// Bounds each call to `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl KeySetFetcher for GrpcJwksFetcher {
    fn fetch(&self) -> BoxFuture<'_, Result<KeySet, FetchError>> {
        let mut client = self.client.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let call = client.get_jwks(GetJwksRequest {});
            match tokio::time::timeout(timeout, call).await {
                Err(_) => Err(FetchError::Timeout),
                Ok(Err(status)) => Err(FetchError::Unreachable(format!(
                    "GetJwks at {}: {:?}: {}",
                    self.target,
                    status.code(),
                    status.message()
                ))),
                Ok(Ok(response)) => Ok(KeySet::from_jwks_json(&response.into_inner().jwks_json)?),
            }
        })
    }
}
