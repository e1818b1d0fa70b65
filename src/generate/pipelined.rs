//! [`PipelinedDecode`]: device-sampled decode with the next steps queued on the compute
//! unit before the current one completes, each step's ids input bound to the previous
//! step's ids output on the device.
//!
//! # Rings
//!
//! With depth `D` (steps queued), the loop keeps `R = D + 1` ids tensors and `R`
//! position tensors. Step `n` reads ids `n % R` and positions `n % R` and writes ids
//! `(n + 1) % R`, which step `n + 1` reads on the device and the host reads on a
//! TENSOR_OP unit. Step `n + R` is the next to write that ids tensor: it is scheduled
//! only once the host's read of step `n` completed, and the positions of step `n + R`
//! (known ahead: `p0 + n + R`) are written on the other TENSOR_OP unit once step `n`
//! (their previous reader) completed, and seen complete before step `n + R` is
//! scheduled (requests on different units are not ordered by libnrt). So no queued step
//! overwrites ids the host has not read, and no read is torn.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use super::bundle::Bundle;
use super::chain::{DecodeChain, NEXT_IDS_OUTPUT, POSITIONS_INPUT, SEQ_IDS_INPUT, Source};
use crate::dtype::DType;
use crate::error::{Error, NrtStatus, Result};
use crate::objects::{Model, Placement, Tensor};
use crate::xu::{ExecSets, ExecUnit, Request};

/// The default number of steps kept queued on the compute unit (the vendor advises 2-3
/// requests queued per unit).
pub const DEFAULT_DECODE_DEPTH: usize = 2;
/// The most steps [`PipelinedDecode`] keeps queued.
pub const MAX_DECODE_DEPTH: usize = 8;

/// Where a device-sampled decode starts: the tokens sampled from the prefill's logits
/// (one per row), their positions (the prompt lengths) and the rows' cache slots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeStart {
    /// The ids step 0 takes, one per row.
    pub ids: Vec<u32>,
    /// The position of each row's id in step 0 (step `n` is at `positions[r] + n`).
    pub positions: Vec<u32>,
    /// Each row's cache slot (`seq_ids`).
    pub seq_ids: Vec<u32>,
}

/// Settings of a [`PipelinedDecode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DecodeOptions {
    /// Steps to run (tokens per row to yield).
    pub steps: u64,
    /// Steps kept queued on the compute unit, 1 to [`MAX_DECODE_DEPTH`] (1: no step is
    /// queued behind the running one).
    pub depth: usize,
}

impl DecodeOptions {
    /// `steps` steps at [`DEFAULT_DECODE_DEPTH`].
    pub fn new(steps: u64) -> DecodeOptions {
        DecodeOptions {
            steps,
            depth: DEFAULT_DECODE_DEPTH,
        }
    }

    /// With `depth` steps queued.
    pub fn depth(mut self, depth: usize) -> DecodeOptions {
        self.depth = depth;
        self
    }
}

/// A step on the compute unit: its members' requests, in chain order (fewer than the
/// chain's members while the queue was full).
struct InFlight {
    step: u64,
    /// Members of the step already completed (their sets back in the ring slot).
    done: usize,
    /// Requests of the members after those, in chain order.
    requests: Vec<Request<ExecSets>>,
}

impl InFlight {
    /// Members scheduled so far.
    fn scheduled(&self) -> usize {
        self.done + self.requests.len()
    }
}

