//! Batched tensor transfers: what reaches libnrt (grouping by tensor, op order, the flag,
//! empty batches), libnrt failures, missing functions and Debug output, on nrt-sim
//! through dlopen with the batch functions recorded.

mod support;

use std::sync::{Mutex, MutexGuard, OnceLock};

use neuron_rt::nrt_sys::{self as sys, Library, NrtFns};
use neuron_rt::{Capabilities, Error, NrtStatus, Placement, Runtime, Tensor};
use support::{lock, runtime, sim};

/// One batched call as libnrt received it.
#[derive(Debug, PartialEq)]
struct Call {
    write: bool,
    unsafe_flag: bool,
    /// Per batch entry: the tensor handle and the (offset, size) of each op.
    batches: Vec<(usize, Vec<(u64, u64)>)>,
}

static CALLS: Mutex<Vec<Call>> = Mutex::new(Vec::new());
/// The status the recorders return instead of calling the simulator (0: call it).
static FORCED_STATUS: Mutex<sys::NRT_STATUS> = Mutex::new(0);
static SIM_FNS: OnceLock<NrtFns> = OnceLock::new();

fn calls() -> MutexGuard<'static, Vec<Call>> {
    CALLS.lock().unwrap_or_else(|e| e.into_inner())
}

fn forced_status() -> MutexGuard<'static, sys::NRT_STATUS> {
    FORCED_STATUS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records the call, then returns the forced status or what the simulator returns.
///
/// # Safety
///
/// As `nrt_tensor_read_batch` / `nrt_tensor_write_batch`.
unsafe fn record(
    write: bool,
    batches: *const sys::nrt_tensor_batch_t,
    num_batches: u64,
    unsafe_flag: bool,
) -> sys::NRT_STATUS {
    let mut seen = Vec::new();
    if !batches.is_null() {
        // SAFETY: the caller passes `num_batches` valid entries, each with `num_ops` ops.
        let entries = unsafe { std::slice::from_raw_parts(batches, num_batches as usize) };
        for b in entries {
            // SAFETY: as above.
            let ops = unsafe { std::slice::from_raw_parts(b.ops, b.num_ops as usize) };
            let ops = ops.iter().map(|op| (op.offset, op.size)).collect();
            seen.push((b.tensor as usize, ops));
        }
    }
    calls().push(Call {
        write,
        unsafe_flag,
        batches: seen,
    });
    let forced = *forced_status();
    if forced != sys::NRT_SUCCESS {
        return forced;
    }
    let Some(fns) = SIM_FNS.get() else {
        return sys::NRT_FAILURE;
    };
    let f = if write {
        fns.nrt_tensor_write_batch
    } else {
        fns.nrt_tensor_read_batch
    };
    match f {
        // SAFETY: the caller's arguments, passed on unchanged.
        Some(f) => unsafe { f(batches, num_batches, unsafe_flag) },
        None => sys::NRT_FAILURE,
    }
}

unsafe extern "C" fn recording_read_batch(
    batches: *const sys::nrt_tensor_batch_t,
    num_batches: u64,
    unsafe_flag: bool,
) -> sys::NRT_STATUS {
    // SAFETY: this function's caller upholds nrt_tensor_read_batch's contract.
    unsafe { record(false, batches, num_batches, unsafe_flag) }
}

unsafe extern "C" fn recording_write_batch(
    batches: *const sys::nrt_tensor_batch_t,
    num_batches: u64,
    unsafe_flag: bool,
) -> sys::NRT_STATUS {
    // SAFETY: this function's caller upholds nrt_tensor_write_batch's contract.
    unsafe { record(true, batches, num_batches, unsafe_flag) }
}

/// The dlopen'ed simulator with its batch functions wrapped by the recorders.
fn recording_library() -> &'static Library {
    let fns = *SIM_FNS.get_or_init(|| *sim().fns());
    let mut wrapped = fns;
    wrapped.nrt_tensor_read_batch = Some(recording_read_batch);
    wrapped.nrt_tensor_write_batch = Some(recording_write_batch);
    // SAFETY: the dlopen'ed simulator's functions, with the batch calls wrapped by
    // recorders that forward to the simulator's own or return a status code.
    unsafe { Library::in_process("sim-recording-batches", wrapped, None) }
}

