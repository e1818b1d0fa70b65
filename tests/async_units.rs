//! The async API on nrt-sim (dlopen'ed): units, ordering, sequence ids, in-flight counts,
//! transfers, per-request errors, unrecoverable units, threads. (Waiting, futures,
//! pipelines and lifetimes: `async_waiting.rs`.)

mod support;

use std::time::{Duration, Instant};

use neuron_rt::{Error, ExecSets, ExecUnit, NrtStatus, Placement, Request, SeqId, XuKind};
use support::add_jobs::{exec, fill, loaded, out, sets};

#[test]
fn units_are_checked_before_any_call() {
    let _g = support::lock();
    let rt = support::runtime();
    let cores = rt.visible_core_count().unwrap();
    assert_eq!(cores, 2, "the simulator's default");

    let err = rt.compute_unit(cores).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument { argument: "core", reason } if reason.contains("core 2") && reason.contains("2 visible")),
        "{err}"
    );
    for (kind, queues) in [
        (XuKind::TensorOp, 2),
        (XuKind::Compute, 1),
        (XuKind::Collectives, 3),
    ] {
        assert_eq!(kind.queue_count(), queues);
        let err = rt.exec_unit(0, kind, queues).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument { argument: "queue", reason } if reason.contains(&format!("got {queues}"))),
            "{kind}: {err}"
        );
    }

    // Every existing queue: distinct XU ids, nothing completed or submitted yet.
    let mut ids = Vec::new();
    for core in 0..cores {
        for kind in XuKind::ALL {
            for queue in 0..kind.queue_count() {
                let unit = rt.exec_unit(core, kind, queue).unwrap();
                assert_eq!(
                    (unit.core(), unit.kind(), unit.queue()),
                    (core, kind, queue)
                );
                let last = unit.last_completed().unwrap();
                assert_eq!(last.number(), 0);
                // The XU id is learnt from the first accepted request, not from this
                // query (libnrt documents no value before any completion).
                assert_eq!(unit.xu_id(), None);
                assert_eq!(unit.last_submitted(), SeqId::new(0, 0));
                assert_eq!(unit.in_flight().unwrap(), 0);
                ids.push(last.xu_id());
            }
        }
    }
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "XU ids are distinct");
    assert_eq!(n, 12);
    assert_eq!(
        rt.tensor_op_unit(1, 1).unwrap().to_string(),
        "tensor-op unit (core 1, queue 1)"
    );
}

#[test]
fn executions_run_in_order_with_consecutive_sequence_numbers() {
    let _g = support::lock();
    let rt = support::runtime();
    let model = loaded(&rt, Duration::from_millis(4), 0);
    let unit = rt.compute_unit(0).unwrap();

    let requests: Vec<Request<ExecSets>> = (0..5)
        .map(|i| exec(&unit, &model, sets(&model, i as f32)).unwrap())
        .collect();
    let first = requests[0].seq();
    for (i, r) in requests.iter().enumerate() {
        assert_eq!(Some(r.seq().xu_id()), unit.xu_id());
        assert_eq!(r.seq().number(), first.number() + i as u64);
    }
    assert_eq!(unit.last_submitted(), requests[4].seq());

    // Whenever a request is complete, so is every earlier one (FIFO per queue).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let done: Vec<bool> = requests.iter().map(|r| r.is_complete().unwrap()).collect();
        let first_pending = done.iter().position(|d| !d).unwrap_or(done.len());
        assert!(
            done[first_pending..].iter().all(|d| !d),
            "completed out of order: {done:?}"
        );
        let last = unit.last_completed().unwrap();
        assert!(last.number() >= first.number() + first_pending as u64 - 1);
        if first_pending == done.len() || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    for (i, r) in requests.into_iter().enumerate() {
        let (_inputs, outputs) = r.wait().unwrap();
        assert_eq!(out(&outputs), [100.0 + i as f32; 6]);
    }
    assert_eq!(unit.in_flight().unwrap(), 0);
}

