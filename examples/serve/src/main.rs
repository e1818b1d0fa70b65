//! `serve`: an HTTP JSON inference service on neuron-rt's `ModelPool`, and a bounded load
//! generator (usage: `USAGE`). The pool loads the model on every visible core (or the
//! first K) and does dispatch, set pools, admission and failover: this is HTTP and JSON.
//! Without `--neff`: nrt-sim in process, model `y = 2x + 1` on E (16) f32 taking D ms
//! (`NRT_SIM_VNC_COUNT` cores, faults from `NRT_SIM_FAULTS`). `--load N` serves on an
//! ephemeral port, sends N requests from C clients, prints one line and fails if a
//! request hung, or if the errors are not exactly those the injected faults explain.
//! The OpenAI routes (`openai.rs`) serve a decoder bundle through the library's
//! continuous batcher on the same cores: by default the simulator's small decoder;
//! `--load N --openai` loads them instead of `/infer`.

mod chat;
mod http;
mod json;
mod load;
mod observe;
mod openai;
mod openai_load;
mod openai_req;
mod openai_stream;
#[cfg(test)]
mod openai_tests;
mod report;
mod server;
#[cfg(test)]
mod tests;
mod textout;
#[cfg(test)]
mod tokenizer_tests;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use neuron_rt::{ModelPool, NeffSource, Runtime};
use nrt_sim::{DType, ModelBuilder, Op, SimControl};

const USAGE: &str = "usage: serve [--listen ADDR] [--cores K] [--device-ms D] [--elements E] [--neff PATH] [GENERATION] [CONNECTIONS]
       serve --load N [--concurrency C] [--cores K] [--device-ms D] [--elements E] [--timeout-ms T] [CONNECTIONS]
       serve --load N --openai [--concurrency C] [--max-tokens M] [--timeout-ms T] [GENERATION]
GENERATION (the OpenAI routes /v1/completions, /v1/chat/completions, /v1/models):
  --bundle DIR           the decoder bundle (default: the simulator's small decoder, model
                         id `small-decoder`, written into a temp dir; D ms per step); byte
                         tokenizer (token id = byte value); not served with --neff alone
  --tokenizer FILE       a Hugging Face tokenizer.json (its ids below the bundle's vocabulary)
                         instead of the byte tokenizer; tokenizer_config.json beside it gives
                         chat_template, bos_token, eos_token, generation_config.json
                         eos_token_id (each if present; generation stops on every eos id)
  --chat-template FILE   a Jinja chat template (Hugging Face style) instead of the default
                         `<|role|>\ncontent\n` per message then `<|assistant|>\n`
  --max-waiting W        requests each core queues beyond its free slots, then 429 (64)
  --openai               with --load: N streaming greedy /v1/completions requests from C
                         clients, each of M tokens (default 16), checked against the same
                         prompts generated alone; fails if a stream hangs or lacks [DONE],
                         a text differs, errors come with no fault injected, a slot stays
                         taken, or (faults disarmed) a prompt is not served again as before
CONNECTIONS (how the server treats slow and idle clients):
  --header-timeout-ms H  a request head must be complete within H ms (from the accept for the
                         first request, from its first byte for later ones), else the
                         connection is closed (default 10000)
  --idle-timeout-ms I    a keep-alive connection with no request in service and nothing
                         received for I ms is closed (default 60000)
  --max-connections M    at most M connections are served at once; more wait in the listen
                         backlog (default 1024, or the open-file limit minus 64 if lower)";

pub struct Options {
    listen: SocketAddr,
    load: Option<usize>,
    concurrency: usize,
    cores: Option<u32>,
    device_time: Duration,
    elements: u32,
    neff: Option<String>,
    timeout: Duration,
    limits: server::Limits,
    bundle: Option<String>,
    chat_template: Option<String>,
    tokenizer: Option<String>,
    max_waiting: usize,
    openai: bool,
    max_tokens: u32,
}

type Server = tokio::task::JoinHandle<std::io::Result<()>>;

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut o = Options {
        listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
        load: None,
        concurrency: 64,
        cores: None,
        device_time: Duration::from_millis(1),
        elements: 16,
        neff: None,
        timeout: Duration::from_secs(10),
        limits: server::Limits::default(),
        bundle: None,
        chat_template: None,
        tokenizer: None,
        max_waiting: 64,
        openai: false,
        max_tokens: 16,
    };
    while let Some(flag) = args.next() {
        if flag == "--openai" {
            o.openai = true;
            continue;
        }
        let value = args.next().ok_or(format!("{flag} needs a value\n{USAGE}"));
        let bad = |v: &str| format!("{flag}: `{v}` is not valid");
        let num = |v: String| v.parse::<u64>().map_err(|_| bad(&v));
        let ms = |v: String| match v.parse::<f64>() {
            Ok(ms) if (0.0..=60e3).contains(&ms) => Ok(Duration::from_secs_f64(ms / 1e3)),
            _ => Err(bad(&v)),
        };
        match flag.as_str() {
            "--listen" => o.listen = value?.parse().map_err(|_| bad("address"))?,
            "--load" => o.load = Some(num(value?)? as usize),
            "--concurrency" => o.concurrency = num(value?)?.max(1) as usize,
            "--cores" => o.cores = Some(num(value?)? as u32),
            "--elements" => o.elements = num(value?)?.clamp(1, 1 << 28) as u32,
            "--neff" => o.neff = Some(value?),
            "--bundle" => o.bundle = Some(value?),
            "--chat-template" => o.chat_template = Some(value?),
            "--tokenizer" => o.tokenizer = Some(value?),
            "--max-waiting" => o.max_waiting = num(value?)? as usize,
            "--max-tokens" => o.max_tokens = num(value?)?.clamp(1, 1 << 20) as u32,
            "--timeout-ms" => o.timeout = Duration::from_millis(num(value?)?),
            "--device-ms" => o.device_time = ms(value?)?,
            "--header-timeout-ms" => o.limits.header_timeout = positive_ms(num(value?)?, &flag)?,
            "--idle-timeout-ms" => o.limits.idle_timeout = positive_ms(num(value?)?, &flag)?,
            "--max-connections" => {
                o.limits.max_connections = num(value?)?.clamp(1, 1 << 20) as usize
            }
            _ => return Err(format!("unknown argument `{flag}`\n{USAGE}")),
        }
    }
    if o.load.is_some() {
        o.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    }
    Ok(o)
}

