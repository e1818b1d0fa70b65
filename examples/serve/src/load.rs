//! The bounded load generator: N requests from C keep-alive HTTP/1.1 clients against the
//! service on 127.0.0.1, each bounded by a timeout.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request, StatusCode, body::Bytes, header};
use serde_json::{Value, json};

use crate::text;

/// What the clients saw: answers, errors (HTTP errors, broken connections, wrong
/// outputs) and requests with no answer in time.
#[derive(Debug, Default)]
pub struct Outcome {
    pub ok: usize,
    pub errors: usize,
    pub hung: usize,
    /// Errors by status (`"ExecCompletedWithNumErr"`, ..., `"HTTP 400"`, `"wrong outputs"`).
    pub error_kinds: BTreeMap<String, usize>,
    pub latencies: Vec<Duration>,
    pub wall: Duration,
}

/// What one request carries: every input (name, element count) filled with one value;
/// whether to check `y = 2x + 1` (the simulator's model).
#[derive(Clone)]
pub struct Workload {
    pub inputs: Vec<(String, usize)>,
    pub check_double_plus_one: bool,
}

pub type Sender = SendRequest<Full<Bytes>>;

/// A keep-alive HTTP/1.1 connection to `addr`.
pub async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(text)?;
    stream.set_nodelay(true).map_err(text)?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (sender, connection) = http1::handshake(io).await.map_err(text)?;
    tokio::spawn(connection); // ends when the sender is dropped or the server hangs up
    Ok(sender)
}

/// One request on the connection: the response's status and body.
pub async fn request(
    s: &mut Sender,
    method: Method,
    path: &str,
    body: Bytes,
) -> Result<(StatusCode, Bytes), String> {
    s.ready().await.map_err(text)?;
    let request = Request::builder().method(method).uri(path);
    let request = request.header(header::HOST, "127.0.0.1");
    let request = request.header(header::CONTENT_TYPE, "application/json");
    let response = s.send_request(request.body(Full::new(body)).map_err(text)?);
    let response = response.await.map_err(text)?;
    let status = response.status();
    let body = response.into_body().collect().await.map_err(text)?;
    Ok((status, body.to_bytes()))
}

type Answer = Option<Result<(StatusCode, Bytes), String>>;

impl Outcome {
    /// Counts one answer (`None`: none in time) to a request with input value `x`.
    fn record(&mut self, w: &Workload, x: f64, latency: Duration, answer: Answer) {
        self.latencies.push(latency);
        let (status, body) = match answer {
            None => return self.hung += 1,
            Some(Err(e)) => (StatusCode::BAD_GATEWAY, json!({ "status": e })),
            Some(Ok((status, bytes))) => {
                (status, serde_json::from_slice(&bytes).unwrap_or_default())
            }
        };
        let y = body["outputs"]["y"].as_array().filter(|y| !y.is_empty());
        let right = y.is_some_and(|y| y.iter().all(|v| v.as_f64() == Some(2.0 * x + 1.0)));
        if status == StatusCode::OK && (right || !w.check_double_plus_one) {
            return self.ok += 1;
        }
        self.errors += 1;
        let kind = match body["status"].as_str() {
            _ if status == StatusCode::OK => "wrong outputs".to_owned(),
            Some(kind) => kind.to_owned(),
            None => format!("HTTP {}", status.as_u16()),
        };
        *self.error_kinds.entry(kind).or_default() += 1;
    }
}

/// Sends `requests` requests from `concurrency` clients; each ends within `timeout`
/// (else it counts as hung and its connection is replaced).
pub async fn run(
    addr: SocketAddr,
    w: Workload,
    requests: usize,
    concurrency: usize,
    timeout: Duration,
) -> Outcome {
    let next = Arc::new(AtomicUsize::new(0));
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let started = Instant::now();
    let clients: Vec<_> = (0..concurrency)
        .map(|_| {
            let (next, outcome, w) = (Arc::clone(&next), Arc::clone(&outcome), w.clone());
            tokio::spawn(async move {
                let mut sender: Option<Sender> = None;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= requests {
                        break;
                    }
                    let x = (i % 1000) as f64;
                    let inputs = w
                        .inputs
                        .iter()
                        .map(|(name, n)| (name.clone(), json!(vec![x; *n])));
                    let inputs: serde_json::Map<String, Value> = inputs.collect();
                    let body = Bytes::from(json!({ "inputs": inputs }).to_string());
                    let t0 = Instant::now();
                    let answer = tokio::time::timeout(timeout, async {
                        let s = match sender.take() {
                            Some(s) => sender.insert(s),
                            None => sender.insert(connect(addr).await?),
                        };
                        request(s, Method::POST, "/infer", body).await
                    });
                    let answer = answer.await.ok();
                    if !matches!(answer, Some(Ok(_))) {
                        sender = None; // hung or broken: the connection's state is unknown
                    }
                    let mut outcome = outcome.lock().unwrap_or_else(|e| e.into_inner());
                    outcome.record(&w, x, t0.elapsed(), answer);
                }
            })
        })
        .collect();
    for client in clients {
        let _ = client.await; // a client does not panic: a lost request shows as missing
    }
    let mut outcome = std::mem::take(&mut *outcome.lock().unwrap_or_else(|e| e.into_inner()));
    outcome.wall = started.elapsed();
    outcome.latencies.sort_unstable();
    outcome
}
