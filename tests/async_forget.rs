//! Forget-safety: `mem::forget` of pending requests (a read, a write, an execution) must
//! never let the device write to freed memory or reuse a status slot. The forgotten
//! requests leak their buffers, slots and handles instead, and everything keeps working.
//!
//! Kept small and in its own binary so that it can run under valgrind (memcheck reports
//! any invalid read or write by the simulator's worker threads), e.g.
//! `valgrind --error-exitcode=1 --leak-check=no target/debug/deps/async_forget-*`.
//! (The leaks are the point of the test, so leak checking is left off.)

mod support;

use std::time::Duration;

use neuron_rt::Placement;
use nrt_sim::{DType, ModelBuilder, Op};

#[test]
fn forgotten_pending_requests_leak_instead_of_freeing_under_the_device() {
    let _g = support::lock();
    let rt = support::runtime();
    let big = rt
        .allocate_tensor(Placement::Device, Some(0), 4 << 20, "big")
        .unwrap();
    let small = rt
        .allocate_tensor(Placement::Device, Some(0), 4096, "small")
        .unwrap();
    small.write(&[7u8; 4096]).unwrap();
    let unit = rt.tensor_op_unit(0, 0).unwrap();

    // A large write first, so the requests behind it on the same queue are still
    // pending when they are forgotten.
    let ahead = unit.write(&big, 0, vec![1u8; 4 << 20]).unwrap();
    let read = unit.read(&small, 0, vec![0u8; 4096]).unwrap();
    let write = unit.write(&small, 0, vec![9u8; 2048]).unwrap();
    let (read_seq, write_seq) = (read.seq(), write.seq());
    std::mem::forget(read);
    std::mem::forget(write);

    // Churn the allocator: if the forgotten buffers had been freed, these would reuse
    // them while the device still writes there.
    let churn: Vec<Vec<u8>> = (0..64).map(|i| vec![0x80 | i as u8; 4096]).collect();
    assert_eq!(ahead.wait().unwrap().len(), 4 << 20);
    unit.wait_for(write_seq).unwrap();
    assert!(unit.last_completed().unwrap().number() >= read_seq.number());
    for (i, c) in churn.iter().enumerate() {
        assert!(
            c.iter().all(|&b| b == 0x80 | i as u8),
            "buffer {i} was overwritten"
        );
    }
    // The forgotten write happened (after the read, in queue order).
    let mut check = vec![0u8; 4096];
    small.read(&mut check).unwrap();
    assert!(check[..2048].iter().all(|&b| b == 9));
    assert!(check[2048..].iter().all(|&b| b == 7));

    // A forgotten execution keeps its sets (and their tensors) alive.
    let model = rt
        .load_model_on(
            &ModelBuilder::new("scale")
                .input("x", DType::F32, &[256])
                .output("y", DType::F32, &[256])
                .op(Op::ScaleBias {
                    input: "x".into(),
                    scale: 2.0,
                    bias: 1.0,
                    out: "y".into(),
                })
                .device_time(Duration::from_millis(20))
                .build()
                .unwrap(),
            0,
        )
        .unwrap();
    let compute = rt.compute_unit(0).unwrap();
    let inputs = model.allocate_inputs().unwrap();
    inputs.get("x").unwrap().write(&[1.5f32; 256]).unwrap();
    let outputs = model.allocate_outputs().unwrap();
    let y = outputs.get("y").unwrap().clone();
    let pending = compute.execute(&model, inputs, outputs).unwrap();
    let seq = pending.seq();
    std::mem::forget(pending);
    drop(model);
    compute.wait_for(seq).unwrap();
    assert_eq!(y.to_vec::<f32>().unwrap(), [4.0f32; 256]);

    // The units keep working; new requests get new slots and numbers.
    for round in 0..20u8 {
        let back = unit
            .write(&small, 0, vec![round; 4096])
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(back, vec![round; 4096]);
        let read = unit
            .read(&small, 0, vec![0u8; 4096])
            .unwrap()
            .wait()
            .unwrap();
        assert!(read.iter().all(|&b| b == round));
    }
    // The leaked requests hold the runtime open: a second one cannot start.
    drop((big, small, unit, compute, y));
    drop(rt);
    assert!(matches!(
        neuron_rt::Runtime::builder()
            .library(support::sim())
            .build(),
        Err(neuron_rt::Error::AlreadyInitialized)
    ));
}

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
