//! Completion events (runtime 2.32+): `nrta_event_register_seq_id_completion` and
//! `nrta_event_register_xu_completion` signal caller-owned eventfds.

mod common;

use common::*;
use nrt_sim::ffi::*;
use nrt_sys::*;
use std::time::Duration;

/// A non-blocking eventfd, closed on drop.
struct EventFd(i32);

impl EventFd {
    fn new() -> EventFd {
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        assert!(fd >= 0, "eventfd: {}", std::io::Error::last_os_error());
        EventFd(fd)
    }

    /// The counter (reset to 0 by the read), 0 when nothing was signalled.
    fn take(&self) -> u64 {
        let mut v = 0u64;
        // SAFETY: reads 8 bytes into a live local.
        let n = unsafe { libc::read(self.0, (&raw mut v).cast(), 8) };
        if n == 8 {
            v
        } else {
            let e = std::io::Error::last_os_error();
            assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "read: {e}");
            0
        }
    }

    /// Blocks until the fd is readable; fails the test after 20 s (a lost wake-up).
    fn wait_readable(&self) {
        let mut p = libc::pollfd {
            fd: self.0,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, 20_000) };
        assert_eq!(n, 1, "eventfd {} was never signalled", self.0);
    }
}

impl Drop for EventFd {
    fn drop(&mut self) {
        // SAFETY: our own descriptor, closed once.
        unsafe { libc::close(self.0) };
    }
}

fn register_seq(seq: nrta_seq_t, fd: i32) -> NRT_STATUS {
    // SAFETY: integers only.
    unsafe { nrta_event_register_seq_id_completion(seq, fd) }
}

fn register_xu(lnc: i32, xu: nrta_xu_t, queue: i32, fd: i32) -> NRT_STATUS {
    // SAFETY: integers only.
    unsafe { nrta_event_register_xu_completion(lnc, xu, queue, fd) }
}

fn schedule_exec(rig: &AddRig, ret: &mut NRT_STATUS) -> nrta_seq_t {
    let mut seq = 0;
    // SAFETY: `ret` outlives the request (tests wait for it or close, which drains).
    let status =
        unsafe { nrta_execute_schedule(rig.model, rig.inputs, rig.outputs, 0, ret, &mut seq) };
    assert_eq!(status, NRT_SUCCESS, "{}", last_error());
    seq
}

fn schedule_write(t: *mut nrt_tensor_t, data: &[u8], ret: &mut NRT_STATUS) -> nrta_seq_t {
    let mut seq = 0;
    // SAFETY: `data` and `ret` outlive the request (tests wait for it).
    let status = unsafe {
        nrta_tensor_write(
            t,
            data.as_ptr().cast(),
            0,
            data.len() as u64,
            0,
            0,
            ret,
            &mut seq,
        )
    };
    assert_eq!(status, NRT_SUCCESS, "{}", last_error());
    seq
}

fn last_seq(lnc: u32, xu: nrta_xu_t, queue: i32) -> nrta_seq_t {
    let mut seq = 0;
    // SAFETY: valid out-pointer.
    assert_eq!(
        unsafe { nrta_get_sequence(lnc, xu, queue, &mut seq) },
        NRT_SUCCESS
    );
    seq
}

#[test]
fn seq_event_is_signalled_once_when_the_request_completes() {
    let _s = Session::new();
    let rig = AddRig::new(0, 4, Duration::from_millis(30));
    let fd = EventFd::new();
    let mut ret = SENTINEL;
    let seq = schedule_exec(&rig, &mut ret);
    assert_eq!(register_seq(seq, fd.0), NRT_SUCCESS, "{}", last_error());
    fd.wait_readable();
    assert_eq!(is_completed(seq), Ok(true), "signalled before completion");
    assert_eq!(ret, NRT_SUCCESS);
    assert_eq!(fd.take(), 1);
    // A later request of the same queue does not signal an fd registered for this one.
    let mut ret2 = SENTINEL;
    let later = schedule_exec(&rig, &mut ret2);
    wait_completed(later);
    let marker = EventFd::new();
    assert_eq!(register_seq(later, marker.0), NRT_SUCCESS);
    marker.wait_readable();
    assert_eq!(fd.take(), 0, "a seq registration fires once");
    rig.release();
}

#[test]
fn registering_a_completed_request_signals_at_once() {
    let _s = Session::new();
    let rig = AddRig::new(1, 4, Duration::ZERO);
    let mut ret = SENTINEL;
    let seq = schedule_exec(&rig, &mut ret);
    wait_completed(seq);
    let fd = EventFd::new();
    assert_eq!(register_seq(seq, fd.0), NRT_SUCCESS, "{}", last_error());
    assert_eq!(fd.take(), 1, "no lost wake-up for a completed request");
    rig.release();
}

