//! Observability of the service: `--trace` prints neuron-rt's `tracing` spans as they
//! close, and `GET /metrics` answers the Prometheus / OpenMetrics text format through the
//! `prometheus-client` crate, its families filled from one snapshot of the pool per
//! scrape (the JSON of before is at `GET /metrics.json`).
//!
//! Families, one series per copy of the model (labels `copy` and `core`; no total
//! series, so `sum()` over them is right): `neuron_rt_requests_total{outcome}` (ok,
//! failed, refused, cancelled), `neuron_rt_in_flight`, `neuron_rt_waiting`,
//! `neuron_rt_device_busy_seconds_total` and `neuron_rt_request_duration_seconds` (a
//! histogram over the fixed bounds [`BOUNDS`]).
//!
//! Generation (the OpenAI routes' batcher), one series per core (label `core`):
//! `neuron_rt_generated_tokens_total`, `neuron_rt_generation_running`,
//! `neuron_rt_generation_waiting`, `neuron_rt_generation_free_slots`; and the service's
//! histograms over [`BOUNDS`], `neuron_rt_time_to_first_token_seconds` (from a
//! request's body read) and `neuron_rt_inter_token_latency_seconds`.

use std::time::Duration;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use neuron_rt::{LatencyHistogram, ModelPool, PoolMetrics};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::http::App;
use crate::openai::Service;

/// The `--trace` line of the usage.
pub const USAGE: &str = "TRACING:
  --trace                print neuron-rt's spans as they close (neuron_rt.pool.infer,
                         neuron_rt.schedule, neuron_rt.wait, ...: one line each, with its
                         fields and time) on stderr; filter: RUST_LOG's target=level
                         directives, default neuron_rt=debug";

/// The arguments without `--trace` (it takes no value, unlike the others), and whether
/// it was there.
pub fn take_trace_flag(args: impl Iterator<Item = String>) -> (Vec<String>, bool) {
    let (trace, rest): (Vec<String>, Vec<String>) = args.partition(|a| a == "--trace");
    (rest, !trace.is_empty())
}

/// Installs the fmt subscriber of `--trace`: a line per span close (`FmtSpan::CLOSE`,
/// with its busy and idle times), on stderr, filtered by `RUST_LOG` (`target=level`
/// directives) or `neuron_rt=debug`.
pub fn init_trace() -> Result<(), String> {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::fmt::format::FmtSpan;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let directives = std::env::var("RUST_LOG").unwrap_or_else(|_| "neuron_rt=debug".into());
    let filter: Targets = directives
        .parse()
        .map_err(|e| format!("RUST_LOG `{directives}`: {e}"))?;
    let fmt = tracing_subscriber::fmt::layer()
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    tracing_subscriber::registry()
        .with(fmt)
        .with(filter)
        .try_init()
        .map_err(|e| format!("--trace: {e}"))
}

/// The upper bounds (seconds) of the request-duration histogram, then `+Inf`.
pub const BOUNDS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The content type of the OpenMetrics text format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /metrics`: the pool's families in the OpenMetrics text format (ends in `# EOF`).
pub async fn metrics(State(app): State<App>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, OPENMETRICS)],
        openmetrics(&app.pool, app.openai.as_deref()),
    )
}

/// The text of one scrape of `pool` and of the generation service.
pub fn openmetrics(pool: &ModelPool, generation: Option<&Service>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(PoolCollector {
        metrics: pool.metrics(),
    }));
    if let Some(s) = generation {
        let cores = s.batcher.metrics();
        registry.register_collector(Box::new(BatchCollector { cores }));
        let stats = s.stats.clone();
        let help = "Time from a generation request's body read to its first token";
        registry.register_with_unit(
            "neuron_rt_time_to_first_token",
            help,
            Unit::Seconds,
            stats.ttft,
        );
        let help = "Time between two tokens of a generated sequence";
        registry.register_with_unit(
            "neuron_rt_inter_token_latency",
            help,
            Unit::Seconds,
            stats.itl,
        );
    }
    let mut text = String::new();
    // Writing into a String does not fail.
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .expect("encoding into a String");
    text
}

/// One snapshot of the pool, encoded as the families of the module docs.
#[derive(Debug)]
struct PoolCollector {
    metrics: PoolMetrics,
}

