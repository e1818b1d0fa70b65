//! [`SysTrace`]: the runtime's system trace (`nrt_sys_trace_*`), started on creation and
//! stopped on drop, with events parsed leniently from libnrt's JSON.

use std::ffi::CString;
use std::sync::atomic::AtomicBool;

use serde_json::{Map, Value};

use super::Claim;
use crate::error::{Error, Result};
use crate::objects::{Capabilities, Runtime};
use crate::raw;

/// The system trace is process-wide in libnrt: one at a time.
static RUNNING: AtomicBool = AtomicBool::new(false);

/// What a [`SysTrace`] records. The default records every event type on every core
/// with the library's ring buffer size.
#[derive(Clone, Debug, Default)]
pub struct SysTraceConfig {
    max_events_per_core: Option<u64>,
    disabled_cores: Vec<u32>,
    disabled_event_types: Vec<String>,
}

impl SysTraceConfig {
    /// The defaults: everything recorded.
    pub fn new() -> Self {
        Self::default()
    }

    /// Each core's ring buffer holds at most `n` events (older ones are dropped).
    pub fn max_events_per_core(mut self, n: u64) -> Self {
        self.max_events_per_core = Some(n);
        self
    }

    /// Records nothing for `core` (no ring buffer is allocated for it).
    pub fn disable_core(mut self, core: u32) -> Self {
        self.disabled_cores.push(core);
        self
    }

    /// Records no event of `event_type` (a name of [`Runtime::sys_trace_event_types`]).
    pub fn disable_event_type(mut self, event_type: impl Into<String>) -> Self {
        self.disabled_event_types.push(event_type.into());
        self
    }
}

/// One event of the system trace.
///
/// libnrt's JSON layout is not published, so parsing is lenient: the fields below are
/// taken from the names the profiler guide gives (`type`, `name`, `timestamp`,
/// `duration` in ns, `lnc_idx`, `group`, `id`, `parent_id`, `thread_id`; numbers also
/// accepted as numeric strings), a missing or unreadable one is `None`, and every other
/// field is kept in [`TraceEvent::extra`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct TraceEvent {
    /// The event type (`type`, else `name`), e.g. `nc_exec_running`.
    pub event_type: String,
    /// `name`: what the event is about (a model, a tensor) when it has a `type` too.
    pub name: Option<String>,
    /// `timestamp`: start, in nanoseconds on the runtime's clock.
    pub timestamp_ns: Option<u64>,
    /// `duration`, in nanoseconds.
    pub duration_ns: Option<u64>,
    /// `lnc_idx`: the NeuronCore.
    pub core: Option<u32>,
    /// `group`, e.g. `nrt-nc-000`.
    pub group: Option<String>,
    /// `id`.
    pub id: Option<u64>,
    /// `parent_id`: the event this one happened inside.
    pub parent_id: Option<u64>,
    /// `thread_id`.
    pub thread_id: Option<u64>,
    /// Every other field, as libnrt wrote it.
    pub extra: Map<String, Value>,
}

fn number(v: Option<Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn text(v: Option<Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s),
        _ => None,
    }
}

impl TraceEvent {
    /// An event from one JSON object; `None` for anything that is not an object.
    fn from_json(v: Value) -> Option<TraceEvent> {
        let Value::Object(mut m) = v else {
            return None;
        };
        let ty = text(m.remove("type"));
        let name = text(m.remove("name"));
        let (event_type, name) = match (ty, name) {
            (Some(t), n) => (t, n),
            (None, Some(n)) => (n, None),
            (None, None) => (String::new(), None),
        };
        Some(TraceEvent {
            event_type,
            name,
            timestamp_ns: number(m.remove("timestamp")),
            duration_ns: number(m.remove("duration")),
            core: number(m.remove("lnc_idx")).and_then(|c| u32::try_from(c).ok()),
            group: text(m.remove("group")),
            id: number(m.remove("id")),
            parent_id: number(m.remove("parent_id")),
            thread_id: number(m.remove("thread_id")),
            extra: m,
        })
    }

