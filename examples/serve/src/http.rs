//! The HTTP face of the service (axum): `POST /infer` runs a request on the pool,
//! `GET /metrics.json` shows the pool's counters and this service's own (`GET /metrics`:
//! the pool's in the OpenMetrics text format, `observe.rs`); the OpenAI routes are
//! `openai.rs`'s.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use axum::extract::{State, rejection::JsonRejection};
use axum::{Json, Router, http::StatusCode, routing::get, routing::post};
use neuron_rt::{Error, ErrorKind, ModelPool, RequestCounts};
use nrt_sim::SimControl;
use serde_json::{Value, json};

/// The pool, the answers counted by kind, and the simulator (if it is the device).
#[derive(Clone)]
pub struct App {
    pub pool: ModelPool,
    pub counts: Arc<Counts>,
    pub sim: Option<SimControl>,
    /// The OpenAI routes' batcher (none with `--neff` and no `--bundle`).
    pub openai: Option<Arc<crate::openai::Service>>,
}

#[derive(Default)]
pub struct Counts {
    pub ok: AtomicU64,
    pub errors: AtomicU64,
    pub bad_requests: AtomicU64,
    /// Requests failed with a fatal status (their unit died under them).
    pub fatal: AtomicU64,
}

/// The body of `POST /infer`: one flat array per model input.
#[derive(serde::Deserialize)]
pub struct InferRequest {
    inputs: HashMap<String, Value>,
}

type Answer = (StatusCode, Json<Value>);

/// The service's state, and its routes over it.
pub fn app(
    pool: ModelPool,
    sim: Option<SimControl>,
    openai: Option<Arc<crate::openai::Service>>,
) -> (App, Router) {
    let counts = Arc::default();
    let app = App {
        pool,
        counts,
        sim,
        openai,
    };
    let routes = crate::openai::routes().route("/infer", post(infer));
    let routes = routes.route("/metrics.json", get(metrics));
    let routes = routes.route("/metrics", get(crate::observe::metrics));
    (app.clone(), routes.with_state(app))
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Answer {
    (status, Json(json!({ "error": message.to_string() })))
}

async fn infer(State(app): State<App>, body: Result<Json<InferRequest>, JsonRejection>) -> Answer {
    let (status, Json(body)) = match body {
        // Its own task: a client that hangs up does not cancel it, so the counters see
        // every request to its end (cancelling would be safe for the pool).
        Ok(Json(request)) => (tokio::spawn(run(app.pool.clone(), request)).await)
            .unwrap_or_else(|e| Err(error(StatusCode::INTERNAL_SERVER_ERROR, e))),
        Err(rejection) => Err(error(rejection.status(), rejection.body_text())),
    }
    .unwrap_or_else(|failure| failure);
    let c = &app.counts;
    let count = |counter: &AtomicU64, yes: bool| counter.fetch_add(u64::from(yes), Relaxed);
    count(&c.ok, status.is_success());
    count(&c.errors, !status.is_success());
    count(&c.bad_requests, status.is_client_error());
    count(&c.fatal, body["fatal"] == true);
    (status, Json(body))
}

async fn run(pool: ModelPool, request: InferRequest) -> Result<Answer, Answer> {
    let started = Instant::now();
    let inputs = crate::json::inputs(pool.inputs(), request.inputs);
    let inputs = inputs.map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    let outputs = pool.infer(&inputs).await.map_err(device_error)?;
    let outputs: serde_json::Map<String, Value> = (outputs.iter())
        .map(|o| (o.name().to_owned(), crate::json::output(o)))
        .collect();
    let latency_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    let body = json!({ "outputs": outputs, "latency_ms": latency_ms });
    Ok((StatusCode::OK, Json(body)))
}

/// The HTTP status for an error of the pool, by its [`ErrorKind`]: 400 for the caller's
/// inputs, 429 when the device is busy (retry later), 503 when the pool cannot serve or
/// memory ran out, 501 for what the library cannot do, 500 for a device failure and the
/// rest. The body carries the kind, the libnrt status and whether it was fatal.
fn device_error(e: Error) -> Answer {
    let http = match e.kind() {
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::Busy => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::ResourceExhausted | ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Unsupported => StatusCode::NOT_IMPLEMENTED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let (status, fatal, kind) = (e.status(), e.is_fatal(), e.kind().as_str());
    let (name, code) = (status.map(|s| format!("{s:?}")), status.map(|s| s.as_raw()));
    let body =
        json!({"error": e.to_string(), "kind": kind, "status": name, "code": code, "fatal": fatal});
    (http, Json(body))
}

fn counts(c: &RequestCounts) -> Value {
    json!({
        "requests": c.requests, "ok": c.ok, "failed": c.failed, "refused": c.refused,
        "cancelled": c.cancelled, "in_flight": c.in_flight, "waiting": c.waiting,
        "device_busy_ms": c.device_busy.as_secs_f64() * 1e3,
    })
}

async fn metrics(State(app): State<App>) -> Json<Value> {
    let (m, c) = (app.pool.metrics(), &app.counts);
    let copies: Vec<Value> = (m.copies.iter())
        .map(|k| {
            json!({
                "copy": k.copy, "core": k.core, "in_service": k.out_of_service.is_none(),
                "out_of_service": k.out_of_service, "sets": k.sets, "counts": counts(&k.counts),
            })
        })
        .collect();
    let (ok, errors) = (c.ok.load(Relaxed), c.errors.load(Relaxed));
    let (h, ms) = (&m.total.latency, |d: Duration| d.as_secs_f64() * 1e3);
    let latency = json!({"count": h.count(), "p50_ms": ms(h.percentile(0.5)), "p99_ms": ms(h.percentile(0.99))});
    Json(json!({
        "requests": ok + errors, "ok": ok, "errors": errors, "fatal": c.fatal.load(Relaxed),
        "bad_requests": c.bad_requests.load(Relaxed), "latency": latency,
        "pool": counts(&m.total), "copies": copies,
    }))
}
