//! Inspect (profiler 2.0) sessions and continuous device profiling, next to
//! [`ProfileGuard`](crate::ProfileGuard): [`InspectSession`] (`nrt_inspect_*`) and
//! [`ContinuousProfiler`] (`nrt_profile_continuous_*`), both stopped on drop.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use super::Claim;
use crate::error::{Error, Result};
use crate::objects::{Capabilities, Runtime};
use crate::raw;

/// libnrt has one inspect session and one continuous profile per process.
static INSPECTING: AtomicBool = AtomicBool::new(false);
static CONTINUOUS: AtomicBool = AtomicBool::new(false);

fn c_text(what: &'static str, text: &str) -> Result<CString> {
    CString::new(text).map_err(|_| Error::invalid(what, format!("{text:?} contains a NUL byte")))
}

fn c_path(path: &Path) -> Result<CString> {
    let text = path
        .to_str()
        .ok_or_else(|| Error::invalid("output_dir", format!("{path:?} is not valid UTF-8")))?;
    if text.is_empty() {
        return Err(Error::invalid(
            "output_dir",
            "the output directory is empty",
        ));
    }
    c_text("output_dir", text)
}

/// What an [`InspectSession`] captures and where it writes.
#[derive(Clone, Debug)]
pub struct InspectConfig {
    output_dir: PathBuf,
    session_id: Option<i32>,
    activities: Option<Vec<String>>,
    capture_all: bool,
    capture_failures: bool,
    max_events_per_core: Option<u64>,
    disabled_cores: Vec<u32>,
    disabled_event_types: Vec<String>,
}

impl InspectConfig {
    /// Captures every execution (system and device profiles) into `output_dir`.
    pub fn new(output_dir: impl Into<PathBuf>) -> Self {
        InspectConfig {
            output_dir: output_dir.into(),
            session_id: None,
            activities: None,
            capture_all: true,
            capture_failures: false,
            max_events_per_core: None,
            disabled_cores: Vec::new(),
            disabled_event_types: Vec::new(),
        }
    }

    /// Groups the capture under this session id (libnrt's default: 1).
    pub fn session_id(mut self, id: i32) -> Self {
        self.session_id = Some(id);
        self
    }

    /// Captures exactly these activity types (e.g. `system_profile`, `device_profile`;
    /// [`Runtime::inspect_activity_types`] lists them); default: all.
    pub fn activities<S: Into<String>>(mut self, activities: impl IntoIterator<Item = S>) -> Self {
        self.activities = Some(activities.into_iter().map(Into::into).collect());
        self
    }

    /// Whether every execution is captured (default `true`).
    pub fn capture_all(mut self, on: bool) -> Self {
        self.capture_all = on;
        self
    }

    /// Whether failing executions' device profiles are captured (default `false`).
    pub fn capture_failures(mut self, on: bool) -> Self {
        self.capture_failures = on;
        self
    }

    /// The system trace's ring buffer size per core, in events.
    pub fn max_events_per_core(mut self, n: u64) -> Self {
        self.max_events_per_core = Some(n);
        self
    }

    /// Captures nothing on `core`.
    pub fn disable_core(mut self, core: u32) -> Self {
        self.disabled_cores.push(core);
        self
    }

    /// Records no system trace event of `event_type`.
    pub fn disable_event_type(mut self, event_type: impl Into<String>) -> Self {
        self.disabled_event_types.push(event_type.into());
        self
    }
}

/// A running inspect session (`nrt_inspect_begin_with_options`); its capture is
/// written into the output directory by [`InspectSession::stop`] or on drop
/// (`nrt_inspect_stop`). One per process; it holds its runtime open.
///
#[cfg_attr(feature = "sim", doc = "```")]
#[cfg_attr(not(feature = "sim"), doc = "```ignore")]
/// use neuron_rt::{InspectConfig, Runtime};
///
/// let dir = std::env::temp_dir().join(format!("inspect-doc-{}", std::process::id()));
/// let runtime = Runtime::builder().simulator().build()?;
/// let neff = neuron_rt::sim::ModelBuilder::add_example(&[4]).build().unwrap();
/// let model = runtime.load_model(&neff)?;
/// let session = runtime.inspect(&InspectConfig::new(&dir).session_id(2))?;
/// model.benchmark(0, 2)?;
/// session.stop()?; // the simulator writes dir/session_2/nrt_sim_inspect_*.json
/// assert_eq!(std::fs::read_dir(dir.join("session_2")).unwrap().count(), 1);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), neuron_rt::Error>(())
/// ```
#[derive(Debug)]
pub struct InspectSession {
    runtime: Runtime,
    output_dir: PathBuf,
    claim: Claim,
}

