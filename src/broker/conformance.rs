//! The component conformance suite: written once, run against every broker.
//!
//! A component's tests expand [`conformance_suite!`](crate::conformance_suite)
//! with an async constructor; each case gets a fresh component, its own random
//! topic and group names, and waits on conditions with deadlines, never on
//! fixed sleeps. That something did *not* happen (no redelivery, no
//! duplicate) is proven by a marker event published after the events under
//! test: once the marker has been delivered, the broker has handed out
//! everything it would hand out before it (see [`await_markers`]). Cases work
//! at the contract level (publish, subscribe with a handler, outcomes), so
//! they hold for every broker the same way.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::{oneshot, Notify};

use super::{
    Ack, Handler, Metadata, Outcome, PubSub, PublishRequest, ReceivedMessage, SubscribeRequest,
    Subscription,
};

/// How long a case waits for an expected delivery. Generous: real brokers
/// take seconds to join a consumer group.
pub const DEADLINE: Duration = Duration::from_secs(45);
/// How often [`await_markers`] has a marker answered RETRY (when asked to)
/// before it is acknowledged; see there for why three.
pub const MARKER_RETRIES: usize = 3;

/// Metadata key naming a marker event (value: its id).
const MARKER_ID: &str = "conformance-marker";
/// Metadata key with the number of RETRY answers a marker gets.
const MARKER_RETRY: &str = "conformance-marker-retries";

/// Decides the outcome of each delivery: `Some(outcome)` settles it, `None`
/// abandons it (as if the dispatcher shut down).
pub type Script = Arc<dyn Fn(&ReceivedMessage, usize) -> Option<Outcome> + Send + Sync>;

/// A handler that records every delivery and answers from a script.
pub struct Recorder {
    seen: Mutex<Vec<ReceivedMessage>>,
    attempts: Mutex<HashMap<Bytes, usize>>,
    /// Deliveries per marker id; markers are kept out of `seen`/`attempts`
    /// so the counts a case asserts on are only its own events.
    markers: Mutex<HashMap<String, usize>>,
    changed: Notify,
    script: Script,
}

impl Recorder {
    /// A recorder that acknowledges everything.
    pub fn ok() -> Arc<Self> {
        Self::scripted(Arc::new(|_, _| Some(Outcome::Success)))
    }

    /// A recorder answering with `script(message, attempt)` (attempt from 1).
    pub fn scripted(script: Script) -> Arc<Self> {
        Arc::new(Self {
            seen: Mutex::new(Vec::new()),
            attempts: Mutex::new(HashMap::new()),
            markers: Mutex::new(HashMap::new()),
            changed: Notify::new(),
            script,
        })
    }

    /// Every delivery so far, in arrival order.
    pub fn deliveries(&self) -> Vec<ReceivedMessage> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Distinct payloads delivered so far.
    pub fn distinct(&self) -> usize {
        self.attempts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// How often `data` was delivered.
    pub fn count(&self, data: &[u8]) -> usize {
        let attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        attempts.get(data).copied().unwrap_or(0)
    }

    /// How many different markers were delivered here.
    pub fn distinct_markers(&self) -> usize {
        let markers = self.markers.lock().unwrap_or_else(|e| e.into_inner());
        markers.len()
    }

    /// Marker deliveries here, over every marker.
    pub fn marker_count_total(&self) -> usize {
        let markers = self.markers.lock().unwrap_or_else(|e| e.into_inner());
        markers.values().sum()
    }

    /// How often the marker `id` was delivered here.
    pub fn marker_count(&self, id: &str) -> usize {
        let markers = self.markers.lock().unwrap_or_else(|e| e.into_inner());
        markers.get(id).copied().unwrap_or(0)
    }

    /// Waits until `cond` holds, failing the test at the deadline.
    pub async fn wait_for(&self, what: &str, cond: impl Fn(&Self) -> bool) {
        let end = Instant::now() + DEADLINE;
        loop {
            let notified = self.changed.notified();
            if cond(self) {
                return;
            }
            let left = end.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out after {DEADLINE:?} waiting for {what}; {} distinct events seen",
                self.distinct()
            );
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), notified).await;
        }
    }
}

