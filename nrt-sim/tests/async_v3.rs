//! Async API v3: queues, sequence ids, depth, ordering, completion, faults.

mod common;

use common::*;
use nrt_sim::ffi::*;
use nrt_sys::*;
use std::time::{Duration, Instant};

fn xu_id(xu: nrta_xu_t, queue: u64, vnc: u64) -> u64 {
    xu as u64 | queue << 4 | vnc << 8
}

fn last_seq(vnc: u32, xu: nrta_xu_t, queue: i32) -> Result<nrta_seq_t, NRT_STATUS> {
    let mut seq = 0;
    // SAFETY: valid out-pointer.
    let status = unsafe { nrta_get_sequence(vnc, xu, queue, &mut seq) };
    if status == NRT_SUCCESS {
        Ok(seq)
    } else {
        Err(status)
    }
}

fn schedule_exec(rig: &AddRig, ret: &mut NRT_STATUS) -> Result<nrta_seq_t, NRT_STATUS> {
    let mut seq = u64::MAX;
    // SAFETY: `ret` outlives the request (every test waits for completion or closes,
    // which drains the queue, before the slot goes away).
    let status =
        unsafe { nrta_execute_schedule(rig.model, rig.inputs, rig.outputs, 0, ret, &mut seq) };
    if status == NRT_SUCCESS {
        Ok(seq)
    } else {
        assert_eq!(
            seq,
            u64::MAX,
            "a refused schedule must not write a sequence id"
        );
        Err(status)
    }
}

#[test]
fn sequence_ids_count_per_queue_with_the_queue_in_the_top_bits() {
    let _s = Session::new();
    let rig = AddRig::new(1, 4, Duration::ZERO);
    write_f32(rig.a, &[1., 2., 3., 4.]);
    write_f32(rig.b, &[1., 1., 1., 1.]);
    let id = xu_id(NRTA_XU_COMPUTE, 0, 1);
    assert_eq!(
        last_seq(1, NRTA_XU_COMPUTE, 0),
        Ok(id << 48),
        "0 before any"
    );
    let mut rets = [SENTINEL; 3];
    let seqs: Vec<u64> = rets
        .iter_mut()
        .map(|r| schedule_exec(&rig, r).unwrap())
        .collect();
    assert_eq!(seqs, vec![id << 48 | 1, id << 48 | 2, id << 48 | 3]);
    wait_completed(seqs[2]);
    assert_eq!(rets, [NRT_SUCCESS; 3]);
    assert_eq!(last_seq(1, NRTA_XU_COMPUTE, 0), Ok(seqs[2]));
    assert_eq!(read_f32(rig.out, 4), vec![2., 3., 4., 5.]);
    // Other queues are independent.
    let mut r = SENTINEL;
    let w = schedule_write(rig.a, &[0; 4], 0, 1, 1, &mut r).unwrap();
    assert_eq!(w, xu_id(NRTA_XU_TENSOR_OP, 1, 1) << 48 | 1);
    wait_completed(w);
    assert_eq!(r, NRT_SUCCESS);
    // Ids never issued (number too high, number 0, or a queue that does not exist).
    assert_eq!(is_completed(seqs[2] + 1), Err(NRT_INVALID));
    assert!(last_error().contains("never issued"), "{}", last_error());
    assert_eq!(is_completed(id << 48), Err(NRT_INVALID));
    assert_eq!(
        is_completed(xu_id(NRTA_XU_COMPUTE, 1, 1) << 48 | 1),
        Err(NRT_INVALID)
    );
    assert_eq!(
        is_completed(xu_id(NRTA_XU_COMPUTE, 0, 7) << 48 | 1),
        Err(NRT_INVALID)
    );
    let c = counters();
    assert_eq!(c.cores[1].executions, 3);
    assert_eq!(c.cores[1].tensor_ops, 1);
    rig.release();
}

