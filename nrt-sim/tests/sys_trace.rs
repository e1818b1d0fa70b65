//! The system trace records real events of the simulated runtime and hands them out once,
//! as JSON (schema: README.md, "System trace").

mod common;

use common::*;
use nrt_sim::ffi::*;
use nrt_sys::*;
use serde_json::Value;
use std::ffi::{CStr, CString};
use std::time::Duration;

fn config() -> *mut nrt_sys_trace_config_t {
    let mut c = std::ptr::null_mut();
    // SAFETY: valid out-pointer.
    assert_eq!(
        unsafe { nrt_sys_trace_config_allocate(&mut c) },
        NRT_SUCCESS
    );
    c
}

fn fetch(options: *const nrt_sys_trace_fetch_options_t) -> Value {
    let (mut buf, mut len) = (std::ptr::null_mut(), 0usize);
    // SAFETY: valid out-pointers; options checked by the simulator.
    let status = unsafe { nrt_sys_trace_fetch_events(&mut buf, &mut len, options) };
    assert_eq!(status, NRT_SUCCESS, "{}", last_error());
    // SAFETY: a NUL-terminated text of `len` bytes, freed once below.
    let text = unsafe { CStr::from_ptr(buf) }.to_str().unwrap().to_owned();
    assert_eq!(text.len(), len);
    // SAFETY: returned by nrt_sys_trace_fetch_events.
    unsafe { nrt_sys_trace_buffer_free(buf) };
    serde_json::from_str(&text).unwrap()
}

/// Stops the trace when a test ends, also when it fails (the trace is process-wide).
struct Stop;

impl Drop for Stop {
    fn drop(&mut self) {
        // SAFETY: no arguments.
        unsafe { nrt_sys_trace_stop() };
    }
}

fn of_type<'a>(doc: &'a Value, ty: &str) -> Vec<&'a Value> {
    doc["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == ty)
        .collect()
}

