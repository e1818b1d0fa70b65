//! The service over real HTTP on 127.0.0.1, on the in-process simulator (2 cores).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use neuron_rt::Runtime;
use nrt_sim::SimControl;
use serde_json::{Value, json};

use crate::load::{self, Sender};
use crate::service::Service;

/// One runtime per library at a time: the tests take turns.
static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Server {
    addr: SocketAddr,
    service: Arc<Service>,
    task: tokio::task::JoinHandle<()>,
    sim: SimControl,
}

async fn start(elements: u32) -> Server {
    let lib = nrt_sim::library();
    let sim = SimControl::new(lib).expect("nrt-sim");
    sim.clear_faults();
    let runtime = Runtime::builder()
        .library(lib)
        .build()
        .expect("runtime on nrt-sim");
    let neff = crate::sim_model(Duration::from_micros(200), elements).expect("model");
    let service = Arc::new(Service::new(&runtime, &neff, &[0, 1]).expect("service"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let router = crate::http::router(service.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Server {
        addr,
        service,
        task,
        sim,
    }
}

impl Server {
    /// Stops serving and waits until every handle of the service (and so the runtime)
    /// is gone, so that the next test can open the runtime again.
    async fn stop(self) {
        self.sim.clear_faults();
        self.task.abort();
        let _ = self.task.await;
        let started = Instant::now();
        // Connection tasks end when their client hung up; they hold the router.
        while Arc::strong_count(&self.service) > 1 && started.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            Arc::strong_count(&self.service),
            1,
            "the service is still in use"
        );
    }
}

async fn call(client: &mut Sender, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
    let body = if body.is_null() {
        Bytes::new()
    } else {
        Bytes::from(body.to_string())
    };
    let (status, bytes) = load::request(client, method, path, body)
        .await
        .expect("HTTP");
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

async fn infer(client: &mut Sender, x: f32) -> (StatusCode, Value) {
    call(
        client,
        Method::POST,
        "/infer",
        json!({"inputs": {"x": vec![x; 16]}}),
    )
    .await
}

#[tokio::test]
async fn a_request_round_trips_and_shows_in_the_metrics() {
    let _turn = LOCK.lock().await;
    let server = start(16).await;
    let mut client = load::connect(server.addr).await.expect("connect");

    let (status, answer) = infer(&mut client, 3.0).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["outputs"]["y"], json!(vec![7.0; 16]));

    let (status, answer) = call(&mut client, Method::POST, "/infer", json!({"inputs": {}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or("")
            .contains("`x` is missing"),
        "{answer}"
    );
    let (status, _) = call(&mut client, Method::POST, "/infer", json!({"nothing": 1})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (status, metrics) = call(&mut client, Method::GET, "/metrics", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&metrics["requests"], &metrics["ok"], &metrics["errors"]),
        (&json!(3), &json!(1), &json!(2))
    );
    assert_eq!(metrics["latency"]["count"], json!(1));
    assert_eq!(metrics["cores"].as_array().map(Vec::len), Some(2));
    drop(client);
    server.stop().await;
}

#[tokio::test]
async fn failures_carry_their_status_and_dead_cores_leave_the_rotation() {
    let _turn = LOCK.lock().await;
    let server = start(16).await;
    let mut client = load::connect(server.addr).await.expect("connect");

    // The next execution on either core completes with numerical errors.
    server
        .sim
        .inject_faults("exec:nth=1:status=1003")
        .expect("fault spec");
    let (status, answer) = infer(&mut client, 1.0).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{answer}");
    assert_eq!(answer["status"], json!("ExecCompletedWithNumErr"));
    assert_eq!(answer["code"], json!(1003));
    let (status, _) = infer(&mut client, 1.0).await;
    assert_eq!(status, StatusCode::OK, "the fault was used up");

    // Core 0's compute unit dies: every request goes to core 1.
    server
        .sim
        .inject_faults("xu:vnc=0:type=compute")
        .expect("fault spec");
    for x in 0..6 {
        let (status, answer) = infer(&mut client, x as f32).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["core"], json!(1));
    }
    let (_, metrics) = call(&mut client, Method::GET, "/metrics", Value::Null).await;
    assert_eq!(metrics["cores"][0]["in_service"], json!(false), "{metrics}");
    assert_eq!(metrics["cores"][1]["in_service"], json!(true), "{metrics}");

    // And then core 1's: nothing is left to serve.
    server
        .sim
        .inject_faults("xu:vnc=1:type=compute")
        .expect("fault spec");
    let (status, answer) = infer(&mut client, 1.0).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    let (status, _) = infer(&mut client, 1.0).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    drop(client);
    server.stop().await;
}

#[tokio::test]
async fn large_tensors_go_through_the_tensor_op_unit() {
    let _turn = LOCK.lock().await;
    // 80 KB per tensor: above SYNC_COPY_MAX, written and read by scheduled transfers.
    let n = 20_000;
    assert!(n * 4 > crate::tensors::SYNC_COPY_MAX);
    let server = start(n as u32).await;
    let before = server
        .sim
        .counters()
        .cores
        .iter()
        .map(|c| c.tensor_ops)
        .sum::<u64>();
    let mut client = load::connect(server.addr).await.expect("connect");
    let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let (status, answer) = call(
        &mut client,
        Method::POST,
        "/infer",
        json!({"inputs": {"x": x}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let y: Vec<f32> = (0..n).map(|i| 2.0 * i as f32 + 1.0).collect();
    assert_eq!(answer["outputs"]["y"], json!(y));
    let after = server
        .sim
        .counters()
        .cores
        .iter()
        .map(|c| c.tensor_ops)
        .sum::<u64>();
    assert_eq!(
        after - before,
        2,
        "one scheduled write and one scheduled read"
    );
    drop(client);
    server.stop().await;
}
