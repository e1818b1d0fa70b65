//! Feature `tracing`: a sync execute, a load (and a failed one), a scheduled request, a
//! pool inference, a generation and continuous batching produce the `neuron_rt.*` spans
//! with their fields, closed when their work ends, nested where they run inside each
//! other. A tiny subscriber written here records every span (no tracing-subscriber).
//!
//! Runs on the dlopen'ed simulator.
#![cfg(feature = "tracing")]

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use neuron_rt::generate::{Batcher, BatchingOptions, Bundle, GenerateOptions, Generator};
use neuron_rt::{ModelPool, Runtime, inputs};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// One span as the subscriber saw it.
#[derive(Clone, Debug)]
struct Seen {
    name: &'static str,
    level: tracing::Level,
    fields: BTreeMap<String, String>,
    parent: Option<u64>,
    /// Handles still open (a span closes when the last one drops).
    refs: u64,
    closed: bool,
}

#[derive(Default)]
struct Store {
    spans: BTreeMap<u64, Seen>,
}

fn store() -> MutexGuard<'static, Store> {
    static STORE: OnceLock<Mutex<Store>> = OnceLock::new();
    STORE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

/// Records every span into [`store`]; the current span of a thread is tracked so that
/// spans without an explicit parent get the one they were created in.
struct Recorder {
    next: AtomicU64,
}

thread_local! {
    static STACK: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let parent = if attrs.is_root() {
            None
        } else if let Some(p) = attrs.parent() {
            Some(p.into_u64())
        } else {
            STACK.with(|s| s.borrow().last().copied())
        };
        store().spans.insert(
            id,
            Seen {
                name: attrs.metadata().name(),
                level: *attrs.metadata().level(),
                fields,
                parent,
                refs: 1,
                closed: false,
            },
        );
        Id::from_u64(id)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        if let Some(seen) = store().spans.get_mut(&span.into_u64()) {
            values.record(&mut Fields(&mut seen.fields));
        }
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, span: &Id) {
        STACK.with(|s| s.borrow_mut().push(span.into_u64()));
    }
    fn exit(&self, span: &Id) {
        STACK.with(|s| {
            let mut s = s.borrow_mut();
            if let Some(i) = s.iter().rposition(|&x| x == span.into_u64()) {
                s.remove(i);
            }
        });
    }
    fn clone_span(&self, id: &Id) -> Id {
        if let Some(seen) = store().spans.get_mut(&id.into_u64()) {
            seen.refs += 1;
        }
        id.clone()
    }
    fn try_close(&self, id: Id) -> bool {
        let mut store = store();
        let Some(seen) = store.spans.get_mut(&id.into_u64()) else {
            return false;
        };
        seen.refs -= 1;
        seen.closed = seen.refs == 0;
        seen.closed
    }
}

/// Installs the recorder (once per binary), takes the simulator lock and forgets the
/// spans of earlier tests.
fn start() -> support::Guard {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        tracing::subscriber::set_global_default(Recorder {
            next: AtomicU64::new(1),
        })
        .expect("the only subscriber of this binary");
    });
    let guard = support::lock();
    store().spans.clear();
    guard
}

/// The spans named `name` seen so far (id, span).
fn spans(name: &str) -> Vec<(u64, Seen)> {
    store()
        .spans
        .iter()
        .filter(|(_, s)| s.name == name)
        .map(|(&id, s)| (id, s.clone()))
        .collect()
}

fn span(id: u64) -> Seen {
    store().spans.get(&id).cloned().expect("a recorded span")
}

/// Waits (at most 5 s) until `check` holds over the recorded spans; spans of requests
/// released by a background thread close there.
fn eventually(what: &str, check: impl Fn() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < Duration::from_secs(5), "never: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn field<'a>(seen: &'a Seen, name: &str) -> &'a str {
    seen.fields
        .get(name)
        .unwrap_or_else(|| panic!("span {} has no field `{name}`: {seen:?}", seen.name))
}

