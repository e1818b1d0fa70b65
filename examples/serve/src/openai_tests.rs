//! The OpenAI routes over real HTTP on 127.0.0.1, on the in-process simulator (2 cores,
//! the small decoder): greedy texts equal the library's `Generator` run alone, streamed
//! or not; chat templates and role-first chunks; stop strings removed; field-named 400s,
//! 404, 429, 503; a failed step as an SSE error chunk; a disconnect frees its slot.

use std::io::{Read, Write};
use std::time::Duration;

use neuron_rt::generate::{Bundle, GenerateOptions, Generator};
use serde_json::{Value, json};

use crate::load::{self, Sender};
use crate::openai_load::{Answer, greedy, post, settles};

/// One runtime per process at a time: every test that starts the service holds this,
/// its tokio runtime (and so the service) dropped before it is released.
pub static RUNTIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `test` on a runtime of its own while holding [`RUNTIME`].
pub fn serialized(test: impl Future<Output = ()>) {
    let _only = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    runtime.expect("tokio").block_on(test);
}

const MODEL: &str = "small-decoder";

async fn completion(s: &mut Sender, body: Value) -> Answer {
    post(s, "/v1/completions", &body).await.expect("HTTP")
}

/// A non-stream answer's text (completion or chat).
fn answer_text(a: &Answer) -> String {
    let c = &a.events[0]["choices"][0];
    let text = c["text"].as_str().or(c["message"]["content"].as_str());
    text.expect("a text").to_owned()
}

/// The status, the `Retry-After` header and the body's `error` of a request on a
/// connection of its own.
async fn refused(addr: std::net::SocketAddr, path: &str, body: Value) -> (u16, Value) {
    let mut s = load::connect(addr).await.expect("connect");
    let a = post(&mut s, path, &body).await.expect("HTTP");
    (a.status, a.events[0]["error"].clone())
}

