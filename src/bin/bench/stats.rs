//! Percentiles over recorded latencies.

use serde::Serialize;

/// Summary of a latency sample, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Summary {
    /// Samples.
    pub n: usize,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest sample.
    pub max: f64,
}

/// Sorts `us` in place and summarises it.
pub fn summarize(us: &mut [u64]) -> Summary {
    us.sort_unstable();
    let n = us.len();
    if n == 0 {
        return Summary::default();
    }
    let q = |p: f64| us[(((n as f64) * p).ceil() as usize).clamp(1, n) - 1] as f64 / 1000.0;
    Summary {
        n,
        p50: q(0.50),
        p90: q(0.90),
        p99: q(0.99),
        p999: q(0.999),
        max: us[n - 1] as f64 / 1000.0,
    }
}

/// Median and spread (min..max) of repeated figures.
pub fn spread(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    (s[s.len() / 2], s[0], s[s.len() - 1])
}
