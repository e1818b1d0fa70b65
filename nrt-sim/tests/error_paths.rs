//! Arguments the runtime rejects must be rejected here too (a lenient simulator hides
//! bugs): NULL out-pointers, zero sizes, bad core indices, foreign and stale sequence
//! ids; and what the runtime documents as valid must work (slices outliving their
//! source).

mod common;

use common::*;
use nrt_sim::ffi::*;
use nrt_sys::*;
use std::time::{Duration, Instant};

#[test]
fn null_out_pointers_are_invalid_everywhere() {
    let _s = Session::new();
    let rig = AddRig::new(0, 2, Duration::ZERO);
    let null_u32 = std::ptr::null_mut::<u32>();
    // Each call must be refused for the NULL pointer itself (the log says so).
    macro_rules! refused {
        ($call:expr) => {{
            // SAFETY: the NULL out-pointer is rejected before any write.
            let status = unsafe { $call };
            assert_eq!(status, NRT_INVALID, "{}", stringify!($call));
            assert!(
                last_error().contains("NULL"),
                "{}: {}",
                stringify!($call),
                last_error()
            );
        }};
    }
    refused!(nrt_get_total_vnc_count(null_u32));
    refused!(nrt_get_total_nc_count(null_u32));
    refused!(nrt_get_visible_vnc_count(null_u32));
    refused!(nrt_get_visible_nc_count(null_u32));
    refused!(nrt_get_version(std::ptr::null_mut(), 8));
    refused!(nrt_get_instance_info(std::ptr::null_mut(), 8));
    refused!(nrt_get_vnc_memory_stats(
        0,
        std::ptr::null_mut(),
        16,
        std::ptr::null_mut()
    ));
    refused!(nrt_get_model_vnc_count(rig.model, null_u32));
    refused!(nrt_get_model_nc_count(rig.model, null_u32));
    refused!(nrt_get_model_instance_count(rig.model, null_u32));
    refused!(nrt_get_model_info(
        rig.model,
        std::ptr::null_mut(),
        4,
        std::ptr::null_mut()
    ));
    refused!(nrt_get_model_tensor_info(rig.model, std::ptr::null_mut()));
    refused!(nrt_tensor_allocate_empty(
        std::ptr::null(),
        std::ptr::null_mut()
    ));
    refused!(nrt_tensor_allocate_slice(
        rig.a,
        0,
        4,
        std::ptr::null(),
        std::ptr::null_mut()
    ));
    refused!(nrt_tensor_read(rig.a, std::ptr::null_mut(), 0, 4));
    refused!(nrt_tensor_write(rig.a, std::ptr::null(), 0, 4));
    refused!(nrt_tensor_get_device_allocation_info(
        rig.a,
        std::ptr::null_mut()
    ));
    refused!(nrt_allocate_tensor_set(std::ptr::null_mut()));
    refused!(nrt_get_tensor_from_tensor_set(
        rig.inputs,
        c"a".as_ptr(),
        std::ptr::null_mut()
    ));
    refused!(nrta_get_sequence(
        0,
        NRTA_XU_COMPUTE,
        0,
        std::ptr::null_mut()
    ));
    refused!(nrta_is_completed(1 << 48, std::ptr::null_mut()));
    refused!(nrt_free_model_tensor_info(std::ptr::null_mut()));
    assert_eq!(counters().live_objects(), 6, "nothing was created");
    rig.release();
}

#[test]
fn zero_sizes_are_invalid() {
    let _s = Session::new();
    let t = alloc(0, 8, "t");
    let mut out = std::ptr::null_mut();
    let mut stats = nrt_vnc_memory_stats_t::default();
    let mut ver = nrt_version_t::default();
    let mut buffer = [0u8; 4];
    // SAFETY: valid handles and out-pointers; the sizes are refused before any write.
    unsafe {
        assert_eq!(
            nrt_tensor_allocate_slice(t, 0, 0, std::ptr::null(), &mut out),
            NRT_INVALID
        );
        assert_eq!(
            nrt_tensor_attach_buffer(t, buffer.as_mut_ptr().cast(), 0),
            NRT_INVALID
        );
        assert_eq!(
            nrt_get_vnc_memory_stats(0, &mut stats, 0, std::ptr::null_mut()),
            NRT_INVALID
        );
        assert_eq!(nrt_get_version(&mut ver, 0), NRT_INVALID);
        let mut model = std::ptr::null_mut();
        assert_eq!(
            nrt_load(c"x".as_ptr().cast(), 0, 0, -1, &mut model),
            NRT_INVALID
        );
    }
    for placement in [
        NRT_TENSOR_PLACEMENT_DEVICE,
        NRT_TENSOR_PLACEMENT_HOST,
        NRT_TENSOR_PLACEMENT_VIRTUAL,
    ] {
        assert_eq!(try_alloc(placement, 0, 0, "zero"), Err(NRT_INVALID));
    }
    free(t);
    assert_eq!(counters().live_objects(), 0);
}

