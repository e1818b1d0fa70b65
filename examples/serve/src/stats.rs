//! Counters and latency histograms of the service, shared by every request without locks.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;

/// Values below this many microseconds have a bucket each.
const EXACT: u64 = 64;
/// Sub-buckets per power of two above [`EXACT`]: 1/32 = 3 % relative precision.
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// Powers of two covered above [`EXACT`] (2^6 us .. 2^40 us, about 12 days).
const OCTAVES: u64 = 34;
const BUCKETS: usize = (EXACT + OCTAVES * SUB) as usize;

/// A latency histogram in microseconds: exact below 64 us, then 32 buckets per power of
/// two (percentiles within about 3 %). Recording is one atomic add; it never allocates.
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

fn index(us: u64) -> usize {
    if us < EXACT {
        return us as usize;
    }
    let octave = u64::from(63 - us.leading_zeros()); // >= 6
    let sub = (us >> (octave - u64::from(SUB_BITS))) & (SUB - 1);
    let i = EXACT + (octave - 6) * SUB + sub;
    (i as usize).min(BUCKETS - 1)
}

/// The smallest value of bucket `i` and its width, in microseconds.
fn bucket_range(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < EXACT {
        return (i, 1);
    }
    let octave = (i - EXACT) / SUB + 6;
    let sub = (i - EXACT) % SUB;
    let width = 1u64 << (octave - u64::from(SUB_BITS));
    ((1u64 << octave) + sub * width, width)
}

impl Histogram {
    pub fn record(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.buckets[index(us)].fetch_add(1, Relaxed);
    }

    /// p50, p99 and the count, in milliseconds (bucket midpoints).
    pub fn summary(&self) -> LatencySummary {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let count: u64 = counts.iter().sum();
        let percentile = |p: f64| -> f64 {
            if count == 0 {
                return 0.0;
            }
            // The rank of the p-th percentile (nearest rank, 1-based).
            let rank = ((p * count as f64).ceil() as u64).clamp(1, count);
            let mut seen = 0;
            for (i, &c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    let (low, width) = bucket_range(i);
                    return (low as f64 + (width as f64 - 1.0) / 2.0) / 1000.0;
                }
            }
            0.0
        };
        LatencySummary {
            count,
            p50_ms: percentile(0.50),
            p99_ms: percentile(0.99),
        }
    }
}

#[derive(Serialize, Debug, Clone, Copy, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// A relaxed counter (statistics only: nothing is synchronised through it).
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self) {
        self.0.fetch_add(1, Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// The percentile of `sorted` (ascending) by nearest rank, in milliseconds.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_values_in_order() {
        let mut last = 0;
        for us in [0, 1, 63, 64, 65, 100, 1000, 1023, 1024, 33_000, 1 << 39] {
            let i = index(us);
            assert!(i >= last, "{us} us went back to bucket {i}");
            let (low, width) = bucket_range(i);
            assert!(
                low <= us && us < low + width,
                "{us} us not in [{low}, +{width})"
            );
            last = i;
        }
    }

    #[test]
    fn percentiles_are_within_the_bucket_precision() {
        let h = Histogram::default();
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        let s = h.summary();
        assert_eq!(s.count, 100);
        assert!((s.p50_ms - 50.0).abs() / 50.0 < 0.04, "{s:?}");
        assert!((s.p99_ms - 99.0).abs() / 99.0 < 0.04, "{s:?}");
    }
}
