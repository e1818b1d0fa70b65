//! Asynchronous requests on HOST tensors hold the storage's lock from schedule to
//! completion (issue 20, finding 6): a synchronous call on the same storage waits for
//! them, across detach and `mem::forget`; a conflicting request of another queue is
//! refused with a typed error; requests of one queue (which run in order) never conflict.
//!
//! On the simulator, an async request is kept queued by a large transfer scheduled
//! before it on the same queue (simulated DMA time).

mod support;

use std::time::Duration;

use neuron_rt::{Error, ExecUnit, Placement, Request, Runtime, Tensor};
use support::{lock, runtime};

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
    let rt = runtime();
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
fn the_hold_survives_detach_and_forget_and_ends_at_completion() {
    let _g = lock();
    let s = setup();
    let blocker = hold_queue(&s.unit, &s.big);
    let dropped = s.unit.write(&s.host, 0, vec![3u8; 64]).unwrap();
    drop(dropped); // detached: released by the background thread after completion
    s.host.write(&[4u8; 64]).unwrap();
    blocker.wait().unwrap();
    assert_eq!(contents(&s.host), [4u8; 64]);

    let blocker = hold_queue(&s.unit, &s.big);
    let forgotten = s.unit.write(&s.host, 0, vec![5u8; 64]).unwrap();
    std::mem::forget(forgotten);
    // Waits for the forgotten request's completion, not forever.
    s.host.write(&[6u8; 64]).unwrap();
    blocker.wait().unwrap();
    assert_eq!(contents(&s.host), [6u8; 64]);
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
    let _ = Duration::ZERO;
}
