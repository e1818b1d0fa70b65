//! Continuous batching on the simulator (issue 28 item 6): `generate::Batcher` over 2
//! cores of the small decoder bundle, decode batch bucket 4, decode step S = 1 ms,
//! prefill 250 us for bucket 16 and 1 ms for bucket 64, device sampling (greedy),
//! prompts of 8 to 48 tokens, n = 32 new tokens each, a closed loop of c clients (each
//! sends its next request when its stream ends). One line per concurrency c in {1, 8,
//! 32} at launch cost L = 0, and one at c = 32 with L = 180 us:
//!
//! ```text
//! batching cores=2 batch=4 launch_us=<L> concurrency=<c> requests=<n> tokens_per_s=<x> ideal_tokens_per_s=<y> efficiency_pct=<z> ttft_p50_ms=<a> itl_p50_us=<b> itl_p99_us=<d>
//! ```
//!
//! * `tokens_per_s`: every generated token, over the wall time from the first request
//!   to the last token.
//! * `ideal_tokens_per_s` = a x n / (ceil(a / cores) x P + (n - 1) x S), a = min(c,
//!   cores x batch) sequences in flight: the device limit when prefills and decode steps
//!   share each core's compute unit. P is the mean prefill device time of the run's
//!   prompts as the batcher runs them: chunks of 16 tokens through the 16-token member,
//!   250 us each (a 48-token prompt: 750 us, less than the 64-token member's 1 ms).
//! * `ttft_p50_ms`: submit to first token; `itl_*`: intervals between one sequence's
//!   consecutive tokens, over every sequence.
//!
//! Targets: efficiency >= 90 % at c = 32 (L = 0), >= 85 % at L = 180; itl p50 <= S +
//! 50 us at c = 1; itl p99 <= 2 x S at c = 8.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use neuron_rt::Runtime;
use neuron_rt::generate::{Batcher, BatchingOptions, Bundle, GenerateOptions, Generated};
use nrt_sim::SimControl;
use nrt_sim::decoder::{DecoderBundleOptions, member_files, write_bundle};

const CORES: u32 = 2;
const BATCH: u32 = 4;
const STEP: Duration = Duration::from_millis(1);
const CHUNK_TIME: Duration = Duration::from_micros(250);
const CHUNK: usize = 16;
const NEW_TOKENS: u32 = 32;

/// Prompt `i`: 8 to 48 tokens.
fn prompt(i: usize) -> Vec<u32> {
    let len = 8 + (i * 13) % 41;
    (0..len).map(|j| ((i * 37 + j * 11) % 256) as u32).collect()
}

fn bundle(rt: &Runtime, dir: &std::path::Path) -> Bundle {
    let mut options = DecoderBundleOptions::default();
    options.decode_device_time = STEP;
    options.prefill_device_time = CHUNK_TIME;
    let written = write_bundle(dir, &options).expect("bundle");
    // The 64-token prefill member takes 1 ms.
    let mut long = written
        .members
        .iter()
        .find(|m| m.name == "prefill_t64")
        .expect("prefill_t64")
        .clone();
    long.device_time = Duration::from_millis(1);
    let (neff, _) = member_files(&options.config, &long).expect("member");
    std::fs::write(dir.join("prefill_t64/graph.neff"), neff).expect("write");
    Bundle::builder(rt)
        .dir(dir)
        .expect("dir")
        .cores(0..CORES)
        .build()
        .expect("bundle")
}

