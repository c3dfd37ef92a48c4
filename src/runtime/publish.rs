//! The publish path shared by the HTTP and gRPC edges: daprd's request
//! checks in daprd's order, the envelope, and the component call. Nothing
//! here knows about a transport; failures are [`PublishError`]s the edges
//! render.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;

use super::component::{ComponentError, ComponentHandle, PublishReceipt};
use super::error::PublishError;
use super::state::Runtime;
use crate::broker::{BrokerError, Feature, Metadata, PublishRequest, Unpublishable};
use crate::envelope::{self, EnvelopeError, PublishInput};

/// Most entries handed to a component without native bulk publish at once
/// (daprd's fan-out bound).
pub const BULK_FANOUT: usize = 100;

/// Component metadata key naming the CloudEvent attribute to key events by.
const PARTITION_KEY_ATTRIBUTE: &str = "partitionKeyAttribute";

/// One publish request, as any edge received it.
#[derive(Debug, Clone)]
pub struct PublishCall<'a> {
    /// Pub/sub component name.
    pub pubsub_name: &'a str,
    /// Destination topic (may contain `/`).
    pub topic: &'a str,
    /// The caller's payload.
    pub data: Bytes,
    /// The caller's content type (`None`: the envelope's default).
    pub content_type: Option<&'a str>,
    /// Request metadata (`metadata.*` query parameters / gRPC metadata map).
    pub metadata: Metadata,
    /// Incoming W3C `traceparent`.
    pub traceparent: Option<&'a str>,
    /// Incoming W3C `tracestate`.
    pub tracestate: Option<&'a str>,
}

/// One entry of a bulk publish, its event already converted to raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkEntry {
    /// The caller's id for the entry, unique within the request.
    pub entry_id: String,
    /// The event bytes.
    pub event: Bytes,
    /// Content type of `event`.
    pub content_type: String,
    /// Entry metadata; overlays the request metadata.
    pub metadata: Metadata,
}

/// One bulk entry the component did not accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkFailure {
    /// The entry's id.
    pub entry_id: String,
    /// Why it failed.
    pub error: String,
}

/// A request that passed the checks: the component and the topic.
struct Target<'r> {
    handle: &'r Arc<ComponentHandle>,
    pubsub: &'r str,
    topic: &'r str,
}

