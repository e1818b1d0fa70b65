//! [`Generator`]: prefill a prompt, then decode token by token with the KV cache resident
//! on the device; tokens as an iterator ([`Generation`]), per step for a batch
//! ([`BatchGeneration`]), or as a `Stream` ([`GenerationStream`]).

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use super::bucket::{Padded, kind_name};
use super::bundle::{Bundle, Member, MemberKind, Sampling, Shared};
use super::chain::{DecodeChain, IDS_INPUT, NEXT_IDS_OUTPUT, POSITIONS_INPUT, SEQ_IDS_INPUT};
use super::error::BundleError;
use super::pipelined::{DEFAULT_DECODE_DEPTH, DecodeOptions, DecodeStart, PipelinedDecode};
use super::sampling::{Sampler, SamplingParams};
use super::stop::{FinishReason, StopConditions, StopState};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::objects::{Tensor, TensorInfo, TensorSet};
use crate::profiling::spans::{self, Span};
use crate::xu::{ExecSets, ExecUnit, Rejected};

/// The optional user input of 1 (token) / 0 (padding) per position.
pub const MASK_INPUT: &str = "attention_mask";
/// The output of a host-sampling member: `[batch, vocab]` logits of each row's last token.
pub const LOGITS_OUTPUT: &str = "logits";

/// Where the next token is chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SamplingMode {
    /// The decode member returns logits; the host samples ([`SamplingParams`]).
    #[default]
    Host,
    /// The decode member returns the next ids (its argmax): greedy only. The prompt's
    /// first token is the argmax of the prefill's logits, taken on the host.
    Device,
}

impl fmt::Display for SamplingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SamplingMode::Host => "host",
            SamplingMode::Device => "device",
        })
    }
}

/// What one generation does: when it stops, how it samples, where.
///
/// ```
/// use neuron_rt::generate::{GenerateOptions, SamplingMode, SamplingParams};
///
/// let greedy = GenerateOptions::new(48).stop_string("\n\n");
/// let sampled = GenerateOptions::new(48).sampling(SamplingParams { temperature: 0.7, top_k: 50, top_p: 0.9, seed: 1 });
/// let on_device = GenerateOptions::new(48).mode(SamplingMode::Device);
/// # let _ = (greedy, sampled, on_device);
/// ```
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// Token budget, EOS ids, stop strings.
    pub stop: StopConditions,
    /// Host sampling parameters (greedy by default).
    pub sampling: SamplingParams,
    /// Host or device sampling.
    pub mode: SamplingMode,
    /// The id padding tokens carry (0 by default).
    pub pad_id: u32,
    /// Device sampling: decode steps kept queued on the compute unit, each one's ids
    /// input bound to the previous one's ids output on the device
    /// ([`PipelinedDecode`]; default [`DEFAULT_DECODE_DEPTH`]). 0: one step at a time,
    /// its ids read back before the next is scheduled. The pipelined path runs when the
    /// running rows fill a decode bucket exactly (otherwise steps go one at a time, the
    /// bucket padded); the async [`GenerationStream`] always goes one step at a time.
    pub depth: usize,
}

impl GenerateOptions {
    /// At most `max_new_tokens` tokens, greedy, sampled on the host.
    pub fn new(max_new_tokens: u32) -> GenerateOptions {
        GenerateOptions {
            stop: StopConditions::new(max_new_tokens),
            sampling: SamplingParams::greedy(),
            mode: SamplingMode::Host,
            pad_id: 0,
            depth: DEFAULT_DECODE_DEPTH,
        }
    }

    /// Device sampling with `depth` steps queued (0: one at a time).
    pub fn depth(mut self, depth: usize) -> GenerateOptions {
        self.depth = depth;
        self
    }

    /// With these host sampling parameters.
    pub fn sampling(mut self, sampling: SamplingParams) -> GenerateOptions {
        self.sampling = sampling;
        self
    }

    /// Sampled on the host or on the device.
    pub fn mode(mut self, mode: SamplingMode) -> GenerateOptions {
        self.mode = mode;
        self
    }

    /// Also stops once the text ends with `text`.
    pub fn stop_string(mut self, text: impl AsRef<[u8]>) -> GenerateOptions {
        self.stop = self.stop.stop_string(text);
        self
    }

    /// Also stops on `id` (yielded, then the sequence ends).
    pub fn eos(mut self, id: u32) -> GenerateOptions {
        self.stop = self.stop.eos(id);
        self
    }

    /// With these stop conditions.
    pub fn stop(mut self, stop: StopConditions) -> GenerateOptions {
        self.stop = stop;
        self
    }
}

/// Generates tokens with a [`Bundle`] on one of its cores: each prompt prefilled by the
/// smallest prefill bucket that holds it (into its own cache slot), then one decode
/// step per token with the smallest decode bucket that holds the running rows; the
/// cache stays on the device (each member's state inputs and outputs are the bundle's
/// tensors), and per step only the ids, positions and slots go to the device and the
/// logits (host sampling) or ids (device sampling) come back.
///
/// ```
/// use neuron_rt::Runtime;
/// use neuron_rt::generate::{Bundle, FinishReason, GenerateOptions, Generator};
///
/// let dir = tempfile::tempdir().unwrap();
/// neuron_rt::sim::decoder::write_bundle(dir.path(), &Default::default()).unwrap();
/// let runtime = Runtime::builder().simulator().build()?;
/// let bundle = Bundle::builder(&runtime).dir(dir.path())?.build()?;
/// let generator = Generator::new(&bundle, 0)?;
///
/// let prompt: Vec<u32> = b"Hello".iter().map(|&b| u32::from(b)).collect();
/// let mut generation = generator.generate(&prompt, &GenerateOptions::new(8))?;
/// let tokens: Vec<u32> = generation.by_ref().collect::<neuron_rt::Result<_>>()?;
/// assert_eq!(tokens.len(), 8);
/// assert_eq!(generation.finish_reason(), Some(&FinishReason::Length));
/// # Ok::<(), neuron_rt::Error>(())
/// ```
///
/// Several generations may run on one core at once, each in its own cache slots (the
/// bundle hands out slots; [`BundleError::NoFreeSlot`] when all are taken).
#[derive(Clone, Debug)]
pub struct Generator {
    bundle: Bundle,
    core: u32,
}