fn percentile(v: &mut [Duration], q: f64) -> Duration {
    v.sort_unstable();
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn line(
    batcher: &Arc<Batcher>,
    sim: &SimControl,
    launch_us: u64,
    concurrency: usize,
    requests: usize,
) {
    let busy_before: Vec<Duration> = sim.counters().cores.iter().map(|c| c.busy).collect();
    let next = Arc::new(Mutex::new(0usize));
    let ttfts = Arc::new(Mutex::new(Vec::new()));
    let itls = Arc::new(Mutex::new(Vec::new()));
    let prefill_time = Arc::new(Mutex::new(Duration::ZERO));
    let tokens = Arc::new(Mutex::new(0u64));
    // The clients are tasks on one thread (a current-thread tokio runtime), woken by
    // their streams: c OS threads would compete with the schedulers for 2 CPUs and
    // measure the host's thread scheduling instead.
    let tokio = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio");
    let start = Instant::now();
    tokio.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (batcher, next, ttfts, itls, prefill_time, tokens) = (
                Arc::clone(batcher),
                Arc::clone(&next),
                Arc::clone(&ttfts),
                Arc::clone(&itls),
                Arc::clone(&prefill_time),
                Arc::clone(&tokens),
            );
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = {
                        let mut n = next.lock().unwrap();
                        if *n == requests {
                            return;
                        }
                        *n += 1;
                        *n - 1
                    };
                    let p = prompt(i);
                    *prefill_time.lock().unwrap() += CHUNK_TIME * p.len().div_ceil(CHUNK) as u32;
                    let sent = Instant::now();
                    let mut stream = batcher
                        .submit(&p, &GenerateOptions::new(NEW_TOKENS))
                        .expect("submit");
                    let mut last: Option<Instant> = None;
                    let mut count = 0u64;
                    while let Some(item) = std::future::poll_fn(|cx| {
                        futures_core::Stream::poll_next(std::pin::Pin::new(&mut stream), cx)
                    })
                    .await
                    {
                        match item.expect("token") {
                            Generated::Token(_) => {
                                let now = Instant::now();
                                match last {
                                    None => ttfts.lock().unwrap().push(now - sent),
                                    Some(t) => itls.lock().unwrap().push(now - t),
                                }
                                last = Some(now);
                                count += 1;
                            }
                            Generated::Finished(f) => {
                                assert_eq!(f.completion_tokens, NEW_TOKENS);
                            }
                        }
                    }
                    *tokens.lock().unwrap() += count;
                }
            }));
        }
        for t in tasks {
            t.await.expect("client");
        }
    });
    let wall = start.elapsed();
    let busy: Vec<String> = sim
        .counters()
        .cores
        .iter()
        .zip(&busy_before)
        .take(CORES as usize)
        .map(|(c, b)| {
            format!(
                "{:.1}",
                100.0 * (c.busy - *b).as_secs_f64() / wall.as_secs_f64()
            )
        })
        .collect();
    eprintln!(
        "batching c={concurrency} L={launch_us}: device busy % per core {busy:?}, clock {:?}",
        sim.clock_stats(true)
    );
    let tokens = *tokens.lock().unwrap();
    let a = concurrency.min((CORES * BATCH) as usize) as f64;
    let p = prefill_time.lock().unwrap().as_secs_f64() / requests as f64;
    let n = f64::from(NEW_TOKENS);
    let ideal = a * n / ((a / f64::from(CORES)).ceil() * p + (n - 1.0) * STEP.as_secs_f64());
    let rate = tokens as f64 / wall.as_secs_f64();
    let mut ttfts = ttfts.lock().unwrap().clone();
    let mut itls = itls.lock().unwrap().clone();
    println!(
        "batching cores={CORES} batch={BATCH} launch_us={launch_us} concurrency={concurrency} requests={requests} tokens_per_s={rate:.0} ideal_tokens_per_s={ideal:.0} efficiency_pct={:.1} ttft_p50_ms={:.2} itl_p50_us={:.1} itl_p99_us={:.1}",
        100.0 * rate / ideal,
        percentile(&mut ttfts, 0.5).as_secs_f64() * 1e3,
        percentile(&mut itls, 0.5).as_secs_f64() * 1e6,
        percentile(&mut itls, 0.99).as_secs_f64() * 1e6,
    );
}

fn run() {
    let lib = nrt_sim::library();
    let rt = Runtime::builder().library(lib).build().expect("runtime");
    let sim = SimControl::new(lib).expect("nrt-sim");
    let dir = tempfile::tempdir().expect("temp dir");
    let bundle = bundle(&rt, dir.path());
    let batcher = Arc::new(Batcher::new(&bundle, BatchingOptions::default()).expect("batcher"));
    // Warm-up: every member runs once on both cores.
    line_quiet(&batcher);
    for (launch_us, concurrency, requests) in [(0, 1, 16), (0, 8, 64), (0, 32, 128), (180, 32, 128)]
    {
        sim.set_launch_cost(Duration::from_micros(launch_us))
            .expect("launch cost");
        line(&batcher, &sim, launch_us, concurrency, requests);
    }
    sim.set_launch_cost(Duration::ZERO).expect("launch cost");
}

/// A few requests on both cores, unmeasured.
fn line_quiet(batcher: &Batcher) {
    let streams: Vec<_> = (0..8)
        .map(|i| {
            batcher
                .submit(&prompt(i), &GenerateOptions::new(4))
                .expect("submit")
        })
        .collect();
    for s in streams {
        s.collect_blocking().expect("warm-up");
    }
}

fn main() {
    // `cargo test --benches` runs bench binaries without `--bench`: keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        println!("continuous_batching: run with `cargo bench --bench continuous_batching`");
        return;
    }
    run();
}
