//! The system trace: events of the simulated runtime kept in per-core ring buffers
//! (`nrt_sys_trace_*`, and inspect's capture, which records the same events into its own
//! buffers), written out as JSON (schema in README.md, "System trace").
//!
//! Every timestamp is on the simulator's clock: nanoseconds since the clock's epoch (the
//! first use of the trace or profiling API in the process). Host events (`nrt_execute`,
//! ...) and device events (`nc_exec_running`) share that clock; a device span is the
//! execution's simulated device time (from when the core starts it to when the device is
//! done), not the host thread's.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Instant;

/// Every event type name, as `nrt_sys_trace_get_event_types` lists them (the names of
/// the profiler guide). The simulator emits `nrt_load`, `nrt_execute`,
/// `nrt_tensor_read`, `nrt_tensor_write` and `nc_exec_running`; the others are accepted
/// in the configuration and never occur.
pub(crate) const EVENT_TYPES: &[&str] = &[
    "nrt_load",
    "nrt_execute",
    "nrt_tensor_write",
    "nrt_tensor_read",
    "model_load",
    "device_exec",
    "nc_exec_running",
    "cc_running",
    "cc_exec_barrier",
    "numerical_err",
    "nrt_model_switch",
    "timestamp_sync_point",
    "hw_notify",
];

/// Ring buffer capacity per core when the configuration does not set one.
pub(crate) const DEFAULT_MAX_EVENTS_PER_NC: u64 = 65_536;

/// The canonical name of an event type, if `name` is one.
pub(crate) fn event_type(name: &[u8]) -> Option<&'static str> {
    EVENT_TYPES.iter().copied().find(|t| t.as_bytes() == name)
}

/// What a capture records: per-core capacity, and the cores and types turned off.
#[derive(Clone, Debug)]
pub(crate) struct Capture {
    pub(crate) max_events_per_nc: u64,
    pub(crate) off_cores: BTreeSet<u32>,
    pub(crate) off_types: BTreeSet<&'static str>,
}

impl Default for Capture {
    fn default() -> Self {
        Capture {
            max_events_per_nc: DEFAULT_MAX_EVENTS_PER_NC,
            off_cores: BTreeSet::new(),
            off_types: BTreeSet::new(),
        }
    }
}

impl Capture {
    /// The enabled event types, in [`EVENT_TYPES`] order.
    pub(crate) fn enabled_types(&self) -> Vec<&'static str> {
        EVENT_TYPES
            .iter()
            .copied()
            .filter(|t| !self.off_types.contains(t))
            .collect()
    }

    fn wants(&self, e: &Event) -> bool {
        !self.off_types.contains(e.ty) && e.lnc_idx.is_none_or(|c| !self.off_cores.contains(&c))
    }
}

/// One recorded event.
#[derive(Clone, Debug)]
pub(crate) struct Event {
    pub(crate) id: u64,
    pub(crate) parent_id: Option<u64>,
    pub(crate) ty: &'static str,
    pub(crate) name: String,
    pub(crate) timestamp: u64,
    pub(crate) duration: u64,
    /// The core; `None` for host-memory tensors (no core).
    pub(crate) lnc_idx: Option<u32>,
    pub(crate) thread_id: u64,
    pub(crate) status: i32,
    pub(crate) bytes: Option<u64>,
}

/// Ring buffers of one capture: one per core, and one for events of no core.
pub(crate) struct Recorder {
    pub(crate) capture: Capture,
    rings: BTreeMap<Option<u32>, VecDeque<Event>>,
    pub(crate) dropped: u64,
}

impl Recorder {
    pub(crate) fn new(capture: Capture) -> Self {
        Recorder {
            capture,
            rings: BTreeMap::new(),
            dropped: 0,
        }
    }

    fn push(&mut self, e: &Event) {
        if !self.capture.wants(e) || self.capture.max_events_per_nc == 0 {
            return;
        }
        let ring = self.rings.entry(e.lnc_idx).or_default();
        if ring.len() as u64 >= self.capture.max_events_per_nc {
            ring.pop_front();
            self.dropped += 1;
        }
        ring.push_back(e.clone());
    }

