//! The gRPC app channel (`--app-protocol grpc`): calls the app's
//! `AppCallback` service and maps its answers as daprd does (`docs/grpc.md`).
//!
//! - `OnTopicEvent` answers SUCCESS / RETRY / DROP; an unknown enum value
//!   retries; any gRPC error retries, except UNIMPLEMENTED (the app has no
//!   handler for this pubsub/topic/path). daprd acks that silently; sidebus
//!   treats it as DROP, so it is dead-lettered when the subscription has a
//!   dead-letter topic instead of vanishing.
//! - Bulk goes to `AppCallback.OnBulkTopicEvent`, falling back to
//!   `AppCallbackAlpha.OnBulkTopicEventAlpha1` when the app answers
//!   UNIMPLEMENTED (older SDKs); the choice is remembered.
//! - Broker metadata travels as gRPC request metadata (keys that are not
//!   valid metadata names, and binary `*-bin` keys, are skipped), plus
//!   `dapr-api-token` when `APP_API_TOKEN` is set.

mod discovery;
mod request;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request};

pub use discovery::{discover_grpc, to_spec};
pub use request::{bulk_request, to_proto_value, topic_event_request, BULK_EVENT_TYPE};

use super::channel::{AppChannel, AppEvent, AppResult, BulkAppRequest};
use super::forward::forwardable;
use crate::config::Settings;
use crate::delivery::app_http::ATTEMPT_TIMEOUT;
use crate::proto::app_callback_alpha_client::AppCallbackAlphaClient;
use crate::proto::app_callback_client::AppCallbackClient;
use crate::proto::topic_event_response::TopicEventResponseStatus;

/// Largest answer the app may send.
const MAX_ANSWER_BYTES: usize = 4 << 20;

/// Delivers over gRPC (HTTP/2, one multiplexed connection) to
/// `{app_channel_address}:{app_port}`.
#[derive(Debug)]
pub struct GrpcAppChannel {
    channel: Channel,
    app_token: Option<AsciiMetadataValue>,
    /// Set once the app answered UNIMPLEMENTED to `OnBulkTopicEvent`.
    alpha_bulk: AtomicBool,
}

/// `http://addr:port` for the app of `settings`, bracketing IPv6 literals.
pub(crate) fn endpoint(settings: &Settings) -> Result<Endpoint, tonic::transport::Error> {
    let url = crate::delivery::app_http::base_url(settings);
    Ok(Endpoint::from_shared(url)?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true))
}

impl GrpcAppChannel {
    /// A channel to the app of `settings`; connects lazily (and reconnects)
    /// on first use.
    pub fn new(settings: &Settings) -> Result<Self, tonic::transport::Error> {
        let channel = endpoint(settings)?.connect_lazy();
        let app_token = settings
            .app_api_token
            .as_ref()
            .map(|t| t.expose())
            .and_then(|t| AsciiMetadataValue::try_from(t).ok());
        Ok(Self {
            channel,
            app_token,
            alpha_bulk: AtomicBool::new(false),
        })
    }

    fn request<T>(&self, body: T, metadata: &crate::broker::Metadata, pubsub: &str) -> Request<T> {
        let mut req = Request::new(body);
        req.set_timeout(ATTEMPT_TIMEOUT);
        let md = req.metadata_mut();
        copy_metadata(md, metadata);
        insert(md, "pubsubname", pubsub);
        if let Some(token) = &self.app_token {
            md.insert("dapr-api-token", token.clone());
        }
        req
    }
}

fn insert(md: &mut MetadataMap, key: &str, value: &str) {
    let key = key.to_ascii_lowercase();
    if let (Ok(k), Ok(v)) = (
        AsciiMetadataKey::from_bytes(key.as_bytes()),
        AsciiMetadataValue::try_from(value),
    ) {
        md.insert(k, v);
    }
}

fn copy_metadata(md: &mut MetadataMap, metadata: &crate::broker::Metadata) {
    for (k, v) in metadata.iter().filter(|(k, _)| forwardable(k)) {
        insert(md, k, v);
    }
}

/// daprd's mapping of an `OnTopicEvent` status enum value.
pub fn map_status(status: i32) -> AppResult {
    match TopicEventResponseStatus::try_from(status) {
        Ok(TopicEventResponseStatus::Success) => AppResult::Success,
        Ok(TopicEventResponseStatus::Retry) => AppResult::Retry("app answered RETRY".into()),
        Ok(TopicEventResponseStatus::Drop) => AppResult::Drop("app answered DROP".into()),
        Err(_) => AppResult::Retry(format!("app answered unknown status {status}")),
    }
}

