//! [`Runtime`] and [`RuntimeBuilder`]: choosing the library, `nrt_init` / `nrt_close`, and
//! the queries that need no model: version, instance, core counts, memory statistics.

use std::ffi::CString;
use std::fmt;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use nrt_sys::{self as sys, Library};

use super::capabilities::Capabilities;
use super::info::{InstanceInfo, MemoryStats, Version};
use crate::error::{Error, Result};
use crate::raw::{self, fixed_c_string};

/// The environment variable libnrt reads at `nrt_init` for the cores to use.
pub const VISIBLE_CORES_VAR: &str = "NEURON_RT_VISIBLE_CORES";

/// Keys (address of `nrt_init`) of the libraries with a live runtime. Keyed by the
/// function's address, not the `Library`, so that one shared object opened under two
/// names still counts once. The lock is also held across `nrt_init` and `nrt_close`, so
/// a new runtime never starts while the previous one is still closing.
static LIVE: Mutex<Vec<usize>> = Mutex::new(Vec::new());

fn live() -> MutexGuard<'static, Vec<usize>> {
    // The Vec is only pushed to and removed from, each a single step, so a panic while
    // the lock was held cannot leave it inconsistent.
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The framework type passed to `nrt_init`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Framework {
    /// No framework: a program calling libnrt directly (`NRT_FRAMEWORK_TYPE_NO_FW`).
    #[default]
    NoFramework,
    /// TensorFlow.
    TensorFlow,
    /// PyTorch.
    PyTorch,
    /// MXNet.
    MxNet,
    /// A pre-check run (`NRT_FRAMEWORK_TYPE_PRECHECK`).
    Precheck,
}

impl Framework {
    fn as_raw(self) -> sys::nrt_framework_type_t {
        match self {
            Framework::NoFramework => sys::NRT_FRAMEWORK_TYPE_NO_FW,
            Framework::TensorFlow => sys::NRT_FRAMEWORK_TYPE_TENSORFLOW,
            Framework::PyTorch => sys::NRT_FRAMEWORK_TYPE_PYTORCH,
            Framework::MxNet => sys::NRT_FRAMEWORK_TYPE_MXNET,
            Framework::Precheck => sys::NRT_FRAMEWORK_TYPE_PRECHECK,
        }
    }
}

#[derive(Debug)]
enum LibraryChoice {
    Default,
    Path(PathBuf),
    Loaded(&'static Library),
}

/// Configures and starts a [`Runtime`].
///
/// ```no_run
/// use neuron_rt::{Framework, Runtime};
///
/// let runtime = Runtime::builder()
///     .library_path("/opt/aws/neuron/lib/libnrt.so.1")
///     .framework(Framework::NoFramework, "")
///     .build()?;
/// # Ok::<(), neuron_rt::Error>(())
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct RuntimeBuilder {
    library: LibraryChoice,
    framework: Framework,
    framework_version: String,
    fal_version: String,
    /// What the diagnosis of a failed `nrt_init`, load or allocation reads.
    pub(crate) probe: crate::diagnose::Probe,
}

impl Default for RuntimeBuilder {
    fn default() -> Self {
        RuntimeBuilder::new()
    }
}

impl RuntimeBuilder {
    /// A builder that finds libnrt the default way ([`Library::open_default`]:
    /// `LIBNRT_PATH`, then `libnrt.so.1` on the linker path, then `/opt/aws/neuron/lib`)
    /// and initialises it with no framework.
    pub fn new() -> RuntimeBuilder {
        RuntimeBuilder {
            library: LibraryChoice::Default,
            framework: Framework::NoFramework,
            framework_version: String::new(),
            fal_version: String::new(),
            probe: crate::diagnose::Probe::system(),
        }
    }

    /// Loads libnrt from this file instead of searching for it.
    pub fn library_path(mut self, path: impl Into<PathBuf>) -> RuntimeBuilder {
        self.library = LibraryChoice::Path(path.into());
        self
    }

    /// Uses an already loaded library, for example the in-process simulator
    /// (`neuron_rt::sim::library()`). The runtime trusts it as libnrt: a `&'static Library` is
    /// either a loaded file (loading trusts it) or built with the `unsafe`
    /// `Library::in_process`, whose caller vouched for every function in it.
    pub fn library(mut self, library: &'static Library) -> RuntimeBuilder {
        self.library = LibraryChoice::Loaded(library);
        self
    }

