//! Async admission (`ExecUnit::submit`) under a real executor: many tasks submitting to
//! one unit at once all get in, FIFO, with no `QueueFull` surfacing and never more in
//! flight than the unit takes; the capacity is learned from the simulator's queue depth.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use neuron_rt::{DEFAULT_CAPACITY, ExecUnit, Model, Runtime};
use support::{identity_model, lock, runtime};

/// The simulator's default queue depth (`NRT_SIM_QUEUE_DEPTH`).
const SIM_DEPTH: usize = 8;

fn setup(rt: &Runtime, device_time: Duration) -> (Arc<Model>, ExecUnit) {
    let model = rt.load_model_on(&identity_model(device_time), 0).unwrap();
    (Arc::new(model), rt.compute_unit(0).unwrap())
}

#[test]
fn two_hundred_concurrent_tasks_are_all_admitted() {
    let _g = lock();
    let rt = runtime();
    // 5 ms per execution: the queue (depth 8) fills long before it drains, however slowly
    // the tasks run (e.g. under AddressSanitizer).
    let (model, unit) = setup(&rt, Duration::from_millis(5));
    assert_eq!(unit.capacity(), DEFAULT_CAPACITY);
    let peak = Arc::new(AtomicUsize::new(0));
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let results: Vec<_> = tokio.block_on(async {
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let (model, unit, peak) = (Arc::clone(&model), unit.clone(), Arc::clone(&peak));
                tokio::spawn(async move {
                    let sets = (model.allocate_inputs()?, model.allocate_outputs()?);
                    sets.0.get("x").unwrap().write(&[i as f32; 4])?;
                    let request = unit
                        .submit(sets, |(i, o)| unit.execute(&model, i, o))
                        .await?;
                    let in_flight = request
                        .seq()
                        .number()
                        .saturating_sub(unit.last_completed()?.number());
                    peak.fetch_max(in_flight as usize, Ordering::Relaxed);
                    let (_inputs, outputs) = request.await?;
                    let y: Vec<f32> = outputs.get("y").unwrap().to_vec()?;
                    Ok::<_, neuron_rt::Error>((i, y))
                })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }
        results
    });
    for result in &results {
        let (i, y) = result.as_ref().expect("every task is admitted and runs");
        assert_eq!(y, &[*i as f32; 4]);
    }
    assert_eq!(results.len(), 200);
    // A full queue taught the unit about its depth (concurrent submitters may make one
    // observation fall short of it, never beyond it), and it never went beyond it.
    assert!(
        (1..=SIM_DEPTH).contains(&unit.capacity()),
        "capacity {}",
        unit.capacity()
    );
    assert!(peak.load(Ordering::Relaxed) <= SIM_DEPTH);
    drop((model, unit, rt));
    support::assert_no_leaks();
}

#[test]
fn a_dropped_submission_gives_up_its_place() {
    let _g = lock();
    let rt = runtime();
    // Long enough that no execution completes (and frees a place) while the loop below
    // fills the queue, even on a loaded machine or under AddressSanitizer (with 20 ms,
    // a slow fill saw the first one finish and a ninth request admitted).
    let (model, unit) = setup(&rt, Duration::from_millis(250));
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tokio.block_on(async {
        // Fill the queue.
        let mut running = Vec::new();
        for _ in 0..SIM_DEPTH + 2 {
            let sets = (
                model.allocate_inputs().unwrap(),
                model.allocate_outputs().unwrap(),
            );
            let submit = unit.submit(sets, |(i, o)| unit.execute(&model, i, o));
            match tokio::time::timeout(Duration::from_millis(5), submit).await {
                Ok(request) => running.push(request.unwrap()),
                // The queue is full: this submission waits; give up on it.
                Err(_elapsed) => {}
            }
        }
        assert_eq!(
            running.len(),
            SIM_DEPTH,
            "admitted up to the depth, no QueueFull"
        );
        // A later submission is not stuck behind the abandoned ones.
        let sets = (
            model.allocate_inputs().unwrap(),
            model.allocate_outputs().unwrap(),
        );
        let request = unit
            .submit(sets, |(i, o)| unit.execute(&model, i, o))
            .await
            .unwrap();
        request.await.unwrap();
        for request in running {
            request.await.unwrap();
        }
    });
    drop((model, unit, rt));
    support::assert_no_leaks();
}

#[test]
fn other_errors_come_back_with_the_payload() {
    let _g = lock();
    let rt = runtime();
    let (model, unit) = setup(&rt, Duration::from_micros(10));
    let tensor_op = rt.tensor_op_unit(0, 0).unwrap();
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tokio.block_on(async {
        let sets = (
            model.allocate_inputs().unwrap(),
            model.allocate_outputs().unwrap(),
        );
        // An execution on a TENSOR_OP unit is refused before libnrt is called.
        let rejected = tensor_op
            .submit(sets, |(i, o)| tensor_op.execute(&model, i, o))
            .await
            .unwrap_err();
        assert!(matches!(
            rejected.error(),
            neuron_rt::Error::InvalidArgument { .. }
        ));
        let (inputs, _outputs) = rejected.into_inner();
        assert!(inputs.get("x").is_some());
    });
    drop((model, unit, tensor_op, rt));
    support::assert_no_leaks();
}
