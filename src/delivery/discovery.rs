//! Programmatic subscriptions over HTTP: daprd's `GET /dapr/subscribe` on the
//! app, and how they merge with declarative ones ([`merge`]).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::app_http::{base_url, client};
use crate::backoff::Backoff;
use crate::config::model::{BulkSubscribe, RouteRule, SubscriptionKind, SubscriptionSpec};
use crate::config::Settings;

/// daprd's `DaprBuiltInInitializationRetries`: 500 ms exponential, 3 retries.
const DISCOVERY_RETRIES: u32 = 3;
/// Delays between discovery attempts (HTTP and gRPC): daprd's
/// initialization retries, 500 ms doubling, not jittered.
pub(crate) const DISCOVERY_BACKOFF: Backoff =
    Backoff::exponential(Duration::from_millis(500), Duration::from_secs(10)).with_jitter(0.0);
/// How often to probe the app port while waiting for it.
const PORT_PROBE_INTERVAL: Duration = Duration::from_millis(50);
/// Largest `/dapr/subscribe` answer read.
const MAX_ANSWER_BYTES: usize = 4 << 20;
/// Longest one discovery request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize)]
struct SubscriptionJson {
    #[serde(default)]
    pubsubname: String,
    #[serde(default)]
    topic: String,
    #[serde(default)]
    route: String,
    #[serde(default)]
    routes: Option<RoutesJson>,
    #[serde(rename = "deadLetterTopic", default)]
    dead_letter_topic: String,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    #[serde(rename = "bulkSubscribe", default)]
    bulk_subscribe: Option<BulkJson>,
}

#[derive(Debug, Deserialize)]
struct RoutesJson {
    #[serde(default)]
    rules: Vec<RuleJson>,
    #[serde(default)]
    default: String,
}

#[derive(Debug, Deserialize)]
struct RuleJson {
    #[serde(rename = "match", default)]
    match_expr: String,
    #[serde(default)]
    path: String,
}

#[derive(Debug, Deserialize)]
struct BulkJson {
    #[serde(default)]
    enabled: bool,
    #[serde(rename = "maxMessagesCount", default)]
    max_messages_count: i64,
    #[serde(rename = "maxAwaitDurationMs", default)]
    max_await_duration_ms: i64,
}

/// Bulk settings an app asked for; zero, negative or out-of-range values
/// take daprd's defaults. Shared by HTTP and gRPC discovery.
pub(crate) fn bulk_settings(enabled: bool, max_messages: i64, max_await_ms: i64) -> BulkSubscribe {
    let defaults = BulkSubscribe::default();
    BulkSubscribe {
        enabled,
        max_messages_count: u32::try_from(max_messages)
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or(defaults.max_messages_count),
        max_await_duration_ms: u64::try_from(max_await_ms)
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or(defaults.max_await_duration_ms),
    }
}

fn to_spec(s: SubscriptionJson) -> Option<SubscriptionSpec> {
    let mut rules: Vec<RouteRule> = Vec::new();
    let mut default = s.route;
    if let Some(routes) = s.routes {
        rules.extend(routes.rules.into_iter().map(|r| RouteRule {
            match_expr: r.match_expr,
            path: r.path,
        }));
        if !routes.default.is_empty() {
            default = routes.default;
        }
    }
    if !default.is_empty() {
        rules.push(RouteRule {
            match_expr: String::new(),
            path: default,
        });
    }
    if s.pubsubname.is_empty() || s.topic.is_empty() || rules.is_empty() {
        tracing::warn!(pubsub = %s.pubsubname, topic = %s.topic,
            "Ignoring app subscription without pubsub name, topic or route.");
        return None;
    }
    let bulk = s.bulk_subscribe.map_or_else(BulkSubscribe::default, |b| {
        bulk_settings(b.enabled, b.max_messages_count, b.max_await_duration_ms)
    });
    Some(SubscriptionSpec {
        name: format!("{}-{}", s.pubsubname, s.topic),
        pubsub_name: s.pubsubname,
        topic: s.topic,
        rules,
        dead_letter_topic: Some(s.dead_letter_topic).filter(|t| !t.is_empty()),
        metadata: s.metadata,
        bulk,
        scopes: Vec::new(),
        kind: SubscriptionKind::Programmatic,
    })
}

