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
use neuron_rt::TensorInfo;
use serde_json::{Value, json};

use crate::{Options, text};

/// What the clients saw: answers, errors (HTTP errors, broken connections, wrong
/// outputs) and requests with no answer in time.
#[derive(Debug, Default)]
pub struct Outcome {
    pub ok: usize,
    pub hung: usize,
    /// Errors by status (`"ExecCompletedWithNumErr"`, ..., `"HTTP 400"`, `"wrong outputs"`).
    pub error_kinds: BTreeMap<String, usize>,
    pub latencies: Vec<Duration>,
    pub wall: Duration,
}

pub type Sender = SendRequest<Full<Bytes>>;
pub type Answer = Result<(StatusCode, Value), String>;

/// A keep-alive HTTP/1.1 connection to `addr`.
pub async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(text)?;
    stream.set_nodelay(true).map_err(text)?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (sender, connection) = http1::handshake(io).await.map_err(text)?;
    tokio::spawn(connection); // ends when the sender is dropped or the server hangs up
    Ok(sender)
}

/// One request on the connection (POST with a JSON body, GET without): the response's
/// status and JSON body (`null` if it is not JSON).
pub async fn request(s: &mut Sender, path: &str, body: Option<Value>) -> Answer {
    s.ready().await.map_err(text)?;
    let method = body.as_ref().map_or(Method::GET, |_| Method::POST);
    let request = Request::builder().method(method).uri(path);
    let request = request.header(header::HOST, "127.0.0.1");
    let request = request.header(header::CONTENT_TYPE, "application/json");
    let body = Full::new(body.map_or_else(Bytes::new, |b| b.to_string().into()));
    let response = s.send_request(request.body(body).map_err(text)?);
    let response = response.await.map_err(text)?;
    let status = response.status();
    let body = response.into_body().collect().await.map_err(text)?;
    let body = serde_json::from_slice(&body.to_bytes()).unwrap_or_default();
    Ok((status, body))
}

impl Outcome {
    /// Counts one answer (`None`: none in time); with `expected`, every value of the
    /// output `y` must be it.
    fn record(&mut self, answer: Option<Answer>, expected: Option<f64>) {
        let (status, body) = match answer {
            None => return self.hung += 1,
            Some(Err(e)) => (StatusCode::BAD_GATEWAY, json!({ "status": e })),
            Some(Ok(answer)) => answer,
        };
        let y = body["outputs"]["y"].as_array().filter(|y| !y.is_empty());
        let right = |e| y.is_some_and(|y| y.iter().all(|v| v.as_f64() == Some(e)));
        let kind = match body["status"].as_str() {
            _ if status == StatusCode::OK && expected.is_none_or(right) => return self.ok += 1,
            _ if status == StatusCode::OK => "wrong outputs".to_owned(),
            Some(kind) => kind.to_owned(),
            None => format!("HTTP {}", status.as_u16()),
        };
        *self.error_kinds.entry(kind).or_default() += 1;
    }
}

/// Sends `o.load` requests from `o.concurrency` clients, every input filled with one
/// value x; on the simulator's model the answer must be `2x + 1`. Each ends within
/// `o.timeout`, else it counts as hung and its connection is replaced.
pub async fn run(addr: SocketAddr, o: &Options, inputs: &[TensorInfo]) -> Outcome {
    let (requests, check, timeout) = (o.load.unwrap_or(0), o.neff.is_none(), o.timeout);
    let count = |t: &TensorInfo| (t.name.clone(), t.element_count().unwrap_or(0));
    let inputs: Arc<[_]> = inputs.iter().map(count).collect();
    let next = Arc::new(AtomicUsize::new(0));
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..o.concurrency {
        let (next, outcome, inputs) = (next.clone(), outcome.clone(), inputs.clone());
        clients.spawn(async move {
            let mut sender: Option<Sender> = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    break;
                }
                let x = (i % 1000) as f64;
                let fill = |(name, n): &(String, usize)| (name.clone(), json!(vec![x; *n]));
                let values: serde_json::Map<_, _> = inputs.iter().map(fill).collect();
                let body = json!({ "inputs": values });
                let t0 = Instant::now();
                // The connection is kept only after an answer (hung or broken: its state
                // is unknown).
                let answer = tokio::time::timeout(timeout, async {
                    let mut s = match sender.take() {
                        Some(s) => s,
                        None => connect(addr).await?,
                    };
                    let answer = request(&mut s, "/infer", Some(body)).await?;
                    sender = Some(s);
                    Ok(answer)
                });
                let answer = answer.await.ok();
                let mut outcome = outcome.lock().unwrap_or_else(|e| e.into_inner());
                outcome.latencies.push(t0.elapsed());
                outcome.record(answer, check.then_some(2.0 * x + 1.0));
            }
        });
    }
    // A client does not panic: a lost request shows as missing.
    while clients.join_next().await.is_some() {}
    let mut outcome = std::mem::take(&mut *outcome.lock().unwrap_or_else(|e| e.into_inner()));
    outcome.wall = started.elapsed();
    outcome.latencies.sort_unstable();
    outcome
}
