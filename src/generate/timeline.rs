//! [`Timeline`]: a core's executions on the device, from the system trace: when each
//! started and ended, the idle gaps between consecutive ones, and their medians.
//!
//! It reads the `nc_exec_running` events ([`NC_EXEC_RUNNING`]) of a [`SysTrace`]
//! fetch (libnrt's `nrt_sys_trace_fetch_events`): on hardware, the NeuronCore's
//! execution start/stop spans of the "hardware" event group (`timestamp`: start, in
//! ns; `duration`: ns; `lnc_idx`: the core; `name`: the model, when the library gives
//! one); on the simulator, the same events on the simulator's device timeline (an
//! execution starts at `max(previous end, queued + launch cost)` and lasts its
//! device time). Events without a start or a duration are skipped; nothing else of
//! the trace is read. The span's `name` is kept so a timeline can be narrowed to some
//! models ([`Timeline::only`]); libnrt's exact event layout is not published, so a
//! trace without names gives an unnamed timeline, and [`Timeline::steps`] then
//! groups by count only.
//!
//! [`SysTrace`]: crate::SysTrace

use std::time::Duration;

use crate::profiling::bench_device::NC_EXEC_RUNNING;
use crate::profiling::trace::TraceEvent;

/// One execution on a core's device timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecSpan {
    /// The model's name, when the trace gives one.
    pub name: Option<String>,
    /// Start on the device, in the trace's nanoseconds.
    pub start_ns: u64,
    /// End on the device (start + duration), in the trace's nanoseconds.
    pub end_ns: u64,
}

impl ExecSpan {
    /// How long the device ran it.
    pub fn duration(&self) -> Duration {
        Duration::from_nanos(self.end_ns.saturating_sub(self.start_ns))
    }
}

/// The executions of one core, ordered by start, from a system trace.
///
/// ```
/// use neuron_rt::generate::Timeline;
/// use neuron_rt::{Runtime, SysTraceConfig};
///
/// let runtime = Runtime::builder().simulator().build()?;
/// let neff = neuron_rt::sim::ModelBuilder::add_example(&[4])
///     .device_time(std::time::Duration::from_micros(200))
///     .build()
///     .unwrap();
/// let model = runtime.load_model(&neff)?;
/// let trace = runtime.sys_trace(&SysTraceConfig::new())?;
/// model.benchmark(0, 3)?;
/// let timeline = Timeline::from_events(&trace.fetch()?, model.core().unwrap_or(0));
/// trace.stop()?;
/// assert_eq!(timeline.spans().len(), 3);
/// assert_eq!(timeline.gaps().len(), 2);
/// assert_eq!(timeline.exec_p50(), Some(std::time::Duration::from_micros(200)));
/// # Ok::<(), neuron_rt::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Timeline {
    spans: Vec<ExecSpan>,
}

impl Timeline {
    /// The `nc_exec_running` spans of `core` among `events`, ordered by start.
    pub fn from_events(events: &[TraceEvent], core: u32) -> Timeline {
        let mut spans: Vec<ExecSpan> = events
            .iter()
            .filter(|e| e.event_type == NC_EXEC_RUNNING && e.core == Some(core))
            .filter_map(|e| {
                let start = e.timestamp_ns?;
                Some(ExecSpan {
                    name: e.name.clone(),
                    start_ns: start,
                    end_ns: start.saturating_add(e.duration_ns?),
                })
            })
            .collect();
        spans.sort_by_key(|s| (s.start_ns, s.end_ns));
        Timeline { spans }
    }

    /// Only the executions whose model name satisfies `keep` (unnamed ones are
    /// dropped), e.g. the decode steps without the prefill.
    pub fn only(&self, keep: impl Fn(&str) -> bool) -> Timeline {
        Timeline {
            spans: self
                .spans
                .iter()
                .filter(|s| s.name.as_deref().is_some_and(&keep))
                .cloned()
                .collect(),
        }
    }

    /// The executions, ordered by start.
    pub fn spans(&self) -> &[ExecSpan] {
        &self.spans
    }

    /// The device's idle time between each execution and the next (zero when the next
    /// started the moment the previous one ended, or overlapped it).
    pub fn gaps(&self) -> Vec<Duration> {
        self.spans
            .windows(2)
            .map(|w| Duration::from_nanos(w[1].start_ns.saturating_sub(w[0].end_ns)))
            .collect()
    }

    /// The median of [`gaps`](Timeline::gaps) (`None` with fewer than two executions).
    pub fn gap_p50(&self) -> Option<Duration> {
        p50(self.gaps())
    }

    /// The median execution time (`None` without executions).
    pub fn exec_p50(&self) -> Option<Duration> {
        p50(self.spans.iter().map(ExecSpan::duration).collect())
    }

    /// Device time per step when a step is several executions (a chain of `members`):
    /// the sum of the durations of each run of `members` consecutive executions, in
    /// order (an incomplete last run is dropped). `members` 0 gives nothing.
    pub fn steps(&self, members: usize) -> Vec<Duration> {
        if members == 0 {
            return Vec::new();
        }
        self.spans
            .chunks_exact(members)
            .map(|step| step.iter().map(ExecSpan::duration).sum())
            .collect()
    }

    /// The median of [`steps`](Timeline::steps).
    pub fn step_p50(&self, members: usize) -> Option<Duration> {
        p50(self.steps(members))
    }
}

/// The median of `values` (the lower one of the middle two for an even count);
/// `None` when empty.
///
/// ```
/// use std::time::Duration;
/// let ms = Duration::from_millis;
/// assert_eq!(neuron_rt::generate::p50(vec![ms(3), ms(1), ms(2), ms(9)]), Some(ms(2)));
/// assert_eq!(neuron_rt::generate::p50(vec![]), None);
/// ```
pub fn p50(mut values: Vec<Duration>) -> Option<Duration> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    Some(values[(values.len() - 1) / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(name: &str, start: u64, duration: u64, core: u32) -> TraceEvent {
        TraceEvent::parse_all(&format!(
            r#"[{{"type": "nc_exec_running", "name": "{name}", "timestamp": {start}, "duration": {duration}, "lnc_idx": {core}}}]"#
        ))
        .unwrap()
        .remove(0)
    }

    #[test]
    fn gaps_and_steps_come_from_one_core_s_spans_in_start_order() {
        let events = vec![
            span("b", 1_100, 300, 0),
            span("a", 0, 1_000, 0),
            span("x", 50, 10, 1),
            span("a", 1_400, 1_000, 0),
            span("b", 2_450, 300, 0),
        ];
        let t = Timeline::from_events(&events, 0);
        let names: Vec<_> = t.spans().iter().map(|s| s.name.as_deref()).collect();
        assert_eq!(names, [Some("a"), Some("b"), Some("a"), Some("b")]);
        let ns = Duration::from_nanos;
        assert_eq!(t.gaps(), [ns(100), ns(0), ns(50)]);
        assert_eq!(t.gap_p50(), Some(ns(50)));
        assert_eq!(t.steps(2), [ns(1_300), ns(1_300)]);
        assert_eq!(t.steps(3), [ns(2_300)]);
        assert_eq!(t.only(|n| n == "a").exec_p50(), Some(ns(1_000)));
        assert_eq!(t.only(|n| n == "a").gap_p50(), Some(ns(400)));
        assert!(Timeline::from_events(&events, 2).spans().is_empty());
        assert_eq!(Timeline::default().gap_p50(), None);
    }
}
