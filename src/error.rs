//! [`Error`] and [`Result`]: everything that can go wrong, with the values that made it go wrong.

use std::ffi::CStr;

use nrt_sys::{self as sys, Library};

use crate::NrtStatus;

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// An error from the safe API: a status returned by libnrt, or a problem found on the
/// Rust side before anything was passed to libnrt.
///
/// Errors found on the Rust side leave the runtime exactly as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A libnrt function returned a failure status.
    #[error(
        "{function} failed: {status}{}{}",
        affix(": ", message.as_deref(), ""),
        affix(" (", context.as_deref(), ")")
    )]
    Nrt {
        /// The C function that failed, e.g. `"nrt_execute"`.
        function: &'static str,
        /// The status it returned.
        status: NrtStatus,
        /// The library's own text for the status (`nrt_get_status_as_str`), when it has one.
        message: Option<String>,
        /// What the call was about: model, tensor or core, when known.
        context: Option<String>,
    },

    /// No libnrt could be loaded; lists every place tried.
    #[error(transparent)]
    LibraryNotFound(#[from] nrt_sys::LoadError),

    /// The loaded library lacks a function or is too old (or of an incompatible ABI) for
    /// an API; nothing was called.
    #[error("{feature} is not supported by the loaded libnrt{}", affix("; needs ", needed.as_deref(), ""))]
    Unsupported {
        /// The missing C function (e.g. `"nrt_tensor_allocate_slice"`) or feature.
        feature: &'static str,
        /// What would provide it, e.g. `"runtime >= 2.31"`.
        needed: Option<String>,
    },

    /// An argument has a value the API cannot accept.
    #[error("invalid argument `{argument}`: {reason}")]
    InvalidArgument {
        /// The argument's name.
        argument: &'static str,
        /// What is wrong with its value (the message carries the value).
        reason: String,
    },

    /// A tensor's size does not match what was required.
    #[error("size mismatch for tensor `{tensor}`: {what} needs {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The tensor's name (for a model tensor: the model's name for it).
        tensor: String,
        /// What required the size, e.g. `"model input"` or `"copy source"`.
        what: &'static str,
        /// The size required, in bytes.
        expected: usize,
        /// The size found, in bytes.
        actual: usize,
    },

    /// A byte range lies (partly) outside a tensor.
    #[error(
        "out of bounds: {len} bytes at offset {offset} do not fit in tensor `{tensor}` of {size} bytes"
    )]
    OutOfBounds {
        /// The tensor's name.
        tensor: String,
        /// Start of the range, in bytes.
        offset: usize,
        /// Length of the range, in bytes.
        len: usize,
        /// The tensor's size, in bytes.
        size: usize,
    },

    /// A model input or output has no tensor bound to it in the tensor set.
    #[error("model `{model}` {role} `{tensor}` is not bound in the {role} tensor set")]
    MissingTensor {
        /// The model (its load label).
        model: String,
        /// `"input"` or `"output"`.
        role: &'static str,
        /// The model tensor's name.
        tensor: String,
    },

    /// A tensor is on a different NeuronCore than the model or tensor it is used with.
    #[error("tensor `{tensor}` is on core {tensor_core}, but {what} is on core {expected_core}")]
    WrongCore {
        /// The tensor's name.
        tensor: String,
        /// The core the tensor is allocated on.
        tensor_core: u32,
        /// What it is used with, e.g. `"model `add`"`.
        what: String,
        /// The core of that model or tensor.
        expected_core: u32,
    },

    /// A handle created by one runtime was used with another runtime (another library).
    #[error("{what} belongs to a different runtime (library {found}), expected library {expected}")]
    ForeignHandle {
        /// The handle, e.g. `"tensor `x`"`.
        what: String,
        /// The library the handle belongs to.
        found: String,
        /// The library of the runtime it was used with.
        expected: String,
    },

    /// A handle is still shared, and the operation needs it unshared.
    #[error("{what} is still in use ({users} other handles or in-flight requests hold it)")]
    InUse {
        /// The handle, e.g. `"tensor set"`.
        what: String,
        /// How many other holders there are.
        users: usize,
    },

    /// A runtime is already initialised for this library (or, for the visible-cores
    /// setting, for any library): libnrt allows one per process.
    #[error(
        "the Neuron runtime is already initialised in this process (drop every Runtime, Model, Tensor and TensorSet first)"
    )]
    AlreadyInitialized,

    /// A file could not be read.
    #[error("could not read {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// An execution unit is in its terminal state after a fatal error (reported by
    /// libnrt as `NRT_EXEC_UNIT_UNRECOVERABLE`, or a request that completed with a fatal
    /// status such as a timeout or a hardware error). Nothing was scheduled.
    ///
    /// The unit will not accept work again in this process: requests already queued on
    /// it still complete with their own status, but recovering needs the runtime to be
    /// re-initialised, which in practice means restarting the process (on real hardware
    /// sometimes also reloading the Neuron driver or rebooting the instance).
    #[error(
        "{unit} is unrecoverable (it failed with {status}); restart the process to use it again"
    )]
    Unrecoverable {
        /// The unit, e.g. "compute unit (core 0, queue 0)".
        unit: String,
        /// The fatal status that put it into that state.
        status: NrtStatus,
    },

    /// A thread this crate needs could not be started (for example the large-stack
    /// thread that runs `nrt_execute` for a caller with too little stack left).
    #[error("could not start a thread for {what}: {source}")]
    Thread {
        /// What the thread was for.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// One job of a staged pipeline or of replicas failed at one of its stages; the
    /// other jobs carry on (unless its core became unrecoverable).
    #[error("job {job} failed at the {stage} stage on core {core}: {source}")]
    Stage {
        /// The stage that failed.
        stage: crate::Stage,
        /// The job's index (0 for the first job of the run).
        job: u64,
        /// The NeuronCore the job ran on.
        core: u32,
        /// What went wrong.
        source: Box<Error>,
    },

    /// libnrt reported success but returned something unusable (e.g. a null handle).
    #[error("{function} returned an unusable result: {reason}")]
    UnexpectedResult {
        /// The C function.
        function: &'static str,
        /// What was wrong with its result.
        reason: String,
    },
}

