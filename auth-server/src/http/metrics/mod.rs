//! Prometheus metrics: the families ([`registry`]), their bounded label values ([`labels`]), the gRPC
//! methods that get labels of their own ([`methods`]), the tower layer measuring every gRPC call
//! ([`grpc_layer`]) and `GET /metrics` ([`scrape`]). One [`Metrics`] is created at startup and handed
//! to whatever records (no global registry).

mod grpc_layer;
mod labels;
pub(crate) mod methods;
mod registry;
pub(super) mod scrape;

pub(crate) use labels::{
    Grant, HashOp, LoginResult, RevokeReason, ValidationReason, ValidationResult,
};
pub(crate) use registry::Metrics;
