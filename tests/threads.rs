//! One model shared by 8 threads, each executing with its own tensors.

mod support;

use std::sync::Arc;

use neuron_rt::Model;
use support::{add_model, assert_no_leaks, control, lock, runtime};

#[test]
fn eight_threads_executing_one_model_get_their_own_results() {
    let _g = lock();
    let rt = runtime();
    let model: Arc<Model> = Arc::new(rt.load_model(&add_model()).unwrap());
    let core = model.core().unwrap() as usize;
    let start = control().counters().cores[core].executions;
    const THREADS: usize = 8;
    const ROUNDS: usize = 25;
    std::thread::scope(|scope| {
        for id in 0..THREADS {
            let model = Arc::clone(&model);
            scope.spawn(move || {
                let inputs = model.allocate_inputs().unwrap();
                let mut outputs = model.allocate_outputs().unwrap();
                for round in 0..ROUNDS {
                    let a: Vec<f32> = (0..6)
                        .map(|i| (id * 1000 + round * 10 + i) as f32)
                        .collect();
                    let b: Vec<f32> = (0..6).map(|i| (i * 100 + id) as f32).collect();
                    inputs.get("a").unwrap().write(&a).unwrap();
                    inputs.get("b").unwrap().write(&b).unwrap();
                    model.execute(&inputs, &mut outputs).unwrap();
                    let out: Vec<f32> = outputs.get("out").unwrap().to_vec().unwrap();
                    let expected: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
                    assert_eq!(out, expected, "thread {id}, round {round}");
                }
            });
        }
    });
    assert_eq!(
        control().counters().cores[core].executions - start,
        (THREADS * ROUNDS) as u64
    );
    drop(model);
    drop(rt);
    assert_no_leaks();
}

#[test]
fn handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<neuron_rt::Runtime>();
    send_sync::<neuron_rt::Model>();
    send_sync::<neuron_rt::Tensor>();
    send_sync::<neuron_rt::TensorSet>();
    send_sync::<neuron_rt::Error>();
}

/// Issue 21 item 3: the stack rule (6 MiB left) lets a thread of a main thread's size
/// (8 MiB) call `nrt_execute` itself (src/stack.rs tests that it runs there); the
/// simulator uses and touches 4 MiB of the caller's stack there, as libnrt was seen to,
/// so this proves the rule safe (a stack overflow would kill the test process).
#[test]
fn an_8_mib_thread_executes_on_its_own_stack_with_the_simulators_4_mib() {
    let _g = lock();
    let rt = runtime();
    let model = rt.load_model(&add_model()).unwrap();
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(8 << 20)
            .spawn_scoped(s, || {
                let inputs = model.allocate_inputs().unwrap();
                let mut outputs = model.allocate_outputs().unwrap();
                inputs.get("a").unwrap().write(&[1.0f32; 6]).unwrap();
                inputs.get("b").unwrap().write(&[2.0f32; 6]).unwrap();
                for _ in 0..3 {
                    model.execute(&inputs, &mut outputs).unwrap();
                }
                let out: Vec<f32> = outputs.get("out").unwrap().to_vec().unwrap();
                assert_eq!(out, [3.0; 6]);
            })
            .unwrap();
    });
}