#[test]
fn load_and_sync_execute_make_their_spans() {
    let _g = start();
    let rt = support::runtime();
    let neff = support::add_model();
    let model = rt.load_model_on(&neff, 1).unwrap();
    support::assert_adds(&model);

    let loads = spans("neuron_rt.load");
    assert_eq!(loads.len(), 1, "{loads:?}");
    let load = &loads[0].1;
    assert_eq!(load.level, tracing::Level::INFO);
    assert!(load.closed);
    assert_eq!(field(load, "model"), model.label());
    assert_eq!(field(load, "cores"), "1");
    assert_eq!(field(load, "neff_bytes"), neff.len().to_string());
    assert!(field(load, "duration").parse::<f64>().unwrap() > 0.0);
    assert_eq!(field(load, "status"), "Success");

    let executes = spans("neuron_rt.execute");
    assert_eq!(executes.len(), 1, "{executes:?}");
    let execute = &executes[0].1;
    assert_eq!(execute.level, tracing::Level::DEBUG);
    assert!(execute.closed);
    assert_eq!(field(execute, "model"), model.label());
    assert_eq!(field(execute, "core"), "1");
    assert_eq!(field(execute, "status"), "Success");
}

#[test]
fn a_failed_load_records_its_status_and_error() {
    let _g = start();
    let rt = support::runtime();
    let err = rt.load_model(&[7u8; 2048]).unwrap_err();
    let loads = spans("neuron_rt.load");
    assert_eq!(loads.len(), 1, "{loads:?}");
    let load = &loads[0].1;
    assert!(load.closed);
    let status = err.status().expect("a libnrt status");
    assert_eq!(field(load, "status"), format!("{status:?}"));
    assert_eq!(field(load, "error"), err.to_string());
    assert!(!load.fields.contains_key("cores"));
}

#[test]
fn a_scheduled_request_has_one_span_from_schedule_to_completion() {
    let _g = start();
    let rt = support::runtime();
    let model = rt
        .load_model_on(&support::add_model_taking(Duration::from_millis(20)), 0)
        .unwrap();
    let unit = rt.compute_unit(0).unwrap();
    let inputs = model.allocate_inputs().unwrap();
    let outputs = model.allocate_outputs().unwrap();
    let request = unit.execute(&model, inputs, outputs).unwrap();
    let seq = request.seq();

    let scheduled = spans("neuron_rt.schedule");
    assert_eq!(scheduled.len(), 1, "{scheduled:?}");
    let (id, open) = &scheduled[0];
    assert!(!open.closed, "open until the request completes");
    assert_eq!(field(open, "model"), model.label());
    assert_eq!(field(open, "core"), "0");
    assert_eq!(field(open, "unit_kind"), "compute");
    assert_eq!(field(open, "queue"), unit.queue().to_string());
    assert_eq!(field(open, "seq_id"), seq.to_string());
    assert!(!open.fields.contains_key("status"));

    request.wait().unwrap();
    let done = span(*id);
    assert!(done.closed);
    assert_eq!(field(&done, "status"), "Success");
    let waits = spans("neuron_rt.wait");
    assert_eq!(waits.len(), 1, "{waits:?}");
    let wait = &waits[0].1;
    assert!(wait.closed);
    assert_eq!(wait.parent, Some(*id));
    assert_eq!(field(wait, "seq_id"), seq.to_string());
    assert_eq!(field(wait, "status"), "Success");

    // Dropped while running: the background thread closes its span on completion.
    let inputs = model.allocate_inputs().unwrap();
    let outputs = model.allocate_outputs().unwrap();
    drop(unit.execute(&model, inputs, outputs).unwrap());
    eventually("the dropped request's span closes", || {
        let all = spans("neuron_rt.schedule");
        all.len() == 2 && all.iter().all(|(_, s)| s.closed)
    });
    let dropped = spans("neuron_rt.schedule").pop().unwrap().1;
    assert_eq!(field(&dropped, "status"), "Success");
}

#[test]
fn a_pool_inference_names_its_copy_and_contains_its_requests() {
    let _g = start();
    let rt = support::runtime();
    let pool = ModelPool::builder(&rt, support::identity_model(Duration::ZERO))
        .build()
        .unwrap();
    let out = pool
        .infer_blocking(&inputs!["x" => &[1.0f32, 2.0, 3.0, 4.0]])
        .unwrap();
    assert_eq!(
        out.get("y").unwrap().to_vec::<f32>().unwrap(),
        [1.0, 2.0, 3.0, 4.0]
    );

    let infers = spans("neuron_rt.pool.infer");
    assert_eq!(infers.len(), 1, "{infers:?}");
    let (id, infer) = &infers[0];
    assert!(infer.closed);
    assert_eq!(infer.level, tracing::Level::DEBUG);
    assert_eq!(field(infer, "pool"), "identity");
    let copy: usize = field(infer, "copy").parse().unwrap();
    let core: u32 = field(infer, "core").parse().unwrap();
    assert_eq!(pool.cores()[copy], core);
    assert!(field(infer, "admission_wait").parse::<f64>().unwrap() >= 0.0);
    assert_eq!(field(infer, "status"), "Success");
    // The execution was a request on the copy's core, inside the inference.
    let scheduled = spans("neuron_rt.schedule");
    let inside: Vec<_> = scheduled
        .iter()
        .filter(|(_, s)| s.parent == Some(*id))
        .collect();
    assert_eq!(inside.len(), 1, "{scheduled:?}");
    assert_eq!(field(&inside[0].1, "core"), core.to_string());
    assert_eq!(field(&inside[0].1, "unit_kind"), "compute");
    assert!(inside[0].1.closed);

    // A refused inference records its error.
    let err = pool.infer_blocking(&inputs!["z" => &[1.0f32]]).unwrap_err();
    let failed = spans("neuron_rt.pool.infer").pop().unwrap().1;
    assert!(failed.closed);
    assert_eq!(field(&failed, "status"), format!("{:?}", err.kind()));
    assert_eq!(field(&failed, "error"), err.to_string());
}

