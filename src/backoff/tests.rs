use std::time::Duration;

use tokio::time::Instant;

use super::*;

const MS: Duration = Duration::from_millis(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn exponential_doubles_from_initial_and_caps() {
    let b = Backoff::exponential(ms(100), Duration::from_secs(10));
    assert_eq!(b.base_delay(0), ms(100));
    assert_eq!(b.base_delay(1), ms(200));
    assert_eq!(b.base_delay(3), ms(800));
    assert_eq!(b.base_delay(6), ms(6400));
    assert_eq!(b.base_delay(7), Duration::from_secs(10));
    assert_eq!(b.base_delay(u32::MAX), Duration::from_secs(10));
}

#[test]
fn the_default_is_the_delivery_schedule() {
    let b = Backoff::default();
    assert_eq!(b, Backoff::DEFAULT);
    assert_eq!((b.initial, b.max), (ms(100), Duration::from_secs(10)));
    assert_eq!((b.multiplier, b.jitter), (2.0, 0.2));
}

#[test]
fn other_multipliers_grow_by_that_factor() {
    let b = Backoff::exponential(ms(100), Duration::from_secs(60)).with_multiplier(1.5);
    assert_eq!(b.base_delay(1), ms(150));
    assert_eq!(b.base_delay(2), ms(225));
    let flat = Backoff::exponential(ms(100), Duration::from_secs(60)).with_multiplier(0.5);
    assert_eq!(
        flat.base_delay(5),
        ms(100),
        "a factor below 1 does not shrink"
    );
}

#[test]
fn constant_is_the_same_every_time_and_not_jittered() {
    let b = Backoff::constant(ms(250));
    for retry in [0, 1, 2, 10, u32::MAX] {
        assert_eq!(b.delay(retry), ms(250));
    }
}

#[test]
fn without_jitter_the_delay_is_the_base_delay() {
    let b = Backoff::exponential(ms(3), Duration::from_secs(1)).with_jitter(0.0);
    for retry in 0..20 {
        assert_eq!(b.delay(retry), b.base_delay(retry));
    }
}

#[test]
fn jitter_stays_within_its_fraction_and_never_exceeds_max() {
    for jitter in [0.2, 0.5, 1.0] {
        let b = Backoff::exponential(ms(100), Duration::from_secs(10)).with_jitter(jitter);
        for retry in 0..40 {
            let base = b.base_delay(retry).as_secs_f64();
            let d = b.delay(retry);
            let s = d.as_secs_f64();
            assert!(
                s >= base * (1.0 - jitter) - 1e-9 && s <= base * (1.0 + jitter) + 1e-9,
                "jitter {jitter}, retry {retry}: {s} vs {base}"
            );
            assert!(d <= b.max, "jitter {jitter}, retry {retry}: {d:?}");
        }
        // Below the cap, 40 draws from a continuous range are all distinct
        // unless the jitter is not random.
        let seen: std::collections::HashSet<_> = (0..40).map(|_| b.delay(2)).collect();
        assert!(seen.len() > 30, "jitter {jitter}: {} distinct", seen.len());
    }
}

#[test]
fn max_below_initial_caps_every_delay() {
    let b = Backoff::exponential(Duration::from_secs(5), Duration::from_secs(1));
    for retry in 0..10 {
        assert_eq!(b.base_delay(retry), Duration::from_secs(1));
        assert!(b.delay(retry) <= Duration::from_secs(1));
    }
}

#[test]
fn delays_step_along_the_schedule_and_reset() {
    let b = Backoff::exponential(Duration::from_secs(1), Duration::from_secs(4)).with_jitter(0.0);
    let mut d = b.start();
    assert_eq!(d.retries(), 0);
    let first: Vec<_> = d.by_ref().take(4).collect();
    assert_eq!(first, [1, 2, 4, 4].map(Duration::from_secs));
    assert_eq!(d.retries(), 4);
    d.reset();
    assert_eq!(d.retries(), 0);
    assert_eq!(d.next_delay(), Duration::from_secs(1));
    assert_eq!(d.next_delay(), Duration::from_secs(2));
}

/// Every combination of awkward inputs: nothing panics, no delay exceeds
/// `max`, delays never shrink from one retry to the next and never drop
/// below the smaller of `initial` and `max`.
#[test]
fn no_input_panics_or_breaks_the_bounds() {
    let durations = [
        Duration::ZERO,
        Duration::from_nanos(1),
        ms(1),
        Duration::from_secs(3),
        Duration::from_secs(u64::MAX),
        Duration::MAX,
    ];
    let multipliers = [
        f64::NAN,
        -1.0,
        0.0,
        0.5,
        1.0,
        1.000_001,
        2.0,
        1e308,
        f64::INFINITY,
    ];
    let jitters = [f64::NAN, -1.0, 0.0, 0.2, 1.0, 5.0, f64::INFINITY];
    let retries = [0, 1, 2, 63, 64, 1000, i32::MAX as u32, u32::MAX];
    for initial in durations {
        for max in durations {
            for multiplier in multipliers {
                for jitter in jitters {
                    let b = Backoff {
                        initial,
                        max,
                        multiplier,
                        jitter,
                    };
                    let floor = initial.min(max);
                    let mut last = Duration::ZERO;
                    for retry in retries {
                        let base = b.base_delay(retry);
                        let d = b.delay(retry);
                        let case = format!("{b:?} retry {retry}: base {base:?} delay {d:?}");
                        assert!(base <= max && d <= max, "{case}");
                        assert!(base >= floor && base >= last, "{case}");
                        last = base;
                    }
                    let mut delays = b.start();
                    for _ in 0..3 {
                        assert!(delays.next_delay() <= max);
                    }
                }
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn wait_sleeps_each_delay_of_the_schedule() {
    let b = Backoff::exponential(ms(100), ms(500)).with_jitter(0.0);
    let mut delays = b.start();
    let start = Instant::now();
    let mut at = Vec::new();
    for _ in 0..5 {
        delays.wait().await;
        at.push(start.elapsed());
    }
    assert_eq!(at, [100, 300, 700, 1200, 1700].map(ms));
    delays.reset();
    let again = Instant::now();
    delays.wait().await;
    assert_eq!(again.elapsed(), ms(100));
}

#[tokio::test(start_paused = true)]
async fn jittered_waits_stay_within_bounds() {
    let b = Backoff::exponential(ms(100), Duration::from_secs(2));
    let mut delays = b.start();
    for retry in 0..8 {
        let base = b.base_delay(retry);
        let start = Instant::now();
        delays.wait().await;
        let took = start.elapsed();
        // The timer wheel rounds a deadline up to the next millisecond.
        assert!(
            took >= base.mul_f64(0.8) && took <= base.mul_f64(1.2).min(b.max) + MS,
            "retry {retry}: {took:?} vs {base:?}"
        );
    }
}
