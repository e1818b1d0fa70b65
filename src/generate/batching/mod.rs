//! Continuous batching: a [`Batcher`] runs one scheduler per core of a [`Bundle`], each
//! decode step over the core's B cache slots, sequences joining and leaving at step
//! boundaries, each request a [`TokenStream`].
//!
//! # Policy
//!
//! * A core's decode member of the largest batch B sets its rows: row `r` is cache slot
//!   `r` (`seq_ids`), for B slots. A request is admitted to the least-loaded live core
//!   (sequences running and waiting); each core queues at most
//!   [`BatchingOptions::max_waiting`] beyond its free slots, then
//!   [`BatchError::Overloaded`]: never an unbounded queue.
//! * At each step boundary, cancelled sequences (their stream dropped) leave, waiting
//!   requests take the free slots, then the core runs up to
//!   [`BatchingOptions::prefill_chunks_per_step`] **prefill chunks** (the smallest
//!   prefill member, e.g. 16 tokens at their positions, the cache holding the chunks
//!   before) and **one decode step** over every row that has a token to feed. A long
//!   prompt thus never stalls the running rows for its whole prefill.
//! * With device sampling, a greedy row's last prompt token is fed by its first decode
//!   step (the prefill covers the others): its first token is sampled on the device, and
//!   that step is queued behind the prompt's last chunk without the host waiting for the
//!   chunk, so the row's tokens are one step apart from the first.
//! * Each sequence has its own position, sampling parameters and stop conditions. A step
//!   whose rows are all greedy uses the decode member that samples on the device (its
//!   argmax) when the bundle has one and [`BatchingOptions::device_sampling`] is on.
//! * No step waits for a slow client: each stream buffers up to
//!   [`BatchingOptions::buffer`] items; a row whose buffer is full is paused (its slot
//!   kept) and cancelled with [`BatchError::Stalled`] after
//!   [`BatchingOptions::stall_timeout`] (30 s by default).
//! * A failed execution ends the sequences of that step with its error; a unit that dies
//!   ends every sequence of its core, and the core takes no more (the others go on).
//!
//! ```
//! use neuron_rt::Runtime;
//! use neuron_rt::generate::{Batcher, BatchingOptions, Bundle, GenerateOptions, Generated};
//!
//! let dir = tempfile::tempdir().unwrap();
//! neuron_rt::sim::decoder::write_bundle(dir.path(), &Default::default()).unwrap();
//! let runtime = Runtime::builder().simulator().build()?;
//! let bundle = Bundle::builder(&runtime).dir(dir.path())?.cores([0, 1]).build()?;
//! let batcher = Batcher::new(&bundle, BatchingOptions::default())?;
//!
//! let streams: Vec<_> = ["Hello", "Hi there", "Good morning"]
//!     .iter()
//!     .map(|p| {
//!         let ids: Vec<u32> = p.bytes().map(u32::from).collect();
//!         batcher.submit(&ids, &GenerateOptions::new(8))
//!     })
//!     .collect::<neuron_rt::Result<_>>()?;
//! for stream in streams {
//!     let (tokens, finish) = stream.collect_blocking()?;
//!     assert_eq!(tokens.len(), 8);
//!     assert_eq!(finish.unwrap().completion_tokens, 8);
//! }
//! # Ok::<(), neuron_rt::Error>(())
//! ```

mod core;
mod error;
mod sets;
mod stream;
mod types;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use self::core::{Core, Pending, Plan};
use self::stream::Seq;
use super::bundle::{Bundle, MemberKind, Sampling};
use super::generator::{GenerateOptions, SamplingMode, SlotLease};
use super::sampling::Sampler;
use super::stop::FinishReason;
use crate::error::{Error, Result};

pub use self::error::BatchError;
pub use self::stream::TokenStream;
pub use self::types::{BatchingOptions, Finish, Generated};

/// One core's scheduler, as [`Batcher::metrics`] sees it (`Serialize` with feature
/// `serde`, with these field names).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct CoreBatchMetrics {
    /// The core.
    pub core: u32,
    /// Its cache slots (rows of a decode step).
    pub slots: usize,
    /// Sequences in a slot.
    pub running: usize,
    /// Requests waiting for a slot.
    pub waiting: usize,
    /// Why it serves no more, if its unit died.
    pub dead: Option<String>,
    /// Requests that got a slot, since the start.
    pub admitted: u64,
    /// Sequences that ended normally.
    pub finished: u64,
    /// Sequences cancelled (stream dropped).
    pub cancelled: u64,
    /// Sequences ended by an error (a failed step, a stall, a dead unit).
    pub failed: u64,
    /// Tokens generated.
    pub tokens: u64,
    /// Prefill chunks run.
    pub prefill_chunks: u64,
    /// Decode steps run.
    pub decode_steps: u64,
}

