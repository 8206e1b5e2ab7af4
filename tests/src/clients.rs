//! Talking to a [`TestServer`] over gRPC: typed clients, bearer credentials, the calls scenarios make
//! all the time (login, create user, Validate, GetJwks), one reflection round trip, and raw unary calls
//! with hand-encoded bodies.

use auth_proto::v1::admin_service_client::AdminServiceClient;
use auth_proto::v1::auth_service_client::AuthServiceClient;
use auth_proto::v1::{
    AuditEvent, CreateUserRequest, DeleteUserRequest, DisableUserRequest, GetJwksRequest,
    ListAuditEventsRequest, LoginRequest, LoginResponse, User, ValidateRequest, ValidateResponse,
    WatchRevocationsRequest, WatchRevocationsResponse,
};
use serde_json::Value;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};
use tonic_health::pb::health_client::HealthClient;

use super::harness::{ADMIN_PASSWORD, ADMIN_USER, TestServer, bounded};

/// The metadata value `Bearer <token>`.
pub fn bearer_value(token: &str) -> MetadataValue<Ascii> {
    format!("Bearer {token}").parse().expect("ascii token")
}

/// Sends `authorization: Bearer <token>` on every call.
#[derive(Debug, Clone)]
pub struct BearerAuth(MetadataValue<Ascii>);

impl BearerAuth {
    /// For `token`.
    pub fn new(token: &str) -> Self {
        Self(bearer_value(token))
    }
}

impl Interceptor for BearerAuth {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

/// Wraps `msg` in a request carrying `authorization: Bearer <token>`.
pub fn bearer<T>(msg: T, token: &str) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut()
        .insert("authorization", bearer_value(token));
    req
}

impl TestServer {
    /// An `AuthService` client.
    pub fn auth_client(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(self.channel())
    }

    /// An `AdminService` client sending `authorization: Bearer <token>` on every call.
    pub fn admin_client_with(
        &self,
        token: &str,
    ) -> AdminServiceClient<InterceptedService<Channel, BearerAuth>> {
        AdminServiceClient::with_interceptor(self.channel(), BearerAuth::new(token))
    }

