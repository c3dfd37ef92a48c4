//! The in-memory bus's bounds: a stalled group refuses publishes after a
//! bounded wait instead of holding them forever, by events and by bytes;
//! a group goes away with its last subscriber. Paused time: the bounded
//! wait passes at once when nothing else can run.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::oneshot;

use super::{InMemory, GROUP_IDLE_TTL, GROUP_MAX_BYTES, GROUP_MAX_EVENTS};
use crate::broker::{
    Ack, BrokerError, Handler, Metadata, Outcome, PubSub, PublishRequest, ReceivedMessage,
    SubscribeRequest,
};

/// Takes every event and never answers: an app that stalled.
#[derive(Default)]
struct Stalled(Mutex<Vec<oneshot::Sender<Outcome>>>);

#[async_trait]
impl Handler for Stalled {
    async fn submit(&self, _msg: ReceivedMessage) -> Ack {
        let (tx, rx) = oneshot::channel();
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(tx);
        rx
    }
}

/// Acknowledges every event at once.
struct Quick;

#[async_trait]
impl Handler for Quick {
    async fn submit(&self, _msg: ReceivedMessage) -> Ack {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(Outcome::Success);
        rx
    }
}

fn event(topic: &str, len: usize) -> PublishRequest {
    PublishRequest {
        topic: topic.into(),
        data: Bytes::from(vec![b'x'; len]),
        content_type: "text/plain".into(),
        metadata: Metadata::new(),
        key: None,
    }
}

fn sub(topic: &str) -> SubscribeRequest {
    SubscribeRequest {
        topic: topic.into(),
        group: "g".into(),
        metadata: Metadata::new(),
    }
}

/// Publishes until the first refusal (bounded by `limit` tries, and by a
/// deadline so the old behaviour — waiting forever — fails the test);
/// returns how many were accepted and the refusal.
async fn publish_until_refused(bus: &InMemory, len: usize, limit: usize) -> (usize, BrokerError) {
    let run = async {
        for accepted in 0..limit {
            if let Err(err) = bus.publish(event("t", len)).await {
                return (accepted, err);
            }
        }
        panic!("{limit} publishes accepted: the group is not bounded");
    };
    tokio::time::timeout(Duration::from_secs(600), run)
        .await
        .expect("a publish waited forever behind a full group")
}

#[tokio::test(start_paused = true)]
async fn a_stalled_group_refuses_publishes_by_count_after_a_bounded_wait() {
    let bus = InMemory::new();
    let app = Arc::new(Stalled::default());
    let _s = bus
        .subscribe(sub("t"), app.clone())
        .await
        .expect("subscribe");
    let (accepted, err) = publish_until_refused(&bus, 10, GROUP_MAX_EVENTS + 10).await;
    assert_eq!(
        accepted,
        GROUP_MAX_EVENTS,
        "sent={} refused=1",
        accepted + 1
    );
    assert!(
        matches!(err, BrokerError::Full { retry_after_secs, .. } if retry_after_secs > 0),
        "{err}"
    );
    // Once the app acknowledges, there is room again.
    for tx in app.0.lock().unwrap_or_else(|e| e.into_inner()).drain(..100) {
        let _ = tx.send(Outcome::Success);
    }
    let again = tokio::time::timeout(Duration::from_secs(5), bus.publish(event("t", 10))).await;
    assert!(matches!(again, Ok(Ok(()))), "room after acks: {again:?}");
}

#[tokio::test(start_paused = true)]
async fn a_stalled_group_refuses_publishes_by_bytes() {
    let bus = InMemory::new();
    let _s = bus
        .subscribe(sub("t"), Arc::new(Stalled::default()))
        .await
        .expect("subscribe");
    let mib = 1 << 20;
    let (accepted, err) = publish_until_refused(&bus, mib, 1_000).await;
    assert_eq!(
        accepted,
        GROUP_MAX_BYTES / mib,
        "held at most the byte budget"
    );
    assert!(matches!(err, BrokerError::Full { .. }), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_group_without_subscribers_never_holds_publishers_and_goes_away() {
    let bus = InMemory::new();
    let first = bus
        .subscribe(sub("t"), Arc::new(Stalled::default()))
        .await
        .expect("subscribe");
    let second = bus
        .subscribe(sub("t"), Arc::new(Stalled::default()))
        .await
        .expect("subscribe");
    first.stop().await;
    second.stop().await;
    // Nobody reads the group: what does not fit is discarded, never waited for.
    let start = tokio::time::Instant::now();
    let run = async {
        for _ in 0..2 * GROUP_MAX_EVENTS {
            bus.publish(event("t", 10)).await.expect("publish");
        }
    };
    tokio::time::timeout(Duration::from_secs(600), run)
        .await
        .expect("publishes waited for a group nobody reads");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "no publish waited"
    );
    assert_eq!(
        bus.group_count("t"),
        1,
        "kept for a subscriber that comes back"
    );
    tokio::time::sleep(GROUP_IDLE_TTL + Duration::from_secs(1)).await;
    assert_eq!(bus.group_count("t"), 0, "removed once idle");
}

#[tokio::test(start_paused = true)]
async fn a_subscriber_that_comes_back_keeps_its_group() {
    let bus = InMemory::new();
    let first = bus
        .subscribe(sub("t"), Arc::new(Stalled::default()))
        .await
        .expect("subscribe");
    first.stop().await;
    let _again = bus
        .subscribe(sub("t"), Arc::new(Quick))
        .await
        .expect("subscribe");
    tokio::time::sleep(GROUP_IDLE_TTL + Duration::from_secs(1)).await;
    assert_eq!(
        bus.group_count("t"),
        1,
        "a group with a subscriber is never removed"
    );
}

#[tokio::test(start_paused = true)]
async fn acknowledged_events_give_their_room_back() {
    let bus = InMemory::new();
    let _s = bus
        .subscribe(sub("t"), Arc::new(Quick))
        .await
        .expect("subscribe");
    let run = async {
        for _ in 0..3 * GROUP_MAX_EVENTS {
            bus.publish(event("t", 10)).await.expect("publish");
        }
    };
    tokio::time::timeout(Duration::from_secs(600), run)
        .await
        .expect("acknowledged events kept their room");
}
