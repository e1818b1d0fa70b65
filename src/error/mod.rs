//! [`Error`] and [`Result`]: everything that can go wrong, with the values that made it go wrong.

pub(crate) mod input;
pub(crate) mod kind;
pub(crate) mod status;

pub use input::{GivenInput, InputMismatch, MissingInput};
pub use kind::ErrorKind;
pub use status::NrtStatus;

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// An error from the safe API: a status returned by libnrt, or a problem found on the
/// Rust side before anything was passed to libnrt.
///
/// Errors found on the Rust side leave the runtime exactly as it was. `Display` gives
/// the whole story (an inner error's text included), so [`source`](std::error::Error::source)
/// is `None`: error reporters that print the chain (`anyhow`, `eyre`) never print a
/// message twice.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A libnrt function returned a failure status.
    ///
    /// Display: the function, what it was about, the specific [`cause`](Error::cause)
    /// when the diagnosis found one, the status in the library's words (or this
    /// crate's, [`NrtStatus::description`]) with its number, then the other diagnosis
    /// findings ([`hint`](Error::hint)) when there are any.
    ///
    /// Kind: [`ErrorKind`] by status: e.g. `NRT_QUEUE_FULL` is [`Busy`](ErrorKind::Busy), `NRT_RESOURCE` [`ResourceExhausted`](ErrorKind::ResourceExhausted), the hardware errors and timeouts [`DeviceFailure`](ErrorKind::DeviceFailure), `NRT_INVALID` [`InvalidData`](ErrorKind::InvalidData) from `nrt_load`, [`Misconfigured`](ErrorKind::Misconfigured) from `nrt_init` and [`InvalidInput`](ErrorKind::InvalidInput) elsewhere (each status's kind is listed on [`ErrorKind`]'s variants).
    #[error(
        "{function} failed{}: {}{}",
        affix(" for ", context.as_deref(), ""),
        cause_and_status(diagnosis.as_ref().and_then(|d| d.cause.as_deref()), *status, message.as_deref()),
        hint_block(diagnosis.as_ref().and_then(|d| d.hint.as_deref()))
    )]
    #[non_exhaustive]
    Nrt {
        /// The C function that failed, e.g. `"nrt_execute"`.
        function: &'static str,
        /// The status it returned.
        status: NrtStatus,
        /// The library's own text for the status (`nrt_get_status_as_str`), when it has one.
        message: Option<String>,
        /// What the call was about: model, tensor or core, when known.
        context: Option<String>,
        /// What the diagnosis found out, for `nrt_init`, `nrt_load` and tensor allocation
        /// failures ([`Error::cause`], [`Error::hint`]); boxed, as most errors have none.
        diagnosis: Option<Box<Diagnosis>>,
    },

    /// No libnrt could be loaded; lists every place tried, then what to do
    /// ([`Error::hint`]: for a path given in code or by `LIBNRT_PATH`, to fix that path).
    ///
    /// Kind: [`ErrorKind::NotFound`].
    #[error("{0}{hint}", hint = hint_block(Some(crate::diagnose::library_not_found_hint(_0))))]
    LibraryNotFound(nrt_sys::LoadError),

    /// The loaded library lacks a function or is too old (or of an incompatible ABI) for
    /// an API; nothing was called.
    ///
    /// Kind: [`ErrorKind::Unsupported`].
    #[error("{feature} is not supported by the loaded libnrt{}", affix("; needs ", needed.as_deref(), ""))]
    Unsupported {
        /// The missing C function (e.g. `"nrt_tensor_allocate_slice"`) or feature.
        feature: &'static str,
        /// What would provide it, e.g. `"runtime >= 2.31"`.
        needed: Option<String>,
    },

    /// An argument has a value the API cannot accept.
    ///
    /// Kind: [`ErrorKind::InvalidInput`].
    #[error("invalid argument `{argument}`: {reason}")]
    InvalidArgument {
        /// The argument's name.
        argument: &'static str,
        /// What is wrong with its value (the message carries the value).
        reason: String,
    },

    /// An environment variable a launcher sets (torchrun's `RANK`, `WORLD_SIZE`,
    /// `LOCAL_RANK`, Open MPI's `OMPI_COMM_WORLD_*`, SLURM's `SLURM_*`,
    /// `NEURON_RT_ROOT_COMM_ID`) is missing, malformed or inconsistent with another.
    ///
    /// Kind: [`ErrorKind::Misconfigured`].
    #[error("environment variable {variable}{}: {reason}", affix("=", value.as_deref().map(|v| format!("{v:?}")).as_deref(), ""))]
    Env {
        /// The variable's name.
        variable: &'static str,
        /// Its value, `None` when it is not set.
        value: Option<String>,
        /// What is wrong, naming the other variables involved and their values.
        reason: String,
    },

    /// A tensor's size does not match what was required.
    ///
    /// Kind: [`ErrorKind::InvalidInput`].
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

    /// A whole-tensor access ([`Tensor::write`](crate::Tensor::write),
    /// [`read`](crate::Tensor::read), [`to_vec`](crate::Tensor::to_vec)) of a tensor made
    /// for a model tensor used another element type than the model's.
    ///
    /// Kind: [`ErrorKind::InvalidInput`].
    #[error("tensor `{tensor}` holds {expected} elements, got {given}")]
    WrongElementType {
        /// The tensor's name.
        tensor: String,
        /// The model's element type for it.
        expected: crate::dtype::DType,
        /// The Rust element type given, e.g. `"i32"`.
        given: &'static str,
    },

    /// A whole-tensor access of a tensor made for a model tensor had another number of
    /// elements than the tensor (use `write_at` / `read_at` for part of a tensor).
    ///
    /// Kind: [`ErrorKind::InvalidInput`].
    #[error(
        "tensor `{tensor}` holds {expected} elements, got {given} (write_at / read_at access part of it)"
    )]
    WrongLength {
        /// The tensor's name.
        tensor: String,
        /// Its number of elements.
        expected: usize,
        /// The number given.
        given: usize,
    },

    /// Host values given with a shape ([`Input::with_shape`](crate::Input::with_shape), an
    /// `ndarray` array) for a model tensor of another shape.
    ///
    /// Kind: [`ErrorKind::InvalidInput`].
    #[error("tensor `{tensor}` has shape {expected:?}, got values of shape {given:?}")]
    WrongShape {
        /// The model tensor's name.
        tensor: String,
        /// The model's shape for it.
        expected: Vec<u32>,
        /// The shape given.
        given: Vec<usize>,
    },

    /// A value given for a model input through [`Model::run`](crate::Model::run),
    /// [`Model::check_inputs`](crate::Model::check_inputs) or
    /// [`ModelPool::infer`](crate::ModelPool::infer) does not fit that input: another
    /// element type, shape, number of elements or byte length (see [`InputMismatch`]:
    /// the model, the input, its dtype, shape and size, and what was given). Nothing ran.
    /// Boxed: most errors are not this one.
    ///
    /// Display: `model `bert`: input `input_ids` expects i32 [1, 128] (128 elements), got
    /// 127 elements`.
    ///
    /// Kind: [`ErrorKind::InvalidInput`].
    #[error("{0}")]
    InputMismatch(Box<InputMismatch>),

    /// A model input that the inputs given to [`Model::run`](crate::Model::run),
    /// [`Model::check_inputs`](crate::Model::check_inputs) or
    /// [`ModelPool::infer`](crate::ModelPool::infer) leave out (see [`MissingInput`]).
    /// Nothing ran. Boxed: most errors are not this one.
    ///
    /// Display: `model `add`: input `b` (f32 [2, 3]) is not given (given: a)`.
    ///
    /// Kind: [`ErrorKind::InvalidInput`].
    #[error("{0}")]
    MissingInput(Box<MissingInput>),

    /// A model input given twice to [`Model::run`](crate::Model::run),
    /// [`Model::check_inputs`](crate::Model::check_inputs) or
    /// [`ModelPool::infer`](crate::ModelPool::infer). Nothing ran.
    ///
    /// Kind: [`ErrorKind::InvalidInput`].
    #[error("model `{model}`: input `{input}` is given twice")]
    DuplicateInput {
        /// The model (its load label).
        model: String,
        /// The input's name.
        input: String,
    },

    /// A byte range lies (partly) outside a tensor.
    ///
    /// Kind: [`ErrorKind::InvalidInput`].
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
    ///
    /// Kind: [`ErrorKind::InvalidInput`].
    #[error("model `{model}` {role} `{tensor}` is not bound in the {role} tensor set")]
    MissingTensor {
        /// The model (its load label).
        model: String,
        /// `"input"` or `"output"`.
        role: &'static str,
        /// The model tensor's name.
        tensor: String,
    },

    /// A name given for a model input or output that the model does not have.
    ///
    /// Kind: [`ErrorKind::InvalidInput`].
    #[error("model `{model}` has no {role} `{tensor}` (its {role}s: {})", known.join(", "))]
    UnknownTensor {
        /// The model (its load label).
        model: String,
        /// `"input"` or `"output"`.
        role: &'static str,
        /// The name given.
        tensor: String,
        /// The names the model has for that role.
        known: Vec<String>,
    },

    /// A tensor is on a different NeuronCore than the model or tensor it is used with.
    ///
    /// Kind: [`ErrorKind::InvalidInput`].
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
    ///
    /// Kind: [`ErrorKind::InvalidInput`].
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
    ///
    /// Kind: [`ErrorKind::Busy`].
    #[error("{what} is still in use ({users} other handles or in-flight requests hold it)")]
    InUse {
        /// The handle, e.g. `"tensor set"`.
        what: String,
        /// How many other holders there are.
        users: usize,
    },

    /// A runtime is already initialised for this library (or, for the visible-cores
    /// setting, for any library): libnrt allows one per process.
    ///
    /// Kind: [`ErrorKind::Busy`] (the other runtime may close).
    #[error(
        "the Neuron runtime is already initialised in this process (drop every Runtime, Model, Tensor and TensorSet first)"
    )]
    AlreadyInitialized,

    /// A file could not be read.
    ///
    /// Kind: by the OS error: [`ErrorKind::NotFound`], [`PermissionDenied`](ErrorKind::PermissionDenied), [`InvalidData`](ErrorKind::InvalidData) for invalid data or a file that ends early, else [`Other`](ErrorKind::Other).
    #[error("could not read {path}: {error}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error (in the message, so not also a `source()`).
        error: std::io::Error,
    },

    /// An execution unit is in its terminal state after a fatal error (reported by
    /// libnrt as `NRT_EXEC_UNIT_UNRECOVERABLE`, or a request that completed with a fatal
    /// status such as a timeout or a hardware error). Nothing was scheduled.
    ///
    /// The unit will not accept work again in this process: requests already queued on
    /// it still complete with their own status, but recovering needs the runtime to be
    /// re-initialised, which in practice means restarting the process (on real hardware
    /// sometimes also reloading the Neuron driver or rebooting the instance).
    ///
    /// Kind: [`ErrorKind::DeviceFailure`].
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
    ///
    /// Kind: [`ErrorKind::ResourceExhausted`].
    #[error("could not start a thread for {what}: {error}")]
    Thread {
        /// What the thread was for.
        what: &'static str,
        /// The OS error (in the message, so not also a `source()`).
        error: std::io::Error,
    },

    /// One job of a staged pipeline or of replicas failed at one of its stages; the
    /// other jobs carry on (unless its core became unrecoverable).
    ///
    /// Kind: the kind of the job's error.
    #[error("job {job} failed at the {stage} stage on core {core}: {error}")]
    Stage {
        /// The stage that failed.
        stage: crate::parallel::staged::Stage,
        /// The job's index: in its run (0 for the first job), or for
        /// [`Replicas::execute`](crate::Replicas::execute) among the replicas'
        /// synchronous jobs.
        job: u64,
        /// The NeuronCore the job ran on.
        core: u32,
        /// What went wrong (in the message, so not also a `source()`).
        error: Box<Error>,
    },

    /// A [`ModelPool`](crate::ModelPool) cannot take the request: it is shutting down or
    /// shut down, or every copy of its model is out of service (`reason` says which, with
    /// the fatal status of each copy). Nothing was run.
    ///
    /// Kind: [`ErrorKind::Unavailable`].
    #[error("model pool of `{model}` cannot serve: {reason}")]
    PoolUnavailable {
        /// The pool's model.
        model: String,
        /// Why: shut down, or no copy left in service (and why each left).
        reason: String,
    },

    /// libnrt reported success but returned something unusable (e.g. a null handle).
    ///
    /// Kind: [`ErrorKind::Internal`].
    #[error("{function} returned an unusable result: {reason}")]
    UnexpectedResult {
        /// The C function.
        function: &'static str,
        /// What was wrong with its result.
        reason: String,
    },

    /// A bundle's files, aliases, roles or weights are wrong (see
    /// [`BundleError`](crate::generate::BundleError)); nothing ran. Boxed: most errors
    /// are not this one.
    ///
    /// Kind: [`BundleError::kind`](crate::generate::BundleError::kind): [`ErrorKind::InvalidData`], but [`InvalidInput`](ErrorKind::InvalidInput) for a tensor of the wrong element type bound by the caller.
    #[error("{0}")]
    Bundle(Box<crate::generate::BundleError>),

    /// The continuous-batching scheduler refused a request or ended a sequence (see
    /// [`BatchError`](crate::generate::BatchError)). Boxed: most errors are not this one.
    #[error("{0}")]
    Batching(Box<crate::generate::BatchError>),
}

