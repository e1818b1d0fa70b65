//! Inspect and continuous profiling: `nrt_inspect_*`, `nrt_profile_continuous_*`.

use std::ffi::{CStr, CString};
use std::ptr::{self, NonNull};

use nrt_sys::{self as sys, Library};

use super::{check, entry};
use crate::error::{Error, Result};

/// An inspect session's options (see [`crate::InspectConfig`]).
pub(crate) struct Inspect<'a> {
    pub(crate) output_dir: &'a CStr,
    pub(crate) session_id: Option<i32>,
    /// `None`: the library's default activities; else exactly these.
    pub(crate) activities: Option<&'a [CString]>,
    pub(crate) capture_all: bool,
    pub(crate) capture_failures: bool,
    pub(crate) max_events_per_nc: Option<u64>,
    pub(crate) disabled_cores: &'a [u32],
    pub(crate) disabled_types: &'a [CString],
}

/// Every entry a session needs from begin to stop.
pub(crate) fn can_inspect(lib: &Library) -> Result<()> {
    entry!(lib, nrt_inspect_config_allocate);
    entry!(lib, nrt_inspect_config_free);
    entry!(lib, nrt_inspect_config_set_output_dir);
    entry!(lib, nrt_inspect_begin_with_options);
    entry!(lib, nrt_inspect_stop);
    Ok(())
}

/// Builds the options and calls `nrt_inspect_begin_with_options`.
pub(crate) fn begin(lib: &Library, o: &Inspect<'_>) -> Result<()> {
    let allocate = entry!(lib, nrt_inspect_config_allocate);
    let free = entry!(lib, nrt_inspect_config_free);
    let mut cfg = ptr::null_mut();
    // SAFETY: valid out-pointer.
    let status = unsafe { allocate(&mut cfg) };
    check(lib, "nrt_inspect_config_allocate", status)?;
    let Some(cfg) = NonNull::new(cfg) else {
        return Err(Error::UnexpectedResult {
            function: "nrt_inspect_config_allocate",
            reason: "returned success and a NULL config".into(),
        });
    };
    let result = configure_and_begin(lib, cfg.as_ptr(), o);
    // SAFETY: allocated above, freed once; begin copied what it needs.
    unsafe { free(cfg.as_ptr()) };
    result
}

fn configure_and_begin(
    lib: &Library,
    cfg: *mut sys::nrt_inspect_config_t,
    o: &Inspect<'_>,
) -> Result<()> {
    // Every call below gets `cfg`, a live config of `lib`, and plain values or strings
    // that are NUL-terminated and outlive the call.
    let f = entry!(lib, nrt_inspect_config_set_output_dir);
    // SAFETY: see above.
    let status = unsafe { f(cfg, o.output_dir.as_ptr()) };
    check(lib, "nrt_inspect_config_set_output_dir", status)?;
    if let Some(id) = o.session_id {
        let f = entry!(lib, nrt_inspect_config_set_session_id);
        // SAFETY: see above.
        let status = unsafe { f(cfg, id) };
        check(lib, "nrt_inspect_config_set_session_id", status)?;
    }
    if let Some(activities) = o.activities {
        let f = entry!(lib, nrt_inspect_config_set_activity);
        // SAFETY: see above.
        let status = unsafe { f(cfg, c"all".as_ptr(), false) };
        check(lib, "nrt_inspect_config_set_activity", status)?;
        for a in activities {
            // SAFETY: see above.
            let status = unsafe { f(cfg, a.as_ptr(), true) };
            check(lib, "nrt_inspect_config_set_activity", status)
                .map_err(|e| e.context(format!("activity `{}`", a.to_string_lossy())))?;
        }
    }
    if o.capture_all {
        let f = entry!(lib, nrt_inspect_config_set_enable_inspect);
        // SAFETY: see above.
        let status = unsafe { f(cfg, true) };
        check(lib, "nrt_inspect_config_set_enable_inspect", status)?;
    }
    if o.capture_failures {
        let f = entry!(lib, nrt_inspect_config_set_enable_inspect_on_fail);
        // SAFETY: see above.
        let status = unsafe { f(cfg, true) };
        check(lib, "nrt_inspect_config_set_enable_inspect_on_fail", status)?;
    }
    if let Some(n) = o.max_events_per_nc {
        let f = entry!(lib, nrt_inspect_config_set_sys_trace_max_events_per_nc);
        // SAFETY: see above.
        let status = unsafe { f(cfg, n) };
        check(
            lib,
            "nrt_inspect_config_set_sys_trace_max_events_per_nc",
            status,
        )?;
    }
    for &core in o.disabled_cores {
        let f = entry!(lib, nrt_inspect_config_set_capture_enabled_for_nc);
        // SAFETY: see above.
        let status = unsafe { f(cfg, core, false) };
        check(lib, "nrt_inspect_config_set_capture_enabled_for_nc", status)?;
    }
    for ty in o.disabled_types {
        let f = entry!(
            lib,
            nrt_inspect_config_set_capture_enabled_for_event_type_string
        );
        // SAFETY: see above.
        let status = unsafe { f(cfg, ty.as_ptr(), false) };
        check(
            lib,
            "nrt_inspect_config_set_capture_enabled_for_event_type_string",
            status,
        )
        .map_err(|e| e.context(format!("event type `{}`", ty.to_string_lossy())))?;
    }
    let begin = entry!(lib, nrt_inspect_begin_with_options);
    // SAFETY: see above.
    check(lib, "nrt_inspect_begin_with_options", unsafe { begin(cfg) })
}

