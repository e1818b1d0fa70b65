//! The HTTP face of the service: `POST /infer` and `GET /metrics` (axum).

use std::sync::Arc;

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{Value, json};

use crate::service::{InferError, InferRequest, Service};
use crate::stats::LatencySummary;

pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/infer", post(infer))
        .route("/metrics", get(metrics))
        .with_state(service)
}

async fn infer(
    State(service): State<Arc<Service>>,
    body: Result<Json<InferRequest>, JsonRejection>,
) -> Response {
    let request = match body {
        Ok(Json(request)) => request,
        Err(rejection) => {
            service.stats.requests.add();
            service.stats.bad_requests.add();
            service.stats.errors.add();
            return error_response(rejection.status(), json!({"error": rejection.body_text()}));
        }
    };
    // Its own task: a client that goes away cannot cancel a request the device already
    // has, and the service's counters see every request to its end.
    match tokio::spawn(service.infer(request)).await {
        Ok(Ok(answer)) => Json(answer).into_response(),
        Ok(Err(error)) => error.into_response(),
        Err(join) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": format!("the request's task failed: {join}")}),
        ),
    }
}

fn error_response(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

impl IntoResponse for InferError {
    fn into_response(self) -> Response {
        match self {
            InferError::BadRequest(message) => {
                error_response(StatusCode::BAD_REQUEST, json!({"error": message}))
            }
            InferError::NoCore => error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "no NeuronCore left in service"}),
            ),
            InferError::Device { core, error } => {
                // A fatal status took the core out of service: the request may be retried
                // (elsewhere); any other failure is this request's own.
                let http = if error.is_fatal() {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                };
                let status = error.status();
                error_response(
                    http,
                    json!({
                        "error": error.to_string(),
                        "status": status.map(|s| format!("{s:?}")),
                        "code": status.map(|s| s.as_raw()),
                        "fatal": error.is_fatal(),
                        "core": core,
                    }),
                )
            }
        }
    }
}

#[derive(Serialize)]
struct CoreMetrics {
    core: u32,
    in_service: bool,
    /// The status that took the core out of service.
    dead_status: Option<String>,
    ok: u64,
    failed: u64,
    fatal: u64,
    rerouted: u64,
    assigned: usize,
}

#[derive(Serialize)]
pub struct Metrics {
    requests: u64,
    ok: u64,
    errors: u64,
    bad_requests: u64,
    no_core: u64,
    /// Admission to answer, successful requests (the service's own time).
    latency: LatencySummary,
    /// Accepted by the device queue to completion observed, successful requests.
    device: LatencySummary,
    cores: Vec<CoreMetrics>,
}

pub fn snapshot(service: &Service) -> Metrics {
    let s = &service.stats;
    Metrics {
        requests: s.requests.get(),
        ok: s.ok.get(),
        errors: s.errors.get(),
        bad_requests: s.bad_requests.get(),
        no_core: s.no_core.get(),
        latency: s.latency.summary(),
        device: s.device.summary(),
        cores: service
            .replicas()
            .iter()
            .map(|r| CoreMetrics {
                core: r.core,
                in_service: r.alive(),
                dead_status: r.dead_status().map(|s| format!("{s:?} ({})", s.as_raw())),
                ok: r.stats.ok.get(),
                failed: r.stats.failed.get(),
                fatal: r.stats.fatal.get(),
                rerouted: r.stats.rerouted.get(),
                assigned: r.load(),
            })
            .collect(),
    }
}

async fn metrics(State(service): State<Arc<Service>>) -> Json<Metrics> {
    Json(snapshot(&service))
}
