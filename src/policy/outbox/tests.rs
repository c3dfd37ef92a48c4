//! The outbox against a fake broker that can be switched down and up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::*;
use crate::broker::{Feature, Handler, Metadata, SubscribeRequest, Subscription};

/// Records what it accepted; refuses with `Unavailable` while down. The
/// first attempt of each body in `slow` never gets a confirm (the outbox's
/// direct timeout gives up on it).
#[derive(Default)]
struct Fake {
    down: AtomicBool,
    slow: Mutex<Vec<String>>,
    attempts: std::sync::atomic::AtomicUsize,
    got: Mutex<Vec<(Option<String>, String)>>,
}

#[async_trait]
impl PubSub for Fake {
    fn features(&self) -> &[Feature] {
        &[]
    }
    async fn publish(&self, req: PublishRequest) -> Result<(), BrokerError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(BrokerError::Unavailable("down".into()));
        }
        let body = String::from_utf8_lossy(&req.data).into_owned();
        let hang = {
            let mut slow = self.slow.lock().expect("lock");
            let hit = slow.iter().position(|b| *b == body);
            hit.map(|i| slow.remove(i)).is_some()
        };
        if hang {
            std::future::pending::<()>().await;
        }
        self.got.lock().expect("lock").push((req.key, body));
        Ok(())
    }
    async fn subscribe(
        &self,
        _req: SubscribeRequest,
        _handler: Arc<dyn Handler>,
    ) -> Result<Subscription, BrokerError> {
        Err(BrokerError::Rejected("no subscriptions".into()))
    }
    async fn ping(&self) -> Result<(), BrokerError> {
        Ok(())
    }
    async fn close(&self) -> Result<(), BrokerError> {
        Ok(())
    }
}

fn req(key: &str, body: String) -> PublishRequest {
    PublishRequest {
        topic: "orders".into(),
        data: Bytes::from(body),
        content_type: "text/plain".into(),
        metadata: Metadata::new(),
        key: Some(key.into()),
    }
}

fn cfg(dir: &std::path::Path, max_bytes: u64) -> OutboxConfig {
    OutboxConfig {
        component: "ps".into(),
        dir: dir.to_path_buf(),
        max_bytes,
        direct_timeout: Duration::from_millis(500),
    }
}

async fn wait_for(what: &str, cond: impl FnMut() -> bool) {
    crate::broker::conformance::eventually(what, cond, |done| *done).await;
}

/// Per-key sequence numbers in the order the fake received them.
fn per_key(got: &[(Option<String>, String)], key: &str) -> Vec<String> {
    got.iter()
        .filter(|(k, _)| k.as_deref() == Some(key))
        .map(|(_, b)| b.clone())
        .collect()
}

#[tokio::test]
async fn buffers_while_down_and_drains_in_order_before_newer_publishes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = Arc::new(Fake::default());
    let ob = Outbox::open(cfg(dir.path(), 1 << 20), fake.clone())
        .await
        .expect("open");
    let r = ob.publish(req("a", "a0".into())).await.expect("up");
    assert!(!r.buffered);
    fake.down.store(true, Ordering::SeqCst);
    for i in 1..50 {
        for key in ["a", "b"] {
            let r = ob
                .publish(req(key, format!("{key}{i}")))
                .await
                .expect("buffered");
            assert!(r.buffered, "published while down must be buffered");
        }
    }
    assert_eq!(ob.depth().events, 98);
    fake.down.store(false, Ordering::SeqCst);
    // Published while the backlog drains: must come after the backlog.
    for i in 50..60 {
        ob.publish(req("a", format!("a{i}")))
            .await
            .expect("publish");
    }
    wait_for("the backlog to drain", || ob.depth().events == 0).await;
    let got = fake.got.lock().expect("lock").clone();
    let want_a: Vec<String> = (0..60).map(|i| format!("a{i}")).collect();
    let want_b: Vec<String> = (1..50).map(|i| format!("b{i}")).collect();
    assert_eq!(per_key(&got, "a"), want_a);
    assert_eq!(per_key(&got, "b"), want_b);
    assert_eq!(ob.depth().bytes, 0);
    // Drained: publishes go direct again.
    let r = ob.publish(req("a", "a60".into())).await.expect("up");
    assert!(!r.buffered);
    ob.close().await;
}