impl Runtime {
    /// Begins an inspect session with `config`.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] without [`Capabilities::INSPECT`]; [`Error::InvalidArgument`]
    /// while another session runs, for an empty or non-UTF-8 directory, or a text with a
    /// NUL byte; [`Error::Nrt`] when libnrt refuses an option or the start.
    pub fn inspect(&self, config: &InspectConfig) -> Result<InspectSession> {
        self.require(Capabilities::INSPECT, "nrt_inspect_begin_with_options")?;
        let lib = self.inner.lib();
        raw::inspect::can_inspect(lib)?;
        let dir = c_path(&config.output_dir)?;
        let activities = match &config.activities {
            Some(list) => Some(
                list.iter()
                    .map(|a| c_text("activity", a))
                    .collect::<Result<Vec<_>>>()?,
            ),
            None => None,
        };
        let types = config
            .disabled_event_types
            .iter()
            .map(|t| c_text("event_type", t))
            .collect::<Result<Vec<_>>>()?;
        let options = raw::inspect::Inspect {
            output_dir: &dir,
            session_id: config.session_id,
            activities: activities.as_deref(),
            capture_all: config.capture_all,
            capture_failures: config.capture_failures,
            max_events_per_nc: config.max_events_per_core,
            disabled_cores: &config.disabled_cores,
            disabled_types: &types,
        };
        let claim = Claim::start(
            &INSPECTING,
            "inspect",
            "an inspect session is already running in this process",
            || raw::inspect::begin(lib, &options),
        )?;
        Ok(InspectSession {
            runtime: self.clone(),
            output_dir: config.output_dir.clone(),
            claim,
        })
    }

    /// Every inspect activity type name (`nrt_inspect_config_get_all_activity_types`).
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] for a library without it; [`Error::Nrt`] if it fails.
    pub fn inspect_activity_types(&self) -> Result<Vec<String>> {
        raw::inspect::activity_types(self.inner.lib())
    }

    /// Starts continuous device profiling: every execution is profiled, and
    /// [`ContinuousProfiler::save`] writes the latest one of a core into `output_dir`.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] without [`Capabilities::CONTINUOUS_PROFILING`];
    /// [`Error::InvalidArgument`] while another one runs or for a bad directory;
    /// [`Error::Nrt`] when libnrt refuses (e.g. an inspect session captures device
    /// profiles).
    pub fn continuous_profiling(&self, output_dir: impl AsRef<Path>) -> Result<ContinuousProfiler> {
        self.require(
            Capabilities::CONTINUOUS_PROFILING,
            "nrt_profile_continuous_start",
        )?;
        let dir = c_path(output_dir.as_ref())?;
        let options = raw::inspect::ContinuousOptions::new(self.inner.lib(), &dir)?;
        let claim = Claim::start(
            &CONTINUOUS,
            "continuous_profiling",
            "continuous profiling is already running in this process",
            || options.start(),
        )?;
        Ok(ContinuousProfiler {
            _runtime: self.clone(),
            options,
            output_dir: output_dir.as_ref().to_owned(),
            claim,
        })
    }
}

impl InspectSession {
    /// Where the capture goes.
    pub fn output_dir(&self) -> &Path {
        &self.output_dir
    }

    /// Ends the session and writes its capture (`nrt_inspect_stop`).
    ///
    /// # Errors
    ///
    /// [`Error::Nrt`] if libnrt fails (the session counts as ended anyway).
    pub fn stop(mut self) -> Result<()> {
        self.stop_once()
    }

    fn stop_once(&mut self) -> Result<()> {
        let lib = self.runtime.inner.lib();
        self.claim.stop(|| raw::inspect::stop(lib))
    }
}

impl Drop for InspectSession {
    fn drop(&mut self) {
        if let Err(e) = self.stop_once() {
            log::warn!("stopping the inspect session: {e}");
        }
    }
}

/// Continuous device profiling ([`Runtime::continuous_profiling`]), stopped on drop.
pub struct ContinuousProfiler {
    _runtime: Runtime,
    options: raw::inspect::ContinuousOptions,
    output_dir: PathBuf,
    claim: Claim,
}

impl std::fmt::Debug for ContinuousProfiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContinuousProfiler")
            .field("output_dir", &self.output_dir)
            .finish_non_exhaustive()
    }
}

impl ContinuousProfiler {
    /// Where saved profiles go.
    pub fn output_dir(&self) -> &Path {
        &self.output_dir
    }

    /// Writes the profile of the latest execution on `core` (profiling goes on).
    ///
    /// # Errors
    ///
    /// [`Error::Nrt`] if libnrt fails (e.g. nothing ran on `core` since the start).
    pub fn save(&self, core: u32) -> Result<()> {
        self.options
            .save(core)
            .map_err(|e| e.context(format!("core {core}")))
    }

    /// Stops profiling (nothing more is saved).
    ///
    /// # Errors
    ///
    /// [`Error::Nrt`] if libnrt fails (profiling counts as stopped anyway).
    pub fn stop(mut self) -> Result<()> {
        self.stop_once()
    }

    fn stop_once(&mut self) -> Result<()> {
        let options = &self.options;
        self.claim.stop(|| options.stop())
    }
}

impl Drop for ContinuousProfiler {
    fn drop(&mut self) {
        if let Err(e) = self.stop_once() {
            log::warn!("stopping continuous profiling: {e}");
        }
    }
}
