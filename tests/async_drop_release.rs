//! Dropped pending requests are released only after the device is done with them: their
//! buffers go to the background thread, which frees them after completion. In its own
//! binary (the forget test leaks a runtime for the rest of its process) so that it can
//! run under valgrind too (`.ci/run`): an early free shows as an invalid write by the
//! simulator's worker.

mod support;

use std::time::Duration;

use neuron_rt::Placement;

#[test]
fn dropped_pending_requests_are_released_only_after_the_device_is_done() {
    let _g = support::lock();
    let rt = support::runtime();
    let big = rt
        .allocate_tensor(Placement::Device, Some(0), 64 << 20, "big")
        .unwrap();
    let small = rt
        .allocate_tensor(Placement::Device, Some(0), 4096, "small")
        .unwrap();
    small.write(&[5u8; 4096]).unwrap();
    let unit = rt.tensor_op_unit(0, 0).unwrap();
    // A large write first, so the reads behind it are still pending when dropped: their
    // buffers go to the background thread, which frees them after the device wrote them.
    // Under valgrind an early free shows as an invalid write by the simulator's worker.
    let ahead = unit.write(&big, 0, vec![1u8; 64 << 20]).unwrap();
    let mut last = None;
    let mut dropped_pending = 0;
    // Six behind it: within the simulator's queue depth of 8.
    for _ in 0..6 {
        let read = unit.read(&small, 0, vec![0u8; 4096]).unwrap();
        last = Some(read.seq());
        dropped_pending += usize::from(!read.is_complete().unwrap());
        drop(read);
    }
    assert!(
        dropped_pending > 0,
        "no read was still pending when dropped"
    );
    let churn: Vec<Vec<u8>> = (0..64).map(|i| vec![0x40 | i as u8; 4096]).collect();
    drop(ahead);
    unit.wait_for(last.unwrap()).unwrap();
    for (i, c) in churn.iter().enumerate() {
        assert!(
            c.iter().all(|&b| b == 0x40 | i as u8),
            "buffer {i} was overwritten"
        );
    }
    drop((big, small, unit, rt));
    let (rt, _) = support::runtime_after_close(Duration::from_secs(30));
    drop(rt);
    support::assert_no_leaks();
}
