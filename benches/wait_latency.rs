//! What waiting costs: synchronous `Model::execute` against schedule + `Request::wait`,
//! against the request awaited on a minimal single-thread executor and on a
//! current-thread tokio runtime, and `Model::execute` on the process's main thread, at
//! device times D = 100 us to 10 ms, on the in-process simulator with completion events.
//!
//! `cargo bench --bench wait_latency --features tokio` prints, per D (issue 21, item 4;
//! the bench requires feature `tokio`, which its `tokio` column measures):
//!
//! ```text
//! D_us=<D> sync_p50_us=<x> wait_p50_us=<x> future_p50_us=<x> tokio_p50_us=<x> sync_cpu_pct=<x> wait_cpu_pct=<x> future_cpu_pct=<x> tokio_cpu_pct=<x> main_sync_p50_us=<x> sim_end_lag_p50_us=<x> sim_end_lag_p99_us=<x> sim_spin_margin_us=<x>
//! ```
//!
//! `sim_end_lag`: how late the simulator's own threads reached the modelled ends of
//! all of that D's executions (every mode; `SimControl::clock_stats`): the part of each
//! figure the simulator decides, not the crate. Its waits spin `sim_spin_margin` before
//! each deadline, which counts in every mode's CPU.
//!
//! p50 over `REQUESTS` requests each (one at a time, after a warm-up). `sync` runs on a
//! thread with a 16 MiB stack, `main_sync` on the main thread (8 MiB: it calls libnrt
//! directly under the 6 MiB rule), the others on the main thread too. `future` is the
//! generic path (the crate's event thread wakes the executor); `tokio` awaits the same
//! future on a current-thread tokio runtime, through the tokio-native path (feature
//! `tokio`: the runtime's reactor is woken by the eventfd, no crate thread). CPU = CPU time of the
//! whole process (the simulator's worker threads included, in every mode alike) / wall
//! time during that mode's requests: compare the modes with each other, not with zero.
//! Targets (issue 21): every async p50 within max(3 %, 30 us) of `sync_p50_us`, each
//! async CPU at most 3 percentage points above `sync_cpu_pct`, `main_sync` within 5 %
//! of `sync`.

use std::future::{Future, IntoFuture};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use neuron_rt::{ExecSets, Model, Runtime};
use nrt_sim::{DType, ModelBuilder, Op};

/// Requests measured per mode and device time.
const REQUESTS: usize = 150;
/// Requests run first and not measured.
const WARM_UP: usize = 10;

fn model(rt: &Runtime, device_time: Duration) -> Model {
    let bytes = ModelBuilder::new("identity")
        .input("x", DType::F32, &[256])
        .output("y", DType::F32, &[256])
        .op(Op::Identity {
            input: "x".into(),
            out: "y".into(),
        })
        .device_time(device_time)
        .build()
        .expect("model");
    rt.load_model_on(&bytes, 0).expect("load")
}

/// CPU time of the whole process so far.
fn process_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Wakes a parked thread: the whole executor.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `future` to completion on this thread, parking between polls.
fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// Latencies of `REQUESTS` runs of `one` (after the warm-up), and the process CPU share
/// during them.
fn measure(mut one: impl FnMut()) -> (Vec<Duration>, f64) {
    for _ in 0..WARM_UP {
        one();
    }
    let mut latencies = Vec::with_capacity(REQUESTS);
    let (cpu0, wall0) = (process_cpu(), Instant::now());
    for _ in 0..REQUESTS {
        let start = Instant::now();
        one();
        latencies.push(start.elapsed());
    }
    let cpu = (process_cpu() - cpu0).as_secs_f64() / wall0.elapsed().as_secs_f64();
    latencies.sort_unstable();
    (latencies, cpu * 100.0)
}

fn p50_us(sorted: &[Duration]) -> f64 {
    sorted[sorted.len() / 2].as_secs_f64() * 1e6
}

fn main() {
    // `cargo test --benches` runs bench binaries with `--bench` absent: keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        println!("wait_latency: run with `cargo bench --bench wait_latency --features tokio`");
        return;
    }
    let rt = Runtime::builder()
        .library(nrt_sim::library())
        .build()
        .expect("runtime on the in-process simulator");
    assert!(
        rt.capabilities()
            .contains(neuron_rt::Capabilities::ASYNC_EVENTS),
        "the simulator should emulate a runtime with completion events"
    );
    let unit = rt.compute_unit(0).expect("compute unit");
    // With its IO driver: the native path registers eventfds with its reactor.
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("tokio runtime");
    let sim = nrt_sim::SimControl::new(nrt_sim::library()).expect("nrt-sim");
    for d_us in [100u64, 500, 2000, 10_000] {
        let model = model(&rt, Duration::from_micros(d_us));
        sim.clock_stats(true);
        let mut sets: Option<ExecSets> = Some((
            model.allocate_inputs().expect("inputs"),
            model.allocate_outputs().expect("outputs"),
        ));
        // On a 16 MiB thread: the reference every other mode is compared with.
        let ((sync, sync_cpu), back) = std::thread::scope(|s| {
            std::thread::Builder::new()
                .name("wait-latency-sync".into())
                .stack_size(16 << 20)
                .spawn_scoped(s, || {
                    let mut sets = sets.take().expect("sets");
                    let measured = measure(|| {
                        let (inputs, outputs) = &mut sets;
                        model.execute(inputs, outputs).expect("execute");
                    });
                    (measured, sets)
                })
                .expect("sync thread")
                .join()
                .expect("sync mode")
        });
        sets = Some(back);
        let (main_sync, _) = measure(|| {
            let (inputs, outputs) = sets.as_mut().expect("sets");
            model.execute(inputs, outputs).expect("execute");
        });
        let (wait, wait_cpu) = measure(|| {
            let (i, o) = sets.take().expect("sets");
            let request = unit.execute(&model, i, o).expect("schedule");
            sets = Some(request.wait().expect("wait"));
        });
        let (future, future_cpu) = measure(|| {
            let (i, o) = sets.take().expect("sets");
            let request = unit.execute(&model, i, o).expect("schedule");
            sets = Some(block_on(request.into_future()).expect("await"));
        });
        let (on_tokio, tokio_cpu) = measure(|| {
            let (i, o) = sets.take().expect("sets");
            let request = unit.execute(&model, i, o).expect("schedule");
            sets = Some(tokio.block_on(request.into_future()).expect("await"));
        });
        let lag = sim.clock_stats(true);
        println!(
            "D_us={d_us} sync_p50_us={:.1} wait_p50_us={:.1} future_p50_us={:.1} tokio_p50_us={:.1} sync_cpu_pct={:.2} wait_cpu_pct={:.2} future_cpu_pct={:.2} tokio_cpu_pct={:.2} main_sync_p50_us={:.1} sim_end_lag_p50_us={:.1} sim_end_lag_p99_us={:.1} sim_spin_margin_us={:.1}",
            p50_us(&sync),
            p50_us(&wait),
            p50_us(&future),
            p50_us(&on_tokio),
            sync_cpu,
            wait_cpu,
            future_cpu,
            tokio_cpu,
            p50_us(&main_sync),
            lag.end_lag_p50.as_secs_f64() * 1e6,
            lag.end_lag_p99.as_secs_f64() * 1e6,
            lag.spin_margin.as_secs_f64() * 1e6,
        );
    }
}
