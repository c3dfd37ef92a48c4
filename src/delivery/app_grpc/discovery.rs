//! Programmatic subscriptions of a gRPC app: `AppCallback.
//! ListTopicSubscriptions`, called as daprd calls it. UNIMPLEMENTED means "none"; a
//! subscription without routes gets one catch-all rule with an empty path,
//! which is the path a gRPC app then sees in `OnTopicEvent`.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::{Code, Request};

use super::endpoint;
use crate::config::model::{BulkSubscribe, RouteRule, SubscriptionKind, SubscriptionSpec};
use crate::config::Settings;
use crate::delivery::discovery::DISCOVERY_BACKOFF;
use crate::proto::app_callback_client::AppCallbackClient;
use crate::proto::TopicSubscription;

/// daprd's `DaprBuiltInInitializationRetries`: 500 ms exponential, 3 retries.
const DISCOVERY_RETRIES: u32 = 3;
/// Longest one discovery call may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One `TopicSubscription` as a subscription spec; `None` (with a warning)
/// without pubsub name or topic.
pub fn to_spec(s: TopicSubscription) -> Option<SubscriptionSpec> {
    if s.pubsub_name.is_empty() || s.topic.is_empty() {
        tracing::warn!(pubsub = %s.pubsub_name, topic = %s.topic,
            "Ignoring app subscription without pubsub name or topic.");
        return None;
    }
    let mut rules = Vec::new();
    let mut default = String::new();
    if let Some(routes) = s.routes {
        rules.extend(routes.rules.into_iter().map(|r| RouteRule {
            match_expr: r.r#match,
            path: r.path,
        }));
        default = routes.default;
    }
    if !default.is_empty() || rules.is_empty() {
        rules.push(RouteRule {
            match_expr: String::new(),
            path: default,
        });
    }
    let bulk = s.bulk_subscribe.map_or_else(BulkSubscribe::default, |b| {
        crate::delivery::discovery::bulk_settings(
            b.enabled,
            i64::from(b.max_messages_count),
            i64::from(b.max_await_duration_ms),
        )
    });
    Some(SubscriptionSpec {
        name: format!("{}-{}", s.pubsub_name, s.topic),
        pubsub_name: s.pubsub_name,
        topic: s.topic,
        rules,
        dead_letter_topic: Some(s.dead_letter_topic).filter(|t| !t.is_empty()),
        metadata: s.metadata.into_iter().collect(),
        bulk,
        scopes: Vec::new(),
        kind: SubscriptionKind::Programmatic,
    })
}

/// Waits (until `cancel`) for the app port to accept TCP, then calls
/// `ListTopicSubscriptions` with daprd's retries. UNIMPLEMENTED → none.
pub async fn discover_grpc(
    settings: &Settings,
    cancel: &CancellationToken,
) -> Vec<SubscriptionSpec> {
    if !crate::delivery::discovery::wait_for_app_port(settings, cancel).await {
        return Vec::new();
    }
    let endpoint = match endpoint(settings) {
        Ok(e) => e,
        Err(err) => {
            tracing::error!(error = %err, "Cannot address the gRPC app.");
            return Vec::new();
        }
    };
    let mut client = AppCallbackClient::new(endpoint.connect_lazy());
    for retry in 0..=DISCOVERY_RETRIES {
        let mut req = Request::new(());
        req.set_timeout(REQUEST_TIMEOUT);
        if let Ok(v) = settings.app_id.parse() {
            req.metadata_mut().insert("dapr-app-id", v);
        }
        if let Some(Ok(token)) = settings
            .app_api_token
            .as_ref()
            .map(|t| t.expose())
            .map(str::parse)
        {
            req.metadata_mut().insert("dapr-api-token", token);
        }
        let outcome = tokio::select! {
            _ = cancel.cancelled() => return Vec::new(),
            r = client.list_topic_subscriptions(req) => r,
        };
        match outcome {
            Ok(resp) => {
                let subs: Vec<_> = resp
                    .into_inner()
                    .subscriptions
                    .into_iter()
                    .filter_map(to_spec)
                    .collect();
                tracing::info!(count = subs.len(), "Read the gRPC app's subscriptions.");
                return subs;
            }
            Err(status) if status.code() == Code::Unimplemented => {
                tracing::info!("The gRPC app lists no subscriptions (UNIMPLEMENTED).");
                return Vec::new();
            }
            Err(status) => tracing::warn!(code = ?status.code(), error = %status.message(),
                attempt = retry + 1, "ListTopicSubscriptions failed."),
        }
        if retry < DISCOVERY_RETRIES {
            tokio::select! {
                _ = cancel.cancelled() => return Vec::new(),
                _ = tokio::time::sleep(DISCOVERY_BACKOFF.delay(retry)) => {}
            }
        }
    }
    tracing::error!("Giving up on ListTopicSubscriptions; no programmatic subscriptions.");
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{BulkSubscribeConfig, TopicRoutes, TopicRule};

    fn sub(routes: Option<TopicRoutes>) -> TopicSubscription {
        TopicSubscription {
            pubsub_name: "ps".into(),
            topic: "t".into(),
            routes,
            ..Default::default()
        }
    }

    #[test]
    fn no_routes_is_one_catch_all_with_an_empty_path() {
        let spec = to_spec(sub(None)).unwrap();
        assert_eq!(spec.rules, vec![RouteRule::default()]);
        assert_eq!(spec.kind, SubscriptionKind::Programmatic);
    }

    #[test]
    fn rules_in_order_then_the_default() {
        let routes = TopicRoutes {
            rules: vec![TopicRule {
                r#match: "event.type == 'a'".into(),
                path: "/a".into(),
            }],
            default: "/d".into(),
        };
        let mut s = sub(Some(routes));
        s.dead_letter_topic = "dlq".into();
        s.bulk_subscribe = Some(BulkSubscribeConfig {
            enabled: true,
            max_messages_count: 0,
            max_await_duration_ms: 5,
        });
        let spec = to_spec(s).unwrap();
        let paths: Vec<_> = spec.rules.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["/a", "/d"]);
        assert_eq!(spec.rules[1].match_expr, "");
        assert_eq!(spec.dead_letter_topic.as_deref(), Some("dlq"));
        assert!(spec.bulk.enabled);
        assert_eq!(spec.bulk.max_messages_count, 100, "0 means the default");
        assert_eq!(spec.bulk.max_await_duration_ms, 5);
    }

    #[test]
    fn rules_without_default_get_no_catch_all() {
        let routes = TopicRoutes {
            rules: vec![TopicRule {
                r#match: "true".into(),
                path: "/x".into(),
            }],
            default: String::new(),
        };
        assert_eq!(to_spec(sub(Some(routes))).unwrap().rules.len(), 1);
        let mut nameless = sub(None);
        nameless.topic.clear();
        assert!(to_spec(nameless).is_none());
    }
}