#[test]
fn a_readable_fd_means_completed_with_the_final_status() {
    // Many short requests, each registered right after scheduling, so that registration
    // races with completion: whenever the fd is readable, the request is complete and
    // its status slot holds the final status.
    let _s = Session::new();
    let t = alloc(0, 64, "t");
    let data = [7u8; 64];
    let fd = EventFd::new();
    for i in 0..300 {
        let mut ret = Box::new(SENTINEL);
        let seq = schedule_write(t, &data, &mut ret);
        assert_eq!(register_seq(seq, fd.0), NRT_SUCCESS, "{}", last_error());
        fd.wait_readable();
        assert_eq!(is_completed(seq), Ok(true), "iteration {i}");
        // SAFETY: the request completed (acquire in nrta_is_completed); the worker's
        // release store is visible, and nothing writes the slot any more.
        let status = unsafe { std::ptr::read_volatile(&*ret) };
        assert_eq!(status, NRT_SUCCESS, "iteration {i}");
        assert_eq!(fd.take(), 1, "iteration {i}");
    }
    free(t);
}

#[test]
fn xu_event_is_signalled_for_every_completion_of_the_unit() {
    let _s = Session::new();
    let rig = AddRig::new(0, 4, Duration::from_millis(5));
    let fd = EventFd::new();
    assert_eq!(
        register_xu(0, NRTA_XU_COMPUTE, 0, fd.0),
        NRT_SUCCESS,
        "{}",
        last_error()
    );
    let mut rets = [SENTINEL; 6];
    let seqs: Vec<_> = rets.iter_mut().map(|r| schedule_exec(&rig, r)).collect();
    let last = *seqs.last().unwrap();
    // Wake on the fd, re-read the unit's last completed id, until the last request.
    let mut signals = 0;
    let mut wakeups = 0;
    while signals < 6 {
        fd.wait_readable();
        wakeups += 1;
        let got = fd.take();
        assert!(got >= 1);
        signals += got;
        let done = last_seq(0, NRTA_XU_COMPUTE, 0);
        assert!(
            done & NRTA_SEQ_NUM_MASK >= signals,
            "signal before completion: {signals} signals, last completed {done:#x}"
        );
    }
    assert_eq!(signals, 6, "one counter increment per completion");
    assert!(wakeups <= 6);
    assert_eq!(last_seq(0, NRTA_XU_COMPUTE, 0), last);
    assert!(rets.iter().all(|&r| r == NRT_SUCCESS));
    // Other units do not signal it.
    let t = alloc(0, 8, "t");
    let mut ret = SENTINEL;
    let w = schedule_write(t, &[1; 8], &mut ret);
    let marker = EventFd::new();
    assert_eq!(register_seq(w, marker.0), NRT_SUCCESS);
    marker.wait_readable();
    assert_eq!(
        fd.take(),
        0,
        "a TENSOR_OP completion signalled COMPUTE's fd"
    );
    assert_eq!(register_xu(0, NRTA_XU_COMPUTE, 0, -1), NRT_SUCCESS);
    free(t);
    rig.release();
}

#[test]
fn negative_fd_deregisters() {
    let _s = Session::new();
    let rig = AddRig::new(0, 4, Duration::from_millis(300));
    let (xu_fd, seq_fd, marker) = (EventFd::new(), EventFd::new(), EventFd::new());
    assert_eq!(register_xu(0, NRTA_XU_COMPUTE, 0, xu_fd.0), NRT_SUCCESS);
    assert_eq!(register_xu(0, NRTA_XU_COMPUTE, 0, -1), NRT_SUCCESS);
    let mut rets = [SENTINEL; 2];
    let [r1, r2] = &mut rets;
    let first = schedule_exec(&rig, r1);
    assert_eq!(register_seq(first, seq_fd.0), NRT_SUCCESS);
    assert_eq!(register_seq(first, -1), NRT_SUCCESS);
    assert_eq!(
        is_completed(first),
        Ok(false),
        "deregistered before completion (300 ms of device time)"
    );
    // The queue runs in order: once the second request's fd fires, the worker is past
    // the first one's completion (and the second's xu signal).
    let second = schedule_exec(&rig, r2);
    assert_eq!(register_seq(second, marker.0), NRT_SUCCESS);
    marker.wait_readable();
    assert_eq!(seq_fd.take(), 0, "deregistered seq fd was signalled");
    assert_eq!(xu_fd.take(), 0, "deregistered xu fd was signalled");
    rig.release();
}