impl Error {
    /// What kind of failure this is, for code that maps errors to its own answers (an
    /// HTTP status, a retry, a metric): see [`ErrorKind`] and each variant's "Kind".
    ///
    /// ```
    /// use neuron_rt::{ErrorKind, Runtime};
    ///
    /// let runtime = Runtime::builder().simulator().build()?;
    /// let err = runtime.load_model_file("no/such/model.neff").unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::NotFound);
    /// # Ok::<(), neuron_rt::Error>(())
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Nrt {
                function, status, ..
            } => ErrorKind::of_status(*status, function),
            Error::LibraryNotFound(_) => ErrorKind::NotFound,
            Error::Unsupported { .. } => ErrorKind::Unsupported,
            Error::InvalidArgument { .. }
            | Error::SizeMismatch { .. }
            | Error::WrongElementType { .. }
            | Error::WrongLength { .. }
            | Error::WrongShape { .. }
            | Error::InputMismatch(_)
            | Error::MissingInput(_)
            | Error::DuplicateInput { .. }
            | Error::OutOfBounds { .. }
            | Error::MissingTensor { .. }
            | Error::UnknownTensor { .. }
            | Error::WrongCore { .. }
            | Error::ForeignHandle { .. } => ErrorKind::InvalidInput,
            Error::Env { .. } => ErrorKind::Misconfigured,
            Error::InUse { .. } | Error::AlreadyInitialized => ErrorKind::Busy,
            Error::Io { error, .. } => ErrorKind::of_io(error),
            Error::Unrecoverable { .. } => ErrorKind::DeviceFailure,
            Error::Thread { .. } => ErrorKind::ResourceExhausted,
            Error::Stage { error, .. } => error.kind(),
            Error::PoolUnavailable { .. } => ErrorKind::Unavailable,
            Error::UnexpectedResult { .. } => ErrorKind::Internal,
            Error::Bundle(bundle) => bundle.kind(),
            Error::Batching(batch) => batch.kind(),
        }
    }

    /// The libnrt status, when this error came from libnrt.
    pub fn status(&self) -> Option<NrtStatus> {
        match self {
            Error::Nrt { status, .. } | Error::Unrecoverable { status, .. } => Some(*status),
            Error::Stage { error, .. } => error.status(),
            Error::Batching(b) => match **b {
                crate::generate::BatchError::Step { status, .. } => status,
                _ => None,
            },
            _ => None,
        }
    }

    /// What to do about this error, when the crate could find out: the environment
    /// variables that affect the failing call and their values, missing or inaccessible
    /// `/dev/neuron*` devices, the processes holding them, per-core memory, what a model
    /// file that is not a NEFF contains, and how to see libnrt's own reason. One finding
    /// per line. Also shown by `Display`, after `hint: `.
    ///
    /// Present for failures of `nrt_init` ([`RuntimeBuilder::build`](crate::RuntimeBuilder::build)),
    /// `nrt_load` (the `Runtime::load_model*` methods), tensor allocation, and for
    /// [`Error::LibraryNotFound`].
    pub fn hint(&self) -> Option<&str> {
        match self {
            Error::Nrt { diagnosis, .. } => diagnosis.as_ref()?.hint.as_deref(),
            Error::LibraryNotFound(load) => Some(crate::diagnose::library_not_found_hint(load)),
            _ => None,
        }
    }

    /// The specific cause of an [`Error::Nrt`] when the diagnosis found one (for example
    /// "core 3 does not exist: 2 NeuronCores are visible (cores 0-1)"); the other
    /// findings are in [`Error::hint`].
    ///
    /// On the simulator every failure it explains has one, `"nrt-sim's reason: ..."`:
    /// executions, tensor operations, collectives (e.g. which rank sent a part of which
    /// size), async requests (the request's own reason, by its sequence id). A real
    /// libnrt gives no reason to its caller (it logs it, see `NEURON_RT_LOG_LEVEL`), so
    /// there the cause comes from the diagnosis alone. Read on the error path only: a
    /// successful call costs nothing more.
    pub fn cause(&self) -> Option<&str> {
        match self {
            Error::Nrt { diagnosis, .. } => diagnosis.as_ref()?.cause.as_deref(),
            Error::Stage { error, .. } => error.cause(),
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

    /// This error with `context` (what the call was about: model, tensor, core) when it
    /// is an [`Error::Nrt`]; other errors carry their values already. Used on the error
    /// path only, so that the success path builds no text.
    #[cold]
    pub(crate) fn context(mut self, text: String) -> Error {
        if let Error::Nrt { context, .. } = &mut self
            && !text.is_empty()
        {
            *context = Some(text);
        }
        self
    }

    pub(crate) fn invalid(argument: &'static str, reason: impl Into<String>) -> Error {
        Error::InvalidArgument {
            argument,
            reason: reason.into(),
        }
    }
}

/// What the diagnosis of a failed `nrt_init`, `nrt_load` or allocation found out (see
/// [`Error::cause`] and [`Error::hint`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Diagnosis {
    /// The specific cause, when one was found (a core that does not exist, a file that is
    /// not a NEFF, a driver too old for the library, ...): shown before libnrt's generic
    /// status text.
    pub cause: Option<String>,
    /// The other findings (environment, devices, other processes holding them, memory,
    /// the model file, where libnrt's own reason is), one per line.
    pub hint: Option<String>,
}

