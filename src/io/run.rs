//! One-call execution with host data ([`Model::run`]) and host-timed benchmarking
//! ([`Model::benchmark`], [`BenchmarkStats`]).

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Input, Output, Outputs};
use crate::error::{Error, MissingInput, Result};
use crate::objects::{Model, TensorInfo, TensorSet};

/// Most input/output set pairs a model keeps for [`Model::run`] between calls.
const POOL_LIMIT: usize = 8;

/// Device sets kept between [`Model::run`] calls, one pair per concurrent caller.
#[derive(Default)]
pub(crate) struct SetPool(Mutex<Vec<(TensorSet, TensorSet)>>);

impl SetPool {
    fn take(&self) -> Option<(TensorSet, TensorSet)> {
        // Pushing and popping cannot leave the Vec inconsistent, so a poisoned lock is fine.
        self.0.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    fn give_back(&self, sets: (TensorSet, TensorSet)) {
        let mut pool = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < POOL_LIMIT {
            pool.push(sets);
        }
    }
}

impl Model {
    /// Runs the model once on host data: writes each named [`Input`] to the model input
    /// of that name, executes, and returns every output with its dtype and shape.
    ///
    /// Inputs may have different element types (`i64` ids next to an `f32` mask); each
    /// is checked against its model input before anything runs. Build the list with
    /// [`inputs!`](crate::inputs) (or `(name, Input::from(..))` pairs); read outputs
    /// as the type you expect with [`Output::as_slice`](crate::Output::as_slice) /
    /// [`to_vec`](crate::Output::to_vec), or as bytes. Device tensor sets are allocated
    /// on the first call and reused by later ones (one pair per concurrent caller).
    ///
    /// ```
    /// use neuron_rt::{Runtime, inputs};
    /// use neuron_rt::sim::ModelBuilder;
    ///
    /// let runtime = Runtime::builder().simulator().build()?;
    /// let neff = ModelBuilder::add_example(&[2, 3]).build().unwrap();
    /// let model = runtime.load_model(&neff)?;
    /// let out = model.run(&inputs!["a" => &[1.0f32; 6], "b" => &[2.0f32; 6]])?;
    /// assert_eq!(out["out"].as_slice::<f32>()?, [3.0; 6]);
    /// assert_eq!(out["out"].shape(), [2, 3]);
    /// # Ok::<(), neuron_rt::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::UnknownTensor`] for a name the model has no input for;
    /// [`Error::DuplicateInput`] for a name given twice; [`Error::MissingInput`] for
    /// a model input not given; [`Error::InputMismatch`] for values that do not match
    /// their input (element type, shape, length: what [`Input::check`] checks), naming
    /// the model, the input, its dtype and shape, and what was given; otherwise as
    /// [`Model::allocate_inputs`] and [`Model::execute`]. Nothing is written or executed
    /// when a check fails.
    ///
    /// ```
    /// use neuron_rt::{Error, GivenInput, Runtime, inputs};
    ///
    /// let runtime = Runtime::builder().simulator().build()?;
    /// let neff = neuron_rt::sim::ModelBuilder::add_example(&[2, 3]).build().unwrap();
    /// let model = runtime.load_model(&neff)?;
    /// let err = model.run(&inputs!["a" => &[1.0f32; 5], "b" => &[2.0f32; 6]]).unwrap_err();
    /// assert!(matches!(&err, Error::InputMismatch(m) if m.given == GivenInput::Elements(5)));
    /// assert_eq!(
    ///     err.to_string(),
    ///     "model `add`: input `a` expects f32 [2, 3] (6 elements), got 5 elements"
    /// );
    /// # Ok::<(), neuron_rt::Error>(())
    /// ```
    pub fn run(&self, inputs: &[(&str, Input<'_>)]) -> Result<Outputs> {
        self.check_inputs(inputs)?;
        let (input_set, mut output_set) = match self.inner.run_sets.take() {
            Some(sets) => sets,
            None => (self.allocate_inputs()?, self.allocate_outputs()?),
        };
        let result = self.run_on(inputs, &input_set, &mut output_set);
        self.inner.run_sets.give_back((input_set, output_set));
        result
    }

    fn run_on(
        &self,
        inputs: &[(&str, Input<'_>)],
        input_set: &TensorSet,
        output_set: &mut TensorSet,
    ) -> Result<Outputs> {
        for (name, input) in inputs {
            input.write_to(bound(input_set, name)?)?;
        }
        self.execute(input_set, output_set)?;
        self.read_outputs(output_set)
    }

    /// Every output of the model read from `outputs` (a set made by
    /// [`Model::allocate_outputs`] or binding every output), in the model's order.
    ///
    /// # Errors
    ///
    /// [`Error::MissingTensor`] for an output not bound in `outputs`; [`Error::Nrt`] if
    /// a read fails.
    pub fn read_outputs(&self, outputs: &TensorSet) -> Result<Outputs> {
        let items = self
            .outputs()
            .iter()
            .map(|info| {
                let tensor = outputs
                    .get(&info.name)
                    .ok_or_else(|| Error::MissingTensor {
                        model: self.label().to_owned(),
                        role: "output",
                        tensor: info.name.clone(),
                    })?;
                Output::read_from(tensor, info)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Outputs::new(items))
    }

    /// Checks `inputs` against the model's inputs, as [`Model::run`] does before it
    /// writes anything: every name is a model input, given once; every model input is
    /// given; each value passes [`Input::check`].
    ///
    /// # Errors
    ///
    /// As [`Model::run`]'s argument checks.
    pub fn check_inputs(&self, inputs: &[(&str, Input<'_>)]) -> Result<()> {
        check_inputs(self.label(), self.inputs(), inputs)
    }

    /// Executes the model `warmup` times untimed, then `iterations` times each timed on
    /// the host, with zero-filled inputs in sets allocated for the purpose.
    ///
    /// The times include the call into libnrt (and, when the calling thread has too
    /// little stack, the helper thread; see [`Model::execute`]), as a user of
    /// `execute` sees them.
    ///
    /// ```
    /// use neuron_rt::Runtime;
    ///
    /// let runtime = Runtime::builder().simulator().build()?;
    /// let neff = neuron_rt::sim::ModelBuilder::add_example(&[2, 3]).build().unwrap();
    /// let stats = runtime.load_model(&neff)?.benchmark(2, 20)?;
    /// assert_eq!(stats.iterations, 20);
    /// println!("{stats}");
    /// # Ok::<(), neuron_rt::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for 0 or more than 16,777,216 (2^24) iterations (each
    /// one's time is kept); otherwise as [`Model::allocate_inputs`] and
    /// [`Model::execute`].
    pub fn benchmark(&self, warmup: u32, iterations: u32) -> Result<BenchmarkStats> {
        BenchmarkStats::check_count("iterations", iterations, 1)?;
        let inputs = self.allocate_inputs()?;
        let mut outputs = self.allocate_outputs()?;
        for (_, tensor) in inputs.iter() {
            tensor.fill(0)?;
        }
        for _ in 0..warmup {
            self.execute(&inputs, &mut outputs)?;
        }
        let mut times = Vec::with_capacity(iterations as usize);
        for _ in 0..iterations {
            let start = Instant::now();
            self.execute(&inputs, &mut outputs)?;
            times.push(start.elapsed());
        }
        let stats =
            BenchmarkStats::from_durations(&times).ok_or_else(|| Error::UnexpectedResult {
                function: "nrt_execute",
                reason: "no execution was timed".into(),
            })?;
        log::debug!("model `{}` benchmark: {stats}", self.label());
        Ok(stats)
    }
}

/// The tensor bound under `name` in a set made by `allocate_inputs` / `allocate_outputs`.
fn bound<'a>(set: &'a TensorSet, name: &str) -> Result<&'a crate::objects::Tensor> {
    set.get(name).ok_or_else(|| Error::UnexpectedResult {
        function: "nrt_add_tensor_to_tensor_set",
        reason: format!("tensor `{name}` is missing from a set made for the model"),
    })
}

/// Statistics of host-timed executions ([`Model::benchmark`]).
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct BenchmarkStats {
    /// Timed executions.
    pub iterations: usize,
    /// Mean time per execution.
    pub mean: Duration,
    /// Fastest execution.
    pub min: Duration,
    /// Slowest execution.
    pub max: Duration,
    /// Median (50th percentile, nearest rank).
    pub p50: Duration,
    /// 99th percentile (nearest rank).
    pub p99: Duration,
    /// Standard deviation (population).
    pub std_dev: Duration,
    /// Executions per second: `iterations` over the summed time.
    pub throughput: f64,
}

/// The most executions one benchmark times (or, on the device, records): every time is
/// kept, then copied for the statistics.
const MAX_BENCHMARK_RUNS: u32 = 1 << 24;

impl BenchmarkStats {
    /// Refuses a count `n` of argument `what` below `min` or above 2^24.
    pub(crate) fn check_count(what: &'static str, n: u32, min: u32) -> Result<()> {
        if (min..=MAX_BENCHMARK_RUNS).contains(&n) {
            return Ok(());
        }
        Err(Error::invalid(
            what,
            format!("must be {min} to {MAX_BENCHMARK_RUNS}, got {n}"),
        ))
    }

    /// The statistics of `times`, or `None` when there are none.
    ///
    /// ```
    /// use std::time::Duration;
    /// use neuron_rt::BenchmarkStats;
    ///
    /// let ms = Duration::from_millis;
    /// let stats = BenchmarkStats::from_durations(&[ms(3), ms(1), ms(2)]).unwrap();
    /// assert_eq!((stats.min, stats.p50, stats.max, stats.mean), (ms(1), ms(2), ms(3), ms(2)));
    /// assert_eq!(stats.throughput, 500.0);
    /// ```
    pub fn from_durations(times: &[Duration]) -> Option<BenchmarkStats> {
        let mut sorted = times.to_vec();
        sorted.sort_unstable();
        let (&min, &max) = (sorted.first()?, sorted.last()?);
        let n = sorted.len();
        let total: Duration = sorted.iter().sum();
        let mean_s = total.as_secs_f64() / n as f64;
        let variance = sorted
            .iter()
            .map(|t| (t.as_secs_f64() - mean_s).powi(2))
            .sum::<f64>()
            / n as f64;
        let rank = |p: f64| sorted[((p / 100.0 * n as f64).ceil() as usize).clamp(1, n) - 1];
        let total_s = total.as_secs_f64();
        Some(BenchmarkStats {
            iterations: n,
            mean: Duration::from_secs_f64(mean_s),
            min,
            max,
            p50: rank(50.0),
            p99: rank(99.0),
            std_dev: Duration::from_secs_f64(variance.sqrt()),
            throughput: if total_s > 0.0 {
                n as f64 / total_s
            } else {
                f64::INFINITY
            },
        })
    }
}

impl fmt::Display for BenchmarkStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} runs: mean {:?}, min {:?}, p50 {:?}, p99 {:?}, max {:?}, std-dev {:?}, {:.1} runs/s",
            self.iterations,
            self.mean,
            self.min,
            self.p50,
            self.p99,
            self.max,
            self.std_dev,
            self.throughput
        )
    }
}

/// [`Model::check_inputs`] for a model described by `label` and its `infos` (also used by
/// [`ModelPool`](crate::ModelPool), which checks before it picks a copy).
pub(crate) fn check_inputs(
    label: &str,
    infos: &[TensorInfo],
    inputs: &[(&str, Input<'_>)],
) -> Result<()> {
    for (i, (name, input)) in inputs.iter().enumerate() {
        let Some(info) = infos.iter().find(|info| info.name == *name) else {
            return Err(Error::UnknownTensor {
                model: label.to_owned(),
                role: "input",
                tensor: (*name).to_owned(),
                known: infos.iter().map(|i| i.name.clone()).collect(),
            });
        };
        if inputs[..i].iter().any(|(earlier, _)| earlier == name) {
            return Err(Error::DuplicateInput {
                model: label.to_owned(),
                input: (*name).to_owned(),
            });
        }
        input.check_for(label, info)?;
    }
    if let Some(missing) = infos
        .iter()
        .find(|info| !inputs.iter().any(|(name, _)| *name == info.name))
    {
        return Err(Error::MissingInput(Box::new(MissingInput {
            model: label.to_owned(),
            input: missing.name.clone(),
            dtype: missing.dtype,
            shape: missing.shape.clone(),
            given: inputs.iter().map(|(name, _)| (*name).to_owned()).collect(),
        })));
    }
    Ok(())
}
