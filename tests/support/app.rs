//! A real HTTP test app: records every request and answers per a script.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::eventually::assert_eventually;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;

/// One request the app received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Recorded {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What the app answers, after an optional delay.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
}

impl Answer {
    pub fn new(status: u16, body: &str) -> Self {
        Self {
            status,
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }
    pub fn success() -> Self {
        Self::new(200, r#"{"status":"SUCCESS"}"#)
    }
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// Decides the answer from the request and every earlier request.
pub type Script = Arc<dyn Fn(&Recorded, &[Recorded]) -> Answer + Send + Sync>;

#[derive(Clone)]
struct AppState {
    requests: Arc<Mutex<Vec<Recorded>>>,
    script: Script,
    current: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

pub struct TestApp {
    pub port: u16,
    requests: Arc<Mutex<Vec<Recorded>>>,
    peak: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

async fn handle(
    State(st): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let now = st.current.fetch_add(1, Ordering::SeqCst) + 1;
    st.peak.fetch_max(now, Ordering::SeqCst);
    let rec = Recorded {
        path: uri.path().to_string(),
        headers,
        body,
        at: Instant::now(),
    };
    let answer = {
        let mut reqs = st.requests.lock().unwrap();
        let a = (st.script)(&rec, &reqs);
        reqs.push(rec);
        a
    };
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    st.current.fetch_sub(1, Ordering::SeqCst);
    (StatusCode::from_u16(answer.status).unwrap(), answer.body)
}

impl TestApp {
    /// Starts on a free port of 127.0.0.1.
    pub async fn start(script: Script) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, script)
    }

    /// Starts on `port` (which must be free).
    pub async fn start_on(port: u16, script: Script) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        Self::serve(listener, script)
    }

    fn serve(listener: tokio::net::TcpListener, script: Script) -> Self {
        let port = listener.local_addr().unwrap().port();
        let st = AppState {
            requests: Arc::default(),
            script,
            current: Arc::default(),
            peak: Arc::default(),
        };
        let (requests, peak) = (st.requests.clone(), st.peak.clone());
        let router = axum::Router::new().fallback(handle).with_state(st);
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self {
            port,
            requests,
            peak,
            server,
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// Requests to paths other than `/dapr/subscribe`.
    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    /// Highest number of requests the app was handling at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` requests arrived.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Recorded> {
        assert_eventually!(
            format!("{n} requests to the app (observed: how many)"),
            within,
            self.count(),
            |got: &usize| *got >= n
        );
        self.requests()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A port that was free a moment ago.
pub async fn free_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}
