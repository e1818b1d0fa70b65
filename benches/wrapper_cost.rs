//! Wrapper cost: the safe API against raw `nrt-sys` calls through the same function
//! table of the same simulator (in process), for execute, tensor write and read, and
//! async schedule + wait. Target: safe / raw median ratio <= 1.05. Both sides run on a
//! thread with a 64 MiB stack (see `main`).
//!
//! `cargo bench --bench wrapper_cost`: criterion's report per group (`safe`, `raw`), then
//! a table of medians and ratios from an interleaved pass (robust to load drift). The
//! benchmark thread stays on one CPU once the simulator's workers run (`stay_on_this_cpu`).
//!
//! With feature `tracing` (`cargo bench --bench wrapper_cost --features tracing`) it ends
//! with the cost of the spans: safe `execute` (which opens a `neuron_rt.execute` span)
//! against raw `nrt_execute`, interleaved, first with no subscriber, then with one that
//! drops everything (a `Registry` with a layer whose `enabled` is false), each printed as
//! `tracing_cost subscriber=<none|drop-all> ratio=<safe / raw>`. Targets: 1.02 and 1.05.

use std::ffi::c_void;
use std::hint::black_box;
use std::ptr;
use std::time::{Duration, Instant};

use criterion::Criterion;
use neuron_rt::nrt_sys::{self as sys, NrtFns};
use neuron_rt::{ExecSets, ExecUnit, Model, Placement, Runtime, Tensor};
use nrt_sim::ModelBuilder;

const BYTES: usize = 4096;

fn model_bytes() -> Vec<u8> {
    ModelBuilder::add_example(&[2, 3]).build().expect("model")
}

fn ok(status: sys::NRT_STATUS, what: &str) {
    assert_eq!(status, sys::NRT_SUCCESS, "{what} failed");
}

/// Handles made with raw calls, on the runtime the safe `Runtime` initialised.
struct Raw {
    fns: &'static NrtFns,
    model: *mut sys::nrt_model_t,
    inputs: *mut c_void,
    outputs: *mut c_void,
    tensor: *mut sys::nrt_tensor_t,
    set_tensors: Vec<*mut sys::nrt_tensor_t>,
}

impl Raw {
    fn new(fns: &'static NrtFns, neff: &[u8]) -> Raw {
        let mut model = ptr::null_mut();
        // SAFETY: plain libnrt calls with valid pointers on an initialised runtime; every
        // handle made here is freed in Drop, after its last use.
        unsafe {
            ok(
                (fns.nrt_load.unwrap())(neff.as_ptr().cast(), neff.len(), 0, -1, &mut model),
                "nrt_load",
            );
            let mut sets = [ptr::null_mut(); 2];
            let mut set_tensors = Vec::new();
            for set in &mut sets {
                ok(
                    (fns.nrt_allocate_tensor_set.unwrap())(set),
                    "nrt_allocate_tensor_set",
                );
            }
            for (set, name) in [(0, c"a"), (0, c"b"), (1, c"out")] {
                let mut t = ptr::null_mut();
                ok(
                    (fns.nrt_tensor_allocate.unwrap())(
                        sys::NRT_TENSOR_PLACEMENT_DEVICE,
                        0,
                        24,
                        name.as_ptr(),
                        &mut t,
                    ),
                    "nrt_tensor_allocate",
                );
                ok(
                    (fns.nrt_add_tensor_to_tensor_set.unwrap())(sets[set], name.as_ptr(), t),
                    "nrt_add_tensor_to_tensor_set",
                );
                set_tensors.push(t);
            }
            let mut tensor = ptr::null_mut();
            ok(
                (fns.nrt_tensor_allocate.unwrap())(
                    sys::NRT_TENSOR_PLACEMENT_DEVICE,
                    0,
                    BYTES,
                    c"raw".as_ptr(),
                    &mut tensor,
                ),
                "nrt_tensor_allocate",
            );
            Raw {
                fns,
                model,
                inputs: sets[0],
                outputs: sets[1],
                tensor,
                set_tensors,
            }
        }
    }

    fn execute(&self) {
        // SAFETY: live handles, every model tensor bound with its size.
        let s = unsafe { (self.fns.nrt_execute.unwrap())(self.model, self.inputs, self.outputs) };
        ok(s, "nrt_execute");
    }

    fn write(&self, data: &[u8]) {
        // SAFETY: live tensor; `data` is valid for its length, which fits the tensor.
        let s = unsafe {
            (self.fns.nrt_tensor_write.unwrap())(self.tensor, data.as_ptr().cast(), 0, data.len())
        };
        ok(s, "nrt_tensor_write");
    }