    /// Takes (removes) up to `max_per_nc` events (0: all) of each ring, oldest first:
    /// of core `core` only, or of every core and the no-core ring.
    pub(crate) fn take(&mut self, core: Option<u32>, max_per_nc: u64) -> Vec<Event> {
        let mut out = Vec::new();
        for (key, ring) in self.rings.iter_mut() {
            if core.is_some() && *key != core {
                continue;
            }
            let n = if max_per_nc == 0 {
                ring.len()
            } else {
                ring.len().min(max_per_nc as usize)
            };
            out.extend(ring.drain(..n));
        }
        out.sort_by_key(|e| (e.timestamp, e.id));
        out
    }
}

/// Where events go: the system trace's recorder and inspect's.
static SYS_TRACE: Mutex<Option<Recorder>> = Mutex::new(None);
static INSPECT: Mutex<Option<Recorder>> = Mutex::new(None);
/// Whether either recorder exists (the fast path of every hook).
static ACTIVE: AtomicBool = AtomicBool::new(false);
static NEXT_EVENT: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The host span this thread is inside (parent of the events it records).
    static PARENT: Cell<Option<u64>> = const { Cell::new(None) };
}

fn lock(m: &'static Mutex<Option<Recorder>>) -> MutexGuard<'static, Option<Recorder>> {
    // Pushes and drains leave the rings consistent at every step.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn refresh_active() {
    let any = lock(&SYS_TRACE).is_some() || lock(&INSPECT).is_some();
    ACTIVE.store(any, Ordering::Release);
}

/// The system trace recorder (`nrt_sys_trace_*`).
pub(crate) fn sys_trace() -> MutexGuard<'static, Option<Recorder>> {
    lock(&SYS_TRACE)
}

fn slot(inspect: bool) -> &'static Mutex<Option<Recorder>> {
    if inspect { &INSPECT } else { &SYS_TRACE }
}

/// Installs a recorder (inspect's or the system trace's); `false` if one is there.
pub(crate) fn install(inspect: bool, recorder: Recorder) -> bool {
    epoch();
    let mut s = lock(slot(inspect));
    if s.is_some() {
        return false;
    }
    *s = Some(recorder);
    drop(s);
    refresh_active();
    true
}

/// Removes and returns a recorder.
pub(crate) fn remove(inspect: bool) -> Option<Recorder> {
    let old = lock(slot(inspect)).take();
    refresh_active();
    old
}

