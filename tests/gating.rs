//! Capability gating: a library that lacks functions gives `Error::Unsupported` naming
//! what is missing, instead of a call into nothing. The libraries here are the dlopen'ed
//! simulator's own functions with some table entries removed.

mod support;

use neuron_rt::nrt_sys::{Library, NrtFns};
use neuron_rt::{Capabilities, Error, Placement, Runtime};
use support::{add_model, assert_no_leaks, lock, sim};

/// The dlopen'ed simulator's table with `strip` applied, registered under `name`.
fn stripped(name: &'static str, strip: fn(&mut NrtFns)) -> &'static Library {
    let mut fns = *sim().fns();
    strip(&mut fns);
    // SAFETY: the dlopen'ed simulator's own functions, some of them removed.
    unsafe { Library::in_process(name, fns, None) }
}

#[test]
fn missing_functions_are_reported_as_unsupported() {
    let _g = lock();
    let lib = stripped("sim-without-extras", |f| {
        f.nrt_tensor_allocate_slice = None;
        f.nrt_tensor_attach_buffer = None;
        f.nrt_get_vnc_memory_stats = None;
        f.nrt_get_instance_info = None;
        f.nrt_get_version = None;
        f.nrt_get_model_info = None;
        f.nrt_get_total_vnc_count = None;
    });
    let rt = Runtime::builder().library(lib).build().unwrap();
    let caps = rt.capabilities();
    for absent in [
        Capabilities::TENSOR_SLICE,
        Capabilities::TENSOR_ATTACH,
        Capabilities::MEMORY_STATS,
        Capabilities::INSTANCE_INFO,
        Capabilities::VERSION,
        Capabilities::MODEL_INFO,
        // No version: async cannot be shown to be v3.
        Capabilities::ASYNC_V3,
    ] {
        assert!(!caps.contains(absent), "{absent:?} in {caps:?}");
    }
    assert!(caps.contains(Capabilities::SYNC_CORE | Capabilities::MODEL_TENSOR_INFO));

    let t = rt
        .allocate_tensor(Placement::Device, Some(0), 16, "t")
        .unwrap();
    let err = t.slice(0, 8, "s").unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { feature: "tensor slices", needed: Some(n) } if n == "nrt_tensor_allocate_slice"),
        "{err}"
    );
    let err = rt.tensor_from_buffer(vec![1, 2], "b").unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { needed: Some(n), .. } if n.contains("nrt_tensor_attach_buffer")),
        "{err}"
    );
    let err = rt.memory_stats(0).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unsupported {
                feature: "nrt_get_vnc_memory_stats",
                ..
            }
        ),
        "{err}"
    );
    let err = rt.instance_info().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unsupported {
                feature: "nrt_get_instance_info",
                ..
            }
        ),
        "{err}"
    );
    let err = rt.version().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unsupported {
                feature: "nrt_get_version",
                ..
            }
        ),
        "{err}"
    );
    // The older count function stands in for the missing one.
    assert!(rt.total_core_count().unwrap() >= 1);

    // Without nrt_get_model_info an auto-placed model's core is unknown...
    let model = rt.load_model(&add_model()).unwrap();
    assert_eq!(model.core(), None);
    let err = model.allocate_inputs().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unsupported {
                feature: "nrt_get_model_info",
                ..
            }
        ),
        "{err}"
    );
    let err = model.info().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unsupported {
                feature: "model information",
                ..
            }
        ),
        "{err}"
    );
    // ...but a model loaded on a given core knows it, and runs.
    let model = rt.load_model_on(&add_model(), 0).unwrap();
    assert_eq!(model.core(), Some(0));
    support::assert_adds(&model);
}

#[test]
fn the_same_shared_object_under_two_names_is_still_one_runtime() {
    let _g = lock();
    let alias = stripped("sim-alias", |_| {});
    let rt = support::runtime();
    let err = Runtime::builder().library(alias).build().unwrap_err();
    assert!(matches!(err, Error::AlreadyInitialized), "{err}");
    drop(rt);
    let rt = Runtime::builder().library(alias).build().unwrap();
    assert!(matches!(
        Runtime::builder().library(sim()).build(),
        Err(Error::AlreadyInitialized)
    ));
    drop(rt);
    assert_no_leaks();
}

#[test]
fn a_library_without_model_tensor_info_cannot_load_models() {
    let _g = lock();
    let lib = stripped("sim-without-tensor-info", |f| {
        f.nrt_get_model_tensor_info = None;
    });
    let rt = Runtime::builder().library(lib).build().unwrap();
    let err = rt.load_model(&add_model()).unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { feature: "model loading", needed: Some(n) } if n.contains("nrt_get_model_tensor_info")),
        "{err}"
    );
    assert_eq!(support::control().counters().live_objects(), 0);
}

#[test]
fn a_library_without_the_sync_core_cannot_allocate() {
    let _g = lock();
    let lib = stripped("sim-without-allocate", |f| {
        f.nrt_tensor_allocate = None;
    });
    let rt = Runtime::builder().library(lib).build().unwrap();
    assert!(!rt.capabilities().contains(Capabilities::SYNC_CORE));
    let err = rt
        .allocate_tensor(Placement::Host, None, 4, "x")
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unsupported {
                feature: "nrt_tensor_allocate",
                ..
            }
        ),
        "{err}"
    );
}

#[cfg(feature = "sim")]
#[test]
fn the_sim_feature_selects_the_in_process_simulator() {
    let _g = lock();
    let rt = Runtime::builder().simulator().build().unwrap();
    assert_eq!(
        rt.library().origin(),
        &neuron_rt::nrt_sys::Origin::InProcess("nrt-sim")
    );
    assert!(std::ptr::eq(rt.library(), neuron_rt::sim::library()));
}

#[test]
fn a_library_without_destroy_tensor_set_creates_no_sets() {
    let _g = lock();
    let lib = stripped("sim-without-destroy-set", |f| {
        f.nrt_destroy_tensor_set = None;
    });
    let rt = Runtime::builder().library(lib).build().unwrap();
    let is_missing_destroy = |err: &Error| {
        matches!(
            err,
            Error::Unsupported {
                feature: "nrt_destroy_tensor_set",
                ..
            }
        )
    };
    let err = rt.tensor_set().unwrap_err();
    assert!(is_missing_destroy(&err), "{err}");
    // Models need the whole sync core, so `Model::allocate_inputs` / `allocate_outputs`
    // (which start with `tensor_set`) cannot be reached on this library.
    let err = rt.load_model_on(&add_model(), 0).unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { needed: Some(n), .. } if n.contains("nrt_destroy_tensor_set")),
        "{err}"
    );
    // Nothing was created.
    assert_eq!(support::control().counters().live_objects(), 0);
    drop(rt);
    assert_no_leaks();
}