#[test]
fn in_flight_counts_requests_until_they_complete() {
    let _g = support::lock();
    let rt = support::runtime();
    let model = loaded(&rt, Duration::from_millis(100), 0);
    let unit = rt.compute_unit(0).unwrap();
    let requests: Vec<_> = (0..3)
        .map(|i| exec(&unit, &model, sets(&model, i as f32)).unwrap())
        .collect();
    // 300 ms of device time were just queued: at most the first can have finished.
    let n = unit.in_flight().unwrap();
    assert!((2..=3).contains(&n), "in flight: {n}");
    let last = requests[2].seq();
    assert!(
        !unit
            .wait_for_timeout(last, Some(Duration::from_millis(1)))
            .unwrap()
    );
    unit.wait_for(last).unwrap();
    assert_eq!(unit.in_flight().unwrap(), 0);
    assert_eq!(unit.last_completed().unwrap(), last);
    for r in &requests {
        assert!(r.is_complete().unwrap());
        assert!(r.wait_timeout(Duration::ZERO).unwrap());
    }
    drop(requests);
    unit.wait_idle().unwrap();
}

#[test]
fn wait_for_refuses_ids_it_would_wait_for_forever() {
    let _g = support::lock();
    let rt = support::runtime();
    let compute = rt.compute_unit(0).unwrap();
    let copy = rt.tensor_op_unit(0, 0).unwrap();
    let foreign = SeqId::new(copy.last_completed().unwrap().xu_id(), 1);
    let err = compute.wait_for(foreign).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::InvalidArgument {
                argument: "seq",
                ..
            }
        ),
        "{err}"
    );
    let compute_id = compute.last_completed().unwrap().xu_id();
    let future = SeqId::new(compute_id, compute.last_submitted().number() + 1);
    let err = compute.wait_for(future).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument { argument: "seq", reason } if reason.contains("never scheduled")),
        "{err}"
    );
    // Number 0 (nothing) is always done.
    compute.wait_for(SeqId::new(compute_id, 0)).unwrap();
    // Once the unit knows its XU id (from an accepted request), another queue's id is
    // named as such.
    let model = loaded(&rt, Duration::ZERO, 0);
    exec(&compute, &model, sets(&model, 1.0))
        .unwrap()
        .wait()
        .unwrap();
    let err = compute.wait_for(foreign).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument { argument: "seq", reason } if reason.contains("belongs to another queue")),
        "{err}"
    );
}

#[test]
fn handles_of_one_queue_share_their_state() {
    let _g = support::lock();
    let rt = support::runtime();
    let model = loaded(&rt, Duration::ZERO, 1);
    let a = rt.compute_unit(1).unwrap();
    let b = rt.exec_unit(1, XuKind::Compute, 0).unwrap();
    let r = exec(&a, &model, sets(&model, 1.0)).unwrap();
    assert_eq!(b.last_submitted(), r.seq());
    assert_eq!(r.unit().xu_id(), b.xu_id());
    r.wait().unwrap();
}

#[test]
fn writes_reads_and_copies_move_the_bytes_and_return_the_buffers() {
    let _g = support::lock();
    let rt = support::runtime();
    let unit = rt.tensor_op_unit(0, 1).unwrap();
    let t = rt
        .allocate_tensor(Placement::Device, Some(0), 32, "t")
        .unwrap();
    let u = rt
        .allocate_tensor(Placement::Device, Some(0), 32, "u")
        .unwrap();

    let data: Vec<f32> = (0..8).map(|i| i as f32 * 1.5).collect();
    let data_ptr = data.as_ptr();
    let back = unit.write(&t, 0, data).unwrap().wait().unwrap();
    assert_eq!(back.as_ptr(), data_ptr, "the same buffer comes back");
    assert_eq!(back, (0..8).map(|i| i as f32 * 1.5).collect::<Vec<_>>());

    let read = unit.read(&t, 8, vec![0.0f32; 4]).unwrap().wait().unwrap();
    assert_eq!(read, [3.0, 4.5, 6.0, 7.5]);

    // Copy the first half of t into the second half of u, then read u whole.
    u.fill(0).unwrap();
    unit.copy(&t, 0, &u, 16, 16).unwrap().wait().unwrap();
    let boxed: Box<[f32]> = vec![-1.0f32; 8].into_boxed_slice();
    let read = unit.read(&u, 0, boxed).unwrap().wait().unwrap();
    assert_eq!(&*read, &[0.0, 0.0, 0.0, 0.0, 0.0, 1.5, 3.0, 4.5]);

    // Integer elements, written at an offset.
    let ints = unit.write(&u, 4, vec![7u32, 8, 9]).unwrap().wait().unwrap();
    assert_eq!(ints, [7, 8, 9]);
    let mut raw = [0u32; 8];
    u.read(&mut raw).unwrap();
    assert_eq!(&raw[..4], &[0, 7, 8, 9]);

    // The tensor stays alive while a request uses it, even if its handle is dropped.
    let r = unit.write(&t, 0, vec![9u8; 32]).unwrap();
    drop(t);
    assert_eq!(r.wait().unwrap(), [9u8; 32]);
    drop((u, unit));
    drop(rt);
    support::assert_no_leaks();
}

