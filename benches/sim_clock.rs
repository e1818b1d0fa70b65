//! The simulated device's clock, measured on the raw C path: how long one synchronous
//! `nrt_execute` of a model with device time D lasts, called through the simulator's
//! function table (no wrapper), on a thread with a 64 MiB stack, one call at a time.
//!
//! `cargo bench --bench sim_clock` prints one line per D, then one per launch cost:
//!
//! ```text
//! D_us=<D> runs=<n> p50_us=<x> p99_us=<x> err_p50_us=<x> err_p99_us=<x> err_p50_pct=<x> err_p99_pct=<x> ok=<yes|NO> sim_end_lag_p50_us=<x> sim_end_lag_p99_us=<x> spin_margin_us=<x>
//! launch_us=<L> D_us=<D> sync_gap_p50_us=<x> sync_gap_min_us=<x> async_gap_p50_us=<x> async_gap_max_us=<x>
//! machine spin_window_us=<D> windows=<n> stall_p50_us=<x> stall_p99_us=<x>
//! ```
//!
//! `err` = duration - D. Target (issue 30): |err| within max(1 %, 5 us) at the p50 and
//! max(3 %, 20 us) at the p99 on a quiet machine (`ok` says whether this run met it).
//! `sim_end_lag` is the simulator's own report of how late its threads reached each
//! execution's modelled end (`SimControl::clock_stats`). The `launch_us` lines read the
//! gaps between consecutive executions on the device timeline (the system trace's
//! `nc_exec_running` spans, which are the model's, not wall time): back-to-back
//! synchronous calls leave at least L between executions, requests queued ahead none.
//!
//! The `machine` lines are the floor no simulator can beat: a thread that only spins on
//! the clock for D, and the longest the machine kept it from running within each window
//! (consecutive clock reads apart). On the 2-vCPU dev VM, idle, about one 500 us window
//! in a hundred holds a stall of 20-35 us (the hypervisor or host interrupts), so the
//! p99 of an execution of D near 500 us is decided by the machine, not the simulator.

use std::ffi::c_void;
use std::ptr;
use std::time::{Duration, Instant};

use neuron_rt::nrt_sys::{self as sys, NrtFns};
use neuron_rt::{NC_EXEC_RUNNING, Runtime, SysTraceConfig};
use nrt_sim::{DType, ModelBuilder, Op, SimControl};

fn ok(status: sys::NRT_STATUS, what: &str) {
    assert_eq!(status, sys::NRT_SUCCESS, "{what} failed");
}

fn model_bytes(d: Duration) -> Vec<u8> {
    ModelBuilder::new("identity")
        .input("x", DType::F32, &[256])
        .output("y", DType::F32, &[256])
        .op(Op::Identity {
            input: "x".into(),
            out: "y".into(),
        })
        .device_time(d)
        .build()
        .expect("model")
}

/// A model and its bound sets, made with raw calls on the open runtime.
struct Raw {
    fns: &'static NrtFns,
    model: *mut sys::nrt_model_t,
    sets: [*mut c_void; 2],
    tensors: Vec<*mut sys::nrt_tensor_t>,
}

impl Raw {
    fn new(fns: &'static NrtFns, neff: &[u8]) -> Raw {
        let mut model = ptr::null_mut();
        let mut sets = [ptr::null_mut(); 2];
        let mut tensors = Vec::new();
        // SAFETY: plain libnrt calls with valid pointers on an initialised runtime; every
        // handle made here is freed in Drop, after its last use.
        unsafe {
            ok(
                (fns.nrt_load.unwrap())(neff.as_ptr().cast(), neff.len(), 0, -1, &mut model),
                "nrt_load",
            );
            for set in &mut sets {
                ok(
                    (fns.nrt_allocate_tensor_set.unwrap())(set),
                    "nrt_allocate_tensor_set",
                );
            }
            for (set, name) in [(0, c"x"), (1, c"y")] {
                let mut t = ptr::null_mut();
                ok(
                    (fns.nrt_tensor_allocate.unwrap())(
                        sys::NRT_TENSOR_PLACEMENT_DEVICE,
                        0,
                        1024,
                        name.as_ptr(),
                        &mut t,
                    ),
                    "nrt_tensor_allocate",
                );
                ok(
                    (fns.nrt_add_tensor_to_tensor_set.unwrap())(sets[set], name.as_ptr(), t),
                    "nrt_add_tensor_to_tensor_set",
                );
                tensors.push(t);
            }
        }
        Raw {
            fns,
            model,
            sets,
            tensors,
        }
    }