/// Parses a `/dapr/subscribe` answer (v1 `route` and v2 `routes`).
pub fn parse_subscriptions(body: &[u8]) -> Result<Vec<SubscriptionSpec>, serde_json::Error> {
    let raw: Vec<SubscriptionJson> = serde_json::from_slice(body)?;
    Ok(raw.into_iter().filter_map(to_spec).collect())
}

/// Waits until the app port accepts TCP connections. False when there is no
/// app port or `cancel` fired first. Shared by HTTP and gRPC discovery.
pub(crate) async fn wait_for_app_port(settings: &Settings, cancel: &CancellationToken) -> bool {
    let Some(port) = settings.app_port else {
        return false;
    };
    let addr = (settings.app_channel_address.as_str(), port);
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return true;
        }
        tokio::select! {
            _ = cancel.cancelled() => return false,
            _ = tokio::time::sleep(PORT_PROBE_INTERVAL) => {}
        }
    }
}

/// Waits (until `cancel`) for the app port to accept TCP, then
/// `GET /dapr/subscribe` (header `dapr-app-id`) with daprd's retries;
/// 404 → none. Without an app port there is nothing to discover.
pub async fn discover_http(
    settings: &Settings,
    cancel: &CancellationToken,
) -> Vec<SubscriptionSpec> {
    if !wait_for_app_port(settings, cancel).await {
        return Vec::new();
    }
    let client = client();
    let url = format!("{}/dapr/subscribe", base_url(settings));
    for retry in 0..=DISCOVERY_RETRIES {
        let mut req = Request::get(&url);
        req = req.header("dapr-app-id", &settings.app_id);
        if let Some(token) = &settings.app_api_token {
            req = req.header("dapr-api-token", token.expose());
        }
        let Ok(req) = req.body(Full::new(Bytes::new())) else {
            tracing::error!(url = %url, "Cannot build the subscription discovery request.");
            return Vec::new();
        };
        let call = async {
            let resp = client.request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>((status, body))
        };
        let outcome = tokio::select! {
            _ = cancel.cancelled() => return Vec::new(),
            r = tokio::time::timeout(REQUEST_TIMEOUT, call) => r.unwrap_or_else(|_| Err("timed out".into())),
        };
        match outcome {
            Ok((StatusCode::NOT_FOUND, _)) => return Vec::new(),
            Ok((status, body)) if status.is_success() => {
                return match parse_subscriptions(&body) {
                    Ok(subs) => {
                        tracing::info!(count = subs.len(), "Read the app's subscriptions.");
                        subs
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "The app's /dapr/subscribe answer is not valid.");
                        Vec::new()
                    }
                };
            }
            Ok((status, _)) => tracing::warn!(
                status = status.as_u16(),
                attempt = retry + 1,
                "The app's /dapr/subscribe failed."
            ),
            Err(err) => tracing::warn!(error = %err, attempt = retry + 1,
                "The app's /dapr/subscribe failed."),
        }
        if retry < DISCOVERY_RETRIES {
            tokio::select! {
                _ = cancel.cancelled() => return Vec::new(),
                _ = tokio::time::sleep(DISCOVERY_BACKOFF.delay(retry)) => {}
            }
        }
    }
    tracing::error!("Giving up on the app's /dapr/subscribe; no programmatic subscriptions.");
    Vec::new()
}

/// Programmatic replaces declarative for the same (pubsub, topic); otherwise
/// both kept, declarative first. Within each kind the first one wins.
pub fn merge(
    declarative: Vec<SubscriptionSpec>,
    programmatic: Vec<SubscriptionSpec>,
) -> Vec<SubscriptionSpec> {
    let key = |s: &SubscriptionSpec| (s.pubsub_name.clone(), s.topic.clone());
    let mut seen_prog = HashSet::new();
    let programmatic: Vec<_> = programmatic
        .into_iter()
        .filter(|s| first_of(&mut seen_prog, key(s), s))
        .collect();
    let mut seen_decl = HashSet::new();
    let mut out: Vec<_> = declarative
        .into_iter()
        .filter(|s| !seen_prog.contains(&key(s)))
        .filter(|s| first_of(&mut seen_decl, key(s), s))
        .collect();
    out.extend(programmatic);
    out
}

fn first_of(
    seen: &mut HashSet<(String, String)>,
    k: (String, String),
    s: &SubscriptionSpec,
) -> bool {
    if seen.insert(k) {
        return true;
    }
    tracing::warn!(pubsub = %s.pubsub_name, topic = %s.topic, name = %s.name,
        "Ignoring a second subscription for the same pubsub and topic.");
    false
}
