//! [`ErrorKind`]: what kind of failure an [`Error`](super::Error) is, for code that maps
//! errors to its own (an HTTP status, a retry decision, a metric label).

use std::fmt;

use super::status::NrtStatus;

/// The classification of an [`Error`](super::Error) ([`Error::kind`](super::Error::kind)):
/// whose mistake it is and what may help, without matching every variant.
///
/// A service can answer from the kind alone, e.g. [`InvalidInput`](ErrorKind::InvalidInput)
/// with HTTP 400, [`Busy`](ErrorKind::Busy) with 429, [`ResourceExhausted`](ErrorKind::ResourceExhausted)
/// and [`Unavailable`](ErrorKind::Unavailable) with 503, [`DeviceFailure`](ErrorKind::DeviceFailure)
/// with 500. New kinds may be added (the enum is `#[non_exhaustive]`): keep a `_` arm.
///
/// ```
/// use neuron_rt::{Error, ErrorKind, Runtime, inputs};
/// use neuron_rt::sim::ModelBuilder;
///
/// let runtime = Runtime::builder().simulator().build()?;
/// let model = runtime.load_model(&ModelBuilder::add_example(&[2, 3]).build().unwrap())?;
/// let err = model.run(&inputs!["a" => &[1.0f32; 5], "b" => &[2.0f32; 6]]).unwrap_err();
/// let http = match err.kind() {
///     ErrorKind::InvalidInput => 400,
///     ErrorKind::Busy => 429,
///     ErrorKind::ResourceExhausted | ErrorKind::Unavailable => 503,
///     _ => 500,
/// };
/// assert_eq!(http, 400);
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The caller's values do not fit: a wrong input (name, element type, length, shape),
    /// an argument out of range, a tensor on another core or of another runtime, a byte
    /// range outside a tensor, an input libnrt refused (`NRT_INVALID` outside a load,
    /// `NRT_EXEC_BAD_INPUT`, `NRT_EXEC_OOB`: an index out of range in an input).
    /// Retrying the same call fails the same way.
    InvalidInput,
    /// A model, weight file, metadata file or bundle manifest is malformed or does not
    /// describe the model (a file that is not a NEFF, a corrupt `.safetensors`, a weight
    /// of the wrong shape, `NRT_INVALID` from a load).
    InvalidData,
    /// A file or the libnrt library does not exist where it was looked for.
    NotFound,
    /// The process may not open a file or a device.
    PermissionDenied,
    /// Something the call needs is held right now: the execution queue is full, the
    /// NeuronCore is busy, a collective is pending, a handle is still shared, the
    /// process's one runtime is still open. The same call may succeed later.
    Busy,
    /// Device memory, host memory, NeuronCores or threads ran out (`NRT_RESOURCE`,
    /// `NRT_LOAD_NOT_ENOUGH_NC`, a thread that could not start).
    ResourceExhausted,
    /// The service cannot take work: a model pool shut down or with no copy left in
    /// service, a runtime not initialised or closed, the network proxy failed.
    Unavailable,
    /// The device or an execution on it failed: a hardware error, a timeout, an execution
    /// that completed with errors or numerical errors, an execution unit in its terminal
    /// state ([`Error::Unrecoverable`](super::Error::Unrecoverable)). See
    /// [`Error::is_fatal`](super::Error::is_fatal) for whether the process must restart.
    DeviceFailure,
    /// The loaded libnrt lacks the function or is too old for it, or the model file's
    /// version is not supported.
    Unsupported,
    /// The process is set up wrongly: a launcher's environment variable missing or
    /// inconsistent, a runtime setting libnrt's `nrt_init` refused.
    Misconfigured,
    /// libnrt returned something it should not have (a null handle, an unknown handle):
    /// a bug in libnrt or in this crate.
    Internal,
    /// Anything else: a failure libnrt does not classify (`NRT_FAILURE`, a status this
    /// crate does not know), an I/O error of no kind above.
    Other,
}