impl Generator {
    /// A generator on `core` of `bundle`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if the bundle is not loaded on `core`;
    /// [`BundleError::NoBucket`] if it has no prefill or no decode member.
    pub fn new(bundle: &Bundle, core: u32) -> Result<Generator> {
        if !bundle.cores().contains(&core) {
            return Err(Error::invalid(
                "core",
                format!(
                    "the bundle is loaded on cores {:?}, not on core {core}",
                    bundle.cores()
                ),
            ));
        }
        for kind in [MemberKind::Prefill, MemberKind::Decode] {
            if !bundle.members().iter().any(|m| m.kind() == &kind) {
                return Err(BundleError::NoBucket {
                    kind: kind_name(&kind),
                    batch: 1,
                    seq_len: 1,
                    largest: None,
                }
                .into());
            }
        }
        Ok(Generator {
            bundle: bundle.clone(),
            core,
        })
    }

    /// Its bundle.
    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    /// Its core.
    pub fn core(&self) -> u32 {
        self.core
    }

    /// Starts generating after `prompt` (token ids). Nothing runs until the first
    /// [`next`](Iterator::next): that call prefills and yields the first token.
    ///
    /// # Errors
    ///
    /// Found before anything runs: [`Error::InvalidArgument`] for an empty prompt or bad
    /// sampling parameters, or device sampling with non-greedy parameters;
    /// [`BundleError::TokenOutOfRange`] for an id outside the vocabulary;
    /// [`BundleError::NoBucket`] naming the largest prefill bucket when the prompt is
    /// longer; [`BundleError::ContextExceeded`] when the prompt does not fit the cache;
    /// [`BundleError::NoFreeSlot`] when every cache slot is in use.
    pub fn generate(&self, prompt: &[u32], options: &GenerateOptions) -> Result<Generation> {
        Ok(Generation {
            engine: Engine::new(self, &[prompt], options)?,
            pending: VecDeque::new(),
        })
    }

    /// Starts generating after each of `prompts` at once: one cache slot per prompt,
    /// each prefilled in turn, then decode steps over the rows still running, in the
    /// smallest decode bucket that holds them (a finished row leaves the batch).
    ///
    /// # Errors
    ///
    /// As [`generate`](Generator::generate) for each prompt; also
    /// [`BundleError::NoBucket`] when no decode bucket holds all the rows and
    /// [`Error::InvalidArgument`] for no prompts.
    pub fn generate_batch(
        &self,
        prompts: &[&[u32]],
        options: &GenerateOptions,
    ) -> Result<BatchGeneration> {
        Ok(BatchGeneration {
            engine: Engine::new(self, prompts, options)?,
        })
    }

    /// [`generate`](Generator::generate) as a `Stream` of tokens: each step's transfers
    /// and execution are requests on the core's execution units, awaited without
    /// blocking the executor. It owns what it uses (`'static`), so it can be moved to
    /// another task.
    ///
    /// # Errors
    ///
    /// As [`generate`](Generator::generate); also the errors of
    /// [`Runtime::compute_unit`](crate::Runtime::compute_unit) and
    /// [`Runtime::tensor_op_unit`](crate::Runtime::tensor_op_unit).
    pub fn stream(&self, prompt: &[u32], options: &GenerateOptions) -> Result<GenerationStream> {
        let rt = self.bundle.runtime();
        let units = Units {
            compute: rt.compute_unit(self.core)?,
            write: rt.tensor_op_unit(self.core, 0)?,
            read: rt.tensor_op_unit(self.core, 1)?,
        };
        Ok(GenerationStream {
            engine: Some(Engine::new(self, &[prompt], options)?),
            units,
            step: None,
            pending: VecDeque::new(),
            done: false,
        })
    }
}

/// Cache slots taken by a generation, given back on drop (a forgotten generation keeps
/// them: later generations get [`BundleError::NoFreeSlot`], nothing else goes wrong).
pub(crate) struct SlotLease {
    shared: Arc<Shared>,
    core_slot: usize,
    mask: u128,
}

impl SlotLease {
    pub(crate) fn take(
        shared: &Arc<Shared>,
        core: u32,
        slots: u32,
        wanted: u32,
    ) -> Result<SlotLease> {
        let core_slot = shared
            .slot(core)
            .expect("the generator's core is the bundle's");
        let mut used = shared
            .slots_in_use
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let free: Vec<u32> = (0..slots.min(128))
            .filter(|&s| used[core_slot] & (1u128 << s) == 0)
            .collect();
        if (free.len() as u32) < wanted {
            return Err(BundleError::NoFreeSlot {
                core,
                slots,
                wanted,
            }
            .into());
        }
        let mask = free[..wanted as usize]
            .iter()
            .fold(0u128, |m, &s| m | (1u128 << s));
        used[core_slot] |= mask;
        Ok(SlotLease {
            shared: Arc::clone(shared),
            core_slot,
            mask,
        })
    }

