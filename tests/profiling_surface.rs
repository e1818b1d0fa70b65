//! The system trace, device benchmarks, inspect and continuous profiling, the debug
//! stream and dma-buf export through the safe API, on the dlopen'ed simulator; and each
//! refused as `Unsupported` on a library without its functions.

mod support;

use std::io::Read;
use std::time::Duration;

use neuron_rt::nrt_sys::{self as sys, Library};
use neuron_rt::{
    BenchmarkMode, Capabilities, DebugEvent, Error, InspectConfig, NC_EXEC_RUNNING, Placement,
    Runtime, SysTraceConfig,
};
use support::{add_model, add_model_taking, lock, runtime, sim};

#[test]
fn sys_trace_records_device_spans_per_core_and_hands_each_event_out_once() {
    let _g = lock();
    let rt = runtime();
    assert!(rt.capabilities().contains(Capabilities::SYS_TRACE));
    assert!(
        rt.sys_trace_event_types()
            .unwrap()
            .iter()
            .any(|t| t == NC_EXEC_RUNNING)
    );
    let model = rt
        .load_model(&add_model_taking(Duration::from_micros(300)))
        .unwrap();
    let trace = rt
        .sys_trace(&SysTraceConfig::new().disable_event_type("nrt_load"))
        .unwrap();
    // One trace per process.
    assert!(matches!(
        rt.sys_trace(&SysTraceConfig::new()),
        Err(Error::InvalidArgument {
            argument: "sys_trace",
            ..
        })
    ));
    model.benchmark(0, 4).unwrap();
    let events = trace.fetch().unwrap();
    let spans: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == NC_EXEC_RUNNING)
        .collect();
    assert_eq!(spans.len(), 4);
    for s in &spans {
        assert_eq!((s.core, s.duration_ns), (model.core(), Some(300_000)));
        assert!(s.parent_id.is_some() && s.timestamp_ns.is_some());
        assert_eq!(s.extra["status"], 0, "unknown fields kept: {:?}", s.extra);
    }
    assert!(events.iter().all(|e| e.event_type != "nrt_load"));
    assert!(trace.fetch().unwrap().is_empty(), "fetched events are gone");
    trace.stop().unwrap();
    // Stopped: a new one may start; a bad event type is libnrt's typed refusal.
    let err = rt
        .sys_trace(&SysTraceConfig::new().disable_event_type("no_such"))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Nrt {
                function: "nrt_sys_trace_config_set_capture_enabled_for_event_type",
                ..
            }
        ),
        "{err}"
    );
    drop(rt.sys_trace(&SysTraceConfig::new()).unwrap()); // stops on drop
    drop(rt.sys_trace(&SysTraceConfig::new()).unwrap());
}

#[test]
fn device_benchmark_reports_the_simulated_device_time_and_host_mode_the_calls() {
    let _g = lock();
    let rt = runtime();
    let model = rt
        .load_model(&add_model_taking(Duration::from_micros(800)))
        .unwrap();
    let device = model.benchmark_mode(BenchmarkMode::Device, 2, 10).unwrap();
    assert_eq!(device.iterations, 10);
    assert_eq!(
        (device.min, device.max),
        (Duration::from_micros(800), Duration::from_micros(800))
    );
    let host = model.benchmark_mode(BenchmarkMode::Host, 0, 10).unwrap();
    assert_eq!(host.iterations, 10);
    assert!(matches!(
        model.benchmark_device(0, 0),
        Err(Error::InvalidArgument {
            argument: "iterations",
            ..
        })
    ));
    // A running trace is left alone: the device mode needs its own.
    let trace = rt.sys_trace(&SysTraceConfig::new()).unwrap();
    assert!(matches!(
        model.benchmark_device(0, 1),
        Err(Error::InvalidArgument { .. })
    ));
    drop(trace);
}

