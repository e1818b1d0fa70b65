//! The pool's line for tensor-set pairs does not rely on `Drop`: a `lease` or `infer`
//! future that waited for a pair and was then `mem::forget`-ten never keeps the pair
//! given back to it, neither from a request arriving later nor from one already waiting
//! behind it. (Its own binary: the forgotten futures keep their copy's counts for the
//! rest of the process.) Every wait has a timeout, so a hang fails the test.

mod support;

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::Poll;
use std::time::Duration;

use neuron_rt::{ModelPool, Runtime, inputs};
use support::{identity_model, lock, runtime};

/// One runtime for the binary: a forgotten future keeps its copy's model, so its
/// runtime, open for the rest of the process.
fn shared_runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(runtime)
}

/// Long enough for any request here on a loaded machine; a lost pair hangs for ever.
const PATIENCE: Duration = Duration::from_secs(20);

fn tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

/// A pool of one copy (core 0) with a single tensor-set pair: a lost pair hangs the copy.
fn one_pair_pool(rt: &Runtime) -> ModelPool {
    ModelPool::builder(rt, identity_model(Duration::ZERO))
        .cores([0])
        .sets_per_copy(1, 1)
        .build()
        .unwrap()
}

/// Polls `f` once; returns whether it is still pending.
async fn poll_once<F: Future + Unpin>(f: &mut F) -> bool {
    poll_fn(|cx| Poll::Ready(Pin::new(&mut *f).poll(cx).is_pending())).await
}

/// `f` within [`PATIENCE`], or a panic naming `what`.
async fn within<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(PATIENCE, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what} did not complete within {PATIENCE:?}: the pair is lost"),
    }
}

async fn infer_ok(pool: &ModelPool) {
    let out = within(
        "infer",
        pool.infer(&inputs!["x" => &[1.0f32, 2.0, 3.0, 4.0]]),
    )
    .await
    .unwrap();
    assert_eq!(out["y"].as_slice::<f32>().unwrap(), [1.0, 2.0, 3.0, 4.0]);
}

#[test]
fn a_forgotten_waiting_lease_does_not_keep_the_pair_from_later_requests() {
    let _g = lock();
    let pool = one_pair_pool(shared_runtime());
    tokio().block_on(async {
        let held = pool.lease().await.unwrap();
        let mut waiting = Box::pin(pool.lease());
        assert!(poll_once(&mut waiting).await, "the only pair is leased");
        std::mem::forget(waiting);
        // Given back while the forgotten lease is first in line: handed to it.
        drop(held);
        for _ in 0..3 {
            drop(within("a later lease", pool.lease()).await.unwrap());
        }
        infer_ok(&pool).await;
    });
}

#[test]
fn a_forgotten_waiting_infer_does_not_hold_up_the_request_behind_it() {
    let _g = lock();
    let pool = one_pair_pool(shared_runtime());
    tokio().block_on(async {
        let held = pool.lease().await.unwrap();
        let x = inputs!["x" => &[1.0f32, 2.0, 3.0, 4.0]];
        let mut forgotten = Box::pin(pool.infer(&x));
        assert!(poll_once(&mut forgotten).await, "the only pair is leased");
        std::mem::forget(forgotten);
        // Waits behind the forgotten one, already when the pair comes back.
        let mut behind = Box::pin(pool.lease());
        assert!(poll_once(&mut behind).await, "the only pair is leased");
        drop(held);
        drop(within("the lease waiting behind", behind).await.unwrap());
        infer_ok(&pool).await;
        infer_ok(&pool).await;
    });
}

#[test]
fn two_forgotten_waiters_in_a_row_hold_up_nothing_for_good() {
    let _g = lock();
    let pool = one_pair_pool(shared_runtime());
    tokio().block_on(async {
        let held = pool.lease().await.unwrap();
        for _ in 0..2 {
            let mut waiting = Box::pin(pool.lease());
            assert!(poll_once(&mut waiting).await, "the only pair is leased");
            std::mem::forget(waiting);
        }
        let mut behind = Box::pin(pool.lease());
        assert!(poll_once(&mut behind).await, "the only pair is leased");
        // Handed to the first forgotten one, watched by the second forgotten one: the
        // next request to arrive takes it; giving it back wakes the one behind.
        drop(held);
        drop(
            within("a request arriving later", pool.lease())
                .await
                .unwrap(),
        );
        let lease = within("the lease behind two forgotten ones", behind)
            .await
            .unwrap();
        drop(lease);
        infer_ok(&pool).await;
    });
}