    pub(crate) fn slots(&self) -> Vec<u32> {
        (0..128)
            .filter(|&s| self.mask & (1u128 << s) != 0)
            .collect()
    }
}

impl Drop for SlotLease {
    fn drop(&mut self) {
        let mut used = self
            .shared
            .slots_in_use
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        used[self.core_slot] &= !self.mask;
    }
}

/// One sequence of a generation.
struct Row {
    prompt: Vec<u32>,
    slot: u32,
    /// The token the next decode step feeds, and its position.
    last: u32,
    pos: u32,
    sampler: Sampler,
    stop: StopState,
    generated: Vec<u32>,
    finish: Option<FinishReason>,
    /// The logits the last token was sampled from (host-sampled calls; the prefill's).
    logits: Vec<f32>,
}

/// One call: which member, the padded user inputs, which bucket row is which row.
struct Plan {
    member: usize,
    padded: Padded,
    /// Row index of each real bucket row.
    rows: Vec<usize>,
    prefill: bool,
    /// What the member returns.
    result: Sampling,
}

/// What a call returned, unpadded.
enum StepOutput {
    Logits(Vec<f32>),
    Ids(Vec<i64>),
}

/// The state of a generation, shared by the sync and async drivers: planning a call
/// and taking in its result are plain code; only running it differs.
struct Engine {
    bundle: Bundle,
    core: u32,
    options: GenerateOptions,
    vocab: u32,
    ctx: u32,
    rows: Vec<Row>,
    prefilled: usize,
    /// Per member index: its sets (reused every call) and the seq_ids last written.
    sets: BTreeMap<usize, (ExecSets, Vec<i64>)>,
    /// Device sampling, pipelined: the decode and the rows it runs, in its row order.
    /// Declared before the slots: a decode dropped mid-way drops its queued requests
    /// (released once the device is done) before the slots are handed back.
    pipeline: Option<(PipelinedDecode, Vec<usize>)>,
    failed: bool,
    /// The `neuron_rt.generate` span (feature `tracing`), ended when the generation is
    /// done, fails or is dropped.
    span: Span,
    /// Steps run so far (the `step` of the step spans).
    steps: u64,
    /// The generation's id in its spans (`request_id`), from a process-wide counter.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    id: u64,
    _slots: SlotLease,
}

