//! `pubsub.in-memory`: daprd's in-process broker, for tests and local runs.
//!
//! Each (topic, consumer group) has one queue; subscribers of the same group
//! compete for it and every group gets its own copy of each event. Events
//! published while a topic has no group are discarded, as daprd does:
//! nothing here survives the process. Use `pubsub.embedded` for durability.
//!
//! Each group's queue is bounded in events and in bytes, counting events
//! being delivered as well as those waiting. A publish waits a bounded time
//! for room in every group that has subscribers, then gives up with
//! [`BrokerError::Full`] having queued nothing, so a stalled subscriber slows
//! publishers down but never holds them forever. A group whose subscribers
//! have all left keeps what fits in its bounds for a while (a subscription
//! that restarts finds its events), discards what does not, and is removed
//! after a minute (`GROUP_IDLE_TTL`) without subscribers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, Mutex, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::factory::{BuildContext, Factory};
use super::{
    BrokerError, Feature, Handler, PubSub, PublishRequest, ReceivedMessage, SubscribeRequest,
    Subscription,
};
use crate::backoff::Backoff;
use crate::config::metadata::{Metadata, MetadataReader, Parsed, Validation};
use crate::config::model::ComponentSpec;

/// Events a group holds (waiting or being delivered) before publishers wait.
const GROUP_MAX_EVENTS: usize = 10_000;
/// Bytes of event data a group holds before publishers wait.
const GROUP_MAX_BYTES: usize = 64 << 20;
/// How long a publish waits for room before answering [`BrokerError::Full`].
const PUBLISH_WAIT: Duration = Duration::from_secs(2);
/// How long a group without subscribers is kept before it is removed.
const GROUP_IDLE_TTL: Duration = Duration::from_secs(60);
/// What a refused publisher is told to wait.
const RETRY_AFTER_SECS: u64 = 1;
/// Pause before a RETRY outcome is offered again: 100 ms doubling per
/// redelivery, at most 5 s.
const REQUEUE_BACKOFF: Backoff =
    Backoff::exponential(Duration::from_millis(100), Duration::from_secs(5)).with_jitter(0.0);

/// An event in a group's queue with the share of the group's budget it
/// holds until the group is done with it (acknowledged, or the group gone).
struct Queued {
    msg: ReceivedMessage,
    _room: Room,
}

/// Permits for one event: one of the event budget, `len` of the byte budget.
/// Held, never read: dropping them gives the room back.
struct Room {
    _event: OwnedSemaphorePermit,
    _bytes: OwnedSemaphorePermit,
}

struct Group {
    // Unbounded, because the semaphores bound it: nothing is sent without
    // a `Room`, and a `Room` is held until the event leaves the group.
    tx: mpsc::UnboundedSender<Queued>,
    rx: Arc<Mutex<mpsc::UnboundedReceiver<Queued>>>,
    events: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    subscribers: AtomicUsize,
}

impl Group {
    fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            tx,
            rx: Arc::new(Mutex::new(rx)),
            events: Arc::new(Semaphore::new(GROUP_MAX_EVENTS)),
            bytes: Arc::new(Semaphore::new(GROUP_MAX_BYTES)),
            subscribers: AtomicUsize::new(0),
        }
    }

    /// Waits for room for an event of `len` bytes.
    async fn room(&self, len: usize) -> Option<Room> {
        let len = byte_permits(len);
        let event = self.events.clone().acquire_owned().await.ok()?;
        let bytes = self.bytes.clone().acquire_many_owned(len).await.ok()?;
        Some(Room {
            _event: event,
            _bytes: bytes,
        })
    }

    /// Room for an event of `len` bytes if there is some now.
    fn room_now(&self, len: usize) -> Option<Room> {
        let len = byte_permits(len);
        let event = self.events.clone().try_acquire_owned().ok()?;
        let bytes = self.bytes.clone().try_acquire_many_owned(len).ok()?;
        Some(Room {
            _event: event,
            _bytes: bytes,
        })
    }

    /// Room for one publish: waited for while someone reads the group; a
    /// group nobody reads takes the event only if it fits now.
    async fn room_for_publish(&self, len: usize) -> Option<Room> {
        if self.subscribers.load(Ordering::SeqCst) > 0 {
            self.room(len).await
        } else {
            self.room_now(len)
        }
    }
}

/// Byte permits an event of `len` bytes takes: an event larger than the
/// whole budget is charged the whole budget, so it fits alone.
fn byte_permits(len: usize) -> u32 {
    u32::try_from(len.min(GROUP_MAX_BYTES)).unwrap_or(u32::MAX)
}

/// The in-memory bus: topic → consumer group → queue.
#[derive(Default)]
pub struct InMemory {
    topics: Arc<Topics>,
    closed: CancellationToken,
}

impl InMemory {
    /// A new, empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many consumer groups `topic` has now.
    pub fn group_count(&self, topic: &str) -> usize {
        self.topics.lock().get(topic).map_or(0, HashMap::len)
    }
}

/// Topic → consumer group → group, shared with the subscription tasks so
/// the last one to stop can take its group away.
#[derive(Default)]
struct Topics(std::sync::Mutex<HashMap<String, HashMap<String, Arc<Group>>>>);

