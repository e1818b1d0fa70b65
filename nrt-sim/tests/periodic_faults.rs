//! Periodic faults (`every=N`): every N-th matching event fails, on the sync and async
//! execution paths, counted per fault rule; the count of injected faults.

mod common;

use common::*;
use nrt_sim::ffi::*;
use nrt_sys::*;
use std::time::Duration;

/// 1-based numbers of the statuses that are not success, with the status.
fn failures(statuses: &[NRT_STATUS]) -> Vec<(usize, NRT_STATUS)> {
    statuses
        .iter()
        .enumerate()
        .filter(|(_, s)| **s != NRT_SUCCESS)
        .map(|(i, s)| (i + 1, *s))
        .collect()
}

/// `nrta_execute_schedule` of the rig's model on queue 0.
fn schedule_exec(rig: &AddRig, ret: &mut NRT_STATUS) -> Result<nrta_seq_t, NRT_STATUS> {
    let mut seq = u64::MAX;
    // SAFETY: `ret` outlives the request (callers wait for completion, or the session's
    // close drains the queue, before the slot goes away).
    let status =
        unsafe { nrta_execute_schedule(rig.model, rig.inputs, rig.outputs, 0, ret, &mut seq) };
    if status == NRT_SUCCESS {
        Ok(seq)
    } else {
        Err(status)
    }
}

/// Schedules one execution per slot of `rets`, at most 4 in flight, and waits for all.
fn schedule_all(rig: &AddRig, rets: &mut [NRT_STATUS]) {
    for window in rets.chunks_mut(4) {
        let mut last = None;
        for ret in window.iter_mut() {
            last = Some(schedule_exec(rig, ret).expect("schedule"));
        }
        // One queue runs its requests in order: the last one done means all are.
        wait_completed(last.expect("a window has a request"));
    }
}

#[test]
fn every_50_fails_sync_executions_50_100_150_and_200_with_the_status() {
    on_exec_stack(|| {
        let _s = Session::new();
        let rig = AddRig::new(0, 2, Duration::ZERO);
        let before = control().faults_injected();
        control()
            .inject_faults("exec:every=50:status=1003")
            .unwrap();
        let statuses: Vec<NRT_STATUS> = (0..200).map(|_| rig.execute()).collect();
        let expected: Vec<(usize, NRT_STATUS)> = [50, 100, 150, 200]
            .into_iter()
            .map(|n| (n, NRT_EXEC_COMPLETED_WITH_NUM_ERR))
            .collect();
        assert_eq!(failures(&statuses), expected);
        assert_eq!(control().faults_injected() - before, 4);
        let core = &counters().cores[0];
        assert_eq!((core.executions, core.failed_executions), (200, 4));
        rig.release();
    });
}

#[test]
fn every_50_fails_async_executions_50_100_150_and_200_with_the_status() {
    let _s = Session::new();
    let rig = AddRig::new(0, 2, Duration::ZERO);
    let before = control().faults_injected();
    control()
        .inject_faults("exec:every=50:status=1003")
        .unwrap();
    let mut rets = vec![SENTINEL; 200];
    schedule_all(&rig, &mut rets);
    let expected: Vec<(usize, NRT_STATUS)> = [50, 100, 150, 200]
        .into_iter()
        .map(|n| (n, NRT_EXEC_COMPLETED_WITH_NUM_ERR))
        .collect();
    assert_eq!(failures(&rets), expected);
    assert_eq!(control().faults_injected() - before, 4);
    // 1003 is not fatal: the compute queue still takes requests.
    let mut ret = SENTINEL;
    let seq = schedule_exec(&rig, &mut ret).expect("the queue is still usable");
    wait_completed(seq);
    assert_eq!(ret, NRT_SUCCESS);
    rig.release();
}