impl Engine {
    fn new(generator: &Generator, prompts: &[&[u32]], options: &GenerateOptions) -> Result<Engine> {
        let bundle = &generator.bundle;
        options.sampling.check()?;
        if options.mode == SamplingMode::Device && !options.sampling.is_greedy() {
            return Err(Error::invalid(
                "sampling",
                format!(
                    "device sampling is the argmax: sampling parameters must be greedy, got {:?}",
                    options.sampling
                ),
            ));
        }
        if prompts.is_empty() {
            return Err(Error::invalid("prompts", "no prompt to generate from"));
        }
        let config = bundle.config().copied().unwrap_or_default();
        let prefill = bundle.bucket_for(&MemberKind::Prefill, None, 1, 1)?;
        let vocab = match config.vocab {
            0 => output_of(prefill, LOGITS_OUTPUT)
                .and_then(|o| o.shape.last().copied())
                .unwrap_or(0),
            v => v,
        };
        let cache_dims = bundle
            .states(generator.core)
            .next()
            .and_then(|(_, t)| t.shape().map(<[u32]>::to_vec));
        // [slots, heads, ctx, head_dim] when the manifest does not say.
        let ctx = match config.ctx {
            0 => cache_dims
                .as_ref()
                .and_then(|d| d.get(2).copied())
                .unwrap_or(u32::MAX),
            c => c,
        };
        let slots = match config.slots {
            0 => cache_dims
                .as_ref()
                .and_then(|d| d.first().copied())
                .unwrap_or(1),
            s => s,
        };
        for (p, prompt) in prompts.iter().enumerate() {
            if prompt.is_empty() {
                return Err(Error::invalid("prompt", format!("prompt {p} is empty")));
            }
            if let Some((i, &id)) = prompt
                .iter()
                .enumerate()
                .find(|(_, id)| vocab > 0 && **id >= vocab)
            {
                return Err(BundleError::TokenOutOfRange {
                    origin: format!("prompt {p}, position {i}"),
                    id: i64::from(id),
                    vocab,
                }
                .into());
            }
            let len = u32::try_from(prompt.len()).unwrap_or(u32::MAX);
            bundle.bucket_for(&MemberKind::Prefill, None, 1, len)?;
            if u64::from(len) > u64::from(ctx) {
                return Err(BundleError::ContextExceeded {
                    what: format!("prompt {p} of {len} tokens"),
                    needed: u64::from(len),
                    ctx,
                }
                .into());
            }
        }
        let rows_n = u32::try_from(prompts.len()).unwrap_or(u32::MAX);
        let decode_sampling = match options.mode {
            SamplingMode::Host => Sampling::Logits,
            SamplingMode::Device => Sampling::Ids,
        };
        bundle.bucket_for(&MemberKind::Decode, Some(decode_sampling), rows_n, 1)?;
        let lease = SlotLease::take(&bundle.inner.shared, generator.core, slots, rows_n)?;
        let rows = prompts
            .iter()
            .zip(lease.slots())
            .map(|(prompt, slot)| {
                Ok(Row {
                    prompt: prompt.to_vec(),
                    slot,
                    last: 0,
                    pos: 0,
                    sampler: Sampler::new(options.sampling)?,
                    stop: options.stop.start(),
                    generated: Vec::new(),
                    finish: (options.stop.max_new_tokens == 0).then_some(FinishReason::Length),
                    logits: Vec::new(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let span = spans::info_span!(
            "neuron_rt.generate",
            request_id = id,
            core = generator.core,
            batch = rows.len(),
            prompt_tokens = rows.iter().map(|r| r.prompt.len()).sum::<usize>(),
            new_tokens = tracing::field::Empty,
            finish = tracing::field::Empty,
        );
        Ok(Engine {
            bundle: bundle.clone(),
            core: generator.core,
            options: options.clone(),
            vocab,
            ctx,
            rows,
            prefilled: 0,
            sets: BTreeMap::new(),
            pipeline: None,
            failed: false,
            span,
            steps: 0,
            id,
            _slots: lease,
        })
    }

    /// A `neuron_rt.generate.step` span for the next step, inside the generation's.
    fn step_span(&mut self) -> Span {
        self.steps += 1;
        spans::debug_span!(
            parent: &self.span,
            "neuron_rt.generate.step",
            request_id = self.id,
            step = self.steps,
            batch = tracing::field::Empty,
            tokens = tracing::field::Empty,
            prefill = tracing::field::Empty,
        )
    }

    /// Ends the generation's span (once): the tokens generated, how the rows finished
    /// (comma-separated for a batch) and, after a failure, the error.
    fn end_span(&mut self, error: Option<&Error>) {
        let span = std::mem::replace(&mut self.span, Span::none());
        if span.is_disabled() {
            return;
        }
        let new_tokens: usize = self.rows.iter().map(|r| r.generated.len()).sum();
        span.record("new_tokens", new_tokens);
        #[cfg(feature = "tracing")]
        {
            let finish: Vec<String> = self
                .rows
                .iter()
                .map(|r| {
                    r.finish
                        .as_ref()
                        .map_or("none".to_owned(), |f| format!("{f:?}"))
                })
                .collect();
            span.record("finish", finish.join(",").as_str());
        }
        match error {
            Some(error) => spans::record_error(&span, error),
            None => spans::record_success(&span),
        }
    }

    fn member_index(&self, member: &Member) -> usize {
        self.bundle
            .members()
            .iter()
            .position(|m| std::ptr::eq(m, member))
            .expect("a member of this bundle")
    }

    /// The next call to make, or `None` when every row has finished.
    fn plan(&mut self) -> Result<Option<Plan>> {
        if self.failed {
            return Ok(None);
        }
        while self.prefilled < self.rows.len() {
            let r = self.prefilled;
            self.prefilled += 1;
            if self.rows[r].finish.is_some() {
                continue;
            }
            let row = &self.rows[r];
            let len = row.prompt.len() as u32;
            let member = self.bundle.bucket_for(&MemberKind::Prefill, None, 1, len)?;
            let bucket = member.bucket().expect("picked by its bucket");
            let padded = Padded::new(bucket, &[(&row.prompt, 0, row.slot)], self.options.pad_id);
            return Ok(Some(Plan {
                member: self.member_index(member),
                padded,
                rows: vec![r],
                prefill: true,
                result: Sampling::Logits,
            }));
        }
        for row in &mut self.rows {
            if row.finish.is_none() && row.pos >= self.ctx {
                row.finish = Some(FinishReason::ContextFull);
            }
        }
        let active: Vec<usize> = (0..self.rows.len())
            .filter(|&r| self.rows[r].finish.is_none())
            .collect();
        if active.is_empty() {
            return Ok(None);
        }
        let result = match self.options.mode {
            SamplingMode::Host => Sampling::Logits,
            SamplingMode::Device => Sampling::Ids,
        };
        let member =
            self.bundle
                .bucket_for(&MemberKind::Decode, Some(result), active.len() as u32, 1)?;
        let bucket = member.bucket().expect("picked by its bucket");
        let tokens: Vec<[u32; 1]> = active.iter().map(|&r| [self.rows[r].last]).collect();
        let inputs: Vec<(&[u32], u32, u32)> = active
            .iter()
            .zip(&tokens)
            .map(|(&r, t)| (&t[..], self.rows[r].pos, self.rows[r].slot))
            .collect();
        let padded = Padded::new(bucket, &inputs, self.options.pad_id);
        Ok(Some(Plan {
            member: self.member_index(member),
            padded,
            rows: active,
            prefill: false,
            result,
        }))
    }

    /// Takes in a call's result: one token per real row. Returns `(row, token)`s.
    fn absorb(&mut self, plan: &Plan, output: StepOutput) -> Result<Vec<(usize, u32)>> {
        let vocab = self.vocab as usize;
        let name = self.bundle.members()[plan.member].name().to_owned();
        let mut out = Vec::with_capacity(plan.rows.len());
        for (i, &r) in plan.rows.iter().enumerate() {
            let row = &mut self.rows[r];
            let id = match &output {
                StepOutput::Logits(logits) => {
                    let line = logits.get(i * vocab..(i + 1) * vocab).ok_or_else(|| {
                        Error::invalid(
                            "logits",
                            format!(
                                "member `{name}` returned {} logits, row {i} needs {} (vocab {vocab})",
                                logits.len(),
                                (i + 1) * vocab
                            ),
                        )
                    })?;
                    row.logits.clear();
                    row.logits.extend_from_slice(line);
                    i64::from(row.sampler.sample(line))
                }
                StepOutput::Ids(ids) => {
                    row.logits.clear();
                    ids[i]
                }
            };
            if id < 0 || id >= i64::from(self.vocab) {
                return Err(BundleError::TokenOutOfRange {
                    origin: format!("member `{name}`, row {i}"),
                    id,
                    vocab: self.vocab,
                }
                .into());
            }
            self.take_token(r, id as u32, plan.prefill);
            out.push((r, id as u32));
        }
        Ok(out)
    }

    /// Row `r` produced `id` (checked against the vocabulary).
    fn take_token(&mut self, r: usize, id: u32, prefill: bool) {
        let row = &mut self.rows[r];
        row.pos = if prefill {
            row.prompt.len() as u32
        } else {
            row.pos + 1
        };
        row.last = id;
        row.generated.push(id);
        row.finish = row.stop.push(&self.options.stop, id);
    }

    /// The next step of the pipelined device decode, when it applies (device sampling,
    /// every prompt prefilled, the running rows filling a decode bucket): `None` to go
    /// one step at a time instead.
    fn pipelined_step(&mut self) -> Option<Result<Vec<(usize, u32)>>> {
        if self.options.mode != SamplingMode::Device
            || self.options.depth == 0
            || self.failed
            || self.prefilled < self.rows.len()
        {
            return None;
        }
        if self.pipeline.is_none() {
            match self.start_pipeline() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => return Some(Err(e)),
            }
        }
        let (decode, rows) = self.pipeline.as_mut().expect("started");
        let rows = rows.clone();
        let ids = match decode.next() {
            None => {
                self.pipeline = None;
                return None;
            }
            Some(Err(e)) => return Some(Err(e)),
            Some(Ok(ids)) => ids,
        };
        let mut out = Vec::with_capacity(rows.len());
        for (&r, &id) in rows.iter().zip(&ids) {
            if self.rows[r].finish.is_some() {
                continue; // finished earlier; the queued steps run on for the others
            }
            if id >= self.vocab {
                return Some(Err(BundleError::TokenOutOfRange {
                    origin: format!("pipelined decode, row {r}"),
                    id: i64::from(id),
                    vocab: self.vocab,
                }
                .into()));
            }
            self.take_token(r, id, false);
            out.push((r, id));
        }
        if rows.iter().all(|&r| self.rows[r].finish.is_some()) {
            // Steps still queued write the cache: wait for them (at most `depth` step
            // times), so that nothing later on these slots races with them.
            if let Some((decode, _)) = self.pipeline.take()
                && let Err(e) = decode.finish()
            {
                return Some(Err(e));
            }
        }
        Some(Ok(out))
    }

    /// Starts the pipelined decode over the running rows; `false` when it does not
    /// apply (no rows, no bucket of exactly their number, no step left).
    fn start_pipeline(&mut self) -> Result<bool> {
        let active: Vec<usize> = (0..self.rows.len())
            .filter(|&r| self.rows[r].finish.is_none() && self.rows[r].pos < self.ctx)
            .collect();
        if active.is_empty() {
            return Ok(false);
        }
        let member = self.bundle.bucket_for(
            &MemberKind::Decode,
            Some(Sampling::Ids),
            active.len() as u32,
            1,
        )?;
        if member.bucket().map(|b| b.batch as usize) != Some(active.len()) {
            return Ok(false);
        }
        let budget = active
            .iter()
            .map(|&r| self.options.stop.max_new_tokens - self.rows[r].stop.produced())
            .max()
            .unwrap_or(0);
        let room = active
            .iter()
            .map(|&r| self.ctx - self.rows[r].pos)
            .min()
            .unwrap_or(0);
        let steps = budget.min(room);
        if steps == 0 {
            return Ok(false);
        }
        let start = DecodeStart {
            ids: active.iter().map(|&r| self.rows[r].last).collect(),
            positions: active.iter().map(|&r| self.rows[r].pos).collect(),
            seq_ids: active.iter().map(|&r| self.rows[r].slot).collect(),
        };
        let chain = DecodeChain::single(&self.bundle, member.name())?;
        let options = DecodeOptions::new(u64::from(steps)).depth(self.options.depth);
        let decode = PipelinedDecode::new(&self.bundle, self.core, &chain, &start, options)?;
        self.pipeline = Some((decode, active));
        Ok(true)
    }

    /// The member's sets (made once, reused) and whether `seq_ids` must be written.
    fn take_sets(&mut self, plan: &Plan) -> Result<(ExecSets, bool)> {
        match self.sets.remove(&plan.member) {
            Some((sets, seq)) => {
                let same = seq == plan.padded.seq_ids;
                Ok((sets, !same))
            }
            None => {
                let member = &self.bundle.members()[plan.member];
                Ok((member.sets(self.core, &[])?, true))
            }
        }
    }

    fn put_sets(&mut self, plan: &Plan, sets: ExecSets) {
        self.sets
            .insert(plan.member, (sets, plan.padded.seq_ids.clone()));
    }

    /// Runs `plan` with blocking calls.
    fn run_sync(&mut self, plan: &Plan) -> Result<StepOutput> {
        let ((inputs, mut outputs), write_seq) = self.take_sets(plan)?;
        let bundle = self.bundle.clone();
        let member = &bundle.members()[plan.member];
        let model = member.model(self.core).expect("the generator's core");
        let mut run = || {
            for (name, bytes) in writes(member, &inputs, plan, write_seq)? {
                let tensor = inputs.get(name).expect("checked by writes");
                tensor.write_bytes(&bytes)?;
            }
            model.execute(&inputs, &mut outputs)?;
            let (tensor, info) = result_tensor(member, &outputs, plan.result)?;
            let mut bytes = vec![0u8; info.size];
            tensor.read_bytes(&mut bytes)?;
            decode_output(member, info, plan, &bytes)
        };
        let r = run();
        if r.is_ok() {
            // After a failure the sets are dropped: the next call makes new ones.
            self.put_sets(plan, (inputs, outputs));
        }
        r
    }

    fn finish_reason(&self, row: usize) -> Option<&FinishReason> {
        self.rows.get(row).and_then(|r| r.finish.as_ref())
    }

    /// One call, blocking: its `(row, token)`s, `None` when done.
    fn step_sync(&mut self) -> Option<Result<Vec<(usize, u32)>>> {
        if self.done() {
            return None;
        }
        let span = self.step_span();
        let entered = span.enter();
        let r = (|| {
            if let Some(step) = self.pipelined_step() {
                if let Ok(tokens) = &step {
                    span.record("batch", tokens.len());
                    span.record("tokens", tokens.len());
                    span.record("prefill", false);
                }
                return step.map(Some);
            }
            let Some(plan) = self.plan()? else {
                return Ok(None);
            };
            self.record_plan(&span, &plan);
            let output = self.run_sync(&plan)?;
            self.absorb(&plan, output).map(Some)
        })();
        drop(entered);
        self.after_step(&span, r)
    }

    /// Whether no step is left (failed, or every row prefilled and finished with no
    /// pipelined decode running); ends the generation's span then. A call that only
    /// finds this out gets no step span.
    fn done(&mut self) -> bool {
        let done = self.failed
            || (self.prefilled == self.rows.len()
                && self.pipeline.is_none()
                && self.rows.iter().all(|r| r.finish.is_some()));
        if done {
            self.end_span(None);
        }
        done
    }

    /// Records what a planned step runs on its span: its rows, the tokens it feeds
    /// (the prompt for a prefill, one per row for a decode step) and whether it is a
    /// prefill.
    fn record_plan(&self, span: &Span, plan: &Plan) {
        if span.is_disabled() {
            return;
        }
        span.record("batch", plan.rows.len());
        span.record("prefill", plan.prefill);
        let tokens: usize = if plan.prefill {
            plan.rows.iter().map(|&r| self.rows[r].prompt.len()).sum()
        } else {
            plan.rows.len()
        };
        span.record("tokens", tokens);
    }

    /// Ends a step: its span, and the generation's when it is done or failed.
    fn after_step(
        &mut self,
        span: &Span,
        r: Result<Option<Vec<(usize, u32)>>>,
    ) -> Option<Result<Vec<(usize, u32)>>> {
        spans::record_result(span, &r);
        match r {
            Ok(Some(tokens)) => Some(Ok(tokens)),
            Ok(None) => {
                self.end_span(None);
                None
            }
            Err(e) => {
                self.failed = true;
                self.end_span(Some(&e));
                Some(Err(e))
            }
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.end_span(None);
        // A generation dropped mid-way: its queued steps complete before its slots go
        // back (at most `depth` step times), so the next user of a slot cannot race them.
        if let Some((decode, _)) = self.pipeline.take() {
            let _ = decode.finish();
        }
    }
}

/// The output a call's result is read from, and its description.
fn result_tensor<'s>(
    member: &'s Member,
    outputs: &'s TensorSet,
    result: Sampling,
) -> Result<(&'s Tensor, &'s TensorInfo)> {
    let name = match result {
        Sampling::Logits => LOGITS_OUTPUT,
        Sampling::Ids => NEXT_IDS_OUTPUT,
    };
    let info = output_of(member, name).ok_or_else(|| Error::UnknownTensor {
        model: member.name().to_owned(),
        role: "output",
        tensor: name.to_owned(),
        known: member.outputs().iter().map(|o| o.name.clone()).collect(),
    })?;
    let tensor = outputs
        .get(name)
        .expect("the member's sets bind every output");
    Ok((tensor, info))
}

fn output_of<'m>(member: &'m Member, name: &str) -> Option<&'m TensorInfo> {
    member.outputs().iter().find(|o| o.name == name)
}

/// The user inputs to write for `plan`, as bytes in each input's element type.
fn writes(
    member: &Member,
    inputs: &TensorSet,
    plan: &Plan,
    write_seq: bool,
) -> Result<Vec<(&'static str, Vec<u8>)>> {
    let p = &plan.padded;
    let mut out = Vec::with_capacity(4);
    let mut add = |name: &'static str, values: &[i64], required: bool| -> Result<()> {
        let Some(info) = member.inputs().iter().find(|i| i.name == name) else {
            if required {
                return Err(Error::UnknownTensor {
                    model: member.name().to_owned(),
                    role: "input",
                    tensor: name.to_owned(),
                    known: member.inputs().iter().map(|i| i.name.clone()).collect(),
                });
            }
            return Ok(());
        };
        debug_assert!(inputs.contains(name));
        out.push((name, encode(member, info, values)?));
        Ok(())
    };
    add(IDS_INPUT, &p.ids, true)?;
    add(POSITIONS_INPUT, &p.positions, true)?;
    if write_seq {
        add(SEQ_IDS_INPUT, &p.seq_ids, false)?;
    }
    add(MASK_INPUT, &p.mask, false)?;
    Ok(out)
}

/// `values` as the bytes of `info`'s element type, checked against its size.
fn encode(member: &Member, info: &TensorInfo, values: &[i64]) -> Result<Vec<u8>> {
    let width = match info.dtype {
        DType::I32 | DType::U32 => 4,
        DType::I64 | DType::U64 => 8,
        other => {
            return Err(BundleError::TensorDType {
                tensor: info.name.clone(),
                bound_as: format!("{} of member `{}`", info.name, member.name()),
                expected: DType::I32,
                found: other,
            }
            .into());
        }
    };
    if values.len() * width != info.size {
        return Err(Error::invalid(
            "bucket",
            format!(
                "member `{}` input `{}` is {:?} {:?} ({} bytes), its bucket gives {} values",
                member.name(),
                info.name,
                info.dtype,
                info.shape,
                info.size,
                values.len()
            ),
        ));
    }
    let mut bytes = Vec::with_capacity(info.size);
    for &v in values {
        match width {
            4 => bytes.extend_from_slice(&(v as i32).to_le_bytes()),
            _ => bytes.extend_from_slice(&v.to_le_bytes()),
        }
    }
    Ok(bytes)
}

/// A result's bytes as logits or ids, padding rows removed.
fn decode_output(
    member: &Member,
    info: &TensorInfo,
    plan: &Plan,
    bytes: &[u8],
) -> Result<StepOutput> {
    let bad = || {
        Error::from(BundleError::TensorDType {
            tensor: info.name.clone(),
            bound_as: format!("{} of member `{}`", info.name, member.name()),
            expected: match plan.result {
                Sampling::Logits => DType::F32,
                Sampling::Ids => DType::I32,
            },
            found: info.dtype,
        })
    };
    let batch = plan.padded.bucket.batch as usize;
    Ok(match plan.result {
        Sampling::Logits => {
            let values: Vec<f32> = match info.dtype {
                DType::F32 => bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                // bf16 is the top half of an f32.
                DType::BF16 => bytes
                    .chunks_exact(2)
                    .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16))
                    .collect(),
                _ => return Err(bad()),
            };
            let row_len = values.len() / batch.max(1);
            StepOutput::Logits(plan.padded.unpad(&values, row_len).to_vec())
        }
        Sampling::Ids => {
            let values: Vec<i64> = match info.dtype {
                DType::I32 => bytes
                    .chunks_exact(4)
                    .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                    .collect(),
                DType::U32 => bytes
                    .chunks_exact(4)
                    .map(|c| i64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                    .collect(),
                DType::I64 | DType::U64 => bytes
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect(),
                _ => return Err(bad()),
            };
            let row_len = values.len() / batch.max(1);
            // One id per row: the first of each row's values.
            StepOutput::Ids(
                plan.padded
                    .unpad(&values, row_len)
                    .chunks(row_len.max(1))
                    .map(|c| c[0])
                    .collect(),
            )
        }
    })
}

