//! The OpenAI load (`--load N --openai`): N streaming greedy `/v1/completions` requests
//! from C keep-alive clients, each bounded by the timeout, and the checks: every stream
//! ends with `[DONE]`, each successful text equals its prompt's completion generated
//! alone (non-streamed, one at a time, before the load), errors only with injected
//! faults (an error chunk or an error status with `Retry-After`: never a hang), every
//! slot free after, and then (faults disarmed) each prompt served again as before.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, header};
use serde_json::{Value, json};

use crate::http::App;
use crate::load::{Sender, connect};
use crate::{Options, text};

/// What a client saw of one request.
#[derive(Debug, Default)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    /// The JSON of each `data:` event before `[DONE]` (a non-stream answer: its body).
    pub events: Vec<Value>,
    /// `data: [DONE]` came last.
    pub done: bool,
    /// From the request to the first event with text.
    pub first_text: Option<Duration>,
}

impl Answer {
    /// The streamed text: each chunk's `choices[0].text` or `.delta.content`.
    pub fn text(&self) -> String {
        let piece = |e: &Value| {
            let c = &e["choices"][0];
            let t = c["text"].as_str().or(c["delta"]["content"].as_str());
            t.unwrap_or("").to_owned()
        };
        self.events.iter().map(piece).collect()
    }

    /// A JSON answer's text (`choices[0].text` or `.message.content`; empty if none).
    pub fn answer_text(&self) -> String {
        let c = self.events.first().map(|e| &e["choices"][0]);
        let text = c.and_then(|c| c["text"].as_str().or(c["message"]["content"].as_str()));
        text.unwrap_or("").to_owned()
    }

    /// The first error event (or error body).
    pub fn error(&self) -> Option<&Value> {
        self.events.iter().find(|e| e.get("error").is_some())
    }

    /// The finish reason of the stream (or of the answer).
    pub fn finish_reason(&self) -> Option<&str> {
        let mut reasons = self.events.iter().rev();
        reasons.find_map(|e| e["choices"][0]["finish_reason"].as_str())
    }
}

/// POSTs `body` to `path`; reads SSE events as they come (or one JSON body).
pub async fn post(s: &mut Sender, path: &str, body: &Value) -> Result<Answer, String> {
    s.ready().await.map_err(text)?;
    let request = Request::builder().method(Method::POST).uri(path);
    let request = request.header(header::HOST, "127.0.0.1");
    let request = request.header(header::CONTENT_TYPE, "application/json");
    let request = request
        .body(Full::new(body.to_string().into()))
        .map_err(text)?;
    let sent = Instant::now();
    let response = s.send_request(request).await.map_err(text)?;
    let mut a = Answer {
        status: response.status().as_u16(),
        retry_after: (response.headers().get(header::RETRY_AFTER))
            .and_then(|v| v.to_str().ok().map(str::to_owned)),
        ..Answer::default()
    };
    let sse = (response.headers().get(header::CONTENT_TYPE))
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let mut body = response.into_body();
    let mut buffer = String::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(text)?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        buffer.push_str(&String::from_utf8_lossy(data));
        while let Some(end) = buffer.find("\n\n").filter(|_| sse) {
            let event: String = buffer.drain(..end + 2).collect();
            let data = event.trim_end().strip_prefix("data: ").unwrap_or("");
            if a.done {
                return Err(format!("an event after [DONE]: {event:?}"));
            }
            if data == "[DONE]" {
                a.done = true;
                continue;
            }
            let v: Value = serde_json::from_str(data).map_err(|e| format!("{e}: {data:?}"))?;
            let piece = Answer {
                events: vec![v.clone()],
                ..Answer::default()
            }
            .text();
            if a.first_text.is_none() && !piece.is_empty() {
                a.first_text = Some(sent.elapsed());
            }
            a.events.push(v);
        }
    }
    if !sse {
        a.events
            .push(serde_json::from_str(&buffer).unwrap_or_default());
    } else if !buffer.is_empty() {
        return Err(format!("a partial event at the end: {buffer:?}"));
    }
    Ok(a)
}

/// A greedy completion request of `max_tokens` for `prompt`.
pub fn greedy(model: &str, prompt: &str, max_tokens: u32, stream: bool) -> Value {
    json!({"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
        "stream": stream, "stream_options": {"include_usage": stream}})
}

