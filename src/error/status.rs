//! [`NrtStatus`]: the status codes libnrt returns, as a Rust enum that keeps unknown values.

use std::fmt;

use nrt_sys as sys;

/// A status code returned by a libnrt function.
///
/// Every code the runtime documents has a variant; any other value (for example a code
/// added by a newer runtime) is kept as [`NrtStatus::Other`]. Conversion is by value
/// ([`NrtStatus::from_raw`] / [`NrtStatus::as_raw`]), never by transmute, so a value
/// this crate does not know is never undefined behaviour.
///
/// `Display` prints a fixed description written by this crate; the library's own text
/// (from `nrt_get_status_as_str`) travels in [`Error::Nrt`](crate::Error::Nrt).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NrtStatus {
    /// The call succeeded (`NRT_SUCCESS`, 0).
    Success,
    /// A failure the runtime does not classify further (`NRT_FAILURE`, 1).
    Failure,
    /// Invalid input: a bad model file, or tensors that do not match the model (`NRT_INVALID`, 2).
    Invalid,
    /// A handle that the runtime does not know (`NRT_INVALID_HANDLE`, 3).
    InvalidHandle,
    /// A resource (typically device memory) could not be allocated (`NRT_RESOURCE`, 4).
    Resource,
    /// The operation timed out (`NRT_TIMEOUT`, 5).
    Timeout,
    /// The hardware failed (`NRT_HW_ERROR`, 6).
    HwError,
    /// The execution queue has no room for another request (`NRT_QUEUE_FULL`, 7).
    QueueFull,
    /// Not enough NeuronCores are free to load the model (`NRT_LOAD_NOT_ENOUGH_NC`, 9).
    LoadNotEnoughNc,
    /// The model file's packaging version is not supported (`NRT_UNSUPPORTED_NEFF_VERSION`, 10).
    UnsupportedNeffVersion,
    /// Host memory allocation failed (`NRT_FAIL_HOST_MEM_ALLOC`, 11; kept for compatibility).
    FailHostMemAlloc,
    /// The runtime has not been initialised (`NRT_UNINITIALIZED`, 13).
    Uninitialized,
    /// The runtime has been closed (`NRT_CLOSED`, 14).
    Closed,
    /// A queue with no data was accessed (`NRT_QUEUE_EMPTY`, 15).
    QueueEmpty,
    /// An execution unit hit a fatal error and needs a runtime restart
    /// (`NRT_EXEC_UNIT_UNRECOVERABLE`, 101).
    ExecUnitUnrecoverable,
    /// The input submitted for execution is invalid (`NRT_EXEC_BAD_INPUT`, 1002).
    ExecBadInput,
    /// The execution completed but produced numerical errors such as NaN
    /// (`NRT_EXEC_COMPLETED_WITH_NUM_ERR`, 1003).
    ExecCompletedWithNumErr,
    /// The execution completed with other errors (`NRT_EXEC_COMPLETED_WITH_ERR`, 1004).
    ExecCompletedWithErr,
    /// The core is in use by another model or process (`NRT_EXEC_NC_BUSY`, 1005).
    ExecNcBusy,
    /// An indirect copy or embedding update went out of bounds (`NRT_EXEC_OOB`, 1006).
    ExecOob,
    /// A collective operation is still pending (`NRT_COLL_PENDING`, 1100).
    CollPending,
    /// Stuck in a collective, possibly because of a hardware error on another worker
    /// (`NRT_EXEC_HW_ERR_COLLECTIVES`, 1200).
    ExecHwErrCollectives,
    /// An uncorrectable, unrepairable HBM memory error (`NRT_EXEC_HW_ERR_HBM_UE`, 1201).
    ExecHwErrHbmUe,
    /// A parity error in on-chip memory (`NRT_EXEC_HW_ERR_NC_UE`, 1202).
    ExecHwErrNcUe,
    /// A DMA engine hit an unrecoverable error (`NRT_EXEC_HW_ERR_DMA_ABORT`, 1203).
    ExecHwErrDmaAbort,
    /// The software notification queue overflowed (`NRT_EXEC_SW_NQ_OVERFLOW`, 1204).
    ExecSwNqOverflow,
    /// An uncorrectable HBM error that a repair can fix
    /// (`NRT_EXEC_HW_ERR_REPAIRABLE_HBM_UE`, 1205).
    ExecHwErrRepairableHbmUe,
    /// The EFA network proxy failed (`NRT_NETWORK_PROXY_FAILURE`, 1206).
    NetworkProxyFailure,
    /// A value this crate does not know.
    Other(u32),
}

