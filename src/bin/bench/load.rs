//! Load generators: open-loop (fixed rate, latency from the scheduled send
//! time, so a stall cannot hide behind a slow sender — no coordinated
//! omission) and closed-loop (as fast as N connections allow).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Errors a load run can end with.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Could not connect or speak HTTP to the target.
    #[error("http: {0}")]
    Http(String),
    /// The target answered a status other than 2xx.
    #[error("unexpected status {0}")]
    Status(u16),
    /// A gRPC call failed (transport or a non-OK status).
    #[error("grpc: {0}")]
    Grpc(String),
}

/// An extra request header: name and value.
pub type Header = (http::header::HeaderName, http::header::HeaderValue);

/// One keep-alive HTTP/1.1 connection.
pub struct Conn {
    tx: SendRequest<Full<Bytes>>,
    host: String,
}

impl Conn {
    /// Connects to `127.0.0.1:port`.
    pub async fn open(port: u16) -> Result<Self, LoadError> {
        let tcp = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| LoadError::Http(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| LoadError::Http(e.to_string()))?;
        tokio::spawn(conn);
        Ok(Self {
            tx,
            host: format!("127.0.0.1:{port}"),
        })
    }

    /// Sends `method path` with `body` (and `extra`, an additional header
    /// such as `Authorization`), drains the answer and returns its status
    /// and body.
    pub async fn request(
        &mut self,
        method: http::Method,
        path: &str,
        ctype: &str,
        extra: Option<&Header>,
        body: Bytes,
    ) -> Result<(u16, Bytes), LoadError> {
        self.tx
            .ready()
            .await
            .map_err(|e| LoadError::Http(e.to_string()))?;
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, &self.host)
            .header(http::header::CONTENT_TYPE, ctype);
        if let Some((name, value)) = extra {
            req = req.header(name, value);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| LoadError::Http(e.to_string()))?;
        let resp = self
            .tx
            .send_request(req)
            .await
            .map_err(|e| LoadError::Http(e.to_string()))?;
        let status = resp.status().as_u16();
        // Drained so the connection can carry the next request.
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .map_err(|e| LoadError::Http(e.to_string()))?;
        Ok((status, body))
    }

    /// POSTs `body` to `path` and drains the answer; fails on a non-2xx status.
    pub async fn post(&mut self, path: &str, ctype: &str, body: Bytes) -> Result<(), LoadError> {
        self.post_with(path, ctype, None, body).await
    }

    /// [`Conn::post`] with an optional extra header (e.g. `Authorization`).
    pub async fn post_with(
        &mut self,
        path: &str,
        ctype: &str,
        extra: Option<&Header>,
        body: Bytes,
    ) -> Result<(), LoadError> {
        let (status, _) = self
            .request(http::Method::POST, path, ctype, extra, body)
            .await?;
        if !(200..300).contains(&status) {
            return Err(LoadError::Status(status));
        }
        Ok(())
    }

    /// GETs `path`; returns the status, or None on a transport error.
    pub async fn get_status(&mut self, path: &str) -> Option<u16> {
        self.request(http::Method::GET, path, "text/plain", None, Bytes::new())
            .await
            .ok()
            .map(|(status, _)| status)
    }
}

/// Nanoseconds since the Unix epoch (carried inside events so the app can
/// compute publish → delivery latency across processes).
pub fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A JSON event of about `size` bytes carrying its scheduled send time.
pub fn event(sched_unix_nanos: u64, size: usize) -> Bytes {
    let pad = "x".repeat(size.saturating_sub(40));
    Bytes::from(format!("{{\"t\":{sched_unix_nanos},\"p\":\"{pad}\"}}"))
}

/// Result of one open-loop run: latencies in microseconds and error count.
pub struct OpenLoop {
    /// Latency of every completed send, from its scheduled time (µs).
    pub lat_us: Vec<u64>,
    /// Sends that failed.
    pub errors: u64,
}

