//! `pubsub.in-memory`: daprd's in-process broker, for tests and local runs.
//!
//! Each (topic, consumer group) has one bounded queue; subscribers of the same
//! group compete for it and every group gets its own copy of each event.
//! Events published while a topic has no group are discarded, as daprd does:
//! nothing here survives the process. Use `pubsub.embedded` for durability.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, Mutex};
use tokio_util::sync::CancellationToken;

use super::registry::{BuildContext, Factory};
use super::{
    BrokerError, Feature, Handler, PubSub, PublishRequest, ReceivedMessage, SubscribeRequest,
    Subscription,
};
use crate::backoff::Backoff;
use crate::config::metadata::{Metadata, MetadataReader, Parsed, Validation};
use crate::config::model::ComponentSpec;

/// Events buffered per consumer group before publishers wait.
const GROUP_QUEUE_CAPACITY: usize = 10_000;
/// Pause before a RETRY outcome is offered again: 100 ms doubling per
/// redelivery, at most 5 s.
const REQUEUE_BACKOFF: Backoff =
    Backoff::exponential(Duration::from_millis(100), Duration::from_secs(5)).with_jitter(0.0);

struct Group {
    tx: mpsc::Sender<ReceivedMessage>,
    rx: Arc<Mutex<mpsc::Receiver<ReceivedMessage>>>,
}

/// The in-memory bus: topic → consumer group → queue.
#[derive(Default)]
pub struct InMemory {
    topics: std::sync::Mutex<HashMap<String, HashMap<String, Group>>>,
    closed: CancellationToken,
}

impl InMemory {
    /// A new, empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    fn senders(&self, topic: &str) -> Vec<mpsc::Sender<ReceivedMessage>> {
        // Poisoning only follows a panic while holding the lock, which the
        // short critical sections below cannot do.
        let topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        topics
            .get(topic)
            .map(|groups| groups.values().map(|g| g.tx.clone()).collect())
            .unwrap_or_default()
    }

    fn group(
        &self,
        topic: &str,
        group: &str,
    ) -> (
        mpsc::Sender<ReceivedMessage>,
        Arc<Mutex<mpsc::Receiver<ReceivedMessage>>>,
    ) {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        let g = topics
            .entry(topic.to_string())
            .or_default()
            .entry(group.to_string())
            .or_insert_with(|| {
                let (tx, rx) = mpsc::channel(GROUP_QUEUE_CAPACITY);
                Group {
                    tx,
                    rx: Arc::new(Mutex::new(rx)),
                }
            });
        (g.tx.clone(), g.rx.clone())
    }
}

#[async_trait]
impl PubSub for InMemory {
    fn features(&self) -> &[Feature] {
        &[]
    }

    async fn publish(&self, req: PublishRequest) -> Result<(), BrokerError> {
        if self.closed.is_cancelled() {
            return Err(BrokerError::Closed);
        }
        let msg = ReceivedMessage {
            topic: req.topic.clone(),
            data: req.data,
            metadata: req.metadata,
            key: req.key,
            partition: None,
            redeliveries: 0,
        };
        for tx in self.senders(&req.topic) {
            tx.send(msg.clone())
                .await
                .map_err(|_| BrokerError::Closed)?;
        }
        Ok(())
    }

    async fn subscribe(
        &self,
        req: SubscribeRequest,
        handler: Arc<dyn Handler>,
    ) -> Result<Subscription, BrokerError> {
        if self.closed.is_cancelled() {
            return Err(BrokerError::Closed);
        }
        let (tx, rx) = self.group(&req.topic, &req.group);
        let cancel = self.closed.child_token();
        let task = tokio::spawn(consume(rx, tx, handler, cancel.clone()));
        Ok(Subscription::new(cancel, task))
    }

    async fn ping(&self) -> Result<(), BrokerError> {
        if self.closed.is_cancelled() {
            Err(BrokerError::Closed)
        } else {
            Ok(())
        }
    }

    async fn close(&self) -> Result<(), BrokerError> {
        self.closed.cancel();
        Ok(())
    }
}

async fn consume(
    rx: Arc<Mutex<mpsc::Receiver<ReceivedMessage>>>,
    tx: mpsc::Sender<ReceivedMessage>,
    handler: Arc<dyn Handler>,
    cancel: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => return,
            // mpsc::Receiver::recv is cancel safe: a message is either
            // returned or left in the queue.
            m = async { rx.lock().await.recv().await } => m,
        };
        let Some(msg) = next else { return };
        let ack = tokio::select! {
            _ = cancel.cancelled() => {
                requeue(&tx, msg, Duration::ZERO).await;
                return;
            }
            ack = handler.submit(msg.clone()) => ack,
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            match ack.await {
                Ok(outcome) if outcome.is_ack() => {}
                Ok(_) => {
                    let delay = REQUEUE_BACKOFF.delay(msg.redeliveries);
                    let mut again = msg;
                    again.redeliveries += 1;
                    requeue(&tx, again, delay).await;
                }
                // The delivery layer stopped before finishing: offer the
                // event to the group again (another subscriber may take it).
                Err(_) => requeue(&tx, msg, Duration::ZERO).await,
            }
        });
    }
}

async fn requeue(tx: &mpsc::Sender<ReceivedMessage>, msg: ReceivedMessage, delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if tx.send(msg).await.is_err() {
        tracing::debug!("In-memory group queue is gone; event discarded.");
    }
}

/// The settings of `pubsub.in-memory`: none. Every key but the ones common
/// to all components is reported as ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InMemoryConfig;

impl InMemoryConfig {
    /// Parses the metadata: the (empty) config and the ignored keys.
    pub fn parse(meta: &Metadata) -> Result<Parsed<Self>, Validation> {
        MetadataReader::new(meta).finish(Self, &[], "pubsub.in-memory takes no metadata; ignored")
    }
}

/// Factory for `pubsub.in-memory`. It takes no metadata.
pub struct InMemoryFactory;

#[async_trait]
impl Factory for InMemoryFactory {
    fn type_names(&self) -> &'static [&'static str] {
        &["pubsub.in-memory"]
    }

    fn validate(&self, spec: &ComponentSpec) -> Validation {
        Validation::of(&InMemoryConfig::parse(&spec.metadata))
    }

    async fn build(
        &self,
        spec: &ComponentSpec,
        _ctx: &BuildContext,
    ) -> Result<Arc<dyn PubSub>, BrokerError> {
        InMemoryConfig::parse(&spec.metadata)
            .map_err(|v| BrokerError::Rejected(v.describe_errors()))?;
        Ok(Arc::new(InMemory::new()))
    }
}

#[cfg(test)]
mod tests {
    crate::conformance_suite!(|| async {
        std::sync::Arc::new(super::InMemory::new()) as std::sync::Arc<dyn crate::broker::PubSub>
    });
}
