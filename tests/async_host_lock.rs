//! Asynchronous requests on HOST tensors hold the storage's lock from schedule to
//! completion (issue 20, finding 6): a synchronous call on the same storage waits for
//! them, across detach and `mem::forget`; a conflicting request of another queue is
//! refused with a typed error; requests of one queue (which run in order) never conflict.
//!
//! The `mem::forget` case is in `async_host_lock_forget.rs`: a forgotten request keeps
//! its runtime open for the rest of the process, so it gets a process of its own.
//!
//! On the simulator, an async request is kept queued by a large transfer scheduled
//! before it on the same queue (simulated DMA time); with a stand-in library (the
//! simulator with a `nrta_tensor_write` that parks the copy until the test releases it),
//! for as long as the test wants.

mod support;

use std::time::Duration;

use neuron_rt::{Error, ExecUnit, Placement, Request, Runtime, Tensor};
use support::lock;

/// 128 MiB at the simulator's default 16 GB/s: about 8 ms of device time.
const BIG: usize = 128 << 20;

struct Setup {
    _rt: Runtime,
    unit: ExecUnit,
    other: ExecUnit,
    big: Tensor,
    host: Tensor,
}

fn setup() -> Setup {
    // A request detached or forgotten by an earlier test keeps its runtime open until
    // the background thread has released it after its completion.
    let rt = support::runtime_after_close(std::time::Duration::from_secs(10)).0;
    let unit = rt.tensor_op_unit(0, 0).unwrap();
    let other = rt.tensor_op_unit(0, 1).unwrap();
    let big = rt
        .allocate_tensor(Placement::Device, Some(0), BIG, "big")
        .unwrap();
    let host = rt
        .allocate_tensor(Placement::Host, None, 64, "host")
        .unwrap();
    host.write(&[0u8; 64]).unwrap();
    Setup {
        _rt: rt,
        unit,
        other,
        big,
        host,
    }
}

/// A long transfer, so that what is scheduled after it on `unit` stays queued.
fn hold_queue(unit: &ExecUnit, big: &Tensor) -> Request<Vec<u8>> {
    unit.write(big, 0, vec![0u8; BIG]).unwrap()
}

fn contents(t: &Tensor) -> Vec<u8> {
    t.to_vec::<u8>().unwrap()
}

#[test]
fn a_sync_write_waits_for_a_queued_async_write_to_the_same_bytes() {
    let _g = lock();
    let s = setup();
    let blocker = hold_queue(&s.unit, &s.big);
    let queued = s.unit.write(&s.host, 0, vec![1u8; 64]).unwrap();
    assert!(
        !queued.is_complete().unwrap(),
        "the async write must still be queued"
    );
    s.host.write(&[2u8; 64]).unwrap();
    // The synchronous write returned only after the older async write completed...
    assert!(queued.is_complete().unwrap());
    queued.wait().unwrap();
    blocker.wait().unwrap();
    // ...so it is the last writer.
    assert_eq!(contents(&s.host), [2u8; 64]);
}

#[test]
fn a_sync_read_waits_for_a_queued_async_write_and_sees_its_bytes() {
    let _g = lock();
    let s = setup();
    let blocker = hold_queue(&s.unit, &s.big);
    let queued = s.unit.write(&s.host, 0, vec![7u8; 64]).unwrap();
    assert_eq!(contents(&s.host), [7u8; 64]);
    queued.wait().unwrap();
    blocker.wait().unwrap();
}

#[test]
fn an_async_read_holds_the_storage_against_sync_writes_only() {
    let _g = lock();
    let s = setup();
    s.host.write(&[8u8; 64]).unwrap();
    let blocker = hold_queue(&s.unit, &s.big);
    let read = s.unit.read(&s.host, 0, vec![0u8; 64]).unwrap();
    // Readers share: a sync read goes at once.
    assert_eq!(contents(&s.host), [8u8; 64]);
    assert!(!read.is_complete().unwrap());
    // A writer waits for the async read, which sees the old bytes.
    s.host.write(&[9u8; 64]).unwrap();
    assert_eq!(read.wait().unwrap(), [8u8; 64]);
    blocker.wait().unwrap();
}

#[test]
fn requests_of_one_queue_share_storage_and_another_queues_conflict_is_refused() {
    let _g = lock();
    let s = setup();
    let blocker = hold_queue(&s.unit, &s.big);
    let first = s.unit.write(&s.host, 0, vec![1u8; 64]).unwrap();
    // Same queue: runs after `first`, in order.
    let second = s.unit.write(&s.host, 0, vec![2u8; 64]).unwrap();
    // Another queue would copy at the same time as those two.
    let rejected = s.other.write(&s.host, 0, vec![3u8; 64]).unwrap_err();
    match rejected.error() {
        Error::InUse { what, users } => {
            assert!(what.contains("`host`"), "{what}");
            assert_eq!(*users, 2);
        }
        other => panic!("{other}"),
    }
    assert_eq!(rejected.into_inner(), [3u8; 64]);
    first.wait().unwrap();
    second.wait().unwrap();
    blocker.wait().unwrap();
    // Once they completed, the other queue may.
    s.other
        .write(&s.host, 0, vec![3u8; 64])
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(contents(&s.host), [3u8; 64]);
    // No hold is left: a sync write does not wait.
    s.host.write(&[0u8; 64]).unwrap();
}

