//! Status codes: names, descriptions (for `nrt_get_status_as_str`) and parsing by name.

use nrt_sys::*;
use std::ffi::CStr;

/// Every status code the simulator knows: value, C name, description.
pub(crate) const STATUSES: &[(NRT_STATUS, &str, &CStr)] = &[
    (NRT_SUCCESS, "NRT_SUCCESS", c"success"),
    (NRT_FAILURE, "NRT_FAILURE", c"failure"),
    (
        NRT_INVALID,
        "NRT_INVALID",
        c"invalid argument, model file or tensor binding",
    ),
    (NRT_INVALID_HANDLE, "NRT_INVALID_HANDLE", c"invalid handle"),
    (NRT_RESOURCE, "NRT_RESOURCE", c"out of resources"),
    (NRT_TIMEOUT, "NRT_TIMEOUT", c"operation timed out"),
    (NRT_HW_ERROR, "NRT_HW_ERROR", c"hardware failure"),
    (NRT_QUEUE_FULL, "NRT_QUEUE_FULL", c"execution queue is full"),
    (
        NRT_LOAD_NOT_ENOUGH_NC,
        "NRT_LOAD_NOT_ENOUGH_NC",
        c"not enough NeuronCores available to load the model",
    ),
    (
        NRT_UNSUPPORTED_NEFF_VERSION,
        "NRT_UNSUPPORTED_NEFF_VERSION",
        c"unsupported model file version",
    ),
    (
        NRT_FAIL_HOST_MEM_ALLOC,
        "NRT_FAIL_HOST_MEM_ALLOC",
        c"host memory allocation failed",
    ),
    (
        NRT_UNINITIALIZED,
        "NRT_UNINITIALIZED",
        c"runtime is not initialized",
    ),
    (NRT_CLOSED, "NRT_CLOSED", c"runtime has been closed"),
    (NRT_QUEUE_EMPTY, "NRT_QUEUE_EMPTY", c"queue is empty"),
    (
        NRT_EXEC_UNIT_UNRECOVERABLE,
        "NRT_EXEC_UNIT_UNRECOVERABLE",
        c"execution unit is in an unrecoverable state",
    ),
    (
        NRT_EXEC_BAD_INPUT,
        "NRT_EXEC_BAD_INPUT",
        c"invalid input submitted for execution",
    ),
    (
        NRT_EXEC_COMPLETED_WITH_NUM_ERR,
        "NRT_EXEC_COMPLETED_WITH_NUM_ERR",
        c"execution completed with numerical errors",
    ),
    (
        NRT_EXEC_COMPLETED_WITH_ERR,
        "NRT_EXEC_COMPLETED_WITH_ERR",
        c"execution completed with errors",
    ),
    (
        NRT_EXEC_NC_BUSY,
        "NRT_EXEC_NC_BUSY",
        c"NeuronCore is busy (locked by another model or process)",
    ),
    (
        NRT_EXEC_OOB,
        "NRT_EXEC_OOB",
        c"out-of-bounds access during execution",
    ),
    (
        NRT_COLL_PENDING,
        "NRT_COLL_PENDING",
        c"collective still pending",
    ),
    (
        NRT_EXEC_HW_ERR_COLLECTIVES,
        "NRT_EXEC_HW_ERR_COLLECTIVES",
        c"stuck in a collective operation (possible hardware error on another worker)",
    ),
    (
        NRT_EXEC_HW_ERR_HBM_UE,
        "NRT_EXEC_HW_ERR_HBM_UE",
        c"unrepairable uncorrectable device memory error",
    ),
    (
        NRT_EXEC_HW_ERR_NC_UE,
        "NRT_EXEC_HW_ERR_NC_UE",
        c"on-chip memory parity error",
    ),
    (
        NRT_EXEC_HW_ERR_DMA_ABORT,
        "NRT_EXEC_HW_ERR_DMA_ABORT",
        c"unrecoverable DMA engine error",
    ),
    (
        NRT_EXEC_SW_NQ_OVERFLOW,
        "NRT_EXEC_SW_NQ_OVERFLOW",
        c"software notification queue overflow",
    ),
    (
        NRT_EXEC_HW_ERR_REPAIRABLE_HBM_UE,
        "NRT_EXEC_HW_ERR_REPAIRABLE_HBM_UE",
        c"repairable uncorrectable device memory error",
    ),
    (
        NRT_NETWORK_PROXY_FAILURE,
        "NRT_NETWORK_PROXY_FAILURE",
        c"network proxy failure",
    ),
];

