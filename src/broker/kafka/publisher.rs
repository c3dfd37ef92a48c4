//! Publishing: one idempotent `FutureProducer` per component (acks=all),
//! topics created on first use through the admin API, CloudEvents written in
//! the configured content mode, request metadata as record headers (as
//! daprd does).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use super::binding;
use super::client_config;
use super::config::KafkaConfig;
use super::context::TracingContext;
use crate::broker::{BrokerError, PublishRequest, Unpublishable};

/// Publish metadata naming an explicit partition (daprd's key).
const PARTITION_NUMBER: &str = "partitionNumber";
/// Kafka's longest topic name.
const MAX_TOPIC_LEN: usize = 249;

/// What Kafka would refuse about `req`, without I/O: a topic name over 249
/// characters or with characters other than letters, digits, `.`, `_` and
/// `-` (Kafka's rule), or a `partitionNumber` that is not a partition.
pub fn check(req: &PublishRequest) -> Result<(), Unpublishable> {
    let topic = &req.topic;
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    let reason = if topic.len() > MAX_TOPIC_LEN {
        Some(format!(
            "{} characters; Kafka allows at most {MAX_TOPIC_LEN}",
            topic.len()
        ))
    } else if topic.is_empty() || topic == "." || topic == ".." {
        Some("Kafka does not allow an empty topic, \".\" or \"..\"".to_string())
    } else if !topic.chars().all(legal) {
        Some("Kafka topics use only letters, digits, '.', '_' and '-'".to_string())
    } else {
        None
    };
    if let Some(reason) = reason {
        return Err(Unpublishable::Topic {
            topic: topic.chars().take(64).collect(),
            reason,
        });
    }
    partition(req).map(drop)
}

/// `partitionNumber`, when given: a partition index.
fn partition(req: &PublishRequest) -> Result<Option<i32>, Unpublishable> {
    req.metadata
        .get(PARTITION_NUMBER)
        .map(|p| {
            p.trim()
                .parse::<i32>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| Unpublishable::Metadata {
                    key: PARTITION_NUMBER.into(),
                    value: p.chars().take(64).collect(),
                    reason: "is not a partition number".into(),
                })
        })
        .transpose()
}
/// How long topic creation and metadata requests may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause before creating a topic again after a failed attempt, so an
/// unreachable broker does not add the admin timeout to every publish.
const CREATE_RETRY_AFTER: Duration = Duration::from_secs(30);

/// The component's producer side.
pub struct Publisher {
    cfg: Arc<KafkaConfig>,
    producer: FutureProducer<TracingContext>,
    admin: AdminClient<TracingContext>,
    /// Topics known to exist (`None`) or whose creation failed at a time.
    /// Grows with the number of distinct topics the app uses, which topic
    /// scopes and the app's design bound.
    known: Mutex<HashMap<String, Option<Instant>>>,
    /// Serialises topic creation (rare: once per new topic).
    creating: tokio::sync::Mutex<()>,
}

impl Publisher {
    /// Creates the producer and admin clients (no I/O until first use).
    pub fn new(cfg: Arc<KafkaConfig>) -> Result<Self, BrokerError> {
        let producer = client_config::producer(&cfg)
            .create_with_context::<_, FutureProducer<TracingContext>>(TracingContext)
            .map_err(|e| BrokerError::Rejected(format!("producer settings: {e}")))?;
        let admin = client_config::common(&cfg)
            .create_with_context::<_, AdminClient<TracingContext>>(TracingContext)
            .map_err(|e| BrokerError::Rejected(format!("admin client settings: {e}")))?;
        Ok(Self {
            cfg,
            producer,
            admin,
            known: Mutex::new(HashMap::new()),
            creating: tokio::sync::Mutex::new(()),
        })
    }

    /// Creates `topic` with the component's topic defaults unless it is
    /// known to exist. Never fails: when creation is impossible (broker
    /// away, no permission, no admin API) the broker may still auto-create
    /// the topic or already have it, and the produce or fetch itself reports
    /// what is really wrong.
    pub async fn ensure_topic(&self, topic: &str) {
        if !self.should_create(topic) {
            return;
        }
        // One creation at a time: a bulk publish to a new topic must not
        // send a CreateTopics request per event.
        let _creating = self.creating.lock().await;
        if !self.should_create(topic) {
            return;
        }
        match self.create(topic).await {
            Ok(()) => self.remember(topic, None),
            Err(e) => {
                tracing::warn!(topic, error = %e, "Could not create topic; relying on the broker.");
                self.remember(topic, Some(Instant::now()));
            }
        }
    }

    async fn create(&self, topic: &str) -> Result<(), KafkaError> {
        let d = &self.cfg.topic_defaults;
        let retention = d.retention.map(|r| r.as_millis().to_string());
        let mut new = NewTopic::new(
            topic,
            d.partitions,
            TopicReplication::Fixed(d.replication_factor),
        );
        if let Some(ms) = &retention {
            new = new.set("retention.ms", ms);
        }
        if let Some(policy) = &d.cleanup_policy {
            new = new.set("cleanup.policy", policy);
        }
        let opts = AdminOptions::new()
            .operation_timeout(Some(ADMIN_TIMEOUT))
            .request_timeout(Some(ADMIN_TIMEOUT));
        for result in self.admin.create_topics([&new], &opts).await? {
            match result {
                Ok(_) => tracing::info!(topic, partitions = d.partitions, "Topic created."),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(KafkaError::AdminOp(code)),
            }
        }
        Ok(())
    }