    fn read(&self, data: &mut [u8]) {
        // SAFETY: live tensor; `data` is valid for writes of its length, which fits.
        let s = unsafe {
            (self.fns.nrt_tensor_read.unwrap())(
                self.tensor,
                data.as_mut_ptr().cast(),
                0,
                data.len(),
            )
        };
        ok(s, "nrt_tensor_read");
    }

    /// Spins on `nrta_is_completed`: the simplest raw wait.
    fn wait(&self, seq: u64) {
        let mut done = false;
        while !done {
            // SAFETY: `seq` was issued by the library; `done` is a valid out-pointer.
            let s = unsafe { (self.fns.nrta_is_completed.unwrap())(seq, &mut done) };
            ok(s, "nrta_is_completed");
            std::hint::spin_loop();
        }
    }

    fn execute_async(&self) {
        let mut ret: sys::NRT_STATUS = 0;
        let mut seq = 0;
        // SAFETY: live handles; `ret` and `seq` outlive the request (waited for below,
        // and only read after completion).
        let s = unsafe {
            (self.fns.nrta_execute_schedule.unwrap())(
                self.model,
                self.inputs,
                self.outputs,
                0,
                &mut ret,
                &mut seq,
            )
        };
        ok(s, "nrta_execute_schedule");
        self.wait(seq);
        // SAFETY: the request completed (observed above), so libnrt no longer writes it.
        ok(unsafe { ptr::read_volatile(&ret) }, "execution");
    }

    fn write_async(&self, data: &[u8]) {
        let mut ret: sys::NRT_STATUS = 0;
        let mut seq = 0;
        // SAFETY: `data`, `ret` and `seq` outlive the request, which is waited for below.
        let s = unsafe {
            (self.fns.nrta_tensor_write.unwrap())(
                self.tensor,
                data.as_ptr().cast(),
                0,
                data.len() as u64,
                0,
                0,
                &mut ret,
                &mut seq,
            )
        };
        ok(s, "nrta_tensor_write");
        self.wait(seq);
        // SAFETY: as in `execute_async`.
        ok(unsafe { ptr::read_volatile(&ret) }, "write");
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        // SAFETY: handles made in `new`, each freed once, sets before their tensors.
        unsafe {
            (self.fns.nrt_destroy_tensor_set.unwrap())(&mut self.inputs);
            (self.fns.nrt_destroy_tensor_set.unwrap())(&mut self.outputs);
            for t in &mut self.set_tensors {
                (self.fns.nrt_tensor_free.unwrap())(t);
            }
            (self.fns.nrt_tensor_free.unwrap())(&mut self.tensor);
            (self.fns.nrt_unload.unwrap())(self.model);
        }
    }
}

/// Everything the benchmarks use, made once (one runtime per process).
struct Setup {
    _rt: Runtime,
    model: Model,
    sets: Option<ExecSets>,
    tensor: Tensor,
    raw: Raw,
    compute: ExecUnit,
    tensor_op: ExecUnit,
    data: Vec<u8>,
    out: Vec<u8>,
    buffer: Option<Vec<u8>>,
}

impl Setup {
    fn new() -> Setup {
        let lib = nrt_sim::library();
        let rt = Runtime::builder().library(lib).build().expect("runtime");
        let neff = model_bytes();
        let model = rt.load_model_on(&neff, 0).unwrap();
        let sets = Some((
            model.allocate_inputs().unwrap(),
            model.allocate_outputs().unwrap(),
        ));
        let tensor = rt
            .allocate_tensor(Placement::Device, Some(0), BYTES, "safe")
            .unwrap();
        let raw = Raw::new(lib.fns(), &neff);
        Setup {
            compute: rt.compute_unit(0).unwrap(),
            tensor_op: rt.tensor_op_unit(0, 0).unwrap(),
            _rt: rt,
            model,
            sets,
            tensor,
            raw,
            data: vec![0x5a; BYTES],
            out: vec![0; BYTES],
            buffer: Some(vec![0x5a; BYTES]),
        }
    }

    fn safe_execute(&mut self) {
        let (inputs, outputs) = self.sets.as_mut().unwrap();
        self.model.execute(inputs, outputs).unwrap();
    }

    fn safe_write(&mut self) {
        self.tensor.write(black_box(&self.data)).unwrap();
    }

    fn safe_read(&mut self) {
        self.tensor.read(black_box(&mut self.out)).unwrap();
    }