#[test]
fn queue_and_core_arguments_are_checked() {
    let _s = Session::new();
    let t = alloc(0, 8, "t");
    let mut ret = SENTINEL;
    assert_eq!(schedule_write(t, &[1], 0, 0, 2, &mut ret), Err(NRT_INVALID));
    assert!(
        last_error().contains("queue 2 does not exist: TENSOR_OP has queues 0 to 1"),
        "{}",
        last_error()
    );
    assert_eq!(
        schedule_write(t, &[1], 0, 0, -1, &mut ret),
        Err(NRT_INVALID)
    );
    assert_eq!(last_seq(0, NRTA_XU_COMPUTE, 1), Err(NRT_INVALID));
    assert_eq!(
        last_seq(0, NRTA_XU_COLLECTIVES, 2).map(|s| s >> 48),
        Ok(xu_id(NRTA_XU_COLLECTIVES, 2, 0))
    );
    assert_eq!(last_seq(0, NRTA_XU_COLLECTIVES, 3), Err(NRT_INVALID));
    assert_eq!(last_seq(0, 3, 0), Err(NRT_INVALID));
    assert_eq!(last_seq(2, NRTA_XU_TENSOR_OP, 0), Err(NRT_INVALID));
    let rig = AddRig::new(0, 2, Duration::ZERO);
    let mut seq = 0;
    // SAFETY: `ret` and `seq` are valid; queue 1 is refused before anything is queued.
    unsafe {
        assert_eq!(
            nrta_execute_schedule(rig.model, rig.inputs, rig.outputs, 1, &mut ret, &mut seq),
            NRT_INVALID
        );
        // NULL status slot or sequence slot.
        assert_eq!(
            nrta_execute_schedule(
                rig.model,
                rig.inputs,
                rig.outputs,
                0,
                std::ptr::null_mut(),
                &mut seq
            ),
            NRT_INVALID
        );
        assert_eq!(
            nrta_execute_schedule(
                rig.model,
                rig.inputs,
                rig.outputs,
                0,
                &mut ret,
                std::ptr::null_mut()
            ),
            NRT_INVALID
        );
        // Collectives are not simulated.
        assert_eq!(
            nrta_cc_schedule(std::ptr::null_mut(), 0, &mut ret, &mut seq),
            NRT_FAILURE
        );
        assert_eq!(
            nrta_cc_prepare(
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                NRT_DTYPE_FLOAT32,
                NRT_OP_ADD,
                NRT_CC_ALLREDUCE,
                std::ptr::null_mut()
            ),
            NRT_FAILURE
        );
    }
    assert_eq!(ret, SENTINEL, "nothing ran");
    assert_eq!(
        last_seq(0, NRTA_XU_COMPUTE, 0),
        Ok(xu_id(NRTA_XU_COMPUTE, 0, 0) << 48)
    );
    free(t);
    rig.release();
}

#[test]
fn schedule_time_checks_match_the_sync_calls() {
    let _s = Session::new();
    let rig = AddRig::new(0, 2, Duration::ZERO);
    let other = alloc(1, 8, "other");
    let mut ret = SENTINEL;
    assert_eq!(
        schedule_write(rig.a, &[0; 8], 4, 0, 0, &mut ret),
        Err(NRT_INVALID)
    );
    assert!(
        last_error().contains("write: offset 4 + size 8 is past the end"),
        "{}",
        last_error()
    );
    let mut buf = [0u8; 4];
    assert_eq!(
        schedule_read(rig.a, &mut buf, u64::MAX, 0, 0, &mut ret),
        Err(NRT_INVALID)
    );
    let mut seq = 0;
    // SAFETY: handles are checked; the cross-core copy is refused at schedule time.
    unsafe {
        assert_eq!(
            nrta_tensor_copy(rig.a, 0, other, 0, 8, 0, 0, &mut ret, &mut seq),
            NRT_INVALID
        );
    }
    assert!(last_error().contains("from core 0 to core 1"));
    // Missing input at schedule time.
    let partial = set_of(&[("a", rig.a)]);
    // SAFETY: as above.
    unsafe {
        assert_eq!(
            nrta_execute_schedule(rig.model, partial, rig.outputs, 0, &mut ret, &mut seq),
            NRT_INVALID
        );
    }
    assert!(last_error().contains("input 'b' is missing"));
    // A freed tensor.
    let gone = alloc(0, 8, "gone");
    free(gone);
    assert_eq!(
        schedule_write(gone, &[1], 0, 0, 0, &mut ret),
        Err(NRT_INVALID_HANDLE)
    );
    assert_eq!(ret, SENTINEL);
    for q in 0..2 {
        assert_eq!(
            last_seq(0, NRTA_XU_TENSOR_OP, q),
            Ok(xu_id(NRTA_XU_TENSOR_OP, q as u64, 0) << 48)
        );
    }
    assert_eq!(counters().cores[0].tensor_ops, 0);
    destroy_set(partial);
    free(other);
    rig.release();
}