/// `nrt_inspect_stop`: ends the session and writes its capture.
pub(crate) fn stop(lib: &Library) -> Result<()> {
    let f = entry!(lib, nrt_inspect_stop);
    // SAFETY: no arguments.
    check(lib, "nrt_inspect_stop", unsafe { f() })
}

/// `nrt_inspect_config_get_all_activity_types`.
pub(crate) fn activity_types(lib: &Library) -> Result<Vec<String>> {
    let get = entry!(lib, nrt_inspect_config_get_all_activity_types);
    let free = entry!(lib, nrt_inspect_config_free_activity_types);
    let (mut list, mut count) = (ptr::null_mut(), 0usize);
    // SAFETY: valid out-pointers.
    let status = unsafe { get(&mut list, &mut count) };
    check(lib, "nrt_inspect_config_get_all_activity_types", status)?;
    // SAFETY: on success `list` holds `count` strings that the free function releases.
    Ok(unsafe { super::trace::take_strings(list, count, free) })
}

/// Continuous profiling options with `output_dir`, freed on drop.
pub(crate) struct ContinuousOptions {
    lib: &'static Library,
    raw: NonNull<sys::nrt_profile_continuous_options_t>,
}

// SAFETY: the options object is only a configuration value inside libnrt, passed by
// pointer to calls that may come from any thread; nothing ties it to its creating thread.
unsafe impl Send for ContinuousOptions {}
// SAFETY: shared use only passes the pointer to libnrt calls that read the options
// (save), which the API documents as callable concurrently with executions.
unsafe impl Sync for ContinuousOptions {}

impl ContinuousOptions {
    /// Every entry a continuous profile needs, then options with `output_dir`.
    pub(crate) fn new(lib: &'static Library, output_dir: &CStr) -> Result<Self> {
        entry!(lib, nrt_profile_continuous_start);
        entry!(lib, nrt_profile_continuous_stop);
        entry!(lib, nrt_profile_continuous_save);
        entry!(lib, nrt_profile_continuous_options_free);
        let allocate = entry!(lib, nrt_profile_continuous_options_allocate);
        let set_dir = entry!(lib, nrt_profile_continuous_options_set_output_dir);
        let mut raw = ptr::null_mut();
        // SAFETY: valid out-pointer.
        let status = unsafe { allocate(&mut raw) };
        check(lib, "nrt_profile_continuous_options_allocate", status)?;
        let Some(raw) = NonNull::new(raw) else {
            return Err(Error::UnexpectedResult {
                function: "nrt_profile_continuous_options_allocate",
                reason: "returned success and NULL options".into(),
            });
        };
        let options = ContinuousOptions { lib, raw };
        // SAFETY: live options; the text is NUL-terminated and outlives the call.
        let status = unsafe { set_dir(raw.as_ptr(), output_dir.as_ptr()) };
        check(lib, "nrt_profile_continuous_options_set_output_dir", status)?;
        Ok(options)
    }

    /// `nrt_profile_continuous_start`.
    pub(crate) fn start(&self) -> Result<()> {
        let f = entry!(self.lib, nrt_profile_continuous_start);
        // SAFETY: live options.
        check(self.lib, "nrt_profile_continuous_start", unsafe {
            f(self.raw.as_ptr())
        })
    }

    /// `nrt_profile_continuous_save` of core `vnc`.
    pub(crate) fn save(&self, vnc: u32) -> Result<()> {
        let f = entry!(self.lib, nrt_profile_continuous_save);
        // SAFETY: live options.
        check(self.lib, "nrt_profile_continuous_save", unsafe {
            f(vnc, self.raw.as_ptr())
        })
    }

    /// `nrt_profile_continuous_stop`.
    pub(crate) fn stop(&self) -> Result<()> {
        let f = entry!(self.lib, nrt_profile_continuous_stop);
        // SAFETY: no arguments.
        check(self.lib, "nrt_profile_continuous_stop", unsafe { f() })
    }
}

impl Drop for ContinuousOptions {
    fn drop(&mut self) {
        if let Some(f) = self.lib.fns().nrt_profile_continuous_options_free {
            // SAFETY: allocated in `new`, freed once here.
            unsafe { f(self.raw.as_ptr()) };
        }
    }
}
