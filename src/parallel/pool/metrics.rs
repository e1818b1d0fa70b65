//! The pool's counters and latency histograms (atomics, no locks, no allocation per
//! request) and their snapshot, [`PoolMetrics`].

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Latencies below this many microseconds have a bucket each.
const EXACT: u64 = 64;
/// Sub-buckets per power of two above [`EXACT`]: 1/32, about 3 % relative precision.
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// Powers of two covered above [`EXACT`]: 2^6 us up to 2^34 us (about 4.8 hours); longer
/// latencies land in the last bucket.
const OCTAVES: u64 = 28;
const BUCKETS: usize = (EXACT + OCTAVES * SUB) as usize;

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

/// A live latency histogram: one relaxed atomic add per record.
pub(super) struct Histogram {
    buckets: Box<[AtomicU64]>,
}

impl Histogram {
    pub(super) fn new() -> Histogram {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub(super) fn record(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.buckets[index(us)].fetch_add(1, Relaxed);
    }

    fn snapshot(&self) -> LatencyHistogram {
        LatencyHistogram {
            counts: self.buckets.iter().map(|b| b.load(Relaxed)).collect(),
        }
    }
}

/// A snapshot of a latency histogram: exact to the microsecond below 64 µs, then 32
/// buckets per power of two (percentiles within about 3 %), up to about 4.8 hours.
///
/// With feature `serde` it serializes as `count`, `p50`, `p90`, `p99` (seconds) and
/// `buckets`: the non-empty ones as `{"le": <upper bound, seconds, exclusive>, "count":
/// <n>}` in ascending order, not accumulated.
#[derive(Clone, PartialEq, Eq)]
pub struct LatencyHistogram {
    counts: Box<[u64]>,
}

impl LatencyHistogram {
    /// How many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The `p`-quantile (`p` in 0..=1, e.g. 0.99), by nearest rank, as the middle of its
    /// bucket; zero when nothing was recorded.
    pub fn percentile(&self, p: f64) -> Duration {
        let count = self.count();
        if count == 0 {
            return Duration::ZERO;
        }
        let rank = ((p.clamp(0.0, 1.0) * count as f64).ceil() as u64).clamp(1, count);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (low, width) = bucket_range(i);
                return Duration::from_secs_f64((low as f64 + (width as f64 - 1.0) / 2.0) / 1e6);
            }
        }
        Duration::ZERO
    }

    /// The non-empty buckets in ascending order: `(upper bound, count)`, the upper bound
    /// exclusive (e.g. for a Prometheus histogram, after accumulating the counts).
    pub fn buckets(&self) -> impl Iterator<Item = (Duration, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, &c)| {
                let (low, width) = bucket_range(i);
                (Duration::from_micros(low + width), c)
            })
    }

    fn add(&mut self, other: &LatencyHistogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
    }

    fn empty() -> LatencyHistogram {
        LatencyHistogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
        }
    }
}

impl std::fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("count", &self.count())
            .field("p50", &self.percentile(0.5))
            .field("p99", &self.percentile(0.99))
            .finish()
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for LatencyHistogram {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;

        #[derive(serde::Serialize)]
        struct Bucket {
            le: f64,
            count: u64,
        }
        let buckets: Vec<Bucket> = self
            .buckets()
            .map(|(le, count)| Bucket {
                le: le.as_secs_f64(),
                count,
            })
            .collect();
        let mut s = serializer.serialize_struct("LatencyHistogram", 5)?;
        s.serialize_field("count", &self.count())?;
        s.serialize_field("p50", &self.percentile(0.5).as_secs_f64())?;
        s.serialize_field("p90", &self.percentile(0.9).as_secs_f64())?;
        s.serialize_field("p99", &self.percentile(0.99).as_secs_f64())?;
        s.serialize_field("buckets", &buckets)?;
        s.end()
    }
}

/// A duration as f64 seconds (`serialize_with`).
#[cfg(feature = "serde")]
fn seconds<S: serde::Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(d.as_secs_f64())
}

/// One copy's live counters.
pub(super) struct Counters {
    /// Requests dispatched to the copy (a re-routed request counts on every copy it
    /// was sent to).
    pub(super) requests: AtomicU64,
    pub(super) ok: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) refused: AtomicU64,
    pub(super) cancelled: AtomicU64,
    /// Dispatched and not released yet (waiting, or in flight).
    pub(super) assigned: AtomicU64,
    /// Admitted to the copy's compute unit and not released yet.
    pub(super) admitted: AtomicU64,
    pub(super) latency: Histogram,
}

impl Counters {
    pub(super) fn new() -> Counters {
        Counters {
            requests: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            assigned: AtomicU64::new(0),
            admitted: AtomicU64::new(0),
            latency: Histogram::new(),
        }
    }

    pub(super) fn snapshot(&self, device_busy: Duration) -> RequestCounts {
        // `admitted` first: a request admitted between the two reads only makes
        // `waiting` larger, never negative.
        let admitted = self.admitted.load(Relaxed);
        let assigned = self.assigned.load(Relaxed);
        RequestCounts {
            requests: self.requests.load(Relaxed),
            ok: self.ok.load(Relaxed),
            failed: self.failed.load(Relaxed),
            refused: self.refused.load(Relaxed),
            cancelled: self.cancelled.load(Relaxed),
            in_flight: admitted,
            waiting: assigned.saturating_sub(admitted),
            device_busy,
            latency: self.latency.snapshot(),
        }
    }
}

