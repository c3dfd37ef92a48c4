//! `pubsub.kafka` and `pubsub.redpanda`: Kafka-protocol brokers through
//! rdkafka (bundled librdkafka).
//!
//! Layout: `config` (typed metadata, daprd's names; parsed by `reader`,
//! Go durations via `config::duration`) → `client_config` (librdkafka settings);
//! `publisher` (idempotent producer, topic creation) with `binding`
//! (CloudEvents structured/binary modes); `subscriber` (one group consumer
//! per consumer group) → `group` (poll thread, pause/resume,
//! commits) → `context` (rebalance hooks, logs) → `lane` (per-partition
//! submit in order, settle, redelivery) over `state` and `offsets`;
//! `watchdog` (the stall check) over `stall` (the per-partition detector).
//!
//! Guarantees: a publish succeeds only after acks=all; offsets are committed
//! only up to the lowest unfinished event of each partition, so an event is
//! never skipped by a commit — after a crash, rebalance or restart the
//! unfinished tail is read again (at-least-once, duplicates possible).

mod binding;
mod client_config;
pub mod config;
mod context;
mod group;
mod lane;
mod offsets;
mod publisher;
mod reader;
mod stall;
mod state;
mod subscriber;
mod watchdog;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use self::config::KafkaConfig;
use self::publisher::Publisher;
use self::subscriber::Subscriber;
use super::factory::{BuildContext, Factory, Validation};
use super::{
    BrokerError, Feature, Handler, PubSub, PublishRequest, SubscribeRequest, Subscription,
    Unpublishable,
};
use crate::config::metadata::MetadataReader;
use crate::config::model::ComponentSpec;

/// A Kafka / Redpanda component.
pub struct Kafka {
    cfg: Arc<KafkaConfig>,
    publisher: Publisher,
    subscriber: Subscriber,
    closed: CancellationToken,
}

impl Kafka {
    /// Builds the component from parsed metadata. Clients connect lazily.
    pub fn new(cfg: KafkaConfig) -> Result<Self, BrokerError> {
        let cfg = Arc::new(cfg);
        Ok(Self {
            publisher: Publisher::new(cfg.clone())?,
            subscriber: Subscriber::new(cfg.clone()),
            cfg,
            closed: CancellationToken::new(),
        })
    }

    /// Parses `metadata` and builds the component (for tests and tools).
    pub fn from_metadata(metadata: &crate::broker::Metadata) -> Result<Self, BrokerError> {
        match KafkaConfig::parse(metadata) {
            Ok(parsed) => Self::new(parsed.config),
            Err(v) => Err(BrokerError::Rejected(v.describe_errors())),
        }
    }
}

impl Kafka {
    /// How often the stall watchdog restarted one of this component's
    /// consumers (for metrics and tests).
    pub fn consumer_restarts(&self) -> u64 {
        self.subscriber.restarts()
    }
}

#[async_trait]
impl PubSub for Kafka {
    fn features(&self) -> &[Feature] {
        // Concurrent publishes are batched by the producer into one request.
        &[Feature::BulkPublish]
    }

    fn check(&self, req: &PublishRequest) -> Result<(), Unpublishable> {
        publisher::check(req)
    }

    async fn publish(&self, req: PublishRequest) -> Result<(), BrokerError> {
        if self.closed.is_cancelled() {
            return Err(BrokerError::Closed);
        }
        self.publisher.publish(req).await
    }

    async fn subscribe(
        &self,
        req: SubscribeRequest,
        handler: Arc<dyn Handler>,
    ) -> Result<Subscription, BrokerError> {
        if self.closed.is_cancelled() {
            return Err(BrokerError::Closed);
        }
        // The topic must exist before the group subscribes, or the consumer
        // would only notice it at its next metadata refresh.
        self.publisher.ensure_topic(&req.topic).await;
        let group = self.cfg.consumer_group.clone().unwrap_or(req.group);
        self.subscriber.subscribe(req.topic, group, handler).await
    }

    async fn ping(&self) -> Result<(), BrokerError> {
        self.publisher.ping().await
    }

    async fn close(&self) -> Result<(), BrokerError> {
        if self.closed.is_cancelled() {
            return Ok(());
        }
        self.closed.cancel();
        self.subscriber.close().await;
        self.publisher.flush().await
    }
}

/// Factory for `pubsub.kafka` and `pubsub.redpanda`.
pub struct KafkaFactory;

#[async_trait]
impl Factory for KafkaFactory {
    fn type_names(&self) -> &'static [&'static str] {
        &["pubsub.kafka", "pubsub.redpanda"]
    }

    fn validate(&self, spec: &ComponentSpec) -> Validation {
        Validation::of(&KafkaConfig::parse(&spec.metadata))
    }

    async fn build(
        &self,
        spec: &ComponentSpec,
        _ctx: &BuildContext,
    ) -> Result<Arc<dyn PubSub>, BrokerError> {
        let mut cfg = match KafkaConfig::parse(&spec.metadata) {
            Ok(parsed) => parsed.config,
            Err(v) => {
                return Err(BrokerError::Rejected(format!(
                    "component {}: {}",
                    spec.name,
                    v.describe_errors()
                )))
            }
        };
        if cfg.consumer_group.is_none() {
            // daprd: consumerGroup, else consumerID; otherwise the
            // subscription's group (the app id) applies.
            cfg.consumer_group = MetadataReader::new(&spec.metadata)
                .get("consumerID")
                .map(str::to_string);
        }
        Ok(Arc::new(Kafka::new(cfg)?))
    }
}
