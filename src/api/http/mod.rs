//! daprd's HTTP API (`/v1.0/...`): the router, the API-token check, the body
//! limit, and the server loop with graceful stop. Handlers live one file per
//! area; [`router`] is testable without binding a port.

mod bulk;
mod health;
mod metadata;
mod publish;
mod shutdown;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{ALLOW, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use axum::serve::ListenerExt;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::error::ApiError;
use crate::runtime::Runtime;

/// Header carrying the API token (daprd's `dapr-api-token`).
pub const API_TOKEN_HEADER: &str = "dapr-api-token";

/// Routes that never need the API token (probes must work without it).
const TOKEN_EXEMPT: &[&str] = &["/v1.0/healthz", "/v1.0/healthz/outbound"];

/// The HTTP API router over `runtime`.
pub fn router(runtime: Arc<Runtime>) -> Router {
    let publish_routes = post(publish::publish).put(publish::publish);
    let bulk_routes = post(bulk::bulk_publish).put(bulk::bulk_publish);
    Router::new()
        .route("/v1.0/publish/", publish_routes.clone())
        .route("/v1.0/publish/{*rest}", publish_routes)
        .route("/v1.0-alpha1/publish/bulk/", bulk_routes.clone())
        .route("/v1.0-alpha1/publish/bulk/{*rest}", bulk_routes.clone())
        .route("/v1.0/publish/bulk/", bulk_routes.clone())
        .route("/v1.0/publish/bulk/{*rest}", bulk_routes)
        .route("/v1.0/healthz", get(health::healthz))
        .route("/v1.0/healthz/outbound", get(health::outbound))
        .route("/v1.0/metadata", get(metadata::get_metadata))
        .route("/v1.0/metadata/{key}", put(metadata::put_metadata))
        .route("/v1.0/shutdown", post(shutdown::shutdown))
        .fallback(any(not_found))
        .layer(middleware::from_fn_with_state(runtime.clone(), check_token))
        .layer(tower::util::MapResponseLayer::new(json_errors))
        .with_state(runtime)
}

/// Serves [`router`] on every listener until `shutdown` is cancelled, then
/// stops accepting and lets in-flight requests finish.
pub async fn serve(
    runtime: Arc<Runtime>,
    listeners: Vec<TcpListener>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = router(runtime);
    let mut servers = tokio::task::JoinSet::new();
    for listener in listeners {
        let addr = listener.local_addr()?;
        tracing::info!(%addr, "HTTP API listening.");
        let stop = shutdown.clone();
        // Small request/response pairs: Nagle's algorithm would add delay
        // to every publish answer.
        let listener = listener.tap_io(|tcp| {
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::debug!(error = %err, "Could not set TCP_NODELAY.");
            }
        });
        let server = axum::serve(listener, app.clone())
            .with_graceful_shutdown(async move { stop.cancelled_owned().await });
        servers.spawn(async move { server.await });
    }
    let mut result = Ok(());
    while let Some(done) = servers.join_next().await {
        let outcome = done.map_err(std::io::Error::other).and_then(|r| r);
        if let Err(err) = outcome {
            tracing::error!(error = %err, "HTTP API server failed.");
            // One listener failing takes the API down: stop the others too
            // rather than serve on half the addresses.
            shutdown.cancel();
            if result.is_ok() {
                result = Err(err);
            }
        }
    }
    tracing::info!("HTTP API stopped.");
    result
}

/// Rejects requests without the right `dapr-api-token` when a token is set.
async fn check_token(State(rt): State<Arc<Runtime>>, req: Request, next: Next) -> Response {
    let Some(expected) = rt
        .settings
        .api_token
        .as_ref()
        .map(|t| t.expose())
        .filter(|t| !t.is_empty())
    else {
        return next.run(req).await;
    };
    if TOKEN_EXEMPT.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(API_TOKEN_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if constant_time_eq(given, expected.as_bytes()) {
        next.run(req).await
    } else {
        ApiError::Unauthorized.into_response()
    }
}

/// Compares without an early exit, so the time taken does not reveal how
/// much of a guessed token was right. Only the length leaks, as with any
/// comparison that does not pad.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Reads a whole body, refusing it once it grows past `limit` bytes.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::BodyTooLarge { limit })
        }
        // The client went away mid-body: never act on a partial read.
        Err(err) => Err(ApiError::MalformedRequest(err.to_string())),
    }
}

/// Splits `<pubsub>/<topic...>` from a wildcard capture; the topic keeps
/// every further `/`.
pub(crate) fn split_pubsub_topic(rest: &str) -> (&str, &str) {
    rest.split_once('/').unwrap_or((rest, ""))
}

/// Every error the API returns carries daprd's JSON body with an
/// `errorCode`. axum answers a few requests itself, as plain text or with no
/// body at all: a known route called with another method (405), a path or
/// query it cannot decode (400). Those are rendered again here, keeping a
/// 405's `Allow` header. A plain function over the response (no boxed
/// middleware future), because it runs on every request.
fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let err = if status == StatusCode::METHOD_NOT_ALLOWED {
        ApiError::MethodNotAllowed
    } else {
        ApiError::MalformedUrl
    };
    let mut out = err.into_response();
    if let Some(allow) = resp.headers().get(ALLOW) {
        out.headers_mut().insert(ALLOW, allow.clone());
    }
    out
}

async fn not_found(req: Request) -> ApiError {
    ApiError::RouteNotFound {
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_matches_only_equal_tokens() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret1"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    /// Sends `method path` to the real router and returns status, headers
    /// and the JSON body (panics when the body is not JSON).
    async fn call(
        method: &str,
        path: &str,
    ) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
        use tower::ServiceExt;
        let rt = Arc::new(Runtime::new(crate::config::Settings::default(), Vec::new()));
        let req = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .expect("request");
        let resp = router(rt).oneshot(req).await.expect("infallible");
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.expect("body");
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{method} {path}: body is not JSON ({e}): {bytes:?}"));
        (parts.status, parts.headers, json)
    }

    #[tokio::test]
    async fn a_wrong_method_gets_405_with_daprds_error_body() {
        for (method, path) in [
            ("GET", "/v1.0/publish/pubsub/orders"),
            ("DELETE", "/v1.0/healthz"),
            ("POST", "/v1.0/metadata"),
        ] {
            let (status, headers, body) = call(method, path).await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_eq!(body["errorCode"], "ERR_METHOD_NOT_ALLOWED", "{body}");
            assert!(body["message"]
                .as_str()
                .is_some_and(|m| m.contains("Allow")));
            assert!(headers.get(ALLOW).is_some(), "Allow kept: {headers:?}");
        }
    }

    #[tokio::test]
    async fn an_undecodable_path_gets_400_with_daprds_error_body() {
        // %FF decodes to a byte that is not UTF-8: the path extractor refuses it.
        let (status, _, body) = call("PUT", "/v1.0/metadata/%FF").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["errorCode"], "ERR_MALFORMED_REQUEST", "{body}");
    }

    #[test]
    fn topic_keeps_slashes() {
        assert_eq!(split_pubsub_topic("ps/a/b/c"), ("ps", "a/b/c"));
        assert_eq!(split_pubsub_topic("ps/"), ("ps", ""));
        assert_eq!(split_pubsub_topic("ps"), ("ps", ""));
        assert_eq!(split_pubsub_topic("/t"), ("", "t"));
    }
}
