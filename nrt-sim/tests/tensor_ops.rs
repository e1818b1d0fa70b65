//! Async tensor-op requests: the unit `lnc_idx` names.

mod common;

use common::*;
use nrt_sim::ffi::*;
use nrt_sys::*;

fn unit_of(seq: nrta_seq_t) -> (u64, u64, u64) {
    let id = seq >> 48;
    (id >> 8, id & 0xf, (id >> 4) & 0xf)
}

/// [`schedule_write`] at offset 0 with a fresh status slot; a refused schedule must
/// write neither the sequence id nor the status slot.
fn write_on(
    t: *mut nrt_tensor_t,
    data: &[u8],
    lnc: i32,
    queue: i32,
    ret: &mut NRT_STATUS,
) -> Result<nrta_seq_t, NRT_STATUS> {
    *ret = SENTINEL;
    let result = schedule_write(t, data, 0, lnc, queue, ret);
    if result.is_err() {
        assert_eq!(*ret, SENTINEL, "refused but the status slot was written");
    }
    result
}

/// [`schedule_read`] at offset 0, checked as [`write_on`].
fn read_on(
    t: *mut nrt_tensor_t,
    buf: &mut [u8],
    lnc: i32,
    queue: i32,
    ret: &mut NRT_STATUS,
) -> Result<nrta_seq_t, NRT_STATUS> {
    *ret = SENTINEL;
    let result = schedule_read(t, buf, 0, lnc, queue, ret);
    if result.is_err() {
        assert_eq!(*ret, SENTINEL, "refused but the status slot was written");
    }
    result
}

fn copy_on(
    src: *mut nrt_tensor_t,
    dst: *mut nrt_tensor_t,
    size: u64,
    lnc: i32,
    queue: i32,
    ret: &mut NRT_STATUS,
) -> Result<nrta_seq_t, NRT_STATUS> {
    let mut seq = u64::MAX;
    *ret = SENTINEL;
    // SAFETY: `ret` outlives the request (callers wait for it).
    let status = unsafe { nrta_tensor_copy(src, 0, dst, 0, size, lnc, queue, ret, &mut seq) };
    if status == NRT_SUCCESS {
        Ok(seq)
    } else {
        assert_eq!((seq, *ret), (u64::MAX, SENTINEL), "refused but written");
        Err(status)
    }
}

fn last_seq(lnc: u32, queue: i32) -> nrta_seq_t {
    let mut seq = 0;
    // SAFETY: valid out-pointer.
    assert_eq!(
        unsafe { nrta_get_sequence(lnc, NRTA_XU_TENSOR_OP, queue, &mut seq) },
        NRT_SUCCESS
    );
    seq
}

#[test]
fn device_tensor_on_another_core_than_lnc_idx_is_refused() {
    let _s = Session::new();
    let dev1 = alloc(1, 8, "dev1");
    let dev0 = alloc(0, 8, "dev0");
    let host = alloc_host(8, "host");
    let mut ret = SENTINEL;
    let mut buf = [0u8; 8];
    let before = (last_seq(0, 0), last_seq(0, 1));

    assert_eq!(write_on(dev1, &[1; 8], 0, 0, &mut ret), Err(NRT_INVALID));
    let why = last_error();
    assert!(
        why.contains("core 1") && why.contains("lnc_idx 0"),
        "the log names the tensor's core and lnc_idx: {why}"
    );
    assert_eq!(read_on(dev1, &mut buf, 0, 1, &mut ret), Err(NRT_INVALID));
    assert!(last_error().contains("lnc_idx 0"), "{}", last_error());
    assert_eq!(copy_on(host, dev1, 8, 0, 0, &mut ret), Err(NRT_INVALID));
    assert!(last_error().contains("dst"), "{}", last_error());
    assert_eq!(copy_on(dev1, host, 8, 0, 0, &mut ret), Err(NRT_INVALID));
    assert!(last_error().contains("src"), "{}", last_error());
    assert_eq!(
        copy_on(dev0, dev1, 8, 1, 0, &mut ret),
        Err(NRT_INVALID),
        "cross-core device copy"
    );
    assert_eq!(
        (last_seq(0, 0), last_seq(0, 1)),
        before,
        "nothing was queued"
    );

    // On their own core they run.
    let s = write_on(dev1, &[3; 8], 1, 0, &mut ret).unwrap();
    assert_eq!(unit_of(s), (1, NRTA_XU_TENSOR_OP as u64, 0));
    wait_completed(s);
    assert_eq!(ret, NRT_SUCCESS);
    assert_eq!(read(dev1, 0, 8).unwrap(), vec![3; 8]);
    for t in [dev1, dev0, host] {
        free(t);
    }
}

#[test]
fn host_tensors_run_on_the_unit_lnc_idx_names() {
    let _s = Session::new();
    let host = alloc_host(8, "host");
    let other = alloc_host(8, "other");
    let mut ret = SENTINEL;
    for lnc in 0..2 {
        for queue in 0..2 {
            // Bound to a local: the write reads it after this statement (until completion).
            let data = [lnc as u8 * 2 + queue as u8; 8];
            let s = write_on(host, &data, lnc, queue, &mut ret).unwrap();
            assert_eq!(
                unit_of(s),
                (lnc as u64, NRTA_XU_TENSOR_OP as u64, queue as u64),
                "write lnc_idx {lnc} queue {queue}"
            );
            wait_completed(s);
            assert_eq!(ret, NRT_SUCCESS);
            assert_eq!(last_seq(lnc as u32, queue), s);
            let mut buf = [0u8; 8];
            let r = read_on(host, &mut buf, lnc, queue, &mut ret).unwrap();
            assert_eq!(
                unit_of(r),
                (lnc as u64, NRTA_XU_TENSOR_OP as u64, queue as u64)
            );
            wait_completed(r);
            assert_eq!(buf, [lnc as u8 * 2 + queue as u8; 8]);
        }
    }
    let c = copy_on(host, other, 8, 1, 1, &mut ret).unwrap();
    assert_eq!(unit_of(c), (1, NRTA_XU_TENSOR_OP as u64, 1));
    wait_completed(c);
    assert_eq!(read(other, 0, 8).unwrap(), vec![3; 8]);
    free(host);
    free(other);
}

#[test]
fn invalid_lnc_idx_is_refused() {
    let _s = Session::new();
    let host = alloc_host(8, "host");
    let dev = alloc(0, 8, "dev");
    let mut ret = SENTINEL;
    let mut buf = [0u8; 8];
    for lnc in [-1, 2, i32::MAX, i32::MIN] {
        assert_eq!(write_on(host, &[1; 8], lnc, 0, &mut ret), Err(NRT_INVALID));
        assert!(
            last_error().contains(&format!("core {lnc} is not a visible core")),
            "{}",
            last_error()
        );
        assert_eq!(read_on(host, &mut buf, lnc, 0, &mut ret), Err(NRT_INVALID));
        assert_eq!(copy_on(host, dev, 8, lnc, 0, &mut ret), Err(NRT_INVALID));
    }
    for queue in [-1, 2] {
        assert_eq!(
            write_on(host, &[1; 8], 0, queue, &mut ret),
            Err(NRT_INVALID)
        );
    }
    free(host);
    free(dev);
}
