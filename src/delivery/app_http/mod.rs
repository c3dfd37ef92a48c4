//! The HTTP app channel: POSTs events to the app's routes over a keep-alive
//! pool and maps the answers exactly as daprd does (`answers.rs`).

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

mod answers;

use answers::{bulk_body, map_answer, map_bulk_answer};

use super::channel::{AppChannel, AppEvent, AppResult, BulkAppRequest};
use super::forward::forwardable;
use super::prepare::attribute;
use crate::config::Settings;

/// Longest one delivery attempt may take, answer included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest answer body read; a longer one counts as unparseable.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Delivers over HTTP/1.1 to `http://{app_channel_address}:{app_port}`.
#[derive(Clone)]
pub struct HttpAppChannel {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    app_token: Option<HeaderValue>,
}

/// The keep-alive client shared by delivery and discovery.
pub(crate) fn client() -> Client<HttpConnector, Full<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .build(connector)
}

/// `http://addr:port`, bracketing IPv6 literals.
pub(crate) fn base_url(settings: &Settings) -> String {
    let addr = &settings.app_channel_address;
    let port = settings.app_port.unwrap_or(0);
    if addr.contains(':') && !addr.starts_with('[') {
        format!("http://[{addr}]:{port}")
    } else {
        format!("http://{addr}:{port}")
    }
}

impl HttpAppChannel {
    /// A channel to the app of `settings`.
    pub fn new(settings: &Settings) -> Self {
        let app_token = settings
            .app_api_token
            .as_ref()
            .map(|t| t.expose())
            .and_then(|t| HeaderValue::from_str(t).ok());
        Self {
            client: client(),
            base: base_url(settings),
            app_token,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.strip_prefix('/').unwrap_or(path))
    }

    fn request(
        &self,
        ev: &AppEvent,
        content_type: &'static str,
        body: Bytes,
    ) -> Option<Request<Full<Bytes>>> {
        let mut req = Request::post(self.url(&ev.path))
            .body(Full::new(body))
            .ok()?;
        let headers = req.headers_mut();
        for (k, v) in &ev.metadata {
            if !forwardable(k) {
                continue;
            }
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                headers.insert(name, value);
            }
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Ok(v) = HeaderValue::from_str(&ev.pubsub_name) {
            headers.insert("pubsubname", v);
        }
        for (name, value) in [
            ("traceparent", attribute(&ev.event, "traceparent")),
            ("tracestate", attribute(&ev.event, "tracestate")),
        ] {
            if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
                headers.insert(name, v);
            }
        }
        if let Some(token) = &self.app_token {
            headers.insert("dapr-api-token", token.clone());
        }
        Some(req)
    }

    /// Sends `req` and reads the answer within [`ATTEMPT_TIMEOUT`]; `Err` is
    /// a transport error or timeout. An over-long body reads as `None`.
    async fn send(&self, req: Request<Full<Bytes>>) -> Result<(StatusCode, Option<Bytes>), String> {
        let call = async {
            let resp = self.client.request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .ok()
                .map(|b| b.to_bytes());
            Ok((status, body))
        };
        match tokio::time::timeout(ATTEMPT_TIMEOUT, call).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {}s", ATTEMPT_TIMEOUT.as_secs())),
        }
    }
}

#[async_trait]
impl AppChannel for HttpAppChannel {
    async fn deliver(&self, ev: &AppEvent) -> AppResult {
        let Some(req) = self.request(ev, "application/cloudevents+json", ev.body.clone()) else {
            return AppResult::Drop(format!("route {:?} is not a valid URL path", ev.path));
        };
        match self.send(req).await {
            Ok((status, body)) => map_answer(status, body.as_deref()),
            Err(err) => AppResult::Retry(format!("app unreachable: {err}")),
        }
    }

    async fn deliver_bulk(&self, req: &BulkAppRequest) -> Vec<(String, AppResult)> {
        let ids: Vec<String> = req.entries.iter().map(|e| e.entry_id.clone()).collect();
        let all = |r: AppResult| ids.iter().map(|id| (id.clone(), r.clone())).collect();
        let Some(first) = req.entries.first() else {
            return Vec::new();
        };
        let body = match bulk_body(req) {
            Ok(b) => b,
            Err(err) => return all(AppResult::Drop(format!("cannot build bulk body: {err}"))),
        };
        // Per-entry broker metadata travels in the body; the request itself
        // carries only pubsubName, the token and the first entry's trace.
        let mut head = first.event.clone();
        head.metadata = crate::broker::Metadata::new();
        let Some(http_req) = self.request(&head, "application/json", body) else {
            return all(AppResult::Drop(format!(
                "route {:?} is not a valid URL path",
                req.path
            )));
        };
        match self.send(http_req).await {
            Ok((status, body)) => map_bulk_answer(&ids, status, body.as_deref()),
            Err(err) => all(AppResult::Retry(format!("app unreachable: {err}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_add_the_leading_slash_and_bracket_ipv6() {
        let mut s = Settings {
            app_port: Some(6000),
            ..Settings::default()
        };
        let ch = HttpAppChannel::new(&s);
        assert_eq!(ch.url("orders"), "http://127.0.0.1:6000/orders");
        assert_eq!(ch.url("/a/b"), "http://127.0.0.1:6000/a/b");
        s.app_channel_address = "::1".into();
        assert_eq!(base_url(&s), "http://[::1]:6000");
    }

    /// Publish metadata becomes broker metadata, which becomes headers: a
    /// publisher must not be able to hand the app credentials that look as
    /// if sidebus sent them, even with no APP_API_TOKEN set.
    #[test]
    fn credentials_in_metadata_never_reach_the_app() {
        let ch = HttpAppChannel::new(&Settings {
            app_port: Some(6000),
            app_api_token: None,
            ..Settings::default()
        });
        let metadata = [
            ("Authorization", "Bearer stolen"),
            ("cookie", "session=1"),
            ("dapr-api-token", "forged"),
            ("Connection", "close"),
            ("x-request-id", "r1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let ev = AppEvent {
            pubsub_name: "ps".into(),
            topic: "t".into(),
            path: "/orders".into(),
            body: Bytes::new(),
            event: serde_json::Map::new(),
            metadata,
        };
        let req = ch
            .request(&ev, "application/cloudevents+json", Bytes::new())
            .expect("request");
        let h = req.headers();
        for denied in ["authorization", "cookie", "dapr-api-token", "connection"] {
            assert!(h.get(denied).is_none(), "{denied} reached the app: {h:?}");
        }
        assert_eq!(
            h.get("x-request-id").map(|v| v.as_bytes()),
            Some(&b"r1"[..])
        );
    }
}
