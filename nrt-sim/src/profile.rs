//! Device profiles: each execution's span on its core, kept for continuous profiling
//! (the latest execution per core, saved on demand) and for an inspect session (every
//! execution, or only failing ones), and the capture files both write (format in
//! README.md, "Profiling captures").

use crate::trace::{Event, clock_ns, event_json};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// Where captures go when no directory is configured (the profiler guide's default).
pub(crate) const DEFAULT_OUTPUT_DIR: &str = "./output";

/// One execution as the device saw it.
#[derive(Clone, Debug)]
pub(crate) struct Exec {
    pub(crate) lnc_idx: u32,
    pub(crate) model: String,
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) status: i32,
}

/// Continuous profiling: the latest execution of each core.
static CONTINUOUS: Mutex<Option<BTreeMap<u32, Exec>>> = Mutex::new(None);

/// An inspect session: where it writes, and what it keeps of executions.
pub(crate) struct InspectRun {
    pub(crate) output_dir: PathBuf,
    pub(crate) session_id: i64,
    /// Activity types captured (`system_profile`, `device_profile`, ...).
    pub(crate) activities: Vec<&'static str>,
    /// Keep every execution (`enable_inspect`).
    pub(crate) all: bool,
    /// Keep failing executions (`enable_inspect_on_fail`).
    pub(crate) on_fail: bool,
    /// Cores turned off.
    pub(crate) off_cores: std::collections::BTreeSet<u32>,
    pub(crate) execs: Vec<Exec>,
}

static INSPECT: Mutex<Option<InspectRun>> = Mutex::new(None);
static ACTIVE: AtomicBool = AtomicBool::new(false);
static FILES: AtomicU64 = AtomicU64::new(0);

fn lock<T>(m: &'static Mutex<T>) -> MutexGuard<'static, T> {
    // Every update is one assignment or push.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn refresh() {
    let any = lock(&CONTINUOUS).is_some() || lock(&INSPECT).is_some();
    ACTIVE.store(any, Ordering::Release);
}

/// Continuous profiling's state (`None`: not running).
pub(crate) fn continuous() -> MutexGuard<'static, Option<BTreeMap<u32, Exec>>> {
    lock(&CONTINUOUS)
}

/// Inspect's state (`None`: no session).
pub(crate) fn inspect() -> MutexGuard<'static, Option<InspectRun>> {
    lock(&INSPECT)
}

/// Starts or stops continuous profiling; `false` if it already was in that state.
pub(crate) fn set_continuous(on: bool) -> bool {
    crate::trace::start_clock();
    let mut c = lock(&CONTINUOUS);
    if c.is_some() == on {
        return false;
    }
    *c = on.then(BTreeMap::new);
    drop(c);
    refresh();
    true
}

/// Starts an inspect session; `false` if one runs.
pub(crate) fn begin_inspect(run: InspectRun) -> bool {
    crate::trace::start_clock();
    let mut i = lock(&INSPECT);
    if i.is_some() {
        return false;
    }
    *i = Some(run);
    drop(i);
    refresh();
    true
}

/// Ends the inspect session and returns it.
pub(crate) fn end_inspect() -> Option<InspectRun> {
    let run = lock(&INSPECT).take();
    refresh();
    run
}

/// Called by every execution when it ends (sync and async).
pub(crate) fn execution(core: u32, model: &str, start: Instant, end: Instant, status: i32) {
    if !ACTIVE.load(Ordering::Acquire) {
        return;
    }
    let exec = Exec {
        lnc_idx: core,
        model: model.to_string(),
        start: clock_ns(start),
        end: clock_ns(end),
        status,
    };
    if let Some(last) = lock(&CONTINUOUS).as_mut() {
        last.insert(core, exec.clone());
    }
    if let Some(run) = lock(&INSPECT).as_mut()
        && !run.off_cores.contains(&core)
        && (run.all || (run.on_fail && status != 0))
    {
        run.execs.push(exec);
    }
}

fn exec_json(out: &mut String, e: &Exec) {
    let _ = write!(
        out,
        "{{\"lnc_idx\":{},\"model\":\"{}\",\"start\":{},\"end\":{},\"duration\":{},\"status\":{}}}",
        e.lnc_idx,
        e.model.replace('\\', "\\\\").replace('"', "\\\""),
        e.start,
        e.end,
        e.end.saturating_sub(e.start),
        e.status
    );
}

/// The text of a capture file: `kind` (`inspect` or `continuous`), the session, the
/// activities captured, system trace events and device profiles.
pub(crate) fn capture_text(
    kind: &str,
    session_id: i64,
    activities: &[&str],
    events: Option<&[Event]>,
    execs: &[Exec],
) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "{{\"format\":\"nrt-sim-capture\",\"version\":1,\"kind\":\"{kind}\",\"session_id\":{session_id},\"pid\":{},\"clock\":\"ns\",\"activities\":[",
        std::process::id()
    );
    for (i, a) in activities.iter().enumerate() {
        let _ = write!(out, "{}\"{a}\"", if i > 0 { "," } else { "" });
    }
    out.push_str("],\"system_trace\":");
    match events {
        Some(events) => {
            out.push('[');
            for (i, e) in events.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                event_json(&mut out, e);
            }
            out.push(']');
        }
        None => out.push_str("null"),
    }
    out.push_str(",\"device_profiles\":[");
    for (i, e) in execs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        exec_json(&mut out, e);
    }
    out.push_str("]}\n");
    out
}

/// Writes `text` to a new file `<dir>/<stem>_<pid>_<n>.json` (creating `dir`).
pub(crate) fn write_capture(dir: &Path, stem: &str, text: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let n = FILES.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("{stem}_{}_{n}.json", std::process::id()));
    std::fs::write(&path, text)?;
    Ok(path)
}