#[test]
fn full_queue_refuses_without_consuming_a_sequence_number() {
    let _s = Session::new();
    let rig = AddRig::new(0, 2, Duration::from_millis(15));
    let mut rets = [SENTINEL; 9];
    let (first8, last) = rets.split_at_mut(8);
    let seqs: Vec<u64> = first8
        .iter_mut()
        .map(|r| schedule_exec(&rig, r).unwrap())
        .collect();
    assert_eq!(schedule_exec(&rig, &mut last[0]), Err(NRT_QUEUE_FULL));
    assert_eq!(last[0], SENTINEL);
    // Logged at DEBUG only (routine back-pressure), but its reason is the thread's last
    // error like any failing call's: an older call's reason never stands for it.
    assert!(
        last_error().contains("8 request(s) in flight, its depth (NRT_SIM_QUEUE_DEPTH)"),
        "{}",
        last_error()
    );
    wait_completed(seqs[0]);
    let ninth = schedule_exec(&rig, &mut last[0]).unwrap();
    assert_eq!(
        ninth & NRTA_SEQ_NUM_MASK,
        9,
        "the refused schedule consumed no number"
    );
    wait_completed(ninth);
    assert!(rets.iter().all(|&r| r == NRT_SUCCESS));
    rig.release();
}

#[test]
fn requests_on_one_queue_run_in_order_and_queues_run_concurrently() {
    let _s = Session::new();
    let t = alloc(0, 256, "t");
    // FIFO: a write then a read on the same queue, scheduled back to back.
    for round in 0..50u8 {
        let data = [round; 256];
        let mut out = [0xffu8; 256];
        let (mut r1, mut r2) = (SENTINEL, SENTINEL);
        let queue = (round % 2) as i32;
        let _w = schedule_write(t, &data, 0, 0, queue, &mut r1).unwrap();
        let r = schedule_read(t, &mut out, 0, 0, queue, &mut r2).unwrap();
        wait_completed(r);
        assert_eq!((r1, r2), (NRT_SUCCESS, NRT_SUCCESS));
        assert_eq!(out, data, "round {round}: the read overtook the write");
    }
    // A long execution on the compute queue does not hold up the tensor queue.
    let rig = AddRig::new(0, 2, Duration::from_millis(300));
    let mut exec_ret = SENTINEL;
    let e = schedule_exec(&rig, &mut exec_ret).unwrap();
    let mut wr = SENTINEL;
    let w = schedule_write(t, &[1; 8], 0, 0, 0, &mut wr).unwrap();
    wait_completed(w);
    assert_eq!(
        is_completed(e),
        Ok(false),
        "the write waited for the execution"
    );
    wait_completed(e);
    assert_eq!((exec_ret, wr), (NRT_SUCCESS, NRT_SUCCESS));
    free(t);
    rig.release();
}

#[test]
fn status_is_visible_whenever_completion_is() {
    let _s = Session::new();
    let t = alloc(1, 64, "t");
    let data = [7u8; 64];
    // Many tiny requests, polled as fast as possible from another thread's view.
    let mut rets = vec![SENTINEL; 400];
    for chunk in rets.chunks_mut(8) {
        let seqs: Vec<u64> = chunk
            .iter_mut()
            .map(|r| schedule_write(t, &data, 0, 1, 1, r).unwrap())
            .collect();
        for (i, &seq) in seqs.iter().enumerate() {
            while !is_completed(seq).unwrap() {
                std::hint::spin_loop();
            }
            // SAFETY: the slot is ours; completion was observed with acquire ordering,
            // so the worker's release store of the status is visible.
            let status = unsafe { std::ptr::read_volatile(&chunk[i]) };
            assert_eq!(
                status, NRT_SUCCESS,
                "completion published before the status"
            );
        }
    }
    free(t);
}

