//! Thread safety: several threads hammering allocation, sets, sync and async execution and
//! queries at once, `nrt_close` racing with users, and `nrt_init` racing with itself.

mod common;

use common::*;
use nrt_sim::ffi::*;
use nrt_sys::*;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// A status slot shared with the simulator's worker; read with an atomic load because
/// the worker stores into it from another thread.
fn slot_value(slot: &NRT_STATUS) -> NRT_STATUS {
    // SAFETY: the slot is a live, aligned u32; the simulator writes it atomically.
    unsafe { AtomicU32::from_ptr((slot as *const NRT_STATUS).cast_mut()) }.load(Ordering::Acquire)
}

/// Schedules an execution, retrying while the queue is full (other threads share it).
///
/// # Safety
///
/// `ret` must stay valid until the request completes.
unsafe fn schedule_exec_retrying(
    model: *mut nrt_model_t,
    inputs: *mut nrt_tensor_set_t,
    outputs: *mut nrt_tensor_set_t,
    ret: *mut NRT_STATUS,
) -> nrta_seq_t {
    let start = Instant::now();
    loop {
        let mut seq = 0;
        // SAFETY: handles are checked; `ret` outlives the request (caller).
        let status = unsafe { nrta_execute_schedule(model, inputs, outputs, 0, ret, &mut seq) };
        match status {
            NRT_SUCCESS => return seq,
            NRT_QUEUE_FULL => {
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "queue never drained"
                );
                std::thread::sleep(Duration::from_micros(100));
            }
            other => panic!("schedule failed: {other}: {}", last_error()),
        }
    }
}

#[test]
fn threads_hammering_every_entry_point_leave_consistent_state() {
    on_exec_stack(|| {
        let _s = Session::new();
        const N: u32 = 16;
        const THREADS: usize = 6;
        const ROUNDS: usize = 40;
        let models: Vec<usize> = (0..2)
            .map(|core| load(&add_model(N, Duration::from_micros(50)), core) as usize)
            .collect();
        let before = counters();
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            // A reader polling queries while the others work.
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    for core in 0..2u32 {
                        let mut stats = nrt_vnc_memory_stats_t::default();
                        let mut seq = 0;
                        // SAFETY: writable out-pointers of the sizes given.
                        unsafe {
                            assert_eq!(
                                nrt_get_vnc_memory_stats(
                                    core,
                                    &mut stats,
                                    std::mem::size_of_val(&stats),
                                    std::ptr::null_mut()
                                ),
                                NRT_SUCCESS
                            );
                            assert_eq!(
                                nrta_get_sequence(core, NRTA_XU_COMPUTE, 0, &mut seq),
                                NRT_SUCCESS
                            );
                        }
                        assert!(stats.bytes_used <= stats.bytes_limit);
                        if seq & NRTA_SEQ_NUM_MASK > 0 {
                            assert_eq!(is_completed(seq), Ok(true), "last completed is completed");
                        }
                    }
                    let _ = counters();
                }
            });
            let workers: Vec<_> = (0..THREADS)
                .map(|i| {
                    let models = &models;
                    spawn_with_exec_stack(s, move || {
                        let core = (i % 2) as i32;
                        let model = models[i % 2] as *mut nrt_model_t;
                        for round in 0..ROUNDS {
                            let bytes = N as usize * 4;
                            let a = alloc(core, bytes, "a");
                            // Host and device inputs alike are allowed.
                            let b = if round % 2 == 0 {
                                alloc_host(bytes, "b")
                            } else {
                                alloc(core, bytes, "b")
                            };
                            let out = alloc(core, bytes, "out");
                            let x = (i * 100 + round) as f32;
                            write_f32(a, &vec![x; N as usize]);
                            write_f32(b, &vec![1.0; N as usize]);
                            let ins = set_of(&[("a", a), ("b", b)]);
                            let outs = set_of(&[("out", out)]);
                            if round % 3 == 0 {
                                assert_eq!(
                                    execute(model, ins, outs),
                                    NRT_SUCCESS,
                                    "{}",
                                    last_error()
                                );
                            } else {
                                let mut ret = Box::new(SENTINEL);
                                // SAFETY: `ret` lives until the request completes (waited).
                                let seq =
                                    unsafe { schedule_exec_retrying(model, ins, outs, &mut *ret) };
                                wait_completed(seq);
                                assert_eq!(slot_value(&ret), NRT_SUCCESS);
                            }
                            // An async read on a TENSOR_OP queue of the output's core.
                            let mut back = vec![0u8; bytes];
                            let mut ret = Box::new(SENTINEL);
                            let mut seq = 0;
                            // SAFETY: `back` and `ret` live until completion (waited below).
                            let status = unsafe {
                                nrta_tensor_read(
                                    back.as_mut_ptr().cast(),
                                    out,
                                    0,
                                    bytes as u64,
                                    core,
                                    (round % 2) as i32,
                                    &mut *ret,
                                    &mut seq,
                                )
                            };
                            if status == NRT_SUCCESS {
                                wait_completed(seq);
                                assert_eq!(slot_value(&ret), NRT_SUCCESS);
                                assert_eq!(f32_values(&back), vec![x + 1.0; N as usize]);
                            } else {
                                assert_eq!(status, NRT_QUEUE_FULL);
                                assert_eq!(read_f32(out, N as usize), vec![x + 1.0; N as usize]);
                            }
                            destroy_set(ins);
                            destroy_set(outs);
                            for t in [a, b, out] {
                                free(t);
                            }
                        }
                    })
                })
                .collect();
            for w in workers {
                w.join().unwrap();
            }
            stop.store(true, Ordering::Relaxed);
        });
        let after = counters();
        assert_eq!(
            after.live_objects(),
            before.live_objects(),
            "nothing leaked"
        );
        assert_eq!(after.host_bytes, 0);
        for core in 0..2 {
            assert_eq!(
                after.cores[core].device_bytes, before.cores[core].device_bytes,
                "only the model stays on core {core}"
            );
        }
        let runs: u64 = after.cores.iter().map(|c| c.executions).sum();
        assert_eq!(runs, (THREADS * ROUNDS) as u64);
        for m in models {
            unload(m as *mut _);
        }
        assert_eq!(counters().live_objects(), 0);
    });
}

