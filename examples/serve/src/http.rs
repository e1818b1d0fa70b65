//! The HTTP face of the service (axum): `POST /infer` runs a request on the pool,
//! `GET /metrics` shows the pool's counters and this service's own.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use axum::extract::{State, rejection::JsonRejection};
use axum::{Json, Router, http::StatusCode, routing::get, routing::post};
use neuron_rt::{Error, Input, ModelPool, RequestCounts};
use serde_json::{Value, json};

/// The pool, and the answers counted by kind.
#[derive(Clone)]
pub struct App {
    pub pool: ModelPool,
    pub counts: Arc<Counts>,
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

pub fn router(pool: ModelPool) -> (Router, App) {
    let app = App {
        pool,
        counts: Arc::default(),
    };
    let router = Router::new()
        .route("/infer", post(infer))
        .route("/metrics", get(metrics));
    (router.with_state(app.clone()), app)
}

async fn infer(State(app): State<App>, body: Result<Json<InferRequest>, JsonRejection>) -> Answer {
    let c = &app.counts;
    let answer = match body {
        // Its own task: a client that hangs up does not cancel it, so the counters see
        // every request to its end (cancelling would be safe for the pool).
        Ok(Json(request)) => tokio::spawn(run(app.pool.clone(), request))
            .await
            .unwrap_or_else(|e| {
                Err((
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(json!({"error": e.to_string()})),
                ))
            }),
        Err(rejection) => Err((
            rejection.status(),
            Json(json!({"error": rejection.body_text()})),
        )),
    };
    let kind = match &answer {
        Ok(_) => None,
        Err((status, _)) if status.is_client_error() => Some(&c.bad_requests),
        Err((_, body)) if body["fatal"] == json!(true) => Some(&c.fatal),
        Err(_) => None,
    };
    kind.map(|k| k.fetch_add(1, Relaxed));
    let total = if answer.is_ok() { &c.ok } else { &c.errors };
    total.fetch_add(1, Relaxed);
    answer.unwrap_or_else(|failure| failure)
}

async fn run(pool: ModelPool, mut request: InferRequest) -> Result<Answer, Answer> {
    let started = Instant::now();
    let bad = |message: String| (StatusCode::BAD_REQUEST, Json(json!({ "error": message })));
    let mut inputs: Vec<(&str, Input<'static>)> = Vec::new();
    for info in pool.inputs() {
        let value = (request.inputs.remove(&info.name))
            .ok_or_else(|| bad(format!("input `{}` is missing", info.name)))?;
        inputs.push((&info.name, crate::json::parse(info, &value).map_err(bad)?));
    }
    if let Some(name) = request.inputs.keys().next() {
        return Err(bad(format!("the model has no input `{name}`")));
    }
    let outputs = pool.infer(&inputs).await.map_err(device_error)?;
    let outputs: serde_json::Map<String, Value> = outputs
        .iter()
        .map(|o| (o.name().to_owned(), crate::json::output(o)))
        .collect();
    let latency_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    Ok((
        StatusCode::OK,
        Json(json!({ "outputs": outputs, "latency_ms": latency_ms })),
    ))
}

/// 503 when no copy can serve or the unit died (the request may be retried), 400 for
/// inputs the pool refused, else 500; with the status and whether it was fatal.
fn device_error(e: Error) -> Answer {
    let http = match &e {
        Error::PoolUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ if e.is_fatal() => StatusCode::SERVICE_UNAVAILABLE,
        _ if e.status().is_some() => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    let (status, fatal) = (e.status(), e.is_fatal());
    let (name, code) = (status.map(|s| format!("{s:?}")), status.map(|s| s.as_raw()));
    let body = json!({"error": e.to_string(), "status": name, "code": code, "fatal": fatal});
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
    let (h, ms) = (&m.total.latency, |d: std::time::Duration| {
        d.as_secs_f64() * 1e3
    });
    let latency = json!({"count": h.count(), "p50_ms": ms(h.percentile(0.5)), "p99_ms": ms(h.percentile(0.99))});
    Json(json!({
        "requests": ok + errors, "ok": ok, "errors": errors, "fatal": c.fatal.load(Relaxed),
        "bad_requests": c.bad_requests.load(Relaxed), "latency": latency,
        "pool": counts(&m.total), "copies": copies,
    }))
}