/// A runtime on the recording library, with the record cleared.
fn recording_runtime() -> Runtime {
    calls().clear();
    *forced_status() = sys::NRT_SUCCESS;
    Runtime::builder()
        .library(recording_library())
        .build()
        .unwrap()
}

#[test]
fn ops_reach_libnrt_grouped_by_tensor_in_the_order_added_with_the_flag_off() {
    let _g = lock();
    let rt = recording_runtime();
    let a = rt
        .allocate_tensor(Placement::Device, Some(0), 16, "a")
        .unwrap();
    let b = rt.allocate_tensor(Placement::Host, None, 16, "b").unwrap();
    let c = rt
        .allocate_tensor(Placement::Device, Some(1), 16, "c")
        .unwrap();

    // Interleaved: a b a c b a, one 0-byte op (left out).
    let mut writes = rt.write_batch();
    writes
        .write(&a, 0, &[1u8, 2])
        .unwrap()
        .write(&b, 4, &[3u32])
        .unwrap()
        .write(&a, 8, &[4u16])
        .unwrap()
        .write::<u8>(&b, 2, &[])
        .unwrap()
        .write(&c, 12, &[5u8])
        .unwrap()
        .write(&b, 0, &[6u8])
        .unwrap()
        .write(&a, 15, &[7u8])
        .unwrap();
    writes.run().unwrap();
    let (hb, hc) = {
        let calls = calls();
        assert_eq!(calls.len(), 1, "{calls:?}");
        let call = &calls[0];
        assert!(call.write && !call.unsafe_flag, "{call:?}");
        let ops: Vec<_> = call.batches.iter().map(|(_, ops)| ops.clone()).collect();
        assert_eq!(
            ops,
            [
                vec![(0, 2), (8, 2), (15, 1)], // a
                vec![(4, 4), (0, 1)],          // b
                vec![(12, 1)],                 // c
            ]
        );
        let [ha, hb, hc] = [0, 1, 2].map(|i| call.batches[i].0);
        assert!(ha != hb && hb != hc && ha != hc, "{call:?}");
        (hb, hc)
    };
    // The regrouped ops still carry their own buffers.
    let a_bytes = a.to_vec::<u8>().unwrap();
    assert_eq!(
        (a_bytes[0], a_bytes[1], a_bytes[15]),
        (1, 2, 7),
        "{a_bytes:?}"
    );
    let mut four = [0u8; 2];
    a.read_at(8, &mut four).unwrap();
    assert_eq!(four, 4u16.to_ne_bytes());
    let b_bytes = b.to_vec::<u8>().unwrap();
    assert_eq!(b_bytes[0], 6);
    assert_eq!(b_bytes[4..8], 3u32.to_ne_bytes());
    assert_eq!(c.to_vec::<u8>().unwrap()[12], 5);

    // Reads already grouped by tensor are passed in the order given.
    calls().clear();
    let (mut x, mut y, mut z) = ([0u8; 1], [0u8; 1], [0u8; 4]);
    let mut reads = rt.read_batch();
    reads
        .read(&c, 12, &mut x)
        .unwrap()
        .read(&b, 0, &mut y)
        .unwrap()
        .read(&b, 4, &mut z)
        .unwrap();
    reads.run().unwrap();
    assert_eq!(
        calls()[..],
        [Call {
            write: false,
            unsafe_flag: false,
            batches: vec![(hc, vec![(12, 1)]), (hb, vec![(0, 1), (4, 4)])],
        }]
    );

    assert_eq!((x, y, z), ([5], [6], 3u32.to_ne_bytes()));
}

#[test]
fn an_empty_batch_does_not_call_libnrt() {
    let _g = lock();
    let rt = recording_runtime();
    let t = rt.allocate_tensor(Placement::Host, None, 4, "t").unwrap();
    rt.read_batch().run().unwrap();
    let mut writes = rt.write_batch();
    writes.write::<u32>(&t, 4, &[]).unwrap();
    writes.run().unwrap();
    assert!(calls().is_empty(), "{:?}", calls());
}

