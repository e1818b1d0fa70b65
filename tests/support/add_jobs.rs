//! Executions of [`add_model`](super::add_model) as async jobs: sets filled with
//! `a` = x and `b` = 100, the output read back. Shared by the async test files.

use std::time::Duration;

use neuron_rt::{ExecSets, ExecUnit, Model, Runtime, Scheduled, TensorSet};

/// Input and output sets of `model` with `a` = `x` and `b` = 100.
pub fn sets(model: &Model, x: f32) -> ExecSets {
    let inputs = model.allocate_inputs().unwrap();
    let outputs = model.allocate_outputs().unwrap();
    fill(&inputs, x);
    (inputs, outputs)
}

/// `unit.execute(model, inputs, outputs)` for a pair.
pub fn exec(unit: &ExecUnit, model: &Model, (inputs, outputs): ExecSets) -> Scheduled<ExecSets> {
    unit.execute(model, inputs, outputs)
}

pub fn fill(inputs: &TensorSet, x: f32) {
    inputs.get("a").unwrap().write(&[x; 6]).unwrap();
    inputs.get("b").unwrap().write(&[100.0f32; 6]).unwrap();
}

pub fn out(outputs: &TensorSet) -> Vec<f32> {
    super::f32s(outputs, "out")
}

pub fn loaded(rt: &Runtime, device_time: Duration, core: u32) -> Model {
    rt.load_model_on(&super::add_model_taking(device_time), core)
        .unwrap()
}
