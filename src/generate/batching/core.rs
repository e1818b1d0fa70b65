//! One core's scheduler: its thread, its B cache slots (row `r` of a decode step is the
//! core's `r`-th slot), the requests waiting for a slot, and the step loop (one prefill
//! chunk, then one decode step over the rows that can take a token).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::error::BatchError;
use super::sets::Sets;
use super::stream::Seq;
use super::types::{BatchingOptions, Finish, Generated};
use crate::error::{Error, Result};
use crate::generate::bundle::Bundle;
use crate::generate::chain::{IDS_INPUT, NEXT_IDS_OUTPUT, POSITIONS_INPUT, SEQ_IDS_INPUT};
use crate::generate::sampling::Sampler;
use crate::generate::stop::{FinishReason, StopConditions, StopState};
use crate::profiling::spans;
use crate::xu::{ExecSets, ExecUnit, Request};

/// The members a scheduler runs and the sizes it needs, found once.
#[derive(Clone, Debug)]
pub(super) struct Plan {
    /// The prefill member chunks go through, and its length (tokens per chunk).
    pub(super) prefill: String,
    pub(super) chunk: u32,
    pub(super) decode_logits: String,
    pub(super) decode_ids: Option<String>,
    /// Rows of a decode step.
    pub(super) batch: u32,
    pub(super) vocab: u32,
    pub(super) ctx: u32,
}

/// A request accepted for a core, waiting for a slot.
pub(super) struct Pending {
    pub(super) seq: Arc<Seq>,
    pub(super) prompt: Vec<u32>,
    pub(super) sampler: Sampler,
    pub(super) stop: StopConditions,
}

/// What [`Core`] keeps under its lock.
#[derive(Default)]
struct State {
    waiting: VecDeque<Pending>,
    shutdown: bool,
    /// Why the core serves no more (its unit died).
    dead: Option<String>,
    /// Occupied slots.
    running: usize,
    /// Something changed (a request, a cancel, a read of a full buffer).
    kicked: bool,
    counts: Counts,
}

/// Totals of one core since the start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Counts {
    pub(super) admitted: u64,
    pub(super) finished: u64,
    pub(super) cancelled: u64,
    pub(super) failed: u64,
    pub(super) tokens: u64,
    pub(super) prefill_chunks: u64,
    pub(super) decode_steps: u64,
}

/// One core's scheduler state, shared by its thread, the streams and the submitter.
pub(super) struct Core {
    pub(super) core: u32,
    pub(super) slots: usize,
    state: Mutex<State>,
    wake: Condvar,
    /// Sequences accepted and not ended (running + waiting): least-loaded admission.
    pub(super) load: AtomicUsize,
}

/// A snapshot of one core's scheduler.
pub(super) struct Snapshot {
    pub(super) running: usize,
    pub(super) waiting: usize,
    pub(super) dead: Option<String>,
    pub(super) counts: Counts,
}