#[tokio::test]
async fn full_outbox_refuses_with_retry_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = Arc::new(Fake::default());
    fake.down.store(true, Ordering::SeqCst);
    let ob = Outbox::open(cfg(dir.path(), 600), fake.clone())
        .await
        .expect("open");
    let mut accepted = 0;
    let err = loop {
        match ob.publish(req("k", "x".repeat(100))).await {
            Ok(r) => {
                assert!(r.buffered);
                accepted += 1;
                assert!(accepted < 100, "never refused");
            }
            Err(e) => break e,
        }
    };
    assert!(accepted >= 1, "a small event must fit");
    match err {
        OutboxError::Full {
            limit,
            retry_after_secs,
            ..
        } => {
            assert_eq!(limit, 600);
            assert_eq!(retry_after_secs, RETRY_AFTER_SECS);
        }
        other => panic!("expected OutboxFull, got {other}"),
    }
    assert!(ob.depth().bytes <= 600);
    fake.down.store(false, Ordering::SeqCst);
    wait_for("the backlog to drain", || ob.depth().events == 0).await;
    assert_eq!(fake.got.lock().expect("lock").len(), accepted);
    ob.close().await;
}

#[tokio::test]
async fn restart_drains_what_was_left() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = Arc::new(Fake::default());
    fake.down.store(true, Ordering::SeqCst);
    let ob = Outbox::open(cfg(dir.path(), 1 << 20), fake.clone())
        .await
        .expect("open");
    for i in 0..20 {
        ob.publish(req("k", format!("k{i}")))
            .await
            .expect("buffered");
    }
    ob.close().await;
    drop(ob);

    let fake2 = Arc::new(Fake::default());
    let ob = Outbox::open(cfg(dir.path(), 1 << 20), fake2.clone())
        .await
        .expect("reopen");
    wait_for("the left-over backlog to drain", || {
        fake2.got.lock().expect("lock").len() == 20
    })
    .await;
    wait_for("the depth to reach zero", || ob.depth().events == 0).await;
    let want: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
    assert_eq!(per_key(&fake2.got.lock().expect("lock"), "k"), want);
    ob.close().await;
    drop(ob);

    // The cursor was stored: a third start has nothing to send.
    let fake3 = Arc::new(Fake::default());
    let ob = Outbox::open(cfg(dir.path(), 1 << 20), fake3.clone())
        .await
        .expect("reopen");
    assert_eq!(ob.depth().events, 0);
    ob.close().await;
    assert!(fake3.got.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn permanent_errors_reach_the_caller_unbuffered() {
    struct Refuses;
    #[async_trait]
    impl PubSub for Refuses {
        fn features(&self) -> &[Feature] {
            &[]
        }
        async fn publish(&self, _req: PublishRequest) -> Result<(), BrokerError> {
            Err(BrokerError::Rejected("too large".into()))
        }
        async fn subscribe(
            &self,
            _req: SubscribeRequest,
            _handler: Arc<dyn Handler>,
        ) -> Result<Subscription, BrokerError> {
            Err(BrokerError::Rejected("no".into()))
        }
        async fn ping(&self) -> Result<(), BrokerError> {
            Ok(())
        }
        async fn close(&self) -> Result<(), BrokerError> {
            Ok(())
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let ob = Outbox::open(cfg(dir.path(), 1 << 20), Arc::new(Refuses))
        .await
        .expect("open");
    let err = ob.publish(req("k", "x".into())).await;
    assert!(matches!(
        err,
        Err(OutboxError::Broker(BrokerError::Rejected(_)))
    ));
    assert_eq!(ob.depth().events, 0);
    ob.close().await;
}

/// Two publishes of one key in flight together: the first gets no confirm
/// in time and is buffered. Before, the second saw an empty outbox, went
/// straight to the broker and arrived first; now it waits for the first to
/// settle and is buffered behind it.
#[tokio::test]
async fn a_slow_publish_is_not_overtaken_by_a_later_one_of_its_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Arc::new(Fake::default());
    broker.slow.lock().expect("lock").push("k1".into());
    let mut config = cfg(dir.path(), 1 << 20);
    config.direct_timeout = Duration::from_millis(200);
    let ob = Arc::new(Outbox::open(config, broker.clone()).await.expect("open"));
    let first = tokio::spawn({
        let ob = ob.clone();
        async move { ob.publish(req("k", "k1".into())).await }
    });
    wait_for("the first direct attempt", || {
        broker.attempts.load(Ordering::SeqCst) >= 1
    })
    .await;
    let second = ob.publish(req("k", "k2".into())).await.expect("publish");
    let first = first.await.expect("join").expect("publish");
    assert!(first.buffered, "the unconfirmed first publish is buffered");
    assert!(
        second.buffered,
        "the second waits its turn and queues behind it"
    );
    wait_for("the backlog to drain", || ob.depth().events == 0).await;
    let got = broker.got.lock().expect("lock").clone();
    assert_eq!(
        per_key(&got, "k"),
        ["k1", "k2"],
        "sent=2 acknowledged=2 order kept"
    );
    assert!(
        ob.keys.0.lock().expect("lock").is_empty(),
        "no key left behind"
    );
}
