//! `xu::scope`: requests that borrow buffers and tensor sets; the scope waits for every
//! one of them (also leaked ones, also when the scope's closure panics).

mod support;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use neuron_rt::{Error, Placement, xu};
use nrt_sim::{DType, ModelBuilder, Op};

const BIG: usize = 8 << 20;

#[test]
fn borrowed_writes_and_reads_move_the_bytes() {
    let _g = support::lock();
    let rt = support::runtime();
    let t = rt
        .allocate_tensor(Placement::Device, Some(1), 64, "t")
        .unwrap();
    let unit = rt.tensor_op_unit(1, 1).unwrap();
    let input: Vec<u32> = (0..16).collect();
    let mut half = [0u32; 8];
    let mut whole = [0u32; 16];
    let result = xu::scope(|s| -> neuron_rt::Result<u32> {
        let written = s.write(&unit, &t, 0, &input)?;
        assert_eq!(written.wait()?, &input[..], "the borrow comes back");
        let filled = s.read(&unit, &t, 32, &mut half)?.wait()?;
        filled[0] += 100; // ours again after wait
        drop(s.read(&unit, &t, 0, &mut whole)?); // dropping waits
        Ok(filled[0])
    });
    assert_eq!(result.unwrap(), 108);
    assert_eq!(half[0], 108);
    assert_eq!(&half[1..], &[9, 10, 11, 12, 13, 14, 15]);
    assert_eq!(whole.to_vec(), input);

    // Refusals hand the borrow back and schedule nothing.
    let before = unit.last_submitted();
    let mut too_big = [0u8; 65];
    xu::scope(|s| {
        let rejected = s.read(&unit, &t, 0, &mut too_big).unwrap_err();
        assert!(matches!(
            rejected.error(),
            Error::OutOfBounds { len: 65, .. }
        ));
        assert_eq!(rejected.into_inner().len(), 65);
    });
    assert_eq!(unit.last_submitted(), before);
}

#[test]
fn the_scope_waits_for_leaked_requests() {
    let _g = support::lock();
    let rt = support::runtime();
    let big = rt
        .allocate_tensor(Placement::Device, Some(0), BIG, "big")
        .unwrap();
    let t = rt
        .allocate_tensor(Placement::Device, Some(0), 4096, "t")
        .unwrap();
    t.write(&[0x42u8; 4096]).unwrap();
    let unit = rt.tensor_op_unit(0, 0).unwrap();
    let slow = vec![1u8; BIG];
    let mut out = vec![0u8; 4096];
    xu::scope(|s| {
        // A large write first, so the read behind it is still pending when leaked.
        std::mem::forget(s.write(&unit, &big, 0, &slow).unwrap());
        let read = s.read(&unit, &t, 0, &mut out).unwrap();
        std::mem::forget(read);
    });
    // Only a scope that waited for the leaked read can have filled the buffer.
    assert!(out.iter().all(|&b| b == 0x42));
    assert_eq!(unit.in_flight().unwrap(), 0);
}

#[test]
fn the_scope_waits_even_when_its_closure_panics() {
    let _g = support::lock();
    let rt = support::runtime();
    let big = rt
        .allocate_tensor(Placement::Device, Some(0), BIG, "big")
        .unwrap();
    let t = rt
        .allocate_tensor(Placement::Device, Some(0), 4096, "t")
        .unwrap();
    t.write(&[7u8; 4096]).unwrap();
    let unit = rt.tensor_op_unit(0, 1).unwrap();
    let slow = vec![1u8; BIG];
    let mut out = vec![0u8; 4096];
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        xu::scope(|s| {
            std::mem::forget(s.write(&unit, &big, 0, &slow).unwrap());
            std::mem::forget(s.read(&unit, &t, 0, &mut out).unwrap());
            panic!("job failed");
        })
    }));
    assert!(panicked.is_err());
    assert!(out.iter().all(|&b| b == 7));
}

#[test]
fn executions_can_borrow_their_sets() {
    let _g = support::lock();
    let rt = support::runtime();
    let neff = ModelBuilder::new("twice")
        .input("x", DType::F32, &[4])
        .output("y", DType::F32, &[4])
        .op(Op::ScaleBias {
            input: "x".into(),
            scale: 2.0,
            bias: 0.0,
            out: "y".into(),
        })
        .device_time(Duration::from_millis(5))
        .build()
        .unwrap();
    let model = rt.load_model_on(&neff, 0).unwrap();
    let unit = rt.compute_unit(0).unwrap();
    let inputs = model.allocate_inputs().unwrap();
    inputs.get("x").unwrap().write(&[1.5f32; 4]).unwrap();
    let mut outputs = model.allocate_outputs().unwrap();
    xu::scope(|s| {
        let request = s.execute(&unit, &model, &inputs, &mut outputs).unwrap();
        std::mem::forget(request);
    });
    assert_eq!(support::f32s(&outputs, "y"), [3.0; 4]);
    // The sets are usable (and changeable) again after the scope.
    let x = rt
        .allocate_tensor(Placement::Device, Some(0), 16, "x2")
        .unwrap();
    x.write(&[4.0f32; 4]).unwrap();
    let mut inputs = inputs;
    inputs.insert("x", &x).unwrap();
    xu::scope(|s| {
        let (_, outputs) = s
            .execute(&unit, &model, &inputs, &mut outputs)
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(support::f32s(outputs, "y"), [8.0; 4]);
    });
}
