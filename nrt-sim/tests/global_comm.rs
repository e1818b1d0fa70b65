//! The global communicator and the host-driven barrier: `nrt_build_global_comm`,
//! `nrt_cc_global_comm_init` and `nrt_barrier` (members on threads of this process).

mod common;

use common::*;
use nrt_sim::ffi::*;
use nrt_sys::*;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

fn barrier(vnc: i32, id: u32, count: u32) -> NRT_STATUS {
    // SAFETY: no pointer arguments.
    unsafe { nrt_barrier(vnc, id, count) }
}

fn build(vnc: i32, id: u32, count: u32) -> NRT_STATUS {
    // SAFETY: no pointer arguments.
    unsafe { nrt_build_global_comm(vnc, id, count) }
}

#[test]
fn two_members_on_threads_pass_barriers_together() {
    let _s = Session::new();
    let entered = AtomicU32::new(0);
    let statuses: Vec<Vec<NRT_STATUS>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2u32)
            .map(|id| {
                let entered = &entered;
                s.spawn(move || {
                    let mut statuses = vec![build(id as i32, id, 2)];
                    for round in 1..=3u32 {
                        if id == 1 {
                            // The late member: the other must wait for it.
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        entered.fetch_add(1, Ordering::SeqCst);
                        statuses.push(barrier(id as i32, id, 2));
                        // Nobody leaves a barrier before both entered it.
                        assert!(entered.load(Ordering::SeqCst) >= 2 * round);
                    }
                    statuses
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        statuses.iter().flatten().all(|&s| s == NRT_SUCCESS),
        "{statuses:?}"
    );
}

#[test]
fn a_barrier_needs_no_prior_setup_and_setup_again_is_harmless() {
    let _s = Session::new();
    assert_eq!(barrier(0, 0, 1), NRT_SUCCESS, "{}", last_error());
    assert_eq!(build(0, 0, 1), NRT_SUCCESS);
    // SAFETY: no pointer arguments.
    assert_eq!(unsafe { nrt_cc_global_comm_init(0, 0, 1) }, NRT_SUCCESS);
    assert_eq!(barrier(0, 0, 1), NRT_SUCCESS);
}

#[test]
fn a_missing_member_fails_the_barrier_with_the_collective_status_naming_it() {
    if !in_child(
        "a_missing_member_fails_the_barrier_with_the_collective_status_naming_it",
        &[("NEURON_RT_EXEC_TIMEOUT", "0.2")],
    ) {
        return;
    }
    let _s = Session::new();
    let start = Instant::now();
    assert_eq!(barrier(0, 0, 2), NRT_EXEC_HW_ERR_COLLECTIVES);
    let message = last_error();
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(
        message.contains("rank(s) [1] never arrived") && message.contains("the barrier"),
        "{message}"
    );
    // The communicator recovers once the missing member comes.
    let statuses: Vec<NRT_STATUS> = std::thread::scope(|s| {
        let a = s.spawn(|| barrier(0, 0, 2));
        let b = s.spawn(|| barrier(1, 1, 2));
        vec![a.join().unwrap(), b.join().unwrap()]
    });
    assert_eq!(statuses, [NRT_SUCCESS, NRT_SUCCESS]);
}

#[test]
fn bad_arguments_are_invalid_and_named() {
    let _s = Session::new();
    assert_eq!(barrier(7, 0, 1), NRT_INVALID);
    assert!(last_error().contains("vnc 7"), "{}", last_error());
    assert_eq!(barrier(-1, 0, 1), NRT_INVALID);
    assert_eq!(build(0, 0, 0), NRT_INVALID);
    assert!(
        last_error().contains("g_device_count 0"),
        "{}",
        last_error()
    );
    assert_eq!(build(0, 2, 2), NRT_INVALID);
    assert!(last_error().contains("g_device_id 2"), "{}", last_error());
    // Two visible cores and no NEURON_RT_ROOT_COMM_ID: a world of 4 cannot meet.
    assert_eq!(barrier(0, 0, 4), NRT_INVALID);
    assert!(
        last_error().contains("NEURON_RT_ROOT_COMM_ID"),
        "{}",
        last_error()
    );
    // One world per runtime, one core per member, one member per core.
    assert_eq!(build(0, 0, 2), NRT_SUCCESS);
    assert_eq!(build(1, 0, 1), NRT_INVALID);
    assert!(last_error().contains("has 2 members"), "{}", last_error());
    assert_eq!(build(1, 0, 2), NRT_INVALID);
    assert_eq!(build(0, 1, 2), NRT_INVALID);
    assert!(
        last_error().contains("core 0 already runs rank 0"),
        "{}",
        last_error()
    );
}

#[test]
fn outside_the_init_window_it_is_refused() {
    let _g = Session::serial_only();
    // NRT_CLOSED after an earlier test's session, NRT_UNINITIALIZED before any.
    let status = barrier(0, 0, 1);
    assert!(
        status == NRT_UNINITIALIZED || status == NRT_CLOSED,
        "{status}"
    );
}

/// `nrt_all_gather` of `input` as member `id` of `count` on core `id`.
fn all_gather(id: u32, count: u32, input: &[u8], output: &mut [u8]) -> NRT_STATUS {
    assert!(output.len() >= input.len() * count as usize);
    // SAFETY: `input` is readable for its length and `output` writable for
    // `count * input.len()` bytes (asserted above); they do not overlap.
    unsafe {
        nrt_all_gather(
            id as i32,
            id,
            count,
            input.len() as u32,
            input.as_ptr().cast_mut().cast(),
            output.as_mut_ptr().cast(),
        )
    }
}

#[test]
fn all_gather_places_every_members_bytes_at_its_rank() {
    let _s = Session::new();
    let outputs: Vec<(NRT_STATUS, Vec<u8>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2u32)
            .map(|id| {
                s.spawn(move || {
                    let mut last = (NRT_SUCCESS, Vec::new());
                    // Rounds follow each other: each gathers that round's bytes.
                    for round in 0..3u8 {
                        let input = [10 * round + id as u8; 5];
                        let mut output = vec![0xEEu8; 10];
                        let status = all_gather(id, 2, &input, &mut output);
                        let expected: Vec<u8> = [[10 * round; 5], [10 * round + 1; 5]].concat();
                        assert_eq!(
                            (status, &output),
                            (NRT_SUCCESS, &expected),
                            "{}",
                            last_error()
                        );
                        last = (status, output);
                    }
                    last
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(outputs[0], outputs[1]);
}

#[test]
fn all_gather_of_one_member_copies_its_input() {
    let _s = Session::new();
    let mut output = [0u8; 4];
    assert_eq!(all_gather(0, 1, &[1, 2, 3, 4], &mut output), NRT_SUCCESS);
    assert_eq!(output, [1, 2, 3, 4]);
    // Size 0: nothing to read or write, NULL buffers allowed.
    // SAFETY: no byte is read or written for rank_input_size 0.
    let status = unsafe { nrt_all_gather(0, 0, 1, 0, std::ptr::null_mut(), std::ptr::null_mut()) };
    assert_eq!(status, NRT_SUCCESS, "{}", last_error());
}

#[test]
fn all_gather_refuses_null_buffers_overlap_and_different_sizes() {
    let _s = Session::new();
    let mut buf = [0u8; 8];
    // SAFETY: NULL input is refused before any access.
    let status =
        unsafe { nrt_all_gather(0, 0, 1, 4, std::ptr::null_mut(), buf.as_mut_ptr().cast()) };
    assert_eq!(status, NRT_INVALID);
    assert!(
        last_error().contains("rank_input_size 4"),
        "{}",
        last_error()
    );
    // SAFETY: overlapping buffers are refused before any access.
    let status = unsafe {
        nrt_all_gather(
            0,
            0,
            1,
            4,
            buf.as_mut_ptr().cast(),
            buf.as_mut_ptr().add(2).cast(),
        )
    };
    assert_eq!(status, NRT_INVALID);
    assert!(last_error().contains("overlaps"), "{}", last_error());
    assert_eq!(all_gather(0, 0, &[1], &mut buf), NRT_INVALID);
    assert!(
        last_error().contains("g_device_count 0"),
        "{}",
        last_error()
    );

    // The last error is per thread: each member reports its own.
    let results: Vec<(NRT_STATUS, String)> = std::thread::scope(|s| {
        let a = s.spawn(|| (all_gather(0, 2, &[1; 4], &mut [0; 8]), last_error()));
        let b = s.spawn(|| (all_gather(1, 2, &[2; 2], &mut [0; 4]), last_error()));
        vec![a.join().unwrap(), b.join().unwrap()]
    });
    for (status, message) in results {
        assert_eq!(status, NRT_INVALID, "{message}");
        assert!(
            message.contains("every member gathers the same size"),
            "{message}"
        );
    }
}

#[test]
fn a_missing_member_fails_the_all_gather_leaving_own_bytes_and_zeros() {
    if !in_child(
        "a_missing_member_fails_the_all_gather_leaving_own_bytes_and_zeros",
        &[("NEURON_RT_EXEC_TIMEOUT", "0.2")],
    ) {
        return;
    }
    let _s = Session::new();
    let start = Instant::now();
    let mut output = [0xEEu8; 6];
    assert_eq!(
        all_gather(1, 2, &[7; 3], &mut output),
        NRT_EXEC_HW_ERR_COLLECTIVES
    );
    assert!(start.elapsed() < Duration::from_secs(3));
    let message = last_error();
    assert!(
        message.contains("rank(s) [0] never arrived") && message.contains("the all-gather"),
        "{message}"
    );
    assert_eq!(output, [0, 0, 0, 7, 7, 7]);
}

#[test]
fn an_absurd_world_is_refused_at_once_before_anything_is_allocated() {
    let root = "127.0.0.1:9";
    if !in_child(
        "an_absurd_world_is_refused_at_once_before_anything_is_allocated",
        &[("NEURON_RT_ROOT_COMM_ID", root)],
    ) {
        return;
    }
    let _s = Session::new();
    let start = Instant::now();
    // 2^26 members would take gigabytes of per-rank state (the finding: Ok after 13 s
    // at 2.9 GB); the simulator refuses a world above its limit with NRT_INVALID.
    assert_eq!(build(0, 0, 1 << 26), NRT_INVALID);
    let message = last_error();
    assert!(
        message.contains("67108864") && message.contains("4096"),
        "{message}"
    );
    assert_eq!(barrier(0, 1, u32::MAX), NRT_INVALID);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    // The limit itself is accepted (nobody else comes: the setup only registers).
    assert_eq!(build(0, 0, 4096), NRT_SUCCESS, "{}", last_error());
}