/// Starts the simulator's clock if it has not started (before anything is recorded,
/// so that every recorded time is after its epoch).
pub(crate) fn start_clock() {
    epoch();
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// `t` on the simulator's clock (ns since its epoch; 0 before it).
pub(crate) fn clock_ns(t: Instant) -> u64 {
    t.saturating_duration_since(epoch())
        .as_nanos()
        .min(u64::MAX as u128) as u64
}

fn thread_id() -> u64 {
    // SAFETY: gettid has no preconditions.
    (unsafe { libc::gettid() }) as u64
}

fn record(e: Event) {
    for m in [&SYS_TRACE, &INSPECT] {
        if let Some(r) = lock(m).as_mut() {
            r.push(&e);
        }
    }
}

/// A host call being timed (`nrt_execute`, `nrt_load`, tensor reads and writes): the
/// parent of the events recorded on this thread until it ends.
pub(crate) struct Span {
    id: u64,
    ty: &'static str,
    start: Instant,
    outer: Option<u64>,
}

impl Span {
    /// Starts timing a call of type `ty` (cheap when nothing records).
    pub(crate) fn begin(ty: &'static str) -> Option<Span> {
        if !ACTIVE.load(Ordering::Acquire) {
            return None;
        }
        let id = NEXT_EVENT.fetch_add(1, Ordering::Relaxed);
        let outer = PARENT.with(|p| p.replace(Some(id)));
        Some(Span {
            id,
            ty,
            start: Instant::now(),
            outer,
        })
    }

    /// Records the call: on core `lnc_idx`, about `name`, ending with `status`.
    pub(crate) fn end(self, lnc_idx: Option<u32>, name: &str, status: i32, bytes: Option<u64>) {
        PARENT.with(|p| p.set(self.outer));
        let end = Instant::now();
        record(Event {
            id: self.id,
            parent_id: self.outer,
            ty: self.ty,
            name: name.to_string(),
            timestamp: clock_ns(self.start),
            duration: clock_ns(end).saturating_sub(clock_ns(self.start)),
            lnc_idx,
            thread_id: thread_id(),
            status,
            bytes,
        });
    }
}

/// Records a span of device time on core `core` (`nc_exec_running`), child of this
/// thread's host span if any.
pub(crate) fn device_span(core: u32, name: &str, start: Instant, end: Instant, status: i32) {
    if !ACTIVE.load(Ordering::Acquire) {
        return;
    }
    let (s, e) = (clock_ns(start), clock_ns(end));
    record(Event {
        id: NEXT_EVENT.fetch_add(1, Ordering::Relaxed),
        parent_id: PARENT.with(|p| p.get()),
        ty: "nc_exec_running",
        name: name.to_string(),
        timestamp: s,
        duration: e.saturating_sub(s),
        lnc_idx: Some(core),
        thread_id: thread_id(),
        status,
        bytes: None,
    });
}

fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// One event as a JSON object (field names of nrt-abi.md section 7).
pub(crate) fn event_json(out: &mut String, e: &Event) {
    let _ = write!(out, "{{\"id\":{},\"parent_id\":", e.id);
    match e.parent_id {
        Some(p) => {
            let _ = write!(out, "{p}");
        }
        None => out.push_str("null"),
    }
    out.push_str(",\"type\":");
    json_str(out, e.ty);
    out.push_str(",\"name\":");
    json_str(out, &e.name);
    let _ = write!(
        out,
        ",\"timestamp\":{},\"duration\":{},\"lnc_idx\":",
        e.timestamp, e.duration
    );
    match e.lnc_idx {
        Some(c) => {
            let _ = write!(out, "{c},\"group\":\"nrt-nc-{c:03}\"");
        }
        None => out.push_str("null,\"group\":\"nrt-host\""),
    }
    let _ = write!(
        out,
        ",\"thread_id\":{},\"status\":{}",
        e.thread_id, e.status
    );
    if let Some(b) = e.bytes {
        let _ = write!(out, ",\"bytes\":{b}");
    }
    out.push('}');
}

/// The JSON document `nrt_sys_trace_fetch_events` returns.
pub(crate) fn document(events: &[Event], dropped: u64) -> String {
    let mut out = String::with_capacity(64 + events.len() * 200);
    let _ = write!(
        out,
        "{{\"format\":\"nrt-sim-sys-trace\",\"version\":1,\"clock\":\"ns\",\"dropped\":{dropped},\"events\":["
    );
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        event_json(&mut out, e);
    }
    out.push_str("]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: u64, core: Option<u32>, ty: &'static str) -> Event {
        Event {
            id,
            parent_id: None,
            ty,
            name: "m\"x".into(),
            timestamp: id * 10,
            duration: 5,
            lnc_idx: core,
            thread_id: 1,
            status: 0,
            bytes: None,
        }
    }

    #[test]
    fn rings_keep_the_newest_events_per_core_and_drain_once() {
        let mut r = Recorder::new(Capture {
            max_events_per_nc: 2,
            ..Capture::default()
        });
        for i in 1..=3 {
            r.push(&ev(i, Some(0), "nrt_execute"));
        }
        r.push(&ev(4, Some(1), "nrt_execute"));
        assert_eq!(r.dropped, 1);
        let ids: Vec<u64> = r.take(Some(0), 0).iter().map(|e| e.id).collect();
        assert_eq!(ids, [2, 3]);
        assert!(r.take(Some(0), 0).is_empty());
        assert_eq!(r.take(None, 0).len(), 1);
    }

    #[test]
    fn disabled_types_and_cores_are_not_recorded() {
        let mut c = Capture::default();
        c.off_types.insert("nrt_execute");
        c.off_cores.insert(1);
        let mut r = Recorder::new(c);
        r.push(&ev(1, Some(0), "nrt_execute"));
        r.push(&ev(2, Some(1), "nc_exec_running"));
        r.push(&ev(3, Some(0), "nc_exec_running"));
        let ids: Vec<u64> = r.take(None, 0).iter().map(|e| e.id).collect();
        assert_eq!(ids, [3]);
    }

    #[test]
    fn json_escapes_names() {
        let doc = document(&[ev(1, Some(2), "nc_exec_running")], 0);
        assert!(doc.contains(r#""name":"m\"x""#), "{doc}");
        assert!(doc.contains(r#""group":"nrt-nc-002""#), "{doc}");
    }
}