    fn safe_execute_async(&mut self) {
        let (i, o) = self.sets.take().unwrap();
        self.sets = Some(
            self.compute
                .execute(&self.model, i, o)
                .unwrap()
                .wait()
                .unwrap(),
        );
    }

    fn safe_write_async(&mut self) {
        let data = self.buffer.take().unwrap();
        let back = self.tensor_op.write(&self.tensor, 0, data).unwrap().wait();
        self.buffer = Some(back.unwrap());
    }

    fn raw_execute(&mut self) {
        self.raw.execute();
    }

    fn raw_write(&mut self) {
        self.raw.write(black_box(&self.data));
    }

    fn raw_read(&mut self) {
        self.raw.read(black_box(&mut self.out));
    }

    fn raw_execute_async(&mut self) {
        self.raw.execute_async();
    }

    fn raw_write_async(&mut self) {
        // The bytes the safe side moves (its buffer, between its requests), so both copy
        // from the same memory.
        let data = self
            .buffer
            .as_deref()
            .expect("buffer is back after each request");
        self.raw.write_async(black_box(data));
    }
}

type Case = fn(&mut Setup);

/// (group, safe, raw, calls per timed batch in the interleaved pass, batches per side).
/// Async cases (batch 1) time single calls, each after [`SETTLE`], alternating sides.
const CASES: [(&str, Case, Case, u32, usize); 5] = [
    ("execute", Setup::safe_execute, Setup::raw_execute, 200, 101),
    (
        "tensor_write_4k",
        Setup::safe_write,
        Setup::raw_write,
        1000,
        101,
    ),
    (
        "tensor_read_4k",
        Setup::safe_read,
        Setup::raw_read,
        1000,
        101,
    ),
    (
        "schedule_wait_execute",
        Setup::safe_execute_async,
        Setup::raw_execute_async,
        1,
        1001,
    ),
    (
        "schedule_wait_write_4k",
        Setup::safe_write_async,
        Setup::raw_write_async,
        1,
        1001,
    ),
];

/// Untimed pause before each timed async call, long enough for the simulator's queue
/// worker to go back to sleep. Without it, whether a request finds the worker still
/// awake (about 1.5 us to completion) or asleep (about 20 us: a thread wake-up) depends
/// on how quickly the previous iteration came back, which turns a few hundred
/// nanoseconds of difference into a bimodal, unstable median. With it, every call pays
/// one wake-up, as a request to an idle device would.
const SETTLE: Duration = Duration::from_micros(200);

/// Times `iters` calls of `op`, one at a time after [`SETTLE`] each (async cases), or
/// back to back (sync cases, `settle == false`).
fn timed(setup: &mut Setup, op: Case, iters: u64, settle: bool) -> Duration {
    if !settle {
        let start = Instant::now();
        for _ in 0..iters {
            op(setup);
        }
        return start.elapsed();
    }
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        std::thread::sleep(SETTLE);
        let start = Instant::now();
        op(setup);
        total += start.elapsed();
    }
    total
}

fn bench(c: &mut Criterion, setup: &mut Setup) {
    for (group, safe, raw, batch, _) in CASES {
        let settle = batch == 1;
        let mut g = c.benchmark_group(group);
        g.bench_function("safe", |b| {
            b.iter_custom(|iters| timed(setup, safe, iters, settle))
        });
        g.bench_function("raw", |b| {
            b.iter_custom(|iters| timed(setup, raw, iters, settle))
        });
        g.finish();
    }
}

/// Safe and raw batches alternate (in both orders), so drift in machine load hits both
/// sides alike; prints the median time per call of each and their ratio.
fn interleaved(setup: &mut Setup) {
    println!("\ninterleaved medians (safe and raw batches alternating):");
    println!(
        "{:<24} {:>12} {:>12} {:>8} {:>16}",
        "operation", "safe", "raw", "ratio", "batches x calls"
    );
    for (group, safe, raw, batch, rounds) in CASES {
        let (safe_t, raw_t) = interleaved_medians(setup, safe, raw, batch, rounds);
        println!(
            "{group:<24} {:>12?} {:>12?} {:>8.3} {:>10} x {batch}",
            safe_t,
            raw_t,
            safe_t.as_secs_f64() / raw_t.as_secs_f64(),
            rounds
        );
    }
}