#[test]
fn every_counts_the_events_of_its_rule_on_every_core_it_matches() {
    on_exec_stack(|| {
        let _s = Session::new();
        let (r0, r1) = (
            AddRig::new(0, 2, Duration::ZERO),
            AddRig::new(1, 2, Duration::ZERO),
        );
        // No vnc: one count over both cores. With vnc: a count of that core's events.
        control()
            .inject_faults("exec:every=3:status=NRT_EXEC_OOB; exec:vnc=1:every=2")
            .unwrap();
        // Alternating cores, c0 c1 c0 c1 ...: the first rule counts all 8 events and
        // fails its 3rd and 6th; the second counts core 1's (events 2, 4, 6, 8) and
        // fails its 2nd and 4th.
        let statuses: Vec<NRT_STATUS> = (0..8)
            .map(|i| {
                if i % 2 == 0 {
                    r0.execute()
                } else {
                    r1.execute()
                }
            })
            .collect();
        assert_eq!(
            failures(&statuses),
            [
                (3, NRT_EXEC_OOB),
                (4, NRT_EXEC_COMPLETED_WITH_ERR), // the default status of exec faults
                (6, NRT_EXEC_OOB),
                (8, NRT_EXEC_COMPLETED_WITH_ERR),
            ]
        );
        r0.release();
        r1.release();
    });
}

#[test]
fn every_combined_with_an_nth_xu_fault_as_in_issue_13() {
    on_exec_stack(|| {
        let _s = Session::new();
        let rig = AddRig::new(1, 2, Duration::ZERO);
        let before = control().faults_injected();
        control()
            .inject_faults("exec:every=50:status=1003; xu:vnc=1:type=compute:nth=300")
            .unwrap();
        let mut rets = vec![SENTINEL; 300];
        schedule_all(&rig, &mut rets);
        let mut expected: Vec<(usize, NRT_STATUS)> = [50, 100, 150, 200, 250]
            .into_iter()
            .map(|n| (n, NRT_EXEC_COMPLETED_WITH_NUM_ERR))
            .collect();
        // The 300th request hits the unit fault (default status 101) before it runs.
        expected.push((300, NRT_EXEC_UNIT_UNRECOVERABLE));
        assert_eq!(failures(&rets), expected);
        assert_eq!(control().faults_injected() - before, 6);
        // The unit stays dead: refused schedules and sync runs are not injected faults.
        let mut ret = SENTINEL;
        assert_eq!(
            schedule_exec(&rig, &mut ret),
            Err(NRT_EXEC_UNIT_UNRECOVERABLE)
        );
        assert_eq!(rig.execute(), NRT_EXEC_UNIT_UNRECOVERABLE);
        assert_eq!(control().faults_injected() - before, 6);
        rig.release();
    });
}

#[test]
fn every_applies_to_allocations_and_loads() {
    let _s = Session::new();
    control()
        .inject_faults("alloc:vnc=0:every=2; load:every=3")
        .unwrap();
    let allocs: Vec<NRT_STATUS> = (0..6)
        .map(
            |i| match try_alloc(NRT_TENSOR_PLACEMENT_DEVICE, 0, 8, &format!("t{i}")) {
                Ok(t) => {
                    free(t);
                    NRT_SUCCESS
                }
                Err(status) => status,
            },
        )
        .collect();
    assert_eq!(
        failures(&allocs),
        [(2, NRT_RESOURCE), (4, NRT_RESOURCE), (6, NRT_RESOURCE)]
    );
    // Host allocations do not match a fault limited to core 0.
    free(alloc_host(8, "host"));
    let model = add_model(2, Duration::ZERO);
    let loads: Vec<NRT_STATUS> = (0..3)
        .map(|_| match try_load(&model, 0) {
            Ok(m) => {
                unload(m);
                NRT_SUCCESS
            }
            Err(status) => status,
        })
        .collect();
    assert_eq!(failures(&loads), [(3, NRT_RESOURCE)]);
}

#[test]
fn a_bad_every_is_refused_and_arms_nothing() {
    let _s = Session::new();
    let err = control()
        .inject_faults("exec:every=50; alloc:every=0")
        .unwrap_err();
    assert_eq!(err.fault, "alloc:every=0");
    assert!(err.message.contains("every=0"), "{err}");
    // Nothing was armed, not even the good first fault.
    on_exec_stack(|| {
        let rig = AddRig::new(0, 2, Duration::ZERO);
        assert!((0..50).all(|_| rig.execute() == NRT_SUCCESS));
        rig.release();
    });
}