/// A single sequence's tokens, one per [`next`](Iterator::next) (blocking). After an
/// error it yields nothing more; its cache slot is free again once it is dropped.
pub struct Generation {
    engine: Engine,
    pending: VecDeque<u32>,
}

impl Generation {
    /// The tokens generated so far.
    pub fn tokens(&self) -> &[u32] {
        &self.engine.rows[0].generated
    }

    /// Why it ended (`None` while running, or after an error).
    pub fn finish_reason(&self) -> Option<&FinishReason> {
        self.engine.finish_reason(0)
    }

    /// The cache slot it uses.
    pub fn slot(&self) -> u32 {
        self.engine.rows[0].slot
    }

    /// The logits the last token was chosen from (one row of the vocabulary): empty
    /// before the first token and for tokens the device sampled.
    pub fn last_logits(&self) -> &[f32] {
        &self.engine.rows[0].logits
    }
}

impl Iterator for Generation {
    type Item = Result<u32>;

    fn next(&mut self) -> Option<Result<u32>> {
        loop {
            if let Some(t) = self.pending.pop_front() {
                return Some(Ok(t));
            }
            match self.engine.step_sync()? {
                Ok(tokens) => self.pending.extend(tokens.into_iter().map(|(_, t)| t)),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl fmt::Debug for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generation")
            .field("slot", &self.slot())
            .field("tokens", &self.tokens().len())
            .field("finish_reason", &self.finish_reason())
            .finish_non_exhaustive()
    }
}

/// Several sequences generated together: each [`next`](Iterator::next) makes one call
/// (a prefill of one row, or a decode step of every running row) and yields the
/// `(row, token)`s it produced.
pub struct BatchGeneration {
    engine: Engine,
}

impl BatchGeneration {
    /// Rows (one per prompt).
    pub fn rows(&self) -> usize {
        self.engine.rows.len()
    }

    /// Tokens generated so far for `row`.
    pub fn tokens(&self, row: usize) -> &[u32] {
        self.engine
            .rows
            .get(row)
            .map_or(&[], |r| r.generated.as_slice())
    }

    /// Why `row` ended (`None` while running, after an error, or for no such row).
    pub fn finish_reason(&self, row: usize) -> Option<&FinishReason> {
        self.engine.finish_reason(row)
    }

    /// The logits `row`'s last token was chosen from (see [`Generation::last_logits`]).
    pub fn last_logits(&self, row: usize) -> &[f32] {
        self.engine
            .rows
            .get(row)
            .map_or(&[], |r| r.logits.as_slice())
    }

    /// The cache slot of `row`.
    pub fn slot(&self, row: usize) -> Option<u32> {
        self.engine.rows.get(row).map(|r| r.slot)
    }
}

impl Iterator for BatchGeneration {
    type Item = Result<Vec<(usize, u32)>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.engine.step_sync()
    }
}

impl fmt::Debug for BatchGeneration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchGeneration")
            .field("rows", &self.rows())
            .finish_non_exhaustive()
    }
}