/// Every named variant with its C value, in one place so the two directions of the
/// conversion cannot disagree.
const TABLE: [(NrtStatus, sys::NRT_STATUS); 28] = [
    (NrtStatus::Success, sys::NRT_SUCCESS),
    (NrtStatus::Failure, sys::NRT_FAILURE),
    (NrtStatus::Invalid, sys::NRT_INVALID),
    (NrtStatus::InvalidHandle, sys::NRT_INVALID_HANDLE),
    (NrtStatus::Resource, sys::NRT_RESOURCE),
    (NrtStatus::Timeout, sys::NRT_TIMEOUT),
    (NrtStatus::HwError, sys::NRT_HW_ERROR),
    (NrtStatus::QueueFull, sys::NRT_QUEUE_FULL),
    (NrtStatus::LoadNotEnoughNc, sys::NRT_LOAD_NOT_ENOUGH_NC),
    (
        NrtStatus::UnsupportedNeffVersion,
        sys::NRT_UNSUPPORTED_NEFF_VERSION,
    ),
    (NrtStatus::FailHostMemAlloc, sys::NRT_FAIL_HOST_MEM_ALLOC),
    (NrtStatus::Uninitialized, sys::NRT_UNINITIALIZED),
    (NrtStatus::Closed, sys::NRT_CLOSED),
    (NrtStatus::QueueEmpty, sys::NRT_QUEUE_EMPTY),
    (
        NrtStatus::ExecUnitUnrecoverable,
        sys::NRT_EXEC_UNIT_UNRECOVERABLE,
    ),
    (NrtStatus::ExecBadInput, sys::NRT_EXEC_BAD_INPUT),
    (
        NrtStatus::ExecCompletedWithNumErr,
        sys::NRT_EXEC_COMPLETED_WITH_NUM_ERR,
    ),
    (
        NrtStatus::ExecCompletedWithErr,
        sys::NRT_EXEC_COMPLETED_WITH_ERR,
    ),
    (NrtStatus::ExecNcBusy, sys::NRT_EXEC_NC_BUSY),
    (NrtStatus::ExecOob, sys::NRT_EXEC_OOB),
    (NrtStatus::CollPending, sys::NRT_COLL_PENDING),
    (
        NrtStatus::ExecHwErrCollectives,
        sys::NRT_EXEC_HW_ERR_COLLECTIVES,
    ),
    (NrtStatus::ExecHwErrHbmUe, sys::NRT_EXEC_HW_ERR_HBM_UE),
    (NrtStatus::ExecHwErrNcUe, sys::NRT_EXEC_HW_ERR_NC_UE),
    (NrtStatus::ExecHwErrDmaAbort, sys::NRT_EXEC_HW_ERR_DMA_ABORT),
    (NrtStatus::ExecSwNqOverflow, sys::NRT_EXEC_SW_NQ_OVERFLOW),
    (
        NrtStatus::ExecHwErrRepairableHbmUe,
        sys::NRT_EXEC_HW_ERR_REPAIRABLE_HBM_UE,
    ),
    (
        NrtStatus::NetworkProxyFailure,
        sys::NRT_NETWORK_PROXY_FAILURE,
    ),
];

impl NrtStatus {
    /// The status for a raw `NRT_STATUS` value; unknown values become [`NrtStatus::Other`].
    pub fn from_raw(raw: sys::NRT_STATUS) -> NrtStatus {
        TABLE
            .iter()
            .find(|(_, value)| *value == raw)
            .map_or(NrtStatus::Other(raw), |(status, _)| *status)
    }

    /// The raw `NRT_STATUS` value.
    pub fn as_raw(self) -> sys::NRT_STATUS {
        match self {
            NrtStatus::Other(raw) => raw,
            known => TABLE
                .iter()
                .find(|(status, _)| *status == known)
                .map(|(_, value)| *value)
                // Every variant except `Other` is in TABLE (checked by a unit test).
                .unwrap_or(sys::NRT_FAILURE),
        }
    }

    /// Whether this is [`NrtStatus::Success`].
    pub fn is_success(self) -> bool {
        self == NrtStatus::Success
    }

    /// Whether the same call may succeed if simply tried again later, with nothing
    /// else changed.
    ///
    /// True for [`QueueFull`](NrtStatus::QueueFull) (wait for a completion, then
    /// resubmit: nothing was queued) and [`ExecNcBusy`](NrtStatus::ExecNcBusy) (the core
    /// is held by another model or process, which may release it).
    pub fn is_retryable(self) -> bool {
        matches!(self, NrtStatus::QueueFull | NrtStatus::ExecNcBusy)
    }

    /// Whether the device or an execution unit is left in a state that only
    /// re-initialising the runtime (in practice restarting the process) can clear.
    ///
    /// True for [`ExecUnitUnrecoverable`](NrtStatus::ExecUnitUnrecoverable),
    /// [`HwError`](NrtStatus::HwError), the hardware errors of the 1200 series
    /// (collectives hang, HBM and on-chip memory errors, DMA abort, repairable HBM
    /// error, which needs a repair before the device is usable again) and
    /// [`Timeout`](NrtStatus::Timeout), because the runtime puts an execution unit whose
    /// request timed out into its terminal state. Not fatal: software notification
    /// queue overflow (lost notifications, not a broken device) and network proxy
    /// failure (a host-side service).
    pub fn is_fatal(self) -> bool {
        matches!(
            self,
            NrtStatus::ExecUnitUnrecoverable
                | NrtStatus::HwError
                | NrtStatus::Timeout
                | NrtStatus::ExecHwErrCollectives
                | NrtStatus::ExecHwErrHbmUe
                | NrtStatus::ExecHwErrNcUe
                | NrtStatus::ExecHwErrDmaAbort
                | NrtStatus::ExecHwErrRepairableHbmUe
        )
    }