/// The median time per call of `safe` and of `raw` over `rounds` alternating batches of
/// `batch` back-to-back calls.
fn interleaved_medians(
    setup: &mut Setup,
    safe: Case,
    raw: Case,
    batch: u32,
    rounds: usize,
) -> (Duration, Duration) {
    let mut times = [Vec::with_capacity(rounds), Vec::with_capacity(rounds)];
    for round in 0..rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for side in order {
            let op = if side == 0 { safe } else { raw };
            let elapsed = timed(setup, op, u64::from(batch), batch == 1);
            times[side].push(elapsed / batch);
        }
    }
    let [safe_t, raw_t] = times.map(|mut t| {
        t.sort_unstable();
        t[rounds / 2]
    });
    (safe_t, raw_t)
}

/// A layer that enables nothing: with it, every span and event is dropped at its
/// callsite.
#[cfg(feature = "tracing")]
struct DropAll;

#[cfg(feature = "tracing")]
impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for DropAll {
    fn enabled(
        &self,
        _: &tracing::Metadata<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        false
    }
}

/// `tracing_cost subscriber=none|drop-all ratio=`: safe `execute` against raw
/// `nrt_execute`, interleaved (as the table's `execute` row), without a subscriber and
/// then with the drop-all one installed as the global default.
#[cfg(feature = "tracing")]
fn tracing_cost(setup: &mut Setup) {
    use tracing_subscriber::layer::SubscriberExt;

    let ratio = |setup: &mut Setup| {
        let (safe, raw) =
            interleaved_medians(setup, Setup::safe_execute, Setup::raw_execute, 200, 201);
        safe.as_secs_f64() / raw.as_secs_f64()
    };
    println!();
    println!("tracing_cost subscriber=none ratio={:.3}", ratio(setup));
    let subscriber = tracing_subscriber::registry().with(DropAll);
    tracing::subscriber::set_global_default(subscriber).expect("the first subscriber");
    println!("tracing_cost subscriber=drop-all ratio={:.3}", ratio(setup));
}

/// Keeps the calling thread on the CPU it is running on (Linux; elsewhere, or if that
/// fails, it stays free). Why: a request's latency here is mostly the wake-up of the
/// simulator's queue worker, and where the scheduler puts the two threads decides
/// between a ~5.5 us and a ~12 us wake-up, in proportions that drift during a run (seen
/// on the 2-vCPU VM: the same binary's medians moved between the two from run to run,
/// and separate safe-only and raw-only runs differed by up to 30% either way). Pinning
/// the caller, not the workers, leaves them one placement, the same for both sides, so
/// the ratio measures the wrapper rather than the placement.
fn stay_on_this_cpu() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sched_getcpu takes no arguments; a negative result is an error.
        let cpu = unsafe { libc::sched_getcpu() };
        let Ok(cpu) = usize::try_from(cpu) else {
            return;
        };
        if cpu >= 8 * size_of::<libc::cpu_set_t>() {
            return;
        }
        // SAFETY: cpu_set_t is plain data, valid when zeroed (the empty set).
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `cpu` is below the set's size in bits (checked above).
        unsafe { libc::CPU_SET(cpu, &mut set) };
        // SAFETY: `set` is a live cpu_set_t of the size passed; pid 0 is this thread.
        let status = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
        if status != 0 {
            eprintln!(
                "wrapper_cost: could not keep the benchmark thread on CPU {cpu}; timings may be noisier"
            );
        }
    }
}

fn main() {
    // Everything runs on a thread with a big stack: libnrt's nrt_execute needs several MiB
    // of it, so the safe `Model::execute` hands calls from short-stack threads (the main
    // thread included) to a helper thread, as its docs say; programs that execute often
    // use big-stack threads, which is the path whose wrapper cost this measures.
    let runner = std::thread::Builder::new()
        .name("wrapper-cost".into())
        .stack_size(64 << 20)
        .spawn(run)
        .expect("benchmark thread");
    runner.join().expect("benchmark thread panicked");
}

fn run() {
    let mut setup = Setup::new();
    // One request of each async case first: the simulator starts a queue's worker thread
    // at its first request, and that thread keeps every CPU; only then is this thread kept
    // on its CPU (see `stay_on_this_cpu`).
    for (_, safe, raw, _, _) in CASES {
        safe(&mut setup);
        raw(&mut setup);
    }
    stay_on_this_cpu();
    let mut c = Criterion::default()
        .sample_size(40)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500))
        .configure_from_args();
    bench(&mut c, &mut setup);
    c.final_summary();
    // Only when benchmarking (`cargo bench` passes --bench), not in test mode.
    if std::env::args().any(|a| a == "--bench") {
        interleaved(&mut setup);
        #[cfg(feature = "tracing")]
        tracing_cost(&mut setup);
    }
}
