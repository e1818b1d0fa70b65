//! Dropping `ModelPool::infer` futures at every await point (waiting for a set pair,
//! writing a large input on TENSOR_OP, waiting for admission, executing, reading a large
//! output) loses no set and blocks nothing: afterwards the pool has all its pairs (the
//! simulator's tensor count is unchanged), nothing is left in flight or waiting, and a
//! full load succeeds.

mod support;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use neuron_rt::{ModelPool, Runtime, inputs};
use nrt_sim::{DType, ModelBuilder, Op};
use support::{control, lock, runtime};

const N: u32 = 1024; // 4 KiB of f32

/// Transfers take time (4 KiB at 0.05 GB/s: about 80 µs), so that futures are dropped
/// while a transfer is on a TENSOR_OP queue; set before this binary's first runtime.
fn slow_dma_runtime() -> (support::Guard, Runtime) {
    static ENV: std::sync::Once = std::sync::Once::new();
    // SAFETY: set once, before this binary's first runtime reads the environment (every
    // test of this binary starts here).
    ENV.call_once(|| unsafe { std::env::set_var("NRT_SIM_DMA_GBPS", "0.05") });
    let guard = lock();
    (guard, runtime())
}

fn model(device_time: Duration) -> Vec<u8> {
    ModelBuilder::new("scale")
        .input("x", DType::F32, &[N])
        .output("y", DType::F32, &[N])
        .op(Op::ScaleBias {
            input: "x".into(),
            scale: 2.0,
            bias: 1.0,
            out: "y".into(),
        })
        .device_time(device_time)
        .build()
        .unwrap()
}

fn device_tensors() -> u64 {
    control().counters().cores.iter().map(|c| c.tensors).sum()
}

fn tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

async fn settle(pool: &ModelPool) {
    // Dropped executions finish on the device, then release their sets.
    for _ in 0..5000 {
        let m = pool.metrics();
        if m.total.in_flight == 0 && m.total.waiting == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("requests left in the pool: {:?}", pool.metrics().total);
}

#[test]
fn dropping_infer_anywhere_loses_no_set() {
    let (_g, rt) = slow_dma_runtime();
    // 12 pairs on one core, more than its queue holds (8): some requests wait for
    // admission, later ones for a pair. Inputs and outputs move on TENSOR_OP units.
    let pool = ModelPool::builder(&rt, model(Duration::from_millis(1)))
        .cores([0])
        .sets_per_copy(12, 12)
        .large_transfer_bytes(1024)
        .build()
        .unwrap();
    let before = device_tensors();
    let x: Vec<f32> = (0..N).map(|i| i as f32).collect();
    let tokio = tokio();
    let (mut completed, mut dropped) = (0, 0);
    tokio.block_on(async {
        for delay_us in [
            0u64, 10, 30, 60, 100, 150, 250, 400, 700, 1000, 1500, 2500, 4000, 8000,
        ] {
            let tasks: Vec<_> = (0..20)
                .map(|_| {
                    let (pool, x) = (pool.clone(), x.clone());
                    tokio::spawn(async move {
                        let inputs = inputs!["x" => &x];
                        let infer = pool.infer(&inputs);
                        tokio::time::timeout(Duration::from_micros(delay_us), infer).await
                    })
                })
                .collect();
            for t in tasks {
                match t.await.unwrap() {
                    Ok(result) => {
                        let y = result.unwrap();
                        assert_eq!(y["y"].as_slice::<f32>().unwrap()[3], 7.0);
                        completed += 1;
                    }
                    Err(_elapsed) => dropped += 1,
                }
            }
            // Before the next round: dropped executions finish on the device.
            settle(&pool).await;
        }
    });
    assert!(
        completed > 0 && dropped > 0,
        "{completed} completed, {dropped} dropped"
    );
    let m = pool.metrics();
    assert!(
        m.total.cancelled > 0,
        "executions dropped on the device: {m:?}"
    );
    assert_eq!(m.copies[0].sets, 12);
    assert_eq!(device_tensors(), before, "device tensors after the drops");
    // Every pair is back and usable: a full load succeeds.
    tokio.block_on(async {
        let tasks: Vec<_> = (0..24)
            .map(|_| {
                let (pool, x) = (pool.clone(), x.clone());
                tokio::spawn(async move { pool.infer(&inputs!["x" => &x]).await.map(drop) })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    });
    assert_eq!(pool.shutdown_blocking().total.in_flight, 0);
}

#[test]
fn dropping_a_request_waiting_for_a_set_passes_the_set_on() {
    let (_g, rt) = slow_dma_runtime();
    let pool = ModelPool::builder(&rt, model(Duration::ZERO))
        .cores([0])
        .sets_per_copy(1, 1)
        .build()
        .unwrap();
    let lease = pool.lease_blocking().unwrap();
    let x = vec![1.0f32; N as usize];
    let inputs = inputs!["x" => &x];
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);
    // Two requests wait for the only pair.
    let mut first = Box::pin(pool.infer(&inputs));
    let mut second = pin!(pool.infer(&inputs));
    assert!(first.as_mut().poll(&mut cx).is_pending());
    assert!(second.as_mut().poll(&mut cx).is_pending());
    assert_eq!(pool.metrics().total.waiting, 3);
    // The pair goes to the first waiter, which is dropped: it must reach the second.
    drop(lease);
    drop(first);
    let out = block_on(second);
    assert_eq!(out.unwrap()["y"].as_slice::<f32>().unwrap()[0], 3.0);
    let m = pool.metrics();
    assert_eq!(
        (m.total.waiting, m.total.in_flight, m.copies[0].sets),
        (0, 0, 1)
    );
}

struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}