/// A stand-in library: the simulator, except that `nrta_tensor_write` parks the copy (it
/// answers with the id the request will have, and does nothing) until the test releases
/// it by making the simulator's own call with the same arguments.
mod parking {
    use std::ffi::{CStr, c_int, c_void};
    use std::sync::{Mutex, OnceLock};

    use neuron_rt::nrt_sys::{self as sys, Library, NrtFns};

    /// A parked call's arguments (raw pointers, kept only to make the same call later).
    struct Parked {
        tensor: usize,
        buf: usize,
        offset: u64,
        size: u64,
        lnc: c_int,
        queue: c_int,
        ret: usize,
        seq: sys::nrta_seq_t,
    }

    static PARKED: Mutex<Option<Parked>> = Mutex::new(None);

    fn real() -> &'static NrtFns {
        static REAL: OnceLock<NrtFns> = OnceLock::new();
        REAL.get_or_init(|| *super::support::sim().fns())
    }

    unsafe extern "C" fn parking_write(
        tensor: *mut sys::nrt_tensor_t,
        buf: *const c_void,
        offset: u64,
        size: u64,
        lnc: c_int,
        queue: c_int,
        ret: *mut sys::NRT_STATUS,
        seq: *mut sys::nrta_seq_t,
    ) -> sys::NRT_STATUS {
        // The queue is idle when the test parks a write: the next id is the last
        // completed one plus one.
        let mut last = 0;
        // SAFETY: the simulator's function with a valid out-pointer.
        let status = unsafe {
            real().nrta_get_sequence.unwrap()(lnc as u32, sys::NRTA_XU_TENSOR_OP, queue, &mut last)
        };
        assert_eq!(status, sys::NRT_SUCCESS);
        let next = last + 1;
        *PARKED.lock().unwrap() = Some(Parked {
            tensor: tensor as usize,
            buf: buf as usize,
            offset,
            size,
            lnc,
            queue,
            ret: ret as usize,
            seq: next,
        });
        // SAFETY: `seq` is writable (the caller's contract).
        unsafe { *seq = next };
        sys::NRT_SUCCESS
    }

    /// Makes the parked write happen now (on the simulator's queue).
    pub fn release() {
        let p = PARKED.lock().unwrap().take().expect("a parked write");
        let mut seq = 0;
        // SAFETY: the arguments the crate gave the parked call; the request still owns
        // its buffer and status slot (it has not completed).
        let status = unsafe {
            real().nrta_tensor_write.unwrap()(
                p.tensor as *mut _,
                p.buf as *const c_void,
                p.offset,
                p.size,
                p.lnc,
                p.queue,
                p.ret as *mut _,
                &mut seq,
            )
        };
        assert_eq!(status, sys::NRT_SUCCESS);
        assert_eq!(seq, p.seq, "the parked request got another id");
    }

    fn sim_symbol(name: &CStr) -> *mut c_void {
        super::support::sim()
            .symbol(name)
            .unwrap_or(std::ptr::null_mut())
    }

    pub fn library() -> &'static Library {
        static LIB: OnceLock<&'static Library> = OnceLock::new();
        LIB.get_or_init(|| {
            let mut fns = *real();
            fns.nrta_tensor_write = Some(parking_write);
            // SAFETY: the dlopen'ed simulator's functions and symbols; the write parks its
            // arguments and makes the simulator's own call with them later.
            unsafe { Library::in_process("nrt-sim with a parking write", fns, Some(sim_symbol)) }
        })
    }
}

#[test]
fn a_sync_write_waits_while_a_stand_in_library_parks_the_async_copy() {
    let _g = lock();
    let rt = Runtime::builder()
        .library(parking::library())
        .build()
        .unwrap();
    let unit = rt.tensor_op_unit(0, 0).unwrap();
    let host = rt
        .allocate_tensor(Placement::Host, None, 64, "host")
        .unwrap();
    host.write(&[0u8; 64]).unwrap();
    let parked = unit.write(&host, 0, vec![1u8; 64]).unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            host.write(&[2u8; 64]).unwrap();
            done_tx.send(()).unwrap();
        });
        // While the copy is parked, the synchronous write must not happen.
        assert!(
            done_rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "a sync write returned while an async write to the same bytes was parked"
        );
        parking::release();
        done_rx.recv().unwrap();
    });
    parked.wait().unwrap();
    assert_eq!(contents(&host), [2u8; 64]);
}