#[test]
fn core_indices_out_of_range_are_refused() {
    let _s = Session::new();
    let mut stats = nrt_vnc_memory_stats_t::default();
    let mut seq = 0;
    // SAFETY: valid out-pointers.
    unsafe {
        assert_eq!(
            nrt_get_vnc_memory_stats(2, &mut stats, 16, std::ptr::null_mut()),
            NRT_INVALID
        );
        assert_eq!(
            nrt_get_vnc_memory_stats(u32::MAX, &mut stats, 16, std::ptr::null_mut()),
            NRT_INVALID
        );
        assert_eq!(
            nrta_get_sequence(u32::MAX, NRTA_XU_TENSOR_OP, 0, &mut seq),
            NRT_INVALID
        );
    }
    // A device tensor needs a real core; -1 is for host memory only.
    for vnc in [-1, -2, 2, i32::MAX] {
        assert_eq!(
            try_alloc(NRT_TENSOR_PLACEMENT_DEVICE, vnc, 8, "x"),
            Err(NRT_INVALID),
            "vnc {vnc}"
        );
    }
    let file = add_model(2, Duration::ZERO);
    assert_eq!(try_load(&file, -2), Err(NRT_INVALID));
    assert_eq!(try_load(&file, i32::MIN), Err(NRT_INVALID));
    assert_eq!(try_load(&file, i32::MAX), Err(NRT_LOAD_NOT_ENOUGH_NC));
    assert_eq!(counters().live_objects(), 0);
}

#[test]
fn sequence_ids_of_other_queues_and_closed_sessions_are_not_accepted() {
    let _s = Session::new();
    let t = alloc(0, 8, "t");
    let data = [1u8; 8];
    let mut rets = [0xdead_u32; 3];
    let mut seqs = [0u64; 3];
    for (ret, seq) in rets.iter_mut().zip(seqs.iter_mut()) {
        // SAFETY: `data` and `ret` outlive the requests (waited below).
        let status = unsafe { nrta_tensor_write(t, data.as_ptr().cast(), 0, 8, 0, 0, ret, seq) };
        assert_eq!(status, NRT_SUCCESS);
    }
    let done = |seq: u64| {
        let mut d = false;
        // SAFETY: valid out-pointer.
        let status = unsafe { nrta_is_completed(seq, &mut d) };
        (status == NRT_SUCCESS).then_some(d).ok_or(status)
    };
    let start = Instant::now();
    while done(seqs[2]) != Ok(true) {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_micros(200));
    }
    assert_eq!(rets, [NRT_SUCCESS; 3]);
    // Queue 1 of the same unit type issued nothing: number 1 there was never issued.
    let queue1 = (seqs[0] & !NRTA_SEQ_NUM_MASK) | (1 << (48 + 4));
    assert_eq!(done(queue1 | 1), Err(NRT_INVALID));
    // The same number on the COMPUTE unit of the same core: never issued either.
    let compute = (NRTA_XU_COMPUTE as u64) << 48;
    assert_eq!(done(compute | 1), Err(NRT_INVALID));
    // Reserved bits in the unit id (a type past COLLECTIVES).
    assert_eq!(done((0xf_u64 << 48) | 1), Err(NRT_INVALID));
    free(t);
    // After close and init, the queues start over: the old ids were never issued.
    // SAFETY: no arguments; the requests above are complete.
    unsafe { nrt_close() };
    assert_eq!(init_status(), NRT_SUCCESS);
    assert_eq!(done(seqs[0]), Err(NRT_INVALID));
}

