//! Heap allocations per async request in the steady state, counted by a global
//! allocator on the submitting thread (target: 0). The simulator is dlopen'ed, so its own
//! allocations (made by its separate copy of the Rust allocator) are not counted: the
//! numbers are this crate's alone.
//!
//! `cargo bench --bench allocations` prints allocations per request for each kind of
//! request, cold (first requests on new units) and warm.

use std::cell::RefCell;

use neuron_rt::nrt_sys::Library;
use neuron_rt::{ExecSets, Pipeline, Placement, Runtime};
use nrt_sim::ModelBuilder;

#[path = "../tests/support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocations;

/// Allocations on this thread per call of `f`, over `n` calls.
fn per_call(n: u32, mut f: impl FnMut()) -> f64 {
    let before = allocations();
    for _ in 0..n {
        f();
    }
    (allocations() - before) as f64 / f64::from(n)
}

fn main() {
    let path = nrt_sim::cdylib_path().expect("libnrt_sim.so next to the bench binary");
    let lib = Library::open(&path).expect("dlopen nrt-sim");
    let rt = Runtime::builder().library(lib).build().expect("runtime");
    let neff = ModelBuilder::add_example(&[2, 3]).build().expect("model");
    let model = rt.load_model_on(&neff, 0).expect("load");
    let t = rt
        .allocate_tensor(Placement::Device, Some(0), 4096, "t")
        .expect("tensor");
    let u = rt
        .allocate_tensor(Placement::Device, Some(0), 4096, "u")
        .expect("tensor");
    let sets: RefCell<Option<ExecSets>> = RefCell::new(Some((
        model.allocate_inputs().expect("inputs"),
        model.allocate_outputs().expect("outputs"),
    )));
    let buffer: RefCell<Option<Vec<f32>>> = RefCell::new(Some(vec![1.0; 1024]));

    let (compute, tensor_op) = (
        rt.compute_unit(0).expect("unit"),
        rt.tensor_op_unit(0, 0).expect("unit"),
    );
    let execute = || {
        let (i, o) = sets.borrow_mut().take().expect("sets");
        let back = compute.execute(&model, i, o).expect("schedule").wait();
        *sets.borrow_mut() = Some(back.expect("execution"));
    };
    let write = || {
        let b = buffer.borrow_mut().take().expect("buffer");
        let b = tensor_op.write(&t, 0, b).expect("schedule").wait();
        *buffer.borrow_mut() = Some(b.expect("write"));
    };
    let read = || {
        let b = buffer.borrow_mut().take().expect("buffer");
        let b = tensor_op.read(&t, 0, b).expect("schedule").wait();
        *buffer.borrow_mut() = Some(b.expect("read"));
    };
    let copy = || {
        let r = tensor_op.copy(&t, 0, &u, 0, 4096).expect("schedule");
        r.wait().expect("copy");
    };

    println!("allocations per request on the submitting thread (schedule + wait):");
    println!("{:<28} {:>8} {:>8}", "request", "cold", "warm");
    let cases: [(&str, &dyn Fn()); 4] = [
        ("execute (sets by value)", &execute),
        ("tensor write 4 KiB", &write),
        ("tensor read 4 KiB", &read),
        ("tensor copy 4 KiB", &copy),
    ];
    for (name, f) in cases {
        let cold = per_call(1, f);
        per_call(100, f);
        let warm = per_call(2000, f);
        println!("{name:<28} {cold:>8.2} {warm:>8.3}");
    }

    let pool = RefCell::new(
        (0..4)
            .map(|_| {
                (
                    model.allocate_inputs().expect("inputs"),
                    model.allocate_outputs().expect("outputs"),
                )
            })
            .collect::<Vec<_>>(),
    );
    let run = |jobs: usize| {
        let pipeline = Pipeline::new(0..jobs, |_| {
            let (i, o) = pool.borrow_mut().pop().expect("a free pair");
            Ok(compute.execute(&model, i, o)?)
        });
        for result in pipeline {
            pool.borrow_mut().push(result.expect("execution"));
        }
    };
    run(10);
    let whole = per_call(1, || run(2000));
    println!(
        "{:<28} {:>8} {:>8.4}",
        "pipeline, depth 3, 2000 jobs",
        "-",
        whole / 2000.0
    );
    println!("(a pipeline allocates its queue once: {whole} allocation(s) for 2000 jobs)");
}
