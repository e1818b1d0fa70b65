//! [`Ring`]: the slots of one core's staged pipeline and the three units they move
//! through (write on TENSOR_OP 0, execute on COMPUTE, read on TENSOR_OP 1).
//!
//! Each slot holds everything one job needs (host input and output buffers, device
//! input and output sets) and is reused job after job. A slot goes
//! `free -> ready[Write] -> running[Write] -> ready[Execute] -> running[Execute] ->
//! ready[Read] -> running[Read] -> free`; the queues keep job order. The ring is
//! driven by [`Ring::poll`]: it schedules every stage whose producer completed, and
//! registers the task's waker on the oldest running request of each unit (requests of
//! one unit complete in order), so the task sleeps until one of them completes.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::buffers::Buffers;
use super::host::{HostInputs, HostOutputs};
use super::stage::Stage;
use super::stats::{CoreStats, Counters};
use crate::error::Error;
use crate::error::{NrtStatus, Result};
use crate::objects::Model;
use crate::xu::CompletionWatch;
use crate::xu::{ExecSets, ExecUnit, Request};

/// Requests of a ring kept queued on one unit at most (the vendor's advice: a few per
/// unit, under libnrt's bounded queue depth). A job with more inputs (or outputs) than
/// this is still scheduled when the unit has nothing of the ring in flight.
pub(crate) const UNIT_BUDGET: usize = 4;

/// The most slots a ring may have: far more than keeps three units busy.
pub(crate) const MAX_DEPTH: usize = 256;

const STAGES: [Stage; 3] = [Stage::Write, Stage::Execute, Stage::Read];

fn at(stage: Stage) -> usize {
    match stage {
        Stage::Write => 0,
        Stage::Execute => 1,
        Stage::Read => 2,
    }
}

/// What a finished job hands to the driver: its outputs, or why it failed.
pub(crate) type Outcome<'a> = std::result::Result<HostOutputs<'a>, Error>;

/// One job's buffers and requests, reused.
struct Slot {
    job: u64,
    bufs: Buffers,
    writes: Vec<Request<Vec<u8>>>,
    exec: Option<Request<ExecSets>>,
    reads: Vec<Request<Vec<u8>>>,
    /// The first failure of the current job.
    error: Option<(Stage, Error)>,
}

impl Slot {
    fn new(model: &Model) -> Slot {
        Slot {
            job: 0,
            bufs: Buffers::new(model),
            writes: Vec::with_capacity(model.inputs().len()),
            exec: None,
            reads: Vec::with_capacity(model.outputs().len()),
            error: None,
        }
    }

    fn fail(&mut self, stage: Stage, error: Error) {
        if self.error.is_none() {
            self.error = Some((stage, error));
        }
    }
}

/// The staged pipeline of one core: its model, units, slots and counters.
pub(crate) struct Ring {
    model: Model,
    core: u32,
    /// Write (TENSOR_OP 0), execute (COMPUTE), read (TENSOR_OP 1).
    units: [ExecUnit; 3],
    slots: Vec<Slot>,
    free: Vec<usize>,
    /// Per stage: slots whose previous stage is done, waiting for room on the unit.
    ready: [VecDeque<usize>; 3],
    /// Per stage: slots whose requests of that stage are scheduled, oldest first.
    running: [VecDeque<usize>; 3],
    /// Per stage: this ring's requests in flight on the unit.
    queued: [usize; 3],
    /// Per stage: the watch on the oldest running request.
    watches: [CompletionWatch; 3],
    /// The slot whose host inputs the caller's `write` is filling; still set at the
    /// next `poll` only if that closure panicked (the job then fails).
    filling: Option<usize>,
    counters: Arc<Counters>,
}

impl Ring {
    /// A ring of `depth` slots for `model` (loaded on a known core); allocates nothing
    /// on the device until the slots are first used.
    pub(crate) fn new(model: &Model, depth: usize) -> Result<Ring> {
        if !(1..=MAX_DEPTH).contains(&depth) {
            return Err(Error::invalid(
                "depth",
                format!(
                    "a staged pipeline needs 1 to {MAX_DEPTH} slots (3 let all units work at once), got {depth}"
                ),
            ));
        }
        let core = model.core().ok_or_else(|| Error::Unsupported {
            feature: "nrt_get_model_info",
            needed: Some("a libnrt that reports the core of a loaded model".into()),
        })?;
        let rt = model.runtime();
        let units = [
            rt.tensor_op_unit(core, 0)?,
            rt.compute_unit(core)?,
            rt.tensor_op_unit(core, 1)?,
        ];
        Ok(Ring {
            model: model.clone(),
            core,
            units,
            slots: (0..depth).map(|_| Slot::new(model)).collect(),
            free: (0..depth).rev().collect(),
            ready: std::array::from_fn(|_| VecDeque::with_capacity(depth)),
            running: std::array::from_fn(|_| VecDeque::with_capacity(depth)),
            queued: [0; 3],
            watches: std::array::from_fn(|_| CompletionWatch::new()),
            filling: None,
            counters: Arc::new(Counters::new()),
        })
    }

