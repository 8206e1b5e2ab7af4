//! `GET /healthz/live` and `GET /healthz/ready` for kubelet, whose native gRPC probe speaks only
//! plaintext (with TLS on the gRPC port, these are how Kubernetes probes).
//!
//! Live: the process answers HTTP. Ready: the gRPC health status of the whole server (service `""`),
//! read from the same reporter `grpc.health.v1.Health` serves — `NOT_SERVING` while the database is
//! unreachable and from the moment shutdown begins (while in-flight calls drain), so a load balancer
//! stops sending new calls before the server stops taking them.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::Health;

use super::SidePort;

const TEXT: &str = "text/plain; charset=utf-8";

fn answer(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [(CONTENT_TYPE, TEXT), (CACHE_CONTROL, "no-store")],
        text,
    )
        .into_response()
}

pub(super) async fn live() -> Response {
    answer(StatusCode::OK, "ok\n")
}

pub(super) async fn ready(State(side): State<Arc<SidePort>>) -> Response {
    let request = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    let serving = side
        .health
        .check(request)
        .await
        .is_ok_and(|r| r.get_ref().status == ServingStatus::Serving as i32);
    if serving {
        answer(StatusCode::OK, "ready\n")
    } else {
        answer(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}
