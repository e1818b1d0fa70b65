//! Per-core counters of staged pipelines and replicas: [`CoreStats`].

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::NrtStatus;

/// What one core of a [`StagedPipeline`](crate::StagedPipeline) or of
/// [`Replicas`](crate::Replicas) did so far (a snapshot).
///
/// ```
/// # use neuron_rt::{Runtime, StagedPipeline};
/// # let neff = neuron_rt::sim::ModelBuilder::add_example(&[2, 3]).build().unwrap();
/// # let rt = Runtime::builder().simulator().build()?;
/// # let model = rt.load_model(&neff)?; // out = a + b on f32 [2, 3]
/// let mut pipeline = StagedPipeline::new(&model)?;
/// let n = pipeline.run(0..5, |_, _| Ok(()), |_, _| Ok(())).filter(Result::is_ok).count();
/// let stats = pipeline.stats();
/// assert_eq!((n, stats.jobs, stats.failed_jobs, stats.in_flight), (5, 5, 0, 0));
/// assert!(stats.unrecoverable.is_none());
/// # Ok::<(), neuron_rt::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CoreStats {
    /// The NeuronCore.
    pub core: u32,
    /// Jobs finished on this core, failed ones included.
    pub jobs: u64,
    /// Jobs that failed on this core.
    pub failed_jobs: u64,
    /// Time during which at least one job was in flight on this core (host clock).
    pub busy: Duration,
    /// Jobs in flight now.
    pub in_flight: u64,
    /// The fatal status that took this core out of rotation, if one did (see
    /// [`ExecUnit::unrecoverable`](crate::ExecUnit::unrecoverable)).
    pub unrecoverable: Option<NrtStatus>,
}

/// The live counters behind [`CoreStats`]; shared by the threads of `Replicas::execute`.
#[derive(Debug)]
pub(crate) struct Counters {
    jobs: AtomicU64,
    failed: AtomicU64,
    busy: Mutex<Busy>,
    /// 0, or the raw fatal status a synchronous execution on this core saw (the
    /// units record those of async requests themselves).
    fatal: AtomicU32,
}

#[derive(Debug, Default)]
struct Busy {
    in_flight: u64,
    since: Option<Instant>,
    total: Duration,
}

impl Counters {
    pub(crate) fn new() -> Counters {
        Counters {
            jobs: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            busy: Mutex::new(Busy::default()),
            fatal: AtomicU32::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Busy> {
        // Every update leaves the fields consistent.
        self.busy.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A job starts on this core.
    pub(crate) fn start(&self) {
        let mut busy = self.lock();
        if busy.in_flight == 0 {
            busy.since = Some(Instant::now());
        }
        busy.in_flight += 1;
    }

    /// A job that started ended, successfully or not.
    pub(crate) fn finish(&self, ok: bool) {
        self.jobs.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        let mut busy = self.lock();
        busy.in_flight = busy.in_flight.saturating_sub(1);
        if busy.in_flight == 0
            && let Some(since) = busy.since.take()
        {
            busy.total += since.elapsed();
        }
    }

    /// A job that started was abandoned (its run was dropped): not counted as a job.
    pub(crate) fn cancel(&self) {
        let mut busy = self.lock();
        busy.in_flight = busy.in_flight.saturating_sub(1);
        if busy.in_flight == 0
            && let Some(since) = busy.since.take()
        {
            busy.total += since.elapsed();
        }
    }

    /// Jobs in flight now.
    pub(crate) fn in_flight(&self) -> u64 {
        self.lock().in_flight
    }

    /// Records that the core failed with fatal `status` (the first one is kept).
    pub(crate) fn mark_fatal(&self, status: NrtStatus) {
        let _ = self.fatal.compare_exchange(
            0,
            status.as_raw().max(1),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// The fatal status recorded by [`mark_fatal`](Counters::mark_fatal), if any.
    pub(crate) fn fatal(&self) -> Option<NrtStatus> {
        match self.fatal.load(Ordering::Acquire) {
            0 => None,
            raw => Some(NrtStatus::from_raw(raw)),
        }
    }

    pub(crate) fn snapshot(&self, core: u32, unrecoverable: Option<NrtStatus>) -> CoreStats {
        let (busy, in_flight) = {
            let b = self.lock();
            (
                b.total + b.since.map_or(Duration::ZERO, |s| s.elapsed()),
                b.in_flight,
            )
        };
        CoreStats {
            core,
            jobs: self.jobs.load(Ordering::Relaxed),
            failed_jobs: self.failed.load(Ordering::Relaxed),
            busy,
            in_flight,
            unrecoverable,
        }
    }
}