#[test]
fn close_racing_with_users_drains_accepted_requests() {
    on_exec_stack(|| {
        let _s = Session::new();
        let rig = AddRig::new(0, 4, Duration::from_micros(200));
        let (model, inputs, outputs) = (
            rig.model as usize,
            rig.inputs as usize,
            rig.outputs as usize,
        );
        let start = Barrier::new(5);
        let slots: Vec<Vec<Box<NRT_STATUS>>> = std::thread::scope(|s| {
            let users: Vec<_> = (0..4)
                .map(|i| {
                    let start = &start;
                    s.spawn(move || {
                        let mut accepted = Vec::new();
                        start.wait();
                        loop {
                            // Sync calls: succeed while open, NRT_CLOSED after, never crash.
                            match try_alloc(NRT_TENSOR_PLACEMENT_DEVICE, i % 2, 64, "t") {
                                Ok(mut t) => {
                                    // SAFETY: valid pointer to a handle. If close won the
                                    // race the call is refused and the handle left alone.
                                    unsafe { nrt_tensor_free(&mut t) };
                                    if !t.is_null() {
                                        assert!(!counters().open);
                                        break;
                                    }
                                }
                                Err(status) => {
                                    assert_eq!(status, NRT_CLOSED, "{}", last_error());
                                    break;
                                }
                            }
                            let mut ret = Box::new(SENTINEL);
                            let mut seq = 0;
                            // SAFETY: `ret` is kept (returned from the thread) until after
                            // nrt_close, which completes every accepted request.
                            let status = unsafe {
                                nrta_execute_schedule(
                                    model as *mut _,
                                    inputs as *mut _,
                                    outputs as *mut _,
                                    0,
                                    &mut *ret,
                                    &mut seq,
                                )
                            };
                            match status {
                                NRT_SUCCESS => accepted.push(ret),
                                NRT_QUEUE_FULL => std::thread::yield_now(),
                                NRT_CLOSED | NRT_INVALID_HANDLE => break,
                                other => panic!("unexpected {other}: {}", last_error()),
                            }
                        }
                        accepted
                    })
                })
                .collect();
            start.wait();
            std::thread::sleep(Duration::from_millis(20));
            // SAFETY: no arguments.
            unsafe { nrt_close() };
            users.into_iter().map(|u| u.join().unwrap()).collect()
        });
        let accepted: Vec<_> = slots.into_iter().flatten().collect();
        assert!(
            !accepted.is_empty(),
            "some requests were accepted before close"
        );
        for ret in &accepted {
            assert_eq!(
                slot_value(ret),
                NRT_SUCCESS,
                "close completed every accepted request"
            );
        }
        let c = counters();
        assert!(!c.open);
        assert_eq!(c.cores[0].executions, accepted.len() as u64);
        // Calls after close are refused, whatever the handle.
        assert_eq!(write(rig.a, 0, &[0; 4]), NRT_CLOSED);
        assert_eq!(execute(rig.model, rig.inputs, rig.outputs), NRT_CLOSED);
        assert_eq!(is_completed(1 << 56 | 1), Err(NRT_CLOSED));
    });
}

#[test]
fn racing_inits_open_the_runtime_once() {
    let _serial = Session::serial_only();
    let start = Arc::new(Barrier::new(8));
    let statuses: Vec<NRT_STATUS> = (0..8)
        .map(|_| {
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                init_status()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    assert_eq!(statuses.iter().filter(|&&s| s == NRT_SUCCESS).count(), 1);
    assert!(
        statuses
            .iter()
            .all(|&s| s == NRT_SUCCESS || s == NRT_FAILURE)
    );
    // SAFETY: no arguments.
    unsafe { nrt_close() };
}
