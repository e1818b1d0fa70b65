//! Synchronous batch reads and writes and tensor sets, through the exported C functions
//! of the in-process simulator. (Tensors: `sync.rs`; models and execution:
//! `sync_models.rs`.)

mod common;

use common::*;
use nrt_sim::ffi::*;
use nrt_sys::*;
use std::ffi::CStr;

#[test]
fn batch_reads_and_writes_check_every_op_first() {
    let _s = Session::new();
    let a = alloc(0, 8, "a");
    let b = alloc_host(4, "b");
    let src1 = [1u8, 2];
    let src2 = [3u8, 4, 5, 6];
    let ops_a = [
        nrt_tensor_batch_op_t {
            offset: 0,
            size: 2,
            buffer: src1.as_ptr().cast_mut().cast(),
        },
        nrt_tensor_batch_op_t {
            offset: 4,
            size: 4,
            buffer: src2.as_ptr().cast_mut().cast(),
        },
    ];
    let ops_b = [nrt_tensor_batch_op_t {
        offset: 0,
        size: 2,
        buffer: src1.as_ptr().cast_mut().cast(),
    }];
    let batches = [
        nrt_tensor_batch_t {
            tensor: a,
            ops: ops_a.as_ptr(),
            num_ops: 2,
        },
        nrt_tensor_batch_t {
            tensor: b,
            ops: ops_b.as_ptr(),
            num_ops: 1,
        },
    ];
    // SAFETY: every batch and op points at live memory of the stated size.
    unsafe {
        assert_eq!(
            nrt_tensor_write_batch(batches.as_ptr(), 2, false),
            NRT_SUCCESS
        );
    }
    assert_eq!(read(a, 0, 8).unwrap(), vec![1, 2, 0, 0, 3, 4, 5, 6]);
    assert_eq!(read(b, 0, 2).unwrap(), vec![1, 2]);
    let mut d1 = [0u8; 2];
    let mut d2 = [0u8; 4];
    let read_ops = [
        nrt_tensor_batch_op_t {
            offset: 0,
            size: 2,
            buffer: d1.as_mut_ptr().cast(),
        },
        nrt_tensor_batch_op_t {
            offset: 4,
            size: 4,
            buffer: d2.as_mut_ptr().cast(),
        },
    ];
    let rb = [nrt_tensor_batch_t {
        tensor: a,
        ops: read_ops.as_ptr(),
        num_ops: 2,
    }];
    // SAFETY: as above.
    unsafe { assert_eq!(nrt_tensor_read_batch(rb.as_ptr(), 1, true), NRT_SUCCESS) };
    assert_eq!((d1, d2), ([1, 2], [3, 4, 5, 6]));
    // One bad op (past the end of b) -> nothing is written at all.
    let bad_ops = [nrt_tensor_batch_op_t {
        offset: 3,
        size: 2,
        buffer: src1.as_ptr().cast_mut().cast(),
    }];
    let zero = [0u8; 8];
    let reset = [nrt_tensor_batch_op_t {
        offset: 0,
        size: 8,
        buffer: zero.as_ptr().cast_mut().cast(),
    }];
    let bad = [
        nrt_tensor_batch_t {
            tensor: a,
            ops: reset.as_ptr(),
            num_ops: 1,
        },
        nrt_tensor_batch_t {
            tensor: b,
            ops: bad_ops.as_ptr(),
            num_ops: 1,
        },
    ];
    // SAFETY: as above; the bad op is rejected before any copy.
    unsafe { assert_eq!(nrt_tensor_write_batch(bad.as_ptr(), 2, false), NRT_INVALID) };
    assert!(
        last_error().contains("batches[1].ops[0]: offset 3 + size 2"),
        "{}",
        last_error()
    );
    assert_eq!(
        read(a, 0, 2).unwrap(),
        vec![1, 2],
        "first batch not applied"
    );
    // SAFETY: zero batches need no pointer; NULL with a count is rejected.
    unsafe {
        assert_eq!(
            nrt_tensor_read_batch(std::ptr::null(), 0, false),
            NRT_SUCCESS
        );
        assert_eq!(
            nrt_tensor_read_batch(std::ptr::null(), 1, false),
            NRT_INVALID
        );
    }
    free(a);
    free(b);
}

#[test]
fn tensor_sets_add_replace_get_and_do_not_own_tensors() {
    let _s = Session::new();
    let set = new_set();
    let t1 = alloc(0, 4, "t1");
    let t2 = alloc(0, 4, "t2");
    assert_eq!(add(set, "x", t1), NRT_SUCCESS);
    let get = |name: &CStr| {
        let mut t = std::ptr::null_mut();
        // SAFETY: valid C string and out-pointer.
        let status = unsafe { nrt_get_tensor_from_tensor_set(set, name.as_ptr(), &mut t) };
        (status, t)
    };
    assert_eq!(get(c"x"), (NRT_SUCCESS, t1));
    assert_eq!(add(set, "x", t2), NRT_SUCCESS, "replace by name");
    assert_eq!(get(c"x"), (NRT_SUCCESS, t2));
    // Documented: an unknown name gives NRT_FAILURE and writes nothing.
    let mut untouched = t1;
    // SAFETY: valid C string and out-pointer.
    let status = unsafe { nrt_get_tensor_from_tensor_set(set, c"y".as_ptr(), &mut untouched) };
    assert_eq!((status, untouched), (NRT_FAILURE, t1));
    assert!(last_error().contains("no tensor named 'y'"));
    assert_eq!(add(set, "x", std::ptr::null_mut()), NRT_INVALID);
    // SAFETY: NULL name rejected.
    assert_eq!(
        unsafe { nrt_add_tensor_to_tensor_set(set, std::ptr::null(), t1) },
        NRT_INVALID
    );
    // Freeing a tensor the set names, then using the set's entry: detected.
    free(t2);
    assert_eq!(get(c"x").0, NRT_INVALID_HANDLE);
    // ... and destroying the set afterwards is valid.
    let stale_set = set;
    destroy_set(set);
    assert_eq!(add(stale_set, "x", t1), NRT_INVALID_HANDLE);
    let mut again = stale_set;
    // SAFETY: valid pointer to a stale handle: logged, left alone.
    unsafe { nrt_destroy_tensor_set(&mut again) };
    assert_eq!(again, stale_set);
    free(t1);
    assert_eq!(counters().live_objects(), 0);
}