/// Whether the batcher's live cores have no sequence running or waiting, waiting up to
/// `patience` for it.
pub async fn settles(app: &App, patience: Duration) -> bool {
    let Some(s) = &app.openai else { return true };
    let deadline = Instant::now() + patience;
    loop {
        let m = s.batcher.metrics();
        if m.iter()
            .all(|c| c.dead.is_some() || (c.running == 0 && c.waiting == 0))
        {
            return true;
        }
        if Instant::now() > deadline {
            eprintln!("  not idle: {m:?}");
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Each prompt once more, non-streamed: it must succeed, as its reference (if any).
async fn again(
    addr: SocketAddr,
    model: &str,
    m: u32,
    reference: &[Option<String>],
) -> Result<(), String> {
    let mut s = connect(addr).await?;
    for (k, expected) in reference.iter().enumerate() {
        let a = post(
            &mut s,
            "/v1/completions",
            &greedy(model, &prompt(k), m, false),
        )
        .await?;
        let text = a.answer_text();
        if a.status != 200 || expected.as_ref().is_some_and(|r| *r != text) {
            return Err(format!(
                "prompt {k}: HTTP {} {:?}, expected {expected:?}",
                a.status, a.events
            ));
        }
    }
    Ok(())
}

const PROMPTS: usize = 16;

fn prompt(k: usize) -> String {
    format!("Request {k}: the quick brown fox jumps over the lazy dog")
}

#[derive(Default)]
struct Tally {
    ok: usize,
    errors: usize,
    hung: usize,
    broken: usize,
    mismatched: usize,
    tokens: u64,
    ttft: Vec<Duration>,
}

/// Runs the load and prints its line and failures; whether it passed.
pub async fn load_run(o: &Options, app: &App, addr: SocketAddr) -> bool {
    let Some(service) = &app.openai else {
        eprintln!("FAIL: no generation bundle to load");
        return false;
    };
    let (requests, model, m) = (o.load.unwrap_or(0), service.model.clone(), o.max_tokens);
    let faults_before = app.sim.map_or(0, |s| s.faults_injected());
    // Each prompt alone first (None: it failed; then its answers are not compared).
    let mut reference: Vec<Option<String>> = Vec::new();
    let mut sender = connect(addr).await.ok();
    for k in 0..PROMPTS {
        let answer = match sender.as_mut() {
            Some(s) => post(s, "/v1/completions", &greedy(&model, &prompt(k), m, false)).await,
            None => Err("no connection".into()),
        };
        let text = answer.ok().filter(|a| a.status == 200);
        let text = text.map(|a| a.answer_text());
        reference.push(text);
    }
    drop(sender);
    let (reference, next) = (Arc::new(reference), Arc::new(AtomicUsize::new(0)));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..o.concurrency {
        let (reference, next, tally, model) = (
            reference.clone(),
            next.clone(),
            tally.clone(),
            model.clone(),
        );
        let timeout = o.timeout;
        clients.spawn(async move {
            let mut sender: Option<Sender> = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    break;
                }
                let k = i % PROMPTS;
                let body = greedy(&model, &prompt(k), m, true);
                let answer = tokio::time::timeout(timeout, async {
                    let mut s = match sender.take() {
                        Some(s) => s,
                        None => connect(addr).await?,
                    };
                    let answer = post(&mut s, "/v1/completions", &body).await?;
                    sender = Some(s);
                    Ok::<_, String>(answer)
                });
                let answer = answer.await;
                let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
                match answer {
                    Err(_) => t.hung += 1,
                    Ok(Err(e)) => {
                        eprintln!("  request {i}: {e}");
                        t.broken += 1;
                    }
                    Ok(Ok(a)) if a.status != 200 && a.retry_after.is_none() && a.status != 500 => {
                        eprintln!("  request {i}: HTTP {} without Retry-After", a.status);
                        t.broken += 1;
                    }
                    Ok(Ok(a)) if a.status != 200 => t.errors += 1,
                    Ok(Ok(a)) if !a.done => t.broken += 1,
                    Ok(Ok(a)) if a.error().is_some() => t.errors += 1,
                    Ok(Ok(a)) => {
                        t.ok += 1;
                        let usage = a.events.last().map(|e| &e["usage"]["completion_tokens"]);
                        t.tokens += usage.and_then(Value::as_u64).unwrap_or(0);
                        t.ttft.extend(a.first_text);
                        let expected = reference[k].as_deref();
                        if expected.is_some_and(|r| r != a.text()) || a.finish_reason().is_none() {
                            eprintln!("  request {i}: {:?} != {expected:?}", a.text());
                            t.mismatched += 1;
                        }
                    }
                }
            }
        });
    }
    while clients.join_next().await.is_some() {}
    let wall = started.elapsed().as_secs_f64().max(1e-9);
    let settled = settles(app, Duration::from_secs(10)).await;
    let mut t = std::mem::take(&mut *tally.lock().unwrap_or_else(|e| e.into_inner()));
    t.ttft.sort_unstable();
    let ms = |p: f64| {
        let rank = ((p * t.ttft.len() as f64).ceil() as usize).clamp(1, t.ttft.len().max(1));
        t.ttft.get(rank - 1).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    let faults = app.sim.map_or(0, |s| s.faults_injected());
    // Then, faults disarmed, the batcher serves each prompt again as before.
    if let Some(sim) = app.sim {
        sim.clear_faults();
    }
    let again = again(addr, &model, m, &reference).await;
    let dead = service
        .batcher
        .metrics()
        .iter()
        .filter(|c| c.dead.is_some())
        .count();
    let (ttft50, ttft99, tps) = (ms(0.5), ms(0.99), t.tokens as f64 / wall);
    println!(
        "openai requests={requests} ok={} errors={} hung={} broken={} mismatched={} tokens={} ttft_p50_ms={ttft50:.2} ttft_p99_ms={ttft99:.2} tokens_per_s={tps:.0} faults={} dead_cores={dead}",
        t.ok,
        t.errors,
        t.hung,
        t.broken,
        t.mismatched,
        t.tokens,
        faults - faults_before
    );
    let mut failures = Vec::new();
    let missing = reference.iter().filter(|r| r.is_none()).count();
    if missing > 0 {
        eprintln!("  {missing} of {PROMPTS} reference prompts failed: not compared");
    }
    if t.hung + t.broken > 0 {
        failures.push(format!("{} hung and {} without [DONE]", t.hung, t.broken));
    }
    if t.mismatched > 0 {
        failures.push(format!(
            "{} texts differ from the prompt generated alone",
            t.mismatched
        ));
    }
    if t.errors > 0 && faults == faults_before {
        failures.push(format!("{} errors without injected faults", t.errors));
    }
    if t.ok + t.errors + t.hung + t.broken != requests {
        failures.push("requests were lost".into());
    }
    if let Err(e) = again {
        failures.push(format!("after the load: {e}"));
    }
    if !settled {
        failures.push("slots still taken after the load".into());
    }
    failures.iter().for_each(|f| eprintln!("FAIL: {f}"));
    failures.is_empty()
}
