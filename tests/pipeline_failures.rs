//! A `Pipeline` hands failed jobs back with their payload (issue 11, item 4): with the
//! documented set-recycling pool (4 pairs, depth 3), jobs that fail, at completion or at
//! submit, return their sets, so the pool never runs dry and every job is accounted for.

mod support;

use std::cell::RefCell;
use std::time::Duration;

use neuron_rt::{Error, ExecSets, Failed, Model, NrtStatus, Pipeline, TensorSet};

const PAIRS: usize = 4;
const DEPTH: usize = 3;
const JOBS: u32 = 8;

fn fill(inputs: &TensorSet, job: u32) {
    inputs.get("a").unwrap().write(&[job as f32; 6]).unwrap();
    inputs.get("b").unwrap().write(&[100.0f32; 6]).unwrap();
}

/// What each job ended as: its output (`Ok`), or its error and output if the sets came back.
type Outcome = Result<f32, (Error, Option<f32>)>;

/// Runs `JOBS` jobs through a depth-`DEPTH` pipeline over a pool of `PAIRS` pairs of
/// sets, putting back every pair an item carries. Returns each job's outcome and the
/// pool's size at the end.
fn run_pool(model: &Model) -> (Vec<Outcome>, usize) {
    let rt = model.runtime();
    let unit = rt.compute_unit(0).unwrap();
    let pool: RefCell<Vec<ExecSets>> = RefCell::new(
        (0..PAIRS)
            .map(|_| {
                (
                    model.allocate_inputs().unwrap(),
                    model.allocate_outputs().unwrap(),
                )
            })
            .collect(),
    );
    let pipeline = Pipeline::with_depth(DEPTH, 0..JOBS, |job| {
        let Some((inputs, outputs)) = pool.borrow_mut().pop() else {
            let error = Error::InvalidArgument {
                argument: "pool",
                reason: format!("no free pair of sets left for job {job}"),
            };
            return Err(Failed::new(error, None));
        };
        fill(&inputs, job);
        Ok(unit.execute(model, inputs, outputs)?)
    })
    .unwrap();
    let first = |sets: &ExecSets| support::f32s(&sets.1, "out")[0];
    let mut outcomes = Vec::new();
    for result in pipeline {
        let (outcome, sets) = match result {
            Ok(sets) => (Ok(first(&sets)), Some(sets)),
            Err(failed) => {
                let (error, sets) = failed.into_parts();
                (Err((error, sets.as_ref().map(first))), sets)
            }
        };
        outcomes.push(outcome);
        pool.borrow_mut().extend(sets);
    }
    let left = pool.borrow().len();
    (outcomes, left)
}

#[test]
fn failed_executions_hand_their_sets_back_and_the_pool_never_runs_dry() {
    let _g = support::lock();
    let rt = support::runtime();
    let model = rt
        .load_model_on(&support::add_model_taking(Duration::from_millis(1)), 0)
        .unwrap();
    // Jobs 1 and 4 complete with 1003 (outputs still written, as libnrt does).
    support::control()
        .inject_faults("exec:vnc=0:nth=2:status=1003; exec:vnc=0:nth=5:status=1003")
        .unwrap();
    let (outcomes, left) = run_pool(&model);

    assert_eq!(outcomes.len(), JOBS as usize, "{outcomes:?}");
    for (job, outcome) in outcomes.iter().enumerate() {
        let expected = job as f32 + 100.0;
        match outcome {
            Ok(y) => assert!(job != 1 && job != 4 && *y == expected, "job {job}: {y}"),
            Err((error, y)) => {
                assert!(job == 1 || job == 4, "job {job} failed: {error}");
                assert!(
                    matches!(
                        error,
                        Error::Nrt {
                            status: NrtStatus::ExecCompletedWithNumErr,
                            ..
                        }
                    ),
                    "job {job}: {error}"
                );
                // The outputs the failed execution still wrote came back with the sets.
                assert_eq!(*y, Some(expected), "job {job}");
            }
        }
    }
    assert_eq!(left, PAIRS, "the pool shrank");
    drop((model, rt));
    support::assert_no_leaks();
}

#[test]
fn refused_submits_hand_their_sets_back() {
    let _g = support::lock();
    let rt = support::runtime();
    let model = rt
        .load_model_on(&support::add_model_taking(Duration::from_millis(1)), 0)
        .unwrap();
    // The third request breaks the compute queue: it and the requests queued behind it
    // fail, and every later submit is refused with its sets.
    support::control()
        .inject_faults("xu:vnc=0:type=compute:queue=0:nth=3")
        .unwrap();
    let (outcomes, left) = run_pool(&model);

    assert_eq!(outcomes.len(), JOBS as usize, "{outcomes:?}");
    assert!(outcomes[0].is_ok() && outcomes[1].is_ok(), "{outcomes:?}");
    let mut refused = 0;
    for (job, outcome) in outcomes.iter().enumerate().skip(2) {
        match outcome {
            Err((error, y)) => {
                match error {
                    // Queued when the queue broke: completed with its status.
                    Error::Nrt {
                        status: NrtStatus::ExecUnitUnrecoverable,
                        ..
                    } => {}
                    // Submitted after: refused by the unit.
                    Error::Unrecoverable { .. } => refused += 1,
                    other => panic!("job {job}: {other}"),
                }
                assert!(y.is_some(), "job {job} lost its sets: {error}");
            }
            Ok(y) => panic!("job {job} ran on a broken queue: {y}"),
        }
    }
    assert!(refused > 0, "no submit was refused: {outcomes:?}");
    assert_eq!(left, PAIRS, "the pool shrank");
    drop((model, rt));
    support::assert_no_leaks();
}
