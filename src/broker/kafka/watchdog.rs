//! Stall detection: a partition that has records waiting on the broker
//! (lag) but makes no progress for too long is what daprd users see as a
//! silently stuck consumer. The detector is pure; the group consumer feeds
//! it observations and restarts itself when it fires.

use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};

use super::group::Consumer_;
use super::state::{PartKey, Shared};

/// Bound of a watermark request made by the watchdog.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(2);

/// Watches one partition.
#[derive(Debug, Clone)]
pub struct StallDetector {
    timeout: Duration,
    /// Since when the partition has had lag without progress.
    stuck_since: Option<Instant>,
}

impl StallDetector {
    /// A detector firing after `timeout` of lag without progress.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            stuck_since: None,
        }
    }

    /// Feeds one observation: `lag` records wait on the broker and
    /// `progressed` says whether anything was fetched or finished since the
    /// last observation. Returns true when the partition counts as stalled.
    pub fn observe(&mut self, now: Instant, lag: i64, progressed: bool) -> bool {
        if self.timeout.is_zero() || lag <= 0 || progressed {
            self.stuck_since = None;
            return false;
        }
        let since = *self.stuck_since.get_or_insert(now);
        now.duration_since(since) >= self.timeout
    }
}

/// Feeds the stall detectors. A partition is stalled when records wait on
/// the broker, nothing of it is queued or in flight here, and nothing was
/// fetched or finished for `stallTimeout`.
pub fn stalled(consumer: &Consumer_, shared: &Shared) -> bool {
    let now = Instant::now();
    let idle: Vec<(PartKey, Option<i64>)> = {
        let mut st = shared.lock();
        let mut idle = Vec::new();
        for (key, part) in st.parts.iter_mut() {
            let busy = part.paused || part.outstanding > 0 || part.offsets.unfinished() > 0;
            let progressed = std::mem::take(&mut part.progressed) || busy;
            if progressed {
                part.stall.observe(now, 0, true);
            } else {
                idle.push((key.clone(), part.offsets.next_fetch()));
            }
        }
        idle
    };
    for (key, next) in idle {
        let Ok((low, high)) = consumer.fetch_watermarks(&key.0, key.1, WATERMARK_TIMEOUT) else {
            continue;
        };
        let position = next.or_else(|| committed(consumer, &key)).unwrap_or(low);
        let lag = high - position;
        let mut st = shared.lock();
        let Some(part) = st.parts.get_mut(&key) else {
            continue;
        };
        if part.stall.observe(now, lag, false) {
            tracing::warn!(topic = %key.0, partition = key.1, lag, position, "Consumer stalled: lag without progress.");
            return true;
        }
    }
    false
}

fn committed(consumer: &Consumer_, key: &PartKey) -> Option<i64> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&key.0, key.1);
    let got = consumer.committed_offsets(tpl, WATERMARK_TIMEOUT).ok()?;
    let elem = got.find_partition(&key.0, key.1)?;
    match elem.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_only_after_lag_without_progress_for_the_timeout() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut d = StallDetector::new(Duration::from_secs(10));
        assert!(!d.observe(t0, 5, false));
        assert!(!d.observe(t0 + 9 * s, 5, false));
        assert!(d.observe(t0 + 10 * s, 5, false));
        assert!(!d.observe(t0 + 11 * s, 5, true), "progress resets");
        assert!(!d.observe(t0 + 30 * s, 0, false), "no lag is no stall");
        assert!(!d.observe(t0 + 31 * s, 3, false));
        assert!(d.observe(t0 + 41 * s, 3, false));
    }

    #[test]
    fn zero_timeout_disables() {
        let mut d = StallDetector::new(Duration::ZERO);
        let t0 = Instant::now();
        assert!(!d.observe(t0, 5, false));
        assert!(!d.observe(t0 + Duration::from_secs(3600), 5, false));
    }
}