impl Error {
    /// The libnrt status, when this error came from libnrt.
    pub fn status(&self) -> Option<NrtStatus> {
        match self {
            Error::Nrt { status, .. } | Error::Unrecoverable { status, .. } => Some(*status),
            Error::Stage { source, .. } => source.status(),
            _ => None,
        }
    }

    /// Whether retrying the same call later may succeed (see [`NrtStatus::is_retryable`]).
    pub fn is_retryable(&self) -> bool {
        self.status().is_some_and(NrtStatus::is_retryable)
    }

    /// Whether the device needs a runtime restart (see [`NrtStatus::is_fatal`]).
    pub fn is_fatal(&self) -> bool {
        self.status().is_some_and(NrtStatus::is_fatal)
    }

    pub(crate) fn invalid(argument: &'static str, reason: impl Into<String>) -> Error {
        Error::InvalidArgument {
            argument,
            reason: reason.into(),
        }
    }
}

/// `prefix + text + suffix`, or nothing when there is no text.
fn affix(prefix: &str, text: Option<&str>, suffix: &str) -> String {
    match text {
        Some(t) if !t.is_empty() => format!("{prefix}{t}{suffix}"),
        _ => String::new(),
    }
}

/// [`Error::Nrt`] for `raw`, with the library's text for it when it has one.
pub(crate) fn status_error(
    lib: &Library,
    function: &'static str,
    raw: sys::NRT_STATUS,
    context: Option<String>,
) -> Error {
    Error::Nrt {
        function,
        status: NrtStatus::from_raw(raw),
        message: status_text(lib, raw),
        context: context.filter(|c| !c.is_empty()),
    }
}

/// The library's description of `raw` (`nrt_get_status_as_str`), if it has one.
fn status_text(lib: &Library, raw: sys::NRT_STATUS) -> Option<String> {
    let f = lib.fns().nrt_get_status_as_str?;
    // Why the block below is sound: `lib` is trusted to be libnrt: loaded from a path
    // (loading trusts the library, see nrt_sys::Library) or built with the unsafe
    // `Library::in_process`, whose contract makes every entry behave as libnrt's.
    // libnrt's nrt_get_status_as_str takes any value and returns NULL or a pointer to a
    // NUL-terminated string owned by the library that stays valid (static text); it is
    // copied before anything else calls into the library.
    // SAFETY: the conditions just above hold for this block.
    unsafe {
        let text = f(raw);
        (!text.is_null()).then(|| CStr::from_ptr(text).to_string_lossy().into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nrt_error_display_carries_function_status_message_and_context() {
        let e = Error::Nrt {
            function: "nrt_execute",
            status: NrtStatus::Invalid,
            message: Some("Invalid input".into()),
            context: Some("model `add`".into()),
        };
        assert_eq!(
            e.to_string(),
            "nrt_execute failed: invalid argument, model or tensor binding (status 2): \
             Invalid input (model `add`)"
        );
        let bare = Error::Nrt {
            function: "nrt_init",
            status: NrtStatus::Other(77),
            message: None,
            context: None,
        };
        assert_eq!(
            bare.to_string(),
            "nrt_init failed: unknown status (status 77)"
        );
        assert_eq!(bare.status(), Some(NrtStatus::Other(77)));
    }

    #[test]
    fn rust_side_errors_carry_their_values() {
        let e = Error::OutOfBounds {
            tensor: "x".into(),
            offset: 16,
            len: 8,
            size: 20,
        };
        assert_eq!(
            e.to_string(),
            "out of bounds: 8 bytes at offset 16 do not fit in tensor `x` of 20 bytes"
        );
        let e = Error::Unsupported {
            feature: "async execution",
            needed: Some("runtime >= 2.31".into()),
        };
        assert_eq!(
            e.to_string(),
            "async execution is not supported by the loaded libnrt; needs runtime >= 2.31"
        );
        assert!(!e.is_retryable());
        let e = Error::Nrt {
            function: "nrta_execute_schedule",
            status: NrtStatus::QueueFull,
            message: None,
            context: None,
        };
        assert!(e.is_retryable());
        assert!(!e.is_fatal());
    }
}