impl From<nrt_sys::LoadError> for Error {
    fn from(load: nrt_sys::LoadError) -> Error {
        Error::LibraryNotFound(load)
    }
}

/// `prefix + text + suffix`, or nothing when there is no text.
fn affix(prefix: &str, text: Option<&str>, suffix: &str) -> String {
    match text {
        Some(t) if !t.is_empty() => format!("{prefix}{t}{suffix}"),
        _ => String::new(),
    }
}

/// The cause first when there is one, then the status (in parentheses after a cause).
fn cause_and_status(cause: Option<&str>, status: NrtStatus, message: Option<&str>) -> String {
    match cause {
        Some(cause) if !cause.is_empty() => {
            format!("{cause} (libnrt: {})", status_words(status, message))
        }
        _ => status_words(status, message),
    }
}

/// The status in the library's words when it has them (`nrt_get_status_as_str`), else in
/// this crate's, with its number: never both, as both describe the same code.
fn status_words(status: NrtStatus, message: Option<&str>) -> String {
    match message.map(str::trim) {
        Some(text) if !text.is_empty() => format!("{text} (status {})", status.as_raw()),
        _ => status.to_string(),
    }
}

/// `"\nhint: "` and the hint's lines, indented under the first; nothing without a hint.
fn hint_block(hint: Option<&str>) -> String {
    match hint {
        Some(h) if !h.is_empty() => format!("\nhint: {}", h.replace('\n', "\n      ")),
        _ => String::new(),
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
            diagnosis: None,
        };
        assert_eq!(
            e.to_string(),
            "nrt_execute failed for model `add`: Invalid input (status 2)"
        );
        let hinted = Error::Nrt {
            function: "nrt_init",
            status: NrtStatus::Resource,
            message: None,
            context: None,
            diagnosis: Some(Box::new(Diagnosis {
                cause: None,
                hint: Some("first finding\nsecond finding".into()),
            })),
        };
        assert_eq!(
            hinted.to_string(),
            "nrt_init failed: out of resources (status 4)\nhint: first finding\n      second finding"
        );
        assert_eq!(hinted.hint(), Some("first finding\nsecond finding"));
        assert_eq!(e.hint(), None);
        let bare = Error::Nrt {
            function: "nrt_init",
            status: NrtStatus::Other(77),
            message: None,
            context: None,
            diagnosis: None,
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
            diagnosis: None,
        };
        assert!(e.is_retryable());
        assert!(!e.is_fatal());
    }
}