/// Continuous batching over every core of a [`Bundle`] (module docs: the policy).
///
/// Its cores' cache slots are its own from [`new`](Batcher::new) to drop: a
/// [`Generator`](super::Generator) on the same bundle finds them taken. Dropping it
/// ends every running and waiting sequence with [`BatchError::Unavailable`] and joins
/// the cores' threads (at most one step each).
pub struct Batcher {
    cores: Vec<Arc<Core>>,
    threads: Vec<JoinHandle<()>>,
    options: BatchingOptions,
    plan: Plan,
    _leases: Vec<SlotLease>,
}

impl Batcher {
    /// Starts one scheduler thread per core of `bundle`.
    ///
    /// # Errors
    ///
    /// [`BatchError::MissingMember`] without a prefill or a logits decode member;
    /// [`Error::InvalidArgument`] for a buffer below 2; [`BundleError::NoFreeSlot`](super::BundleError::NoFreeSlot)
    /// when a generation holds a slot of a core; the
    /// errors of spawning a thread.
    pub fn new(bundle: &Bundle, options: BatchingOptions) -> Result<Batcher> {
        if options.buffer < 2 {
            return Err(Error::invalid(
                "buffer",
                format!(
                    "a stream must buffer at least 2 items, got {}",
                    options.buffer
                ),
            ));
        }
        let members = || {
            bundle
                .members()
                .iter()
                .map(|m| m.name().to_owned())
                .collect()
        };
        let missing = |needed: &str| -> Error {
            BatchError::MissingMember {
                needed: needed.to_owned(),
                members: members(),
            }
            .into()
        };
        let prefill = bundle
            .members()
            .iter()
            .filter(|m| m.kind() == &MemberKind::Prefill)
            .filter_map(|m| m.bucket().filter(|b| b.batch == 1).map(|b| (b.seq_len, m)))
            .min_by_key(|(len, _)| *len)
            .ok_or_else(|| missing("prefill (batch 1)"))?;
        let decode = |sampling| {
            bundle
                .members()
                .iter()
                .filter(|m| m.kind() == &MemberKind::Decode && m.sampling() == Some(sampling))
                .filter_map(|m| m.bucket().filter(|b| b.seq_len == 1).map(|b| (b.batch, m)))
                .max_by_key(|(batch, _)| *batch)
        };
        let (batch, logits) = decode(Sampling::Logits).ok_or_else(|| missing("decode (logits)"))?;
        let ids = decode(Sampling::Ids)
            .filter(|(b, _)| *b == batch)
            .map(|(_, m)| m.name().to_owned());
        let config = bundle.config().copied().unwrap_or_default();
        let vocab = match config.vocab {
            0 => logits
                .outputs()
                .iter()
                .find(|o| o.name == super::generator::LOGITS_OUTPUT)
                .and_then(|o| o.shape.last().copied())
                .unwrap_or(0),
            v => v,
        };
        let slots = match config.slots {
            0 => batch,
            s => s.min(batch),
        };
        let plan = Plan {
            prefill: prefill.1.name().to_owned(),
            chunk: prefill.0,
            decode_logits: logits.name().to_owned(),
            decode_ids: ids,
            batch,
            vocab,
            ctx: if config.ctx == 0 {
                u32::MAX
            } else {
                config.ctx
            },
        };
        let mut leases = Vec::new();
        let mut cores = Vec::new();
        let mut threads = Vec::new();
        let mut batcher_err = None;
        for &c in bundle.cores() {
            let lease = match SlotLease::take(&bundle.inner.shared, c, slots, slots) {
                Ok(l) => l,
                Err(e) => {
                    batcher_err = Some(e);
                    break;
                }
            };
            let core = Core::new(c, slots as usize);
            let (b, p, ids, o) = (bundle.clone(), plan.clone(), lease.slots(), options);
            let thread_core = Arc::clone(&core);
            let spawned = std::thread::Builder::new()
                .name(format!("neuron-rt-batcher-{c}"))
                .spawn(move || core::run(thread_core, b, p, ids, o));
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    batcher_err = Some(Error::invalid(
                        "threads",
                        format!("cannot start the scheduler thread of core {c}: {e}"),
                    ));
                    break;
                }
            }
            leases.push(lease);
            cores.push(core);
        }
        let batcher = Batcher {
            cores,
            threads,
            options,
            plan,
            _leases: leases,
        };
        match batcher_err {
            Some(e) => Err(e), // dropping `batcher` stops the threads started
            None => Ok(batcher),
        }
    }

    /// Queues a generation after `prompt`; its tokens come through the stream. Takes
    /// `options.stop`, `options.sampling` and `options.mode` (device sampling asks for
    /// greedy parameters; whether a step samples on the device is the batcher's choice,
    /// [`BatchingOptions::device_sampling`]).
    ///
    /// # Errors
    ///
    /// Refused at once, nothing queued: [`BatchError::EmptyPrompt`],
    /// [`BatchError::BadToken`], [`BatchError::TooLong`] (prompt plus `max_new_tokens`
    /// past the context), [`BatchError::BadSampling`], [`BatchError::Overloaded`] (every
    /// live core's queue full: retry later), [`BatchError::Unavailable`] (no live core).
    pub fn submit(&self, prompt: &[u32], options: &GenerateOptions) -> Result<TokenStream> {
        if prompt.is_empty() {
            return Err(BatchError::EmptyPrompt.into());
        }
        let vocab = self.plan.vocab;
        if let Some((index, &id)) = prompt
            .iter()
            .enumerate()
            .find(|(_, id)| vocab > 0 && **id >= vocab)
        {
            return Err(BatchError::BadToken { index, id, vocab }.into());
        }
        let max_new = options.stop.max_new_tokens;
        if u64::from(prompt.len() as u32) + u64::from(max_new) > u64::from(self.plan.ctx) {
            return Err(BatchError::TooLong {
                prompt: prompt.len() as u32,
                max_new_tokens: max_new,
                context: self.plan.ctx,
            }
            .into());
        }
        let bad = |reason: String| -> Error { BatchError::BadSampling { reason }.into() };
        options.sampling.check().map_err(|e| bad(e.to_string()))?;
        if options.mode == SamplingMode::Device && !options.sampling.is_greedy() {
            return Err(bad(format!(
                "device sampling is the argmax: parameters must be greedy, got {:?}",
                options.sampling
            )));
        }
        let sampler = Sampler::new(options.sampling)?;
        // Least loaded first; a full queue sends the request to the next core.
        let mut order: Vec<&Arc<Core>> = self.cores.iter().filter(|c| !c.is_dead()).collect();
        if order.is_empty() {
            let reason = "every core's unit died".to_owned();
            return Err(BatchError::Unavailable { reason }.into());
        }
        order.sort_by_key(|c| c.load.load(Ordering::Acquire));
        if max_new == 0 {
            // Nothing to generate: an ended stream, the scheduler never sees it.
            let seq = Seq::new(kicker(order[0]), self.options.buffer);
            let finish = Finish {
                reason: FinishReason::Length,
                prompt_tokens: prompt.len() as u32,
                completion_tokens: 0,
            };
            seq.push(Ok(Generated::Finished(finish)), true);
            return Ok(TokenStream { seq, done: false });
        }
        let mut last = None;
        let mut pending = Some(Pending {
            seq: Seq::new(kicker(order[0]), self.options.buffer),
            prompt: prompt.to_vec(),
            sampler,
            stop: options.stop.clone(),
        });
        for core in order {
            let mut p = pending.take().expect("given back by a refusal");
            p.seq = Seq::new(kicker(core), self.options.buffer);
            let seq = Arc::clone(&p.seq);
            match core.enqueue(p, self.options.max_waiting) {
                Ok(()) => return Ok(TokenStream { seq, done: false }),
                Err((p, e)) => {
                    pending = Some(p);
                    last = Some(e);
                }
            }
        }
        Err(last.expect("at least one core was tried").into())
    }

    /// A snapshot of every core's scheduler.
    pub fn metrics(&self) -> Vec<CoreBatchMetrics> {
        self.cores
            .iter()
            .map(|c| {
                let s = c.snapshot();
                CoreBatchMetrics {
                    core: c.core,
                    slots: c.slots,
                    running: s.running,
                    waiting: s.waiting,
                    dead: s.dead,
                    admitted: s.counts.admitted,
                    finished: s.counts.finished,
                    cancelled: s.counts.cancelled,
                    failed: s.counts.failed,
                    tokens: s.counts.tokens,
                    prefill_chunks: s.counts.prefill_chunks,
                    decode_steps: s.counts.decode_steps,
                }
            })
            .collect()
    }

    /// Cache slots per core (the decode batch).
    pub fn batch(&self) -> u32 {
        self.plan.batch
    }

    /// The context of each slot (positions).
    pub fn context(&self) -> u32 {
        self.plan.ctx
    }
}

/// Wakes `core`'s thread: what a stream calls when its reader frees room or cancels.
fn kicker(core: &Arc<Core>) -> Arc<dyn Fn() + Send + Sync> {
    let core = Arc::clone(core);
    Arc::new(move || core.kick())
}

impl Drop for Batcher {
    fn drop(&mut self) {
        for c in &self.cores {
            c.shut_down();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field(
                "cores",
                &self.cores.iter().map(|c| c.core).collect::<Vec<_>>(),
            )
            .field("plan", &self.plan)
            .finish_non_exhaustive()
    }
}