#[test]
fn async_exec_faults_write_ret_and_fatal_ones_kill_the_queue() {
    on_exec_stack(|| {
        let _s = Session::new();
        let rig = AddRig::new(0, 2, Duration::ZERO);
        control().inject_faults("exec:nth=2:status=1003").unwrap();
        let mut rets = [SENTINEL; 3];
        let seqs: Vec<u64> = rets
            .iter_mut()
            .map(|r| schedule_exec(&rig, r).unwrap())
            .collect();
        wait_completed(seqs[2]);
        assert_eq!(
            rets,
            [NRT_SUCCESS, NRT_EXEC_COMPLETED_WITH_NUM_ERR, NRT_SUCCESS]
        );
        // Why request 2 failed, by its sequence id (its worker's log line), like snprintf;
        // nothing for the requests that succeeded.
        let reason = |seq: u64, size: usize| {
            let mut buf = vec![1 as std::ffi::c_char; size];
            // SAFETY: `buf` holds `size` writable bytes.
            let n = unsafe {
                nrt_sim::control::nrt_sim_request_error(seq, buf.as_mut_ptr(), buf.len())
            };
            // SAFETY: nrt_sim_request_error NUL-terminated it (size > 0).
            let text = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
            (n, text.to_string_lossy().into_owned())
        };
        let (n, text) = reason(seqs[1], 512);
        assert!(
            text.starts_with(
                "nrta_execute_schedule: request 2 on core 0 COMPUTE queue 0: injected"
            ),
            "{text}"
        );
        assert_eq!(n, text.len());
        assert_eq!(reason(seqs[1], 8), (n, text[..7].to_owned()));
        // SAFETY: a NULL buffer of size 0 is allowed (only the length is returned).
        let len =
            unsafe { nrt_sim::control::nrt_sim_request_error(seqs[1], std::ptr::null_mut(), 0) };
        assert_eq!(len, n);
        assert_eq!(reason(seqs[0], 64), (0, String::new()));
        assert_eq!(reason(seqs[2], 64), (0, String::new()));
        // A timeout is fatal: the queue becomes unrecoverable.
        control().inject_faults("exec:status=NRT_TIMEOUT").unwrap();
        let mut r = SENTINEL;
        let s = schedule_exec(&rig, &mut r).unwrap();
        wait_completed(s);
        assert_eq!(r, NRT_TIMEOUT);
        assert_eq!(
            schedule_exec(&rig, &mut r),
            Err(NRT_EXEC_UNIT_UNRECOVERABLE)
        );
        assert_eq!(
            rig.execute(),
            NRT_EXEC_UNIT_UNRECOVERABLE,
            "sync runs on that core fail too"
        );
        // Tensor queues of the core still work.
        let mut wr = SENTINEL;
        let w = schedule_write(rig.a, &[0; 8], 0, 0, 0, &mut wr).unwrap();
        wait_completed(w);
        assert_eq!(wr, NRT_SUCCESS);
        rig.release();
    });
}

#[test]
fn xu_fault_makes_a_queue_unrecoverable_and_fails_queued_requests() {
    let _s = Session::new();
    let rig = AddRig::new(0, 2, Duration::from_millis(40));
    let rig1 = AddRig::new(1, 2, Duration::ZERO);
    let mut rets = [SENTINEL; 3];
    let seqs: Vec<u64> = rets
        .iter_mut()
        .map(|r| schedule_exec(&rig, r).unwrap())
        .collect();
    // Let the first request start, then break the queue.
    let start = Instant::now();
    while counters().cores[0].busy == Duration::ZERO && start.elapsed() < Duration::from_millis(30)
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    control()
        .inject_faults("xu:vnc=0:type=compute:queue=0")
        .unwrap();
    let mut r = SENTINEL;
    assert_eq!(
        schedule_exec(&rig, &mut r),
        Err(NRT_EXEC_UNIT_UNRECOVERABLE)
    );
    assert!(last_error().contains("unrecoverable"), "{}", last_error());
    wait_completed(seqs[2]);
    assert_eq!(
        rets[2], NRT_EXEC_UNIT_UNRECOVERABLE,
        "queued requests complete with an error"
    );
    assert!(
        rets.iter()
            .all(|&s| s == NRT_SUCCESS || s == NRT_EXEC_UNIT_UNRECOVERABLE)
    );
    // Other cores are unaffected.
    let s1 = schedule_exec(&rig1, &mut r).unwrap();
    wait_completed(s1);
    assert_eq!(r, NRT_SUCCESS);
    rig.release();
    rig1.release();
}

