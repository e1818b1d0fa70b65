//! Batched tensor transfers (`ReadBatch` / `WriteBatch`): values moved for several
//! tensors and several ops per tensor, every bad input, and runtimes mixed, on nrt-sim
//! through dlopen (what reaches libnrt: `batch_calls.rs`).

mod support;

use neuron_rt::{Capabilities, Error, Placement, Runtime};
use support::{assert_no_leaks, lock, runtime};

#[test]
fn a_write_batch_then_a_read_batch_move_every_range_of_every_tensor() {
    let _g = lock();
    let rt = runtime();
    assert!(rt.capabilities().contains(Capabilities::TENSOR_BATCH));
    let d0 = rt
        .allocate_tensor(Placement::Device, Some(0), 32, "d0")
        .unwrap();
    let d1 = rt
        .allocate_tensor(Placement::Device, Some(1), 16, "d1")
        .unwrap();
    let host = rt
        .allocate_tensor(Placement::Host, None, 12, "host")
        .unwrap();
    let virt = rt
        .allocate_tensor(Placement::Host, None, 8, "virt")
        .unwrap();
    for t in [&d0, &d1, &host, &virt] {
        t.fill(0xee).unwrap();
    }

    // Interleaved tensors, several ops each, several element types.
    let (a, b, c) = ([1.5f32, -2.0], [7u64], [3i16, -4]);
    let (h, v, tail) = ([10u32, 20, 30], [0x0102_0304_0506_0708u64], [9.25f32]);
    let mut writes = rt.write_batch();
    assert!(writes.is_empty());
    writes
        .write(&d0, 0, &a)
        .unwrap()
        .write(&d1, 8, &b)
        .unwrap()
        .write(&d0, 16, &c)
        .unwrap()
        .write(&host, 0, &h)
        .unwrap()
        .write(&virt, 0, &v)
        .unwrap()
        .write(&d0, 28, &tail)
        .unwrap();
    assert_eq!(writes.len(), 6);
    writes.run().unwrap();

    // Checked with plain reads: the bytes around each range are untouched.
    let d0_bytes = d0.to_vec::<u8>().unwrap();
    assert_eq!(d0.to_vec::<f32>().unwrap()[..2], a);
    assert_eq!(d0_bytes[8..16], [0xee; 8]);
    let mut got_c = [0i16; 2];
    d0.read_at(16, &mut got_c).unwrap();
    assert_eq!(got_c, c);
    assert_eq!(d0_bytes[20..28], [0xee; 8]);
    assert_eq!(d0.to_vec::<f32>().unwrap()[7], tail[0]);
    assert_eq!(d1.to_vec::<u8>().unwrap()[..8], [0xee; 8]);
    assert_eq!(d1.to_vec::<u64>().unwrap()[1], b[0]);
    assert_eq!(host.to_vec::<u32>().unwrap(), h);
    assert_eq!(virt.to_vec::<u64>().unwrap(), v);

    // Read back, again interleaved, into slices of other types and sizes.
    let mut got_a = [0f32; 2];
    let mut gap = [0u8; 8];
    let mut got_b = [0u64; 1];
    let mut got_h = [0u32; 2];
    let mut got_h_last = [0u8; 4];
    let mut got_v = [0u32; 2];
    let mut got_tail = [0f32; 1];
    let mut reads = rt.read_batch();
    reads
        .read(&d0, 0, &mut got_a)
        .unwrap()
        .read(&host, 4, &mut got_h)
        .unwrap()
        .read(&d0, 8, &mut gap)
        .unwrap()
        .read(&d1, 8, &mut got_b)
        .unwrap()
        .read(&virt, 0, &mut got_v)
        .unwrap()
        .read(&host, 8, &mut got_h_last)
        .unwrap()
        .read(&d0, 28, &mut got_tail)
        .unwrap();
    assert_eq!(reads.len(), 7);
    reads.run().unwrap();
    assert_eq!(got_a, a);
    assert_eq!(gap, [0xee; 8]);
    assert_eq!(got_b, b);
    assert_eq!(got_h, [20, 30]);
    assert_eq!(got_h_last, 30u32.to_ne_bytes());
    assert_eq!(
        got_v,
        [
            (v[0] & 0xffff_ffff) as u32, // little-endian: low half first
            (v[0] >> 32) as u32,
        ]
    );
    assert_eq!(got_tail, tail);

    drop((d0, d1, host, virt));
    drop(rt);
    assert_no_leaks();
}

#[test]
fn clones_and_slices_work_in_batches() {
    let _g = lock();
    let rt = runtime();
    let t = rt
        .allocate_tensor(Placement::Device, Some(0), 16, "t")
        .unwrap();
    let same = t.clone();
    let view = t.slice(8, 8, "view").unwrap();
    let mut writes = rt.write_batch();
    writes
        .write(&t, 0, &[1u32])
        .unwrap()
        .write(&view, 0, &[3u32, 4])
        .unwrap()
        .write(&same, 4, &[2u32])
        .unwrap();
    writes.run().unwrap();
    assert_eq!(t.to_vec::<u32>().unwrap(), [1, 2, 3, 4]);

    let mut first = [0u32; 1];
    let mut last = [0u32; 1];
    let mut reads = rt.read_batch();
    reads
        .read(&view, 4, &mut last)
        .unwrap()
        .read(&same, 0, &mut first)
        .unwrap();
    reads.run().unwrap();
    assert_eq!((first, last), ([1], [4]));
}