#[test]
fn executions_loads_and_tensor_io_are_recorded_with_device_spans_per_core() {
    on_exec_stack(|| {
        let _s = Session::new();
        let _stop = Stop;
        let c = config();
        // SAFETY: a live config.
        assert_eq!(unsafe { nrt_sys_trace_start(c) }, NRT_SUCCESS);
        let rig = AddRig::new(1, 4, Duration::from_micros(2000));
        write_f32(rig.a, &[1.0; 4]);
        for _ in 0..3 {
            assert_eq!(rig.execute(), NRT_SUCCESS);
        }
        assert_eq!(read_f32(rig.out, 4), [1.0; 4]);
        let doc = fetch(std::ptr::null());
        let running = of_type(&doc, "nc_exec_running");
        assert_eq!(running.len(), 3, "{doc}");
        let executes = of_type(&doc, "nrt_execute");
        assert_eq!(executes.len(), 3);
        for (r, e) in running.iter().zip(&executes) {
            assert_eq!(r["lnc_idx"], 1);
            assert_eq!(r["group"], "nrt-nc-001");
            // The device span is exactly the model's device time, inside its host call.
            assert_eq!(r["duration"], 2_000_000);
            assert_eq!(r["parent_id"], e["id"]);
            let (rs, es) = (
                r["timestamp"].as_u64().unwrap(),
                e["timestamp"].as_u64().unwrap(),
            );
            assert!(rs >= es && rs + 2_000_000 <= es + e["duration"].as_u64().unwrap());
        }
        assert_eq!(of_type(&doc, "nrt_load").len(), 1);
        assert_eq!(of_type(&doc, "nrt_load")[0]["lnc_idx"], 1);
        assert_eq!(of_type(&doc, "nrt_tensor_write").len(), 1);
        let reads = of_type(&doc, "nrt_tensor_read");
        assert_eq!((reads.len(), reads[0]["bytes"].as_u64()), (1, Some(16)));
        // Fetched events are gone.
        assert!(
            fetch(std::ptr::null())["events"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        rig.release();
        // SAFETY: no arguments; a live config.
        unsafe {
            assert_eq!(nrt_sys_trace_stop(), NRT_SUCCESS);
            nrt_sys_trace_config_free(c);
        }
    });
}

#[test]
fn disabled_types_and_cores_and_fetch_filters_apply() {
    on_exec_stack(|| {
        let _s = Session::new();
        let _stop = Stop;
        let c = config();
        let ty = CString::new("nrt_execute").unwrap();
        let bad = CString::new("no_such_type").unwrap();
        // SAFETY: a live config and valid strings.
        unsafe {
            assert_eq!(
                nrt_sys_trace_config_set_capture_enabled_for_event_type(c, ty.as_ptr(), false),
                NRT_SUCCESS
            );
            assert_eq!(
                nrt_sys_trace_config_set_capture_enabled_for_event_type(c, bad.as_ptr(), false),
                NRT_INVALID
            );
            nrt_sys_trace_config_set_capture_enabled_for_nc(c, 1, false);
            assert_eq!(nrt_sys_trace_start(c), NRT_SUCCESS);
            assert_eq!(nrt_sys_trace_start(c), NRT_INVALID, "already running");
        }
        let r0 = AddRig::new(0, 4, Duration::from_micros(100));
        let r1 = AddRig::new(1, 4, Duration::from_micros(100));
        for _ in 0..4 {
            assert_eq!(r0.execute(), NRT_SUCCESS);
            assert_eq!(r1.execute(), NRT_SUCCESS);
        }
        let mut f = std::ptr::null_mut();
        // SAFETY: valid out-pointer, then a live options object.
        unsafe {
            assert_eq!(nrt_sys_trace_fetch_options_allocate(&mut f), NRT_SUCCESS);
            nrt_sys_trace_fetch_options_set_nc_idx(f, 0);
            nrt_sys_trace_fetch_options_set_max_events_per_nc(f, 3);
        }
        let doc = fetch(f);
        // Core 0 holds its load and 4 device spans: the 3 oldest come out.
        assert_eq!(
            doc["events"].as_array().unwrap().len(),
            3,
            "at most 3 of core 0: {doc}"
        );
        assert_eq!(of_type(&doc, "nc_exec_running").len(), 2);
        assert!(of_type(&doc, "nrt_execute").is_empty(), "type turned off");
        assert!(
            doc["events"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["lnc_idx"] == 0)
        );
        let rest = fetch(std::ptr::null());
        assert!(
            rest["events"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["lnc_idx"] != 1),
            "core 1 off"
        );
        assert_eq!(of_type(&rest, "nc_exec_running").len(), 2);
        r0.release();
        r1.release();
        // SAFETY: live objects.
        unsafe {
            nrt_sys_trace_fetch_options_free(f);
            assert_eq!(nrt_sys_trace_stop(), NRT_SUCCESS);
            assert_eq!(nrt_sys_trace_stop(), NRT_INVALID);
            nrt_sys_trace_config_free(c);
        }
    });
}

#[test]
fn event_type_lists_are_malloced_and_reflect_the_config() {
    // No runtime needed; the lock captures the log of the refused start below.
    let _serial = Session::serial_only();
    let (mut list, mut n) = (std::ptr::null_mut(), 0usize);
    // SAFETY: valid out-pointers; the list is freed with libc::free, as the header allows.
    let names: Vec<String> = unsafe {
        assert_eq!(
            nrt_sys_trace_get_event_types(&mut list, &mut n),
            NRT_SUCCESS
        );
        let names = (0..n)
            .map(|i| CStr::from_ptr(*list.add(i)).to_str().unwrap().to_owned())
            .collect();
        for i in 0..n {
            libc::free((*list.add(i)).cast_mut().cast());
        }
        libc::free(list.cast());
        names
    };
    assert!(names.contains(&"nc_exec_running".to_string()));
    let c = config();
    let ty = CString::new("nc_exec_running").unwrap();
    // SAFETY: live config, valid out-pointers, list freed once.
    unsafe {
        nrt_sys_trace_config_set_capture_enabled_for_event_type(c, ty.as_ptr(), false);
        assert_eq!(
            nrt_sys_trace_config_get_enabled_event_types(c, &mut list, &mut n),
            NRT_SUCCESS
        );
        assert_eq!(n, names.len() - 1);
        let on: Vec<&str> = (0..n)
            .map(|i| CStr::from_ptr(*list.add(i)).to_str().unwrap())
            .collect();
        assert!(!on.contains(&"nc_exec_running"));
        nrt_sys_trace_free_event_types(list, n);
        nrt_sys_trace_config_set_defaults(c);
        assert_eq!(
            nrt_sys_trace_config_get_enabled_event_types(c, &mut list, &mut n),
            NRT_SUCCESS
        );
        assert_eq!(n, names.len());
        nrt_sys_trace_free_event_types(list, n);
        nrt_sys_trace_config_free(c);
        assert_eq!(nrt_sys_trace_start(c), NRT_INVALID_HANDLE, "freed config");
    }
}

/// (start, end) of every `nc_exec_running` span of `doc`, in start order.
fn device_spans(doc: &Value) -> Vec<(u64, u64)> {
    let mut spans: Vec<(u64, u64)> = of_type(doc, "nc_exec_running")
        .iter()
        .map(|e| {
            let start = e["timestamp"].as_u64().unwrap();
            (start, start + e["duration"].as_u64().unwrap())
        })
        .collect();
    spans.sort_unstable();
    spans
}

/// Start of each span minus the end of the one before, in ns.
fn gaps(spans: &[(u64, u64)]) -> Vec<i64> {
    spans
        .windows(2)
        .map(|w| w[1].0 as i64 - w[0].1 as i64)
        .collect()
}

#[test]
fn the_launch_cost_separates_back_to_back_sync_executions_but_not_queued_ones() {
    on_exec_stack(|| {
        let _s = Session::new();
        let _stop = Stop;
        let sim = control();
        let launch = Duration::from_micros(180);
        sim.set_launch_cost(launch).unwrap();
        assert_eq!(sim.clock_stats(false).launch, launch);
        assert!(sim.set_launch_cost(Duration::from_secs(11)).is_err());
        assert_eq!(
            sim.clock_stats(false).launch,
            launch,
            "a refused value changes nothing"
        );
        let c = config();
        // SAFETY: a live config.
        assert_eq!(unsafe { nrt_sys_trace_start(c) }, NRT_SUCCESS);
        let before = sim.clock_stats(false).executions;

        // Synchronous: each call arrives after the previous one returned, so the device
        // waits at least L between them (modelled timeline: exact, whatever the host).
        let d = Duration::from_millis(2);
        let rig = AddRig::new(0, 4, d);
        for _ in 0..5 {
            assert_eq!(rig.execute(), NRT_SUCCESS);
        }
        let doc = fetch(std::ptr::null());
        let sync = device_spans(&doc);
        assert_eq!(sync.len(), 5);
        // Each starts L after its call began (the call is when it was queued).
        let calls = of_type(&doc, "nrt_execute");
        for (r, e) in of_type(&doc, "nc_exec_running").iter().zip(&calls) {
            assert_eq!(r["parent_id"], e["id"]);
            let late = r["timestamp"].as_u64().unwrap() - e["timestamp"].as_u64().unwrap();
            assert!(
                late >= launch.as_nanos() as u64,
                "started {late} ns into its call"
            );
        }
        for (s, e) in &sync {
            assert_eq!(e - s, d.as_nanos() as u64, "the device time stays D");
        }
        for gap in gaps(&sync) {
            assert!(gap >= launch.as_nanos() as i64, "sync gap {gap} ns < L");
        }

        // Queued ahead: the launch of each overlaps the execution before it, so they run
        // back to back (gap exactly 0) once the first has started.
        let long = AddRig::new(0, 4, Duration::from_millis(30));
        let mut ret = [NRT_SUCCESS; 4];
        let mut last = 0;
        for r in &mut ret {
            let mut seq = 0;
            // SAFETY: live handles; `ret` outlives the requests (waited for below).
            let status = unsafe {
                nrta_execute_schedule(long.model, long.inputs, long.outputs, 0, r, &mut seq)
            };
            assert_eq!(status, NRT_SUCCESS, "{}", last_error());
            last = seq;
        }
        wait_completed(last);
        let queued = device_spans(&fetch(std::ptr::null()));
        assert_eq!(queued.len(), 4);
        assert_eq!(gaps(&queued), vec![0; 3], "{queued:?}");

        // Every execution's lag was recorded.
        assert!(sim.clock_stats(false).executions >= before + 9);
        sim.set_launch_cost(Duration::ZERO).unwrap();
        rig.release();
        long.release();
        // SAFETY: no arguments; a live config.
        unsafe {
            assert_eq!(nrt_sys_trace_stop(), NRT_SUCCESS);
            nrt_sys_trace_config_free(c);
        }
    });
}
