//! What can go wrong with async requests, and what a program does about each:
//!
//! 1. a request that completes with an error (NaN in the outputs): only that request's
//!    `wait` reports it; drop or redo that job and carry on;
//! 2. a full queue: the schedule call hands the payload back with a retryable error;
//!    wait for a completion and resubmit (`submit_with_retry` does both, bounded);
//! 3. an unrecoverable execution unit: the request fails with a fatal status, the unit
//!    refuses all further work at once; stop using it (here: fail over to another core),
//!    and plan a process restart, the only way to recover it.
//!
//! ```text
//! cargo run --example 03-error-handling
//! ```
//!
//! It runs on nrt-sim, whose fault injection produces each failure on demand.

use std::error::Error;
use std::time::Duration;

use neuron_rt::{ExecSets, ExecUnit, Model, NrtStatus, RetryPolicy, Runtime};
use nrt_sim::{DType, ModelBuilder, Op, SimControl};

fn main() -> Result<(), Box<dyn Error>> {
    // A small queue, so that it fills up in part 2. The simulator reads this variable
    // when the runtime starts.
    // SAFETY: nothing else runs yet: no other thread exists that could read the
    // environment during the call.
    unsafe { std::env::set_var("NRT_SIM_QUEUE_DEPTH", "3") };

    println!("==============================================================");
    println!(" running on nrt-sim (simulated libnrt): no Neuron device used");
    println!("==============================================================");
    let lib = nrt_sim::library();
    let faults = SimControl::new(lib).ok_or("the in-process library is not nrt-sim")?;
    let runtime = Runtime::builder().library(lib).build()?;
    let neff = ModelBuilder::new("double")
        .input("x", DType::F32, &[4])
        .output("y", DType::F32, &[4])
        .op(Op::ScaleBias {
            input: "x".into(),
            scale: 2.0,
            bias: 0.0,
            out: "y".into(),
        })
        .device_time(Duration::from_millis(5))
        .build()?;
    let models = [
        runtime.load_model_on(&neff, 0)?,
        runtime.load_model_on(&neff, 1)?,
    ];
    let units = [runtime.compute_unit(0)?, runtime.compute_unit(1)?];

    request_errors(&faults, &models[0], &units[0])?;
    queue_full(&models[0], &units[0])?;
    unrecoverable(&faults, &models, &units)?;
    Ok(())
}

fn sets(model: &Model, x: f32) -> neuron_rt::Result<ExecSets> {
    let inputs = model.allocate_inputs()?;
    inputs.get("x").expect("model input x").write(&[x; 4])?;
    Ok((inputs, model.allocate_outputs()?))
}

fn first_output(sets: &ExecSets) -> neuron_rt::Result<f32> {
    let y: Vec<f32> = sets.1.get("y").expect("model output y").to_vec()?;
    Ok(y[0])
}

/// 1. Errors reported after scheduling come back from that request's `wait`.
fn request_errors(
    faults: &SimControl,
    model: &Model,
    unit: &ExecUnit,
) -> Result<(), Box<dyn Error>> {
    println!("\n1. a request that completes with an error");
    // The 2nd execution on core 0 will complete with status 1003 (numerical errors).
    faults.inject_faults("exec:vnc=0:nth=2:status=1003")?;
    let mut requests = Vec::new();
    for job in 0..3 {
        let (inputs, outputs) = sets(model, job as f32)?;
        requests.push((job, unit.execute(model, inputs, outputs)?));
    }
    for (job, request) in requests {
        let seq = request.seq();
        match request.wait() {
            Ok(sets) => println!("   job {job} ({seq}): y[0] = {}", first_output(&sets)?),
            Err(e) if e.status() == Some(NrtStatus::ExecCompletedWithNumErr) => {
                // Only this job is affected: log it, discard (or recompute) its outputs.
                println!("   job {job} ({seq}): discarded, {e}");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// 2. A full queue refuses the request and hands the payload back.
fn queue_full(model: &Model, unit: &ExecUnit) -> Result<(), Box<dyn Error>> {
    println!("\n2. a full queue (depth 3)");
    let mut requests = Vec::new();
    for x in [10.0, 11.0, 12.0] {
        let (i, o) = sets(model, x)?;
        requests.push(unit.execute(model, i, o)?);
    }
    let (i, o) = sets(model, 13.0)?;
    let fourth = match unit.execute(model, i, o) {
        Ok(request) => request,
        Err(rejected) if rejected.is_retryable() => {
            println!("   refused: {}", rejected.error());
            println!(
                "   {} requests in flight; retrying after a completion",
                unit.in_flight()?
            );
            // The tensor sets come back with the rejection: nothing is lost.
            let payload = rejected.into_inner();
            unit.submit_with_retry(RetryPolicy::default(), payload, |(i, o)| {
                unit.execute(model, i, o)
            })?
        }
        Err(rejected) => return Err(rejected.into()),
    };
    requests.push(fourth);
    for request in requests {
        let seq = request.seq();
        println!("   {seq}: y[0] = {}", first_output(&request.wait()?)?);
    }
    Ok(())
}

/// 3. An unrecoverable unit fails fast; work moves to another core.
fn unrecoverable(
    faults: &SimControl,
    models: &[Model; 2],
    units: &[ExecUnit; 2],
) -> Result<(), Box<dyn Error>> {
    println!("\n3. an unrecoverable execution unit");
    // The next request on core 0's compute queue hits a fatal error.
    faults.inject_faults("xu:vnc=0:type=compute:queue=0:nth=1")?;
    let (i, o) = sets(&models[0], 1.0)?;
    match units[0].execute(&models[0], i, o)?.wait() {
        Err(e) if e.is_fatal() => println!("   request failed: {e}"),
        other => println!("   unexpected: {other:?}"),
    }
    // The unit remembers: no further call reaches libnrt.
    let (i, o) = sets(&models[0], 2.0)?;
    match units[0].execute(&models[0], i, o) {
        Err(rejected) => {
            println!("   refused at once: {}", rejected.error());
            // The sets come back with the rejection (dropped here).
            let (_inputs, _outputs) = rejected.into_inner();
        }
        Ok(request) => {
            request.wait()?;
            return Err("the unit should have refused".into());
        }
    }
    // What to do: stop sending work to that core, finish elsewhere, and restart the
    // process when convenient (re-initialising the runtime is the only recovery).
    let (i, o) = sets(&models[1], 2.0)?;
    let done = units[1].execute(&models[1], i, o)?.wait()?;
    println!(
        "   failed over to {}: y[0] = {}; restart the process to use core 0 again",
        units[1],
        first_output(&done)?
    );
    Ok(())
}