#[test]
fn out_of_range_ops_are_refused_with_their_numbers_and_leave_the_batch_usable() {
    let _g = lock();
    let rt = runtime();
    let t = rt
        .allocate_tensor(Placement::Device, Some(0), 16, "t16")
        .unwrap();
    t.write(&[5u32, 6, 7, 8]).unwrap();

    let oob = |err: Error, offset: usize, len: usize| {
        assert!(
            matches!(
                &err,
                Error::OutOfBounds { tensor, offset: o, len: l, size: 16 }
                    if tensor == "t16" && *o == offset && *l == len
            ),
            "{err}"
        );
    };

    // Each refused op in a batch of its own (a refused destination stays lent to its
    // batch until the batch is gone, like any argument of the batch's lifetime).
    let read_err = |offset: usize, elems: usize| {
        let mut out = vec![0u32; elems];
        rt.read_batch().read(&t, offset, &mut out).unwrap_err()
    };
    // Longer than the tensor.
    oob(read_err(0, 5), 0, 20);
    // Past the end by one element.
    oob(read_err(12, 2), 12, 8);
    // Starting at the end: nothing fits.
    oob(read_err(16, 1), 16, 4);
    // offset + len overflows usize.
    oob(read_err(usize::MAX, 1), usize::MAX, 4);
    oob(read_err(usize::MAX - 2, 1), usize::MAX - 2, 4);
    // A 0-byte op past the end is refused too (at the end it is fine: see below).
    oob(read_err(17, 0), 17, 0);

    // A refused op is not recorded, and the batch still runs its good ops.
    let mut wide = [0u32; 5];
    let mut two = [0u32; 2];
    let mut reads = rt.read_batch();
    oob(reads.read(&t, 0, &mut wide).unwrap_err(), 0, 20);
    assert!(reads.is_empty(), "a refused op must not be recorded");
    reads.read(&t, 8, &mut two).unwrap();
    assert_eq!(reads.len(), 1);
    reads.run().unwrap();
    assert_eq!(two, [7, 8]);
    assert_eq!(wide, [0; 5], "refused destinations are not written");

    let mut writes = rt.write_batch();
    oob(writes.write(&t, 0, &[0u8; 17]).unwrap_err(), 0, 17);
    oob(writes.write(&t, 15, &[1u16]).unwrap_err(), 15, 2);
    oob(
        writes.write(&t, usize::MAX, &[1u8]).unwrap_err(),
        usize::MAX,
        1,
    );
    assert!(writes.is_empty());
    writes.write(&t, 0, &[9u32]).unwrap();
    writes.run().unwrap();
    assert_eq!(t.to_vec::<u32>().unwrap(), [9, 6, 7, 8]);
}

#[test]
fn empty_batches_and_zero_length_ops_succeed_without_moving_anything() {
    let _g = lock();
    let rt = runtime();
    let t = rt.allocate_tensor(Placement::Host, None, 8, "t").unwrap();
    t.write(&[1u32, 2]).unwrap();
    rt.read_batch().run().unwrap();
    rt.write_batch().run().unwrap();

    let (mut none, mut nothing): ([u32; 0], [u8; 0]) = ([], []);
    let mut reads = rt.read_batch();
    reads.read(&t, 0, &mut none).unwrap();
    reads.read(&t, 8, &mut nothing).unwrap();
    assert!(reads.is_empty());
    assert_eq!(reads.len(), 0);
    reads.run().unwrap();

    let mut writes = rt.write_batch();
    writes.write::<u64>(&t, 4, &[]).unwrap();
    writes.write(&t, 0, &[3u32]).unwrap();
    assert_eq!(writes.len(), 1);
    writes.run().unwrap();
    assert_eq!(t.to_vec::<u32>().unwrap(), [3, 2]);
}

#[test]
fn tensors_of_another_runtime_are_refused() {
    let _g = lock();
    let rt = runtime();
    let other = Runtime::builder()
        .library(nrt_sim::library())
        .build()
        .unwrap();
    let mine = rt
        .allocate_tensor(Placement::Host, None, 4, "mine")
        .unwrap();
    let foreign = other
        .allocate_tensor(Placement::Host, None, 4, "foreign")
        .unwrap();
    let (mut refused, mut out) = ([0u32; 1], [0u32; 1]);
    let mut reads = rt.read_batch();
    let err = reads.read(&foreign, 0, &mut refused).unwrap_err();
    assert!(
        matches!(&err, Error::ForeignHandle { what, .. } if what == "tensor `foreign`"),
        "{err}"
    );
    let mut writes = rt.write_batch();
    let err = writes.write(&foreign, 0, &[1u32]).unwrap_err();
    assert!(matches!(err, Error::ForeignHandle { .. }), "{err}");
    assert!(reads.is_empty() && writes.is_empty());
    writes.write(&mine, 0, &[11u32]).unwrap();
    writes.run().unwrap();
    reads.read(&mine, 0, &mut out).unwrap();
    reads.run().unwrap();
    assert_eq!(out, [11]);
}

// ---------------------------------------------------------------------------------------
// What reaches libnrt: the simulator's batch functions wrapped by recorders.
