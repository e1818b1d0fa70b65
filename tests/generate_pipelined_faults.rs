//! Pipelined device-sampled decode when things go wrong (issue 27 item 4): an execution
//! that fails mid-decode, a compute unit that dies mid-decode (the simulator's fault
//! injection), and a decode dropped with steps still queued. Each fails (or ends) the
//! decode with the step's error, hangs nothing, and leaks nothing once the runtime
//! closed (the simulator's object and byte counters).
//!
//! Runs on the dlopen'ed simulator. Its own test binary: a dead unit stays dead for the
//! rest of the runtime.

mod support;

use std::time::Duration;

use neuron_rt::generate::{Bundle, DecodeChain, DecodeOptions, DecodeStart, PipelinedDecode};
use neuron_rt::{NrtStatus, Runtime};
use nrt_sim::decoder::DecoderBundleOptions;

fn bundle(rt: &Runtime, dir: &std::path::Path, core: u32, device_time: Duration) -> Bundle {
    let mut options = DecoderBundleOptions::default();
    options.decode_device_time = device_time;
    options.chain_device_time = device_time / 4;
    nrt_sim::decoder::write_bundle(dir, &options).unwrap();
    Bundle::builder(rt)
        .dir(dir)
        .unwrap()
        .cores([core])
        .build()
        .unwrap()
}

fn start(rows: usize) -> DecodeStart {
    DecodeStart {
        ids: (0..rows as u32).map(|r| 65 + r).collect(),
        positions: vec![0; rows],
        seq_ids: (0..rows as u32).collect(),
    }
}

/// Runs `decode` to its end: the steps that succeeded, and the error that ended it.
fn drain(mut decode: PipelinedDecode) -> (usize, Option<neuron_rt::Error>) {
    let mut ok = 0;
    loop {
        match decode.next_step() {
            Ok(Some(_)) => ok += 1,
            Ok(None) => return (ok, None),
            Err(e) => {
                // After an error the decode yields nothing more.
                assert!(matches!(decode.next_step(), Ok(None)));
                assert!(decode.next().is_none());
                return (ok, Some(e));
            }
        }
    }
}

fn closed_without_leaks() {
    let (rt, _) = support::runtime_after_close(Duration::from_secs(30));
    drop(rt);
    support::assert_no_leaks();
}

#[test]
fn a_failing_execution_fails_the_decode_with_its_error_and_leaks_nothing() {
    let _g = support::lock();
    let rt = support::runtime();
    let dir = tempfile::tempdir().unwrap();
    let bundle = bundle(&rt, dir.path(), 0, Duration::from_millis(2));
    for (what, chain, nth) in [
        (
            "fused",
            DecodeChain::single(&bundle, "decode_b4_ids").unwrap(),
            6,
        ),
        // The 7th execution of the chain is step 1's third member (chain_layer_1).
        ("chain", DecodeChain::stages(&bundle).unwrap(), 7),
    ] {
        let rows = chain.batch() as usize;
        // The steps queued behind an earlier failure run first (not counted here).
        rt.compute_unit(0).unwrap().wait_idle().unwrap();
        support::control()
            .inject_faults(&format!("exec:vnc=0:nth={nth}:status=1003"))
            .unwrap();
        let decode = PipelinedDecode::new(
            &bundle,
            0,
            &chain,
            &start(rows),
            DecodeOptions::new(16).depth(3),
        )
        .unwrap();
        let (ok, err) = drain(decode);
        support::control().clear_faults();
        let err = err.unwrap_or_else(|| panic!("{what}: the decode did not fail"));
        assert_eq!(
            err.status(),
            Some(NrtStatus::from_raw(1003)),
            "{what}: {err}"
        );
        let steps_before = (nth - 1) / chain.len();
        assert_eq!(ok, steps_before, "{what}: steps before the failing one");
    }
    // The unit is healthy: a new decode runs to its end.
    let chain = DecodeChain::single(&bundle, "decode_b1_ids").unwrap();
    let decode =
        PipelinedDecode::new(&bundle, 0, &chain, &start(1), DecodeOptions::new(4)).unwrap();
    let (ok, err) = drain(decode);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(ok, 4);
    drop((bundle, rt));
    closed_without_leaks();
}

#[test]
fn a_unit_dying_mid_decode_fails_it_and_leaks_nothing() {
    let _g = support::lock();
    let rt = support::runtime();
    let dir = tempfile::tempdir().unwrap();
    // Core 1: its compute unit stays dead for this runtime.
    let bundle = bundle(&rt, dir.path(), 1, Duration::from_millis(2));
    let chain = DecodeChain::single(&bundle, "decode_b4_ids").unwrap();
    support::control()
        .inject_faults("xu:vnc=1:type=compute:queue=0:nth=5")
        .unwrap();
    let decode = PipelinedDecode::new(
        &bundle,
        1,
        &chain,
        &start(4),
        DecodeOptions::new(16).depth(3),
    )
    .unwrap();
    let (ok, err) = drain(decode);
    let err = err.expect("the decode did not fail");
    assert!(ok < 5, "{ok} steps succeeded");
    assert_eq!(
        err.status(),
        Some(NrtStatus::ExecUnitUnrecoverable),
        "{err}"
    );
    assert!(err.is_fatal(), "{err}");
    // A new decode on the dead unit is refused at once, with the unit named.
    let again = PipelinedDecode::new(&bundle, 1, &chain, &start(4), DecodeOptions::new(4));
    let err = again.expect_err("a decode on a dead unit");
    assert!(err.to_string().contains("core 1"), "{err}");
    drop((bundle, rt));
    closed_without_leaks();
}

#[test]
fn a_decode_dropped_with_steps_queued_neither_blocks_nor_leaks() {
    let _g = support::lock();
    let rt = support::runtime();
    let dir = tempfile::tempdir().unwrap();
    let bundle = bundle(&rt, dir.path(), 0, Duration::from_millis(20));
    for chain in [
        DecodeChain::single(&bundle, "decode_b1_ids").unwrap(),
        DecodeChain::stages(&bundle).unwrap(),
    ] {
        let mut decode = PipelinedDecode::new(
            &bundle,
            0,
            &chain,
            &start(1),
            DecodeOptions::new(64).depth(3),
        )
        .unwrap();
        decode.next_step().unwrap().unwrap();
        assert!(decode.queued() > 0, "{decode:?}");
        drop(decode);
    }
    // finish() waits for the queued steps; the state can then be read.
    let chain = DecodeChain::single(&bundle, "decode_b1_ids").unwrap();
    let mut decode = PipelinedDecode::new(
        &bundle,
        0,
        &chain,
        &start(1),
        DecodeOptions::new(8).depth(3),
    )
    .unwrap();
    decode.next_step().unwrap().unwrap();
    decode.finish().unwrap();
    let unit = rt.compute_unit(0).unwrap();
    assert_eq!(unit.in_flight().unwrap(), 0);
    drop((unit, bundle, rt));
    closed_without_leaks();
}