#[test]
fn close_completes_queued_requests_and_signals_their_fds() {
    let s = Session::new();
    let rig = AddRig::new(0, 4, Duration::from_millis(50));
    let fd = EventFd::new();
    let mut ret = Box::new(SENTINEL);
    let seq = schedule_exec(&rig, &mut ret);
    assert_eq!(register_seq(seq, fd.0), NRT_SUCCESS);
    drop(s); // nrt_close drains the queue
    assert_eq!(fd.take(), 1, "signalled before nrt_close returned");
    assert_eq!(*ret, NRT_SUCCESS);
}

#[test]
fn unknown_sequences_units_and_fds_are_invalid() {
    let _s = Session::new();
    let fd = EventFd::new();
    let compute0 = (NRTA_XU_COMPUTE as u64) << 48;
    assert_eq!(
        register_seq(compute0 | 1, fd.0),
        NRT_INVALID,
        "never issued"
    );
    assert!(last_error().contains("never issued"), "{}", last_error());
    assert_eq!(register_seq(compute0, fd.0), NRT_INVALID, "number 0");
    assert_eq!(register_seq(0xf << 48 | 1, fd.0), NRT_INVALID, "XU type 15");
    assert_eq!(register_seq(9 << 56 | 1, fd.0), NRT_INVALID, "core 9");
    assert_eq!(
        register_seq(compute0 | 1, -1),
        NRT_INVALID,
        "deregistering too"
    );
    assert_eq!(
        register_xu(2, NRTA_XU_COMPUTE, 0, fd.0),
        NRT_INVALID,
        "core"
    );
    assert_eq!(
        register_xu(-1, NRTA_XU_COMPUTE, 0, fd.0),
        NRT_INVALID,
        "core"
    );
    assert_eq!(register_xu(0, 3, 0, fd.0), NRT_INVALID, "XU type");
    assert_eq!(
        register_xu(0, NRTA_XU_COMPUTE, 1, fd.0),
        NRT_INVALID,
        "queue"
    );
    assert_eq!(
        register_xu(0, NRTA_XU_TENSOR_OP, 2, fd.0),
        NRT_INVALID,
        "queue"
    );
    assert_eq!(register_xu(0, NRTA_XU_TENSOR_OP, 1, fd.0), NRT_SUCCESS);
    assert_eq!(register_xu(0, NRTA_XU_COLLECTIVES, 2, fd.0), NRT_SUCCESS);
    for q in [(NRTA_XU_TENSOR_OP, 1), (NRTA_XU_COLLECTIVES, 2)] {
        assert_eq!(register_xu(0, q.0, q.1, -1), NRT_SUCCESS);
    }
    // Not an eventfd, or not open: refused at registration, not at completion.
    let mut pipe = [0; 2];
    // SAFETY: valid out-array of two ints.
    assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
    assert_eq!(register_xu(0, NRTA_XU_COMPUTE, 0, pipe[1]), NRT_INVALID);
    assert!(last_error().contains("not an eventfd"), "{}", last_error());
    // SAFETY: our own descriptors.
    unsafe {
        libc::close(pipe[0]);
        libc::close(pipe[1]);
    }
    assert_eq!(register_xu(0, NRTA_XU_COMPUTE, 0, pipe[1]), NRT_INVALID);
    assert!(last_error().contains("not an open"), "{}", last_error());
}

#[test]
fn outside_the_init_window_events_say_so() {
    let _serial = Session::serial_only();
    // Before the first nrt_init of this process, or after the last test's nrt_close.
    for status in [register_seq(1, -1), register_xu(0, NRTA_XU_COMPUTE, 0, -1)] {
        assert!(
            [NRT_UNINITIALIZED, NRT_CLOSED].contains(&status),
            "{status}"
        );
    }
}

#[test]
fn events_fail_below_runtime_2_32() {
    if !in_child(
        "events_fail_below_runtime_2_32",
        &[("NRT_SIM_VERSION", "2.31.24")],
    ) {
        return;
    }
    let _s = Session::new();
    let fd = EventFd::new();
    let t = alloc(0, 8, "t");
    let mut ret = SENTINEL;
    let seq = schedule_write(t, &[1; 8], &mut ret);
    wait_completed(seq);
    assert_eq!(register_seq(seq, fd.0), NRT_FAILURE);
    assert!(last_error().contains("2.32"), "{}", last_error());
    assert_eq!(register_xu(0, NRTA_XU_TENSOR_OP, 0, fd.0), NRT_FAILURE);
    assert!(last_error().contains("2.31.24"), "{}", last_error());
    assert_eq!(fd.take(), 0);
    free(t);
}