    /// Uses the simulated libnrt (`nrt-sim`) in this process: for development and tests
    /// without Neuron hardware. Only with feature `sim`; never chosen otherwise.
    #[cfg(feature = "sim")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
    pub fn simulator(self) -> RuntimeBuilder {
        self.library(nrt_sim::library())
    }

    /// The framework type and its version string passed to `nrt_init` (default: no
    /// framework, empty version).
    pub fn framework(mut self, framework: Framework, version: &str) -> RuntimeBuilder {
        self.framework = framework;
        self.framework_version = version.to_owned();
        self
    }

    /// The framework-abstraction-layer version string passed to `nrt_init` (default empty).
    pub fn fal_version(mut self, version: &str) -> RuntimeBuilder {
        self.fal_version = version.to_owned();
        self
    }

    /// Restricts the runtime to the NeuronCores in `cores` (an inclusive range; one core
    /// is `n..=n`) by setting `NEURON_RT_VISIBLE_CORES`, which libnrt reads at `nrt_init`.
    ///
    /// The variable is set by this call, for the whole process. The safe alternative is
    /// to set `NEURON_RT_VISIBLE_CORES` before the process starts (in the shell or the
    /// service definition), or in `main` before any other thread exists.
    ///
    /// # Safety
    ///
    /// This calls [`std::env::set_var`]: no other thread may read or write the
    /// environment during the call (including through C's `getenv`, which libraries
    /// may call at any time). In practice: call it while the process has one thread.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if the range is empty; [`Error::AlreadyInitialized`]
    /// if any runtime is up in this process (the setting would not take effect).
    pub unsafe fn visible_cores(self, cores: RangeInclusive<u32>) -> Result<RuntimeBuilder> {
        let (first, last) = (*cores.start(), *cores.end());
        if first > last {
            return Err(Error::invalid(
                "cores",
                format!("the range {first}..={last} is empty"),
            ));
        }
        let live = live();
        if !live.is_empty() {
            return Err(Error::AlreadyInitialized);
        }
        let value = if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        };
        // SAFETY: the caller guarantees that no other thread accesses the environment
        // during this call (this function's `# Safety` contract).
        unsafe { std::env::set_var(VISIBLE_CORES_VAR, value) };
        drop(live);
        Ok(self)
    }

    /// Loads the library if needed and initialises the runtime (`nrt_init`).
    ///
    /// # Errors
    ///
    /// * [`Error::LibraryNotFound`] listing every place tried;
    /// * [`Error::Unsupported`] if the library lacks `nrt_init` or `nrt_close`;
    /// * [`Error::InvalidArgument`] if a version string contains a NUL byte;
    /// * [`Error::AlreadyInitialized`] while another [`Runtime`] on the same library is
    ///   alive (including any [`Model`](crate::Model), [`Tensor`](crate::Tensor) or
    ///   [`TensorSet`](crate::TensorSet) that keeps it open);
    /// * [`Error::Nrt`] if `nrt_init` fails.
    pub fn build(self) -> Result<Runtime> {
        let lib = match self.library {
            LibraryChoice::Default => Library::open_default()?,
            LibraryChoice::Path(path) => Library::open(path)?,
            LibraryChoice::Loaded(lib) => lib,
        };
        // Both first: a runtime that could not be closed is never started.
        let key = raw::runtime::init_key(lib)?;
        raw::runtime::can_close(lib)?;
        let fw_version = c_string("framework version", &self.framework_version)?;
        let fal_version = c_string("fal_version", &self.fal_version)?;

        let mut live = live();
        if live.contains(&key) {
            return Err(Error::AlreadyInitialized);
        }
        // SAFETY: no runtime is live on this library (checked above under the lock, which
        // is held across every init and close), so this is not a second init.
        unsafe { raw::runtime::init(lib, self.framework.as_raw(), &fw_version, &fal_version) }
            .map_err(|err| crate::diagnose::hints::init_failed(lib, &self.probe, err))?;
        live.push(key);
        drop(live);

        // Queried after nrt_init: the library is only guaranteed to answer inside the
        // init/close window. A failure leaves the version unknown (and async disabled).
        let version = query_version(lib).ok();
        let caps = Capabilities::detect(lib, version.as_ref());
        let inner = RuntimeInner {
            lib,
            key,
            caps,
            version,
            units: crate::xu::UnitRegistry::default(),
            probe: self.probe,
        };
        Ok(super::logging::runtime_started(Runtime {
            inner: Arc::new(inner),
        }))
    }
}

