//! The baseline "direct client": the same broker client library the sidecar
//! uses, called in the bench process with the same metadata and so the same
//! acknowledgements (embedded: group-committed fsync; RabbitMQ: lapin with
//! publisher confirms; Kafka: rdkafka, acks=all and idempotence), and no
//! HTTP edge, envelope or runtime in between.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sidebus::broker::embedded::config::EmbeddedConfig;
use sidebus::broker::embedded::Embedded;
use sidebus::broker::in_memory::InMemory;
use sidebus::broker::kafka::Kafka;
use sidebus::broker::rabbitmq::{RabbitConfig, RabbitMq};
use sidebus::broker::{Metadata, PubSub, PublishRequest};

use crate::load::LoadError;

/// Brokers the bench measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broker {
    /// `pubsub.in-memory`.
    InMemory,
    /// `pubsub.embedded` (durable, default).
    Embedded,
    /// `pubsub.rabbitmq` on the broker from `scripts/brokers/rabbitmq.sh`.
    RabbitMq,
    /// `pubsub.kafka` on the Tansu broker from `scripts/brokers/tansu.sh`.
    Kafka,
}

/// Where the external brokers listen.
pub struct Endpoints {
    /// AMQP URL of the RabbitMQ broker.
    pub rabbit_url: String,
    /// Bootstrap servers of the Kafka-protocol broker.
    pub kafka_brokers: String,
}

impl Endpoints {
    /// From `SIDEBUS_TEST_RABBITMQ_URL` / `SIDEBUS_TEST_KAFKA_BROKERS`, else
    /// the addresses the broker scripts use.
    pub fn from_env() -> Self {
        let var =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
        Self {
            rabbit_url: var(
                "SIDEBUS_TEST_RABBITMQ_URL",
                "amqp://guest:guest@127.0.0.1:5672/%2f",
            ),
            kafka_brokers: var("SIDEBUS_TEST_KAFKA_BROKERS", "127.0.0.1:19092"),
        }
    }
}

impl Broker {
    /// Every broker, in the default order of a run.
    pub const ALL: [Broker; 4] = [
        Broker::InMemory,
        Broker::Embedded,
        Broker::RabbitMq,
        Broker::Kafka,
    ];

    /// Short name used in tables, file names and `--brokers`.
    pub fn name(self) -> &'static str {
        match self {
            Broker::InMemory => "in-memory",
            Broker::Embedded => "embedded",
            Broker::RabbitMq => "rabbitmq",
            Broker::Kafka => "kafka",
        }
    }

    /// The broker called `name`.
    pub fn parse(name: &str) -> Option<Broker> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }

    /// The script under `scripts/brokers/` that provisions the broker, if
    /// it runs outside the sidecar.
    pub fn script(self) -> Option<&'static str> {
        match self {
            Broker::InMemory | Broker::Embedded => None,
            Broker::RabbitMq => Some("rabbitmq.sh"),
            Broker::Kafka => Some("tansu.sh"),
        }
    }

    fn component_type(self) -> &'static str {
        match self {
            Broker::InMemory => "pubsub.in-memory",
            Broker::Embedded => "pubsub.embedded",
            Broker::RabbitMq => "pubsub.rabbitmq",
            Broker::Kafka => "pubsub.kafka",
        }
    }

    /// Component metadata, shared by the sidecar and the direct client.
    fn metadata(self, ep: &Endpoints) -> Metadata {
        let pairs: Vec<(&str, &str)> = match self {
            Broker::InMemory | Broker::Embedded => Vec::new(),
            Broker::RabbitMq => vec![
                ("connectionString", &ep.rabbit_url),
                ("publisherConfirm", "true"),
            ],
            // Tansu's group join takes about half the session timeout, and
            // Tansu holds every fetch for the full `fetchMaxWait` instead of
            // answering when data arrives (Kafka answers at once), so the
            // 100 ms default would measure Tansu's wait, not sidebus.
            Broker::Kafka => vec![
                ("brokers", &ep.kafka_brokers),
                ("consumerGroup", "bench"),
                ("sessionTimeout", "6s"),
                ("heartbeatInterval", "1s"),
                ("fetchMaxWait", "5ms"),
            ],
        };
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The Component YAML the sidecar loads for this broker.
    pub fn component_yaml(self, ep: &Endpoints) -> String {
        let md: String = self
            .metadata(ep)
            .iter()
            .map(|(k, v)| format!("    - name: {k}\n      value: \"{v}\"\n"))
            .collect();
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: pubsub\nspec:\n  type: {}\n  version: v1\n  metadata:\n{md}",
            self.component_type()
        )
    }

    /// Opens the broker's client in process.
    pub async fn open_direct(self, dir: &Path, ep: &Endpoints) -> Result<Arc<dyn PubSub>, String> {
        let md = self.metadata(ep);
        Ok(match self {
            Broker::InMemory => Arc::new(InMemory::new()),
            Broker::Embedded => Arc::new(
                Embedded::open(dir.to_path_buf(), EmbeddedConfig::default())
                    .await
                    .map_err(|e| e.to_string())?,
            ),
            Broker::RabbitMq => {
                let cfg = RabbitConfig::parse(&md)
                    .map_err(|p| format!("{p:?}"))?
                    .config;
                Arc::new(
                    RabbitMq::connect(cfg, Duration::from_secs(15))
                        .await
                        .map_err(|e| e.to_string())?,
                )
            }
            Broker::Kafka => Arc::new(Kafka::from_metadata(&md).map_err(|e| e.to_string())?),
        })
    }
}

/// A publish request of the size the sidecar stores for a 1 KB event (the
/// CloudEvent envelope adds about 300 bytes), so both sides move the same bytes.
pub fn request(topic: &str, body: Bytes) -> PublishRequest {
    let mut data = Vec::with_capacity(body.len() + 320);
    data.extend_from_slice(br#"{"specversion":"1.0","id":"00000000-0000-0000-0000-000000000000","source":"bench","type":"com.dapr.event.sent","datacontenttype":"application/json","pubsubname":"pubsub","topic":"t","traceid":"00-00000000000000000000000000000000-0000000000000000-00","data":"#);
    data.extend_from_slice(&body);
    data.push(b'}');
    PublishRequest {
        topic: topic.to_string(),
        data: Bytes::from(data),
        content_type: "application/cloudevents+json".into(),
        metadata: Metadata::new(),
        key: None,
    }
}

/// Publishes one event through the direct client.
pub async fn publish(ps: &Arc<dyn PubSub>, topic: &str, body: Bytes) -> Result<(), LoadError> {
    ps.publish(request(topic, body))
        .await
        .map_err(|e| LoadError::Http(e.to_string()))
}
