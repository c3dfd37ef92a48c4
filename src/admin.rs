//! The admin port (`--metrics-port`, default 9090): liveness and readiness
//! probes for Kubernetes. Readiness follows the runtime's latches, so a pod
//! only receives traffic once components are built and the app channel is up.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::runtime::Runtime;

/// The admin routes: `/livez` (process is serving) and `/readyz` (components
/// initialized and subscriptions running).
pub fn router(runtime: Arc<Runtime>) -> Router {
    Router::new()
        .route("/livez", get(|| async { StatusCode::OK }))
        .route("/readyz", get(ready))
        .with_state(runtime)
}

async fn ready(State(rt): State<Arc<Runtime>>) -> (StatusCode, &'static str) {
    match (rt.readiness.outbound(), rt.readiness.app()) {
        (true, true) => (StatusCode::OK, "ready\n"),
        (false, _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "components not initialized\n",
        ),
        (true, false) => (StatusCode::SERVICE_UNAVAILABLE, "app channel not ready\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use tower::ServiceExt;

    async fn status(rt: &Arc<Runtime>, path: &str) -> StatusCode {
        let req = axum::http::Request::get(path)
            .body(axum::body::Body::empty())
            .unwrap();
        router(rt.clone()).oneshot(req).await.unwrap().status()
    }

    #[tokio::test]
    async fn readiness_follows_the_latches() {
        let rt = Arc::new(Runtime::new(Settings::default(), Vec::new()));
        assert_eq!(status(&rt, "/livez").await, StatusCode::OK);
        assert_eq!(
            status(&rt, "/readyz").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        rt.readiness.set_outbound(true);
        assert_eq!(
            status(&rt, "/readyz").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        rt.readiness.set_app(true);
        assert_eq!(status(&rt, "/readyz").await, StatusCode::OK);
    }
}