#[test]
fn inspect_and_continuous_profiling_write_their_captures() {
    let _g = lock();
    let rt = runtime();
    let model = rt.load_model(&add_model()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let types = rt.inspect_activity_types().unwrap();
    assert!(types.iter().any(|t| t == "device_profile"), "{types:?}");
    let session = rt
        .inspect(
            &InspectConfig::new(dir.path().join("i"))
                .session_id(4)
                .activities(["device_profile"]),
        )
        .unwrap();
    assert!(
        rt.inspect(&InspectConfig::new(dir.path())).is_err(),
        "one session"
    );
    model.benchmark(0, 2).unwrap();
    session.stop().unwrap();
    let files: Vec<_> = std::fs::read_dir(dir.path().join("i/session_4"))
        .unwrap()
        .collect();
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
    let cap: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(cap["device_profiles"].as_array().unwrap().len(), 2);
    assert!(
        cap["system_trace"].is_null(),
        "only device_profile was asked for"
    );

    let profiler = rt.continuous_profiling(dir.path().join("c")).unwrap();
    let err = profiler.save(0).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Nrt {
                function: "nrt_profile_continuous_save",
                ..
            }
        ),
        "{err}"
    );
    model.benchmark(0, 1).unwrap();
    profiler.save(model.core().unwrap()).unwrap();
    drop(profiler);
    assert_eq!(std::fs::read_dir(dir.path().join("c")).unwrap().count(), 1);
    assert!(matches!(
        rt.inspect(&InspectConfig::new("")),
        Err(Error::InvalidArgument {
            argument: "output_dir",
            ..
        })
    ));
}

#[test]
fn debug_stream_and_dmabuf_expose_device_tensor_bytes() {
    let _g = lock();
    let rt = runtime();
    let mut stream = rt.debug_stream(1).unwrap();
    assert!(rt.debug_stream(1).is_err(), "one client per core");
    let t = rt
        .allocate_tensor(Placement::Device, Some(1), 8, "kv")
        .unwrap();
    t.write(&[9u8, 8, 7, 6, 5, 4, 3, 2]).unwrap();
    assert_eq!(stream.read_event().unwrap(), None);
    assert_eq!(t.to_vec::<u8>().unwrap(), [9, 8, 7, 6, 5, 4, 3, 2]);
    match stream.read_event().unwrap() {
        Some(DebugEvent::TensorRead {
            prefix,
            core,
            shape,
            data,
            ..
        }) => {
            assert_eq!(
                (prefix.as_str(), core, shape, data),
                ("kv", 1, vec![8], vec![9, 8, 7, 6, 5, 4, 3, 2])
            );
        }
        other => panic!("{other:?}"),
    }
    drop(stream);
    drop(rt.debug_stream(1).unwrap()); // free again after drop

    let mut file = std::fs::File::from(t.dmabuf_fd().unwrap());
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).unwrap();
    assert_eq!(bytes, [9, 8, 7, 6, 5, 4, 3, 2]);
    let host = rt.allocate_tensor(Placement::Host, None, 8, "h").unwrap();
    assert!(matches!(
        host.dmabuf_fd(),
        Err(Error::InvalidArgument {
            argument: "tensor",
            ..
        })
    ));
}

/// The simulator's table without the functions of the newer families.
fn older_library() -> &'static Library {
    let mut fns = *sim().fns();
    fns.nrt_sys_trace_start = None;
    fns.nrt_inspect_begin_with_options = None;
    fns.nrt_profile_continuous_start = None;
    fns.nrt_debug_client_connect = None;
    fns.nrt_get_dmabuf_fd = None;
    fns.nrt_async_sendrecv_init = None;
    // SAFETY: every remaining entry is the dlopen'ed simulator's function of that name.
    unsafe { Library::in_process("sim-without-profiling", fns, None) }
}

#[test]
fn each_family_is_unsupported_on_a_library_without_it() {
    let _g = lock();
    let rt = Runtime::builder().library(older_library()).build().unwrap();
    let caps = rt.capabilities();
    for flag in [
        Capabilities::SYS_TRACE,
        Capabilities::INSPECT,
        Capabilities::CONTINUOUS_PROFILING,
        Capabilities::DEBUG_STREAM,
        Capabilities::DMABUF,
        Capabilities::SENDRECV,
    ] {
        assert!(!caps.contains(flag), "{flag:?}");
    }
    assert!(runtime_is_unsupported(
        rt.sys_trace(&SysTraceConfig::new()).err()
    ));
    assert!(runtime_is_unsupported(
        rt.inspect(&InspectConfig::new("x")).err()
    ));
    assert!(runtime_is_unsupported(rt.continuous_profiling("x").err()));
    assert!(runtime_is_unsupported(rt.debug_stream(0).err()));
    let model = rt.load_model(&add_model()).unwrap();
    assert!(runtime_is_unsupported(model.benchmark_device(0, 1).err()));
    let t = rt
        .allocate_tensor(Placement::Device, Some(0), 4, "t")
        .unwrap();
    assert!(runtime_is_unsupported(t.dmabuf_fd().err()));
    let _ = sys::NRT_SUCCESS;
}

fn runtime_is_unsupported(e: Option<Error>) -> bool {
    matches!(e, Some(Error::Unsupported { .. }))
}