#[test]
fn xu_fault_on_the_nth_request_and_recovery_by_reinit() {
    let _s = Session::new();
    let t = alloc(0, 8, "t");
    control()
        .inject_faults("xu:vnc=0:type=tensor_op:queue=1:nth=2:status=NRT_EXEC_HW_ERR_DMA_ABORT")
        .unwrap();
    let mut rets = [SENTINEL; 3];
    let data = [1u8; 8];
    let seqs: Vec<u64> = rets
        .iter_mut()
        .map(|r| schedule_write(t, &data, 0, 0, 1, r).unwrap())
        .collect();
    wait_completed(seqs[2]);
    assert_eq!(
        rets,
        [
            NRT_SUCCESS,
            NRT_EXEC_HW_ERR_DMA_ABORT,
            NRT_EXEC_UNIT_UNRECOVERABLE
        ]
    );
    let mut r = SENTINEL;
    assert_eq!(
        schedule_write(t, &data, 0, 0, 1, &mut r),
        Err(NRT_EXEC_UNIT_UNRECOVERABLE)
    );
    let q0 = schedule_write(t, &data, 0, 0, 0, &mut r).unwrap();
    wait_completed(q0);
    assert_eq!(r, NRT_SUCCESS, "queue 0 of the same type still works");
    free(t);
    // Re-initializing gives every queue a fresh start.
    // SAFETY: no arguments.
    unsafe { nrt_close() };
    assert_eq!(init_status(), NRT_SUCCESS);
    let t = alloc(0, 8, "t");
    let s = schedule_write(t, &data, 0, 0, 1, &mut r).unwrap();
    assert_eq!(s & NRTA_SEQ_NUM_MASK, 1);
    wait_completed(s);
    assert_eq!(r, NRT_SUCCESS);
    free(t);
}

#[test]
fn close_waits_for_queued_requests() {
    let _s = Session::new();
    let rig = AddRig::new(0, 2, Duration::from_millis(10));
    write_f32(rig.a, &[1., 2.]);
    let mut rets = [SENTINEL; 4];
    for r in rets.iter_mut() {
        schedule_exec(&rig, r).unwrap();
    }
    let start = Instant::now();
    // SAFETY: no arguments.
    unsafe { nrt_close() };
    assert!(
        start.elapsed() >= Duration::from_millis(20),
        "close returned before the queue drained"
    );
    assert_eq!(rets, [NRT_SUCCESS; 4]);
    let c = counters();
    assert_eq!(c.cores[0].executions, 4);
    assert_eq!(
        c.live_at_last_close, 6,
        "the rig's objects were freed by close"
    );
    assert_eq!(last_seq(0, NRTA_XU_COMPUTE, 0), Err(NRT_CLOSED));
    assert_eq!(is_completed(1), Err(NRT_CLOSED));
    assert_eq!(init_status(), NRT_SUCCESS, "Session's drop closes again");
}

#[test]
fn async_copy_and_host_tensors_run_on_the_unit_lnc_idx_names() {
    let _s = Session::new();
    let dev = alloc(1, 8, "dev");
    let host = alloc_host(8, "host");
    assert_eq!(write(host, 0, &[1, 2, 3, 4, 5, 6, 7, 8]), NRT_SUCCESS);
    let mut ret = SENTINEL;
    let mut seq = 0;
    // SAFETY: `ret` outlives the request (waited for below).
    unsafe {
        assert_eq!(
            nrta_tensor_copy(host, 0, dev, 0, 8, 1, 1, &mut ret, &mut seq),
            NRT_SUCCESS
        );
    }
    assert_eq!(
        seq >> 48,
        xu_id(NRTA_XU_TENSOR_OP, 1, 1),
        "the device tensor's core"
    );
    wait_completed(seq);
    assert_eq!(ret, NRT_SUCCESS);
    assert_eq!(read(dev, 0, 8).unwrap(), vec![1, 2, 3, 4, 5, 6, 7, 8]);
    let mut buf = [0u8; 8];
    let s = schedule_read(host, &mut buf, 0, 1, 0, &mut ret).unwrap();
    assert_eq!(
        s >> 48,
        xu_id(NRTA_XU_TENSOR_OP, 0, 1),
        "host tensors move on the DMA engine of core lnc_idx"
    );
    wait_completed(s);
    assert_eq!(buf, [1, 2, 3, 4, 5, 6, 7, 8]);
    free(dev);
    free(host);
}

#[test]
fn queue_depth_comes_from_the_environment() {
    if !in_child(
        "queue_depth_comes_from_the_environment",
        &[("NRT_SIM_QUEUE_DEPTH", "2")],
    ) {
        return;
    }
    let _s = Session::new();
    let rig = AddRig::new(0, 2, Duration::from_millis(20));
    let mut rets = [SENTINEL; 3];
    let (two, third) = rets.split_at_mut(2);
    let seqs: Vec<u64> = two
        .iter_mut()
        .map(|r| schedule_exec(&rig, r).unwrap())
        .collect();
    assert_eq!(schedule_exec(&rig, &mut third[0]), Err(NRT_QUEUE_FULL));
    wait_completed(seqs[1]);
    rig.release();
}
