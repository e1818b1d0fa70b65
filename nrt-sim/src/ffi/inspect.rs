//! Inspect (profiler 2.0, `nrt_inspect_*`): options objects, sessions, and capture
//! files of the simulator's own format (README.md, "Profiling captures"); continuous
//! profiling is in `continuous.rs`.
//!
//! Choices where the runtime documents no status: NULL options where a config is
//! required, or an unknown activity / event type -> `NRT_INVALID`; a freed options
//! object -> `NRT_INVALID_HANDLE`; beginning a session while one runs, stopping or
//! saving without one, or saving a core that ran nothing since continuous profiling
//! started -> `NRT_INVALID`; continuous profiling while an inspect session captures
//! device profiles -> `NRT_FAILURE` (the profiler guide: it does not start then); a
//! capture that cannot be written -> `NRT_FAILURE`. Neither needs `nrt_init`.

use super::args::{c_bytes, dir_arg, free_strings, guard, put, put_strings};
use super::sys_trace::event_type_arg;
use crate::error::{Res, fail};
use crate::opaque::Registry;
use crate::profile::{self, InspectRun};
use crate::trace::{self, Capture, Recorder};
use nrt_sys::*;
use std::collections::BTreeSet;
use std::ffi::c_char;
use std::path::PathBuf;

/// Activity types, as `nrt_inspect_config_get_all_activity_types` lists them.
const ACTIVITY_TYPES: &[&str] = &[
    "system_profile",
    "device_profile",
    "host_memory",
    "cpu_util",
];

#[derive(Clone)]
struct InspectConfig {
    session_id: i64,
    output_dir: PathBuf,
    activities: BTreeSet<&'static str>,
    capture: Capture,
    enable_inspect: bool,
    on_fail: bool,
}

impl Default for InspectConfig {
    fn default() -> Self {
        InspectConfig {
            session_id: 1,
            output_dir: PathBuf::from(profile::DEFAULT_OUTPUT_DIR),
            activities: ACTIVITY_TYPES.iter().copied().collect(),
            capture: Capture::default(),
            enable_inspect: false,
            on_fail: false,
        }
    }
}

static CONFIGS: Registry<InspectConfig> = Registry::new(0x49, "inspect config");

fn with_config(
    options: *const nrt_inspect_config_t,
    f: impl FnOnce(&mut InspectConfig) -> Res<()>,
) -> Res<()> {
    CONFIGS.with(options, "options", f)
}

fn begin(cfg: InspectConfig) -> Res<()> {
    let activities: Vec<&'static str> = ACTIVITY_TYPES
        .iter()
        .copied()
        .filter(|a| cfg.activities.contains(a))
        .collect();
    let run = InspectRun {
        output_dir: cfg.output_dir.join(format!("session_{}", cfg.session_id)),
        session_id: cfg.session_id,
        all: cfg.enable_inspect && activities.contains(&"device_profile"),
        on_fail: cfg.on_fail,
        off_cores: cfg.capture.off_cores.clone(),
        activities,
        execs: Vec::new(),
    };
    let system = cfg.enable_inspect && run.activities.contains(&"system_profile");
    if !profile::begin_inspect(run) {
        return fail(
            NRT_INVALID,
            "an inspect session is already running (nrt_inspect_stop first)",
        );
    }
    if system && !trace::install(true, Recorder::new(cfg.capture)) {
        return fail(NRT_FAILURE, "inspect's system trace is already recording");
    }
    Ok(())
}

/// Begins an inspect session configured by the environment: `NEURON_RT_INSPECT_ENABLE`
/// (1: capture every execution), `NEURON_RT_INSPECT_OUTPUT_DIR` (default `./output`),
/// `NEURON_RT_INSPECT_SYSTEM_PROFILE` / `NEURON_RT_INSPECT_DEVICE_PROFILE` (0: leave
/// that part out), `NEURON_RT_INSPECT_ON_FAIL` (1: device profiles of failing executions).
///
/// # Safety
///
/// Always safe to call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_inspect_begin() -> NRT_STATUS {
    guard("nrt_inspect_begin", || {
        let flag = |name: &str| std::env::var(name).ok().map(|v| v.trim() == "1");
        let mut cfg = InspectConfig {
            enable_inspect: flag("NEURON_RT_INSPECT_ENABLE").unwrap_or(false),
            on_fail: flag("NEURON_RT_INSPECT_ON_FAIL").unwrap_or(false),
            ..InspectConfig::default()
        };
        if let Some(dir) =
            std::env::var_os("NEURON_RT_INSPECT_OUTPUT_DIR").filter(|d| !d.is_empty())
        {
            cfg.output_dir = dir.into();
        }
        if flag("NEURON_RT_INSPECT_SYSTEM_PROFILE") == Some(false) {
            cfg.activities.remove("system_profile");
        }
        if flag("NEURON_RT_INSPECT_DEVICE_PROFILE") == Some(false) {
            cfg.activities.remove("device_profile");
        }
        begin(cfg)
    })
}