/// The execution units a [`GenerationStream`] schedules on: the core's COMPUTE unit
/// and its two TENSOR_OP units (writes on one, reads on the other).
#[derive(Clone)]
struct Units {
    compute: ExecUnit,
    write: ExecUnit,
    read: ExecUnit,
}

type StepFuture = Pin<Box<dyn Future<Output = (Engine, Result<Option<Vec<(usize, u32)>>>)> + Send>>;

/// [`Generation`] as a `futures_core::Stream` of tokens
/// ([`Generator::stream`]); every wait is a request future woken by the runtime's
/// completion events, so polling never blocks.
///
/// ```
/// use neuron_rt::Runtime;
/// use neuron_rt::generate::{Bundle, GenerateOptions, Generator};
///
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let mut f = std::pin::pin!(f);
/// #     let waker = std::task::Waker::noop();
/// #     let mut cx = std::task::Context::from_waker(&waker);
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } std::thread::yield_now(); }
/// # }
/// let dir = tempfile::tempdir().unwrap();
/// neuron_rt::sim::decoder::write_bundle(dir.path(), &Default::default()).unwrap();
/// let runtime = Runtime::builder().simulator().build()?;
/// let bundle = Bundle::builder(&runtime).dir(dir.path())?.build()?;
/// let mut stream = Generator::new(&bundle, 0)?.stream(&[72, 105], &GenerateOptions::new(4))?;
/// let mut tokens = Vec::new();
/// while let Some(token) = block_on(std::future::poll_fn(|cx| std::pin::Pin::new(&mut stream).poll_next_token(cx))) {
///     tokens.push(token?);
/// }
/// assert_eq!(tokens.len(), 4);
/// # Ok::<(), neuron_rt::Error>(())
/// ```
pub struct GenerationStream {
    engine: Option<Engine>,
    units: Units,
    step: Option<StepFuture>,
    pending: VecDeque<u32>,
    done: bool,
}

