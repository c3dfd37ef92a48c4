//! Servers inside the bench process: a bare HTTP server answering 204 (the
//! loopback ceiling a sidecar's HTTP edge is compared with) and the
//! receiving app that records publish → delivery latency.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use tokio::net::TcpListener;

use crate::load::unix_nanos;

/// Most delivery samples kept (bounded: 10,000 ev/s × 60 s).
const MAX_SAMPLES: usize = 600_000;

/// Starts a bare server answering every POST with 204; returns its port.
pub async fn bare_204() -> std::io::Result<u16> {
    let app = Router::new().fallback(post(|| async { StatusCode::NO_CONTENT }));
    serve(app).await
}

async fn serve(app: Router) -> std::io::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(%err, "bench server stopped");
        }
    });
    Ok(port)
}

/// What the receiving app has recorded.
#[derive(Default)]
pub struct AppState {
    /// Delivery latencies (µs) from the event's scheduled send time.
    pub lat_us: Mutex<Vec<u64>>,
    /// When set, deliveries to `/stall` never answer (a stalled app).
    pub stall: AtomicBool,
}

impl AppState {
    /// Takes the recorded samples, leaving an empty buffer.
    pub fn take(&self) -> Vec<u64> {
        self.lat_us
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }

    /// Samples recorded so far.
    pub fn count(&self) -> usize {
        self.lat_us.lock().map(|v| v.len()).unwrap_or(0)
    }
}

/// Starts the receiving app: subscribes to topic `deliver` (route
/// `/deliver`) and `stall` (route `/stall`) on component `pubsub`.
pub async fn receiving_app(state: Arc<AppState>) -> std::io::Result<u16> {
    let subs = serde_json::json!([
        {"pubsubname": "pubsub", "topic": "deliver", "route": "/deliver"},
        {"pubsubname": "pubsub", "topic": "stall", "route": "/stall"}
    ]);
    let app = Router::new()
        .route("/dapr/subscribe", get(move || async move { Json(subs) }))
        .route("/deliver", post(deliver))
        .route("/stall", post(stall))
        .with_state(state);
    serve(app).await
}

async fn deliver(State(st): State<Arc<AppState>>, body: Bytes) -> StatusCode {
    let now = unix_nanos();
    // The CloudEvent's `data` is the bench's JSON object carrying `t`.
    let sent = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v.get("data")
                .and_then(|d| d.get("t"))
                .and_then(|t| t.as_u64())
        });
    if let (Some(t), Ok(mut v)) = (sent, st.lat_us.lock()) {
        if v.len() < MAX_SAMPLES {
            v.push(now.saturating_sub(t) / 1000);
        }
    }
    StatusCode::OK
}

async fn stall(State(st): State<Arc<AppState>>) -> StatusCode {
    while st.stall.load(Ordering::Relaxed) {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    StatusCode::OK
}