#[test]
fn openai_routes_over_http() {
    serialized(async {
        let args = "--listen 127.0.0.1:0 --cores 2 --max-waiting 1 --device-ms 1";
        let o = crate::parse_args(args.split(' ').map(String::from)).expect("options");
        let (addr, app, _server) = crate::start(&o).await.expect("service");
        let sim = app.sim.expect("nrt-sim");
        sim.capture_log(true);
        let service = app.openai.clone().expect("the generation service");
        let mut s = load::connect(addr).await.expect("connect");

        let (status, models) = load::request(&mut s, "/v1/models", None)
            .await
            .expect("HTTP");
        assert_eq!(status, 200);
        let expected = json!({"object": "list", "data": [
            {"id": MODEL, "object": "model", "created": 0, "owned_by": "neuron-rt"}]});
        assert_eq!(models, expected);

        // Greedy: streamed pieces, the JSON answer and the Generator alone agree.
        let runtime = service.runtime.clone();
        let alone = Bundle::builder(&runtime).dir(&service.dir).expect("dir");
        let alone = alone.cores([0]).build().expect("a second bundle");
        let generator = Generator::new(&alone, 0).expect("generator");
        let reference = |prompt: &str, n: u32| -> Vec<u8> {
            let ids: Vec<u32> = prompt.bytes().map(u32::from).collect();
            let tokens = generator
                .generate(&ids, &GenerateOptions::new(n))
                .expect("generate");
            let tokens: Vec<u32> = tokens.collect::<neuron_rt::Result<_>>().expect("tokens");
            tokens.iter().map(|&t| t as u8).collect()
        };
        let mut bytes_of_hello = Vec::new();
        for prompt in ["Hello", "The quick brown fox", "é世🎉"] {
            let bytes = reference(prompt, 40);
            let whole = completion(&mut s, greedy(MODEL, prompt, 40, false)).await;
            assert_eq!(whole.status, 200, "{:?}", whole.events);
            let e = &whole.events[0];
            assert_eq!(e["object"], "text_completion");
            assert_eq!(e["choices"][0]["finish_reason"], "length");
            let usage = json!({"prompt_tokens": prompt.len(), "completion_tokens": 40,
                "total_tokens": prompt.len() + 40});
            assert_eq!(e["usage"], usage);
            assert_eq!(
                answer_text(&whole),
                String::from_utf8_lossy(&bytes),
                "{prompt}"
            );
            let streamed = completion(&mut s, greedy(MODEL, prompt, 40, true)).await;
            assert!(streamed.done, "{:?}", streamed.events);
            assert_eq!(streamed.text(), answer_text(&whole), "{prompt}");
            assert_eq!(streamed.finish_reason(), Some("length"));
            let last = streamed.events.last().expect("usage chunk");
            assert_eq!((&last["choices"], &last["usage"]), (&json!([]), &usage));
            if prompt == "Hello" {
                bytes_of_hello = bytes;
            }
        }

        // A stop string: the text before its first occurrence, streamed or not.
        let at = (3..bytes_of_hello.len() - 1)
            .find(|&i| bytes_of_hello[i..i + 2].is_ascii())
            .expect("two ASCII bytes in a row");
        let stop = String::from_utf8_lossy(&bytes_of_hello[at..at + 2]).into_owned();
        let first = (bytes_of_hello.windows(2))
            .position(|w| w == stop.as_bytes())
            .unwrap_or(at);
        let before = String::from_utf8_lossy(&bytes_of_hello[..first]).into_owned();
        for stream in [false, true] {
            let mut body = greedy(MODEL, "Hello", 40, stream);
            body["stop"] = json!([stop, "\u{1}\u{2}never"]);
            let a = completion(&mut s, body).await;
            let text = if stream { a.text() } else { answer_text(&a) };
            assert_eq!(
                (text.as_str(), a.finish_reason()),
                (before.as_str(), Some("stop"))
            );
            assert!(!stream || a.done);
        }

        // Chat: the default template's prompt, role first when streamed.
        let messages =
            json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]);
        let rendered = "<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\n";
        let plain = completion(&mut s, greedy(MODEL, rendered, 12, false)).await;
        let chat = json!({"model": MODEL, "messages": messages, "max_completion_tokens": 12, "temperature": 0});
        let whole = post(&mut s, "/v1/chat/completions", &chat)
            .await
            .expect("HTTP");
        let e = &whole.events[0];
        assert_eq!(
            (&e["object"], &e["choices"][0]["message"]["role"]),
            (&json!("chat.completion"), &json!("assistant"))
        );
        assert_eq!(e["usage"]["prompt_tokens"], rendered.len());
        assert_eq!(answer_text(&whole), answer_text(&plain));
        let mut chat = chat.clone();
        chat["stream"] = json!(true);
        let streamed = post(&mut s, "/v1/chat/completions", &chat)
            .await
            .expect("HTTP");
        assert!(streamed.done);
        let objects = streamed
            .events
            .iter()
            .all(|e| e["object"] == "chat.completion.chunk");
        assert!(objects, "{:?}", streamed.events);
        assert_eq!(
            streamed.events[0]["choices"][0]["delta"]["role"],
            "assistant"
        );
        assert_eq!(streamed.text(), answer_text(&plain));
        assert_eq!(streamed.finish_reason(), Some("length"));

        // Refusals: 400 naming the field (before the model is looked at), 404.
        let long = "x".repeat(1 << 20);
        for (path, body, param) in [
            (
                "/v1/completions",
                json!({"model": MODEL, "prompt": 3}),
                Some("prompt"),
            ),
            (
                "/v1/completions",
                json!({"model": "gpt-9", "prompt": ""}),
                Some("prompt"),
            ),
            (
                "/v1/completions",
                json!({"model": MODEL, "prompt": ["a"]}),
                Some("prompt"),
            ),
            (
                "/v1/completions",
                json!({"model": MODEL, "prompt": "a", "max_tokens": 0}),
                Some("max_tokens"),
            ),
            (
                "/v1/completions",
                json!({"model": MODEL, "prompt": "hello", "max_tokens": 125}),
                Some("max_tokens"),
            ),
            (
                "/v1/completions",
                json!({"model": MODEL, "prompt": "a", "n": 3}),
                Some("n"),
            ),
            (
                "/v1/completions",
                json!({"model": MODEL, "prompt": "a", "echo": true}),
                Some("echo"),
            ),
            (
                "/v1/completions",
                json!({"model": MODEL, "prompt": long}),
                None,
            ),
            (
                "/v1/chat/completions",
                json!({"model": MODEL, "messages": []}),
                Some("messages"),
            ),
            (
                "/v1/chat/completions",
                json!({"model": MODEL, "messages": [{"role": "user", "content": 5}]}),
                Some("messages[0].content"),
            ),
        ] {
            let (status, error) = refused(addr, path, body).await;
            assert_eq!(status, 400, "{param:?}: {error}");
            assert_eq!(error["type"], "invalid_request_error", "{error}");
            assert_eq!(error["param"].as_str(), param, "{error}");
            let says = param.unwrap_or("limit");
            assert!(
                error["message"].as_str().unwrap_or("").contains(says),
                "{error}"
            );
        }
        let (status, error) = refused(
            addr,
            "/v1/completions",
            json!({"model": "gpt-9", "prompt": "a"}),
        )
        .await;
        assert_eq!(
            (status, &error["code"]),
            (404, &json!("model_not_found")),
            "{error}"
        );

        // A client that hangs up mid-stream: its sequence is cancelled, the slot freed.
        let cancelled = service
            .batcher
            .metrics()
            .iter()
            .map(|c| c.cancelled)
            .sum::<u64>();
        let mut raw = raw_stream(addr, &greedy(MODEL, "Hang up", 120, true));
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains("data: ") {
            let mut buf = [0; 512];
            let n = raw.read(&mut buf).expect("read");
            assert!(n > 0, "closed early");
            seen.extend_from_slice(&buf[..n]);
        }
        drop(raw);
        assert!(
            settles(&app, Duration::from_secs(30)).await,
            "the slot stays taken"
        );
        let now = service
            .batcher
            .metrics()
            .iter()
            .map(|c| c.cancelled)
            .sum::<u64>();
        assert_eq!(now, cancelled + 1);
        let metrics = crate::observe::openmetrics(&app.pool, Some(&service));
        for line in [
            "neuron_rt_generation_free_slots{core=\"0\"} 4",
            "neuron_rt_generation_free_slots{core=\"1\"} 4",
            "neuron_rt_generation_running{core=\"0\"} 0",
        ] {
            assert!(metrics.contains(line), "{line} in {metrics}");
        }
        let tokens: u64 = service.batcher.metrics().iter().map(|c| c.tokens).sum();
        assert!(
            metrics.contains("neuron_rt_time_to_first_token_seconds_count"),
            "{metrics}"
        );
        assert!(tokens >= 3 * 80 + 2 * 24, "{tokens}");

        // Overload: 2 cores of 4 slots, 1 waiting each: of 14 long requests some get 429.
        let mut streams: Vec<_> = (0..14)
            .map(|i| raw_stream(addr, &greedy(MODEL, &format!("Busy {i}"), 100, true)))
            .collect();
        let heads: Vec<String> = streams.iter_mut().map(read_head).collect();
        let busy: Vec<&String> = heads
            .iter()
            .filter(|h| h.starts_with("HTTP/1.1 429"))
            .collect();
        assert!(!busy.is_empty(), "{heads:?}");
        assert!(
            busy.iter()
                .all(|h| h.to_ascii_lowercase().contains("retry-after: 1")),
            "{busy:?}"
        );
        assert!(
            heads
                .iter()
                .filter(|h| h.starts_with("HTTP/1.1 200"))
                .count()
                >= 8,
            "{heads:?}"
        );
        drop(streams);
        assert!(
            settles(&app, Duration::from_secs(30)).await,
            "slots stay taken"
        );

        // A failed step (host sampling) mid-stream: an error chunk, then [DONE]; the core
        // serves on.
        let mut sampled = greedy(MODEL, "Fail", 50, true);
        sampled["temperature"] = json!(0.8);
        sim.inject_faults("exec:nth=4:status=1003").expect("fault");
        let a = completion(&mut s, sampled).await;
        assert!(a.done, "{:?}", a.events);
        let error = a.error().expect("an error chunk");
        assert_eq!(error["error"]["type"], "server_error", "{error}");
        sim.clear_faults();
        let again = completion(&mut s, greedy(MODEL, "Hello", 40, false)).await;
        assert_eq!(
            answer_text(&again),
            String::from_utf8_lossy(&bytes_of_hello)
        );

        // Every compute unit dead: 503 with Retry-After.
        sim.inject_faults("xu:vnc=0:type=compute; xu:vnc=1:type=compute")
            .expect("fault");
        let mut last = Answer::default();
        for _ in 0..3 {
            let mut s = load::connect(addr).await.expect("connect");
            last = post(&mut s, "/v1/completions", &greedy(MODEL, "Dead", 8, false))
                .await
                .expect("HTTP");
            if last.status == 503 {
                break;
            }
        }
        assert_eq!(
            (last.status, last.retry_after.as_deref()),
            (503, Some("5")),
            "{:?}",
            last.events
        );
        sim.clear_faults();
        let _ = sim.take_log();
    });
}

