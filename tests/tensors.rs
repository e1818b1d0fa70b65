//! Tensors: allocation, typed read/write, copies, fills, slices, attached buffers, and
//! every bounds check, on nrt-sim through dlopen.

mod support;

use neuron_rt::{Error, NrtStatus, Placement};
use support::{assert_no_leaks, control, lock, runtime};

#[test]
fn device_and_host_tensors_round_trip_every_element_type() {
    let _g = lock();
    let rt = runtime();
    for placement in [Placement::Device, Placement::Host] {
        let core = (placement == Placement::Device).then_some(0);
        let t = rt.allocate_tensor(placement, core, 64, "t").unwrap();
        assert_eq!(
            (t.size(), t.placement(), t.core(), t.name()),
            (64, placement, core, "t")
        );

        t.write(&[1u8, 2, 255]).unwrap();
        assert_eq!(&t.to_vec::<u8>().unwrap()[..3], [1, 2, 255]);
        t.write(&[-1i8, -128]).unwrap();
        assert_eq!(&t.to_vec::<i8>().unwrap()[..2], [-1, -128]);
        t.write(&[65535u16, 7]).unwrap();
        assert_eq!(&t.to_vec::<u16>().unwrap()[..2], [65535, 7]);
        t.write(&[-300i16]).unwrap();
        assert_eq!(t.to_vec::<i16>().unwrap()[0], -300);
        t.write(&[u32::MAX, 5]).unwrap();
        assert_eq!(&t.to_vec::<u32>().unwrap()[..2], [u32::MAX, 5]);
        t.write(&[i32::MIN]).unwrap();
        assert_eq!(t.to_vec::<i32>().unwrap()[0], i32::MIN);
        t.write(&[u64::MAX - 1]).unwrap();
        assert_eq!(t.to_vec::<u64>().unwrap()[0], u64::MAX - 1);
        t.write(&[i64::MIN + 3]).unwrap();
        assert_eq!(t.to_vec::<i64>().unwrap()[0], i64::MIN + 3);
        let floats: Vec<f32> = (0..16).map(|i| i as f32 * 0.5 - 2.0).collect();
        t.write(&floats).unwrap();
        assert_eq!(t.to_vec::<f32>().unwrap(), floats);
        let doubles: Vec<f64> = (0..8).map(|i| f64::from(i) * 1e300).collect();
        t.write(&doubles).unwrap();
        assert_eq!(t.to_vec::<f64>().unwrap(), doubles);
        // Bytes of one type read back as another: plain bytes, no conversion.
        t.write(&[1.0f32]).unwrap();
        assert_eq!(t.to_vec::<u32>().unwrap()[0], 1.0f32.to_bits());
    }
    drop(rt);
    assert_no_leaks();
}

#[cfg(feature = "half")]
#[test]
fn half_precision_elements_round_trip() {
    use half::{bf16, f16};
    let _g = lock();
    let rt = runtime();
    let t = rt
        .allocate_tensor(Placement::Device, Some(0), 8, "h")
        .unwrap();
    let h = [
        f16::from_f32(1.5),
        f16::from_f32(-2.0),
        f16::MAX,
        f16::MIN_POSITIVE,
    ];
    t.write(&h).unwrap();
    assert_eq!(t.to_vec::<f16>().unwrap(), h);
    let b = [
        bf16::from_f32(3.0),
        bf16::from_f32(-0.5),
        bf16::ONE,
        bf16::ZERO,
    ];
    t.write(&b).unwrap();
    assert_eq!(t.to_vec::<bf16>().unwrap(), b);
}

#[test]
fn offsets_are_in_bytes_and_leave_other_bytes_alone() {
    let _g = lock();
    let rt = runtime();
    let t = rt
        .allocate_tensor(Placement::Device, Some(0), 16, "off")
        .unwrap();
    t.fill(0).unwrap();
    t.write_at(4, &[0xAABBCCDDu32]).unwrap();
    t.write_at(15, &[9u8]).unwrap();
    let mut bytes = [0u8; 16];
    t.read(&mut bytes).unwrap();
    let mut expected = [0u8; 16];
    expected[4..8].copy_from_slice(&0xAABBCCDDu32.to_ne_bytes());
    expected[15] = 9;
    assert_eq!(bytes, expected);
    let mut word = [0u32; 1];
    t.read_at(4, &mut word).unwrap();
    assert_eq!(word, [0xAABBCCDD]);
    // Empty reads and writes at the very end are in bounds.
    t.write_at::<u8>(16, &[]).unwrap();
    t.read_at::<u8>(16, &mut []).unwrap();
}