type Labels = Vec<(&'static str, String)>;

impl PoolCollector {
    fn labels(&self) -> impl Iterator<Item = (Labels, &neuron_rt::RequestCounts)> {
        self.metrics.copies.iter().map(|c| {
            let labels = vec![("copy", c.copy.to_string()), ("core", c.core.to_string())];
            (labels, &c.counts)
        })
    }
}

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let help = "Requests of a copy of the model that ended, by outcome";
        let mut family =
            encoder.encode_descriptor("neuron_rt_requests", help, None, MetricType::Counter)?;
        for (labels, c) in self.labels() {
            let outcomes = [
                ("ok", c.ok),
                ("failed", c.failed),
                ("refused", c.refused),
                ("cancelled", c.cancelled),
            ];
            for (outcome, n) in outcomes {
                let mut labels = labels.clone();
                labels.push(("outcome", outcome.into()));
                let mut series = family.encode_family(&labels)?;
                series.encode_counter::<NoLabelSet, _, u64>(&n, None)?;
            }
        }
        for (name, help, value) in [
            (
                "neuron_rt_in_flight",
                "Requests admitted to the copy's compute unit and not finished",
                (|c: &neuron_rt::RequestCounts| c.in_flight) as fn(&_) -> u64,
            ),
            (
                "neuron_rt_waiting",
                "Requests dispatched to the copy and not admitted yet",
                |c| c.waiting,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (labels, c) in self.labels() {
                family.encode_family(&labels)?.encode_gauge(&value(c))?;
            }
        }
        let help = "Time the copy's requests kept its core busy, as the host sees it";
        let mut family = encoder.encode_descriptor(
            "neuron_rt_device_busy",
            help,
            Some(&Unit::Seconds),
            MetricType::Counter,
        )?;
        for (labels, c) in self.labels() {
            let busy = c.device_busy.as_secs_f64();
            let mut series = family.encode_family(&labels)?;
            series.encode_counter::<NoLabelSet, _, f64>(&busy, None)?;
        }
        let help = "Latency of successful requests, from dispatch to outputs read back";
        let mut family = encoder.encode_descriptor(
            "neuron_rt_request_duration",
            help,
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for (labels, c) in self.labels() {
            let (sum, count, buckets) = histogram(&c.latency);
            let mut series = family.encode_family(&labels)?;
            series.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }
        Ok(())
    }
}

/// One snapshot of the batcher's cores.
#[derive(Debug)]
struct BatchCollector {
    cores: Vec<neuron_rt::generate::CoreBatchMetrics>,
}

impl Collector for BatchCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let help = "Tokens the core's batcher generated";
        let mut family = encoder.encode_descriptor(
            "neuron_rt_generated_tokens",
            help,
            None,
            MetricType::Counter,
        )?;
        for c in &self.cores {
            let labels = [("core", c.core.to_string())];
            let mut series = family.encode_family(&labels)?;
            series.encode_counter::<NoLabelSet, _, u64>(&c.tokens, None)?;
        }
        type Of = fn(&neuron_rt::generate::CoreBatchMetrics) -> u64;
        let gauges: [(&str, &str, Of); 3] = [
            (
                "neuron_rt_generation_running",
                "Sequences in a cache slot of the core",
                |c| c.running as u64,
            ),
            (
                "neuron_rt_generation_waiting",
                "Generation requests waiting for a slot of the core",
                |c| c.waiting as u64,
            ),
            (
                "neuron_rt_generation_free_slots",
                "Cache slots of the core free (none once its unit died)",
                |c| match c.dead {
                    Some(_) => 0,
                    None => c.slots.saturating_sub(c.running) as u64,
                },
            ),
        ];
        for (name, help, value) in gauges {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for c in &self.cores {
                let labels = [("core", c.core.to_string())];
                family.encode_family(&labels)?.encode_gauge(&value(c))?;
            }
        }
        Ok(())
    }
}

/// The snapshot's histogram over [`BOUNDS`]: its sum (from the middle of each of the
/// snapshot's buckets, within their ~3 % precision), its count and the count per bound
/// (not accumulated: the encoder accumulates), the last one `+Inf` (`f64::MAX`).
fn histogram(latency: &LatencyHistogram) -> (f64, u64, Vec<(f64, u64)>) {
    let mut buckets: Vec<(f64, u64)> = BOUNDS.iter().map(|&b| (b, 0)).collect();
    buckets.push((f64::MAX, 0));
    let mut sum = 0.0;
    for (upper, n) in latency.buckets() {
        // The snapshot's bucket holds [its lower bound, `upper`): it counts under the
        // first bound at or above `upper`, so no value lands below its own.
        let at = BOUNDS
            .iter()
            .position(|&b| upper.as_secs_f64() <= b)
            .unwrap_or(BOUNDS.len());
        buckets[at].1 += n;
        // Its width: 1 µs below 64 µs, then 1/32 of its octave (about upper / 33).
        let width = (upper / 33).max(Duration::from_micros(1));
        sum += (upper - width / 2).as_secs_f64() * n as f64;
    }
    (sum, latency.count(), buckets)
}
