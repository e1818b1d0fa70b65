//! The service over real HTTP on 127.0.0.1, on the in-process simulator (2 cores).

use std::time::Duration;

use hyper::{Method, StatusCode, body::Bytes};
use neuron_rt::{DType, ModelPool, Runtime, TensorInfo, TensorUsage};
use nrt_sim::SimControl;
use serde_json::{Value, json};

use crate::load::{self, Sender};

async fn call(client: &mut Sender, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
    let body = Bytes::from(if body.is_null() {
        String::new()
    } else {
        body.to_string()
    });
    let (status, bytes) = load::request(client, method, path, body)
        .await
        .expect("HTTP");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

// One test (one runtime per process at a time): answers, refusals, faults, metrics.
#[tokio::test]
async fn answers_refusals_and_dead_cores_over_http() {
    let lib = nrt_sim::library();
    let sim = SimControl::new(lib).expect("nrt-sim");
    let runtime = Runtime::builder().library(lib).build().expect("runtime");
    let neff = crate::sim_model(Duration::from_micros(200), 4).expect("model");
    let (router, _) =
        crate::http::router(ModelPool::builder(&runtime, neff).build().expect("pool"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    let mut client = load::connect(addr).await.expect("connect");
    let mut infer = async |inputs: Value| {
        call(
            &mut client,
            Method::POST,
            "/infer",
            json!({ "inputs": inputs }),
        )
        .await
    };

    let (status, answer) = infer(json!({"x": [1, 2, 3.5, -1]})).await;
    assert_eq!(
        (status, &answer["outputs"]["y"]),
        (StatusCode::OK, &json!([3.0, 5.0, 8.0, -1.0]))
    );
    for (inputs, says) in [
        (
            json!({"x": [1e300, 0, 0, 0]}),
            "input `x`[0]: 1e+300 is not a f32",
        ),
        (json!({"x": [1, 2]}), "2 values given"),
        (json!({}), "input `x` is missing"),
        (json!({"x": [0, 0, 0, 0], "z": [1]}), "no input `z`"),
    ] {
        let (status, answer) = infer(inputs).await;
        let error = answer["error"].as_str().unwrap_or("");
        assert!(
            status == StatusCode::BAD_REQUEST && error.contains(says),
            "{answer}"
        );
    }
    let x = json!({"x": [1, 1, 1, 1]});
    sim.inject_faults("exec:nth=1:status=1003")
        .expect("fault spec");
    let (status, answer) = infer(x.clone()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{answer}");
    assert_eq!(
        (&answer["status"], &answer["code"]),
        (&json!("ExecCompletedWithNumErr"), &json!(1003))
    );
    // Core 0's compute unit dies: requests go to core 1; then core 1's: nothing is left.
    sim.inject_faults("xu:vnc=0:type=compute")
        .expect("fault spec");
    for _ in 0..4 {
        assert_eq!(infer(x.clone()).await.0, StatusCode::OK);
    }
    sim.inject_faults("xu:vnc=1:type=compute")
        .expect("fault spec");
    assert_eq!(infer(x.clone()).await.0, StatusCode::SERVICE_UNAVAILABLE);
    sim.clear_faults();
    let (status, m) = call(&mut client, Method::GET, "/metrics", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&m["ok"], &m["bad_requests"], &m["errors"]),
        (&json!(5), &json!(4), &json!(6)),
        "{m}"
    );
    assert_eq!(
        (&m["copies"][0]["in_service"], &m["copies"][1]["in_service"]),
        (&json!(false), &json!(false))
    );
    assert_eq!(m["latency"]["count"], json!(5));
}

#[test]
fn json_values_must_fit_the_inputs_dtype() {
    let parse = |dtype: DType, v: Value| {
        let size = 2 * dtype.size_in_bytes().unwrap_or(1);
        let (name, shape, usage) = ("t".into(), vec![2], TensorUsage::Input);
        let info = TensorInfo {
            name,
            usage,
            size,
            dtype,
            shape,
        };
        crate::json::parse(&info, &v).map(|i| i.len_bytes())
    };
    assert_eq!(parse(DType::U8, json!([0, 255])), Ok(2));
    assert!(
        parse(DType::U8, json!([300, 0]))
            .unwrap_err()
            .contains("`t`[0]: 300 is not a u8")
    );
    assert!(
        parse(DType::I64, json!([1.5, 0]))
            .unwrap_err()
            .contains("1.5 is not a i64")
    );
    assert!(parse(DType::I8, json!([-129, 0])).is_err());
    assert_eq!(parse(DType::U64, json!([u64::MAX, 0])), Ok(16));
    assert!(parse(DType::BF16, json!([1e39, 0])).is_err());
    assert_eq!(parse(DType::F16, json!([65504.0, -1])), Ok(4));
    assert!(parse(DType::F16, json!([1e5, 0])).is_err());
}