#[test]
fn a_libnrt_failure_is_typed_and_names_the_function_and_the_tensors() {
    let _g = lock();
    let rt = recording_runtime();
    let names = ["t0", "t1", "t2", "t3", "t4", "t5"];
    let tensors: Vec<Tensor> = names
        .iter()
        .map(|n| rt.allocate_tensor(Placement::Host, None, 8, n).unwrap())
        .collect();
    *forced_status() = sys::NRT_RESOURCE;

    let mut writes = rt.write_batch();
    for t in &tensors {
        writes.write(t, 0, &[1u32, 2]).unwrap();
    }
    let err = writes.run().unwrap_err();
    match &err {
        Error::Nrt {
            function,
            status,
            context,
            ..
        } => {
            assert_eq!(*function, "nrt_tensor_write_batch");
            assert_eq!(*status, NrtStatus::Resource);
            assert_eq!(
                context.as_deref(),
                Some("6 ops on `t0`, `t1`, `t2`, `t3` and 2 more")
            );
        }
        other => panic!("expected Error::Nrt, got {other}"),
    }

    let mut out = [0u32; 2];
    let mut reads = rt.read_batch();
    reads.read(&tensors[1], 0, &mut out).unwrap();
    let err = reads.run().unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Nrt { function: "nrt_tensor_read_batch", status: NrtStatus::Resource, context: Some(c), .. }
                if c == "1 op on `t1`"
        ),
        "{err}"
    );

    // The runtime and the tensors stay usable.
    *forced_status() = sys::NRT_SUCCESS;
    let mut reads = rt.read_batch();
    tensors[1].write(&[8u32, 9]).unwrap();
    reads.read(&tensors[1], 0, &mut out).unwrap();
    reads.run().unwrap();
    assert_eq!(out, [8, 9]);
}

// ---------------------------------------------------------------------------------------
// Gating

#[test]
fn a_library_without_a_batch_function_refuses_both_directions() {
    let _g = lock();
    let mut fns = *sim().fns();
    fns.nrt_tensor_write_batch = None;
    // SAFETY: the dlopen'ed simulator's own functions, one of them removed.
    let lib = unsafe { Library::in_process("sim-without-write-batch", fns, None) };
    let rt = Runtime::builder().library(lib).build().unwrap();
    assert!(!rt.capabilities().contains(Capabilities::TENSOR_BATCH));
    let t = rt.allocate_tensor(Placement::Host, None, 8, "t").unwrap();
    t.write(&[1u32, 2]).unwrap();

    let unsupported = |err: Error, function: &str| {
        assert!(
            matches!(
                &err,
                Error::Unsupported { feature, needed: Some(n) }
                    if *feature == function && n == "nrt_tensor_read_batch, nrt_tensor_write_batch"
            ),
            "{err}"
        );
    };
    let mut out = [0u32; 2];
    let mut reads = rt.read_batch();
    reads.read(&t, 0, &mut out).unwrap();
    unsupported(reads.run().unwrap_err(), "nrt_tensor_read_batch");
    assert_eq!(out, [0, 0], "nothing was read");
    let mut writes = rt.write_batch();
    writes.write(&t, 0, &[5u32]).unwrap();
    unsupported(writes.run().unwrap_err(), "nrt_tensor_write_batch");
    assert_eq!(t.to_vec::<u32>().unwrap(), [1, 2], "nothing was written");
    // Also when there is nothing to move: the answer does not depend on the contents.
    unsupported(rt.read_batch().run().unwrap_err(), "nrt_tensor_read_batch");
    unsupported(
        rt.write_batch().run().unwrap_err(),
        "nrt_tensor_write_batch",
    );
    // The single-tensor calls still work.
    t.read(&mut out).unwrap();
    assert_eq!(out, [1, 2]);
}

#[test]
fn debug_output_names_the_tensors() {
    let _g = lock();
    let rt = runtime();
    let t = rt
        .allocate_tensor(Placement::Host, None, 8, "named")
        .unwrap();
    let mut writes = rt.write_batch();
    writes
        .write(&t, 0, &[1u8])
        .unwrap()
        .write(&t, 4, &[2u8])
        .unwrap();
    assert_eq!(
        format!("{writes:?}"),
        r#"WriteBatch { ops: 2, tensors: ["named"] }"#
    );
    let mut out = [0u8; 1];
    let mut reads = rt.read_batch();
    reads.read(&t, 0, &mut out).unwrap();
    assert_eq!(
        format!("{reads:?}"),
        r#"ReadBatch { ops: 1, tensors: ["named"] }"#
    );
    // Dropping a batch without running it moves nothing and ends the borrows.
    drop(reads);
    drop(writes);
    out[0] = 7;
    assert_eq!(out, [7]);
    assert_eq!(t.to_vec::<u8>().unwrap(), [0; 8]);
}