/// An initialised Neuron runtime: the handle everything else is created from.
///
/// A `Runtime` is a cheap, clonable handle. Every [`Model`](crate::Model),
/// [`Tensor`](crate::Tensor) and [`TensorSet`](crate::TensorSet) holds one too, so
/// `nrt_close` runs only after the last of them is dropped. libnrt allows one runtime per
/// process: while one is alive, starting another on the same library fails with
/// [`Error::AlreadyInitialized`]; once everything is dropped, a new one can start.
///
/// `Runtime` is `Send + Sync`: libnrt's runtime is process-wide and its functions are
/// not tied to the thread that called `nrt_init`.
///
/// ```
/// use neuron_rt::Runtime;
///
/// // On hardware: `Runtime::new()?`. Here: the simulator.
/// let runtime = Runtime::builder().simulator().build()?;
/// println!("libnrt {}", runtime.version()?);
/// println!("{} NeuronCores visible", runtime.visible_core_count()?);
/// # Ok::<(), neuron_rt::Error>(())
/// ```
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<RuntimeInner>,
}

pub(crate) struct RuntimeInner {
    lib: &'static Library,
    key: usize,
    caps: Capabilities,
    version: Option<Version>,
    /// State of the async execution-unit queues, shared by all their handles.
    pub(crate) units: crate::xu::UnitRegistry,
    /// What the diagnosis of a failed load or allocation reads.
    pub(crate) probe: crate::diagnose::Probe,
}

impl Drop for RuntimeInner {
    fn drop(&mut self) {
        // Held across nrt_close so a new runtime cannot start while this one closes.
        let mut live = live();
        // libnrt must stop signalling the units' eventfds before they are closed.
        self.units.close();
        // SAFETY: the runtime was initialised by `build` and every handle that used it
        // has been dropped (each holds an Arc of this value), so nothing can call into
        // it after the close. `build` checked that the library has nrt_close.
        let _ = unsafe { raw::runtime::close(self.lib) };
        live.retain(|k| *k != self.key);
    }
}

impl RuntimeInner {
    /// The loaded library, for the result layer ([`raw`]).
    pub(crate) fn lib(&self) -> &'static Library {
        self.lib
    }

    /// The library version reported at start, if it has `nrt_get_version`.
    pub(crate) fn version(&self) -> Option<&Version> {
        self.version.as_ref()
    }

    pub(crate) fn require(&self, caps: Capabilities, feature: &'static str) -> Result<()> {
        if self.caps.contains(caps) {
            Ok(())
        } else {
            Err(Error::Unsupported {
                feature,
                needed: Some((caps - self.caps).requirement()),
            })
        }
    }
}

/// The version `lib` reports.
fn query_version(lib: &Library) -> Result<Version> {
    let v = raw::runtime::get_version(lib)?;
    Ok(Version {
        major: v.rt_major,
        minor: v.rt_minor,
        patch: v.rt_patch,
        maintenance: v.rt_maintenance,
        detail: fixed_c_string(&v.rt_detail),
        git_hash: fixed_c_string(&v.git_hash),
    })
}

impl Runtime {
    /// Starts the runtime with the default settings: [`RuntimeBuilder::new`] then
    /// [`build`](RuntimeBuilder::build).
    ///
    /// # Errors
    ///
    /// As [`RuntimeBuilder::build`].
    pub fn new() -> Result<Runtime> {
        RuntimeBuilder::new().build()
    }

