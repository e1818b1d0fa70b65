//! [`ProfileGuard`]: device profiling of a model's executions (`nrt_profile_start` /
//! `nrt_profile_stop`), stopped when the guard goes.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::objects::{Capabilities, Model};
use crate::raw;

/// The output paths of the profiles running in this process, as passed to libnrt.
/// `nrt_profile_stop` names a profile by its path alone, so two profiles writing the
/// same path at once could not be told apart.
static ACTIVE: Mutex<Vec<CString>> = Mutex::new(Vec::new());

fn active() -> MutexGuard<'static, Vec<CString>> {
    // Only whole pushes and removals happen under the lock, so a panic while it was
    // held cannot leave the list inconsistent.
    ACTIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// `path` as the C string libnrt takes, or [`Error::InvalidArgument`].
fn path_c_string(path: &Path) -> Result<CString> {
    #[cfg(unix)]
    let bytes = {
        use std::os::unix::ffi::OsStrExt;
        path.as_os_str().as_bytes()
    };
    #[cfg(not(unix))]
    let bytes = path
        .to_str()
        .ok_or_else(|| Error::invalid("path", format!("{path:?} is not valid UTF-8")))?
        .as_bytes();
    if bytes.is_empty() {
        return Err(Error::invalid("path", "the profile output path is empty"));
    }
    CString::new(bytes).map_err(|e| {
        Error::invalid(
            "path",
            format!("{path:?} contains a NUL byte at {}", e.nul_position()),
        )
    })
}

impl Model {
    /// Starts profiling this model's executions (`nrt_profile_start`); the profile is
    /// collected and written to `path` when the returned guard is stopped or dropped
    /// (`nrt_profile_stop`).
    ///
    /// The guard keeps the model loaded (and the runtime open) until profiling stops.
    /// Only one profile at a time may write to a given path (compared as text, as libnrt
    /// receives it), because libnrt names the profile to stop by its path.
    ///
    /// ```
    /// use neuron_rt::{Capabilities, Error, NrtStatus, Runtime};
    /// # use neuron_rt::sim::{DType, ModelBuilder, Op};
    /// # let neff = ModelBuilder::new("relu")
    /// #     .input("x", DType::F32, &[4])
    /// #     .output("y", DType::F32, &[4])
    /// #     .op(Op::Relu { input: "x".into(), out: "y".into() })
    /// #     .build()
    /// #     .unwrap();
    ///
    /// // On hardware: `Runtime::new()?`. Here: the simulator, which has the profiling
    /// // functions but does not simulate profiling: starting one fails with a status.
    /// let runtime = Runtime::builder().simulator().build()?;
    /// let model = runtime.load_model(&neff)?;
    /// assert!(runtime.capabilities().contains(Capabilities::PROFILING));
    /// match model.profile("relu.ntff") {
    ///     Ok(profile) => {
    ///         let inputs = model.allocate_inputs()?;
    ///         let mut outputs = model.allocate_outputs()?;
    ///         model.execute(&inputs, &mut outputs)?;
    ///         profile.stop()?; // writes relu.ntff
    ///     }
    ///     Err(Error::Nrt { function, status, .. }) => {
    ///         assert_eq!((function, status), ("nrt_profile_start", NrtStatus::Failure));
    ///     }
    ///     Err(other) => return Err(other),
    /// }
    /// # Ok::<(), neuron_rt::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// * [`Error::Unsupported`] naming `nrt_profile_start` without
    ///   [`Capabilities::PROFILING`];
    /// * [`Error::InvalidArgument`] for an empty path, a path with a NUL byte (or, off
    ///   Unix, one that is not UTF-8), or a path another running profile writes to;
    /// * [`Error::Nrt`] if `nrt_profile_start` fails (the model and runtime stay usable).
    pub fn profile(&self, path: impl AsRef<Path>) -> Result<ProfileGuard> {
        let rt = self.runtime();
        rt.require(Capabilities::PROFILING, "nrt_profile_start")?;
        let lib = rt.inner.lib();
        // A profile that could not be stopped is never started.
        raw::profile::can_stop(lib)?;
        let path = path.as_ref();
        let c_path = path_c_string(path)?;

        // Held across the start, so that two threads cannot both start the same path.
        let mut active = active();
        if active.contains(&c_path) {
            return Err(Error::invalid(
                "path",
                format!("a profile is already being written to {}", path.display()),
            ));
        }
        // SAFETY: the model is loaded in this runtime (held by `self`); `c_path` is
        // NUL-terminated and outlives the call, and the guard keeps it (and the model)
        // alive until nrt_profile_stop, in case libnrt keeps the pointer meanwhile.
        unsafe { raw::profile::start(lib, self.raw(), &c_path) }.map_err(|e| {
            e.context(format!(
                "model `{}`, profile {}",
                self.label(),
                path.display()
            ))
        })?;
        active.push(c_path.clone());
        drop(active);
        Ok(ProfileGuard {
            model: self.clone(),
            path: path.to_owned(),
            c_path,
            stopped: false,
        })
    }
}

/// A running profile of a [`Model`], from [`Model::profile`]. [`stop`](ProfileGuard::stop)
/// or dropping it calls `nrt_profile_stop`, which collects the profile and writes it to
/// [`path`](ProfileGuard::path).
///
/// Dropping it cannot report a failure; call [`stop`](ProfileGuard::stop) to see one.
/// Leaking it (`mem::forget`) leaves profiling on and keeps the model loaded and the
/// runtime open for the rest of the process.
#[derive(Debug)]
#[must_use = "profiling stops as soon as the guard is dropped"]
pub struct ProfileGuard {
    model: Model,
    path: PathBuf,
    c_path: CString,
    stopped: bool,
}

impl ProfileGuard {
    /// The file the profile is written to when it stops.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The model being profiled.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Stops profiling and writes the profile (`nrt_profile_stop`).
    ///
    /// # Errors
    ///
    /// [`Error::Nrt`] if `nrt_profile_stop` fails, with the model and path as context.
    /// Either way the profile is over as far as this crate is concerned: the path can
    /// be used for a new profile.
    pub fn stop(mut self) -> Result<()> {
        self.finish()
    }

    fn finish(&mut self) -> Result<()> {
        self.stopped = true;
        let mut active = active();
        // SAFETY: `c_path` is the path this profile was started with (kept by the guard),
        // and the runtime is open (the model handle holds it).
        let result = unsafe { raw::profile::stop(self.model.runtime().inner.lib(), &self.c_path) };
        active.retain(|p| *p != self.c_path);
        drop(active);
        result.map_err(|e| {
            e.context(format!(
                "model `{}`, profile {}",
                self.model.label(),
                self.path.display()
            ))
        })
    }
}

impl Drop for ProfileGuard {
    fn drop(&mut self) {
        if !self.stopped {
            // A failure cannot be reported from Drop; `stop` reports it.
            let _ = self.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_c_strings_or_typed_errors() {
        assert_eq!(
            path_c_string(Path::new("out/p.ntff")).unwrap().as_bytes(),
            b"out/p.ntff"
        );
        let err = path_c_string(Path::new("a\0b")).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument { argument: "path", reason } if reason.contains("NUL byte at 1")),
            "{err}"
        );
        let err = path_c_string(Path::new("")).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument { argument: "path", reason } if reason.contains("empty")),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_paths_pass_unchanged_on_unix() {
        use std::os::unix::ffi::OsStrExt;
        let path = Path::new(std::ffi::OsStr::from_bytes(b"p\xff.ntff"));
        assert_eq!(path_c_string(path).unwrap().as_bytes(), b"p\xff.ntff");
    }
}
