//! The service over real HTTP on 127.0.0.1, on the in-process simulator (2 cores).

use hyper::StatusCode;
use neuron_rt::DType;
use serde_json::{Value, json};

use crate::load;

// One test (one runtime per process at a time): answers, refusals, faults, metrics.
#[test]
fn answers_refusals_and_dead_cores_over_http() {
    crate::openai_tests::serialized(answers_refusals_and_dead_cores());
}

async fn answers_refusals_and_dead_cores() {
    let args = "--listen 127.0.0.1:0 --device-ms 0.2 --elements 4".split(' ');
    let o = crate::parse_args(args.map(String::from)).expect("options");
    let (addr, app, _server) = crate::start(&o).await.expect("service");
    let sim = app.sim.expect("nrt-sim");
    // The injected faults' log lines go to a buffer (asserted on below), not to stderr.
    sim.capture_log(true);
    let mut client = load::connect(addr).await.expect("connect");
    let mut infer = async |inputs: Value| {
        let body = Some(json!({ "inputs": inputs }));
        let answer = load::request(&mut client, "/infer", body).await;
        answer.expect("HTTP")
    };

    let (status, answer) = infer(json!({"x": [1, 2, 3.5, -1]})).await;
    let y = &answer["outputs"]["y"];
    assert_eq!((status, y), (StatusCode::OK, &json!([3.0, 5.0, 8.0, -1.0])));
    for (inputs, says) in [
        (json!({"x": [1e300]}), "`x`[0]: 1e+300 is not a f32"),
        (
            json!({"x": [1, 2]}),
            "model `double_plus_one`: input `x` expects f32 [4] (4 elements), got 2 elements",
        ),
        (json!({}), "input `x` is missing"),
        (json!({"x": [0, 0, 0, 0], "z": [1]}), "no input `z`"),
    ] {
        let (status, answer) = infer(inputs).await;
        let error = answer["error"].as_str().unwrap_or("");
        let refused = status == StatusCode::BAD_REQUEST && error.contains(says);
        assert!(refused, "{answer}");
    }
    let x = json!({"x": [1, 1, 1, 1]});
    sim.inject_faults("exec:nth=1:status=1003").expect("fault");
    let (status, answer) = infer(x.clone()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{answer}");
    assert_eq!(answer["kind"], "device_failure", "{answer}");
    let log = sim.take_log();
    let fault = "injected execution fault 1003 (NRT_EXEC_COMPLETED_WITH_NUM_ERR)";
    assert!(log.iter().any(|l| l.contains(fault)), "{log:?}");
    let status = (&answer["status"], &answer["code"]);
    assert_eq!(status, (&json!("ExecCompletedWithNumErr"), &json!(1003)));
    // Core 0's compute unit dies: requests go to core 1; then core 1's: nothing is left.
    sim.inject_faults("xu:vnc=0:type=compute").expect("fault");
    for _ in 0..4 {
        assert_eq!(infer(x.clone()).await.0, StatusCode::OK);
    }
    sim.inject_faults("xu:vnc=1:type=compute").expect("fault");
    let (status, answer) = infer(x.clone()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["kind"], "unavailable", "{answer}");
    sim.clear_faults();
    let metrics = load::request(&mut client, "/metrics.json", None).await;
    let (status, m) = metrics.expect("HTTP");
    assert_eq!(status, StatusCode::OK);
    for (key, n) in [("ok", 5), ("bad_requests", 4), ("errors", 6)] {
        assert_eq!(m[key], n, "{key}: {m}");
    }
    assert_eq!(m["latency"]["count"], 5);
    assert_eq!(m["copies"][0]["in_service"], false);
    assert_eq!(m["copies"][1]["in_service"], false);
}

#[test]
fn json_values_must_fit_the_inputs_dtype() {
    for (dtype, values, refusal) in [
        (DType::U8, json!([0, 255]), None),
        (DType::U8, json!([300, 0]), Some("`t`[0]: 300 is not a u8")),
        (
            DType::I64,
            json!([1.5, 0]),
            Some("`t`[0]: 1.5 is not a i64"),
        ),
        (
            DType::I8,
            json!([0, -129]),
            Some("`t`[1]: -129 is not a i8"),
        ),
        (DType::U64, json!([u64::MAX, 0]), None),
        (DType::BF16, json!([1e39, 0]), Some("1e+39 is not a bf16")),
        (DType::F16, json!([65504.0, -1]), None),
        (DType::F16, json!([1e5, 0]), Some("100000.0 is not a f16")),
    ] {
        let parsed = crate::json::parse("t", dtype, &values).map(|i| i.len_bytes());
        let size = 2 * dtype.size_in_bytes().unwrap_or(0);
        match refusal {
            None => assert_eq!(parsed, Ok(size), "{values}"),
            Some(says) => assert!(parsed.unwrap_err().contains(says), "{values}"),
        }
    }
}