/// Device-sampled decode, pipelined: steps of a [`DecodeChain`] (one device-sampling
/// member, or several run as one step) queued on a core's compute unit, each step's
/// ids input bound to the previous step's ids output on the device, so the host never
/// sits between two steps; the host reads each step's ids for streaming on a TENSOR_OP
/// unit while the next steps run. It yields the token ids of each step, one per row.
///
/// Built by [`PipelinedDecode::new`] after a prefill wrote the cache; the decode writes
/// the cache at `positions[r] + n` in row `r`'s slot at step `n`. Steps queued ahead
/// (at most `depth`) run even when the caller stops reading: they only write cache
/// positions past the last token read. Work on the same compute unit (a prefill
/// scheduled on [`Runtime::compute_unit`](crate::Runtime::compute_unit) of the core,
/// the next decode) runs after them, as libnrt runs a queue in order; anything else
/// that uses the bundle's state tensors (a synchronous
/// [`Model::execute`](crate::Model::execute) of a prefill, a read of a cache) is not
/// ordered after them: call [`finish`](PipelinedDecode::finish) first, which waits
/// for the queued steps (at most `depth` step times). Dropping the decode never
/// blocks: requests still queued run, and are released in the background once they
/// complete.
///
/// A step that fails (a unit that dies, say) fails the decode: the iterator yields
/// that error once, then ends.
///
/// ```
/// use neuron_rt::Runtime;
/// use neuron_rt::generate::{Bundle, DecodeChain, DecodeOptions, DecodeStart, PipelinedDecode};
///
/// let dir = tempfile::tempdir().unwrap();
/// neuron_rt::sim::decoder::write_bundle(dir.path(), &Default::default()).unwrap();
/// let runtime = Runtime::builder().simulator().build()?;
/// let bundle = Bundle::builder(&runtime).dir(dir.path())?.build()?;
/// // (A real caller prefills the prompt first; here the cache is empty.)
/// let chain = DecodeChain::single(&bundle, "decode_b1_ids")?;
/// let start = DecodeStart { ids: vec![72], positions: vec![0], seq_ids: vec![0] };
/// let decode = PipelinedDecode::new(&bundle, 0, &chain, &start, DecodeOptions::new(8))?;
/// let tokens: Vec<Vec<u32>> = decode.collect::<neuron_rt::Result<_>>()?;
/// assert_eq!(tokens.len(), 8);
/// assert!(tokens.iter().all(|row| row.len() == 1 && row[0] < 256));
/// # Ok::<(), neuron_rt::Error>(())
/// ```
pub struct PipelinedDecode {
    compute: ExecUnit,
    to_device: ExecUnit,
    from_device: ExecUnit,
    /// Per chain member, its model on the core.
    models: Vec<Model>,
    /// Ring of ids tensors: step `n` reads `n % R`, writes `(n + 1) % R`.
    ids: Vec<Tensor>,
    /// Ring of position tensors (`None` when no member takes positions).
    positions: Option<Vec<Tensor>>,
    /// Per ring slot, per member: the sets of a step in that slot (`None` while queued).
    sets: Vec<Vec<Option<ExecSets>>>,
    /// Per ring slot: the write of the positions of the next step in that slot.
    position_writes: Vec<Option<Request<Vec<u8>>>>,
    /// Steps on the compute unit, oldest first (the newest may be partial).
    queued: VecDeque<InFlight>,
    /// The host buffer ids are read into (empty while a read has it, or after a
    /// failed read: then made again).
    read_buffer: Vec<u8>,
    /// Bytes of one ids tensor.
    ids_bytes: usize,
    ids_dtype: DType,
    positions_dtype: DType,
    first_positions: Vec<u32>,
    batch: usize,
    depth: usize,
    steps: u64,
    /// Steps whose requests were all scheduled.
    scheduled: u64,
    /// Steps yielded.
    yielded: u64,
    /// The decode failed or finished: nothing more is yielded.
    done: bool,
    /// A `next_step_async` future was dropped mid-step.
    cancelled: bool,
}

