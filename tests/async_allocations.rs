//! No heap allocation per request on the steady-state async path: after a warm-up,
//! scheduling and waiting for executions, writes, reads and copies (also of host
//! tensors, on another core's unit), awaiting them as futures, and running them through
//! a `Pipeline`, allocates nothing in this crate. The simulator emulates a runtime with
//! completion events, so waits block on eventfds. Counted by a global allocator on the
//! test's own thread; the simulator is dlopen'ed, so its own allocations (made by its
//! separate copy of the Rust allocator) are not counted.

mod support;

use std::future::IntoFuture;

use neuron_rt::{ExecSets, Pipeline, Placement};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocations;

/// Wakes the parked test thread.
struct Unpark(std::thread::Thread);

impl std::task::Wake for Unpark {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `future` on this thread until it resolves, parking in between; also how many
/// polls were pending.
fn block_on<F: std::future::Future>(waker: &std::task::Waker, future: F) -> (F::Output, u32) {
    let mut cx = std::task::Context::from_waker(waker);
    let mut future = std::pin::pin!(future);
    let mut pending = 0;
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return (out, pending);
        }
        pending += 1;
        std::thread::park_timeout(std::time::Duration::from_secs(1));
    }
}

/// Allocations made on this thread by `f`.
fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = allocations();
    f();
    allocations() - before
}

#[test]
fn the_counter_counts() {
    let n = allocations_in(|| drop(std::hint::black_box(Vec::<u8>::with_capacity(64))));
    assert_eq!(n, 1);
}

#[test]
fn steady_state_requests_allocate_nothing() {
    let _g = support::lock();
    let rt = support::runtime();
    let model = rt.load_model_on(&support::add_model(), 0).unwrap();
    let compute = rt.compute_unit(0).unwrap();
    let tensor_op = rt.tensor_op_unit(0, 0).unwrap();
    let t = rt
        .allocate_tensor(Placement::Device, Some(0), 4096, "t")
        .unwrap();
    let u = rt
        .allocate_tensor(Placement::Device, Some(0), 4096, "u")
        .unwrap();
    // Host tensors through core 1's unit: they run on that unit (lnc_idx = 1).
    let other_core = rt.tensor_op_unit(1, 0).unwrap();
    let host = rt
        .allocate_tensor(Placement::Host, None, 4096, "host")
        .unwrap();
    let host2 = rt
        .allocate_tensor(Placement::Host, None, 4096, "host2")
        .unwrap();
    let mut sets: Option<ExecSets> = Some((
        model.allocate_inputs().unwrap(),
        model.allocate_outputs().unwrap(),
    ));
    let mut buffer: Option<Vec<f32>> = Some(vec![1.5f32; 1024]);

    let mut round = |rounds: usize| {
        for _ in 0..rounds {
            let (i, o) = sets.take().unwrap();
            sets = Some(compute.execute(&model, i, o).unwrap().wait().unwrap());
            let b = buffer.take().unwrap();
            let b = tensor_op.write(&t, 0, b).unwrap().wait().unwrap();
            let b = tensor_op.read(&t, 0, b).unwrap().wait().unwrap();
            buffer = Some(b);
            tensor_op.copy(&t, 0, &u, 0, 4096).unwrap().wait().unwrap();
            let b = buffer.take().unwrap();
            let b = other_core.write(&host, 0, b).unwrap().wait().unwrap();
            let b = other_core.read(&host, 0, b).unwrap().wait().unwrap();
            buffer = Some(b);
            let r = other_core.copy(&host, 0, &host2, 0, 4096).unwrap();
            assert_eq!(Some(r.seq().xu_id()), other_core.xu_id());
            assert!(r.seq() <= other_core.last_submitted());
            r.wait().unwrap();
            // Several in flight at once, dropped (not waited) in order.
            let (i, o) = sets.take().unwrap();
            let r1 = compute.execute(&model, i, o).unwrap();
            let r2 = tensor_op.copy(&u, 0, &t, 0, 2048).unwrap();
            drop(r2);
            sets = Some(r1.wait().unwrap());
        }
    };
    round(20); // warm-up: slot pools, registry, simulator workers
    let n = allocations_in(|| round(200));
    assert_eq!(n, 0, "{n} allocations in 200 rounds of 9 requests");

    // Awaited on a minimal executor (the waker is made once, outside the count), with
    // a model slow enough that the future waits for the completion event.
    assert!(
        compute.has_events(),
        "the simulator should emulate completion events"
    );
    let slow = rt
        .load_model_on(
            &support::add_model_taking(std::time::Duration::from_micros(300)),
            0,
        )
        .unwrap();
    let mut slow_sets = Some((
        slow.allocate_inputs().unwrap(),
        slow.allocate_outputs().unwrap(),
    ));
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut pending = 0;
    let mut await_round = |rounds: usize| {
        for _ in 0..rounds {
            let (i, o) = slow_sets.take().unwrap();
            let request = compute.execute(&slow, i, o).unwrap();
            let (result, waits) = block_on(&waker, request.into_future());
            slow_sets = Some(result.unwrap());
            pending += waits;
        }
    };
    await_round(20);
    let n = allocations_in(|| await_round(100));
    assert_eq!(n, 0, "{n} allocations in 100 awaited executions");
    assert!(
        pending >= 100,
        "the futures never waited ({pending} pending polls)"
    );

    // Through a pipeline of depth 3, recycling 4 pairs of sets.
    let pool: Vec<ExecSets> = (0..4)
        .map(|_| {
            (
                model.allocate_inputs().unwrap(),
                model.allocate_outputs().unwrap(),
            )
        })
        .collect();
    let pool = std::cell::RefCell::new(pool);
    let run = |jobs: usize| {
        let pipeline = Pipeline::new(0..jobs, |_| {
            let (i, o) = pool.borrow_mut().pop().expect("a free pair");
            Ok(compute.execute(&model, i, o)?)
        });
        for result in pipeline {
            pool.borrow_mut().push(result.unwrap());
        }
    };
    run(10);
    // One pipeline = one queue allocation; nothing per job.
    let n_small = allocations_in(|| run(10));
    let n_large = allocations_in(|| run(300));
    assert_eq!(n_small, n_large, "allocations grow with the number of jobs");
    assert!(n_large <= 1, "{n_large} allocations for one pipeline");
}