/// Runs `workers` concurrent senders at `rate` events/s in total for `dur`.
/// Sender `w` owns slots `w, w+workers, …`; slot `i` is due at
/// `t0 + i/rate`. `send(worker, slot, sched_unix_nanos)` performs one send.
pub async fn open_loop<S, F>(rate: u64, workers: usize, dur: Duration, send: S) -> OpenLoop
where
    S: Fn(usize, u64, u64) -> F + Send + Sync + 'static,
    F: Future<Output = Result<(), LoadError>> + Send,
{
    let total = rate * dur.as_secs();
    let period_ns = 1_000_000_000 / rate.max(1);
    let t0 = Instant::now() + Duration::from_millis(20);
    let unix0 = unix_nanos() + 20_000_000;
    let send = Arc::new(send);
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (send, errors) = (send.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity((total as usize / workers) + 1);
            let mut slot = w as u64;
            while slot < total {
                let offset = Duration::from_nanos(slot * period_ns);
                let due = t0 + offset;
                tokio::time::sleep_until(due.into()).await;
                match send(w, slot, unix0 + offset.as_nanos() as u64).await {
                    Ok(()) => lat.push(due.elapsed().as_micros() as u64),
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                slot += workers as u64;
            }
            lat
        }));
    }
    let mut lat_us = Vec::with_capacity(total as usize);
    for t in tasks {
        if let Ok(mut l) = t.await {
            lat_us.append(&mut l);
        }
    }
    OpenLoop {
        lat_us,
        errors: errors.load(Ordering::Relaxed),
    }
}

/// Runs `workers` senders back to back for `dur`; returns (completed sends,
/// errors, elapsed). `send(worker)` performs one send (which may carry many events).
pub async fn closed_loop<S, F>(workers: usize, dur: Duration, send: S) -> (u64, u64, Duration)
where
    S: Fn(usize) -> F + Send + Sync + 'static,
    F: Future<Output = Result<(), LoadError>> + Send,
{
    let send = Arc::new(send);
    let (ok, bad) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let start = Instant::now();
    let end = start + dur;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (send, ok, bad) = (send.clone(), ok.clone(), bad.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                // Bounded: a sidecar applying backpressure (stalled app,
                // full in-memory queue) must not hang the run past `end`.
                let left = end.saturating_duration_since(Instant::now()) + Duration::from_secs(1);
                match tokio::time::timeout(left, send(w)).await {
                    Ok(Ok(())) => ok.fetch_add(1, Ordering::Relaxed),
                    _ => bad.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    (
        ok.load(Ordering::Relaxed),
        bad.load(Ordering::Relaxed),
        start.elapsed(),
    )
}

/// `workers` connections to `port`, each behind its own async mutex so a
/// worker index maps to one connection.
pub async fn pool(
    port: u16,
    workers: usize,
) -> Result<Arc<Vec<tokio::sync::Mutex<Conn>>>, LoadError> {
    let mut v = Vec::with_capacity(workers);
    for _ in 0..workers {
        v.push(tokio::sync::Mutex::new(Conn::open(port).await?));
    }
    Ok(Arc::new(v))
}

/// Closed-loop POST of `body` to `path` on `conns` connections to `port`
/// (with an optional extra header); returns (completed, failed, elapsed).
pub async fn post_closed_loop(
    port: u16,
    path: &str,
    conns: usize,
    body: Bytes,
    extra: Option<Header>,
    dur: Duration,
) -> Result<(u64, u64, Duration), LoadError> {
    let pool = pool(port, conns).await?;
    let path: Arc<str> = path.into();
    let extra = Arc::new(extra);
    Ok(closed_loop(conns, dur, move |w| {
        let (pool, path, body, extra) = (pool.clone(), path.clone(), body.clone(), extra.clone());
        async move {
            pool[w]
                .lock()
                .await
                .post_with(&path, "application/json", (*extra).as_ref(), body)
                .await
        }
    })
    .await)
}