#[test]
fn bad_requests_are_refused_before_any_call_and_hand_the_payload_back() {
    let _g = support::lock();
    let rt = support::runtime();
    let model0 = loaded(&rt, Duration::ZERO, 0);
    let compute0 = rt.compute_unit(0).unwrap();
    let compute1 = rt.compute_unit(1).unwrap();
    let tensor_op0 = rt.tensor_op_unit(0, 0).unwrap();
    let t0 = rt
        .allocate_tensor(Placement::Device, Some(0), 16, "t0")
        .unwrap();
    let t1 = rt
        .allocate_tensor(Placement::Device, Some(1), 16, "t1")
        .unwrap();

    // Execute on a TENSOR_OP unit.
    let (inputs, outputs) = sets(&model0, 3.0);
    let rejected = tensor_op0.execute(&model0, inputs, outputs).unwrap_err();
    assert!(
        matches!(rejected.error(), Error::InvalidArgument { argument: "unit", reason } if reason.contains("compute unit")),
        "{rejected}"
    );
    let (error, (inputs, outputs)) = rejected.into_parts();
    assert!(!error.is_retryable());
    // The sets came back intact and still work.
    let (_, outputs) = compute0
        .execute(&model0, inputs, outputs)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(out(&outputs), [103.0; 6]);

    // A model on core 0 on the compute unit of core 1.
    let rejected = exec(&compute1, &model0, sets(&model0, 0.0)).unwrap_err();
    assert!(
        matches!(
            rejected.error(),
            Error::WrongCore {
                tensor_core: 0,
                expected_core: 1,
                ..
            }
        ),
        "{rejected}"
    );

    // A set missing an input.
    let mut partial = rt.tensor_set().unwrap();
    partial
        .insert(
            "a",
            &rt.allocate_tensor(Placement::Device, Some(0), 24, "a")
                .unwrap(),
        )
        .unwrap();
    let rejected = compute0
        .execute(&model0, partial, model0.allocate_outputs().unwrap())
        .unwrap_err();
    assert!(
        matches!(rejected.error(), Error::MissingTensor { tensor, .. } if tensor == "b"),
        "{rejected}"
    );

    // Transfers on a COMPUTE unit, out of range, or on another core.
    let rejected = compute0.write(&t0, 0, vec![1u8; 4]).unwrap_err();
    assert!(matches!(
        rejected.error(),
        Error::InvalidArgument {
            argument: "unit",
            ..
        }
    ));
    assert_eq!(rejected.into_inner(), [1u8; 4]);
    let rejected = tensor_op0.write(&t0, 12, vec![1.0f32; 2]).unwrap_err();
    assert!(
        matches!(
            rejected.error(),
            Error::OutOfBounds {
                offset: 12,
                len: 8,
                size: 16,
                ..
            }
        ),
        "{rejected}"
    );
    assert_eq!(rejected.into_inner(), [1.0f32; 2]);
    let rejected = tensor_op0.read(&t0, usize::MAX, vec![0u8; 2]).unwrap_err();
    assert!(
        matches!(rejected.error(), Error::OutOfBounds { .. }),
        "{rejected}"
    );
    let rejected = tensor_op0.read(&t1, 0, vec![0u8; 4]).unwrap_err();
    assert!(
        matches!(
            rejected.error(),
            Error::WrongCore {
                tensor_core: 1,
                expected_core: 0,
                ..
            }
        ),
        "{rejected}"
    );
    let rejected = tensor_op0.copy(&t0, 0, &t1, 0, 4).unwrap_err();
    assert!(
        matches!(rejected.error(), Error::WrongCore { .. }),
        "{rejected}"
    );
    let rejected = tensor_op0.copy(&t0, 8, &t0, 0, 9).unwrap_err();
    assert!(
        matches!(rejected.error(), Error::OutOfBounds { .. }),
        "{rejected}"
    );
    // `?` turns a rejection into an Error.
    fn via_question_mark(unit: &ExecUnit, t: &neuron_rt::Tensor) -> neuron_rt::Result<()> {
        unit.write(t, 16, vec![0u8; 1])?.wait()?;
        Ok(())
    }
    assert!(matches!(
        via_question_mark(&tensor_op0, &t0),
        Err(Error::OutOfBounds { .. })
    ));
    // Nothing was submitted by any of the refusals.
    assert_eq!(tensor_op0.last_submitted().number(), 0);
    assert_eq!(compute1.last_submitted().number(), 0);
    assert_eq!(compute0.last_submitted().number(), 1);
}