#[test]
fn out_of_bounds_access_is_refused_with_the_numbers_and_changes_nothing() {
    let _g = lock();
    let rt = runtime();
    let t = rt
        .allocate_tensor(Placement::Device, Some(0), 16, "small")
        .unwrap();
    t.write(&[1u32, 2, 3, 4]).unwrap();

    let err = t.write(&[0u32; 5]).unwrap_err();
    assert!(
        matches!(&err, Error::OutOfBounds { tensor, offset: 0, len: 20, size: 16 } if tensor == "small"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "out of bounds: 20 bytes at offset 0 do not fit in tensor `small` of 16 bytes"
    );
    let err = t.write_at(13, &[0u32]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::OutOfBounds {
                offset: 13,
                len: 4,
                size: 16,
                ..
            }
        ),
        "{err}"
    );
    let err = t.write_at(17, &[0u8; 0]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::OutOfBounds {
                offset: 17,
                len: 0,
                ..
            }
        ),
        "{err}"
    );
    // Overflowing offset + len is caught, not wrapped.
    let err = t.read_at(usize::MAX, &mut [0u8; 2]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::OutOfBounds {
                offset: usize::MAX,
                len: 2,
                ..
            }
        ),
        "{err}"
    );
    let err = t.read(&mut [0u64; 3]).unwrap_err();
    assert!(matches!(err, Error::OutOfBounds { len: 24, .. }), "{err}");
    let err = t.fill_range(8, 9, 0).unwrap_err();
    assert!(
        matches!(
            err,
            Error::OutOfBounds {
                offset: 8,
                len: 9,
                ..
            }
        ),
        "{err}"
    );
    let err = t.slice(10, 7, "s").unwrap_err();
    assert!(
        matches!(
            err,
            Error::OutOfBounds {
                offset: 10,
                len: 7,
                ..
            }
        ),
        "{err}"
    );

    assert_eq!(t.to_vec::<u32>().unwrap(), [1, 2, 3, 4]);
}

#[test]
fn to_vec_needs_a_whole_number_of_elements() {
    let _g = lock();
    let rt = runtime();
    let t = rt
        .allocate_tensor(Placement::Host, None, 10, "ten")
        .unwrap();
    let err = t.to_vec::<f32>().unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument { argument: "T", reason } if reason.contains("10 bytes") && reason.contains("4-byte")),
        "{err}"
    );
    assert_eq!(t.to_vec::<u16>().unwrap().len(), 5);
}

#[test]
fn fill_and_fill_range_set_bytes() {
    let _g = lock();
    let rt = runtime();
    let t = rt
        .allocate_tensor(Placement::Device, Some(0), 8, "f")
        .unwrap();
    t.fill(0xAB).unwrap();
    assert_eq!(t.to_vec::<u8>().unwrap(), [0xAB; 8]);
    t.fill_range(2, 3, 0x01).unwrap();
    assert_eq!(
        t.to_vec::<u8>().unwrap(),
        [0xAB, 0xAB, 1, 1, 1, 0xAB, 0xAB, 0xAB]
    );
}

#[test]
fn copies_between_tensors_on_one_core_and_through_the_host() {
    let _g = lock();
    let rt = runtime();
    let a = rt
        .allocate_tensor(Placement::Device, Some(0), 16, "a")
        .unwrap();
    let b = rt
        .allocate_tensor(Placement::Device, Some(0), 16, "b")
        .unwrap();
    let h = rt.allocate_tensor(Placement::Host, None, 16, "h").unwrap();
    a.write(&[1.0f32, 2.0, 3.0, 4.0]).unwrap();
    b.copy_from(&a).unwrap();
    assert_eq!(b.to_vec::<f32>().unwrap(), [1.0, 2.0, 3.0, 4.0]);
    h.copy_from(&b).unwrap();
    assert_eq!(h.to_vec::<f32>().unwrap(), [1.0, 2.0, 3.0, 4.0]);
    b.fill(0).unwrap();
    b.copy_range_from(&h, 4, 8, 8).unwrap();
    assert_eq!(b.to_vec::<f32>().unwrap(), [0.0, 0.0, 2.0, 3.0]);
}