impl GenerationStream {
    /// The tokens generated so far (empty while a step is in flight).
    pub fn tokens(&self) -> &[u32] {
        self.engine
            .as_ref()
            .map_or(&[], |e| e.rows[0].generated.as_slice())
    }

    /// Why it ended (`None` while running or after an error).
    pub fn finish_reason(&self) -> Option<&FinishReason> {
        self.engine.as_ref().and_then(|e| e.finish_reason(0))
    }

    /// The next token, as `Stream::poll_next` (without a `futures` dependency).
    pub fn poll_next_token(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<u32>>> {
        let this = self.get_mut();
        loop {
            if let Some(t) = this.pending.pop_front() {
                return Poll::Ready(Some(Ok(t)));
            }
            if this.done {
                return Poll::Ready(None);
            }
            if let Some(step) = this.step.as_mut() {
                let (engine, result) = match step.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(v) => v,
                };
                this.step = None;
                this.engine = Some(engine);
                match result {
                    Ok(Some(tokens)) => this.pending.extend(tokens.into_iter().map(|(_, t)| t)),
                    Ok(None) => this.done = true,
                    Err(e) => {
                        this.done = true;
                        return Poll::Ready(Some(Err(e)));
                    }
                }
                continue;
            }
            let engine = this
                .engine
                .take()
                .expect("an engine when no step is in flight");
            this.step = Some(Box::pin(step_async(engine, this.units.clone())));
        }
    }
}