    fn should_create(&self, topic: &str) -> bool {
        // Poisoning needs a panic inside these short critical sections.
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        match known.get(topic) {
            None => true,
            Some(None) => false,
            Some(Some(failed)) => failed.elapsed() >= CREATE_RETRY_AFTER,
        }
    }

    fn remember(&self, topic: &str, failed: Option<Instant>) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.insert(topic.to_string(), failed);
    }

    /// Publishes one event and waits for its delivery report.
    pub async fn publish(&self, req: PublishRequest) -> Result<(), BrokerError> {
        self.ensure_topic(&req.topic).await;
        let wire = binding::encode(&req.data, &req.content_type, self.cfg.content_mode);
        let mut headers = OwnedHeaders::new_with_capacity(wire.headers.len() + req.metadata.len());
        let pairs = wire.headers.iter().map(|(k, v)| (k, v));
        for (k, v) in pairs.chain(req.metadata.iter()) {
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        let mut record = FutureRecord::<str, [u8]>::to(&req.topic)
            .payload(&wire.value[..])
            .headers(headers);
        if let Some(key) = &req.key {
            record = record.key(key.as_str());
        }
        if let Some(p) = partition(&req).map_err(|e| BrokerError::Rejected(e.to_string()))? {
            record = record.partition(p);
        }
        let timeout = Timeout::After(self.cfg.publish_timeout);
        match self.producer.send(record, timeout).await {
            Ok(_) => Ok(()),
            Err((err, _)) => Err(classify(&req.topic, err)),
        }
    }

    /// Asks the brokers for cluster metadata (readiness).
    pub async fn ping(&self) -> Result<(), BrokerError> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, Timeout::After(ADMIN_TIMEOUT))
                .map(|_| ())
        })
        .await
        .map_err(|e| BrokerError::Unavailable(format!("ping task: {e}")))?
        .map_err(|e| BrokerError::Unavailable(format!("metadata request: {e}")))
    }

    /// Waits until every queued record has its delivery report.
    pub async fn flush(&self) -> Result<(), BrokerError> {
        let producer = self.producer.clone();
        let timeout = Timeout::After(self.cfg.publish_timeout);
        tokio::task::spawn_blocking(move || producer.flush(timeout))
            .await
            .map_err(|e| BrokerError::Unavailable(format!("flush task: {e}")))?
            .map_err(|e| BrokerError::Unavailable(format!("flush: {e}")))
    }
}

/// Errors that go away on their own (leader moves, broker restarts).
fn transient(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::RequestTimedOut
            | C::OperationTimedOut
            | C::MessageTimedOut
            | C::NotCoordinator
            | C::NotController
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::BrokerNotAvailable
            | C::AllBrokersDown
            | C::BrokerTransportFailure
            | C::QueueFull
            | C::NetworkException
            | C::NotEnoughReplicas
            | C::NotEnoughReplicasAfterAppend
            | C::CoordinatorNotAvailable
            | C::CoordinatorLoadInProgress
            | C::Resolve
            | C::TimedOutQueue
            | C::ThrottlingQuotaExceeded
    )
}

/// Maps a produce failure to retriable (`Unavailable`) or terminal (`Rejected`).
pub fn classify(topic: &str, err: KafkaError) -> BrokerError {
    let text = format!("topic {topic}: {err}");
    match err.rdkafka_error_code() {
        Some(code) if transient(code) => BrokerError::Unavailable(text),
        Some(_) => BrokerError::Rejected(text),
        None => BrokerError::Unavailable(text),
    }
}

#[cfg(test)]
mod check_tests {
    use super::check;
    use crate::broker::{Metadata, PublishRequest, Unpublishable};

    fn req(topic: &str, md: &[(&str, &str)]) -> PublishRequest {
        PublishRequest {
            topic: topic.into(),
            data: bytes::Bytes::new(),
            content_type: "text/plain".into(),
            metadata: md
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Metadata>(),
            key: None,
        }
    }

    /// Kafka refuses these at the broker (a 500 after the fact, or an event
    /// the outbox could never forward): they are refused up front instead.
    #[test]
    fn topics_and_partitions_kafka_refuses_are_found_before_sending() {
        for ok in ["orders", "a.b_c-1", &"t".repeat(249)] {
            assert_eq!(check(&req(ok, &[])), Ok(()), "{ok}");
        }
        for bad in ["a/b", "", ".", "..", "ünï", &"t".repeat(250)] {
            assert!(
                matches!(check(&req(bad, &[])), Err(Unpublishable::Topic { .. })),
                "{bad}"
            );
        }
        assert_eq!(check(&req("t", &[("partitionNumber", "3")])), Ok(()));
        for p in ["x", "-1", "99999999999"] {
            assert!(
                matches!(
                    check(&req("t", &[("partitionNumber", p)])),
                    Err(Unpublishable::Metadata { .. })
                ),
                "{p}"
            );
        }
    }
}
