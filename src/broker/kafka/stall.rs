//! Stall detection for one partition: lag without progress for longer than
//! `stallTimeout`. Pure: the watchdog (`watchdog.rs`) feeds it observations.

use std::time::{Duration, Instant};

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