impl Core {
    pub(super) fn new(core: u32, slots: usize) -> Arc<Core> {
        Arc::new(Core {
            core,
            slots,
            state: Mutex::default(),
            wake: Condvar::new(),
            load: AtomicUsize::new(0),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the thread for a change (the lock is held only to set a flag).
    pub(super) fn kick(&self) {
        self.state().kicked = true;
        self.wake.notify_one();
    }

    /// Queues `p`, or gives it back with why not (a large `Err`, on the rare path: the
    /// caller tries the next core with the same request).
    #[allow(clippy::result_large_err)]
    pub(super) fn enqueue(
        &self,
        p: Pending,
        limit: usize,
    ) -> std::result::Result<(), (Pending, BatchError)> {
        let mut s = self.state();
        if let Some(reason) = &s.dead {
            let reason = format!("core {}: {reason}", self.core);
            return Err((p, BatchError::Unavailable { reason }));
        }
        if s.shutdown {
            let reason = "the scheduler is shut down".to_owned();
            return Err((p, BatchError::Unavailable { reason }));
        }
        let free = self.slots - s.running;
        if s.waiting.len() >= limit + free {
            return Err((p, BatchError::Overloaded { limit }));
        }
        s.waiting.push_back(p);
        s.kicked = true;
        self.load.fetch_add(1, Ordering::AcqRel);
        drop(s);
        self.wake.notify_one();
        Ok(())
    }

    pub(super) fn is_dead(&self) -> bool {
        self.state().dead.is_some()
    }

    pub(super) fn snapshot(&self) -> Snapshot {
        let s = self.state();
        Snapshot {
            running: s.running,
            waiting: s.waiting.len(),
            dead: s.dead.clone(),
            counts: s.counts,
        }
    }

    pub(super) fn shut_down(&self) {
        self.state().shutdown = true;
        self.wake.notify_one();
    }
}

/// A sequence in a slot.
struct Active {
    seq: Arc<Seq>,
    prompt: Vec<u32>,
    /// Prompt tokens prefilled so far.
    prefilled: usize,
    /// The token the next decode step feeds, and its position.
    last: u32,
    position: u32,
    sampler: Sampler,
    stop: StopConditions,
    state: StopState,
    /// Since when its buffer has been full.
    paused_since: Option<Instant>,
    /// Its admission number on this core: the `request_id` of its step spans.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    id: u64,
    /// Its last prompt token is fed by a decode step (greedy rows on a core with chained
    /// steps): the prefill covers the others, and the first token comes from that step,
    /// device-sampled like the next ones. The step can then be queued behind the
    /// prompt's last chunk before that chunk is done (no first token to sample on the
    /// host in between), and the second token follows the first by one step.
    fed: bool,
}

impl Active {
    /// The prompt tokens the prefill covers.
    fn prefill_len(&self) -> usize {
        self.prompt.len() - usize::from(self.fed)
    }

    fn prefilling(&self) -> bool {
        self.prefilled < self.prefill_len()
    }
}

/// How a sequence leaves its slot.
enum Leave {
    Finished,
    Cancelled,
    Failed,
}

/// One prefill chunk queued in an iteration: its row, its set, and whether it is the
/// row's last.
struct ChunkJob {
    row: usize,
    set: usize,
    tokens: usize,
    last: bool,
}

/// Device-sampled decode steps chained on the device: two sets of the ids member, set
/// `k` reading ids tensor `k` and writing ids tensor `1 - k`, so step N+1 (set `1 - k`)
/// can be queued before step N (set `k`) completes, its ids coming from step N's
/// output without a host round trip. Only positions are written by the host (known
/// ahead). A row joining (its prompt's last token to feed) starts a new chain once the
/// step in flight is done, its ids written by the host: the iteration that queues the
/// row's last prefill chunk does so, the chunks running on the device while the host
/// takes that step in (the row's first token comes from the new chain's first step, its
/// second from the next: one step apart).
struct Ring {
    sets: [Sets; 2],
    ids: [crate::objects::Tensor; 2],
    in_flight: Option<RingStep>,
}

impl Drop for Ring {
    /// The core's thread ends (shut down, or its unit died): the step in flight is
    /// waited for (one step at most), so nothing it uses outlives the scheduler.
    fn drop(&mut self) {
        if let Some(step) = self.in_flight.take() {
            let _ = step.request.wait();
        }
    }
}

/// A chained step on the compute unit: its set, and the rows (and sequences) it feeds.
struct RingStep {
    k: usize,
    request: Request<ExecSets>,
    rows: Vec<(usize, Arc<Seq>)>,
}

impl Ring {
    fn new(bundle: &Bundle, member: &str, core: u32, seq_ids: &[i64]) -> Result<Ring> {
        let m = bundle.member(member).expect("planned member");
        let info = |name: &str| {
            m.inputs()
                .iter()
                .chain(m.outputs())
                .find(|i| i.name == name)
                .cloned()
                .ok_or_else(|| Error::MissingTensor {
                    model: member.to_owned(),
                    role: "input or output",
                    tensor: name.to_owned(),
                })
        };
        let (input, output) = (info(IDS_INPUT)?, info(NEXT_IDS_OUTPUT)?);
        if input.size != output.size {
            return Err(Error::invalid(
                "member",
                format!(
                    "`{member}`: {IDS_INPUT} ({} bytes) and {NEXT_IDS_OUTPUT} ({} bytes) differ: steps cannot be chained",
                    input.size, output.size
                ),
            ));
        }
        let rt = bundle.runtime();
        let place = crate::objects::Placement::Device;
        let ids = [
            rt.allocate_for(&input, place, Some(core))?,
            rt.allocate_for(&input, place, Some(core))?,
        ];
        let set = |k: usize| -> Result<Sets> {
            let pair = m.sets(
                core,
                &[(IDS_INPUT, &ids[k]), (NEXT_IDS_OUTPUT, &ids[1 - k])],
            )?;
            let sets = Sets {
                member: member.to_owned(),
                sets: Some(pair),
            };
            sets.write(SEQ_IDS_INPUT, seq_ids)?;
            Ok(sets)
        };
        Ok(Ring {
            sets: [set(0)?, set(1)?],
            ids,
            in_flight: None,
        })
    }
}

/// One iteration of the chained decode: queue the next step behind the one in flight
/// when no row joins (`chain`), take in the one in flight, or start a new one.
/// Returns the rows and the error of a failed step.
#[allow(clippy::too_many_arguments)]
fn ring_step(
    core: &Core,
    bundle: &Bundle,
    compute: &ExecUnit,
    ring: &mut Ring,
    slots: &mut [Option<Active>],
    rows: &[usize],
    plan: &Plan,
    chain: bool,
) -> std::result::Result<(), (Vec<usize>, Error)> {
    let batch = plan.batch as usize;
    let same = |slots: &[Option<Active>], r: usize, seq: &Arc<Seq>| {
        slots[r].as_ref().is_some_and(|a| Arc::ptr_eq(&a.seq, seq))
    };
    let mut chained = None;
    if let Some(f) = ring.in_flight.take() {
        let fed: Vec<usize> = f.rows.iter().map(|(r, _)| *r).collect();
        let continuing: Vec<(usize, Arc<Seq>)> = f
            .rows
            .iter()
            // Two tokens will be pending (the step in flight's and the chained one's):
            // only rows whose stream has room for both, so buffers stay bounded.
            // And only rows with a token left to make after the one in flight (budget
            // and context): a chained step past a row's end would be wasted work.
            .filter(|(r, seq)| {
                same(slots, *r, seq)
                    && rows.contains(r)
                    && seq.room() >= 2
                    && slots[*r].as_ref().is_some_and(|a| {
                        a.state.produced() + 2 <= a.stop.max_new_tokens
                            && a.position + 2 <= plan.ctx
                    })
            })
            .cloned()
            .collect();
        let joins = rows.iter().any(|r| !fed.contains(r));
        if chain && !joins && !continuing.is_empty() {
            let k = 1 - f.k;
            let mut pos = vec![-1i64; batch];
            for (r, _) in &continuing {
                pos[*r] = i64::from(slots[*r].as_ref().expect("occupied").position) + 1;
            }
            let sets = &mut ring.sets[k];
            let request = match sets
                .write(POSITIONS_INPUT, &pos)
                .and_then(|()| sets.schedule(bundle, core.core, compute))
            {
                Ok(request) => request,
                Err(e) => {
                    // The step in flight still holds its sets: wait for it and take
                    // them back, or every later step of the member would fail.
                    let _ = ring.sets[f.k].complete(f.request);
                    return Err((fed, e));
                }
            };
            chained = Some(RingStep {
                k,
                request,
                rows: continuing,
            });
        }
        let span = spans::debug_span!(
            "neuron_rt.generate.step",
            request_id = tracing::field::display(request_ids(slots, &fed)),
            core = core.core,
            step = steps_run(core) + 1,
            batch = fed.len(),
            tokens = fed.len(),
            prefill = false,
        );
        let entered = span.enter();
        core.state().counts.decode_steps += 1;
        let completed = ring.sets[f.k].complete(f.request);
        spans::record_result(&span, &completed);
        drop(entered);
        drop(span);
        // A failed step fails its rows and the chained step's: that step is waited for
        // and its sets taken back (dropped with its request, they would be lost, and
        // every later step of the member would fail).
        let fail = |e: Error, chained: Option<RingStep>, ring: &mut Ring| {
            let mut rows = fed.clone();
            if let Some(c) = chained {
                rows.extend(c.rows.iter().map(|(r, _)| *r));
                let _ = ring.sets[c.k].complete(c.request);
            }
            (rows, e)
        };
        if let Err(e) = completed {
            return Err(fail(e, chained, ring));
        }
        let ids = match ring.ids[1 - f.k].to_vec::<i32>() {
            Ok(ids) => ids,
            Err(e) => return Err(fail(e, chained, ring)),
        };
        for (r, seq) in &f.rows {
            if !same(slots, *r, seq) {
                continue; // left (finished, cancelled) while the step ran
            }
            let id = ids[*r];
            if id < 0 || id as u32 >= plan.vocab {
                let e = Error::from(BatchError::Step {
                    core: core.core,
                    member: ring.sets[f.k].member.clone(),
                    message: format!(
                        "row {r}: token id {id} outside the vocabulary (0..{})",
                        plan.vocab
                    ),
                    status: None,
                    fatal: false,
                });
                return Err(fail(e, chained, ring));
            }
            if let Some(a) = slots[*r].as_mut() {
                a.position += 1;
            }
            emit(core, &mut slots[*r], id as u32, plan.ctx);
        }
    }
    if let Some(c) = chained {
        ring.in_flight = Some(c);
        return Ok(());
    }
    if !chain {
        return Ok(());
    }
    // A new chain: the rows that can take a token now, their ids from the host.
    // (Their streams were looked at before this step's tokens went in: again.)
    let now: Vec<usize> = rows
        .iter()
        .copied()
        .filter(|&r| slots[r].as_ref().is_some_and(|a| !a.seq.is_full()))
        .collect();
    if now.is_empty() {
        return Ok(());
    }
    let k = 0;
    let mut ids = vec![0i32; batch];
    let mut pos = vec![-1i64; batch];
    for &r in &now {
        let a = slots[r].as_ref().expect("occupied");
        ids[r] = a.last as i32;
        pos[r] = i64::from(a.position);
    }
    let sets = &mut ring.sets[k];
    let request = ring.ids[k]
        .write(&ids)
        .and_then(|()| sets.write(POSITIONS_INPUT, &pos))
        .and_then(|()| sets.schedule(bundle, core.core, compute))
        .map_err(|e| (now.clone(), e))?;
    ring.in_flight = Some(RingStep {
        k,
        request,
        rows: now
            .iter()
            .map(|&r| (r, Arc::clone(&slots[r].as_ref().expect("occupied").seq)))
            .collect(),
    });
    Ok(())
}

/// The thread of `core`: steps until shut down, or until its unit dies. `slot_ids`:
/// the cache slot of each row.
pub(super) fn run(
    core: Arc<Core>,
    bundle: Bundle,
    plan: Plan,
    slot_ids: Vec<u32>,
    options: BatchingOptions,
) {
    let chunks_per_step = options.prefill_chunks_per_step.max(1);
    let sets = (|| {
        let ids = plan.decode_ids.as_deref();
        let compute = bundle.runtime().compute_unit(core.core)?;
        let prefill = (0..chunks_per_step)
            .map(|_| Sets::new(&bundle, &plan.prefill, core.core))
            .collect::<Result<Vec<_>>>()?;
        let seq_ids: Vec<i64> = slot_ids[..plan.batch as usize]
            .iter()
            .map(|&s| i64::from(s))
            .collect();
        let ring = match ids {
            Some(m) if options.device_sampling => Some(Ring::new(&bundle, m, core.core, &seq_ids)?),
            _ => None,
        };
        Ok::<_, Error>((
            compute,
            prefill,
            Sets::new(&bundle, &plan.decode_logits, core.core)?,
            ids.map(|m| Sets::new(&bundle, m, core.core)).transpose()?,
            ring,
        ))
    })();
    let (compute, mut prefill, mut decode_logits, mut decode_ids, mut ring) = match sets {
        Ok(s) => s,
        Err(e) => return die(&core, &mut Vec::new(), &plan.prefill, e),
    };
    let mut slots: Vec<Option<Active>> = (0..core.slots).map(|_| None).collect();
    let batch = plan.batch as usize;
    let vocab = plan.vocab as usize;
    let chunk = plan.chunk as usize;
    loop {
        // Step boundary: leave, join, or wait for something to do.
        {
            let mut s = core.state();
            s.kicked = false;
            for slot in slots.iter_mut() {
                if slot
                    .as_ref()
                    .is_some_and(|a| a.seq.cancelled.load(Ordering::Acquire))
                {
                    leave(&core, &mut s, slot, Leave::Cancelled);
                }
            }
            if s.shutdown {
                let e = BatchError::Unavailable {
                    reason: "the scheduler shut down".into(),
                };
                fail_all(&core, &mut s, &mut slots, &e);
                return;
            }
            // Requests cancelled while waiting leave the queue without taking a slot.
            let before = s.waiting.len();
            s.waiting
                .retain(|p| !p.seq.cancelled.load(Ordering::Acquire));
            let gone = before - s.waiting.len();
            s.counts.cancelled += gone as u64;
            core.load.fetch_sub(gone, Ordering::AcqRel);
            for slot in slots.iter_mut().filter(|s| s.is_none()) {
                let Some(p) = s.waiting.pop_front() else {
                    break;
                };
                s.running += 1;
                s.counts.admitted += 1;
                let state = p.stop.start();
                let fed = ring.is_some() && p.sampler.params().is_greedy();
                let last = p.prompt.last().copied().filter(|_| fed);
                *slot = Some(Active {
                    seq: p.seq,
                    fed: last.is_some(),
                    last: last.unwrap_or(0),
                    // A fed row's next decode step feeds its last prompt token.
                    position: last.map_or(0, |_| p.prompt.len() as u32 - 1),
                    prompt: p.prompt,
                    prefilled: 0,
                    sampler: p.sampler,
                    stop: p.stop,
                    state,
                    paused_since: None,
                    id: s.counts.admitted,
                });
            }
            // Pause full rows; cancel the ones stalled for too long.
            let now = Instant::now();
            for slot in slots.iter_mut() {
                let Some(a) = slot else { continue };
                if !a.seq.is_full() {
                    a.paused_since = None;
                    continue;
                }
                let since = *a.paused_since.get_or_insert(now);
                if now.duration_since(since) >= options.stall_timeout {
                    let e = BatchError::Stalled {
                        buffer: a.seq.capacity,
                        timeout: options.stall_timeout,
                    };
                    a.seq.push(Err(e.into()), true);
                    leave(&core, &mut s, slot, Leave::Failed);
                }
            }
            let in_flight = ring.as_ref().is_some_and(|r| r.in_flight.is_some());
            let runnable = slots.iter().flatten().any(|a| a.paused_since.is_none());
            if !runnable && !in_flight {
                // Idle, or every row paused: wait for a change (a paused row's stall
                // timeout is looked at again after a while).
                let wait = if s.running > 0 {
                    options.stall_timeout.min(Duration::from_millis(100))
                } else {
                    Duration::from_secs(1)
                };
                if !s.kicked {
                    let woke = core.wake.wait_timeout(s, wait);
                    drop(woke.unwrap_or_else(|e| e.into_inner()));
                }
                continue;
            }
        }
        // Up to `chunks_per_step` prefill chunks (a long prompt takes several steps, so
        // it never holds up the running rows for its whole prefill), then one decode
        // step over every row with a token to feed: queued on the compute unit back to
        // back, so the device runs them without waiting for the host in between, then
        // waited for in order.
        let jobs = plan_chunks(&slots, chunk, chunks_per_step);
        let rows = decoding_rows(&slots, batch);
        let in_flight = ring.as_ref().is_some_and(|r| r.in_flight.is_some());
        if jobs.is_empty() && rows.is_empty() && !in_flight {
            continue;
        }
        // Queue the chunks.
        let mut queued: Vec<(usize, Result<Request<ExecSets>>)> = Vec::with_capacity(jobs.len());
        for job in &jobs {
            let a = slots[job.row].as_ref().expect("occupied");
            let start = planned_start(a, &jobs, job);
            let mut ids = vec![0i64; chunk];
            let mut pos = vec![-1i64; chunk];
            for j in 0..job.tokens {
                ids[j] = i64::from(a.prompt[start + j]);
                pos[j] = (start + j) as i64;
            }
            let sets = &mut prefill[job.set];
            let request = sets
                .write(IDS_INPUT, &ids)
                .and_then(|()| sets.write(POSITIONS_INPUT, &pos))
                .and_then(|()| sets.write(SEQ_IDS_INPUT, &[i64::from(slot_ids[job.row])]))
                .and_then(|()| sets.schedule(&bundle, core.core, &compute));
            queued.push((job.set, request));
        }
        let greedy = all_greedy(&slots, &rows);
        // Greedy rows and device sampling: steps chained on the device (a step in
        // flight from a greedy phase is taken in first when a sampled row joins).
        if let Some(ring) = ring.as_mut().filter(|r| greedy || r.in_flight.is_some()) {
            let chain = greedy;
            // A fed row's prefill ends with this iteration's chunks: no step is chained
            // behind the one in flight (it could not take the row in: its ids come from
            // that step); the next one is queued with the row once the step in flight is
            // done, behind the chunks (which hide the host's turn from the device).
            let joining: Vec<usize> = jobs
                .iter()
                .filter(|j| j.last && slots[j.row].as_ref().is_some_and(|a| a.fed))
                .map(|j| j.row)
                .collect();
            let join = chain && !joining.is_empty();
            if let Err((failed, e)) = ring_step(
                &core,
                &bundle,
                &compute,
                ring,
                &mut slots,
                &rows,
                &plan,
                chain && !join,
            ) && !ring_failed(&core, &mut slots, &ring.sets[0].member, failed, e)
            {
                return;
            }
            if join {
                let mut rows = decoding_rows(&slots, batch);
                rows.extend(joining.iter().filter(|&&r| slots[r].is_some()));
                rows.sort_unstable();
                if all_greedy(&slots, &rows)
                    && let Err((failed, e)) = ring_step(
                        &core, &bundle, &compute, ring, &mut slots, &rows, &plan, true,
                    )
                    && !ring_failed(&core, &mut slots, &ring.sets[0].member, failed, e)
                {
                    return;
                }
            }
            if let Err(e) = finish_chunks(&core, &mut prefill, &jobs, queued, &mut slots, &plan) {
                return die(&core, &mut slots, &plan.prefill, e);
            }
            continue;
        }
        // Queue the decode step.
        let decode = match &mut decode_ids {
            Some(sets) if greedy && options.device_sampling => sets,
            _ => &mut decode_logits,
        };
        let span = spans::debug_span!(
            "neuron_rt.generate.step",
            request_id = tracing::field::display(request_ids(&slots, &rows)),
            core = core.core,
            step = steps_run(&core) + 1,
            batch = rows.len(),
            tokens = rows.len(),
            prefill = false,
        );
        let entered = span.enter();
        let decode_request = (!rows.is_empty()).then(|| {
            let mut ids = vec![0i64; batch];
            let mut pos = vec![-1i64; batch];
            for &r in &rows {
                let a = slots[r].as_ref().expect("occupied");
                ids[r] = i64::from(a.last);
                pos[r] = i64::from(a.position);
            }
            let seq_ids: Vec<i64> = slot_ids[..batch].iter().map(|&s| i64::from(s)).collect();
            decode
                .write(IDS_INPUT, &ids)
                .and_then(|()| decode.write(POSITIONS_INPUT, &pos))
                .and_then(|()| decode.write(SEQ_IDS_INPUT, &seq_ids))
                .and_then(|()| {
                    if jobs.is_empty() {
                        decode.execute(&bundle, core.core).map(|()| None)
                    } else {
                        decode.schedule(&bundle, core.core, &compute).map(Some)
                    }
                })
        });
        drop(entered);
        if let Err(e) = finish_chunks(&core, &mut prefill, &jobs, queued, &mut slots, &plan) {
            drain(decode_request, decode);
            return die(&core, &mut slots, &plan.prefill, e);
        }
        let entered = span.enter();
        let Some(request) = decode_request else {
            continue;
        };
        core.state().counts.decode_steps += 1;
        let is_ids = decode.member.as_str() != plan.decode_logits;
        let ran = request.and_then(|r| match r {
            Some(r) => decode.complete(r),
            None => Ok(()), // ran synchronously
        });
        let next: Result<Vec<i64>> = ran.and_then(|()| {
            if is_ids {
                decode.read_ids()
            } else {
                let all = decode.read_logits()?;
                Ok((0..batch)
                    .map(|r| match slots[r].as_mut() {
                        Some(a) if rows.contains(&r) => {
                            i64::from(a.sampler.sample(&all[r * vocab..(r + 1) * vocab]))
                        }
                        _ => 0,
                    })
                    .collect())
            }
        });
        spans::record_result(&span, &next);
        drop(entered);
        drop(span);
        match next {
            Ok(next) => {
                for &r in &rows {
                    if slots[r].is_none() {
                        continue;
                    }
                    let id = next[r];
                    if id < 0 || id >= i64::from(plan.vocab) {
                        let mut s = core.state();
                        let e = BatchError::Step {
                            core: core.core,
                            member: decode.member.clone(),
                            message: format!(
                                "row {r}: token id {id} outside the vocabulary (0..{})",
                                plan.vocab
                            ),
                            status: None,
                            fatal: false,
                        };
                        slots[r]
                            .as_ref()
                            .expect("occupied")
                            .seq
                            .push(Err(e.into()), true);
                        leave(&core, &mut s, &mut slots[r], Leave::Failed);
                        continue;
                    }
                    if let Some(a) = slots[r].as_mut() {
                        a.position += 1;
                    }
                    emit(&core, &mut slots[r], id as u32, plan.ctx);
                }
            }
            Err(e) => {
                let member = decode.member.clone();
                if e.is_fatal() || core_died(&e) {
                    return die(&core, &mut slots, &member, e);
                }
                let mut s = core.state();
                for &r in &rows {
                    if slots[r].is_none() {
                        continue;
                    }
                    let e = step_error(&core, &member, &e);
                    slots[r].as_ref().expect("occupied").seq.push(Err(e), true);
                    leave(&core, &mut s, &mut slots[r], Leave::Failed);
                }
            }
        }
    }
}

/// An iteration's prefill chunks, at most `budget`, lowest prefilling rows first.
fn plan_chunks(slots: &[Option<Active>], chunk: usize, budget: usize) -> Vec<ChunkJob> {
    let mut jobs = Vec::new();
    for (row, slot) in slots.iter().enumerate() {
        let Some(a) = slot
            .as_ref()
            .filter(|a| a.prefilling() && a.paused_since.is_none())
        else {
            continue;
        };
        let mut at = a.prefilled;
        while at < a.prefill_len() {
            if jobs.len() == budget {
                return jobs;
            }
            let tokens = (a.prefill_len() - at).min(chunk);
            at += tokens;
            jobs.push(ChunkJob {
                row,
                set: jobs.len(),
                tokens,
                last: at == a.prefill_len(),
            });
        }
    }
    jobs
}

/// The rows of a decode step now: prefilled, with a token to feed, not paused, with
/// room in their stream.
fn decoding_rows(slots: &[Option<Active>], batch: usize) -> Vec<usize> {
    (0..slots.len().min(batch))
        .filter(|&r| {
            slots[r].as_ref().is_some_and(|a| {
                !a.prefilling()
                    && (a.state.produced() > 0 || a.fed)
                    && a.paused_since.is_none()
                    && !a.seq.is_full()
            })
        })
        .collect()
}

fn all_greedy(slots: &[Option<Active>], rows: &[usize]) -> bool {
    rows.iter().all(|&r| {
        slots[r]
            .as_ref()
            .is_some_and(|a| a.sampler.params().is_greedy())
    })
}

/// A chained step failed: its rows fail, or the core dies (`false`: the caller ends).
fn ring_failed(
    core: &Core,
    slots: &mut [Option<Active>],
    member: &str,
    failed: Vec<usize>,
    e: Error,
) -> bool {
    if e.is_fatal() || core_died(&e) {
        die(core, slots, member, e);
        return false;
    }
    let mut s = core.state();
    for r in failed {
        if let Some(a) = slots[r].as_ref() {
            a.seq.push(Err(step_error(core, member, &e)), true);
            leave(core, &mut s, &mut slots[r], Leave::Failed);
        }
    }
    true
}

/// Takes in the results of an iteration's prefill chunks, in order: the last chunk of a
/// prompt gives its first token. `Err`: the unit died (the caller ends the core).
fn finish_chunks(
    core: &Core,
    prefill: &mut [Sets],
    jobs: &[ChunkJob],
    queued: Vec<(usize, Result<Request<ExecSets>>)>,
    slots: &mut [Option<Active>],
    plan: &Plan,
) -> Result<()> {
    let vocab = plan.vocab as usize;
    for (job, (set, request)) in jobs.iter().zip(queued) {
        let span = spans::debug_span!(
            "neuron_rt.generate.step",
            request_id = slots[job.row].as_ref().map_or(0, |a| a.id),
            core = core.core,
            step = steps_run(core) + 1,
            batch = 1u64,
            tokens = job.tokens,
            prefill = true,
        );
        let entered = span.enter();
        let sets = &mut prefill[set];
        // A fed row's first token comes from a decode step: no logits to read.
        let first = job.last && slots[job.row].as_ref().is_some_and(|a| !a.fed);
        let ran = request.and_then(|r| sets.complete(r)).and_then(|()| {
            if first {
                sets.read_logits().map(Some)
            } else {
                Ok(None)
            }
        });
        core.state().counts.prefill_chunks += 1;
        spans::record_result(&span, &ran);
        drop(entered);
        drop(span);
        if slots[job.row].is_none() {
            continue; // an earlier chunk of the row failed
        }
        match ran {
            Ok(logits) => {
                let a = slots[job.row].as_mut().expect("occupied");
                a.prefilled += job.tokens;
                if let Some(logits) = logits {
                    let id = a.sampler.sample(&logits[..vocab.min(logits.len())]);
                    a.position = a.prompt.len() as u32;
                    emit(core, &mut slots[job.row], id, plan.ctx);
                }
            }
            Err(e) => {
                if e.is_fatal() || core_died(&e) {
                    return Err(e);
                }
                let mut s = core.state();
                let e = step_error(core, &plan.prefill, &e);
                slots[job.row]
                    .as_ref()
                    .expect("occupied")
                    .seq
                    .push(Err(e), true);
                leave(core, &mut s, &mut slots[job.row], Leave::Failed);
            }
        }
    }
    Ok(())
}

/// The steps `core` ran so far (prefill chunks and decode steps); the next one's
/// span has this plus one as its `step`.
#[cfg(feature = "tracing")]
fn steps_run(core: &Core) -> u64 {
    let counts = core.state().counts;
    counts.prefill_chunks + counts.decode_steps
}

/// The admission numbers of the sequences in `rows`, comma-separated (the
/// `request_id` of a decode step's span).
#[cfg(feature = "tracing")]
fn request_ids(slots: &[Option<Active>], rows: &[usize]) -> String {
    let ids: Vec<String> = rows
        .iter()
        .filter_map(|&r| slots[r].as_ref().map(|a| a.id.to_string()))
        .collect();
    ids.join(",")
}

/// Where `job`'s chunk starts in its row's prompt: after the row's prefilled tokens and
/// the chunks of the row queued before it this iteration.
fn planned_start(a: &Active, jobs: &[ChunkJob], job: &ChunkJob) -> usize {
    a.prefilled
        + jobs
            .iter()
            .take_while(|j| !std::ptr::eq(*j, job))
            .filter(|j| j.row == job.row)
            .map(|j| j.tokens)
            .sum::<usize>()
}

/// Whether `e` means the core's compute unit is gone (its later requests all fail).
fn core_died(e: &Error) -> bool {
    matches!(e, Error::Unrecoverable { .. })
}

/// Waits out a queued decode step whose results are not wanted (the core is dying).
fn drain(request: Option<Result<Option<Request<ExecSets>>>>, sets: &mut Sets) {
    if let Some(Ok(Some(r))) = request {
        let _ = sets.complete(r);
    }
}

/// The sequence in `slot` produced `id`: streams it, and finishes it on EOS, a stop
/// string, its token budget or the end of the context.
fn emit(core: &Core, slot: &mut Option<Active>, id: u32, ctx: u32) {
    let a = slot.as_mut().expect("occupied");
    a.last = id;
    let mut reason = a.state.push(&a.stop, id);
    if reason.is_none() && a.position >= ctx {
        reason = Some(FinishReason::ContextFull);
    }
    a.seq.push(Ok(Generated::Token(id)), false);
    let mut s = core.state();
    s.counts.tokens += 1;
    if let Some(reason) = reason {
        let finish = Finish {
            reason,
            prompt_tokens: a.prompt.len() as u32,
            completion_tokens: a.state.produced(),
        };
        a.seq.push(Ok(Generated::Finished(finish)), true);
        leave(core, &mut s, slot, Leave::Finished);
    }
}

fn leave(core: &Core, s: &mut State, slot: &mut Option<Active>, how: Leave) {
    if slot.take().is_some() {
        s.running -= 1;
        core.load.fetch_sub(1, Ordering::AcqRel);
        match how {
            Leave::Finished => s.counts.finished += 1,
            Leave::Cancelled => s.counts.cancelled += 1,
            Leave::Failed => s.counts.failed += 1,
        }
    }
}

fn step_error(core: &Core, member: &str, e: &Error) -> Error {
    BatchError::Step {
        core: core.core,
        member: member.to_owned(),
        message: e.to_string(),
        status: e.status(),
        fatal: e.is_fatal(),
    }
    .into()
}

/// Ends every sequence of the core with `e` and refuses more.
fn fail_all(core: &Core, s: &mut State, slots: &mut [Option<Active>], e: &BatchError) {
    for slot in slots.iter_mut() {
        if let Some(a) = slot {
            a.seq.push(Err(e.clone().into()), true);
            leave(core, s, slot, Leave::Failed);
        }
    }
    while let Some(p) = s.waiting.pop_front() {
        p.seq.push(Err(e.clone().into()), true);
        s.counts.failed += 1;
        core.load.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The unit died (or the core could not start): every sequence gets the error, and the
/// core takes no more.
fn die(core: &Core, slots: &mut [Option<Active>], member: &str, e: Error) {
    let mut s = core.state();
    s.dead = Some(e.to_string());
    let e = BatchError::Step {
        core: core.core,
        member: member.to_owned(),
        message: e.to_string(),
        status: e.status(),
        fatal: true,
    };
    fail_all(core, &mut s, slots, &e);
}