    pub(crate) fn model(&self) -> &Model {
        &self.model
    }

    pub(crate) fn core(&self) -> u32 {
        self.core
    }

    pub(crate) fn depth(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Jobs in this ring now.
    pub(crate) fn in_flight(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// The fatal status of the first of this core's three units that is unrecoverable.
    pub(crate) fn unrecoverable(&self) -> Option<NrtStatus> {
        (self.units.iter().find_map(ExecUnit::unrecoverable)).or_else(|| self.counters.fatal())
    }

    /// Whether a new job can start now: a free slot on a live core.
    pub(crate) fn can_start(&self) -> bool {
        !self.free.is_empty() && self.unrecoverable().is_none()
    }

    pub(crate) fn stats(&self) -> CoreStats {
        self.counters.snapshot(self.core, self.unrecoverable())
    }

    /// Starts job `job` in a free slot (the caller checked [`can_start`]): `fill` fills
    /// its host inputs; the write is scheduled by the next [`poll`](Ring::poll).
    /// A failure (of `fill`, or allocating the slot) fails only this job, reported by
    /// `poll` in its turn.
    pub(crate) fn start(
        &mut self,
        job: u64,
        fill: impl FnOnce(&mut HostInputs<'_>) -> Result<()>,
    ) -> bool {
        self.fail_panicked_fill();
        let Some(i) = self.free.pop() else {
            return false;
        };
        self.counters.start();
        // Queued before `fill` runs: if it panics, the run's drop still frees the slot.
        self.ready[at(Stage::Write)].push_back(i);
        let slot = &mut self.slots[i];
        slot.job = job;
        slot.error = None;
        self.filling = Some(i);
        let filled =
            (slot.bufs.ensure(&self.model)).and_then(|()| fill(&mut slot.bufs.inputs(&self.model)));
        self.filling = None;
        if let Err(error) = filled {
            slot.fail(Stage::Write, error);
        }
        true
    }

    /// Fails the job whose `write` closure panicked, if one did.
    fn fail_panicked_fill(&mut self) {
        if let Some(i) = self.filling.take() {
            let panicked = Error::invalid("write", "the write closure panicked");
            self.slots[i].fail(Stage::Write, panicked);
        }
    }

    /// Moves every job as far as it can go: schedules the stages whose producer
    /// completed, collects completed stages, and hands finished jobs to `emit` (with
    /// their job index and outputs or error). Registers `cx`'s waker on the oldest
    /// running request of each unit. Returns whether anything progressed.
    pub(crate) fn poll(
        &mut self,
        cx: &mut Context<'_>,
        emit: &mut dyn FnMut(u64, Outcome<'_>) -> bool,
    ) -> bool {
        self.fail_panicked_fill();
        let mut any = false;
        loop {
            let mut progressed = self.pump(emit);
            for stage in STAGES.into_iter().rev() {
                let s = at(stage);
                while let Some(&i) = self.running[s].front() {
                    if self.watch(stage, i, cx).is_pending() {
                        break;
                    }
                    self.running[s].pop_front();
                    self.collect(stage, i);
                    self.next_stage(stage, i, emit);
                    progressed = true;
                }
            }
            if !progressed {
                return any;
            }
            any = true;
        }
    }

    /// Polls the watch of `stage` on slot `i`'s last request of that stage.
    fn watch(&mut self, stage: Stage, i: usize, cx: &mut Context<'_>) -> Poll<()> {
        let (slot, watch) = (&self.slots[i], &mut self.watches[at(stage)]);
        match stage {
            Stage::Write => slot
                .writes
                .last()
                .map_or(Poll::Ready(()), |r| watch.poll(r, cx)),
            Stage::Execute => slot
                .exec
                .as_ref()
                .map_or(Poll::Ready(()), |r| watch.poll(r, cx)),
            Stage::Read => slot
                .reads
                .last()
                .map_or(Poll::Ready(()), |r| watch.poll(r, cx)),
        }
    }

    /// Schedules ready stages while their unit has room; returns whether any moved.
    fn pump(&mut self, emit: &mut dyn FnMut(u64, Outcome<'_>) -> bool) -> bool {
        let mut moved = false;
        for stage in STAGES {
            let s = at(stage);
            let needs = match stage {
                Stage::Write => self.model.inputs().len(),
                Stage::Execute => 1,
                Stage::Read => self.model.outputs().len(),
            };
            while let Some(&i) = self.ready[s].front() {
                if self.queued[s] != 0 && self.queued[s] + needs > UNIT_BUDGET {
                    break;
                }
                self.ready[s].pop_front();
                moved = true;
                if self.slots[i].error.is_some() {
                    self.finish(i, emit);
                    continue;
                }
                let scheduled = self.schedule(stage, i);
                self.queued[s] += scheduled;
                if scheduled > 0 {
                    self.running[s].push_back(i);
                } else {
                    self.next_stage(stage, i, emit);
                }
            }
        }
        moved
    }

    /// Schedules slot `i`'s requests of `stage`; returns how many were accepted. A
    /// refusal is recorded in the slot (its payload goes back in place).
    fn schedule(&mut self, stage: Stage, i: usize) -> usize {
        let [write_unit, compute, read_unit] = &self.units;
        let slot = &mut self.slots[i];
        match stage {
            Stage::Write => {
                for (k, tensor) in slot.bufs.in_tensors.iter().enumerate() {
                    let data = std::mem::take(&mut slot.bufs.host_in[k]);
                    match write_unit.write(tensor, 0, data) {
                        Ok(request) => slot.writes.push(request),
                        Err(rejected) => {
                            let (error, data) = rejected.into_parts();
                            slot.bufs.host_in[k] = data;
                            slot.fail(Stage::Write, error);
                            break;
                        }
                    }
                }
                slot.writes.len()
            }
            Stage::Execute => {
                let Some((inputs, outputs)) = slot.bufs.sets.take() else {
                    slot.fail(Stage::Execute, lost("tensor sets"));
                    return 0;
                };
                match compute.execute(&self.model, inputs, outputs) {
                    Ok(request) => {
                        slot.exec = Some(request);
                        1
                    }
                    Err(rejected) => {
                        let (error, sets) = rejected.into_parts();
                        slot.bufs.sets = Some(sets);
                        slot.fail(Stage::Execute, error);
                        0
                    }
                }
            }
            Stage::Read => {
                for (k, tensor) in slot.bufs.out_tensors.iter().enumerate() {
                    let buffer = std::mem::take(&mut slot.bufs.host_out[k]);
                    match read_unit.read(tensor, 0, buffer) {
                        Ok(request) => slot.reads.push(request),
                        Err(rejected) => {
                            let (error, buffer) = rejected.into_parts();
                            slot.bufs.host_out[k] = buffer;
                            slot.fail(Stage::Read, error);
                            break;
                        }
                    }
                }
                slot.reads.len()
            }
        }
    }

    /// Takes slot `i`'s completed requests of `stage` back: payloads in place, the first
    /// error recorded.
    fn collect(&mut self, stage: Stage, i: usize) {
        let s = at(stage);
        let (slot, watch) = (&mut self.slots[i], &mut self.watches[s]);
        match stage {
            Stage::Write => {
                if let Some(last) = slot.writes.last() {
                    watch.cancel(last);
                }
                self.queued[s] -= slot.writes.len();
                for (k, request) in slot.writes.drain(..).enumerate() {
                    let (data, status) = request.wait_with_payload();
                    slot.bufs.host_in[k] = data.unwrap_or_default();
                    if let Err(error) = status {
                        slot.error.get_or_insert((stage, error));
                    }
                }
            }
            Stage::Execute => {
                if let Some(request) = slot.exec.take() {
                    watch.cancel(&request);
                    self.queued[s] -= 1;
                    let (sets, status) = request.wait_with_payload();
                    slot.bufs.sets = sets;
                    if let Err(error) = status {
                        slot.fail(stage, error);
                    }
                }
            }
            Stage::Read => {
                if let Some(last) = slot.reads.last() {
                    watch.cancel(last);
                }
                self.queued[s] -= slot.reads.len();
                for (k, request) in slot.reads.drain(..).enumerate() {
                    let (buffer, status) = request.wait_with_payload();
                    slot.bufs.host_out[k] = buffer.unwrap_or_default();
                    if let Err(error) = status {
                        slot.error.get_or_insert((stage, error));
                    }
                }
            }
        }
    }

    /// After `stage` of slot `i` is over: on to the next stage, or finished.
    fn next_stage(
        &mut self,
        stage: Stage,
        i: usize,
        emit: &mut dyn FnMut(u64, Outcome<'_>) -> bool,
    ) {
        match (stage, &self.slots[i].error) {
            (Stage::Write, None) => self.ready[at(Stage::Execute)].push_back(i),
            (Stage::Execute, None) => self.ready[at(Stage::Read)].push_back(i),
            _ => self.finish(i, emit),
        }
    }

    /// Hands slot `i`'s job to `emit` (which says whether the job succeeded in the
    /// end) and frees the slot.
    fn finish(&mut self, i: usize, emit: &mut dyn FnMut(u64, Outcome<'_>) -> bool) {
        let slot = &mut self.slots[i];
        let outcome = match slot.error.take() {
            None => Ok(slot.bufs.outputs(&self.model)),
            Some((stage, error)) => Err(Error::Stage {
                stage,
                job: slot.job,
                core: self.core,
                error: Box::new(error),
            }),
        };
        // Freed and counted as failed before `emit` runs the caller's `read`: a panic
        // there loses no slot and leaves the counters right.
        self.free.push(i);
        let mut finished = Finished {
            counters: &self.counters,
            ok: false,
        };
        finished.ok = emit(slot.job, outcome);
    }

    /// Gives up on every job in the ring (a run that was dropped or leaked) without
    /// blocking: requests that completed give their buffers and sets back; those still
    /// running are dropped, which hands them (with their payloads) to the runtime's
    /// completion machinery, and their slots get fresh buffers and sets when next used.
    /// Every slot is free afterwards; nothing is emitted.
    pub(crate) fn abandon(&mut self) {
        self.filling = None;
        for stage in STAGES {
            let s = at(stage);
            while let Some(i) = self.running[s].pop_front() {
                let done = {
                    let slot = &self.slots[i];
                    let last_done = |r: Option<&Request<Vec<u8>>>| {
                        r.is_none_or(|r| matches!(r.is_complete(), Ok(true)))
                    };
                    match stage {
                        Stage::Write => last_done(slot.writes.last()),
                        Stage::Execute => slot
                            .exec
                            .as_ref()
                            .is_none_or(|r| matches!(r.is_complete(), Ok(true))),
                        Stage::Read => last_done(slot.reads.last()),
                    }
                };
                if done {
                    // Returns at once: payloads back in place.
                    self.collect(stage, i);
                } else {
                    self.drop_requests(stage, i);
                }
                self.slots[i].error = None;
                self.counters.cancel();
                self.free.push(i);
            }
            while let Some(i) = self.ready[s].pop_front() {
                self.slots[i].error = None;
                self.counters.cancel();
                self.free.push(i);
            }
        }
    }

    /// Drops slot `i`'s running requests of `stage` (they complete on their own).
    fn drop_requests(&mut self, stage: Stage, i: usize) {
        let s = at(stage);
        let (slot, watch) = (&mut self.slots[i], &mut self.watches[s]);
        match stage {
            Stage::Write => {
                if let Some(last) = slot.writes.last() {
                    watch.cancel(last);
                }
                self.queued[s] -= slot.writes.len();
                slot.writes.clear();
            }
            Stage::Execute => {
                if let Some(request) = slot.exec.take() {
                    watch.cancel(&request);
                    self.queued[s] -= 1;
                }
            }
            Stage::Read => {
                if let Some(last) = slot.reads.last() {
                    watch.cancel(last);
                }
                self.queued[s] -= slot.reads.len();
                slot.reads.clear();
            }
        }
    }
}

/// Counts a job as finished when dropped, also while unwinding from a panic in `emit`.
struct Finished<'a> {
    counters: &'a Counters,
    ok: bool,
}

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        self.counters.finish(self.ok);
    }
}

fn lost(what: &str) -> Error {
    Error::UnexpectedResult {
        function: "nrta_is_completed",
        reason: format!("the {what} of an earlier job were lost (completion not observable)"),
    }
}