/// Begins an inspect session with `options` (NULL: the defaults, which capture
/// nothing until `enable_inspect` or `enable_inspect_on_fail` is set).
///
/// # Safety
///
/// The token is checked; any value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_inspect_begin_with_options(
    options: *mut nrt_inspect_config_t,
) -> NRT_STATUS {
    guard("nrt_inspect_begin_with_options", || {
        let mut cfg = InspectConfig::default();
        if !options.is_null() {
            with_config(options, |c| {
                cfg = c.clone();
                Ok(())
            })?;
        }
        begin(cfg)
    })
}

/// Ends the inspect session and writes its capture, if it captured anything, to
/// `<output_dir>/session_<id>/nrt_sim_inspect_<pid>_<n>.json`.
///
/// # Safety
///
/// Always safe to call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_inspect_stop() -> NRT_STATUS {
    guard("nrt_inspect_stop", || {
        let recorder = trace::remove(true);
        let Some(run) = profile::end_inspect() else {
            return fail(NRT_INVALID, "no inspect session is running");
        };
        let events = recorder.map(|mut r| r.take(None, 0));
        if events.is_none() && run.execs.is_empty() {
            return Ok(());
        }
        let text = profile::capture_text(
            "inspect",
            run.session_id,
            &run.activities,
            events.as_deref(),
            &run.execs,
        );
        match profile::write_capture(&run.output_dir, "nrt_sim_inspect", &text) {
            Ok(path) => {
                crate::log::log(
                    crate::log::Level::Info,
                    "nrt_inspect_stop",
                    &format!("capture written to {}", path.display()),
                );
                Ok(())
            }
            Err(e) => fail(
                NRT_FAILURE,
                format!(
                    "cannot write the capture into {}: {e}",
                    run.output_dir.display()
                ),
            ),
        }
    })
}

/// Allocates inspect options with the defaults.
///
/// # Safety
///
/// `options` must be NULL or valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_inspect_config_allocate(
    options: *mut *mut nrt_inspect_config_t,
) -> NRT_STATUS {
    guard("nrt_inspect_config_allocate", || {
        if options.is_null() {
            return fail(NRT_INVALID, "options is NULL");
        }
        let token = CONFIGS.insert(InspectConfig::default())?;
        // SAFETY: non-null and writable (caller).
        unsafe { put(options, "options", token) }
    })
}

/// Resets inspect options to the defaults (session 1, `./output`, every activity,
/// core and event type, inspect and inspect-on-fail off).
///
/// # Safety
///
/// The token is checked; any value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_inspect_config_set_defaults(
    options: *mut nrt_inspect_config_t,
) -> NRT_STATUS {
    guard("nrt_inspect_config_set_defaults", || {
        with_config(options, |c| {
            *c = InspectConfig::default();
            Ok(())
        })
    })
}

/// Frees inspect options.
///
/// # Safety
///
/// The token is checked; any value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_inspect_config_free(options: *mut nrt_inspect_config_t) -> NRT_STATUS {
    guard("nrt_inspect_config_free", || {
        CONFIGS.remove(options, "options").map(drop)
    })
}

/// Sets the session id (captures go to `<output_dir>/session_<id>`).
///
/// # Safety
///
/// The token is checked; any value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_inspect_config_set_session_id(
    options: *mut nrt_inspect_config_t,
    session_id: std::ffi::c_int,
) -> NRT_STATUS {
    guard("nrt_inspect_config_set_session_id", || {
        with_config(options, |c| {
            c.session_id = session_id.into();
            Ok(())
        })
    })
}

/// Sets the output directory (copied; created when the capture is written).
///
/// # Safety
///
/// `output_dir` must be NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_inspect_config_set_output_dir(
    options: *mut nrt_inspect_config_t,
    output_dir: *const c_char,
) -> NRT_STATUS {
    guard("nrt_inspect_config_set_output_dir", || {
        // SAFETY: forwarded from the caller.
        let dir = unsafe { dir_arg(output_dir) }?;
        with_config(options, |c| {
            c.output_dir = dir;
            Ok(())
        })
    })
}

/// Sets the system trace's ring capacity per core.
///
/// # Safety
///
/// The token is checked; any value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_inspect_config_set_sys_trace_max_events_per_nc(
    options: *mut nrt_inspect_config_t,
    sys_trace_max_events_per_nc: u64,
) -> NRT_STATUS {
    guard("nrt_inspect_config_set_sys_trace_max_events_per_nc", || {
        with_config(options, |c| {
            c.capture.max_events_per_nc = sys_trace_max_events_per_nc;
            Ok(())
        })
    })
}