impl Runtime {
    /// daprd's request checks, in daprd's order: any component at all, a
    /// pubsub name, a known pubsub, a topic, then the topic scopes.
    fn check_target<'r>(
        &'r self,
        pubsub: &'r str,
        topic: &'r str,
    ) -> Result<Target<'r>, PublishError> {
        if self.components.is_empty() {
            return Err(PublishError::NotConfigured);
        }
        if pubsub.is_empty() {
            return Err(PublishError::PubsubEmpty);
        }
        let handle = self
            .component(pubsub)
            .ok_or_else(|| PublishError::PubsubNotFound(pubsub.to_string()))?;
        if topic.is_empty() {
            return Err(PublishError::TopicEmpty {
                pubsub: pubsub.to_string(),
            });
        }
        if !handle.scopes.may_publish(topic) {
            return Err(PublishError::Forbidden {
                pubsub: pubsub.to_string(),
                topic: topic.to_string(),
                app_id: self.app_id().to_string(),
            });
        }
        Ok(Target {
            handle,
            pubsub,
            topic,
        })
    }

    /// Builds the broker request for one event of `target`.
    fn publish_request(
        &self,
        target: &Target<'_>,
        data: &[u8],
        content_type: Option<&str>,
        metadata: Metadata,
        traceparent: Option<&str>,
        tracestate: Option<&str>,
    ) -> Result<PublishRequest, PublishError> {
        let input = PublishInput {
            app_id: self.app_id(),
            pubsub_name: target.pubsub,
            topic: target.topic,
            data,
            content_type,
            metadata: &metadata,
            traceparent,
            tracestate,
            native_ttl: target
                .handle
                .pubsub
                .features()
                .contains(&Feature::MessageTtl),
            partition_key_attribute: target.handle.metadata(PARTITION_KEY_ATTRIBUTE),
        };
        let env = envelope::build(&input).map_err(|e| envelope_error(e, target))?;
        Ok(PublishRequest {
            topic: target.topic.to_string(),
            data: env.data,
            content_type: env.content_type,
            metadata,
            key: env.key,
        })
    }

    /// Runs the request checks alone, so an edge can refuse a request
    /// before reading its body, as daprd does for bulk publish.
    pub fn check_publish(&self, pubsub_name: &str, topic: &str) -> Result<(), PublishError> {
        self.check_target(pubsub_name, topic).map(|_| ())
    }

    /// Checks, wraps and publishes one event; returns once the broker has it
    /// or the component's outbox holds it durably (`buffered`).
    pub async fn publish(&self, call: PublishCall<'_>) -> Result<PublishReceipt, PublishError> {
        let target = self.check_target(call.pubsub_name, call.topic)?;
        let req = self.publish_request(
            &target,
            &call.data,
            call.content_type,
            call.metadata,
            call.traceparent,
            call.tracestate,
        )?;
        let size = req.data.len();
        let receipt = target.handle.publish(req).await.map_err(|err| {
            let err = component_error(&target, err);
            if matches!(err, PublishError::BadMetadata { .. } | PublishError::BadTopic { .. }) {
                tracing::debug!(pubsub = target.pubsub, topic = target.topic, error = %err, "Publish refused.");
            } else {
                tracing::warn!(pubsub = target.pubsub, topic = target.topic, error = %err, "Publish failed.");
            }
            err
        })?;
        tracing::debug!(
            pubsub = target.pubsub,
            topic = target.topic,
            bytes = size,
            buffered = receipt.buffered,
            "Event published."
        );
        Ok(receipt)
    }

    /// Checks pubsub/topic/scopes once, then publishes every entry (component
    /// `publish_bulk`); returns the failed entries (empty = all ok).
    /// Request-level problems are `Err`, and then nothing was published:
    /// every envelope is built before the first entry goes out.
    pub async fn publish_bulk(
        &self,
        pubsub_name: &str,
        topic: &str,
        metadata: Metadata,
        entries: Vec<BulkEntry>,
        traceparent: Option<&str>,
        tracestate: Option<&str>,
    ) -> Result<Vec<BulkFailure>, PublishError> {
        let target = self.check_target(pubsub_name, topic)?;
        let mut seen = HashSet::with_capacity(entries.len());
        for entry in &entries {
            if entry.entry_id.is_empty() {
                return Err(PublishError::BadBulkEvents(
                    "entryId is required for every entry".into(),
                ));
            }
            if !seen.insert(entry.entry_id.as_str()) {
                return Err(PublishError::BadBulkEvents(format!(
                    "entryId {} is duplicated",
                    entry.entry_id
                )));
            }
        }
        let mut ids = Vec::with_capacity(entries.len());
        let mut reqs = Vec::with_capacity(entries.len());
        for entry in entries {
            let mut md = metadata.clone();
            md.extend(entry.metadata);
            reqs.push(self.publish_request(
                &target,
                &entry.event,
                Some(entry.content_type.as_str()),
                md,
                traceparent,
                tracestate,
            )?);
            ids.push(entry.entry_id);
        }
        // Every entry has the same topic: a topic the broker refuses is the
        // request's error, and nothing is published.
        if let Some(Err(invalid @ Unpublishable::Topic { .. })) =
            reqs.first().map(|r| target.handle.pubsub.check(r))
        {
            return Err(component_error(&target, ComponentError::Invalid(invalid)));
        }
        let native = target
            .handle
            .pubsub
            .features()
            .contains(&Feature::BulkPublish);
        // Without native bulk the component's default fans out one publish
        // per entry; daprd caps that at 100 at a time, and so do we.
        let chunk = if native {
            reqs.len().max(1)
        } else {
            BULK_FANOUT
        };
        let results = publish_in_chunks(target.handle, reqs, chunk).await;
        let failures: Vec<BulkFailure> = ids
            .into_iter()
            .zip(results)
            .filter_map(|(entry_id, r)| r.err().map(|error| BulkFailure { entry_id, error }))
            .collect();
        if failures.is_empty() {
            tracing::debug!(
                pubsub = target.pubsub,
                topic = target.topic,
                "Bulk published."
            );
        } else {
            tracing::warn!(
                pubsub = target.pubsub,
                topic = target.topic,
                failed = failures.len(),
                "Bulk publish had failed entries."
            );
        }
        Ok(failures)
    }
}

/// Publishes `reqs` through the component's `publish_bulk`, at most `chunk`
/// at a time, returning exactly one result per request in order. A
/// component answering a chunk with fewer results than requests has not
/// confirmed the rest, so they count as failed: a caller must never believe
/// an unconfirmed event was accepted.
async fn publish_in_chunks(
    component: &ComponentHandle,
    reqs: Vec<PublishRequest>,
    chunk: usize,
) -> Vec<Result<(), String>> {
    let mut out = Vec::with_capacity(reqs.len());
    let mut reqs = reqs.into_iter().peekable();
    while reqs.peek().is_some() {
        let batch: Vec<PublishRequest> = reqs.by_ref().take(chunk).collect();
        let len = batch.len();
        let results = component.publish_bulk(batch).await;
        if results.len() != len {
            tracing::error!(
                expected = len,
                got = results.len(),
                "Component returned the wrong number of bulk results."
            );
        }
        let mut results = results.into_iter().map(|r| r.map_err(|e| e.to_string()));
        out.extend((0..len).map(|_| {
            results
                .next()
                .unwrap_or_else(|| Err("the component returned no result for this entry".into()))
        }));
    }
    out
}