/// Description of `status`, or a generic text for values the simulator does not know.
pub(crate) fn description(status: NRT_STATUS) -> &'static CStr {
    STATUSES
        .iter()
        .find(|(v, _, _)| *v == status)
        .map(|(_, _, d)| *d)
        .unwrap_or(c"unknown status code")
}

/// The C name of `status`, if known.
pub(crate) fn name(status: NRT_STATUS) -> Option<&'static str> {
    STATUSES
        .iter()
        .find(|(v, _, _)| *v == status)
        .map(|(_, n, _)| *n)
}

/// Parses a status given as a number or as a name, with or without the `NRT_` prefix,
/// case-insensitively (`1003`, `NRT_TIMEOUT`, `exec_completed_with_err`).
pub(crate) fn parse(text: &str) -> Option<NRT_STATUS> {
    if let Ok(n) = text.parse::<NRT_STATUS>() {
        return Some(n);
    }
    STATUSES
        .iter()
        .find(|(_, n, _)| {
            n.eq_ignore_ascii_case(text)
                || n.strip_prefix("NRT_")
                    .is_some_and(|short| short.eq_ignore_ascii_case(text))
        })
        .map(|(v, _, _)| *v)
}

/// Whether a request that ends with `status` leaves its execution unit unusable
/// (timeouts and hardware errors, as the runtime documents). Kept in step with
/// `neuron_rt::NrtStatus::is_fatal`: the repairable HBM error is a hardware error that
/// needs a repair first; the notification-queue overflow and the network proxy failure
/// are not device faults.
pub(crate) fn is_fatal(status: NRT_STATUS) -> bool {
    matches!(
        status,
        NRT_TIMEOUT
            | NRT_HW_ERROR
            | NRT_EXEC_UNIT_UNRECOVERABLE
            | NRT_EXEC_HW_ERR_COLLECTIVES
            | NRT_EXEC_HW_ERR_HBM_UE
            | NRT_EXEC_HW_ERR_NC_UE
            | NRT_EXEC_HW_ERR_DMA_ABORT
            | NRT_EXEC_HW_ERR_REPAIRABLE_HBM_UE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_parse_by_number_and_name() {
        assert_eq!(parse("1003"), Some(NRT_EXEC_COMPLETED_WITH_NUM_ERR));
        assert_eq!(parse("NRT_TIMEOUT"), Some(NRT_TIMEOUT));
        assert_eq!(parse("exec_completed_with_err"), Some(1004));
        assert_eq!(parse("bogus"), None);
    }

    #[test]
    fn every_known_status_has_a_distinct_description() {
        let mut seen = std::collections::HashSet::new();
        for (v, n, d) in STATUSES {
            assert!(seen.insert(d.to_bytes()), "{n} shares its description");
            assert_eq!(description(*v), *d);
            assert_eq!(name(*v), Some(*n));
        }
        assert_eq!(description(4242), c"unknown status code");
    }

    #[test]
    fn timeouts_and_hardware_errors_are_fatal() {
        assert!(is_fatal(NRT_TIMEOUT));
        assert!(is_fatal(NRT_EXEC_HW_ERR_NC_UE));
        assert!(is_fatal(NRT_EXEC_HW_ERR_REPAIRABLE_HBM_UE));
        assert!(!is_fatal(NRT_NETWORK_PROXY_FAILURE));
        assert!(!is_fatal(NRT_EXEC_SW_NQ_OVERFLOW));
        assert!(!is_fatal(NRT_EXEC_COMPLETED_WITH_NUM_ERR));
        assert!(!is_fatal(NRT_SUCCESS));
    }
}
