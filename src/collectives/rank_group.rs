//! [`RankGroup`]: several ranks of one collective group in this process, one model per
//! core, executed all at once (sync on big-stack threads, or scheduled on every rank's
//! COMPUTE unit).

use std::ops::Range;

use crate::collectives::rank_spec::RankSpec;
use crate::error::{Error, Result};
use crate::objects::{Model, Runtime, TensorSet};
use crate::xu::{ExecSets, Rejected, Scheduled};

fn count_error(inputs: usize, outputs: usize, ranks: usize) -> Error {
    Error::invalid(
        "sets",
        format!("{inputs} input and {outputs} output sets for {ranks} ranks: one of each per rank"),
    )
}

/// The ranks `first..first + n` of a collective group of `world` ranks, loaded from one
/// NEFF on cores `start..start + n` of this process (tensor parallelism on one machine).
///
/// Every rank of a group must execute at the same time: each collective waits for all
/// ranks. [`execute`](RankGroup::execute) and [`execute_async`](RankGroup::execute_async)
/// run every rank of the group at once and return one result per rank. If a rank fails
/// or never arrives, the others complete with an error too (libnrt reports a collective
/// that waited past `NEURON_RT_EXEC_TIMEOUT`; the simulator with
/// [`NrtStatus::ExecHwErrCollectives`](crate::NrtStatus::ExecHwErrCollectives)): every
/// rank gets a typed error, none waits forever.
///
#[cfg_attr(feature = "sim", doc = "```")]
#[cfg_attr(not(feature = "sim"), doc = "```ignore")]
/// use neuron_rt::Runtime;
/// use neuron_rt::sim::{DType, ModelBuilder, Op};
///
/// // Every rank contributes x; every rank gets the sum.
/// let neff = ModelBuilder::new("sum")
///     .input("x", DType::F32, &[2])
///     .output("y", DType::F32, &[2])
///     .op(Op::AllReduce { input: "x".into(), out: "y".into() })
///     .build()
///     .unwrap();
/// let runtime = Runtime::builder().simulator().build()?;
/// let group = runtime.load_rank_group(&neff, 0..2, 0, 2)?; // ranks 0 and 1 of 2
/// let mut inputs = group.allocate_inputs()?;
/// let mut outputs = group.allocate_outputs()?;
/// inputs[0].get("x").unwrap().write(&[1.0f32, 2.0])?;
/// inputs[1].get("x").unwrap().write(&[10.0f32, 20.0])?;
/// for result in group.execute(&inputs, &mut outputs) {
///     result?;
/// }
/// let y: Vec<f32> = outputs[1].get("y").unwrap().to_vec()?;
/// assert_eq!(y, [11.0, 22.0]);
/// # Ok::<(), neuron_rt::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct RankGroup {
    models: Vec<Model>,
}

impl Runtime {
    /// Loads `neff` on cores `cores` as ranks `first_rank..first_rank + cores.len()` of
    /// a collective group of `world` ranks (one [`Runtime::load_model_rank`] per core).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for an empty core range, one past the visible cores or
    /// ranks past `world` (checked before anything is loaded); the errors of
    /// [`Runtime::load_model_rank`] (ranks loaded before a failure are unloaded).
    pub fn load_rank_group(
        &self,
        neff: &[u8],
        cores: Range<u32>,
        first_rank: u32,
        world: u32,
    ) -> Result<RankGroup> {
        let n = cores.end.saturating_sub(cores.start);
        if n == 0 {
            return Err(Error::invalid(
                "cores",
                format!("core range {cores:?} is empty: a group needs at least one rank"),
            ));
        }
        let visible = self.visible_core_count()?;
        if cores.end > visible {
            return Err(Error::invalid(
                "cores",
                format!("core range {cores:?} goes past the {visible} visible cores"),
            ));
        }
        if first_rank.checked_add(n).is_none_or(|end| end > world) {
            return Err(Error::invalid(
                "first_rank",
                format!(
                    "ranks {first_rank}..{} (one per core of {cores:?}) do not fit in a world of {world}",
                    first_rank as u64 + n as u64
                ),
            ));
        }
        let models = cores
            .zip(first_rank..)
            .map(|(core, rank)| self.load_model_rank(neff, RankSpec::new(core, rank, world)?))
            .collect::<Result<Vec<_>>>()?;
        Ok(RankGroup { models })
    }
}

impl RankGroup {
    /// The models, one per rank, in rank order.
    pub fn models(&self) -> &[Model] {
        &self.models
    }

    /// The number of ranks in this process.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// Always `false`: a group has at least one rank.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// [`Model::allocate_inputs`] for every rank, in rank order.
    ///
    /// # Errors
    ///
    /// As [`Model::allocate_inputs`].
    pub fn allocate_inputs(&self) -> Result<Vec<TensorSet>> {
        self.models.iter().map(Model::allocate_inputs).collect()
    }

    /// [`Model::allocate_outputs`] for every rank, in rank order.
    ///
    /// # Errors
    ///
    /// As [`Model::allocate_outputs`].
    pub fn allocate_outputs(&self) -> Result<Vec<TensorSet>> {
        self.models.iter().map(Model::allocate_outputs).collect()
    }