fn map_error(status: &tonic::Status) -> AppResult {
    if status.code() == Code::Unimplemented {
        AppResult::Drop(format!(
            "app has no handler for this event (UNIMPLEMENTED): {}",
            status.message()
        ))
    } else {
        AppResult::Retry(format!(
            "app call failed: {:?}: {}",
            status.code(),
            status.message()
        ))
    }
}

#[async_trait]
impl AppChannel for GrpcAppChannel {
    async fn deliver(&self, ev: &AppEvent) -> AppResult {
        let mut client = AppCallbackClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_ANSWER_BYTES);
        let req = self.request(topic_event_request(ev), &ev.metadata, &ev.pubsub_name);
        match client.on_topic_event(req).await {
            Ok(resp) => map_status(resp.into_inner().status),
            Err(status) => map_error(&status),
        }
    }

    async fn deliver_bulk(&self, req: &BulkAppRequest) -> Vec<(String, AppResult)> {
        let body = bulk_request(req);
        let mut answer = None;
        if !self.alpha_bulk.load(Ordering::Relaxed) {
            let mut client = AppCallbackClient::new(self.channel.clone())
                .max_decoding_message_size(MAX_ANSWER_BYTES);
            let call = self.request(body.clone(), &req.metadata, &req.pubsub_name);
            match client.on_bulk_topic_event(call).await {
                Err(status) if status.code() == Code::Unimplemented => {
                    tracing::info!("App has no OnBulkTopicEvent; using OnBulkTopicEventAlpha1.");
                    self.alpha_bulk.store(true, Ordering::Relaxed);
                }
                other => answer = Some(other),
            }
        }
        let answer = match answer {
            Some(a) => a,
            None => {
                let mut client = AppCallbackAlphaClient::new(self.channel.clone())
                    .max_decoding_message_size(MAX_ANSWER_BYTES);
                let call = self.request(body, &req.metadata, &req.pubsub_name);
                client.on_bulk_topic_event_alpha1(call).await
            }
        };
        let ids = req.entries.iter().map(|e| e.entry_id.clone());
        match answer {
            Ok(resp) => {
                let statuses = resp.into_inner().statuses;
                // A missing entry retries, as daprd does.
                ids.map(|id| {
                    let result = statuses
                        .iter()
                        .find(|s| s.entry_id == id)
                        .map(|s| map_status(s.status))
                        .unwrap_or_else(|| AppResult::Retry("app gave no status".into()));
                    (id, result)
                })
                .collect()
            }
            Err(status) => {
                let result = map_error(&status);
                ids.map(|id| (id, result.clone())).collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_mapping_follows_daprd() {
        assert_eq!(map_status(0), AppResult::Success);
        assert!(matches!(map_status(1), AppResult::Retry(_)));
        assert!(matches!(map_status(2), AppResult::Drop(_)));
        assert!(
            matches!(map_status(7), AppResult::Retry(_)),
            "unknown → retry"
        );
        assert!(matches!(
            map_error(&tonic::Status::unimplemented("x")),
            AppResult::Drop(_)
        ));
        assert!(matches!(
            map_error(&tonic::Status::unavailable("x")),
            AppResult::Retry(_)
        ));
    }

    #[test]
    fn metadata_keys_that_cannot_travel_are_skipped() {
        let mut md = MetadataMap::new();
        let broker: crate::broker::Metadata = [
            ("__key", "k"),
            ("Kafka-Header", "v"),
            ("trace-bin", "x"),
            ("bad key", "v"),
            ("grpc-timeout", "1S"),
            ("authorization", "Bearer stolen"),
            ("Cookie", "session=1"),
            ("dapr-api-token", "forged"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        copy_metadata(&mut md, &broker);
        assert_eq!(md.get("__key").unwrap(), "k");
        assert_eq!(md.get("kafka-header").unwrap(), "v");
        assert!(md.get("trace-bin").is_none() && md.get("grpc-timeout").is_none());
        for denied in ["authorization", "cookie", "dapr-api-token"] {
            assert!(md.get(denied).is_none(), "{denied} reached the app");
        }
        assert_eq!(md.len(), 2);
    }
}