#[test]
fn execution_binding_rules() {
    on_exec_stack(|| {
        let _s = Session::new();
        let rig = AddRig::new(0, 2, Duration::ZERO);
        write_f32(rig.a, &[1., 2.]);
        write_f32(rig.b, &[3., 4.]);
        // Extra tensors in a set are ignored: bindings are matched by the model's names.
        let extra = alloc(1, 4, "unrelated");
        assert_eq!(add(rig.inputs, "not-an-input", extra), NRT_SUCCESS);
        assert_eq!(add(rig.outputs, "not-an-output", extra), NRT_SUCCESS);
        assert_eq!(rig.execute(), NRT_SUCCESS, "{}", last_error());
        assert_eq!(read_f32(rig.out, 2), vec![4., 6.]);
        // A tensor without storage cannot be bound.
        let mut empty = std::ptr::null_mut();
        // SAFETY: valid name and out-pointer.
        unsafe { nrt_tensor_allocate_empty(c"e".as_ptr(), &mut empty) };
        let ins = set_of(&[("a", rig.a), ("b", empty)]);
        assert_eq!(execute(rig.model, ins, rig.outputs), NRT_INVALID);
        assert!(
            last_error().contains("no memory attached"),
            "{}",
            last_error()
        );
        // A slice whose source was freed is still a valid input (shared storage).
        let big = alloc(0, 16, "big");
        write_f32(big, &[0., 10., 20., 0.]);
        let mut view = std::ptr::null_mut();
        // SAFETY: valid handle and out-pointer.
        unsafe {
            assert_eq!(
                nrt_tensor_allocate_slice(big, 4, 8, std::ptr::null(), &mut view),
                NRT_SUCCESS
            )
        };
        free(big);
        assert_eq!(add(ins, "b", view), NRT_SUCCESS);
        assert_eq!(
            execute(rig.model, ins, rig.outputs),
            NRT_SUCCESS,
            "{}",
            last_error()
        );
        assert_eq!(read_f32(rig.out, 2), vec![11., 22.]);
        // repeat_count below 1 is refused; n runs are n executions.
        // SAFETY: handles checked.
        unsafe {
            assert_eq!(
                nrt_execute_repeat(rig.model, ins, rig.outputs, 0),
                NRT_INVALID
            );
            assert_eq!(
                nrt_execute_repeat(rig.model, ins, rig.outputs, -3),
                NRT_INVALID
            );
            assert_eq!(
                nrt_execute_repeat(rig.model, ins, rig.outputs, 3),
                NRT_SUCCESS
            );
        }
        assert_eq!(counters().cores[0].executions, 5);
        destroy_set(ins);
        for t in [empty, view, extra] {
            free(t);
        }
        rig.release();
        assert_eq!(counters().live_objects(), 0);
    });
}

#[test]
fn zero_length_transfers_with_null_buffers_are_harmless() {
    let _s = Session::new();
    let t = alloc(0, 8, "t");
    // SAFETY: zero-byte transfers never touch the (NULL) buffer.
    unsafe {
        assert_eq!(nrt_tensor_read(t, std::ptr::null_mut(), 0, 0), NRT_SUCCESS);
        assert_eq!(nrt_tensor_write(t, std::ptr::null(), 8, 0), NRT_SUCCESS);
        let op = nrt_tensor_batch_op_t {
            offset: 4,
            size: 0,
            buffer: std::ptr::null_mut(),
        };
        let batch = nrt_tensor_batch_t {
            tensor: t,
            ops: &op,
            num_ops: 1,
        };
        assert_eq!(nrt_tensor_read_batch(&batch, 1, false), NRT_SUCCESS);
        assert_eq!(nrt_tensor_write_batch(&batch, 1, false), NRT_SUCCESS);
    }
    let mut rets = [0xdead_u32; 2];
    let mut seqs = [0u64; 2];
    // SAFETY: `rets` outlive the requests (waited below); the buffers are never read.
    unsafe {
        let (r0, r1) = rets.split_at_mut(1);
        assert_eq!(
            nrta_tensor_write(t, std::ptr::null(), 0, 0, 0, 0, &mut r0[0], &mut seqs[0]),
            NRT_SUCCESS
        );
        assert_eq!(
            nrta_tensor_read(
                std::ptr::null_mut(),
                t,
                8,
                0,
                0,
                0,
                &mut r1[0],
                &mut seqs[1]
            ),
            NRT_SUCCESS
        );
    }
    let start = Instant::now();
    loop {
        let mut done = false;
        // SAFETY: valid out-pointer.
        assert_eq!(
            unsafe { nrta_is_completed(seqs[1], &mut done) },
            NRT_SUCCESS
        );
        if done {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_micros(200));
    }
    assert_eq!(rets, [NRT_SUCCESS; 2]);
    free(t);
}
