//! The bounded load generator: N requests from C keep-alive HTTP/1.1 clients against the
//! service on 127.0.0.1, each bounded by a timeout; then one summary line.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

use crate::service::InferResponse;

/// What the clients saw.
#[derive(Debug, Default)]
pub struct Outcome {
    pub requests: usize,
    pub ok: usize,
    /// Answered with an HTTP error, a broken connection or wrong outputs.
    pub errors: usize,
    /// No answer within the timeout.
    pub hung: usize,
    /// Outputs that differ from the model's function (counted in `errors` too).
    pub wrong: usize,
    /// Errors by their typed status (`"ExecCompletedWithNumErr"`, ...), or HTTP status.
    pub error_kinds: Vec<(String, usize)>,
    pub latencies: Vec<Duration>,
    pub wall: Duration,
}

/// What one request should carry and, for the simulator's model, return.
#[derive(Clone)]
pub struct Workload {
    /// Model inputs: name and element count (all sent as numbers).
    pub inputs: Vec<(String, usize)>,
    /// `y = 2x + 1` on input `x` / output `y`: check it.
    pub check_double_plus_one: bool,
}

impl Workload {
    fn body(&self, i: usize) -> (Bytes, f64) {
        let x = (i % 1000) as f64;
        let inputs: serde_json::Map<String, Value> = self
            .inputs
            .iter()
            .map(|(name, n)| (name.clone(), json!(vec![x; *n])))
            .collect();
        (Bytes::from(json!({ "inputs": inputs }).to_string()), x)
    }
}

enum Answer {
    Ok,
    Error(String),
    Wrong,
}

pub type Sender = SendRequest<Full<Bytes>>;

/// A keep-alive HTTP/1.1 connection to `addr`.
pub async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the server closes the connection.
        let _ = connection.await;
    });
    Ok(sender)
}

async fn send(sender: &mut Sender, body: Bytes) -> Result<(StatusCode, Bytes), String> {
    request(sender, Method::POST, "/infer", body).await
}

/// One request on the connection: the response's status and body.
pub async fn request(
    sender: &mut Sender,
    method: Method,
    path: &str,
    body: Bytes,
) -> Result<(StatusCode, Bytes), String> {
    sender.ready().await.map_err(|e| e.to_string())?;
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "127.0.0.1")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, bytes))
}

fn judge(workload: &Workload, x: f64, status: StatusCode, body: &[u8]) -> Answer {
    if status != StatusCode::OK {
        let kind = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("status").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
        return Answer::Error(kind);
    }
    let Ok(answer) = serde_json::from_slice::<InferResponse>(body) else {
        return Answer::Wrong;
    };
    if workload.check_double_plus_one {
        let expected = 2.0 * x + 1.0;
        let right = answer
            .outputs
            .get("y")
            .and_then(Value::as_array)
            .is_some_and(|y| !y.is_empty() && y.iter().all(|v| v.as_f64() == Some(expected)));
        if !right {
            return Answer::Wrong;
        }
    }
    Answer::Ok
}

/// Sends `requests` requests from `concurrency` clients; every request ends within
/// `timeout` (then it counts as hung and its connection is replaced).
pub async fn run(
    addr: SocketAddr,
    workload: Workload,
    requests: usize,
    concurrency: usize,
    timeout: Duration,
) -> Outcome {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let clients: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (next, workload) = (next.clone(), workload.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut sender: Option<Sender> = None;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= requests {
                        break;
                    }
                    let (body, x) = workload.body(i);
                    let t0 = Instant::now();
                    let attempt = tokio::time::timeout(timeout, async {
                        let s = match sender.take() {
                            Some(s) => s,
                            None => connect(addr).await?,
                        };
                        sender = Some(s);
                        let s = sender.as_mut().ok_or("no connection")?;
                        send(s, body).await
                    })
                    .await;
                    let broken = matches!(attempt, Err(_) | Ok(Err(_)));
                    let answer = match attempt {
                        Err(_elapsed) => None,
                        Ok(Err(transport)) => {
                            Some(Answer::Error(format!("transport: {transport}")))
                        }
                        Ok(Ok((status, bytes))) => Some(judge(&workload, x, status, &bytes)),
                    };
                    if broken {
                        // Hung or broken: this connection's state is unknown.
                        sender = None;
                    }
                    seen.push((t0.elapsed(), answer));
                }
                seen
            })
        })
        .collect();
    let mut outcome = Outcome {
        requests,
        ..Outcome::default()
    };
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for client in clients {
        let Ok(seen) = client.await else {
            continue; // a client task cannot panic; any request it lost shows as missing
        };
        for (latency, answer) in seen {
            outcome.latencies.push(latency);
            match answer {
                Some(Answer::Ok) => outcome.ok += 1,
                Some(Answer::Error(kind)) => {
                    outcome.errors += 1;
                    *kinds.entry(kind).or_default() += 1;
                }
                Some(Answer::Wrong) => {
                    outcome.errors += 1;
                    outcome.wrong += 1;
                }
                None => outcome.hung += 1,
            }
        }
    }
    outcome.wall = started.elapsed();
    outcome.latencies.sort_unstable();
    outcome.error_kinds = kinds.into_iter().collect();
    outcome
}