impl futures_core::Stream for GenerationStream {
    type Item = Result<u32>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<u32>>> {
        self.poll_next_token(cx)
    }
}

impl fmt::Debug for GenerationStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenerationStream")
            .field("in_flight", &self.step.is_some())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// One call on the units: writes on one TENSOR_OP unit, the execution on COMPUTE
/// (scheduled once the writes completed: units are not ordered with each other), the
/// result read on the other TENSOR_OP unit.
async fn step_async(
    mut engine: Engine,
    units: Units,
) -> (Engine, Result<Option<Vec<(usize, u32)>>>) {
    if engine.done() {
        return (engine, Ok(None));
    }
    let span = engine.step_span();
    let r = match engine.plan() {
        Ok(Some(plan)) => {
            engine.record_plan(&span, &plan);
            let r = spans::instrument(span.clone(), run_async(&mut engine, &plan, &units)).await;
            r.and_then(|output| engine.absorb(&plan, output).map(Some))
        }
        Ok(None) => Ok(None),
        Err(e) => Err(e),
    };
    let r = engine.after_step(&span, r).transpose();
    (engine, r)
}

async fn run_async(engine: &mut Engine, plan: &Plan, units: &Units) -> Result<StepOutput> {
    let (sets, write_seq) = engine.take_sets(plan)?;
    let bundle = engine.bundle.clone();
    let member = &bundle.members()[plan.member];
    let model = member.model(engine.core).expect("the generator's core");
    let (inputs, outputs) = sets;
    for (name, bytes) in writes(member, &inputs, plan, write_seq)? {
        let tensor = inputs.get(name).expect("checked by writes");
        units
            .write
            .write(tensor, 0, bytes)
            .map_err(Rejected::into_error)?
            .await?;
    }
    let (inputs, outputs) = units
        .compute
        .execute(model, inputs, outputs)
        .map_err(Rejected::into_error)?
        .await?;
    let (tensor, info) = result_tensor(member, &outputs, plan.result)?;
    let bytes = units
        .read
        .read(tensor, 0, vec![0u8; info.size])
        .map_err(Rejected::into_error)?
        .await?;
    let output = decode_output(member, info, plan, &bytes)?;
    engine.put_sets(plan, (inputs, outputs));
    Ok(output)
}
