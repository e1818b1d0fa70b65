//! `serve`: an HTTP JSON inference service on neuron-rt, and a bounded load generator.
//!
//! ```text
//! serve [--listen 127.0.0.1:8080] [--cores K] [--device-ms D] [--elements E] [--neff model.neff]
//! serve --load N [--concurrency C] [--cores K] [--device-ms D] [--elements E] [--timeout-ms T]
//! ```
//!
//! The model is replicated on every visible core (or the first K); `POST /infer` takes
//! `{"inputs": {"x": [..]}}` and answers `{"outputs": {"y": [..]}, "core": 0, ...}`;
//! `GET /metrics` gives counts and latency percentiles. Without `--neff` the device is
//! nrt-sim in process with a model `y = 2x + 1` on E (16) f32 taking D ms per execution
//! (`NRT_SIM_VNC_COUNT` cores, faults from `NRT_SIM_FAULTS`); with `--neff` the default
//! libnrt and that model file.
//!
//! `--load N` serves on an ephemeral port of 127.0.0.1, sends N requests from C
//! clients, prints one line and exits non-zero if any request hung, if errors occurred
//! without injected faults, or if errors are not exactly those the faults explain.

mod http;
mod load;
mod report;
mod service;
mod stats;
mod tensors;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use neuron_rt::Runtime;
use nrt_sim::{DType, ModelBuilder, Op, SimControl};

use crate::service::Service;

const USAGE: &str = "usage: serve [--listen ADDR] [--cores K] [--device-ms D] [--elements E] [--neff PATH]
       serve --load N [--concurrency C] [--cores K] [--device-ms D] [--elements E] [--timeout-ms T]";

struct Options {
    listen: SocketAddr,
    load: Option<usize>,
    concurrency: usize,
    cores: Option<u32>,
    device_ms: f64,
    elements: u32,
    neff: Option<PathBuf>,
    timeout: Duration,
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut o = Options {
        listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
        load: None,
        concurrency: 64,
        cores: None,
        device_ms: 1.0,
        elements: 16,
        neff: None,
        timeout: Duration::from_secs(10),
    };
    let mut args = args.peekable();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        fn num<T: std::str::FromStr>(flag: &str, v: String) -> Result<T, String> {
            v.parse()
                .map_err(|_| format!("{flag}: `{v}` is not a valid number"))
        }
        match flag.as_str() {
            "--listen" => o.listen = value()?.parse().map_err(|e| format!("--listen: {e}"))?,
            "--load" => o.load = Some(num(&flag, value()?)?),
            "--concurrency" => o.concurrency = num(&flag, value()?)?,
            "--cores" => o.cores = Some(num(&flag, value()?)?),
            "--device-ms" => o.device_ms = num(&flag, value()?)?,
            "--elements" => o.elements = num(&flag, value()?)?,
            "--neff" => o.neff = Some(value()?.into()),
            "--timeout-ms" => o.timeout = Duration::from_millis(num(&flag, value()?)?),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    if !(o.device_ms >= 0.0 && o.device_ms <= 60_000.0) {
        return Err("--device-ms: between 0 and 60000".into());
    }
    if o.elements == 0 {
        return Err("--elements: at least 1".into());
    }
    if o.concurrency == 0 {
        return Err("--concurrency: at least 1".into());
    }
    Ok(o)
}

/// The simulator's model: `y = 2x + 1` on `elements` f32, taking `device_time` per
/// execution.
fn sim_model(device_time: Duration, elements: u32) -> Result<Vec<u8>, String> {
    ModelBuilder::new("double_plus_one")
        .input("x", DType::F32, &[elements])
        .output("y", DType::F32, &[elements])
        .op(Op::ScaleBias {
            input: "x".into(),
            scale: 2.0,
            bias: 1.0,
            out: "y".into(),
        })
        .device_time(device_time)
        .build()
        .map_err(|e| format!("model: {e}"))
}

struct Setup {
    service: Arc<Service>,
    sim: Option<SimControl>,
    cores: Vec<u32>,
    device_time: Duration,
    // Keeps libnrt open as long as the service (every handle does too).
    _runtime: Runtime,
}

fn setup(o: &Options) -> Result<Setup, String> {
    let device_time = Duration::from_secs_f64(o.device_ms / 1e3);
    let (runtime, neff, sim) = match &o.neff {
        Some(path) => {
            let neff = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            (Runtime::new().map_err(|e| e.to_string())?, neff, None)
        }
        None => {
            let lib = nrt_sim::library();
            let runtime = Runtime::builder()
                .library(lib)
                .build()
                .map_err(|e| e.to_string())?;
            (
                runtime,
                sim_model(device_time, o.elements)?,
                SimControl::new(lib),
            )
        }
    };
    let visible = runtime.visible_core_count().map_err(|e| e.to_string())?;
    let wanted = o.cores.unwrap_or(visible);
    if wanted == 0 || wanted > visible {
        return Err(format!(
            "--cores {wanted}: {visible} cores are visible (simulator: NRT_SIM_VNC_COUNT)"
        ));
    }
    let cores: Vec<u32> = (0..wanted).collect();
    let service = Service::new(&runtime, &neff, &cores).map_err(|e| e.to_string())?;
    Ok(Setup {
        service: Arc::new(service),
        sim,
        cores,
        device_time,
        _runtime: runtime,
    })
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let setup = setup(&options)?;
        match options.load {
            Some(n) => load_run(&options, setup, n).await,
            None => serve(&options, setup).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("serve: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(o: &Options, setup: Setup) -> Result<ExitCode, String> {
    let listener = tokio::net::TcpListener::bind(o.listen)
        .await
        .map_err(|e| format!("bind {}: {e}", o.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    eprintln!(
        "serving on http://{addr} ({} on cores {:?}): POST /infer, GET /metrics",
        if setup.sim.is_some() {
            "nrt-sim"
        } else {
            "libnrt"
        },
        setup.cores
    );
    axum::serve(listener, http::router(setup.service))
        .await
        .map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}

async fn load_run(o: &Options, setup: Setup, n: usize) -> Result<ExitCode, String> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let server =
        tokio::spawn(axum::serve(listener, http::router(setup.service.clone())).into_future());
    let workload = load::Workload {
        inputs: setup
            .service
            .model_inputs()
            .iter()
            .map(|t| (t.name.clone(), t.element_count().unwrap_or(0)))
            .collect(),
        check_double_plus_one: o.neff.is_none(),
    };
    let before = setup.sim.map(|s| report::Device::read(&s, &setup.cores));
    let outcome = load::run(addr, workload, n, o.concurrency, o.timeout).await;
    let after = setup.sim.map(|s| report::Device::read(&s, &setup.cores));
    server.abort();
    let faults_armed =
        setup.sim.is_some() && std::env::var("NRT_SIM_FAULTS").is_ok_and(|f| !f.trim().is_empty());
    let verdict = report::judge(
        &outcome,
        &setup.service,
        before.as_ref().zip(after.as_ref()),
        faults_armed,
        setup.device_time,
        o.concurrency,
    );
    println!("{}", verdict.line);
    for note in &verdict.notes {
        eprintln!("  {note}");
    }
    for failure in &verdict.failures {
        eprintln!("FAIL: {failure}");
    }
    Ok(if verdict.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
