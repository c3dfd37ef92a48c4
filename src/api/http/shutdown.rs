//! `POST /v1.0/shutdown`: starts a graceful shutdown (or, with
//! `dapr-force-shutdown: true`, asks `main` to exit at once with status 1)
//! and answers 204 straight away, as daprd does.

use std::sync::Arc;

use axum::extract::State;
use http::{HeaderMap, StatusCode};

use crate::runtime::Runtime;

/// Header that turns the shutdown into an immediate exit.
const FORCE_HEADER: &str = "dapr-force-shutdown";

pub(super) async fn shutdown(State(rt): State<Arc<Runtime>>, headers: HeaderMap) -> StatusCode {
    let force = headers
        .get(FORCE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::envelope::parse_bool)
        .unwrap_or(false);
    if force {
        tracing::warn!("Forced shutdown requested through the API.");
        rt.force_shutdown.cancel();
    } else {
        tracing::info!("Graceful shutdown requested through the API.");
        rt.shutdown.cancel();
    }
    StatusCode::NO_CONTENT
}