fn bundle(rt: &Runtime) -> (tempfile::TempDir, Bundle) {
    let dir = tempfile::tempdir().unwrap();
    nrt_sim::decoder::write_bundle(dir.path(), &Default::default()).unwrap();
    let bundle = Bundle::builder(rt)
        .dir(dir.path())
        .unwrap()
        .cores([0])
        .build()
        .unwrap();
    (dir, bundle)
}

#[test]
fn a_generation_has_a_span_and_one_step_span_per_step() {
    let _g = start();
    let rt = support::runtime();
    let (_dir, bundle) = bundle(&rt);
    let generator = Generator::new(&bundle, 0).unwrap();
    let prompt = [5u32, 9, 200, 17];
    let tokens: Vec<u32> = generator
        .generate(&prompt, &GenerateOptions::new(3))
        .unwrap()
        .collect::<neuron_rt::Result<_>>()
        .unwrap();
    assert_eq!(tokens.len(), 3);

    let generations = spans("neuron_rt.generate");
    assert_eq!(generations.len(), 1, "{generations:?}");
    let (id, generation) = &generations[0];
    assert_eq!(generation.level, tracing::Level::INFO);
    assert!(generation.closed);
    assert_eq!(field(generation, "prompt_tokens"), "4");
    assert_eq!(field(generation, "new_tokens"), "3");
    assert_eq!(field(generation, "finish"), "Length");
    assert_eq!(field(generation, "status"), "Success");
    let request_id = field(generation, "request_id").to_owned();

    let steps: Vec<Seen> = spans("neuron_rt.generate.step")
        .into_iter()
        .map(|(_, s)| s)
        .filter(|s| s.parent == Some(*id))
        .collect();
    // A prefill, then two decode steps.
    assert_eq!(steps.len(), 3, "{steps:?}");
    for (i, step) in steps.iter().enumerate() {
        assert!(step.closed);
        assert_eq!(field(step, "request_id"), request_id);
        assert_eq!(field(step, "step"), (i + 1).to_string());
        assert_eq!(field(step, "batch"), "1");
        assert_eq!(field(step, "prefill"), (i == 0).to_string());
        assert_eq!(field(step, "tokens"), if i == 0 { "4" } else { "1" });
        assert_eq!(field(step, "status"), "Success");
    }
    // Each step's execution is inside it.
    let executes = spans("neuron_rt.execute");
    assert!(
        executes
            .iter()
            .filter(|(_, e)| e
                .parent
                .is_some_and(|p| span(p).name == "neuron_rt.generate.step"))
            .count()
            >= 3,
        "{executes:?}"
    );
}

#[test]
fn continuous_batching_has_a_span_per_prefill_chunk_and_decode_step() {
    let _g = start();
    let rt = support::runtime();
    let (_dir, bundle) = bundle(&rt);
    let batcher = Batcher::new(&bundle, BatchingOptions::default()).unwrap();
    // 20 tokens: two prefill chunks, of 16 and 3 (a greedy row's last prompt token is
    // fed by its first decode step).
    let prompt: Vec<u32> = (0..20).map(|j| (j * 13 % 256) as u32).collect();
    let (tokens, _) = batcher
        .submit(&prompt, &GenerateOptions::new(3))
        .unwrap()
        .collect_blocking()
        .unwrap();
    assert_eq!(tokens.len(), 3);
    eventually("the steps' spans close", || {
        spans("neuron_rt.generate.step").len() >= 4
    });
    let steps: Vec<Seen> = spans("neuron_rt.generate.step")
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    let prefills: Vec<&Seen> = steps
        .iter()
        .filter(|s| field(s, "prefill") == "true")
        .collect();
    assert_eq!(prefills.len(), 2, "{steps:?}");
    assert_eq!(field(prefills[0], "tokens"), "16");
    assert_eq!(field(prefills[1], "tokens"), "3");
    let decodes: Vec<&Seen> = steps
        .iter()
        .filter(|s| field(s, "prefill") == "false")
        .collect();
    // Three decode steps, one per token (the first fed the prompt's last token).
    assert_eq!(decodes.len(), 3, "{steps:?}");
    let request_id = field(prefills[0], "request_id");
    for step in &steps {
        assert!(step.closed);
        assert_eq!(field(step, "request_id"), request_id);
        assert_eq!(field(step, "batch"), "1");
        assert_eq!(field(step, "status"), "Success");
    }
    let numbers: Vec<u64> = steps
        .iter()
        .map(|s| field(s, "step").parse().unwrap())
        .collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
}

