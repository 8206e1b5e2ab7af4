//! `GET /metrics`: the registry in the Prometheus text format (0.0.4), or in OpenMetrics text when
//! the scraper asks for it (`Accept: application/openmetrics-text`, as Prometheus does). The gauges
//! that describe the server's state (hashing queue and permits, database, signing keys, revocation
//! view and watchers) are read just before encoding.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};
use prometheus_client::encoding::{prometheus_text, text};

use super::registry::Snapshot;
use crate::http::SidePort;
use crate::state::AppState;

/// Content type of the OpenMetrics text format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The state the scrape-time gauges show.
fn snapshot(app: &AppState) -> Snapshot {
    let (queued, in_use, permits) = app.hasher.occupancy();
    let keys = app.keys.counts();
    Snapshot {
        hash_queue_depth: queued,
        hash_permits_in_use: in_use,
        hash_permits: permits,
        database_up: app.database.is_up(),
        signing_keys: [keys.current, keys.next, keys.retired],
        revocation_head: app.revocations.head(),
        revocation_view_entries: app.revocations.len(),
        revocation_lag: app.revocations.lag(),
        revocation_watchers: app.watchers.connected(),
    }
}

fn wants_openmetrics(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().starts_with("application/openmetrics-text"))
}

pub(in crate::http) async fn get(
    State(side): State<Arc<SidePort>>,
    headers: HeaderMap,
) -> Response {
    let metrics = &side.app.metrics;
    metrics.set_snapshot(&snapshot(&side.app));
    let mut body = String::with_capacity(32 * 1024);
    let (encoded, content_type) = if wants_openmetrics(&headers) {
        (text::encode(&mut body, metrics.registry()), OPENMETRICS)
    } else {
        (
            prometheus_text::encode(&mut body, metrics.registry()),
            prometheus_text::CONTENT_TYPE,
        )
    };
    if let Err(e) = encoded {
        tracing::error!(error = %e, "encoding metrics failed");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-store")],
        body,
    )
        .into_response()
}