impl Topics {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, Arc<Group>>>> {
        // Poisoning only follows a panic while holding the lock, which the
        // short critical sections here cannot do.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn groups(&self, topic: &str) -> Vec<Arc<Group>> {
        self.lock()
            .get(topic)
            .map(|groups| groups.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The group, created if new, with one more subscriber counted.
    fn join(&self, topic: &str, group: &str) -> Arc<Group> {
        let mut topics = self.lock();
        let g = topics
            .entry(topic.to_string())
            .or_default()
            .entry(group.to_string())
            .or_insert_with(|| Arc::new(Group::new()))
            .clone();
        g.subscribers.fetch_add(1, Ordering::SeqCst);
        g
    }

    /// One subscriber fewer. When it was the last, the group is removed
    /// (with whatever it still holds) unless a subscriber joins within
    /// [`GROUP_IDLE_TTL`].
    fn leave(self: Arc<Self>, topic: String, group: String, g: Arc<Group>) {
        if g.subscribers.fetch_sub(1, Ordering::SeqCst) != 1 {
            return;
        }
        tokio::spawn(async move {
            tokio::time::sleep(GROUP_IDLE_TTL).await;
            self.remove_if_idle(&topic, &group, &g);
        });
    }

    fn remove_if_idle(&self, topic: &str, group: &str, g: &Arc<Group>) {
        let mut topics = self.lock();
        if g.subscribers.load(Ordering::SeqCst) > 0 {
            return;
        }
        if let Some(groups) = topics.get_mut(topic) {
            if groups.get(group).is_some_and(|now| Arc::ptr_eq(now, g)) {
                groups.remove(group);
            }
            if groups.is_empty() {
                topics.remove(topic);
            }
        }
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
        let groups = self.topics.groups(&req.topic);
        if groups.is_empty() {
            // Nobody reads the topic: discarded, as daprd's in-memory does.
            return Ok(());
        }
        // Room in every group first, so a full group leaves no copy behind
        // in the others (a retried publish would duplicate it there).
        let len = req.data.len();
        let rooms = tokio::time::timeout(PUBLISH_WAIT, async {
            let mut rooms = Vec::with_capacity(groups.len());
            for g in &groups {
                rooms.push(g.room_for_publish(len).await);
            }
            rooms
        })
        .await
        .map_err(|_| BrokerError::Full {
            reason: format!(
                "a consumer group of topic {:?} holds {GROUP_MAX_EVENTS} events or {} MiB not yet acknowledged",
                req.topic,
                GROUP_MAX_BYTES >> 20
            ),
            retry_after_secs: RETRY_AFTER_SECS,
        })?;
        let msg = ReceivedMessage {
            topic: req.topic,
            data: req.data,
            metadata: req.metadata,
            key: req.key,
            partition: None,
            redeliveries: 0,
        };
        for (g, room) in groups.iter().zip(rooms) {
            // No room: a group nobody reads is full. Its copy is discarded,
            // as with a topic that has no group at all.
            if let Some(room) = room {
                let queued = Queued {
                    msg: msg.clone(),
                    _room: room,
                };
                if g.tx.send(queued).is_err() {
                    tracing::debug!(
                        "In-memory group left during a publish; its copy is discarded."
                    );
                }
            } else {
                tracing::debug!(topic = %msg.topic, "In-memory group without subscribers is full; its copy is discarded.");
            }
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
        let group = self.topics.join(&req.topic, &req.group);
        let cancel = self.closed.child_token();
        let topics = self.topics.clone();
        let consuming = consume(group.clone(), handler, cancel.clone());
        let task = tokio::spawn(async move {
            consuming.await;
            topics.leave(req.topic, req.group, group);
        });
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

async fn consume(group: Arc<Group>, handler: Arc<dyn Handler>, cancel: CancellationToken) {
    let rx = group.rx.clone();
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => return,
            // mpsc::UnboundedReceiver::recv is cancel safe: a message is
            // either returned or left in the queue.
            m = async { rx.lock().await.recv().await } => m,
        };
        let Some(queued) = next else { return };
        let ack = tokio::select! {
            _ = cancel.cancelled() => {
                requeue(&group.tx, queued, Duration::ZERO).await;
                return;
            }
            ack = handler.submit(queued.msg.clone()) => ack,
        };
        let tx = group.tx.clone();
        tokio::spawn(async move {
            match ack.await {
                // Dropping `queued` gives its room back.
                Ok(outcome) if outcome.is_ack() => {}
                Ok(_) => {
                    let delay = REQUEUE_BACKOFF.delay(queued.msg.redeliveries);
                    let mut again = queued;
                    again.msg.redeliveries += 1;
                    requeue(&tx, again, delay).await;
                }
                // The delivery layer stopped before finishing: offer the
                // event to the group again (another subscriber may take it).
                Err(_) => requeue(&tx, queued, Duration::ZERO).await,
            }
        });
    }
}

/// Puts an event back in its group's queue; it keeps the room it held.
async fn requeue(tx: &mpsc::UnboundedSender<Queued>, queued: Queued, delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if tx.send(queued).is_err() {
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
mod bounds;

#[cfg(test)]
mod tests {
    crate::conformance_suite!(|| async {
        std::sync::Arc::new(super::InMemory::new()) as std::sync::Arc<dyn crate::broker::PubSub>
    });
}
