//! One retry schedule for every loop in the tree that waits and tries again.
//!
//! A [`Backoff`] is a plain value describing the schedule; it can be stored
//! in a config and copied freely. [`Backoff::start`] hands out the small
//! per-operation state, [`Delays`], that counts the retries of one operation
//! and sleeps between them.
//!
//! The two shapes are those of daprd's Resiliency retry policies
//! (`policy: constant` with `duration`, `policy: exponential` with
//! `maxInterval`):
//! - constant: the same delay before every retry;
//! - exponential: `initial × multiplier^n` before retry `n` (0 = the first),
//!   capped at `max`, each delay spread at random by ±`jitter` so that many
//!   failing operations do not retry in lock step. No delay, jitter
//!   included, is ever longer than `max`.
//!
//! Every field is public and no combination of values panics: a multiplier
//! below 1 (or NaN) does not grow, a huge one jumps to `max`, a `max` below
//! `initial` caps `initial` too, jitter is clamped to `0..=1`, and all the
//! arithmetic saturates.
//!
//! This module is a leaf: it imports nothing of this crate, so brokers at the
//! bottom of the dependency graph can use it as well as `delivery/` and
//! `policy/`.

use std::time::Duration;

use rand::Rng;

#[cfg(test)]
mod tests;

/// Growth factor of [`Backoff::exponential`].
pub const DEFAULT_MULTIPLIER: f64 = 2.0;
/// Relative jitter of [`Backoff::exponential`]: each delay within ±20%.
pub const DEFAULT_JITTER: f64 = 0.2;

/// A retry schedule (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay before the first retry.
    pub initial: Duration,
    /// Longest delay, jitter included.
    pub max: Duration,
    /// Growth factor per retry; 1 (or less) keeps every delay at `initial`.
    pub multiplier: f64,
    /// Relative jitter: 0.2 spreads each delay over ±20%, 0 is deterministic.
    pub jitter: f64,
}

impl Backoff {
    /// The schedule of a subscription without a Resiliency policy (see
    /// `src/delivery/retry.rs`): 100 ms doubling up to 10 s, ±20%.
    pub const DEFAULT: Backoff =
        Backoff::exponential(Duration::from_millis(100), Duration::from_secs(10));

    /// The same `interval` before every retry, without jitter (daprd's
    /// `policy: constant`).
    pub const fn constant(interval: Duration) -> Self {
        Self {
            initial: interval,
            max: interval,
            multiplier: 1.0,
            jitter: 0.0,
        }
    }

    /// `initial` growing by [`DEFAULT_MULTIPLIER`] per retry up to `max`,
    /// jittered by [`DEFAULT_JITTER`] (daprd's `policy: exponential`).
    pub const fn exponential(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            multiplier: DEFAULT_MULTIPLIER,
            jitter: DEFAULT_JITTER,
        }
    }

    /// The same schedule growing by `multiplier` per retry.
    pub const fn with_multiplier(self, multiplier: f64) -> Self {
        Self { multiplier, ..self }
    }

    /// The same schedule with relative jitter `jitter` (0 = deterministic).
    pub const fn with_jitter(self, jitter: f64) -> Self {
        Self { jitter, ..self }
    }

    /// The delay before retry number `retry` (0 = the first), without jitter.
    pub fn base_delay(&self, retry: u32) -> Duration {
        // NaN and anything below 1 mean "do not grow"; an overflowing or
        // infinite factor reaches the cap in `scale`.
        let multiplier = if self.multiplier > 1.0 {
            self.multiplier
        } else {
            1.0
        };
        let factor = multiplier.powi(i32::try_from(retry).unwrap_or(i32::MAX));
        scale(self.initial, factor, self.max)
    }

    /// The delay before retry number `retry` (0 = the first), jittered and
    /// never longer than `max`.
    pub fn delay(&self, retry: u32) -> Duration {
        let base = self.base_delay(retry);
        // NaN and negative jitter mean none; more than 1 would allow
        // negative delays.
        if self.jitter.is_nan() || self.jitter <= 0.0 || base.is_zero() {
            return base;
        }
        let jitter = self.jitter.min(1.0);
        let spread = rand::rng().random_range(1.0 - jitter..=1.0 + jitter);
        scale(base, spread, self.max)
    }

    /// Starts counting the retries of one operation.
    pub fn start(&self) -> Delays {
        Delays {
            backoff: *self,
            retries: 0,
        }
    }
}

impl Default for Backoff {
    /// [`Backoff::DEFAULT`].
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// `d × factor`, at most `cap`, to the nearest nanosecond; `factor` is ≥ 0
/// (possibly infinite). Saturates instead of panicking.
fn scale(d: Duration, factor: f64, cap: Duration) -> Duration {
    let nanos = d.as_nanos() as f64 * factor;
    if nanos.is_nan() {
        // 0 × ∞: nothing to grow.
        return Duration::ZERO.min(cap);
    }
    if nanos >= cap.as_nanos() as f64 {
        return cap;
    }
    let nanos = nanos.round();
    let scaled = if nanos < u64::MAX as f64 {
        Duration::from_nanos(nanos as u64)
    } else {
        // Only for caps above 584 years; precision no longer matters.
        Duration::try_from_secs_f64(nanos / 1e9).unwrap_or(cap)
    };
    scaled.min(cap)
}

/// The retries of one operation under a [`Backoff`]: each call to
/// [`Delays::next_delay`] (or [`Delays::wait`]) moves one step along the
/// schedule, [`Delays::reset`] goes back to the start after a success.
#[derive(Debug, Clone)]
pub struct Delays {
    backoff: Backoff,
    retries: u32,
}

impl Delays {
    /// The delay before the next retry; moves one step along the schedule.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.backoff.delay(self.retries);
        self.retries = self.retries.saturating_add(1);
        delay
    }

    /// Sleeps for [`Delays::next_delay`]. Uses `tokio::time`, so tests can
    /// run it in paused time; wrap it in `select!` to make it cancellable.
    pub async fn wait(&mut self) {
        let delay = self.next_delay();
        tokio::time::sleep(delay).await;
    }

    /// Goes back to the first delay (after the operation succeeded).
    pub fn reset(&mut self) {
        self.retries = 0;
    }

    /// How many delays were handed out since the start or the last reset.
    pub fn retries(&self) -> u32 {
        self.retries
    }
}

impl Iterator for Delays {
    type Item = Duration;

    /// [`Delays::next_delay`]; the schedule never ends.
    fn next(&mut self) -> Option<Duration> {
        Some(self.next_delay())
    }
}