/// A request written on a connection of its own (`Connection: close`).
fn raw_stream(addr: std::net::SocketAddr, body: &Value) -> std::net::TcpStream {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let body = body.to_string();
    let head = format!(
        "POST /v1/completions HTTP/1.1\r\nhost: test\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all((head + &body).as_bytes()).expect("write");
    stream
}

/// The response head (status line and headers) read from `stream`.
fn read_head(stream: &mut std::net::TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// `--load --openai` on the service, then again while core 1's unit dies mid-run: every
/// request ends (tokens or an error chunk), the successful ones equal their prompts
/// alone, and every slot is free after.
#[test]
fn the_openai_load_passes_with_and_without_a_dying_unit() {
    serialized(async {
        let args = "--load 24 --concurrency 8 --openai --cores 2 --device-ms 0.2";
        let o = crate::parse_args(args.split(' ').map(String::from)).expect("options");
        let (addr, app, _server) = crate::start(&o).await.expect("service");
        assert!(crate::openai_load::load_run(&o, &app, addr).await);
        let sim = app.sim.expect("nrt-sim");
        sim.capture_log(true);
        sim.inject_faults("xu:vnc=1:type=compute:nth=20")
            .expect("fault");
        assert!(crate::openai_load::load_run(&o, &app, addr).await);
        let service = app.openai.as_ref().expect("generation");
        let dead: Vec<_> = service
            .batcher
            .metrics()
            .into_iter()
            .map(|c| c.dead.is_some())
            .collect();
        assert_eq!(dead, [false, true]);
        sim.clear_faults();
        let _ = sim.take_log();
    });
}

/// `--bundle DIR` (the model id is the directory's name) and `--chat-template FILE`.
#[test]
fn a_bundle_directory_and_a_chat_template_file() {
    serialized(async {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().join("tiny-decoder");
        nrt_sim::decoder::write_bundle(&dir, &Default::default()).expect("bundle");
        let template = temp.path().join("template.jinja");
        let source = "{% for m in messages %}{{ m['role'] | upper }}: {{ m['content'].strip() }}\n{% endfor %}ASSISTANT:";
        std::fs::write(&template, source).expect("template");
        let args = format!(
            "--listen 127.0.0.1:0 --cores 1 --bundle {} --chat-template {}",
            dir.display(),
            template.display()
        );
        let o = crate::parse_args(args.split(' ').map(String::from)).expect("options");
        let (addr, _app, _server) = crate::start(&o).await.expect("service");
        let mut s = load::connect(addr).await.expect("connect");
        let (_, models) = load::request(&mut s, "/v1/models", None)
            .await
            .expect("HTTP");
        assert_eq!(models["data"][0]["id"], "tiny-decoder");
        let rendered = "USER: Hi there\nASSISTANT:";
        let plain = completion(&mut s, greedy("tiny-decoder", rendered, 8, false)).await;
        let chat = json!({"model": "tiny-decoder", "max_tokens": 8, "temperature": 0,
            "messages": [{"role": "user", "content": " Hi there "}]});
        let answer = post(&mut s, "/v1/chat/completions", &chat)
            .await
            .expect("HTTP");
        assert_eq!(answer.events[0]["usage"]["prompt_tokens"], rendered.len());
        assert_eq!(answer_text(&answer), answer_text(&plain));
    });
}

/// A greedy (device-sampled) step fails mid-stream: an error chunk then `[DONE]`, and
/// the batcher serves greedy requests again, equal to before.
#[test]
fn a_failed_greedy_step_then_the_batcher_serves_again() {
    serialized(async {
        let args = "--listen 127.0.0.1:0 --cores 1";
        let o = crate::parse_args(args.split(' ').map(String::from)).expect("options");
        let (addr, app, _server) = crate::start(&o).await.expect("service");
        let sim = app.sim.expect("nrt-sim");
        sim.capture_log(true);
        let mut s = load::connect(addr).await.expect("connect");
        let before = completion(&mut s, greedy(MODEL, "Again", 30, false)).await;
        sim.inject_faults("exec:nth=6:status=1003").expect("fault");
        let failed = completion(&mut s, greedy(MODEL, "Fail", 30, true)).await;
        assert!(
            failed.done && failed.error().is_some(),
            "{:?}",
            failed.events
        );
        sim.clear_faults();
        for _ in 0..3 {
            let after = completion(&mut s, greedy(MODEL, "Again", 30, false)).await;
            assert_eq!(after.status, 200, "{:?}", after.events);
            assert_eq!(answer_text(&after), answer_text(&before));
        }
        let _ = sim.take_log();
    });
}

/// A non-streamed request whose client hangs up before the answer: the handler's future
/// is dropped with the connection (hyper closes it at the read side's EOF mid-request),
/// the sequence's stream with it, and the batcher cancels the sequence at the next step
/// boundary: its slot is freed, and it never finishes (no timing asserted: with 5 ms
/// steps the request would take 0.6 s; it must end cancelled, not finished).
#[test]
fn a_non_streamed_request_is_cancelled_when_its_client_disconnects() {
    serialized(async {
        let args = "--listen 127.0.0.1:0 --cores 1 --device-ms 5";
        let o = crate::parse_args(args.split(' ').map(String::from)).expect("options");
        let (addr, app, _server) = crate::start(&o).await.expect("service");
        let service = app.openai.clone().expect("the generation service");
        let totals = || -> (u64, u64, u64) {
            let m = service.batcher.metrics();
            let sum = |f: fn(&neuron_rt::generate::CoreBatchMetrics) -> u64| -> u64 {
                m.iter().map(f).sum()
            };
            (sum(|c| c.cancelled), sum(|c| c.finished), sum(|c| c.tokens))
        };
        let (cancelled, finished, tokens) = totals();
        let raw = raw_stream(addr, &greedy(MODEL, "Hang up", 120, false));
        // Running, a few tokens in (never the whole answer: none is sent).
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while totals().2 < tokens + 3 {
            assert!(std::time::Instant::now() < deadline, "never ran");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        drop(raw);
        assert!(
            settles(&app, Duration::from_secs(30)).await,
            "the slot stays taken"
        );
        let (now_cancelled, now_finished, now_tokens) = totals();
        assert_eq!(now_cancelled, cancelled + 1, "not cancelled");
        assert_eq!(now_finished, finished, "it ran to its end");
        assert!(now_tokens - tokens < 120, "{} tokens", now_tokens - tokens);
        let metrics = crate::observe::openmetrics(&app.pool, Some(&service));
        for line in [
            "neuron_rt_generation_free_slots{core=\"0\"} 4",
            "neuron_rt_generation_running{core=\"0\"} 0",
        ] {
            assert!(metrics.contains(line), "{line} in {metrics}");
        }
    });
}