    /// Checks every rank's bindings before anything runs: a rank whose sets are wrong
    /// would never reach its collectives, so the others would wait out the timeout.
    /// On failure, one error per set pair given.
    fn check_all(&self, pairs: &[(&TensorSet, &TensorSet)]) -> std::result::Result<(), Vec<Error>> {
        if pairs.len() != self.models.len() {
            let error = || {
                Error::invalid(
                    "sets",
                    format!(
                        "{} pairs of tensor sets for {} ranks: one input and one output set per rank",
                        pairs.len(),
                        self.models.len()
                    ),
                )
            };
            return Err(pairs.iter().map(|_| error()).collect());
        }
        let checks: Vec<Result<()>> = self
            .models
            .iter()
            .zip(pairs)
            .map(|(m, (i, o))| m.check_bindings(i, o))
            .collect();
        let Some(bad) = checks.iter().position(Result::is_err) else {
            return Ok(());
        };
        let rank = self.models[bad].rank().map_or(0, |r| r.rank);
        Err(checks
            .into_iter()
            .map(|c| match c {
                Err(e) => e,
                Ok(()) => Error::invalid(
                    "sets",
                    format!("not started: the tensor sets of rank {rank} failed their checks"),
                ),
            })
            .collect())
    }

    /// Executes every rank at once, each from its own thread (the call itself runs on
    /// a reused helper thread with a [`HELPER_STACK`](crate::HELPER_STACK)-sized stack, as
    /// [`Model::execute`] does for threads with little stack), and waits for all; `inputs[i]` / `outputs[i]` are
    /// rank `i`'s sets. Returns one result per rank, in rank order.
    ///
    /// # Errors
    ///
    /// Per rank: the errors of [`Model::execute`]. If any rank's sets fail their checks
    /// (or there are not one input and one output set per rank), nothing runs and every
    /// rank gets an error: the failing one its own, the others
    /// [`Error::InvalidArgument`] naming it. [`Error::Thread`] for a rank whose thread
    /// could not start (the others then fail in their collectives).
    pub fn execute(&self, inputs: &[TensorSet], outputs: &mut [TensorSet]) -> Vec<Result<()>> {
        let pairs: Vec<_> = inputs.iter().zip(outputs.iter()).collect();
        let counted = if inputs.len() == outputs.len() {
            self.check_all(&pairs)
        } else {
            self.check_all(&[])
        };
        if let Err(errors) = counted {
            // A count mismatch gives one error per rank.
            let n = self.models.len();
            let errors = if errors.len() == n {
                errors
            } else {
                (0..n)
                    .map(|_| count_error(inputs.len(), outputs.len(), n))
                    .collect()
            };
            return errors.into_iter().map(Err).collect();
        }
        std::thread::scope(|s| {
            let handles: Vec<_> = self
                .models
                .iter()
                .zip(inputs)
                .zip(outputs.iter_mut())
                .map(|((model, i), o)| {
                    // A small thread: `Model::execute` moves the call to one of the reused
                    // big-stack helpers (crate::stack), whose stack pages are already
                    // mapped; a fresh big-stack thread per call pays for zeroed pages.
                    std::thread::Builder::new()
                        .name("neuron-rt-rank".into())
                        .spawn_scoped(s, move || model.execute(i, o))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| match h {
                    Ok(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                    Err(error) => Err(Error::Thread {
                        what: "a rank's execution thread",
                        error,
                    }),
                })
                .collect()
        })
    }

    /// Schedules an execution of every rank on its core's COMPUTE unit
    /// ([`ExecUnit::execute`](crate::ExecUnit::execute)), without waiting: one
    /// [`Scheduled`] per rank, in rank order. Await or wait for all of them; the device
    /// runs them together.
    ///
    /// # Errors
    ///
    /// Per rank, in the [`Rejected`]: those of `ExecUnit::execute`, and of
    /// [`Runtime::compute_unit`]. If any rank's sets fail their checks, none is
    /// scheduled and every rank's sets come back with an error as in
    /// [`execute`](RankGroup::execute); for a number of set pairs other than the number
    /// of ranks, every pair comes back with [`Error::InvalidArgument`].
    pub fn schedule(&self, sets: Vec<ExecSets>) -> Vec<Scheduled<ExecSets>> {
        let pairs: Vec<_> = sets.iter().map(|(i, o)| (i, o)).collect();
        if let Err(errors) = self.check_all(&pairs) {
            return errors
                .into_iter()
                .zip(sets)
                .map(|(e, payload)| Err(Rejected::new(e, payload)))
                .collect();
        }
        self.models
            .iter()
            .zip(sets)
            .map(|(model, (i, o))| {
                let core = model.core().unwrap_or_default();
                match model.runtime().compute_unit(core) {
                    Ok(unit) => unit.execute(model, i, o),
                    Err(e) => Err(Rejected::new(e, (i, o))),
                }
            })
            .collect()
    }

    /// [`schedule`](RankGroup::schedule), then waits for every rank: the async flavour
    /// of [`execute`](RankGroup::execute). Returns each rank's sets, or its error.
    ///
    /// # Errors
    ///
    /// Per rank: those of [`schedule`](RankGroup::schedule) and of
    /// [`Request::wait`](crate::Request::wait).
    pub fn execute_async(&self, sets: Vec<ExecSets>) -> Vec<Result<ExecSets>> {
        let scheduled = self.schedule(sets);
        scheduled
            .into_iter()
            .map(|s| match s {
                Ok(request) => request.wait(),
                Err(rejected) => Err(rejected.into_error()),
            })
            .collect()
    }
}