    fn execute(&self) {
        // SAFETY: live handles, every model tensor bound with its size.
        let s = unsafe { (self.fns.nrt_execute.unwrap())(self.model, self.sets[0], self.sets[1]) };
        ok(s, "nrt_execute");
    }

    /// Schedules `n` executions at once on the COMPUTE queue (at most its depth) and
    /// waits for them all.
    fn execute_queued(&self, n: usize) {
        let mut ret = vec![0 as sys::NRT_STATUS; n];
        let mut last = 0;
        for r in &mut ret {
            let mut seq = 0;
            // SAFETY: live handles; `ret` outlives the requests (waited for below).
            let s = unsafe {
                (self.fns.nrta_execute_schedule.unwrap())(
                    self.model,
                    self.sets[0],
                    self.sets[1],
                    0,
                    r,
                    &mut seq,
                )
            };
            ok(s, "nrta_execute_schedule");
            last = seq;
        }
        let mut done = false;
        while !done {
            // SAFETY: `last` was issued by the library; `done` is a valid out-pointer.
            ok(
                unsafe { (self.fns.nrta_is_completed.unwrap())(last, &mut done) },
                "nrta_is_completed",
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        for r in &ret {
            // SAFETY: every request completed (in order, the last one observed).
            ok(unsafe { ptr::read_volatile(r) }, "execution");
        }
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        // SAFETY: handles made in `new`, each freed once, sets before their tensors.
        unsafe {
            for set in &mut self.sets {
                (self.fns.nrt_destroy_tensor_set.unwrap())(set);
            }
            for t in &mut self.tensors {
                (self.fns.nrt_tensor_free.unwrap())(t);
            }
            (self.fns.nrt_unload.unwrap())(self.model);
        }
    }
}

fn pct(sorted: &[f64], p: usize) -> f64 {
    sorted[((sorted.len() - 1) * p) / 100]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn clock_line(fns: &'static NrtFns, sim: &SimControl, d_us: u64) {
    let d = Duration::from_micros(d_us);
    let raw = Raw::new(fns, &model_bytes(d));
    // About 2 s per D, at least 200 runs.
    let runs = (2_000_000 / d_us).clamp(200, 5000) as usize;
    for _ in 0..20 {
        raw.execute();
    }
    sim.clock_stats(true);
    let mut took = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        raw.execute();
        took.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let lag = sim.clock_stats(true);
    let took = sorted(took);
    let err = sorted(took.iter().map(|t| (t - d_us as f64).abs()).collect());
    let (e50, e99) = (pct(&err, 50), pct(&err, 99));
    let d = d_us as f64;
    let met = e50 <= (0.01 * d).max(5.0) && e99 <= (0.03 * d).max(20.0);
    println!(
        "D_us={d_us} runs={runs} p50_us={:.1} p99_us={:.1} err_p50_us={e50:.1} err_p99_us={e99:.1} err_p50_pct={:.2} err_p99_pct={:.2} ok={} sim_end_lag_p50_us={:.1} sim_end_lag_p99_us={:.1} spin_margin_us={:.1}",
        pct(&took, 50),
        pct(&took, 99),
        100.0 * e50 / d,
        100.0 * e99 / d,
        if met { "yes" } else { "NO" },
        lag.end_lag_p50.as_secs_f64() * 1e6,
        lag.end_lag_p99.as_secs_f64() * 1e6,
        lag.spin_margin.as_secs_f64() * 1e6,
    );
}

/// Gaps between consecutive `nc_exec_running` spans (start minus previous end), in us.
fn gaps(events: &[neuron_rt::TraceEvent]) -> Vec<f64> {
    let mut spans: Vec<(u64, u64)> = events
        .iter()
        .filter(|e| e.event_type == NC_EXEC_RUNNING)
        .filter_map(|e| Some((e.timestamp_ns?, e.timestamp_ns? + e.duration_ns?)))
        .collect();
    spans.sort_unstable();
    spans
        .windows(2)
        .map(|w| (w[1].0 as f64 - w[0].1 as f64) / 1e3)
        .collect()
}

fn launch_line(rt: &Runtime, fns: &'static NrtFns, sim: &SimControl, l_us: u64) {
    const D_US: u64 = 1000;
    const RUNS: usize = 50;
    sim.set_launch_cost(Duration::from_micros(l_us))
        .expect("launch cost");
    let raw = Raw::new(fns, &model_bytes(Duration::from_micros(D_US)));
    raw.execute();
    let trace = rt.sys_trace(&SysTraceConfig::new()).expect("trace");
    for _ in 0..RUNS {
        raw.execute();
    }
    let sync = sorted(gaps(&trace.fetch().expect("fetch")));
    // Batches of the queue's default depth (8), gaps within each batch.
    let mut queued = Vec::new();
    for _ in 0..RUNS / 8 {
        raw.execute_queued(8);
        queued.extend(gaps(&trace.fetch().expect("fetch")));
    }
    let queued = sorted(queued);
    drop(trace);
    sim.set_launch_cost(Duration::ZERO).expect("launch cost");
    println!(
        "launch_us={l_us} D_us={D_US} sync_gap_p50_us={:.1} sync_gap_min_us={:.1} async_gap_p50_us={:.1} async_gap_max_us={:.1}",
        pct(&sync, 50),
        sync[0],
        pct(&queued, 50),
        queued[queued.len() - 1],
    );
}

/// The longest gap between consecutive clock reads of a thread spinning for `d_us`, over
/// many windows: what the machine alone takes from a thread that never sleeps.
fn machine_line(d_us: u64) {
    let windows = (1_000_000 / d_us).clamp(100, 4000) as usize;
    let d = Duration::from_micros(d_us);
    let mut stalls = Vec::with_capacity(windows);
    for _ in 0..windows {
        let start = Instant::now();
        let (mut prev, mut worst) = (start, Duration::ZERO);
        loop {
            let now = Instant::now();
            worst = worst.max(now - prev);
            prev = now;
            if now - start >= d {
                break;
            }
        }
        stalls.push(worst.as_secs_f64() * 1e6);
        // Between windows, sleep as the simulator's threads do between executions.
        std::thread::sleep(Duration::from_micros(50));
    }
    let stalls = sorted(stalls);
    println!(
        "machine spin_window_us={d_us} windows={windows} stall_p50_us={:.1} stall_p99_us={:.1}",
        pct(&stalls, 50),
        pct(&stalls, 99),
    );
}

fn run() {
    let lib = nrt_sim::library();
    let rt = Runtime::builder().library(lib).build().expect("runtime");
    let sim = SimControl::new(lib).expect("nrt-sim");
    for d_us in [100, 500, 2000, 10_000] {
        clock_line(lib.fns(), &sim, d_us);
    }
    for l_us in [0, 180] {
        launch_line(&rt, lib.fns(), &sim, l_us);
    }
    for d_us in [100, 500, 2000] {
        machine_line(d_us);
    }
}

fn main() {
    // `cargo test --benches` runs bench binaries with `--bench` absent: keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        println!("sim_clock: run with `cargo bench --bench sim_clock`");
        return;
    }
    std::thread::Builder::new()
        .name("sim-clock".into())
        .stack_size(64 << 20)
        .spawn(run)
        .expect("benchmark thread")
        .join()
        .expect("benchmark thread panicked");
}