    /// Parses a fetched trace: a JSON array of events, or an object whose `events`
    /// (else its first array-valued field) holds them. Non-object entries are skipped.
    ///
    /// ```
    /// use neuron_rt::TraceEvent;
    ///
    /// let events = TraceEvent::parse_all(
    ///     r#"{"events": [{"type": "nc_exec_running", "lnc_idx": 0, "duration": "1000", "x": 1}]}"#,
    /// )?;
    /// assert_eq!(events[0].event_type, "nc_exec_running");
    /// assert_eq!((events[0].core, events[0].duration_ns), (Some(0), Some(1000)));
    /// assert_eq!(events[0].extra["x"], 1);
    /// # Ok::<(), neuron_rt::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::UnexpectedResult`] when the text is not JSON or holds no event array.
    pub fn parse_all(json: &str) -> Result<Vec<TraceEvent>> {
        let bad = |reason: String| Error::UnexpectedResult {
            function: "nrt_sys_trace_fetch_events",
            reason,
        };
        let value: Value =
            serde_json::from_str(json).map_err(|e| bad(format!("the trace is not JSON: {e}")))?;
        let list = match value {
            Value::Array(a) => a,
            Value::Object(mut m) => match m.remove("events") {
                Some(Value::Array(a)) => a,
                _ => m
                    .into_iter()
                    .find_map(|(_, v)| match v {
                        Value::Array(a) => Some(a),
                        _ => None,
                    })
                    .ok_or_else(|| bad("the trace object holds no event array".into()))?,
            },
            other => return Err(bad(format!("the trace is a JSON {other}, not events"))),
        };
        Ok(list.into_iter().filter_map(TraceEvent::from_json).collect())
    }
}

/// A running system trace (`nrt_sys_trace_start`); stopped (`nrt_sys_trace_stop`) by
/// [`SysTrace::stop`] or on drop. Events accumulate in per-core ring buffers until
/// [`SysTrace::fetch`] takes them out (each event is returned once).
///
/// libnrt keeps one system trace per process, so only one `SysTrace` exists at a time.
/// It holds its runtime open.
///
#[cfg_attr(feature = "sim", doc = "```")]
#[cfg_attr(not(feature = "sim"), doc = "```ignore")]
/// use neuron_rt::{Runtime, SysTraceConfig};
///
/// let runtime = Runtime::builder().simulator().build()?;
/// let neff = neuron_rt::sim::ModelBuilder::add_example(&[4]).build().unwrap();
/// let model = runtime.load_model(&neff)?;
/// let trace = runtime.sys_trace(&SysTraceConfig::new())?;
/// model.benchmark(0, 3)?;
/// let events = trace.fetch()?;
/// assert_eq!(events.iter().filter(|e| e.event_type == "nc_exec_running").count(), 3);
/// trace.stop()?;
/// # Ok::<(), neuron_rt::Error>(())
/// ```
#[derive(Debug)]
pub struct SysTrace {
    runtime: Runtime,
    claim: Claim,
}

impl Runtime {
    /// Starts the system trace with `config`.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] without [`Capabilities::SYS_TRACE`];
    /// [`Error::InvalidArgument`] while another `SysTrace` runs, or for an event type
    /// name with a NUL byte; [`Error::Nrt`] when libnrt refuses (e.g. an unknown event
    /// type name).
    pub fn sys_trace(&self, config: &SysTraceConfig) -> Result<SysTrace> {
        self.require(Capabilities::SYS_TRACE, "nrt_sys_trace_start")?;
        let lib = self.inner.lib();
        raw::trace::can_trace(lib)?;
        let types = config
            .disabled_event_types
            .iter()
            .map(|t| {
                CString::new(t.as_str())
                    .map_err(|_| Error::invalid("event_type", format!("{t:?} contains a NUL byte")))
            })
            .collect::<Result<Vec<_>>>()?;
        let capture = raw::trace::Capture {
            max_events_per_nc: config.max_events_per_core,
            disabled_cores: &config.disabled_cores,
            disabled_types: &types,
        };
        let claim = Claim::start(
            &RUNNING,
            "sys_trace",
            "a system trace is already running in this process (libnrt has one)",
            || raw::trace::start(lib, &capture),
        )?;
        Ok(SysTrace {
            runtime: self.clone(),
            claim,
        })
    }