/// Request counts and latencies, of one copy or of the whole pool. With feature
/// `serde`, `Serialize` with these field names (`device_busy` in seconds).
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RequestCounts {
    /// Requests dispatched (per copy: sent to it, a re-routed request counting on each
    /// copy it was sent to; total: [`infer`](crate::ModelPool::infer) and
    /// [`lease`](crate::ModelPool::lease) calls).
    pub requests: u64,
    /// Executions that completed successfully.
    pub ok: u64,
    /// Executions that ran and failed (an error status, or a unit that died under them),
    /// and requests whose transfers failed.
    pub failed: u64,
    /// Requests a dead unit refused before they ran (`infer` sends them to another copy).
    pub refused: u64,
    /// Requests dropped (cancelled) while their execution was on the device.
    pub cancelled: u64,
    /// Requests admitted to a compute unit and not finished yet.
    pub in_flight: u64,
    /// Requests dispatched and not admitted to the unit yet: waiting for tensor sets or
    /// for room in the unit's queue, writing their inputs, or leased and not executing.
    pub waiting: u64,
    /// Time the requests kept the core busy, as the host sees it: the time in which at
    /// least one of them was accepted by the unit and its completion not yet seen. A
    /// little more than the device's own time (completions are seen a few µs late);
    /// copies on one core may overlap (each counts its own), so the total is per copy.
    #[cfg_attr(feature = "serde", serde(serialize_with = "seconds"))]
    pub device_busy: Duration,
    /// Latency of successful requests, from dispatch to the release of their sets
    /// (for [`infer`](crate::ModelPool::infer): outputs read back).
    pub latency: LatencyHistogram,
}

impl RequestCounts {
    pub(super) fn empty() -> RequestCounts {
        RequestCounts {
            requests: 0,
            ok: 0,
            failed: 0,
            refused: 0,
            cancelled: 0,
            in_flight: 0,
            waiting: 0,
            device_busy: Duration::ZERO,
            latency: LatencyHistogram::empty(),
        }
    }

    pub(super) fn add(&mut self, other: &RequestCounts) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.refused += other.refused;
        self.cancelled += other.cancelled;
        self.in_flight += other.in_flight;
        self.waiting += other.waiting;
        self.device_busy += other.device_busy;
        self.latency.add(&other.latency);
    }
}

/// One copy of the model in a [`PoolMetrics`] snapshot (`Serialize` with feature
/// `serde`).
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct CopyMetrics {
    /// The copy's index in the pool.
    pub copy: usize,
    /// The NeuronCore it is loaded on.
    pub core: u32,
    /// Why the copy left the rotation (the error that showed its unit dead), `None`
    /// while it is in service.
    pub out_of_service: Option<String>,
    /// Tensor-set pairs allocated for it.
    pub sets: usize,
    /// Its requests.
    pub counts: RequestCounts,
}

/// A snapshot of a [`ModelPool`](crate::ModelPool)'s counters: per copy and in total.
/// Reading one costs a few relaxed atomic loads per copy and histogram bucket (about
/// a microsecond per copy), and takes no lock that a request holds for more than a few
/// instructions: cheap enough for every scrape.
///
/// With feature `serde` it is `Serialize`, with the field names of these structs and
/// durations as f64 seconds (`serde_json::to_string(&pool.metrics())`); the pool chapter
/// of the guide shows how to bridge it to a metrics exporter.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct PoolMetrics {
    /// Every copy, in pool order.
    pub copies: Vec<CopyMetrics>,
    /// The sum over the copies, except `requests`: calls of `infer` and `lease`.
    pub total: RequestCounts,
    /// Requests refused before any copy was chosen: inputs that do not fit the model,
    /// a pool shut down, no copy left in service.
    pub rejected: u64,
    /// Whether [`shutdown`](crate::ModelPool::shutdown) was called.
    pub shut_down: bool,
}

impl PoolMetrics {
    /// How many copies are in service.
    pub fn in_service(&self) -> usize {
        self.copies
            .iter()
            .filter(|c| c.out_of_service.is_none())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_values_in_order() {
        let mut last = 0;
        for us in [0, 1, 63, 64, 65, 100, 1000, 1023, 1024, 33_000, 1 << 33] {
            let i = index(us);
            assert!(i >= last, "{us} us went back to bucket {i}");
            let (low, width) = bucket_range(i);
            assert!(
                low <= us && us < low + width,
                "{us} us not in [{low}, +{width})"
            );
            last = i;
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_are_within_the_bucket_precision() {
        let h = Histogram::new();
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        let s = h.snapshot();
        assert_eq!(s.count(), 100);
        let p50 = s.percentile(0.5).as_secs_f64() * 1e3;
        let p99 = s.percentile(0.99).as_secs_f64() * 1e3;
        assert!((p50 - 50.0).abs() / 50.0 < 0.04, "{p50}");
        assert!((p99 - 99.0).abs() / 99.0 < 0.04, "{p99}");
        assert_eq!(s.buckets().map(|(_, c)| c).sum::<u64>(), 100);
        assert_eq!(LatencyHistogram::empty().percentile(0.5), Duration::ZERO);
    }
}
