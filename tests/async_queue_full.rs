//! Backpressure: with `NRT_SIM_QUEUE_DEPTH=2` and slow executions, a third request is
//! refused with a retryable `QueueFull` that hands the tensor sets back, consumes no
//! sequence number, and succeeds once a completion frees a place.
//! In its own test binary: the variable is read at the simulator's `nrt_init`.

mod support;

use std::sync::Once;
use std::time::Duration;

use neuron_rt::{Error, ExecSets, Model, NrtStatus, Pipeline, RetryPolicy, Runtime};

const DEVICE_TIME: Duration = Duration::from_millis(25);

fn setup() -> Runtime {
    static ENV: Once = Once::new();
    // SAFETY: set before any runtime of this binary starts, under the test lock, while no
    // other thread of this binary reads the environment (every test takes the lock first).
    ENV.call_once(|| unsafe { std::env::set_var("NRT_SIM_QUEUE_DEPTH", "2") });
    // `retrying_gives_up_within_its_time_bound` drops requests that still run for up to
    // 600 ms; they keep that runtime open until they complete (never blocking the drop),
    // so a test that runs after it waits for the close.
    support::runtime_after_close(Duration::from_secs(10)).0
}

fn model(rt: &Runtime) -> Model {
    model_taking(rt, DEVICE_TIME)
}

fn model_taking(rt: &Runtime, device_time: Duration) -> Model {
    rt.load_model_on(&support::identity_model(device_time), 0)
        .unwrap()
}

fn sets(model: &Model, x: f32) -> ExecSets {
    let inputs = model.allocate_inputs().unwrap();
    inputs.get("x").unwrap().write(&[x; 4]).unwrap();
    (inputs, model.allocate_outputs().unwrap())
}

#[test]
fn a_full_queue_refuses_then_accepts_after_a_completion() {
    let _g = support::lock();
    let rt = setup();
    let model = model(&rt);
    let unit = rt.compute_unit(0).unwrap();
    let (i, o) = sets(&model, 1.0);
    let first = unit.execute(&model, i, o).unwrap();
    let (i, o) = sets(&model, 2.0);
    let second = unit.execute(&model, i, o).unwrap();

    let (i, o) = sets(&model, 3.0);
    let rejected = unit.execute(&model, i, o).unwrap_err();
    assert!(rejected.is_retryable(), "{rejected}");
    assert_eq!(rejected.error().status(), Some(NrtStatus::QueueFull));
    assert!(matches!(
        rejected.error(),
        Error::Nrt {
            function: "nrta_execute_schedule",
            ..
        }
    ));
    assert_eq!(unit.last_submitted(), second.seq(), "no number consumed");
    assert_eq!(unit.in_flight().unwrap(), 2);

    // One attempt only: refused again, sets handed back once more.
    let (i, o) = rejected.into_inner();
    let policy = RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    let rejected = unit
        .submit_with_retry(policy, (i, o), |(i, o)| unit.execute(&model, i, o))
        .unwrap_err();
    assert!(rejected.is_retryable());

    // With retries: waits for the first completion, then gets in.
    let third = unit
        .submit_with_retry(RetryPolicy::default(), rejected.into_inner(), |(i, o)| {
            unit.execute(&model, i, o)
        })
        .unwrap();
    assert_eq!(third.seq().number(), second.seq().number() + 1);
    assert!(
        first.is_complete().unwrap(),
        "a place freed only by a completion"
    );

    for (r, x) in [(first, 1.0f32), (second, 2.0), (third, 3.0)] {
        let (_, outputs) = r.wait().unwrap();
        assert_eq!(support::f32s(&outputs, "y"), [x; 4]);
    }
}

#[test]
fn retrying_gives_up_within_its_time_bound() {
    let _g = support::lock();
    let rt = setup();
    // Slow enough that no place frees up while the 2 ms of retrying run.
    let model = model_taking(&rt, Duration::from_millis(300));
    let unit = rt.compute_unit(0).unwrap();
    let held: Vec<_> = (0..2)
        .map(|k| {
            let (i, o) = sets(&model, k as f32);
            unit.execute(&model, i, o).unwrap()
        })
        .collect();
    let policy = RetryPolicy {
        max_attempts: u32::MAX,
        timeout: Duration::from_millis(2),
    };
    let rejected = unit
        .submit_with_retry(policy, sets(&model, 9.0), |(i, o)| {
            unit.execute(&model, i, o)
        })
        .unwrap_err();
    // It gave up on its own bound, not because a place freed up: nothing completed yet.
    assert!(
        !held[0].is_complete().unwrap(),
        "retrying outlasted its 2 ms bound"
    );
    assert_eq!(rejected.error().status(), Some(NrtStatus::QueueFull));
    let (_inputs, _outputs) = rejected.into_inner();
    drop(held);
}

#[test]
fn a_pipeline_deeper_than_the_queue_works_with_retries() {
    let _g = support::lock();
    let rt = setup();
    let model = model(&rt);
    let unit = rt.compute_unit(0).unwrap();
    let results: Vec<f32> = Pipeline::with_depth(4, 0..6u32, |job| {
        Ok(unit.submit_with_retry(
            RetryPolicy::default(),
            sets(&model, job as f32),
            |(i, o)| unit.execute(&model, i, o),
        )?)
    })
    .unwrap()
    .map(|r| support::f32s(&r.unwrap().1, "y")[0])
    .collect();
    assert_eq!(results, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
}