impl PipelinedDecode {
    /// Starts a decode of `options.steps` steps of `chain` on `core` of `bundle`,
    /// from `start`, and queues its first steps.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the value: `start` with another number of rows
    /// than the chain's batch, a depth of 0 or above [`MAX_DECODE_DEPTH`], positions
    /// past the cache's context (`positions[r] + steps` above the bundle's `ctx`), an
    /// id or slot too large for the device's type, a core not in the bundle; the
    /// errors of [`Member::sets`](super::Member::sets), of unit creation and of
    /// scheduling the first steps ([`Error::Unrecoverable`] on a unit that died). A
    /// compute queue full of other requests (an earlier decode dropped with steps
    /// queued) is waited for once, then refused with its
    /// [`NrtStatus::QueueFull`] error.
    pub fn new(
        bundle: &Bundle,
        core: u32,
        chain: &DecodeChain,
        start: &DecodeStart,
        options: DecodeOptions,
    ) -> Result<PipelinedDecode> {
        let batch = chain.batch() as usize;
        for (name, values) in [
            ("start.ids", &start.ids),
            ("start.positions", &start.positions),
            ("start.seq_ids", &start.seq_ids),
        ] {
            if values.len() != batch {
                return Err(Error::invalid(
                    name,
                    format!(
                        "{} values for a chain of batch {batch} (`{}`)",
                        values.len(),
                        chain.members().next().unwrap_or_default()
                    ),
                ));
            }
        }
        if options.depth == 0 || options.depth > MAX_DECODE_DEPTH {
            return Err(Error::invalid(
                "depth",
                format!(
                    "{} steps queued: it must be 1 to {MAX_DECODE_DEPTH}",
                    options.depth
                ),
            ));
        }
        if let Some(ctx) = bundle.config().map(|c| c.ctx).filter(|&c| c > 0) {
            let (row, last) = start
                .positions
                .iter()
                .enumerate()
                .map(|(r, &p)| (r, u64::from(p) + options.steps))
                .max_by_key(|&(_, end)| end)
                .unwrap_or((0, 0));
            if last > u64::from(ctx) {
                return Err(Error::invalid(
                    "steps",
                    format!(
                        "{} steps from position {} (row {row}) reach position {}, past the cache's context of {ctx}",
                        options.steps,
                        start.positions[row],
                        last - 1
                    ),
                ));
            }
        }
        let members: Vec<_> = chain
            .stages
            .iter()
            .map(|s| bundle.member(&s.name).expect("checked by DecodeChain::new"))
            .collect();
        let models = members
            .iter()
            .map(|m| {
                m.model(core).cloned().ok_or_else(|| {
                    Error::invalid(
                        "core",
                        format!(
                            "member `{}` is loaded on cores {:?}, not on core {core}",
                            m.name(),
                            bundle.cores()
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let rt = bundle.runtime();
        let ring = options.depth + 1;
        let last = members.last().expect("a checked chain has a member");
        let ids_info = last
            .outputs()
            .iter()
            .find(|o| o.name == NEXT_IDS_OUTPUT)
            .expect("checked by DecodeChain::new");
        let ids = (0..ring)
            .map(|_| rt.allocate_for(ids_info, Placement::Device, Some(core)))
            .collect::<Result<Vec<_>>>()?;
        let input_info = |name: &str| {
            members
                .iter()
                .flat_map(|m| m.inputs())
                .find(|i| i.name == name)
        };
        let positions = input_info(POSITIONS_INPUT)
            .map(|info| {
                (0..ring)
                    .map(|_| rt.allocate_for(info, Placement::Device, Some(core)))
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?;
        let seq_ids = input_info(SEQ_IDS_INPUT)
            .map(|info| rt.allocate_for(info, Placement::Device, Some(core)))
            .transpose()?;
        // One tensor per link, shared by every ring slot: the compute unit runs a
        // step's members in order, so step n + 1 overwrites a link after step n read it.
        let mut links: BTreeMap<(usize, &str), Tensor> = BTreeMap::new();
        for stage in &chain.stages {
            for (_, source) in &stage.inputs {
                if let Source::Link { from, output } = source {
                    if links.contains_key(&(*from, output.as_str())) {
                        continue;
                    }
                    let info = members[*from]
                        .outputs()
                        .iter()
                        .find(|o| &o.name == output)
                        .expect("checked by DecodeChain::new");
                    let tensor = rt.allocate_for(info, Placement::Device, Some(core))?;
                    links.insert((*from, output.as_str()), tensor);
                }
            }
        }
        let mut sets = Vec::with_capacity(ring);
        for slot in 0..ring {
            let mut per_member = Vec::with_capacity(members.len());
            for (j, (stage, member)) in chain.stages.iter().zip(&members).enumerate() {
                let mut user: Vec<(&str, &Tensor)> = Vec::new();
                for (input, source) in &stage.inputs {
                    let tensor = match source {
                        Source::Ids => &ids[slot],
                        Source::Positions => &positions.as_ref().expect("allocated")[slot],
                        Source::SeqIds => seq_ids.as_ref().expect("allocated"),
                        Source::Link { from, output } => &links[&(*from, output.as_str())],
                    };
                    user.push((input.as_str(), tensor));
                }
                for ((from, output), tensor) in &links {
                    if *from == j {
                        user.push((output, tensor));
                    }
                }
                if j + 1 == members.len() {
                    user.push((NEXT_IDS_OUTPUT, &ids[(slot + 1) % ring]));
                }
                per_member.push(Some(member.sets(core, &user)?));
            }
            sets.push(per_member);
        }
        let (ids_dtype, positions_dtype) = (chain.ids_dtype, chain.positions_dtype);
        ids[0].write_bytes(&encode(ids_dtype, "start.ids", &start.ids, 0)?)?;
        if let Some(seq) = &seq_ids {
            seq.write_bytes(&encode(
                chain.seq_ids_dtype,
                "start.seq_ids",
                &start.seq_ids,
                0,
            )?)?;
        }
        if let Some(pos) = &positions {
            for (k, tensor) in pos.iter().enumerate() {
                tensor.write_bytes(&encode(
                    positions_dtype,
                    "start.positions",
                    &start.positions,
                    k as u64,
                )?)?;
            }
        }
        let mut decode = PipelinedDecode {
            compute: rt.compute_unit(core)?,
            to_device: rt.tensor_op_unit(core, 0)?,
            from_device: rt.tensor_op_unit(core, 1)?,
            models,
            ids,
            positions,
            position_writes: (0..ring).map(|_| None).collect(),
            sets,
            queued: VecDeque::with_capacity(ring),
            read_buffer: vec![0u8; ids_info.size],
            ids_bytes: ids_info.size,
            ids_dtype,
            positions_dtype,
            first_positions: start.positions.clone(),
            batch,
            depth: options.depth,
            steps: options.steps,
            scheduled: 0,
            yielded: 0,
            done: options.steps == 0,
            cancelled: false,
        };
        decode.fill()?;
        Ok(decode)
    }

    /// Steps kept queued on the compute unit.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Rows per step.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Steps yielded so far.
    pub fn steps_done(&self) -> u64 {
        self.yielded
    }

    /// Steps on the compute unit now (scheduled, not yet seen complete).
    pub fn queued(&self) -> usize {
        self.queued.len()
    }

    /// The next step's token ids, one per row (`Ok(None)` once `steps` were yielded
    /// or after an error); the [`Iterator`] implementation yields the same.
    ///
    /// Waits for the oldest queued step, queues the following ones (so that `depth`
    /// stay queued), then reads the step's ids on a TENSOR_OP unit while the queued
    /// steps run.
    ///
    /// # Errors
    ///
    /// The error of the step (a unit that died, an execution that failed), of
    /// scheduling the following steps, or of reading the ids; after one, the decode
    /// yields nothing more.
    pub fn next_step(&mut self) -> Result<Option<Vec<u32>>> {
        if self.cancelled {
            return Err(Error::invalid("decode", CANCELLED));
        }
        if self.done || self.yielded >= self.steps {
            return Ok(None);
        }
        let result = self.advance();
        if result.is_err() || self.yielded >= self.steps {
            self.done = true;
        }
        result.map(Some)
    }

    /// [`next_step`](Self::next_step) as a future that never blocks its thread: it
    /// awaits the step's requests ([`Request`] as a future) instead of waiting for
    /// them. For a `Stream` of tokens, move the decode into the future and back out
    /// (`async move { let step = decode.next_step_async().await; (decode, step) }`).
    ///
    /// Dropping the future before it resolves (a cancelled task) ends the decode: the
    /// step it was waiting for is released in the background, and later calls return
    /// [`Error::InvalidArgument`].
    ///
    /// # Errors
    ///
    /// As [`next_step`](Self::next_step); a compute queue full of other requests is
    /// refused (not waited for) with [`Error::InvalidArgument`]; a decode whose
    /// earlier `next_step_async` was cancelled, [`Error::InvalidArgument`].
    pub async fn next_step_async(&mut self) -> Result<Option<Vec<u32>>> {
        if self.cancelled {
            return Err(Error::invalid("decode", CANCELLED));
        }
        if self.done || self.yielded >= self.steps {
            return Ok(None);
        }
        // Stays set if this future is dropped mid-step.
        self.cancelled = true;
        let result = self.advance_async().await;
        self.cancelled = false;
        if result.is_err() || self.yielded >= self.steps {
            self.done = true;
        }
        result.map(Some)
    }

    /// Stops scheduling and waits until every queued step completed (after it, reads of
    /// the bundle's state are ordered after every step).
    ///
    /// # Errors
    ///
    /// The first error of a queued step.
    pub fn finish(mut self) -> Result<()> {
        self.done = true;
        let mut first = Ok(());
        while let Some(step) = self.queued.pop_front() {
            for request in step.requests {
                if let Err(e) = request.wait()
                    && first.is_ok()
                {
                    first = Err(e);
                }
            }
        }
        first
    }

    /// Schedules steps until `depth` are queued, the budget is reached, or the queue is
    /// full.
    fn fill(&mut self) -> Result<()> {
        match self.fill_until(true)? {
            Stall::None => Ok(()),
            // Not returned when blocking.
            Stall::Write(_) | Stall::QueueFull => Ok(()),
        }
    }

    /// [`fill`](Self::fill); with `block` false it never blocks: it stops at a position
    /// write not complete yet ([`Stall::Write`]) or a queue full of other requests
    /// ([`Stall::QueueFull`]).
    fn fill_until(&mut self, block: bool) -> Result<Stall> {
        let ring = self.ids.len() as u64;
        loop {
            // The partial step at the back first.
            let (step, from_member) = match self.queued.back() {
                Some(last) if last.scheduled() < self.models.len() => (last.step, last.scheduled()),
                _ => {
                    let completed = self.queued.front().map_or(self.scheduled, |s| s.step);
                    let step = self.scheduled;
                    // At most `depth` queued; never a step whose ids output the host
                    // has not read yet: step n + R overwrites the ids step n wrote,
                    // read once step n was yielded (yielded >= n + 1).
                    if step >= self.steps
                        || step >= completed + self.depth as u64
                        || step >= self.yielded + ring
                    {
                        return Ok(Stall::None);
                    }
                    let slot = (step % ring) as usize;
                    if let Some(write) = self.position_writes[slot].take() {
                        if !block && !write.is_complete()? {
                            self.position_writes[slot] = Some(write);
                            return Ok(Stall::Write(slot));
                        }
                        write.wait()?;
                    }
                    self.queued.push_back(InFlight {
                        step,
                        done: 0,
                        requests: Vec::with_capacity(self.models.len()),
                    });
                    (step, 0)
                }
            };
            let slot = (step % ring) as usize;
            let mut drained = false;
            let mut j = from_member;
            while j < self.models.len() {
                let sets = self.sets[slot][j].take().expect("a free slot's sets");
                match self.compute.execute(&self.models[j], sets.0, sets.1) {
                    Ok(request) => {
                        self.queued
                            .back_mut()
                            .expect("pushed above")
                            .requests
                            .push(request);
                        j += 1;
                    }
                    Err(rejected) => {
                        let queue_full = rejected.error().status() == Some(NrtStatus::QueueFull);
                        let (error, sets) = rejected.into_parts();
                        self.sets[slot][j] = Some(sets);
                        let ours = self.queued.iter().map(|s| s.requests.len()).sum::<usize>();
                        if queue_full && ours > 0 {
                            // Our own queued requests fill the queue: go on once the
                            // oldest completed.
                            return Ok(Stall::None);
                        }
                        if queue_full && !block {
                            return Ok(Stall::QueueFull);
                        }
                        if queue_full && !drained {
                            // Other requests (an earlier decode dropped with steps
                            // queued, say) fill it: they run first anyway.
                            drained = true;
                            self.compute.wait_idle()?;
                            continue;
                        }
                        return Err(error);
                    }
                }
            }
            self.scheduled = step + 1;
        }
    }

    /// [`fill`](Self::fill) without blocking the thread: awaits the position writes it
    /// needs.
    async fn fill_async(&mut self) -> Result<()> {
        loop {
            match self.fill_until(false)? {
                Stall::None => return Ok(()),
                Stall::Write(slot) => {
                    if let Some(write) = self.position_writes[slot].take() {
                        write.await?;
                    }
                }
                Stall::QueueFull => {
                    return Err(Error::invalid(
                        "decode",
                        "the compute queue is full of other requests (an earlier decode dropped with steps queued?): call finish() on it, or use next_step, which waits for them",
                    ));
                }
            }
        }
    }

    /// Waits for the oldest step, queues the next ones, reads the oldest step's ids.
    fn advance(&mut self) -> Result<Vec<u32>> {
        let (step, slot) = loop {
            let Some(requests) = self.oldest_requests()? else {
                return Err(Error::invalid("decode", NOTHING_QUEUED));
            };
            for request in requests {
                let sets = request.wait()?;
                self.member_done(sets);
            }
            if let Some(done) = self.pop_if_complete() {
                break done;
            }
            // A partial step (the queue was full when it was scheduled), now alone
            // on the queue: schedule the rest, then wait for it.
            self.fill()?;
        };
        self.write_positions(step, slot)?;
        self.fill()?;
        let buffer = self.read_ids(step)?.wait()?;
        self.yielded_ids(step, buffer)
    }

    /// [`advance`](Self::advance), awaiting instead of blocking.
    async fn advance_async(&mut self) -> Result<Vec<u32>> {
        let (step, slot) = loop {
            let Some(requests) = self.oldest_requests()? else {
                return Err(Error::invalid("decode", NOTHING_QUEUED));
            };
            for request in requests {
                let sets = request.await?;
                self.member_done(sets);
            }
            if let Some(done) = self.pop_if_complete() {
                break done;
            }
            self.fill_async().await?;
        };
        self.write_positions(step, slot)?;
        self.fill_async().await?;
        let buffer = self.read_ids(step)?.await?;
        self.yielded_ids(step, buffer)
    }

    /// The requests of the oldest step not yet waited for (taken out of it); `None`
    /// when no step is queued.
    fn oldest_requests(&mut self) -> Result<Option<Vec<Request<ExecSets>>>> {
        Ok(self
            .queued
            .front_mut()
            .map(|oldest| std::mem::take(&mut oldest.requests)))
    }

    /// The oldest step's next member completed: its sets go back to the ring slot.
    fn member_done(&mut self, sets: ExecSets) {
        let ring = self.ids.len() as u64;
        let oldest = self.queued.front_mut().expect("a step is queued");
        self.sets[(oldest.step % ring) as usize][oldest.done] = Some(sets);
        oldest.done += 1;
    }

    /// Removes the oldest step if all its members completed: `(step, ring slot)`.
    fn pop_if_complete(&mut self) -> Option<(u64, usize)> {
        let ring = self.ids.len() as u64;
        let oldest = self.queued.front()?;
        if oldest.done < self.models.len() {
            return None;
        }
        let step = oldest.step;
        self.queued.pop_front();
        Some((step, (step % ring) as usize))
    }

    /// Step `step` completed: its position slot is free for step `step + R`, whose
    /// positions are written now.
    fn write_positions(&mut self, step: u64, slot: usize) -> Result<()> {
        let next = step + self.ids.len() as u64;
        if let Some(pos) = &self.positions
            && next < self.steps
        {
            let bytes = encode(
                self.positions_dtype,
                "start.positions",
                &self.first_positions,
                next,
            )?;
            let write = self
                .to_device
                .write(&pos[slot], 0, bytes)
                .map_err(Error::from)?;
            self.position_writes[slot] = Some(write);
        }
        Ok(())
    }

    /// Schedules the read of the ids step `step` wrote.
    fn read_ids(&mut self, step: u64) -> Result<Request<Vec<u8>>> {
        let out = &self.ids[((step + 1) % self.ids.len() as u64) as usize];
        let mut buffer = std::mem::take(&mut self.read_buffer);
        buffer.resize(self.ids_bytes, 0);
        Ok(self.from_device.read(out, 0, buffer)?)
    }

    /// Step `step`'s ids were read into `buffer`: decoded, and the step yielded.
    fn yielded_ids(&mut self, step: u64, buffer: Vec<u8>) -> Result<Vec<u32>> {
        let ids = decode(self.ids_dtype, &buffer)?;
        self.read_buffer = buffer;
        self.yielded = step + 1;
        Ok(ids)
    }
}

/// Why [`PipelinedDecode::fill_until`] stopped before `depth` steps were queued.
enum Stall {
    /// Nothing stopped it (the queue is as full as allowed, or the budget is reached).
    None,
    /// The position write of the ring slot must complete first.
    Write(usize),
    /// The compute queue is full of other requests.
    QueueFull,
}

const CANCELLED: &str =
    "a next_step_async future of this decode was dropped mid-step: the decode cannot go on";
const NOTHING_QUEUED: &str = "no step is queued (the compute queue was full of other requests)";

impl Iterator for PipelinedDecode {
    type Item = Result<Vec<u32>>;

    fn next(&mut self) -> Option<Result<Vec<u32>>> {
        self.next_step().transpose()
    }
}

impl std::iter::FusedIterator for PipelinedDecode {}

impl fmt::Debug for PipelinedDecode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelinedDecode")
            .field("compute", &self.compute)
            .field("members", &self.models.len())
            .field("batch", &self.batch)
            .field("depth", &self.depth)
            .field("steps", &self.steps)
            .field("yielded", &self.yielded)
            .field("queued", &self.queued.len())
            .finish_non_exhaustive()
    }
}

/// `values[r] + add` as elements of `dtype`, little-endian.
fn encode(dtype: DType, what: &'static str, values: &[u32], add: u64) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(values.len() * dtype.size_in_bytes().unwrap_or(4));
    for (r, &v) in values.iter().enumerate() {
        let v = u64::from(v) + add;
        let fits = |max: u64| {
            if v > max {
                Err(Error::invalid(
                    what,
                    format!("row {r}: {v} does not fit in the device's {dtype}"),
                ))
            } else {
                Ok(())
            }
        };
        match dtype {
            DType::I32 => {
                fits(i32::MAX as u64)?;
                out.extend_from_slice(&(v as i32).to_le_bytes());
            }
            DType::U32 => {
                fits(u32::MAX as u64)?;
                out.extend_from_slice(&(v as u32).to_le_bytes());
            }
            DType::I64 => {
                fits(i64::MAX as u64)?;
                out.extend_from_slice(&(v as i64).to_le_bytes());
            }
            other => {
                return Err(Error::invalid(
                    what,
                    format!("the device tensor is {other}, not an integer type"),
                ));
            }
        }
    }
    Ok(out)
}

/// Ids read from the device, as token ids.
fn decode(dtype: DType, bytes: &[u8]) -> Result<Vec<u32>> {
    let bad = |r: usize, v: i64| {
        Error::invalid(
            "next_ids",
            format!("row {r}: the device returned id {v}, not a token id"),
        )
    };
    match dtype {
        DType::I32 => bytes
            .chunks_exact(4)
            .enumerate()
            .map(|(r, c)| {
                let v = i32::from_le_bytes(c.try_into().expect("4 bytes"));
                u32::try_from(v).map_err(|_| bad(r, v.into()))
            })
            .collect(),
        DType::U32 => Ok(bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect()),
        DType::I64 => bytes
            .chunks_exact(8)
            .enumerate()
            .map(|(r, c)| {
                let v = i64::from_le_bytes(c.try_into().expect("8 bytes"));
                u32::try_from(v).map_err(|_| bad(r, v))
            })
            .collect(),
        other => Err(Error::invalid(
            "next_ids",
            format!("the device's ids are {other}, not an integer type"),
        )),
    }
}
