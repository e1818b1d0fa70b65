//! Random sequences of safe-API calls decoded from bytes, run on a simulator: shared by
//! the property test (benches/tests/api_sequences.rs, on the dlopen'ed simulator) and the fuzz
//! target `api_sequences` (fuzz/, on the in-process one).
//!
//! Every op checks what it can: an out-of-bounds range must fail with
//! `Error::OutOfBounds`, an in-bounds sync access to a live tensor must succeed, and no
//! op may panic. [`run`] drops everything at the end; the caller then checks that the
//! simulator's counters are back at zero.

use std::future::Future;
use std::mem;
use std::task::{Context, Poll, Waker};

use neuron_rt::nrt_sys::Library;
use neuron_rt::{Error, ExecSets, ExecUnit, Model, Placement, Request, Runtime, Tensor, TensorSet};

/// Reads op arguments from the input; 0 once it is used up.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    /// An index below `n` (`n` > 0).
    fn index(&mut self, n: usize) -> usize {
        usize::from(self.u8()) % n
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Panics unless `result` is `Err(Error::OutOfBounds)` naming `tensor`.
fn expect_out_of_bounds<T>(result: Result<T, Error>, tensor: &Tensor, what: &str) {
    match result {
        Err(Error::OutOfBounds { tensor: name, .. }) => assert_eq!(name, tensor.name()),
        Err(other) => panic!(
            "{what} on `{}`: expected OutOfBounds, got {other}",
            tensor.name()
        ),
        Ok(_) => panic!("{what} on `{}` out of bounds succeeded", tensor.name()),
    }
}

fn fits(tensor: &Tensor, offset: usize, len: usize) -> bool {
    offset + len <= tensor.size()
}

/// The simulated model: `out = a + b` on f32 [2, 3].
fn add_model() -> Vec<u8> {
    use nrt_sim::ModelBuilder;
    ModelBuilder::add_example(&[2, 3])
        .build()
        .expect("add model")
}

/// Everything the sequence created, dropped in an order chosen by the input.
#[derive(Default)]
struct State {
    tensors: Vec<Tensor>,
    sets: Vec<TensorSet>,
    model: Option<Model>,
    units: Vec<ExecUnit>,
    executions: Vec<Request<ExecSets>>,
    transfers: Vec<Request<Vec<u8>>>,
}

/// Runs the ops `bytes` encode on a fresh runtime over `lib`, then drops everything.
///
/// # Panics
///
/// When an op's result contradicts the API's contract (the property being checked), or
/// when no runtime can start on `lib`.
pub fn run(lib: &'static Library, bytes: &[u8]) {
    let rt = Runtime::builder().library(lib).build().expect("runtime");
    let mut input = Bytes(bytes);
    let mut st = State::default();
    for unit in [rt.compute_unit(0), rt.tensor_op_unit(0, 0)] {
        st.units.extend(unit.ok());
    }
    let mut steps = 0;
    while !input.is_empty() && steps < 64 {
        steps += 1;
        step(&rt, &mut st, &mut input);
    }
    // Drop order from the input too: requests first or last.
    if input.u8().is_multiple_of(2) {
        drop(mem::take(&mut st.executions));
        drop(mem::take(&mut st.transfers));
    }
    drop(st);
    drop(rt);
    // Requests dropped while running keep the runtime open until they completed; the
    // contract is that it then closes (checked by starting the next one).
    let started = std::time::Instant::now();
    loop {
        match Runtime::builder().library(lib).build() {
            Ok(next) => break drop(next),
            Err(neuron_rt::Error::AlreadyInitialized)
                if started.elapsed() < std::time::Duration::from_secs(30) =>
            {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(e) => panic!("the runtime did not close after everything was dropped: {e}"),
        }
    }
}

fn step(rt: &Runtime, st: &mut State, input: &mut Bytes<'_>) {
    let op = input.u8() % 18;
    // A tensor for ops that need one (None: the op is skipped).
    let pick = |st: &State, input: &mut Bytes<'_>| {
        (!st.tensors.is_empty()).then(|| st.tensors[input.index(st.tensors.len())].clone())
    };
    match op {
        0 => {
            let placement = match input.u8() % 3 {
                0 => Placement::Device,
                1 => Placement::Host,
                _ => Placement::Virtual,
            };
            // Cores 0 and 1 exist on the simulator; 2 does not.
            let core = match input.u8() % 4 {
                3 => None,
                c => Some(u32::from(c)),
            };
            let size = usize::from(input.u8()) + 1;
            let name = format!("t{}", st.tensors.len());
            match rt.allocate_tensor(placement, core, size, &name) {
                Ok(t) => st.tensors.push(t),
                Err(Error::InvalidArgument { .. }) => {
                    assert!(placement == Placement::Device && core.is_none())
                }
                Err(Error::Nrt { .. }) => assert!(core == Some(3) || core == Some(2)),
                // Removed from runtime 2.32 (the simulator emulates 2.34 by default).
                Err(Error::Unsupported { .. }) => assert_eq!(placement, Placement::Virtual),
                Err(e) => panic!("allocate {placement:?} {core:?} {size}: {e}"),
            }
        }
        1 | 2 => {
            let Some(t) = pick(st, input) else { return };
            let (offset, len) = (usize::from(input.u8()), usize::from(input.u8()));
            let result = if op == 1 {
                t.write_at(offset, &vec![op; len])
            } else {
                t.read_at(offset, &mut vec![0u8; len])
            };
            if fits(&t, offset, len) {
                result.unwrap_or_else(|e| panic!("in-bounds access: {e}"));
            } else {
                expect_out_of_bounds(result, &t, "access");
            }
        }
        3 => {
            let Some(t) = pick(st, input) else { return };
            let (offset, len) = (usize::from(input.u8()), usize::from(input.u8()));
            let result = t.slice(offset, len, "slice");
            if fits(&t, offset, len) {
                // libnrt may refuse an empty slice; anything else must work.
                match result {
                    Ok(s) => st.tensors.push(s),
                    Err(e) => assert!(len == 0, "in-bounds slice: {e}"),
                }
            } else {
                expect_out_of_bounds(result, &t, "slice");
            }
        }
        4 => {
            let Some(t) = pick(st, input) else { return };
            let (offset, len) = (usize::from(input.u8()), usize::from(input.u8()));
            let result = t.fill_range(offset, len, 7);
            if fits(&t, offset, len) {
                result.unwrap_or_else(|e| panic!("in-bounds fill: {e}"));
            } else {
                expect_out_of_bounds(result, &t, "fill");
            }
        }
        5 => {
            let (Some(src), Some(dst)) = (pick(st, input), pick(st, input)) else {
                return;
            };
            let (so, d_o, len) = (
                usize::from(input.u8()),
                usize::from(input.u8()),
                usize::from(input.u8()),
            );
            let result = dst.copy_range_from(&src, so, d_o, len);
            let cross_core = src.placement() == Placement::Device
                && dst.placement() == Placement::Device
                && src.core() != dst.core();
            match result {
                Err(Error::WrongCore { .. }) => assert!(cross_core),
                Err(Error::OutOfBounds { .. }) => {
                    assert!(!fits(&src, so, len) || !fits(&dst, d_o, len))
                }
                // libnrt may refuse an empty or overlapping copy with a status.
                Err(Error::Nrt { .. }) => {}
                Err(e) => panic!("copy: {e}"),
                Ok(()) => assert!(fits(&src, so, len) && fits(&dst, d_o, len) && !cross_core),
            }
        }
        6 => {
            let Ok(mut set) = rt.tensor_set() else { return };
            if let Some(t) = pick(st, input) {
                let name = ["a", "b", "out", ""][input.index(4)];
                match set.insert(name, &t) {
                    Ok(_) => {}
                    Err(Error::InvalidArgument { .. }) => assert!(name.is_empty()),
                    Err(e) => panic!("insert: {e}"),
                }
            }
            st.sets.push(set);
        }
        7 => {
            if st.model.is_none() {
                st.model = Some(rt.load_model_on(&add_model(), 0).expect("load"));
            }
        }
        8 => {
            let Some(model) = &st.model else { return };
            let inputs = model.allocate_inputs().expect("inputs");
            let mut outputs = model.allocate_outputs().expect("outputs");
            inputs.get("a").unwrap().write(&[1.0f32; 6]).unwrap();
            inputs.get("b").unwrap().write(&[2.0f32; 6]).unwrap();
            model.execute(&inputs, &mut outputs).expect("execute");
            let out: Vec<f32> = outputs.get("out").unwrap().to_vec().unwrap();
            assert_eq!(out, [3.0; 6]);
        }
        9 | 10 => {
            let Some(t) = pick(st, input) else { return };
            let Some(unit) = st.units.last() else { return };
            let (offset, len) = (usize::from(input.u8()), usize::from(input.u8()) + 1);
            let result = if op == 9 {
                unit.write(&t, offset, vec![op; len])
            } else {
                unit.read(&t, offset, vec![0u8; len])
            };
            match result {
                Ok(request) => {
                    assert!(fits(&t, offset, len), "out-of-bounds transfer accepted");
                    st.transfers.push(request);
                }
                Err(rejected) => {
                    // The unit's core is checked first (WrongCore for core 1's tensors).
                    let other_core = t.placement() == Placement::Device && t.core() != Some(0);
                    if !fits(&t, offset, len) && !other_core {
                        expect_out_of_bounds(Err::<(), _>(rejected.into_error()), &t, "transfer");
                    }
                }
            }
        }
        11 => {
            let Some(model) = &st.model else { return };
            let Some(unit) = st.units.first() else { return };
            let sets = (
                model.allocate_inputs().unwrap(),
                model.allocate_outputs().unwrap(),
            );
            if let Ok(request) = unit.execute(model, sets.0, sets.1) {
                st.executions.push(request);
            }
        }
        12 => {
            // Wait for the oldest request of either kind; its own status may be an error.
            if !st.transfers.is_empty() && input.u8().is_multiple_of(2) {
                drop(st.transfers.remove(0).wait());
            } else if !st.executions.is_empty() {
                drop(st.executions.remove(0).wait());
            }
        }
        13 => {
            // Drop a request that may still be running: must not block or leak.
            if !st.transfers.is_empty() {
                let i = input.index(st.transfers.len());
                drop(st.transfers.swap_remove(i));
            }
        }
        14 => {
            // Forget a scoped request: the scope still waits for it and frees what it holds.
            let Some(t) = pick(st, input) else { return };
            let Some(unit) = st.units.last() else { return };
            let data = vec![5u8; t.size()];
            neuron_rt::xu::scope(|s| {
                if let Ok(request) = s.write(unit, &t, 0, &data) {
                    mem::forget(request);
                }
            });
        }
        15 => {
            // An async write to a host tensor, then a sync read of the same bytes: the read
            // waits for the write (the request holds the storage until it completed).
            let Some(t) = pick(st, input) else { return };
            let Some(unit) = st.units.last() else { return };
            if t.placement() == Placement::Device {
                return;
            }
            let value = input.u8();
            let Ok(request) = unit.write(&t, 0, vec![value; t.size()]) else {
                return;
            };
            let mut seen = vec![0u8; t.size()];
            t.read(&mut seen).expect("sync read of a host tensor");
            assert!(
                seen.iter().all(|&b| b == value),
                "a sync read of `{}` did not see the async write scheduled before it",
                t.name()
            );
            st.transfers.push(request);
        }
        16 => {
            // A submission polled once and, if it has to wait, forgotten (its payload and
            // closure borrow: nothing it holds keeps the runtime); a later submission on
            // the same unit must still get in.
            let Some(t) = pick(st, input) else { return };
            let Some(unit) = st.units.last() else { return };
            if !fits(&t, 0, 1) || (t.placement() == Placement::Device && t.core() != Some(0)) {
                return;
            }
            let mut cx = Context::from_waker(Waker::noop());
            // On the stack and with an empty buffer (no heap): forgetting it leaks nothing
            // a leak checker would see. `Submit` is `Unpin`.
            let mut first =
                mem::ManuallyDrop::new(unit.submit(Vec::new(), |b| unit.write(&t, 0, b)));
            match std::pin::Pin::new(&mut *first).poll(&mut cx) {
                Poll::Ready(Ok(request)) => st.transfers.push(request),
                Poll::Ready(Err(rejected)) => drop(rejected),
                // Left in the ManuallyDrop: never dropped, as `mem::forget` would do.
                Poll::Pending => {}
            }
            let mut later = Box::pin(unit.submit(vec![2u8], |b| unit.write(&t, 0, b)));
            let started = std::time::Instant::now();
            loop {
                match later.as_mut().poll(&mut cx) {
                    Poll::Ready(Ok(request)) => break st.transfers.push(request),
                    Poll::Ready(Err(rejected)) => break drop(rejected),
                    Poll::Pending => {
                        assert!(
                            started.elapsed() < std::time::Duration::from_secs(10),
                            "a submission is stuck behind a forgotten one"
                        );
                        std::thread::yield_now();
                    }
                }
            }
        }
        _ => {
            // Drop a tensor (sets, slices and requests keep it alive as needed).
            if !st.tensors.is_empty() {
                let i = input.index(st.tensors.len());
                drop(st.tensors.swap_remove(i));
            }
        }
    }
}