/// Issue 28 (inter-token latency at concurrency 8): a row that joins running ones is in
/// the first decode step after its prompt's last prefill chunk, and in every step after
/// it (no step of the others runs between its chunk and its first step, which would
/// put two steps between its first two tokens), and the running row misses no step
/// either. At most `prefill_chunks_per_step` chunks run between two decode steps.
#[test]
fn a_joining_row_is_in_the_first_decode_step_after_its_last_prefill_chunk() {
    let _g = start();
    let rt = support::runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut options = nrt_sim::decoder::DecoderBundleOptions::default();
    // Steps long enough for the running row to still run when the second one joins.
    options.decode_device_time = Duration::from_millis(1);
    nrt_sim::decoder::write_bundle(dir.path(), &options).unwrap();
    let bundle = Bundle::builder(&rt)
        .dir(dir.path())
        .unwrap()
        .cores([0])
        .build()
        .unwrap();
    let batcher = Batcher::new(&bundle, BatchingOptions::default()).unwrap();
    let first: Vec<u32> = (0..5).map(|j| (j * 29 % 256) as u32).collect();
    let mut running = batcher.submit(&first, &GenerateOptions::new(80)).unwrap();
    // Running: a few tokens in.
    for _ in 0..3 {
        assert!(matches!(
            running.next_blocking(),
            Some(Ok(neuron_rt::generate::Generated::Token(_)))
        ));
    }
    // 40 tokens: chunks of 16, 16 and 7 (the last token is fed by a decode step).
    let second: Vec<u32> = (0..40).map(|j| (j * 13 % 256) as u32).collect();
    let (tokens, _) = batcher
        .submit(&second, &GenerateOptions::new(4))
        .unwrap()
        .collect_blocking()
        .unwrap();
    assert_eq!(tokens.len(), 4);
    drop(running);
    eventually("the batcher is idle", || {
        batcher.metrics().iter().all(|m| m.running == 0)
    });
    let mut steps: Vec<Seen> = spans("neuron_rt.generate.step")
        .into_iter()
        .map(|(_, s)| s)
        .filter(|s| s.closed)
        .collect();
    steps.sort_by_key(|s| field(s, "step").parse::<u64>().unwrap());
    let has = |s: &Seen, id: &str| field(s, "request_id").split(',').any(|r| r == id);
    let prefill = |s: &Seen| field(s, "prefill") == "true";
    let (a, b) = ("1", "2");
    let last_chunk = steps
        .iter()
        .rposition(|s| prefill(s) && has(s, b))
        .expect("the second prompt's chunks");
    let chunks: Vec<&str> = steps
        .iter()
        .filter(|s| prefill(s) && has(s, b))
        .map(|s| field(s, "tokens"))
        .collect();
    assert_eq!(chunks, ["16", "16", "7"], "{steps:?}");
    let decodes: Vec<&Seen> = steps[last_chunk..].iter().filter(|s| !prefill(s)).collect();
    // Its four tokens come from the four decode steps right after its last chunk, each
    // with the running row in it too.
    assert!(decodes.len() >= 4, "{steps:?}");
    for (i, s) in decodes.iter().take(4).enumerate() {
        assert!(
            has(s, b),
            "decode step {i} after the last chunk lacks it: {steps:?}"
        );
        assert!(
            has(s, a),
            "decode step {i} after the last chunk lacks the running row"
        );
    }
    // Between two decode steps, at most `prefill_chunks_per_step` (3) chunks.
    let mut run = 0;
    for s in &steps {
        run = if prefill(s) { run + 1 } else { 0 };
        assert!(run <= 3, "{steps:?}");
    }
}