#[async_trait]
impl Handler for Recorder {
    async fn submit(&self, msg: ReceivedMessage) -> Ack {
        if let Some(id) = msg.metadata.get(MARKER_ID) {
            return self.marker(id, &msg);
        }
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
            let n = attempts.entry(msg.data.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let outcome = (self.script)(&msg, attempt);
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(msg);
        self.changed.notify_waiters();
        let (tx, rx) = oneshot::channel();
        if let Some(outcome) = outcome {
            let _ = tx.send(outcome);
        }
        rx
    }
}

impl Recorder {
    /// Counts a marker delivery and answers RETRY until the marker has been
    /// retried as often as its metadata asks, then SUCCESS.
    fn marker(&self, id: &str, msg: &ReceivedMessage) -> Ack {
        let retries: usize = msg
            .metadata
            .get(MARKER_RETRY)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let attempt = {
            let mut markers = self.markers.lock().unwrap_or_else(|e| e.into_inner());
            let n = markers.entry(id.to_string()).or_insert(0);
            *n += 1;
            *n
        };
        self.changed.notify_waiters();
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(if attempt > retries {
            Outcome::Success
        } else {
            Outcome::Retry
        });
        rx
    }
}

/// Publishes one marker event per entry of `keys` on `topic` (each with that
/// key, so it lands in the same partition / lane as the earlier events of
/// the key) and waits until every marker has been delivered `retries + 1`
/// times, summed over `recs` (the members of one group). Recorders answer
/// a marker RETRY `retries` times, then SUCCESS; other handlers wrapping a
/// recorder may settle it themselves.
///
/// Why a delivered marker proves "nothing else arrives":
/// - brokers that keep one key's events in order (Kafka and embedded
///   partitions, the in-memory and RabbitMQ FIFO queues) hand out an event
///   published before the marker, or a replay of it from the committed
///   position, before the marker itself;
/// - a *redelivery* (after RETRY, or a wrong one after SUCCESS or DROP) is
///   scheduled by every broker with a doubling backoff per event from one
///   base (100 ms in-memory, embedded and Kafka, 200 ms RabbitMQ). The
///   checked event's last settle happened before the marker was published,
///   so a wrong redelivery of an event settled for the `n`-th time is due
///   `2^(n-1)` base steps after that settle, at most 4 steps for the cases
///   here (third attempt). With `retries = MARKER_RETRIES` the marker's last
///   delivery comes at least 1 + 2 + 4 = 7 base steps after its publish, so
///   any such redelivery has arrived before the wait ends.
pub async fn await_markers(
    ps: &Arc<dyn PubSub>,
    topic: &str,
    keys: &[Option<&str>],
    retries: usize,
    recs: &[&Recorder],
) {
    let mut ids = Vec::new();
    for key in keys {
        let id = unique("marker");
        let mut req = event(
            topic,
            *key,
            &format!(r#"{{"specversion":"1.0","id":"{id}","data":{{"marker":"{id}"}}}}"#),
        );
        req.metadata.insert(MARKER_ID.into(), id.clone());
        req.metadata
            .insert(MARKER_RETRY.into(), retries.to_string());
        ps.publish(req)
            .await
            .unwrap_or_else(|e| panic!("publish marker to {topic} failed: {e}"));
        ids.push(id);
    }
    let Some(first) = recs.first() else {
        panic!("await_markers needs at least one recorder");
    };
    let delivered = |id: &String| recs.iter().map(|r| r.marker_count(id)).sum::<usize>();
    first
        .wait_for(&format!("{} marker(s) on {topic}", ids.len()), |_| {
            ids.iter().all(|id| delivered(id) > retries)
        })
        .await;
}

/// Polls `observe` until `done` holds for its value and returns that value;
/// after [`DEADLINE`] fails the test with `what` and the value last observed.
/// For conditions a [`Recorder`] is not told about (files, counters).
pub async fn eventually<T: std::fmt::Debug>(
    what: &str,
    mut observe: impl FnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let end = Instant::now() + DEADLINE;
    loop {
        let value = observe();
        if done(&value) {
            return value;
        }
        assert!(
            Instant::now() < end,
            "timed out after {DEADLINE:?} waiting for {what}; last observed: {value:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Random names so cases never see each other's events.
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &id[..12])
}

/// A publish request with a JSON CloudEvent-like body and a marker header.
pub fn event(topic: &str, key: Option<&str>, body: &str) -> PublishRequest {
    let mut metadata = Metadata::new();
    metadata.insert("conformance".into(), "yes".into());
    PublishRequest {
        topic: topic.to_string(),
        data: Bytes::from(body.to_string()),
        content_type: "application/cloudevents+json".into(),
        metadata,
        key: key.map(str::to_string),
    }
}

fn body(run: &str, key: &str, seq: usize) -> String {
    format!(
        r#"{{"specversion":"1.0","id":"{run}-{key}-{seq}","data":{{"key":"{key}","seq":{seq}}}}}"#
    )
}

async fn subscribe(
    ps: &Arc<dyn PubSub>,
    topic: &str,
    group: &str,
    handler: Arc<Recorder>,
) -> Subscription {
    let req = SubscribeRequest {
        topic: topic.to_string(),
        group: group.to_string(),
        metadata: BTreeMap::new(),
    };
    ps.subscribe(req, handler)
        .await
        .unwrap_or_else(|e| panic!("subscribe to {topic} failed: {e}"))
}

async fn publish_all(ps: &Arc<dyn PubSub>, reqs: Vec<PublishRequest>) {
    for req in reqs {
        let topic = req.topic.clone();
        ps.publish(req)
            .await
            .unwrap_or_else(|e| panic!("publish to {topic} failed: {e}"));
    }
}

/// Events published after subscribing arrive with bytes, topic and metadata intact.
pub async fn publish_receive(ps: Arc<dyn PubSub>) {
    let (topic, group, run) = (unique("conf-pr"), unique("g"), unique("r"));
    let rec = Recorder::ok();
    let sub = subscribe(&ps, &topic, &group, rec.clone()).await;
    let reqs: Vec<_> = (0..50)
        .map(|i| event(&topic, Some("k"), &body(&run, "k", i)))
        .collect();
    publish_all(&ps, reqs.clone()).await;
    rec.wait_for("50 events", |r| r.distinct() == 50).await;
    for req in &reqs {
        let got = rec.deliveries().into_iter().find(|m| m.data == req.data);
        let got = got.unwrap_or_else(|| panic!("event {:?} not delivered", req.data));
        assert_eq!(got.topic, topic, "topic round trip");
        assert_eq!(
            got.metadata.get("conformance").map(String::as_str),
            Some("yes"),
            "metadata round trip: {:?}",
            got.metadata
        );
    }
    sub.stop().await;
    ps.close().await.expect("close");
}

/// A RETRY outcome makes the broker hand the event out again.
pub async fn retry_redelivers(ps: Arc<dyn PubSub>) {
    let (topic, group, run) = (unique("conf-retry"), unique("g"), unique("r"));
    let rec = Recorder::scripted(Arc::new(|_, attempt| {
        Some(if attempt < 3 {
            Outcome::Retry
        } else {
            Outcome::Success
        })
    }));
    let sub = subscribe(&ps, &topic, &group, rec.clone()).await;
    let data = body(&run, "k", 0);
    publish_all(&ps, vec![event(&topic, Some("k"), &data)]).await;
    rec.wait_for("three deliveries of a retried event", |r| {
        r.count(data.as_bytes()) >= 3
    })
    .await;
    // A fourth delivery (SUCCESS taken for RETRY) would be due 4 backoff
    // steps after the third settle; the retried marker ends after 7.
    await_markers(&ps, &topic, &[Some("k")], MARKER_RETRIES, &[&rec]).await;
    assert_eq!(
        rec.count(data.as_bytes()),
        3,
        "acknowledged after the third attempt"
    );
    sub.stop().await;
    ps.close().await.expect("close");
}

/// DROP acknowledges: the event is not delivered again.
pub async fn drop_is_not_redelivered(ps: Arc<dyn PubSub>) {
    let (topic, group, run) = (unique("conf-drop"), unique("g"), unique("r"));
    let rec = Recorder::scripted(Arc::new(|_, _| Some(Outcome::Drop)));
    let sub = subscribe(&ps, &topic, &group, rec.clone()).await;
    let reqs: Vec<_> = (0..5)
        .map(|i| event(&topic, Some("k"), &body(&run, "k", i)))
        .collect();
    publish_all(&ps, reqs).await;
    rec.wait_for("5 events", |r| r.distinct() == 5).await;
    // A redelivery (DROP taken for RETRY) would be due one backoff step
    // after the drop; the retried marker ends after 7.
    await_markers(&ps, &topic, &[Some("k")], MARKER_RETRIES, &[&rec]).await;
    assert_eq!(rec.deliveries().len(), 5, "dropped events were redelivered");
    sub.stop().await;
    ps.close().await.expect("close");
}

/// Events of one key arrive in publish order, keys interleaved.
pub async fn per_key_order(ps: Arc<dyn PubSub>) {
    let (topic, group, run) = (unique("conf-order"), unique("g"), unique("r"));
    let rec = Recorder::ok();
    let sub = subscribe(&ps, &topic, &group, rec.clone()).await;
    let keys = ["a", "b", "c", "d"];
    let mut reqs = Vec::new();
    for i in 0..40 {
        for k in keys {
            reqs.push(event(&topic, Some(k), &body(&run, k, i)));
        }
    }
    publish_all(&ps, reqs).await;
    rec.wait_for("160 events", |r| r.distinct() == 160).await;
    let mut next: HashMap<String, usize> = HashMap::new();
    for m in rec.deliveries() {
        let v: serde_json::Value = serde_json::from_slice(&m.data).expect("json body");
        let key = v["data"]["key"].as_str().expect("key").to_string();
        let seq = v["data"]["seq"].as_u64().expect("seq") as usize;
        let want = next.entry(key.clone()).or_insert(0);
        assert_eq!(seq, *want, "key {key} out of order");
        *want += 1;
    }
    sub.stop().await;
    ps.close().await.expect("close");
}

/// Subscribers sharing a group split the events; each group gets a copy.
pub async fn groups_compete_and_fan_out(ps: Arc<dyn PubSub>) {
    let (topic, run) = (unique("conf-groups"), unique("r"));
    let (g1, g2) = (unique("g1"), unique("g2"));
    let (a1, a2, b) = (Recorder::ok(), Recorder::ok(), Recorder::ok());
    let s1 = subscribe(&ps, &topic, &g1, a1.clone()).await;
    let s2 = subscribe(&ps, &topic, &g1, a2.clone()).await;
    let s3 = subscribe(&ps, &topic, &g2, b.clone()).await;
    let n = 60;
    let keys: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
    let reqs: Vec<_> = (0..n)
        .map(|i| event(&topic, Some(&keys[i]), &body(&run, "k", i)))
        .collect();
    publish_all(&ps, reqs.clone()).await;
    b.wait_for("the second group's copy", |r| r.distinct() == n)
        .await;
    a1.wait_for("the first group's copy", |r| {
        reqs.iter()
            .all(|q| r.count(&q.data) + a2.count(&q.data) >= 1)
    })
    .await;
    // One marker behind each key's event, in both groups: a second copy of
    // an event (to the other member, or replayed) comes before its key's
    // marker.
    let marker_keys: Vec<Option<&str>> = keys.iter().map(|k| Some(k.as_str())).collect();
    await_markers(&ps, &topic, &marker_keys, 0, &[&a1, &a2]).await;
    let group2 = marker_keys.len();
    b.wait_for("the markers in the second group", |r| {
        r.distinct_markers() == group2
    })
    .await;
    assert_eq!(b.deliveries().len(), n, "the second group got duplicates");
    let shared: usize = reqs
        .iter()
        .filter(|q| a1.count(&q.data) > 0 && a2.count(&q.data) > 0)
        .count();
    assert_eq!(shared, 0, "an event went to both members of one group");
    for s in [s1, s2, s3] {
        s.stop().await;
    }
    ps.close().await.expect("close");
}

/// Each event lands on its own topic only.
pub async fn many_topics(ps: Arc<dyn PubSub>) {
    let (run, group) = (unique("r"), unique("g"));
    let topics: Vec<String> = (0..8).map(|i| unique(&format!("conf-t{i}"))).collect();
    let mut recs = Vec::new();
    let mut subs = Vec::new();
    for t in &topics {
        let rec = Recorder::ok();
        subs.push(subscribe(&ps, t, &group, rec.clone()).await);
        recs.push(rec);
    }
    for (i, t) in topics.iter().enumerate() {
        let reqs = (0..5)
            .map(|j| event(t, None, &body(&run, &format!("t{i}"), j)))
            .collect();
        publish_all(&ps, reqs).await;
    }
    for (t, rec) in topics.iter().zip(&recs) {
        rec.wait_for("5 events on each topic", |r| r.distinct() == 5)
            .await;
        assert!(
            rec.deliveries().iter().all(|m| &m.topic == t),
            "event on the wrong topic"
        );
    }
    for s in subs {
        s.stop().await;
    }
    ps.close().await.expect("close");
}

/// After a subscription stops it gets nothing more; an event it abandoned or
/// never saw goes to the next subscriber of the same group.
pub async fn stop_and_abandoned_events(ps: Arc<dyn PubSub>) {
    let (topic, group, run) = (unique("conf-stop"), unique("g"), unique("r"));
    let first = Recorder::scripted(Arc::new(|_, _| None));
    let sub = subscribe(&ps, &topic, &group, first.clone()).await;
    let abandoned = body(&run, "k", 0);
    publish_all(&ps, vec![event(&topic, Some("k"), &abandoned)]).await;
    first
        .wait_for("the event to be offered", |r| r.distinct() == 1)
        .await;
    sub.stop().await;
    // The abandoned event may have been offered again before the stop.
    let offered_before_stop = first.deliveries().len();
    let later = body(&run, "k", 1);
    publish_all(&ps, vec![event(&topic, Some("k"), &later)]).await;
    let second = Recorder::ok();
    let sub = subscribe(&ps, &topic, &group, second.clone()).await;
    second
        .wait_for("the abandoned and the later event", |r| {
            r.count(abandoned.as_bytes()) >= 1 && r.count(later.as_bytes()) >= 1
        })
        .await;
    // The group has handed out everything up to a marker behind `later`; a
    // stopped subscription still consuming would have competed for `later`
    // (alone until `second` joined) and for the marker.
    await_markers(&ps, &topic, &[Some("k")], 0, &[&second]).await;
    assert_eq!(
        first.count(later.as_bytes()),
        0,
        "a stopped subscription got an event"
    );
    assert_eq!(
        first.marker_count_total(),
        0,
        "a stopped subscription got the marker"
    );
    assert_eq!(
        first.deliveries().len(),
        offered_before_stop,
        "a stopped subscription got more events"
    );
    sub.stop().await;
    ps.close().await.expect("close");
}

/// Runs `f` with a fresh component; used by the macro.
pub async fn run<F, Fut, C, CFut>(make: C, case: F)
where
    C: FnOnce() -> CFut,
    CFut: Future<Output = Arc<dyn PubSub>>,
    F: FnOnce(Arc<dyn PubSub>) -> Fut,
    Fut: Future<Output = ()>,
{
    case(make().await).await
}

/// Expands the whole conformance suite as `#[tokio::test]`s for one
/// component. The argument is a closure returning a future of
/// `Arc<dyn PubSub>`; it is called once per case.
#[macro_export]
macro_rules! conformance_suite {
    ($make:expr) => {
        $crate::conformance_suite!(@case $make, publish_receive);
        $crate::conformance_suite!(@case $make, retry_redelivers);
        $crate::conformance_suite!(@case $make, drop_is_not_redelivered);
        $crate::conformance_suite!(@case $make, per_key_order);
        $crate::conformance_suite!(@case $make, groups_compete_and_fan_out);
        $crate::conformance_suite!(@case $make, many_topics);
        $crate::conformance_suite!(@case $make, stop_and_abandoned_events);
    };
    (@case $make:expr, $name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            $crate::broker::conformance::run($make, $crate::broker::conformance::$name).await
        }
    };
}
