//! A HOST tensor's lock held by an asynchronous request survives detach and
//! `mem::forget` and ends at the request's completion (issue 20, finding 6). In a test
//! binary of its own: a forgotten request keeps its runtime open for the rest of the
//! process (documented on `Request`), so no later test could start one.

mod support;

use neuron_rt::{ExecUnit, Placement, Request, Tensor};
use support::lock;

/// 128 MiB at the simulator's default 16 GB/s: about 8 ms of device time.
const BIG: usize = 128 << 20;

struct Setup {
    _rt: neuron_rt::Runtime,
    unit: ExecUnit,
    big: Tensor,
    host: Tensor,
}

fn setup() -> Setup {
    let rt = support::runtime();
    let unit = rt.tensor_op_unit(0, 0).unwrap();
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
