//! Feature `serde`: a real pool's `PoolMetrics` serializes to JSON with the field names
//! of its structs, durations as f64 seconds and the latency histogram as percentiles and
//! buckets; `CoreBatchMetrics` with its field names.
//!
//! Runs on the dlopen'ed simulator.
#![cfg(feature = "serde")]

mod support;

use std::time::Duration;

use neuron_rt::generate::{Batcher, BatchingOptions, Bundle};
use neuron_rt::{ModelPool, inputs};
use serde_json::Value;

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    k
}

#[test]
fn pool_metrics_serialize_with_field_names_and_seconds() {
    let _g = support::lock();
    let rt = support::runtime();
    let pool = ModelPool::builder(&rt, support::identity_model(Duration::from_millis(3)))
        .build()
        .unwrap();
    for _ in 0..4 {
        pool.infer_blocking(&inputs!["x" => &[1.0f32, 2.0, 3.0, 4.0]])
            .unwrap();
    }
    let metrics = pool.metrics();
    let json: Value = serde_json::from_str(&serde_json::to_string(&metrics).unwrap()).unwrap();

    assert_eq!(keys(&json), ["copies", "rejected", "shut_down", "total"]);
    assert_eq!(json["rejected"], 0);
    assert_eq!(json["shut_down"], false);
    let copies = json["copies"].as_array().unwrap();
    assert_eq!(copies.len(), metrics.copies.len());
    assert_eq!(
        keys(&copies[0]),
        ["copy", "core", "counts", "out_of_service", "sets"]
    );
    assert_eq!(copies[1]["copy"], 1);
    assert_eq!(copies[1]["core"], metrics.copies[1].core);
    assert_eq!(copies[0]["out_of_service"], Value::Null);

    let total = &json["total"];
    assert_eq!(
        keys(total),
        [
            "cancelled",
            "device_busy",
            "failed",
            "in_flight",
            "latency",
            "ok",
            "refused",
            "requests",
            "waiting"
        ]
    );
    assert_eq!(total["ok"], 4);
    assert_eq!(total["requests"], 4);
    // Seconds as a float: four requests of 3 ms of device time each.
    let busy = total["device_busy"].as_f64().expect("a float");
    assert_eq!(busy, metrics.total.device_busy.as_secs_f64());
    assert!((0.012..1.0).contains(&busy), "{busy}");

    let latency = &total["latency"];
    assert_eq!(keys(latency), ["buckets", "count", "p50", "p90", "p99"]);
    assert_eq!(latency["count"], 4);
    let p50 = latency["p50"].as_f64().unwrap();
    assert_eq!(p50, metrics.total.latency.percentile(0.5).as_secs_f64());
    assert!(p50 >= 0.003, "{p50}");
    let buckets = latency["buckets"].as_array().unwrap();
    assert_eq!(
        buckets
            .iter()
            .map(|b| b["count"].as_u64().unwrap())
            .sum::<u64>(),
        4
    );
    let bounds: Vec<f64> = buckets.iter().map(|b| b["le"].as_f64().unwrap()).collect();
    assert!(bounds.windows(2).all(|w| w[0] < w[1]), "{bounds:?}");
    assert!(bounds[0] > p50 - 0.001, "{bounds:?} for p50 {p50}");
}

#[test]
fn batcher_metrics_serialize_with_field_names() {
    let _g = support::lock();
    let rt = support::runtime();
    let dir = tempfile::tempdir().unwrap();
    nrt_sim::decoder::write_bundle(dir.path(), &Default::default()).unwrap();
    let bundle = Bundle::builder(&rt)
        .dir(dir.path())
        .unwrap()
        .cores([0])
        .build()
        .unwrap();
    let batcher = Batcher::new(&bundle, BatchingOptions::default()).unwrap();
    let json = serde_json::to_value(batcher.metrics()).unwrap();
    let core = &json.as_array().unwrap()[0];
    assert_eq!(
        keys(core),
        [
            "admitted",
            "cancelled",
            "core",
            "dead",
            "decode_steps",
            "failed",
            "finished",
            "prefill_chunks",
            "running",
            "slots",
            "tokens",
            "waiting"
        ]
    );
    assert_eq!(core["core"], 0);
    assert_eq!(core["dead"], Value::Null);
    assert_eq!(core["slots"], batcher.metrics()[0].slots);
}