    /// A builder to choose the library and `nrt_init` parameters.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::new()
    }

    /// The loaded library.
    pub fn library(&self) -> &'static Library {
        self.inner.lib
    }

    /// What the loaded library offers.
    pub fn capabilities(&self) -> Capabilities {
        self.inner.caps
    }

    /// The runtime library's version, read once at start.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] if the library has no `nrt_get_version` or it failed.
    pub fn version(&self) -> Result<&Version> {
        self.inner.version.as_ref().ok_or(Error::Unsupported {
            feature: "nrt_get_version",
            needed: Some("a libnrt that reports its version".into()),
        })
    }

    /// The instance family, size and device revision.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] without `nrt_get_instance_info`; [`Error::Nrt`] if it fails.
    pub fn instance_info(&self) -> Result<InstanceInfo> {
        let info = raw::runtime::get_instance_info(self.inner.lib)?;
        Ok(InstanceInfo {
            family: info.family,
            size: info.size,
            arch_name: fixed_c_string(&info.arch_name),
            device_revision: fixed_c_string(&info.device_revision),
        })
    }

    /// The number of NeuronCores on the instance (`nrt_get_total_vnc_count`, or the
    /// older `nrt_get_total_nc_count`).
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] without either function; [`Error::Nrt`] if it fails.
    pub fn total_core_count(&self) -> Result<u32> {
        raw::runtime::get_total_vnc_count(self.inner.lib)
    }

    /// The number of NeuronCores this process may use (`nrt_get_visible_vnc_count`, or
    /// the older `nrt_get_visible_nc_count`).
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] without either function; [`Error::Nrt`] if it fails.
    pub fn visible_core_count(&self) -> Result<u32> {
        raw::runtime::get_visible_vnc_count(self.inner.lib)
    }

    /// Device memory use of NeuronCore `core`.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] without `nrt_get_vnc_memory_stats`; [`Error::Nrt`] if it
    /// fails (e.g. `core` out of range); [`Error::UnexpectedResult`] if the library
    /// reports fewer bytes than the two counters need.
    pub fn memory_stats(&self, core: u32) -> Result<MemoryStats> {
        let (stats, written) = raw::runtime::get_vnc_memory_stats(self.inner.lib, core)
            .map_err(|e| e.context(format!("core {core}")))?;
        let size = size_of::<sys::nrt_vnc_memory_stats_t>();
        if written < size {
            return Err(Error::UnexpectedResult {
                function: "nrt_get_vnc_memory_stats",
                reason: format!("wrote {written} bytes of statistics, expected {size}"),
            });
        }
        Ok(MemoryStats {
            bytes_used: stats.bytes_used,
            bytes_limit: stats.bytes_limit,
        })
    }

    /// Fails with [`Error::Unsupported`] unless the library has every capability in `caps`.
    pub(crate) fn require(&self, caps: Capabilities, feature: &'static str) -> Result<()> {
        self.inner.require(caps, feature)
    }

    /// Whether `other` is the same runtime (same initialisation of the same library).
    pub(crate) fn same_as(&self, other: &Runtime) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// [`Error::ForeignHandle`] unless `other` is this runtime.
    pub(crate) fn check_same(&self, other: &Runtime, what: impl FnOnce() -> String) -> Result<()> {
        if self.same_as(other) {
            Ok(())
        } else {
            Err(Error::ForeignHandle {
                what: what(),
                found: other.inner.lib.origin().to_string(),
                expected: self.inner.lib.origin().to_string(),
            })
        }
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("library", &self.inner.lib.origin())
            .field(
                "version",
                &self.inner.version.as_ref().map(|v| v.to_string()),
            )
            .field("capabilities", &self.inner.caps)
            .finish()
    }
}

/// A C string for `value`, or [`Error::InvalidArgument`] if it contains a NUL byte.
pub(crate) fn c_string(argument: &'static str, value: &str) -> Result<CString> {
    CString::new(value).map_err(|e| {
        Error::invalid(
            argument,
            format!("{value:?} contains a NUL byte at {}", e.nul_position()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_comparison() {
        let v = Version {
            major: 2,
            minor: 31,
            patch: 24,
            maintenance: 0,
            detail: String::new(),
            git_hash: String::new(),
        };
        assert!(v.at_least(2, 31));
        assert!(v.at_least(1, 99));
        assert!(!v.at_least(2, 32));
        assert!(!v.at_least(3, 0));
        assert_eq!(v.to_string(), "2.31.24.0");
    }

    #[test]
    fn a_library_without_nrt_init_is_unsupported() {
        // SAFETY: an empty table and no lookup: nothing can be called.
        let lib = unsafe { Library::in_process("runtime-no-init", sys::NrtFns::default(), None) };
        let err = Runtime::builder().library(lib).build().unwrap_err();
        assert!(
            matches!(
                err,
                Error::Unsupported {
                    feature: "nrt_init",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn instance_names() {
        let info = InstanceInfo {
            family: sys::NRT_INSTANCE_INF2,
            size: sys::NRT_INSTANCE_SIZE_24XL,
            arch_name: String::new(),
            device_revision: String::new(),
        };
        assert_eq!(info.family_name(), Some("inf2"));
        assert_eq!(info.size_name(), Some("24xlarge"));
        let odd = InstanceInfo {
            family: 99,
            size: 99,
            ..info
        };
        assert_eq!(odd.family_name(), None);
        assert_eq!(odd.size_name(), None);
    }
}
