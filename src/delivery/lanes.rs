//! Ordering lanes: events that share a lane key run one at a time, in the
//! order they were submitted; different keys run in parallel.
//!
//! Each lane is a chain of oneshot channels. Joining a lane (synchronously,
//! in submit order) takes the previous member's "done" receiver and leaves a
//! new one behind; a member runs once its predecessor's sender is gone. The
//! map only holds lanes with a member in flight, so it is bounded by the
//! subscription's in-flight bound.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// How a subscription orders deliveries; parsed with the other
/// subscription settings in `config/subscription.rs`.
pub use crate::config::subscription::Ordering;

#[derive(Default)]
struct Inner {
    next_seq: u64,
    /// Lane key → (sequence of its last member, that member's done signal).
    tails: HashMap<String, (u64, oneshot::Receiver<()>)>,
}

/// The lanes of one subscription.
#[derive(Default, Clone)]
pub struct Lanes {
    inner: Arc<Mutex<Inner>>,
}

/// A place in a lane. Hold it for the whole life of the event (including
/// retries); dropping it lets the next member of the lane run.
pub struct LaneSlot {
    wait_for: Option<oneshot::Receiver<()>>,
    release: Option<(Lanes, String, u64, oneshot::Sender<()>)>,
}

impl Lanes {
    /// Joins the lane `key` (none = unordered). Call in submit order.
    pub fn join(&self, key: Option<String>) -> LaneSlot {
        let Some(key) = key else {
            return LaneSlot {
                wait_for: None,
                release: None,
            };
        };
        let (tx, rx) = oneshot::channel();
        // Poisoning needs a panic inside these few lines, which cannot happen.
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.next_seq += 1;
        let seq = inner.next_seq;
        let prev = inner.tails.insert(key.clone(), (seq, rx)).map(|(_, rx)| rx);
        LaneSlot {
            wait_for: prev,
            release: Some((self.clone(), key, seq, tx)),
        }
    }

    /// Number of lanes with a member in flight.
    pub fn active(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .tails
            .len()
    }
}

impl LaneSlot {
    /// Waits until every earlier member of the lane has finished.
    pub async fn ready(&mut self) {
        if let Some(rx) = self.wait_for.take() {
            // Err only means the predecessor's slot was dropped: it is done.
            let _ = rx.await;
        }
    }
}

impl Drop for LaneSlot {
    fn drop(&mut self) {
        if let Some((lanes, key, seq, tx)) = self.release.take() {
            let mut inner = lanes.inner.lock().unwrap_or_else(|e| e.into_inner());
            if inner.tails.get(&key).is_some_and(|(s, _)| *s == seq) {
                inner.tails.remove(&key);
            }
            drop(inner);
            drop(tx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use tokio::time::Instant;

    // Paused time: sleeps and timeouts below complete as soon as every task
    // is idle, in deadline order, so the tests are exact and take no time.

    #[tokio::test(start_paused = true)]
    async fn same_key_runs_in_submit_order_and_lanes_are_cleaned_up() {
        let lanes = Lanes::default();
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..20u32 {
            let mut slot = lanes.join(Some("k".into()));
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                slot.ready().await;
                // Later members would finish first: only the lane keeps order.
                tokio::time::sleep(Duration::from_millis(u64::from(20 - i))).await;
                log.lock().unwrap().push(i);
                drop(slot);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*log.lock().unwrap(), (0..20).collect::<Vec<_>>());
        assert_eq!(lanes.active(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_member_starts_exactly_when_its_predecessor_finishes() {
        let lanes = Lanes::default();
        let start = Instant::now();
        let mut first = lanes.join(Some("k".into()));
        let mut second = lanes.join(Some("k".into()));
        let mut other = lanes.join(Some("other".into()));
        let holder = tokio::spawn(async move {
            first.ready().await;
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(first);
        });
        other.ready().await;
        assert_eq!(start.elapsed(), Duration::ZERO, "another key never waits");
        tokio::time::timeout(Duration::from_secs(60), second.ready())
            .await
            .expect("runs once the first member is done");
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        holder.await.unwrap();
        drop((second, other));
        assert_eq!(lanes.active(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn different_keys_and_keyless_do_not_wait() {
        let lanes = Lanes::default();
        let a = lanes.join(Some("a".into()));
        let mut b = lanes.join(Some("b".into()));
        let mut none = lanes.join(None);
        let start = Instant::now();
        b.ready().await;
        none.ready().await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        let mut a2 = lanes.join(Some("a".into()));
        let mut a2_ready = std::pin::pin!(a2.ready());
        let blocked = tokio::time::timeout(Duration::from_secs(3600), &mut a2_ready).await;
        assert!(blocked.is_err(), "second member of lane a must wait");
        drop(a);
        let waited = Instant::now();
        tokio::time::timeout(Duration::from_secs(1), a2_ready)
            .await
            .expect("runs once the first member is done");
        assert_eq!(waited.elapsed(), Duration::ZERO);
    }
}
