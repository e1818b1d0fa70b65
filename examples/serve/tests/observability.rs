//! The service's observability (the `serve` binary in its own process, on nrt-sim):
//! with `--trace`, one served request prints the close of its `neuron_rt.pool.infer`
//! and `neuron_rt.wait` spans; `GET /metrics` answers OpenMetrics text (its content
//! type, `# EOF` at the end) with the families per copy; the JSON is at
//! `/metrics.json`; the generation families are there too. Every wait is bounded; no
//! timing is asserted.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// Generous bound for anything that must happen (a loaded machine is slow).
const PATIENCE: Duration = Duration::from_secs(30);

struct Server {
    child: Child,
    addr: SocketAddr,
    /// The server's stderr lines after the "serving on" one.
    stderr: Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `serve --trace` on 2 simulated cores, the default span filter.
fn server() -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_serve"))
        .args(["--trace", "--listen", "127.0.0.1:0", "--device-ms", "1"])
        .env("NRT_SIM_VNC_COUNT", "2")
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let addr = loop {
        let line = lines.next().expect("serve exited").expect("stderr");
        if let Some(rest) = line.strip_prefix("serving on http://") {
            break rest.split(' ').next().unwrap().parse().expect("address");
        }
    };
    let (tx, stderr) = channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    Server {
        child,
        addr,
        stderr,
    }
}

/// One HTTP/1.1 request (`Connection: close`): the status, the headers (names in
/// lower case) and the body.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, BTreeMap<String, String>, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("an answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("head and body");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

/// A sample line: its name, its labels as written, its value.
type Sample = (String, String, f64);

/// OpenMetrics text: each family's `# TYPE`, and every sample as `(name, labels,
/// value)`; panics on a line that is neither a comment nor a sample, on a sample of no
/// declared family, and without `# EOF` at the end.
fn parse(text: &str) -> (BTreeMap<String, String>, Vec<Sample>) {
    let mut types = BTreeMap::new();
    let mut samples = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "{text}");
    for line in &lines[..lines.len() - 1] {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with("# HELP ") || line.starts_with("# UNIT ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample: series value");
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, labels.strip_suffix('}').expect("labels end")),
            None => (series, ""),
        };
        let suffixes = ["", "_total", "_sum", "_count", "_bucket"];
        let declared = types.keys().any(|family: &String| {
            name.strip_prefix(family.as_str())
                .is_some_and(|s| suffixes.contains(&s))
        });
        assert!(declared, "`{name}` belongs to no family: {text}");
        let value = value
            .parse()
            .unwrap_or_else(|_| panic!("value of `{line}`"));
        samples.push((name.to_owned(), labels.to_owned(), value));
    }
    (types, samples)
}

#[test]
fn a_served_request_is_traced_and_counted_in_openmetrics() {
    let server = server();
    let x: Vec<String> = (0..16).map(|i| i.to_string()).collect();
    let body = format!(r#"{{"inputs": {{"x": [{}]}}}}"#, x.join(","));
    let (status, _, answer) = request(server.addr, "POST", "/infer", &body);
    assert_eq!(status, 200, "{answer}");

    // The request's spans close as it ends: wait for both lines (bounded).
    let start = Instant::now();
    let (mut infer, mut wait) = (None, None);
    while infer.is_none() || wait.is_none() {
        let left = PATIENCE.saturating_sub(start.elapsed());
        let line = server
            .stderr
            .recv_timeout(left)
            .expect("the spans' close lines within the patience");
        if line.contains("neuron_rt.pool.infer{") && is_close(&line) {
            infer = Some(line.clone());
        }
        if line.contains("neuron_rt.wait{") && is_close(&line) {
            wait = Some(line);
        }
    }
    let infer = infer.unwrap();
    for field in [
        "pool=double_plus_one",
        "copy=",
        "core=",
        "admission_wait=",
        "status=",
    ] {
        assert!(infer.contains(field), "{field} in {infer}");
    }
    let wait = wait.unwrap();
    for field in ["unit_kind=", "seq_id=", "status="] {
        assert!(wait.contains(field), "{field} in {wait}");
    }

    let (status, headers, text) = request(server.addr, "GET", "/metrics", "");
    assert_eq!(status, 200, "{text}");
    assert!(
        headers["content-type"].starts_with("application/openmetrics-text"),
        "{headers:?}"
    );
    let (types, samples) = parse(&text);
    let kinds: Vec<(&str, &str)> = types
        .iter()
        .map(|(n, k)| (n.as_str(), k.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("neuron_rt_device_busy_seconds", "counter"),
            ("neuron_rt_generated_tokens", "counter"),
            ("neuron_rt_generation_free_slots", "gauge"),
            ("neuron_rt_generation_running", "gauge"),
            ("neuron_rt_generation_waiting", "gauge"),
            ("neuron_rt_in_flight", "gauge"),
            ("neuron_rt_inter_token_latency_seconds", "histogram"),
            ("neuron_rt_request_duration_seconds", "histogram"),
            ("neuron_rt_requests", "counter"),
            ("neuron_rt_time_to_first_token_seconds", "histogram"),
            ("neuron_rt_waiting", "gauge"),
        ],
        "{text}"
    );
    let sum = |name: &str, with: &str| -> f64 {
        samples
            .iter()
            .filter(|(n, l, _)| n == name && l.contains(with))
            .map(|s| s.2)
            .sum()
    };
    // One series per copy (two cores), no total series: sums are the pool's.
    let ok_series = samples
        .iter()
        .filter(|(n, l, _)| n == "neuron_rt_requests_total" && l.contains(r#"outcome="ok""#))
        .count();
    assert_eq!(ok_series, 2, "{text}");
    assert_eq!(sum("neuron_rt_requests_total", r#"outcome="ok""#), 1.0);
    assert_eq!(sum("neuron_rt_requests_total", r#"outcome="failed""#), 0.0);
    assert_eq!(sum("neuron_rt_request_duration_seconds_count", ""), 1.0);
    assert_eq!(
        sum("neuron_rt_request_duration_seconds_bucket", r#"le="+Inf""#),
        1.0
    );
    // Below the 1 ms of device time: nothing.
    assert_eq!(
        sum(
            "neuron_rt_request_duration_seconds_bucket",
            r#"le="0.0005""#
        ),
        0.0
    );
    let busy = sum("neuron_rt_device_busy_seconds_total", "");
    assert!(busy >= 0.001, "{busy}");
    assert_eq!(sum("neuron_rt_in_flight", ""), 0.0);
    // The generation families: the batcher's 2 cores of 4 slots, idle.
    assert_eq!(sum("neuron_rt_generation_free_slots", ""), 8.0);
    assert_eq!(sum("neuron_rt_generation_running", ""), 0.0);
    assert_eq!(sum("neuron_rt_generated_tokens_total", ""), 0.0);

    // The JSON of before.
    let (status, headers, json) = request(server.addr, "GET", "/metrics.json", "");
    assert_eq!(status, 200);
    assert!(
        headers["content-type"].starts_with("application/json"),
        "{headers:?}"
    );
    assert!(json.contains(r#""ok":1"#), "{json}");
}

/// Whether a fmt line is a span's close event (`FmtSpan::CLOSE`).
fn is_close(line: &str) -> bool {
    line.contains(" close time.busy=")
}