    /// A short description of the status, written by this crate.
    pub fn description(self) -> &'static str {
        match self {
            NrtStatus::Success => "success",
            NrtStatus::Failure => "unspecified failure",
            NrtStatus::Invalid => "invalid argument, model or tensor binding",
            NrtStatus::InvalidHandle => "invalid handle",
            NrtStatus::Resource => "out of resources",
            NrtStatus::Timeout => "timed out",
            NrtStatus::HwError => "hardware error",
            NrtStatus::QueueFull => "execution queue full",
            NrtStatus::LoadNotEnoughNc => "not enough free NeuronCores to load the model",
            NrtStatus::UnsupportedNeffVersion => "unsupported model file version",
            NrtStatus::FailHostMemAlloc => "host memory allocation failed",
            NrtStatus::Uninitialized => "runtime not initialised",
            NrtStatus::Closed => "runtime closed",
            NrtStatus::QueueEmpty => "queue empty",
            NrtStatus::ExecUnitUnrecoverable => "execution unit in an unrecoverable state",
            NrtStatus::ExecBadInput => "bad execution input",
            NrtStatus::ExecCompletedWithNumErr => "execution completed with numerical errors",
            NrtStatus::ExecCompletedWithErr => "execution completed with errors",
            NrtStatus::ExecNcBusy => "NeuronCore busy",
            NrtStatus::ExecOob => "out-of-bounds access during execution",
            NrtStatus::CollPending => "collective operation pending",
            NrtStatus::ExecHwErrCollectives => "hardware error in a collective operation",
            NrtStatus::ExecHwErrHbmUe => "uncorrectable HBM error",
            NrtStatus::ExecHwErrNcUe => "on-chip memory parity error",
            NrtStatus::ExecHwErrDmaAbort => "DMA engine abort",
            NrtStatus::ExecSwNqOverflow => "notification queue overflow",
            NrtStatus::ExecHwErrRepairableHbmUe => "repairable uncorrectable HBM error",
            NrtStatus::NetworkProxyFailure => "network proxy failure",
            NrtStatus::Other(_) => "unknown status",
        }
    }
}

impl fmt::Display for NrtStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (status {})", self.description(), self.as_raw())
    }
}

impl From<sys::NRT_STATUS> for NrtStatus {
    fn from(raw: sys::NRT_STATUS) -> NrtStatus {
        NrtStatus::from_raw(raw)
    }
}

impl From<NrtStatus> for sys::NRT_STATUS {
    fn from(status: NrtStatus) -> sys::NRT_STATUS {
        status.as_raw()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_value_round_trips_and_is_distinct() {
        for (status, raw) in TABLE {
            assert_eq!(NrtStatus::from_raw(raw), status);
            assert_eq!(status.as_raw(), raw);
            assert!(!matches!(status, NrtStatus::Other(_)));
        }
        let mut raws: Vec<_> = TABLE.iter().map(|(_, r)| *r).collect();
        raws.sort_unstable();
        raws.dedup();
        assert_eq!(raws.len(), TABLE.len());
    }

    #[test]
    fn unknown_values_are_kept() {
        for raw in [8, 12, 16, 100, 1001, 1207, u32::MAX] {
            assert_eq!(NrtStatus::from_raw(raw), NrtStatus::Other(raw));
            assert_eq!(NrtStatus::Other(raw).as_raw(), raw);
        }
    }

    #[test]
    fn retryable_and_fatal_classification() {
        assert!(NrtStatus::QueueFull.is_retryable());
        assert!(NrtStatus::ExecNcBusy.is_retryable());
        assert!(!NrtStatus::Invalid.is_retryable());
        assert!(!NrtStatus::ExecUnitUnrecoverable.is_retryable());
        for fatal in [
            NrtStatus::ExecUnitUnrecoverable,
            NrtStatus::HwError,
            NrtStatus::Timeout,
            NrtStatus::ExecHwErrCollectives,
            NrtStatus::ExecHwErrHbmUe,
            NrtStatus::ExecHwErrNcUe,
            NrtStatus::ExecHwErrDmaAbort,
            NrtStatus::ExecHwErrRepairableHbmUe,
        ] {
            assert!(fatal.is_fatal(), "{fatal:?}");
            assert!(!fatal.is_retryable(), "{fatal:?}");
        }
        for not_fatal in [
            NrtStatus::Success,
            NrtStatus::QueueFull,
            NrtStatus::Invalid,
            NrtStatus::ExecCompletedWithNumErr,
            NrtStatus::ExecSwNqOverflow,
            NrtStatus::NetworkProxyFailure,
            NrtStatus::Other(9999),
        ] {
            assert!(!not_fatal.is_fatal(), "{not_fatal:?}");
        }
    }

    #[test]
    fn display_names_the_value() {
        assert_eq!(
            NrtStatus::QueueFull.to_string(),
            "execution queue full (status 7)"
        );
        assert_eq!(
            NrtStatus::Other(4242).to_string(),
            "unknown status (status 4242)"
        );
    }
}
