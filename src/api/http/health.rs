//! `GET /v1.0/healthz` and `GET /v1.0/healthz/outbound`: daprd's readiness
//! answers (204 or 500 with an error body). Both are exempt from the API
//! token so probes and SDK start-up checks work without it.

use std::sync::Arc;

use axum::extract::{Query, State};
use http::StatusCode;

use crate::api::error::ApiError;
use crate::runtime::Runtime;

/// Fully initialized: components, app channel and subscriptions. An optional
/// `?appid=` must name this sidecar's app.
pub(super) async fn healthz(
    State(rt): State<Arc<Runtime>>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<StatusCode, ApiError> {
    if !rt.readiness.app() {
        return Err(ApiError::HealthNotReady(
            "the app channel and subscriptions are not started yet".into(),
        ));
    }
    let asked = query
        .iter()
        .find(|(k, _)| k == "appid")
        .map(|(_, v)| v.as_str());
    match asked {
        Some(id) if !id.is_empty() && id != rt.app_id() => Err(ApiError::AppIdMismatch),
        _ => Ok(StatusCode::NO_CONTENT),
    }
}

/// Publishing works now: components initialized and each able to take an
/// event (its broker reachable, or an outbox in front). Does not wait for
/// the app.
pub(super) async fn outbound(State(rt): State<Arc<Runtime>>) -> Result<StatusCode, ApiError> {
    rt.outbound_health()
        .await
        .map(|()| StatusCode::NO_CONTENT)
        .map_err(ApiError::OutboundNotReady)
}
