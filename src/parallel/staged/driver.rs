//! [`Driver`]: feeds jobs to one or more [`Ring`]s (the least loaded live one first)
//! and hands results back in job order. Shared by the blocking iterator and the async
//! stream of staged pipelines and replicas.

use std::collections::VecDeque;
use std::iter::Fuse;
use std::task::{Context, Poll};

use super::host::{HostInputs, HostOutputs};
use super::ring::{Outcome, Ring};
use super::stage::Stage;
use crate::error::{Error, Result};

/// A job's place in the result window.
enum Entry<J, T> {
    /// In a ring; the job value waits for its `read`.
    Running(J),
    /// Finished; not handed out yet (an earlier job is still running).
    Done(Result<T>),
    /// The job value is with `read` (on core `.0`); seen by `poll_next` only if `read`
    /// panicked.
    Reading(u32),
}

/// The machinery of one run.
pub(crate) struct Driver<'r, I: Iterator, W, R, T> {
    rings: &'r mut [Ring],
    jobs: Fuse<I>,
    write: W,
    read: R,
    /// Index of the next job to start.
    next_job: u64,
    /// Index of the job at the front of `window` (the next to hand out).
    next_out: u64,
    /// Jobs `next_out..next_job`, in order.
    window: VecDeque<Entry<I::Item, T>>,
    /// The most jobs in `window`: bounds the results kept for reordering.
    window_cap: usize,
    /// Where the search for the least loaded ring starts (spreads ties).
    rotate: usize,
    /// The result being handed out while the rings move on (kept here so that a
    /// panicking closure meanwhile does not lose it: the next call returns it).
    handing_out: Option<Result<T>>,
}

impl<I: Iterator, W, R, T> Driver<'_, I, W, R, T> {
    pub(crate) fn rings(&self) -> &[Ring] {
        self.rings
    }

    /// Jobs started whose results were not handed out yet.
    pub(crate) fn pending(&self) -> usize {
        self.window.len()
    }
}

impl<'r, I, W, R, T> Driver<'r, I, W, R, T>
where
    I: Iterator,
    W: FnMut(&I::Item, &mut HostInputs<'_>) -> Result<()>,
    R: FnMut(I::Item, &HostOutputs<'_>) -> Result<T>,
{
    /// A run over `rings` (leftovers of an earlier, leaked run are dropped first).
    pub(crate) fn new(rings: &'r mut [Ring], jobs: I, write: W, read: R) -> Self {
        for ring in rings.iter_mut() {
            ring.abandon();
        }
        let slots: usize = rings.iter().map(Ring::depth).sum();
        let window_cap = slots.saturating_mul(2).max(1);
        Driver {
            rings,
            jobs: jobs.fuse(),
            write,
            read,
            next_job: 0,
            next_out: 0,
            window: VecDeque::with_capacity(window_cap),
            window_cap,
            rotate: 0,
            handing_out: None,
        }
    }

    /// The live ring with a free slot and the fewest jobs in flight.
    fn pick(&mut self) -> Option<usize> {
        let n = self.rings.len();
        let best = (0..n)
            .map(|k| (self.rotate + k) % n)
            .filter(|&k| self.rings[k].can_start())
            .min_by_key(|&k| self.rings[k].in_flight())?;
        self.rotate = (best + 1) % n.max(1);
        Some(best)
    }

    /// Starts jobs while a live ring has a free slot and the window has room.
    fn feed(&mut self) {
        while self.window.len() < self.window_cap {
            let Some(k) = self.pick() else { return };
            let Some(job) = self.jobs.next() else { return };
            let index = self.next_job;
            self.next_job += 1;
            // In the window before `write` runs: if it panics, the job keeps its place.
            self.window.push_back(Entry::Running(job));
            let Driver {
                rings,
                window,
                write,
                ..
            } = self;
            if let Some(Entry::Running(job)) = window.back() {
                rings[k].start(index, |inputs| write(job, inputs));
            }
        }
    }

    /// The next result in job order, once it is there; `None` when every job was
    /// handed out, or when every ring is unrecoverable and nothing is in flight.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        if let Some(result) = self.handing_out.take() {
            return Poll::Ready(Some(result));
        }
        loop {
            let progressed = self.advance(cx);
            if let Some(Entry::Reading(core)) = self.window.front() {
                // `read` panicked on this job (and the caller went on).
                let (core, job) = (*core, self.next_out);
                self.window.pop_front();
                self.next_out += 1;
                return Poll::Ready(Some(Err(Error::Stage {
                    stage: Stage::Read,
                    job,
                    core,
                    error: Box::new(Error::invalid("read", "the read closure panicked")),
                })));
            }
            if let Some(Entry::Done(_)) = self.window.front()
                && let Some(Entry::Done(result)) = self.window.pop_front()
            {
                self.next_out += 1;
                // Before handing the result out: the slots freed meanwhile take their
                // next jobs, whose writes are scheduled, so the units stay busy while
                // the caller works on the result.
                self.handing_out = Some(result);
                self.advance(cx);
                return Poll::Ready(self.handing_out.take());
            }
            if progressed {
                continue;
            }
            if self.window.is_empty() {
                // Nothing in flight: either no jobs are left, or no live ring can take
                // one (every core is unrecoverable). Either way the run is over.
                return Poll::Ready(None);
            }
            return Poll::Pending;
        }
    }

    /// Starts jobs in free slots and moves every ring on; returns whether anything
    /// progressed. Registers `cx`'s waker on the oldest request of every busy unit.
    fn advance(&mut self, cx: &mut Context<'_>) -> bool {
        self.feed();
        let mut progressed = false;
        let Driver {
            rings,
            window,
            read,
            next_out,
            ..
        } = self;
        for ring in rings.iter_mut() {
            let core = ring.core();
            progressed |= ring.poll(cx, &mut |job, outcome| {
                deliver(window, *next_out, read, core, job, outcome)
            });
        }
        progressed
    }
}

/// Puts `job`'s outcome in its place in `window` (calling `read` on success); returns
/// whether the job succeeded.
fn deliver<J, T>(
    window: &mut VecDeque<Entry<J, T>>,
    next_out: u64,
    read: &mut impl FnMut(J, &HostOutputs<'_>) -> Result<T>,
    core: u32,
    job: u64,
    outcome: Outcome<'_>,
) -> bool {
    let Some(entry) = job
        .checked_sub(next_out)
        .and_then(|at| usize::try_from(at).ok())
        .and_then(|at| window.get_mut(at))
    else {
        return false;
    };
    let Entry::Running(value) = std::mem::replace(entry, Entry::Reading(core)) else {
        return false;
    };
    let result = match outcome {
        Ok(outputs) => read(value, &outputs).map_err(|error| Error::Stage {
            stage: Stage::Read,
            job,
            core,
            error: Box::new(error),
        }),
        Err(error) => Err(error),
    };
    let ok = result.is_ok();
    *entry = Entry::Done(result);
    ok
}

impl<I: Iterator, W, R, T> Drop for Driver<'_, I, W, R, T> {
    fn drop(&mut self) {
        // The rings outlive the run: their slots are freed for the next run, without
        // blocking (requests still running complete in the background).
        for ring in self.rings.iter_mut() {
            ring.abandon();
        }
    }
}
