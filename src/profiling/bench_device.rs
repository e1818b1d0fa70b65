//! [`Model::benchmark_device`]: execution times as the NeuronCore saw them, from the
//! system trace's `nc_exec_running` spans (the vendor's Python binding builds its
//! device-side benchmark mode the same way).

use std::time::Duration;

use crate::error::{Error, Result};
use crate::io::run::BenchmarkStats;
use crate::objects::{Capabilities, Model};
use crate::profiling::trace::{SysTraceConfig, TraceEvent};

/// The event type of a NeuronCore's execution span.
pub const NC_EXEC_RUNNING: &str = "nc_exec_running";

/// How [`Model::benchmark_mode`] times executions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchmarkMode {
    /// The host's view: each `execute` call, as [`Model::benchmark`] times it.
    Host,
    /// The device's view: each execution's `nc_exec_running` span in the system trace
    /// ([`Model::benchmark_device`]).
    Device,
}

impl Model {
    /// [`Model::benchmark`] (`Host`) or [`Model::benchmark_device`] (`Device`).
    ///
    /// # Errors
    ///
    /// Those of the chosen mode.
    pub fn benchmark_mode(
        &self,
        mode: BenchmarkMode,
        warmup: u32,
        iterations: u32,
    ) -> Result<BenchmarkStats> {
        match mode {
            BenchmarkMode::Host => self.benchmark(warmup, iterations),
            BenchmarkMode::Device => self.benchmark_device(warmup, iterations),
        }
    }

    /// Executes the model `warmup` times, then `iterations` times, and returns the
    /// statistics of the device time of the timed executions: the duration of each
    /// `nc_exec_running` span the system trace recorded on the model's core. Inputs are
    /// zero-filled, as in [`Model::benchmark`].
    ///
    /// It runs its own [`SysTrace`](crate::SysTrace) (so none may be running) and needs
    /// the model's core to itself meanwhile: executions of other models on that core
    /// would add spans, which is reported as an error rather than mixed in.
    ///
    #[cfg_attr(feature = "sim", doc = "```")]
    #[cfg_attr(not(feature = "sim"), doc = "```ignore")]
    /// use std::time::Duration;
    /// use neuron_rt::Runtime;
    ///
    /// let runtime = Runtime::builder().simulator().build()?;
    /// let neff = neuron_rt::sim::ModelBuilder::add_example(&[4])
    ///     .device_time(Duration::from_micros(500))
    ///     .build()
    ///     .unwrap();
    /// let stats = runtime.load_model(&neff)?.benchmark_device(1, 5)?;
    /// assert_eq!(stats.iterations, 5);
    /// assert_eq!(stats.p50, Duration::from_micros(500)); // the simulator's device time
    /// # Ok::<(), neuron_rt::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for 0 or more than 16,777,216 (2^24) iterations, more
    /// than 2^24 warm-up runs, or while a system trace runs;
    /// [`Error::Unsupported`] without [`Capabilities::SYS_TRACE`];
    /// [`Error::UnexpectedResult`] when the trace does not hold exactly one span with a
    /// duration per timed execution on the model's core; otherwise as
    /// [`Model::allocate_inputs`] and [`Model::execute`].
    pub fn benchmark_device(&self, warmup: u32, iterations: u32) -> Result<BenchmarkStats> {
        // Bounded: the trace keeps room for every event of the warm-up and the run.
        BenchmarkStats::check_count("iterations", iterations, 1)?;
        BenchmarkStats::check_count("warmup", warmup, 0)?;
        self.runtime()
            .require(Capabilities::SYS_TRACE, "nrt_sys_trace_start")?;
        let inputs = self.allocate_inputs()?;
        let mut outputs = self.allocate_outputs()?;
        for (_, tensor) in inputs.iter() {
            tensor.fill(0)?;
        }
        let core = self.core();
        // Room for every event of the run on the model's core, whatever else is recorded.
        let room = (u64::from(warmup) + u64::from(iterations)) * 8 + 1024;
        let trace = self
            .runtime()
            .sys_trace(&SysTraceConfig::new().max_events_per_core(room))?;
        for _ in 0..warmup {
            self.execute(&inputs, &mut outputs)?;
        }
        let fetch = || match core {
            Some(c) => trace.fetch_core(c, None),
            None => trace.fetch(),
        };
        drop(fetch()?);
        for _ in 0..iterations {
            self.execute(&inputs, &mut outputs)?;
        }
        let events = fetch()?;
        trace.stop()?;
        let times = device_times(&events, core);
        if times.len() != iterations as usize {
            return Err(Error::UnexpectedResult {
                function: "nrt_sys_trace_fetch_events",
                reason: format!(
                    "{} {NC_EXEC_RUNNING} spans with a duration on core {} for {iterations} \
                     executions (other executions on the core, or a full ring buffer)",
                    times.len(),
                    core.map_or("(any)".to_owned(), |c| c.to_string()),
                ),
            });
        }
        let stats =
            BenchmarkStats::from_durations(&times).ok_or_else(|| Error::UnexpectedResult {
                function: "nrt_sys_trace_fetch_events",
                reason: "no execution was timed".into(),
            })?;
        log::debug!("model `{}` device benchmark: {stats}", self.label());
        Ok(stats)
    }
}

/// The durations of the `nc_exec_running` spans of `core` (any core for `None`).
fn device_times(events: &[TraceEvent], core: Option<u32>) -> Vec<Duration> {
    events
        .iter()
        .filter(|e| e.event_type == NC_EXEC_RUNNING && (core.is_none() || e.core == core))
        .filter_map(|e| e.duration_ns.map(Duration::from_nanos))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_times_keep_the_core_s_running_spans_with_a_duration() {
        let events = TraceEvent::parse_all(
            r#"[{"type": "nc_exec_running", "lnc_idx": 0, "duration": 10},
                {"type": "nc_exec_running", "lnc_idx": 1, "duration": 20},
                {"type": "nrt_execute", "lnc_idx": 0, "duration": 30},
                {"type": "nc_exec_running", "lnc_idx": 0}]"#,
        )
        .unwrap();
        assert_eq!(device_times(&events, Some(0)), [Duration::from_nanos(10)]);
        assert_eq!(device_times(&events, None).len(), 2);
    }
}