/// Turns capture on or off for core `nc_idx` (system trace and device profiles).
///
/// # Safety
///
/// The token is checked; any value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_inspect_config_set_capture_enabled_for_nc(
    options: *mut nrt_inspect_config_t,
    nc_idx: u32,
    enabled: bool,
) -> NRT_STATUS {
    guard("nrt_inspect_config_set_capture_enabled_for_nc", || {
        with_config(options, |c| {
            if enabled {
                c.capture.off_cores.remove(&nc_idx);
            } else {
                c.capture.off_cores.insert(nc_idx);
            }
            Ok(())
        })
    })
}

/// Turns capture on or off for a system trace event type.
///
/// # Safety
///
/// `event_type` must be NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_inspect_config_set_capture_enabled_for_event_type_string(
    options: *mut nrt_inspect_config_t,
    event_type: *const c_char,
    enabled: bool,
) -> NRT_STATUS {
    guard(
        "nrt_inspect_config_set_capture_enabled_for_event_type_string",
        || {
            // SAFETY: forwarded from the caller.
            let ty = unsafe { event_type_arg(event_type) }?;
            with_config(options, |c| {
                if enabled {
                    c.capture.off_types.remove(ty);
                } else {
                    c.capture.off_types.insert(ty);
                }
                Ok(())
            })
        },
    )
}

/// Captures every execution (`true`) or not.
///
/// # Safety
///
/// The token is checked; any value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_inspect_config_set_enable_inspect(
    options: *mut nrt_inspect_config_t,
    enable_inspect: bool,
) -> NRT_STATUS {
    guard("nrt_inspect_config_set_enable_inspect", || {
        with_config(options, |c| {
            c.enable_inspect = enable_inspect;
            Ok(())
        })
    })
}

/// Captures the device profiles of failing executions (`true`) or not.
///
/// # Safety
///
/// The token is checked; any value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_inspect_config_set_enable_inspect_on_fail(
    options: *mut nrt_inspect_config_t,
    enable_inspect_on_fail: bool,
) -> NRT_STATUS {
    guard("nrt_inspect_config_set_enable_inspect_on_fail", || {
        with_config(options, |c| {
            c.on_fail = enable_inspect_on_fail;
            Ok(())
        })
    })
}

/// Every activity type name, in `malloc`ed memory.
///
/// # Safety
///
/// `activity_types` and `count` must be NULL or valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_inspect_config_get_all_activity_types(
    activity_types: *mut *mut *const c_char,
    count: *mut usize,
) -> NRT_STATUS {
    // SAFETY: forwarded from the caller.
    guard("nrt_inspect_config_get_all_activity_types", || unsafe {
        put_strings(ACTIVITY_TYPES, activity_types, count)
    })
}

/// The activity types the options have on, in `malloc`ed memory.
///
/// # Safety
///
/// `activity_types` and `count` must be NULL or valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_inspect_config_get_enabled_activity_types(
    options: *mut nrt_inspect_config_t,
    activity_types: *mut *mut *const c_char,
    count: *mut usize,
) -> NRT_STATUS {
    guard("nrt_inspect_config_get_enabled_activity_types", || {
        let mut on = Vec::new();
        with_config(options, |c| {
            on = ACTIVITY_TYPES
                .iter()
                .copied()
                .filter(|a| c.activities.contains(a))
                .collect();
            Ok(())
        })?;
        // SAFETY: forwarded from the caller.
        unsafe { put_strings(&on, activity_types, count) }
    })
}

/// Frees an activity type list.
///
/// # Safety
///
/// `activity_types` must be NULL or a list this library returned with `count`
/// entries, not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_inspect_config_free_activity_types(
    activity_types: *mut *const c_char,
    count: usize,
) {
    // SAFETY: forwarded from the caller.
    unsafe { free_strings(activity_types, count) }
}

/// Turns one activity type (or `all`) on or off; another name -> `NRT_INVALID`.
///
/// # Safety
///
/// `activity_type` must be NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nrt_inspect_config_set_activity(
    options: *mut nrt_inspect_config_t,
    activity_type: *const c_char,
    enabled: bool,
) -> NRT_STATUS {
    guard("nrt_inspect_config_set_activity", || {
        // SAFETY: forwarded from the caller.
        let name = unsafe { c_bytes(activity_type, "activity_type") }?;
        let chosen: Vec<&'static str> = if name == b"all" {
            ACTIVITY_TYPES.to_vec()
        } else {
            match ACTIVITY_TYPES.iter().find(|a| a.as_bytes() == name) {
                Some(a) => vec![*a],
                None => {
                    return fail(
                        NRT_INVALID,
                        format!(
                            "activity type '{}' is not one of {} or all",
                            String::from_utf8_lossy(name),
                            ACTIVITY_TYPES.join(", ")
                        ),
                    );
                }
            }
        };
        with_config(options, |c| {
            for a in chosen {
                if enabled {
                    c.activities.insert(a);
                } else {
                    c.activities.remove(a);
                }
            }
            Ok(())
        })
    })
}