#[test]
fn bad_copies_are_refused_before_libnrt() {
    let _g = lock();
    let rt = runtime();
    let a = rt
        .allocate_tensor(Placement::Device, Some(0), 16, "a")
        .unwrap();
    let small = rt
        .allocate_tensor(Placement::Device, Some(0), 8, "small")
        .unwrap();
    let err = small.copy_from(&a).unwrap_err();
    assert!(
        matches!(&err, Error::SizeMismatch { tensor, what: "copy destination", expected: 16, actual: 8 } if tensor == "small"),
        "{err}"
    );
    let err = small.copy_range_from(&a, 12, 0, 8).unwrap_err();
    assert!(
        matches!(&err, Error::OutOfBounds { tensor, offset: 12, len: 8, size: 16 } if tensor == "a"),
        "{err}"
    );
    let err = small.copy_range_from(&a, 0, 4, 8).unwrap_err();
    assert!(
        matches!(&err, Error::OutOfBounds { tensor, offset: 4, len: 8, size: 8 } if tensor == "small"),
        "{err}"
    );
    if rt.visible_core_count().unwrap() > 1 {
        let other = rt
            .allocate_tensor(Placement::Device, Some(1), 16, "other")
            .unwrap();
        let err = other.copy_from(&a).unwrap_err();
        assert!(
            matches!(&err, Error::WrongCore { tensor, tensor_core: 0, expected_core: 1, .. } if tensor == "a"),
            "{err}"
        );
    }
}

#[test]
fn slices_view_their_parent_and_keep_it_alive() {
    let _g = lock();
    let rt = runtime();
    let parent = rt
        .allocate_tensor(Placement::Device, Some(0), 16, "parent")
        .unwrap();
    parent.write(&[10u32, 20, 30, 40]).unwrap();
    let slice = parent.slice(4, 8, "middle").unwrap();
    assert_eq!(
        (slice.size(), slice.name(), slice.core()),
        (8, "middle", Some(0))
    );
    assert_eq!(slice.to_vec::<u32>().unwrap(), [20, 30]);
    slice.write(&[21u32]).unwrap();
    assert_eq!(parent.to_vec::<u32>().unwrap(), [10, 21, 30, 40]);
    // The slice's own bounds are checked against the slice.
    let err = slice.write_at(4, &[0u32; 2]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::OutOfBounds {
                offset: 4,
                len: 8,
                size: 8,
                ..
            }
        ),
        "{err}"
    );

    let tensors_before = control().counters().cores[0].tensors;
    drop(parent);
    // The parent is still allocated and still readable through the slice.
    assert_eq!(control().counters().cores[0].tensors, tensors_before);
    assert_eq!(slice.to_vec::<u32>().unwrap(), [21, 30]);
    let sub = slice.slice(4, 4, "inner").unwrap();
    drop(slice);
    assert_eq!(sub.to_vec::<u32>().unwrap(), [30]);
    drop(sub);
    assert_eq!(control().counters().cores[0].device_bytes, 0);
    drop(rt);
    assert_no_leaks();
}

#[test]
fn tensors_over_owned_buffers_give_the_buffer_back() {
    let _g = lock();
    let rt = runtime();
    let t = rt
        .tensor_from_buffer(vec![1, 2, 3, 4, 5, 6, 7, 8], "buf")
        .unwrap();
    assert_eq!((t.size(), t.placement()), (8, Placement::Host));
    assert_eq!(t.to_vec::<u8>().unwrap(), [1, 2, 3, 4, 5, 6, 7, 8]);
    t.write_at(2, &[0xEEu8, 0xFF]).unwrap();
    let dev = rt
        .allocate_tensor(Placement::Device, Some(0), 8, "dev")
        .unwrap();
    dev.copy_from(&t).unwrap();
    dev.fill_range(0, 1, 0x42).unwrap();
    t.copy_range_from(&dev, 0, 7, 1).unwrap();
    assert_eq!(t.into_buffer().unwrap(), [1, 2, 0xEE, 0xFF, 5, 6, 7, 0x42]);

    // A shared tensor cannot give its buffer away.
    let t = rt.tensor_from_buffer(vec![0; 4], "shared").unwrap();
    let other = t.clone();
    let err = t.into_buffer().unwrap_err();
    assert!(
        matches!(&err, Error::InUse { what, users: 1 } if what == "tensor `shared`"),
        "{err}"
    );
    // The remaining handle still works and owns the buffer.
    other.write(&[9u8; 4]).unwrap();
    assert_eq!(other.into_buffer().unwrap(), [9; 4]);

    // A tensor that libnrt allocated has no buffer to give.
    let err = dev.into_buffer().unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                argument: "self",
                ..
            }
        ),
        "{err}"
    );

    // libnrt cannot attach zero bytes: refused up front.
    let err = rt.tensor_from_buffer(Vec::new(), "empty").unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument { argument: "buffer", reason } if reason.contains("`empty`")),
        "{err}"
    );
    drop(rt);
    assert_no_leaks();
}

