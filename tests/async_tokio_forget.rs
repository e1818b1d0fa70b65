//! Forget-safety on the tokio-native path (feature `tokio`): `mem::forget` of a future
//! polled on a tokio runtime leaks its request (which keeps the runtime open) and
//! leaves an entry that is woken, or dropped with the unit; nothing hangs, the device
//! never writes to freed memory, and the unit keeps working. Its own binary: the leak
//! keeps the simulated runtime open for the rest of the process.
#![cfg(feature = "tokio")]

mod support;

use std::future::{Future, IntoFuture, poll_fn};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

fn tokio_current() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn forgotten_futures_polled_on_tokio_leak_instead_of_hanging() {
    let _g = support::lock();
    let rt = support::runtime();
    let model = rt
        .load_model_on(&support::identity_model(Duration::from_millis(50)), 0)
        .unwrap();
    let unit = rt.compute_unit(0).unwrap();
    let tokio = tokio_current();
    let inputs = model.allocate_inputs().unwrap();
    inputs.get("x").unwrap().write(&[5.0f32; 4]).unwrap();
    let outputs = model.allocate_outputs().unwrap();
    let y = outputs.get("y").unwrap().clone();
    let request = unit.execute(&model, inputs, outputs).unwrap();
    let seq = request.seq();
    tokio.block_on(async {
        let mut future = request.into_future();
        assert!(
            poll_fn(|cx| Poll::Ready(Pin::new(&mut future).poll(cx)))
                .await
                .is_pending()
        );
        std::mem::forget(future);
        tokio::time::sleep(Duration::from_millis(200)).await;
    });
    unit.wait_for(seq).unwrap();
    assert_eq!(y.to_vec::<f32>().unwrap(), [5.0f32; 4]);
    // Later requests on the same unit and runtime still resolve.
    for _ in 0..5 {
        tokio
            .block_on(
                unit.execute(
                    &model,
                    model.allocate_inputs().unwrap(),
                    model.allocate_outputs().unwrap(),
                )
                .unwrap()
                .into_future(),
            )
            .unwrap();
    }
    drop(tokio); // the runtime's reactor goes while the forgotten entry may remain
}