#[test]
fn an_execution_error_is_reported_by_that_request_only() {
    let _g = support::lock();
    let rt = support::runtime();
    let model = loaded(&rt, Duration::from_millis(1), 0);
    let unit = rt.compute_unit(0).unwrap();
    support::control()
        .inject_faults("exec:vnc=0:nth=2:status=1003")
        .unwrap();
    let requests: Vec<_> = (0..3)
        .map(|i| exec(&unit, &model, sets(&model, i as f32)).unwrap())
        .collect();
    let mut requests = requests.into_iter();
    let (_, o) = requests.next().unwrap().wait().unwrap();
    assert_eq!(out(&o), [100.0; 6]);

    let second = requests.next().unwrap();
    let seq = second.seq();
    let (payload, status) = second.wait_with_payload();
    let err = status.unwrap_err();
    match &err {
        Error::Nrt {
            function,
            status,
            context,
            ..
        } => {
            assert_eq!(*function, "nrta_execute_schedule");
            assert_eq!(*status, NrtStatus::ExecCompletedWithNumErr);
            assert!(
                context.as_deref().unwrap_or("").contains(&seq.to_string()),
                "{err}"
            );
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(!err.is_fatal());
    // The sets come back anyway (1003 still writes outputs in the simulator).
    let (_, o) = payload.expect("payload kept");
    assert_eq!(out(&o), [101.0; 6]);

    let (_, o) = requests.next().unwrap().wait().unwrap();
    assert_eq!(out(&o), [102.0; 6]);
    // The unit is fine afterwards.
    assert_eq!(unit.unrecoverable(), None);
    exec(&unit, &model, sets(&model, 5.0))
        .unwrap()
        .wait()
        .unwrap();
}

#[test]
fn an_unrecoverable_unit_fails_fast_afterwards() {
    let _g = support::lock();
    let rt = support::runtime();
    let model = loaded(&rt, Duration::from_millis(1), 0);
    let unit = rt.compute_unit(0).unwrap();
    support::control()
        .inject_faults("xu:vnc=0:type=compute:queue=0:nth=2")
        .unwrap();
    // Requests 0 and 1 are scheduled while the queue is healthy; request 2 goes in
    // after the fault was injected into request 1 and, depending on how far the
    // queue's worker got, is either accepted and then fails, or refused at schedule
    // time with the same status (libnrt refuses work on an unrecoverable queue).
    let first = exec(&unit, &model, sets(&model, 0.0)).unwrap();
    let second = exec(&unit, &model, sets(&model, 1.0)).unwrap();
    let third = exec(&unit, &model, sets(&model, 2.0));
    let third = match third {
        Ok(request) => request.wait().map(|_| ()),
        Err(rejected) => Err(Error::from(rejected)),
    };
    assert!(first.wait().is_ok());
    for result in [second.wait().map(|_| ()), third] {
        let err = result.unwrap_err();
        assert_eq!(
            err.status(),
            Some(NrtStatus::ExecUnitUnrecoverable),
            "{err}"
        );
        assert!(err.is_fatal(), "{err}");
    }
    assert_eq!(unit.unrecoverable(), Some(NrtStatus::ExecUnitUnrecoverable));

    // From now on: refused at once, without calling libnrt, payload handed back, for
    // every handle of the queue.
    let submitted = unit.last_submitted();
    let again = rt.compute_unit(0).unwrap();
    let rejected = exec(&again, &model, sets(&model, 9.0)).unwrap_err();
    match rejected.error() {
        Error::Unrecoverable { unit: name, status } => {
            assert_eq!(name, "compute unit (core 0, queue 0)");
            assert_eq!(*status, NrtStatus::ExecUnitUnrecoverable);
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(rejected.error().is_fatal());
    assert!(rejected.error().to_string().contains("restart the process"));
    let (_inputs, _outputs) = rejected.into_inner();
    assert_eq!(unit.last_submitted(), submitted);

    // Other units are unaffected.
    let other = rt.compute_unit(1).unwrap();
    let model1 = loaded(&rt, Duration::ZERO, 1);
    exec(&other, &model1, sets(&model1, 1.0))
        .unwrap()
        .wait()
        .unwrap();
    let t = rt
        .allocate_tensor(Placement::Device, Some(0), 4, "t")
        .unwrap();
    let tensor_op = rt.tensor_op_unit(0, 0).unwrap();
    tensor_op
        .write(&t, 0, vec![1u8; 4])
        .unwrap()
        .wait()
        .unwrap();
}

#[test]
fn a_unit_that_is_already_unrecoverable_is_detected_at_schedule_time() {
    let _g = support::lock();
    let rt = support::runtime();
    let t = rt
        .allocate_tensor(Placement::Device, Some(1), 8, "t")
        .unwrap();
    let unit = rt.tensor_op_unit(1, 1).unwrap();
    support::control()
        .inject_faults("xu:vnc=1:type=tensor_op:queue=1")
        .unwrap();
    let rejected = unit.write(&t, 0, vec![1u8; 8]).unwrap_err();
    assert_eq!(
        rejected.error().status(),
        Some(NrtStatus::ExecUnitUnrecoverable),
        "{rejected}"
    );
    assert!(matches!(
        rejected.error(),
        Error::Nrt {
            function: "nrta_tensor_write",
            ..
        }
    ));
    assert_eq!(rejected.into_inner(), [1u8; 8]);
    // Remembered: the next one fails fast with the typed error.
    let rejected = unit.read(&t, 0, vec![0u8; 8]).unwrap_err();
    assert!(
        matches!(rejected.error(), Error::Unrecoverable { .. }),
        "{rejected}"
    );
    // Queue 0 of the same core is fine.
    let q0 = rt.tensor_op_unit(1, 0).unwrap();
    assert_eq!(
        q0.write(&t, 0, vec![2u8; 8]).unwrap().wait().unwrap(),
        [2u8; 8]
    );
}

#[test]
fn many_threads_submit_to_one_unit() {
    let _g = support::lock();
    let rt = support::runtime();
    let model = loaded(&rt, Duration::from_micros(200), 0);
    let unit = rt.compute_unit(0).unwrap();
    let before = unit.last_submitted().number();
    const THREADS: usize = 8;
    const EACH: usize = 12;
    let numbers: Vec<Vec<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (unit, model) = (unit.clone(), model.clone());
                s.spawn(move || {
                    let mut pair = Some(sets(&model, t as f32));
                    let mut seen = Vec::new();
                    for k in 0..EACH {
                        let (inputs, outputs) = pair.take().unwrap();
                        fill(&inputs, (t * 100 + k) as f32);
                        let r = unit
                            .submit_with_retry(Default::default(), (inputs, outputs), |(i, o)| {
                                unit.execute(&model, i, o)
                            })
                            .unwrap();
                        seen.push(r.seq().number());
                        let (inputs, outputs) = r.wait().unwrap();
                        assert_eq!(out(&outputs), [100.0 + (t * 100 + k) as f32; 6]);
                        pair = Some((inputs, outputs));
                    }
                    seen
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all: Vec<u64> = numbers.into_iter().flatten().collect();
    all.sort_unstable();
    let expected: Vec<u64> = (before + 1..=before + (THREADS * EACH) as u64).collect();
    assert_eq!(
        all, expected,
        "every request got its own consecutive number"
    );
    assert_eq!(
        unit.last_submitted().number(),
        before + (THREADS * EACH) as u64
    );
    assert_eq!(unit.in_flight().unwrap(), 0);
}