    /// Every event type name the library records (`nrt_sys_trace_get_event_types`).
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] for a library without it; [`Error::Nrt`] if it fails.
    pub fn sys_trace_event_types(&self) -> Result<Vec<String>> {
        raw::trace::event_types(self.inner.lib())
    }
}

impl SysTrace {
    /// Takes every recorded event out of the ring buffers, parsed (see [`TraceEvent`]).
    ///
    /// # Errors
    ///
    /// [`Error::Nrt`] if the fetch fails; [`Error::UnexpectedResult`] for text that is
    /// not a JSON event list.
    pub fn fetch(&self) -> Result<Vec<TraceEvent>> {
        TraceEvent::parse_all(&self.fetch_json(None, None)?)
    }

    /// Takes at most `max_events` (`None`: all) of core `core`'s recorded events.
    ///
    /// # Errors
    ///
    /// As [`SysTrace::fetch`].
    pub fn fetch_core(&self, core: u32, max_events: Option<u64>) -> Result<Vec<TraceEvent>> {
        TraceEvent::parse_all(&self.fetch_json(Some(core), max_events)?)
    }

    /// The fetched text as libnrt returned it (one core or all; at most `max_events`
    /// per core).
    ///
    /// # Errors
    ///
    /// [`Error::Nrt`] if the fetch fails.
    pub fn fetch_json(&self, core: Option<u32>, max_events: Option<u64>) -> Result<String> {
        raw::trace::fetch(self.runtime.inner.lib(), core, max_events)
    }

    /// Stops the trace (`nrt_sys_trace_stop`); events not fetched are gone.
    ///
    /// # Errors
    ///
    /// [`Error::Nrt`] if libnrt reports a failure (the trace counts as stopped anyway).
    pub fn stop(mut self) -> Result<()> {
        self.stop_once()
    }

    fn stop_once(&mut self) -> Result<()> {
        let lib = self.runtime.inner.lib();
        self.claim.stop(|| raw::trace::stop(lib))
    }
}

impl Drop for SysTrace {
    fn drop(&mut self) {
        if let Err(e) = self.stop_once() {
            log::warn!("stopping the system trace: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_parse_takes_arrays_objects_strings_and_keeps_unknown_fields() {
        let events = TraceEvent::parse_all(
            r#"[{"name": "nc_exec_running", "timestamp": 5, "lnc_idx": "2", "extra": [1]}, 7,
                {"type": "nrt_execute", "name": "model", "duration": 1.5e3, "parent_id": null}]"#,
        )
        .unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event_type, "nc_exec_running");
        assert_eq!((events[0].timestamp_ns, events[0].core), (Some(5), Some(2)));
        assert_eq!(events[0].extra["extra"], serde_json::json!([1]));
        assert_eq!(events[1].name.as_deref(), Some("model"));
        assert_eq!(
            (events[1].duration_ns, events[1].parent_id),
            (Some(1500), None)
        );
        let nested = TraceEvent::parse_all(r#"{"meta": 1, "list": [{"type": "x"}]}"#).unwrap();
        assert_eq!(nested[0].event_type, "x");
        assert!(matches!(
            TraceEvent::parse_all("not json"),
            Err(Error::UnexpectedResult { .. })
        ));
        assert!(TraceEvent::parse_all(r#"{"a": 1}"#).is_err());
    }
}
