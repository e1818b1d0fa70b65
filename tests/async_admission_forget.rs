//! Admission (`ExecUnit::submit`) does not rely on `Drop`: a submission that waited for
//! room and was then `mem::forget`-ten never holds up the unit's later submissions,
//! neither one arriving after the queue drained nor one already waiting behind it. (Its
//! own binary: the forgotten payloads keep this runtime open for the rest of the process.)

mod support;

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use neuron_rt::{ExecUnit, Model, Request, TensorSet};
use support::{identity_model, lock, runtime};

/// The simulator's default queue depth (`NRT_SIM_QUEUE_DEPTH`).
const SIM_DEPTH: usize = 8;

type Sets = (TensorSet, TensorSet);

fn sets(model: &Model) -> Sets {
    (
        model.allocate_inputs().unwrap(),
        model.allocate_outputs().unwrap(),
    )
}

/// Polls `f` once; returns whether it is still pending.
async fn poll_once<F: Future + Unpin>(f: &mut F) -> bool {
    poll_fn(|cx| Poll::Ready(Pin::new(&mut *f).poll(cx).is_pending())).await
}

/// Fills the unit's queue (learning its depth), then leaves one submission that waits
/// for room forgotten at the front of the line; returns the running requests.
async fn fill_and_forget_one(unit: &ExecUnit, model: &Model) -> Vec<Request<Sets>> {
    let mut running = Vec::new();
    while running.len() < SIM_DEPTH {
        let r = unit
            .submit(sets(model), |(i, o)| unit.execute(model, i, o))
            .await
            .unwrap();
        running.push(r);
    }
    let mut waiting = Box::pin(unit.submit(sets(model), |(i, o)| unit.execute(model, i, o)));
    // Learns the depth from QueueFull (or finds the unit at capacity) and waits.
    assert!(
        poll_once(&mut waiting).await,
        "the queue is full: it must wait"
    );
    std::mem::forget(waiting);
    running
}

#[test]
fn a_forgotten_submission_does_not_hold_up_later_ones() {
    let _g = lock();
    let rt = runtime();
    let model = Arc::new(
        rt.load_model_on(&identity_model(Duration::from_millis(20)), 0)
            .unwrap(),
    );
    let unit = rt.compute_unit(0).unwrap();
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tokio.block_on(async {
        // 1. The queue drains completely; a new submission finds it empty.
        let running = fill_and_forget_one(&unit, &model).await;
        for r in running {
            r.await.unwrap();
        }
        let submit = unit.submit(sets(&model), |(i, o)| unit.execute(&model, i, o));
        let r = tokio::time::timeout(Duration::from_secs(5), submit)
            .await
            .expect("an empty queue admits a new submission despite a forgotten one")
            .unwrap();
        r.await.unwrap();

        // 2. A submission already waiting behind a forgotten one gets in as room frees.
        let running = fill_and_forget_one(&unit, &model).await;
        let (unit2, model2) = (unit.clone(), Arc::clone(&model));
        let behind = tokio::spawn(tokio::time::timeout(Duration::from_secs(5), async move {
            unit2
                .submit(sets(&model2), |(i, o)| unit2.execute(&model2, i, o))
                .await
                .map(|r| r.seq())
        }));
        for r in running {
            r.await.unwrap();
        }
        let seq = behind
            .await
            .unwrap()
            .expect("the submission behind a forgotten one was admitted")
            .unwrap();
        unit.wait_for(seq).unwrap();
    });
}