/// What a component's refusal means to the caller.
fn component_error(target: &Target<'_>, err: ComponentError) -> PublishError {
    let (pubsub, topic) = (target.pubsub.to_string(), target.topic.to_string());
    match err {
        ComponentError::Invalid(Unpublishable::Metadata { key, value, reason }) => {
            PublishError::BadMetadata {
                pubsub,
                topic,
                key,
                value,
                reason,
            }
        }
        ComponentError::Invalid(Unpublishable::Topic { reason, .. }) => PublishError::BadTopic {
            pubsub,
            topic,
            reason,
        },
        ComponentError::OutboxFull {
            reason,
            retry_after_secs,
        } => PublishError::OutboxFull {
            pubsub,
            topic,
            error: reason,
            retry_after_secs,
        },
        ComponentError::Broker(
            source @ BrokerError::Full {
                retry_after_secs, ..
            },
        ) => PublishError::Busy {
            pubsub,
            topic,
            error: source.to_string(),
            retry_after_secs,
        },
        ComponentError::Broker(source) => PublishError::Broker {
            pubsub,
            topic,
            error: source.to_string(),
        },
    }
}

fn envelope_error(err: EnvelopeError, target: &Target<'_>) -> PublishError {
    let pubsub = target.pubsub.to_string();
    let topic = target.topic.to_string();
    match err {
        EnvelopeError::BadMetadata { key, value, reason } => PublishError::BadMetadata {
            pubsub,
            topic,
            key,
            value,
            reason,
        },
        EnvelopeError::CloudEvent(error) => PublishError::CloudEvent {
            pubsub,
            topic,
            error,
        },
        EnvelopeError::BadBulkEvent(msg) => PublishError::BadBulkEvents(msg),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_trait::async_trait;

    use super::*;
    use crate::broker::{BrokerError, Handler, PubSub, SubscribeRequest, Subscription};
    use crate::config::model::ComponentSpec;

    /// Answers each batch with one result fewer than asked, failing
    /// requests whose data is `bad`.
    struct ShortAnswers;

    #[async_trait]
    impl PubSub for ShortAnswers {
        fn features(&self) -> &[Feature] {
            &[]
        }
        async fn publish(&self, req: PublishRequest) -> Result<(), BrokerError> {
            if &req.data[..] == b"bad" {
                Err(BrokerError::Rejected("too big".into()))
            } else {
                Ok(())
            }
        }
        async fn publish_bulk(&self, reqs: Vec<PublishRequest>) -> Vec<Result<(), BrokerError>> {
            let n = reqs.len().saturating_sub(1);
            let mut out = Vec::new();
            for r in reqs.into_iter().take(n) {
                out.push(self.publish(r).await);
            }
            out
        }
        async fn subscribe(
            &self,
            _req: SubscribeRequest,
            _handler: Arc<dyn Handler>,
        ) -> Result<Subscription, BrokerError> {
            Err(BrokerError::Rejected("publish only".into()))
        }
        async fn ping(&self) -> Result<(), BrokerError> {
            Ok(())
        }
        async fn close(&self) -> Result<(), BrokerError> {
            Ok(())
        }
    }

    fn req(data: &'static str) -> PublishRequest {
        PublishRequest {
            topic: "t".into(),
            data: Bytes::from_static(data.as_bytes()),
            content_type: "text/plain".into(),
            metadata: Metadata::new(),
            key: None,
        }
    }

    #[tokio::test]
    async fn missing_results_count_as_failures_per_chunk() {
        let spec = ComponentSpec {
            name: "short".into(),
            type_name: "pubsub.short".into(),
            version: "v1".into(),
            metadata: Metadata::new(),
            scopes: Vec::new(),
            source: "<test>".into(),
        };
        let short = ComponentHandle::new(spec, Arc::new(ShortAnswers), "app");
        let reqs = vec![req("a"), req("bad"), req("c"), req("d"), req("e")];
        let got = publish_in_chunks(&short, reqs, 2).await;
        assert_eq!(got.len(), 5, "one result per request");
        assert_eq!(got[0], Ok(()));
        assert!(got[1].is_err(), "unanswered in chunk 1");
        assert_eq!(got[2], Ok(()));
        assert!(got[3].is_err(), "unanswered in chunk 2");
        assert!(got[4].is_err(), "unanswered in chunk 3");

        let got = publish_in_chunks(&short, vec![req("bad"), req("x")], 2).await;
        assert_eq!(got[0], Err("rejected by broker: too big".to_string()));
    }
}
