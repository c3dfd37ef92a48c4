//! The baseline "direct client": the same broker client library the sidecar
//! uses, called in the bench process with the same acknowledgements (embedded:
//! group-committed fsync; RabbitMQ: lapin with publisher confirms), and no
//! HTTP edge, envelope or runtime in between.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sidebus::broker::embedded::config::EmbeddedConfig;
use sidebus::broker::embedded::Embedded;
use sidebus::broker::in_memory::InMemory;
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
}

impl Broker {
    /// Short name used in tables and file names.
    pub fn name(self) -> &'static str {
        match self {
            Broker::InMemory => "in-memory",
            Broker::Embedded => "embedded",
            Broker::RabbitMq => "rabbitmq",
        }
    }

    /// The Component YAML the sidecar loads for this broker.
    pub fn component_yaml(self, rabbit_url: &str) -> String {
        let (ty, md) = match self {
            Broker::InMemory => ("pubsub.in-memory", String::new()),
            Broker::Embedded => ("pubsub.embedded", String::new()),
            Broker::RabbitMq => (
                "pubsub.rabbitmq",
                format!(
                    "    - name: connectionString\n      value: \"{rabbit_url}\"\n    - name: publisherConfirm\n      value: true\n"
                ),
            ),
        };
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: pubsub\nspec:\n  type: {ty}\n  version: v1\n  metadata:\n{md}"
        )
    }

    /// Opens the broker's client in process.
    pub async fn open_direct(
        self,
        dir: &Path,
        rabbit_url: &str,
    ) -> Result<Arc<dyn PubSub>, String> {
        Ok(match self {
            Broker::InMemory => Arc::new(InMemory::new()),
            Broker::Embedded => Arc::new(
                Embedded::open(dir.to_path_buf(), EmbeddedConfig::default())
                    .await
                    .map_err(|e| e.to_string())?,
            ),
            Broker::RabbitMq => {
                let md: Metadata = [
                    ("connectionString".to_string(), rabbit_url.to_string()),
                    ("publisherConfirm".to_string(), "true".to_string()),
                ]
                .into();
                let cfg = RabbitConfig::parse(&md).map_err(|p| format!("{p:?}"))?;
                Arc::new(
                    RabbitMq::connect(cfg, Duration::from_secs(15))
                        .await
                        .map_err(|e| e.to_string())?,
                )
            }
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
