//! The HTTP app channel: POSTs events to the app's routes over a keep-alive
//! pool and maps the answers exactly as daprd does (contract §1.4, §1.5).

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};

use super::prepare::attribute;
use super::{AppChannel, AppEvent, AppResult, BulkAppRequest};
use crate::config::Settings;

/// Longest one delivery attempt may take, answer included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest answer body read; a longer one counts as unparseable.
const MAX_ANSWER_BYTES: usize = 1 << 20;
/// Headers that belong to one hop and must not be copied from the broker.
const SKIPPED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "content-type",
];

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
            .as_deref()
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
            let lower = k.to_ascii_lowercase();
            if SKIPPED.contains(&lower.as_str()) || lower.ends_with("-bin") {
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

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    status: String,
}

/// Maps a single-delivery answer (contract §1.4).
pub(crate) fn map_answer(status: StatusCode, body: Option<&[u8]>) -> AppResult {
    if status.is_success() {
        let parsed = body
            .filter(|b| !b.is_empty())
            .and_then(|b| serde_json::from_slice::<Answer>(b).ok());
        return match parsed.as_ref().map(|a| a.status.as_str()) {
            None | Some("") | Some("SUCCESS") => AppResult::Success,
            Some("DROP") => AppResult::Drop("app answered DROP".into()),
            Some("RETRY") => AppResult::Retry("app answered RETRY".into()),
            Some(other) => AppResult::Retry(format!("unknown status {other:?}")),
        };
    }
    if status == StatusCode::NOT_FOUND {
        return AppResult::Drop("app answered 404 Not Found".into());
    }
    AppResult::Retry(format!("app answered HTTP {}", status.as_u16()))
}

#[derive(Deserialize)]
struct BulkAnswer {
    statuses: Vec<BulkStatus>,
}

#[derive(Deserialize)]
struct BulkStatus {
    #[serde(rename = "entryId", default)]
    entry_id: String,
    #[serde(default)]
    status: String,
}

/// Maps a bulk answer to one result per entry id (contract §1.5).
pub(crate) fn map_bulk_answer(
    ids: &[String],
    status: StatusCode,
    body: Option<&[u8]>,
) -> Vec<(String, AppResult)> {
    let all = |r: AppResult| ids.iter().map(|id| (id.clone(), r.clone())).collect();
    if status == StatusCode::NOT_FOUND {
        return all(AppResult::Drop("app answered 404 Not Found".into()));
    }
    if !status.is_success() {
        return all(AppResult::Retry(format!(
            "app answered HTTP {}",
            status.as_u16()
        )));
    }
    let Some(answer) = body.and_then(|b| serde_json::from_slice::<BulkAnswer>(b).ok()) else {
        return all(AppResult::Retry("unparseable bulk answer".into()));
    };
    ids.iter()
        .map(|id| {
            let found = answer.statuses.iter().find(|s| &s.entry_id == id);
            let result = match found.map(|s| s.status.as_str()) {
                Some("SUCCESS") => AppResult::Success,
                Some("DROP") => AppResult::Drop("app answered DROP".into()),
                Some("RETRY") => AppResult::Retry("app answered RETRY".into()),
                None | Some("") => AppResult::Retry("no status for entry".into()),
                Some(other) => AppResult::Retry(format!("unknown status {other:?}")),
            };
            (id.clone(), result)
        })
        .collect()
}

#[derive(Serialize)]
struct BulkBody<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    topic: &'a str,
    pubsubname: &'a str,
    metadata: &'a crate::broker::Metadata,
    entries: Vec<BulkBodyEntry<'a>>,
}

#[derive(Serialize)]
struct BulkBodyEntry<'a> {
    #[serde(rename = "entryId")]
    entry_id: &'a str,
    event: serde_json::Value,
    metadata: &'a crate::broker::Metadata,
    #[serde(rename = "contentType")]
    content_type: &'static str,
}

/// The §1.5 request body.
pub(crate) fn bulk_body(req: &BulkAppRequest) -> Result<Bytes, serde_json::Error> {
    let mut entries = Vec::with_capacity(req.entries.len());
    for e in &req.entries {
        let (event, content_type) = match &e.raw_data {
            Some(raw) => (
                serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(raw)),
                "application/octet-stream",
            ),
            None => (
                serde_json::from_slice(&e.event.body)?,
                "application/cloudevents+json",
            ),
        };
        entries.push(BulkBodyEntry {
            entry_id: &e.entry_id,
            event,
            metadata: &e.event.metadata,
            content_type,
        });
    }
    let body = BulkBody {
        id: &req.id,
        kind: "com.dapr.event.sent.bulk",
        topic: &req.topic,
        pubsubname: &req.pubsub_name,
        metadata: &req.metadata,
        entries,
    };
    serde_json::to_vec(&body).map(Bytes::from)
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

    fn single(status: u16, body: &str) -> AppResult {
        map_answer(StatusCode::from_u16(status).unwrap(), Some(body.as_bytes()))
    }

    #[test]
    fn single_answers_map_as_daprd() {
        for (status, body) in [
            (200, ""),
            (200, "nonsense"),
            (200, r#"{"status":"SUCCESS"}"#),
            (200, r#"{"status":""}"#),
            (200, "{}"),
            (200, r#"{"status":5}"#),
            (201, r#"{"status":"SUCCESS"}"#),
        ] {
            assert_eq!(single(status, body), AppResult::Success, "{status} {body}");
        }
        assert!(matches!(
            map_answer(StatusCode::OK, None),
            AppResult::Success
        ));
        for (status, body) in [
            (200, r#"{"status":"RETRY"}"#),
            (200, r#"{"status":"success"}"#),
            (200, r#"{"status":"drop"}"#),
            (500, ""),
            (429, r#"{"status":"SUCCESS"}"#),
            (302, ""),
        ] {
            assert!(
                matches!(single(status, body), AppResult::Retry(_)),
                "{status} {body}"
            );
        }
        for (status, body) in [
            (200, r#"{"status":"DROP"}"#),
            (404, ""),
            (404, r#"{"status":"RETRY"}"#),
        ] {
            assert!(
                matches!(single(status, body), AppResult::Drop(_)),
                "{status} {body}"
            );
        }
    }

    #[test]
    fn bulk_answers_map_per_entry() {
        let ids: Vec<String> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let body =
            br#"{"statuses":[{"entryId":"a","status":"SUCCESS"},{"entryId":"b","status":"DROP"},
            {"entryId":"c","status":"RETRY"},{"entryId":"d","status":""}]}"#;
        let got = map_bulk_answer(&ids, StatusCode::OK, Some(body));
        let kinds: Vec<&str> = got
            .iter()
            .map(|(_, r)| match r {
                AppResult::Success => "S",
                AppResult::Drop(_) => "D",
                AppResult::Retry(_) => "R",
            })
            .collect();
        assert_eq!(kinds, ["S", "D", "R", "R", "R"]);
        let all = |status: u16, body: &[u8]| {
            map_bulk_answer(&ids, StatusCode::from_u16(status).unwrap(), Some(body))
                .into_iter()
                .map(|(_, r)| r)
                .collect::<Vec<_>>()
        };
        assert!(all(200, b"garbage")
            .iter()
            .all(|r| matches!(r, AppResult::Retry(_))));
        assert!(all(404, b"")
            .iter()
            .all(|r| matches!(r, AppResult::Drop(_))));
        assert!(all(500, br#"{"statuses":[]}"#)
            .iter()
            .all(|r| matches!(r, AppResult::Retry(_))));
    }

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
}