#[test]
fn bad_allocation_arguments_are_refused() {
    let _g = lock();
    let rt = runtime();
    let err = rt
        .allocate_tensor(Placement::Device, None, 8, "nocore")
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument { argument: "core", reason } if reason.contains("nocore")),
        "{err}"
    );
    let err = rt
        .allocate_tensor(Placement::Device, Some(u32::MAX), 8, "huge-core")
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                argument: "core",
                ..
            }
        ),
        "{err}"
    );
    let err = rt
        .allocate_tensor(Placement::Host, None, 8, "bad\0name")
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                argument: "name",
                ..
            }
        ),
        "{err}"
    );
    let err = rt.tensor_from_buffer(vec![0; 4], "b\0").unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                argument: "name",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(control().counters().live_objects(), 0);
}

#[test]
fn libnrt_allocation_failures_are_typed_and_leave_the_runtime_usable() {
    let _g = lock();
    let rt = runtime();
    let cores = rt.visible_core_count().unwrap();
    // A core that does not exist.
    let err = rt
        .allocate_tensor(Placement::Device, Some(cores + 3), 8, "nowhere")
        .unwrap_err();
    match &err {
        Error::Nrt {
            function, context, ..
        } => {
            assert_eq!(*function, "nrt_tensor_allocate");
            assert!(context.as_deref().unwrap().contains("nowhere"), "{err}");
        }
        other => panic!("unexpected {other}"),
    }
    // More than the core's memory.
    let limit = rt.memory_stats(0).unwrap().bytes_limit;
    let err = rt
        .allocate_tensor(Placement::Device, Some(0), limit + 1, "too-big")
        .unwrap_err();
    assert_eq!(err.status(), Some(NrtStatus::Resource), "{err}");
    // An injected allocation failure.
    control().inject_faults("alloc:nth=1").unwrap();
    let err = rt
        .allocate_tensor(Placement::Device, Some(0), 8, "faulty")
        .unwrap_err();
    assert_eq!(err.status(), Some(NrtStatus::Resource), "{err}");
    assert!(!err.is_retryable() && !err.is_fatal());
    // Usable afterwards.
    let ok = rt
        .allocate_tensor(Placement::Device, Some(0), 8, "fine")
        .unwrap();
    ok.write(&[1u64]).unwrap();
    assert_eq!(ok.to_vec::<u64>().unwrap(), [1]);
    drop(ok);
    drop(rt);
    assert_no_leaks();
}

#[test]
fn tensor_handles_are_shared_by_clones_and_freed_after_the_last() {
    let _g = lock();
    let rt = runtime();
    let t = rt
        .allocate_tensor(Placement::Device, Some(0), 32, "shared")
        .unwrap();
    let clone = t.clone();
    clone.write(&[5u8; 32]).unwrap();
    assert_eq!(t.to_vec::<u8>().unwrap(), [5; 32]);
    drop(t);
    assert_eq!(control().counters().cores[0].device_bytes, 32);
    drop(clone);
    assert_eq!(control().counters().cores[0].device_bytes, 0);
    assert!(format!("{:?}", rt).contains("Runtime"));
}

/// The dlopen'ed simulator, minus `nrt_tensor_free`.
fn sim_without_tensor_free() -> &'static neuron_rt::nrt_sys::Library {
    fn lookup(name: &std::ffi::CStr) -> *mut std::ffi::c_void {
        if name == c"nrt_tensor_free" {
            return std::ptr::null_mut();
        }
        support::sim().symbol(name).unwrap_or(std::ptr::null_mut())
    }
    let mut fns = *support::sim().fns();
    fns.nrt_tensor_free = None;
    // SAFETY: the dlopen'ed simulator's own functions and symbols, nrt_tensor_free removed.
    unsafe {
        neuron_rt::nrt_sys::Library::in_process(
            "nrt-sim without nrt_tensor_free",
            fns,
            Some(lookup),
        )
    }
}

#[test]
fn tensors_are_not_created_by_a_library_that_cannot_free_them() {
    let _g = lock();
    {
        let rt = neuron_rt::Runtime::builder()
            .library(sim_without_tensor_free())
            .build()
            .unwrap();
        // A tensor over a Rust buffer would outlive the buffer inside libnrt (the buffer
        // is freed with the handle, the libnrt tensor never is), and any other tensor
        // would leak: refused before libnrt allocates anything.
        let attached = rt.tensor_from_buffer(vec![1u8; 8], "attached");
        let device = rt.allocate_tensor(Placement::Device, Some(0), 8, "device");
        for result in [attached, device] {
            assert!(
                matches!(
                    result,
                    Err(Error::Unsupported {
                        feature: "nrt_tensor_free",
                        ..
                    })
                ),
                "{result:?}"
            );
        }
        assert_eq!(control().counters().live_objects(), 0);
    }
    assert_no_leaks();
}