impl ErrorKind {
    /// The kind's name in snake case, e.g. `"invalid_input"` (for logs and metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::InvalidData => "invalid_data",
            ErrorKind::NotFound => "not_found",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::Busy => "busy",
            ErrorKind::ResourceExhausted => "resource_exhausted",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::DeviceFailure => "device_failure",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Misconfigured => "misconfigured",
            ErrorKind::Internal => "internal",
            ErrorKind::Other => "other",
        }
    }

    /// The kind of a failure status returned by the C function `function` (a status of
    /// `NRT_INVALID` means a bad model for `nrt_load*`, a bad setting for `nrt_init`, and
    /// bad arguments elsewhere).
    pub(crate) fn of_status(status: NrtStatus, function: &str) -> ErrorKind {
        match status {
            NrtStatus::Invalid if function.starts_with("nrt_load") => ErrorKind::InvalidData,
            NrtStatus::Invalid if function == "nrt_init" => ErrorKind::Misconfigured,
            NrtStatus::Invalid | NrtStatus::ExecBadInput | NrtStatus::ExecOob => {
                ErrorKind::InvalidInput
            }
            NrtStatus::QueueFull | NrtStatus::ExecNcBusy | NrtStatus::CollPending => {
                ErrorKind::Busy
            }
            NrtStatus::Resource | NrtStatus::FailHostMemAlloc | NrtStatus::LoadNotEnoughNc => {
                ErrorKind::ResourceExhausted
            }
            NrtStatus::Uninitialized | NrtStatus::Closed | NrtStatus::NetworkProxyFailure => {
                ErrorKind::Unavailable
            }
            NrtStatus::Timeout
            | NrtStatus::HwError
            | NrtStatus::ExecUnitUnrecoverable
            | NrtStatus::ExecCompletedWithNumErr
            | NrtStatus::ExecCompletedWithErr
            | NrtStatus::ExecHwErrCollectives
            | NrtStatus::ExecHwErrHbmUe
            | NrtStatus::ExecHwErrNcUe
            | NrtStatus::ExecHwErrDmaAbort
            | NrtStatus::ExecSwNqOverflow
            | NrtStatus::ExecHwErrRepairableHbmUe => ErrorKind::DeviceFailure,
            NrtStatus::UnsupportedNeffVersion => ErrorKind::Unsupported,
            // A success or an unknown handle reported as a failure: not the caller's doing
            // through a safe API.
            NrtStatus::Success | NrtStatus::InvalidHandle => ErrorKind::Internal,
            NrtStatus::Failure | NrtStatus::QueueEmpty | NrtStatus::Other(_) => ErrorKind::Other,
        }
    }

    /// The kind of an OS error reading a file.
    pub(crate) fn of_io(error: &std::io::Error) -> ErrorKind {
        use std::io::ErrorKind as Io;
        match error.kind() {
            Io::NotFound => ErrorKind::NotFound,
            Io::PermissionDenied => ErrorKind::PermissionDenied,
            Io::OutOfMemory => ErrorKind::ResourceExhausted,
            Io::InvalidData | Io::UnexpectedEof => ErrorKind::InvalidData,
            Io::WouldBlock | Io::ResourceBusy => ErrorKind::Busy,
            _ => ErrorKind::Other,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_by_meaning_and_invalid_by_function() {
        assert_eq!(
            ErrorKind::of_status(NrtStatus::Invalid, "nrt_load"),
            ErrorKind::InvalidData
        );
        assert_eq!(
            ErrorKind::of_status(NrtStatus::Invalid, "nrt_load_collectives"),
            ErrorKind::InvalidData
        );
        assert_eq!(
            ErrorKind::of_status(NrtStatus::Invalid, "nrt_init"),
            ErrorKind::Misconfigured
        );
        assert_eq!(
            ErrorKind::of_status(NrtStatus::Invalid, "nrt_execute"),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            ErrorKind::of_status(NrtStatus::QueueFull, "nrta_execute_schedule"),
            ErrorKind::Busy
        );
        assert_eq!(
            ErrorKind::of_status(NrtStatus::HwError, "nrt_execute"),
            ErrorKind::DeviceFailure
        );
        assert_eq!(
            ErrorKind::of_status(NrtStatus::Other(77), "nrt_execute"),
            ErrorKind::Other
        );
        // Every fatal status is a device failure.
        for raw in 0..2000 {
            let status = NrtStatus::from_raw(raw);
            if status.is_fatal() {
                assert_eq!(
                    ErrorKind::of_status(status, "nrt_execute"),
                    ErrorKind::DeviceFailure,
                    "{status:?}"
                );
            }
            if status.is_retryable() {
                assert_eq!(ErrorKind::of_status(status, "nrt_execute"), ErrorKind::Busy);
            }
        }
    }

    #[test]
    fn io_errors_map_by_their_kind() {
        let e = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(ErrorKind::of_io(&e), ErrorKind::NotFound);
        let e = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(ErrorKind::of_io(&e), ErrorKind::PermissionDenied);
        assert_eq!(ErrorKind::Busy.to_string(), "busy");
    }
}