    /// An `AdminService` client sending no credentials.
    pub fn admin_client(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.channel())
    }

    /// A health client.
    pub fn health_client(&self) -> HealthClient<Channel> {
        HealthClient::new(self.channel())
    }

    /// Logs in; panics on failure.
    pub async fn login(&self, user: &str, password: &str) -> LoginResponse {
        self.try_login(user, password)
            .await
            .unwrap_or_else(|s| panic!("login {user:?} failed: {s:?}"))
    }

    /// Logs in, returning the status on failure.
    pub async fn try_login(&self, user: &str, password: &str) -> Result<LoginResponse, Status> {
        bounded(
            "login",
            self.auth_client().login(LoginRequest {
                username: user.to_owned(),
                password: password.to_owned(),
            }),
        )
        .await
        .map(|r| r.into_inner())
    }

    /// Logs in as the bootstrap admin; returns the access token.
    pub async fn admin_token(&self) -> String {
        self.login(ADMIN_USER, ADMIN_PASSWORD).await.access_token
    }

    /// Creates a user through `AdminService/CreateUser` with `admin_token`.
    pub async fn create_user(
        &self,
        admin_token: &str,
        name: &str,
        password: &str,
        roles: &[&str],
    ) -> User {
        self.try_create_user(admin_token, name, password, roles)
            .await
            .unwrap_or_else(|s| panic!("create user {name:?} failed: {s:?}"))
    }

    /// `AdminService/CreateUser` with `admin_token`, returning the status on failure.
    pub async fn try_create_user(
        &self,
        admin_token: &str,
        name: &str,
        password: &str,
        roles: &[&str],
    ) -> Result<User, Status> {
        bounded(
            "create user",
            self.admin_client_with(admin_token)
                .create_user(CreateUserRequest {
                    username: name.to_owned(),
                    password: password.to_owned(),
                    roles: roles.iter().map(|r| (*r).to_owned()).collect(),
                }),
        )
        .await
        .map(|r| r.into_inner().user.expect("user in response"))
    }

    /// Disables the user `id` through `AdminService/DisableUser` (as the bootstrap admin).
    pub async fn disable_user(&self, id: &str) {
        let admin = self.admin_token().await;
        bounded(
            "disable user",
            self.admin_client_with(&admin)
                .disable_user(DisableUserRequest {
                    user_id: id.to_owned(),
                }),
        )
        .await
        .unwrap_or_else(|s| panic!("disable {id}: {s:?}"));
    }

    /// Deletes the user `id` through `AdminService/DeleteUser` (as the bootstrap admin).
    pub async fn delete_user(&self, id: &str) {
        let admin = self.admin_token().await;
        bounded(
            "delete user",
            self.admin_client_with(&admin)
                .delete_user(DeleteUserRequest {
                    user_id: id.to_owned(),
                }),
        )
        .await
        .unwrap_or_else(|s| panic!("delete {id}: {s:?}"));
    }

    /// Opens `WatchRevocations(after)` with `token`: the stream, or the status it was refused with.
    pub async fn watch_revocations(
        &self,
        token: &str,
        after: i64,
    ) -> Result<tonic::Streaming<WatchRevocationsResponse>, Status> {
        bounded(
            "watch revocations",
            self.auth_client().watch_revocations(bearer(
                WatchRevocationsRequest {
                    after_sequence: after,
                },
                token,
            )),
        )
        .await
        .map(tonic::Response::into_inner)
    }

    /// `Validate(token)`; panics on an RPC error.
    pub async fn validate(&self, token: &str) -> ValidateResponse {
        bounded(
            "validate",
            self.auth_client().validate(ValidateRequest {
                access_token: token.to_owned(),
                ..Default::default()
            }),
        )
        .await
        .unwrap_or_else(|s| panic!("validate RPC failed: {s:?}"))
        .into_inner()
    }

    /// The published JWKS, parsed.
    pub async fn jwks(&self) -> Value {
        let json = bounded("jwks", self.auth_client().get_jwks(GetJwksRequest {}))
            .await
            .expect("GetJwks")
            .into_inner()
            .jwks_json;
        serde_json::from_str(&json).expect("JWKS is JSON")
    }

    /// The newest 1000 audit events, newest first, through `ListAuditEvents` as the bootstrap admin
    /// (whose login is one of them).
    pub async fn audit_events(&self) -> Vec<AuditEvent> {
        let token = self.admin_token().await;
        bounded(
            "ListAuditEvents",
            self.admin_client_with(&token)
                .list_audit_events(ListAuditEventsRequest {
                    page_size: 1000,
                    ..Default::default()
                }),
        )
        .await
        .expect("ListAuditEvents")
        .into_inner()
        .events
    }
}

/// One gRPC reflection (v1) request and its answer, against `s`.
pub async fn reflect(
    s: &TestServer,
    request: tonic_reflection::pb::v1::server_reflection_request::MessageRequest,
) -> tonic_reflection::pb::v1::server_reflection_response::MessageResponse {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    let mut client = ServerReflectionClient::new(s.channel());
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut stream = bounded(
        "reflection",
        client.server_reflection_info(tokio_stream::iter(vec![req])),
    )
    .await
    .expect("reflection")
    .into_inner();
    let answer = bounded("reflection answer", stream.message())
        .await
        .expect("stream")
        .expect("one answer");
    answer.message_response.expect("a reflection answer")
}

/// A unary call of `path` with an already-encoded request body and metadata set by `meta`; the answer
/// is decoded as an empty message (unknown fields skipped).
pub async fn raw_unary(
    channel: Channel,
    path: &str,
    body: Vec<u8>,
    meta: impl FnOnce(&mut tonic::metadata::MetadataMap),
) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    bounded("ready", grpc.ready()).await.expect("channel ready");
    let mut req = tonic::Request::new(RawBytes(body));
    meta(req.metadata_mut());
    let path: http::uri::PathAndQuery = path.parse().expect("path");
    bounded(
        path.as_str(),
        grpc.unary(
            req,
            path.clone(),
            tonic_prost::ProstCodec::<RawBytes, ()>::default(),
        ),
    )
    .await
    .map(|_| ())
}

/// A message whose encoding is exactly its bytes (already-encoded protobuf fields).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawBytes(pub Vec<u8>);

impl prost::Message for RawBytes {
    fn encode_raw(&self, buf: &mut impl prost::bytes::BufMut) {
        buf.put_slice(&self.0);
    }
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: prost::encoding::WireType,
        buf: &mut impl prost::bytes::Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }
    fn encoded_len(&self) -> usize {
        self.0.len()
    }
    fn clear(&mut self) {
        self.0.clear();
    }
}