/// `ms` milliseconds, at least 1 (a timeout of 0 would close every connection at once).
fn positive_ms(ms: u64, flag: &str) -> Result<Duration, String> {
    match ms {
        0 => Err(format!("{flag}: a timeout needs at least 1 ms")),
        _ => Ok(Duration::from_millis(ms)),
    }
}

/// The pool (on libnrt and `--neff`, or on the simulator's model `y = 2x + 1`) served on
/// `o.listen`: the address, the service's state, the server's task.
async fn start(o: &Options) -> Result<(SocketAddr, http::App, Server), String> {
    let lib = nrt_sim::library();
    let (runtime, neff): (_, NeffSource) = match &o.neff {
        Some(path) => (Runtime::new(), std::path::PathBuf::from(path).into()),
        None => {
            let op = Op::ScaleBias {
                input: "x".into(),
                scale: 2.0,
                bias: 1.0,
                out: "y".into(),
            };
            let model = ModelBuilder::new("double_plus_one")
                .input("x", DType::F32, &[o.elements])
                .output("y", DType::F32, &[o.elements])
                .op(op)
                .device_time(o.device_time)
                .build();
            let runtime = Runtime::builder().library(lib).build();
            (runtime, model.map_err(|e| format!("model: {e}"))?.into())
        }
    };
    let runtime = runtime.map_err(text)?;
    let cores = o.cores.map_or_else(|| runtime.visible_core_count(), Ok);
    let cores = cores.map_err(text)?;
    let pool = ModelPool::builder(&runtime, neff).cores(0..cores);
    let sim = o.neff.is_none().then(|| SimControl::new(lib)).flatten();
    let openai = match (&o.neff, &o.bundle) {
        (Some(_), None) => None,
        _ => {
            let config = openai::Config {
                bundle: o.bundle.as_deref(),
                chat_template: o.chat_template.as_deref(),
                tokenizer: o.tokenizer.as_deref(),
                cores,
                max_waiting: o.max_waiting,
                device_time: o.device_time,
            };
            Some(std::sync::Arc::new(openai::Service::start(
                &runtime, &config,
            )?))
        }
    };
    let (app, router) = http::app(pool.build().map_err(text)?, sim, openai);
    let listener = tokio::net::TcpListener::bind(o.listen).await;
    let listener = listener.map_err(|e| format!("bind {}: {e}", o.listen))?;
    let addr = listener.local_addr().map_err(text)?;
    let server = server::serve(listener, router, o.limits);
    Ok((addr, app, tokio::spawn(server)))
}

async fn run() -> Result<bool, String> {
    if std::env::args().skip(1).any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}\n{}", observe::USAGE);
        return Ok(true);
    }
    let (args, trace) = observe::take_trace_flag(std::env::args().skip(1));
    if trace {
        observe::init_trace()?;
    }
    let o = parse_args(args.into_iter())?;
    let (addr, app, server) = start(&o).await?;
    if o.load.is_none() {
        let cores = app.pool.cores();
        let routes = match &app.openai {
            Some(s) => format!(
                ", POST /v1/completions, POST /v1/chat/completions, GET /v1/models (model `{}` in {})",
                s.model,
                s.dir.display()
            ),
            None => String::new(),
        };
        eprintln!("serving on http://{addr} (cores {cores:?}): POST /infer, GET /metrics{routes}");
        return server.await.map_err(text)?.map(|()| true).map_err(text);
    }
    let passed = match o.openai {
        true => openai_load::load_run(&o, &app, addr).await,
        false => report::load_run(&o, &app, addr).await,
    };
    server.abort();
    // Requests still in flight (none after the load) finish, then every copy unloads.
    app.pool.shutdown().await;
    Ok(passed)
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(passed) => ExitCode::from(u8::from(!passed)),
        Err(message) => {
            eprintln!("serve: {message}");
            ExitCode::from(2)
        }
    }
}

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}
