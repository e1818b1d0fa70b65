//! The OpenAI HTTP API over the library's continuous batcher: `POST /v1/completions`,
//! `POST /v1/chat/completions` (JSON, or server-sent events with `stream: true`) and
//! `GET /v1/models`, on a decoder bundle (by default the simulator's small decoder,
//! written into a temp dir; byte tokenizer: token id = byte value, or a Hugging Face
//! `tokenizer.json` with `--tokenizer`, its `tokenizer_config.json` and
//! `generation_config.json` beside it read when present).
//!
//! Each request is one [`TokenStream`](neuron_rt::generate::TokenStream) of the
//! [`Batcher`]; its text comes from [`TextOut`] (stop strings held back and removed,
//! UTF-8 never split). A response body dropped (the client went away) drops the stream,
//! which cancels the sequence and frees its slot at the next step.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State, rejection::BytesRejection};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use neuron_rt::Runtime;
use neuron_rt::generate::{Batcher, BatchingOptions, Bundle, GenerateOptions, SamplingParams};
use prometheus_client::metrics::histogram::Histogram;
use serde_json::{Value, json};

use crate::chat::{DEFAULT_TEMPLATE, Template};
use crate::http::App;
use crate::openai_req::{ApiError, Input, Params, api_error, parse, unavailable};
use crate::openai_stream::{Head, Sequence, Stats, Streamer, finish_reason, usage};
use crate::textout::{TextOut, Tokenizer};

/// The model id of the default bundle.
pub const DEFAULT_MODEL: &str = "small-decoder";

/// Request bodies above this are refused (400).
pub const BODY_LIMIT: usize = 1 << 20;

/// The generation service: the batcher on the bundle's cores and what the routes need.
pub struct Service {
    pub batcher: Batcher,
    /// The bundle's directory and the model id that names it.
    pub dir: PathBuf,
    pub model: String,
    /// Positions per sequence (prompt and completion).
    pub context: u32,
    /// The ids that end a sequence (the bundle's `eos_token_id`, the tokenizer's
    /// `eos_token` and `generation_config.json`'s `eos_token_id`; none for the default).
    pub eos: Vec<u32>,
    /// Prompts to ids, ids to text.
    pub tokenizer: Arc<Tokenizer>,
    pub stats: Stats,
    /// The runtime the bundle is on (the tests load a second copy of it there).
    #[cfg_attr(not(test), allow(dead_code))]
    pub runtime: Runtime,
    template: Template,
    _temp: Option<tempfile::TempDir>,
}

/// What `serve` builds the service from (its flags).
pub struct Config<'a> {
    pub bundle: Option<&'a str>,
    pub chat_template: Option<&'a str>,
    pub tokenizer: Option<&'a str>,
    pub cores: u32,
    pub max_waiting: usize,
    pub device_time: std::time::Duration,
}

impl Service {
    /// Loads `c.bundle` (or writes the simulator's small decoder into a temp dir) on the
    /// first `c.cores` cores and starts its batcher.
    pub fn start(runtime: &Runtime, c: &Config) -> Result<Service, String> {
        let (dir, model, temp) = match c.bundle {
            Some(dir) => {
                let dir = PathBuf::from(dir);
                let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
                (dir, name.unwrap_or_else(|| DEFAULT_MODEL.into()), None)
            }
            None => {
                let temp = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
                let mut options = nrt_sim::decoder::DecoderBundleOptions::default();
                options.prefill_device_time = c.device_time;
                options.decode_device_time = c.device_time;
                options.chain_device_time = c.device_time;
                nrt_sim::decoder::write_bundle(temp.path(), &options)
                    .map_err(|e| format!("decoder bundle: {e}"))?;
                (temp.path().to_owned(), DEFAULT_MODEL.into(), Some(temp))
            }
        };
        let bundle = Bundle::builder(runtime).dir(&dir).map_err(crate::text)?;
        let bundle = bundle.cores(0..c.cores).build().map_err(crate::text)?;
        let options = BatchingOptions::default().max_waiting(c.max_waiting);
        let batcher = Batcher::new(&bundle, options).map_err(crate::text)?;
        let vocab = bundle.config().map_or(0, |c| c.vocab);
        let (tokenizer, hf) = match c.tokenizer {
            Some(file) => {
                let t = Tokenizer::from_file(Path::new(file))?;
                let bound = t.id_bound();
                if vocab > 0 && bound > u64::from(vocab) {
                    return Err(format!(
                        "{file}: the tokenizer's ids go up to {} ({bound} ids), past the \
                         bundle's vocabulary of {vocab}",
                        bound - 1
                    ));
                }
                let dir = Path::new(file).parent().unwrap_or(Path::new("."));
                let hf = HfConfig::read(dir)?;
                (t, Some(hf))
            }
            None => (Tokenizer::Byte, None),
        };
        let mut eos = eos_ids(&dir);
        let (mut bos_token, mut eos_token) = (String::new(), String::new());
        let mut hf_template = None;
        if let Some(hf) = hf {
            eos.extend(hf.eos_ids);
            eos.extend(hf.eos_token.as_deref().and_then(|t| tokenizer.token_id(t)));
            bos_token = hf.bos_token.unwrap_or_default();
            eos_token = hf.eos_token.unwrap_or_default();
            hf_template = hf.chat_template;
        }
        eos.sort_unstable();
        eos.dedup();
        let source = match (c.chat_template, hf_template) {
            (Some(file), _) => std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?,
            (None, Some(t)) => t,
            (None, None) => DEFAULT_TEMPLATE.to_owned(),
        };
        let buckets = crate::observe::BOUNDS;
        Ok(Service {
            context: batcher.context(),
            eos,
            tokenizer: Arc::new(tokenizer),
            stats: Stats {
                ttft: Histogram::new(buckets),
                itl: Histogram::new(buckets),
            },
            // No special tokens in the byte tokenizer: `bos_token`, `eos_token` empty.
            template: Template::new(source, &bos_token, &eos_token)?,
            batcher,
            runtime: runtime.clone(),
            dir,
            model,
            _temp: temp,
        })
    }
}

/// `eos_token_id` (a number or a list) of `bundle.json`'s `model` or `config`.
fn eos_ids(dir: &Path) -> Vec<u32> {
    let json = std::fs::read(dir.join("bundle.json")).unwrap_or_default();
    let json: Value = serde_json::from_slice(&json).unwrap_or_default();
    let mut id = ["model", "config"].iter().map(|k| &json[k]["eos_token_id"]);
    let id = id.find(|v| !v.is_null()).cloned().unwrap_or_default();
    id_list(&id)
}

/// An id or a list of ids.
fn id_list(v: &Value) -> Vec<u32> {
    let ids = match v {
        Value::Array(ids) => ids.as_slice(),
        one => std::slice::from_ref(one),
    };
    (ids.iter())
        .filter_map(|v| v.as_u64())
        .filter_map(|v| u32::try_from(v).ok())
        .collect()
}

/// What a Hugging Face model directory says beside its `tokenizer.json`.
#[derive(Debug, Default)]
struct HfConfig {
    chat_template: Option<String>,
    bos_token: Option<String>,
    eos_token: Option<String>,
    /// `generation_config.json`'s `eos_token_id`.
    eos_ids: Vec<u32>,
}

impl HfConfig {
    /// `tokenizer_config.json` and `generation_config.json` in `dir`, each if present.
    fn read(dir: &Path) -> Result<HfConfig, String> {
        let json = |name: &str| -> Result<Value, String> {
            let path = dir.join(name);
            match std::fs::read(&path) {
                Ok(bytes) => {
                    serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Value::Null),
                Err(e) => Err(format!("{}: {e}", path.display())),
            }
        };
        let t = json("tokenizer_config.json")?;
        // A token is a string or an `AddedToken` object (`{"content": ...}`).
        let token = |v: &Value| {
            let v = v.get("content").unwrap_or(v);
            v.as_str().map(str::to_owned)
        };
        // A template is a string, or a list of `{name, template}` (the `default` one).
        let chat_template = match &t["chat_template"] {
            Value::String(s) => Some(s.clone()),
            Value::Array(list) => {
                let default = list.iter().find(|t| t["name"] == "default");
                default.or(list.first()).and_then(|t| token(&t["template"]))
            }
            _ => None,
        };
        Ok(HfConfig {
            chat_template,
            bos_token: token(&t["bos_token"]),
            eos_token: token(&t["eos_token"]),
            eos_ids: id_list(&json("generation_config.json")?["eos_token_id"]),
        })
    }
}

/// The OpenAI routes.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

fn service(app: &App) -> Result<&Service, ApiError> {
    let none = || unavailable("this server has no generation bundle", "no_bundle");
    app.openai.as_deref().ok_or_else(none)
}

async fn models(State(app): State<App>) -> Response {
    match service(&app) {
        Ok(s) => Json(json!({"object": "list", "data": [
            {"id": s.model, "object": "model", "created": 0, "owned_by": "neuron-rt"},
        ]}))
        .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn completions(State(app): State<App>, body: Result<Bytes, BytesRejection>) -> Response {
    generate(&app, body, false)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn chat_completions(State(app): State<App>, body: Result<Bytes, BytesRejection>) -> Response {
    generate(&app, body, true)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

async fn generate(
    app: &App,
    body: Result<Bytes, BytesRejection>,
    chat: bool,
) -> Result<Response, ApiError> {
    let arrived = Instant::now();
    let s = service(app)?;
    let body = body.map_err(|r| {
        let limit = BODY_LIMIT >> 20;
        let message = match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => format!("the body is over the limit of {limit} MiB"),
            _ => r.body_text(),
        };
        ApiError::invalid(None, message)
    })?;
    let p = parse(&body, chat, s.context)?;
    if p.model != s.model {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!(
                "the model `{}` does not exist (this server has `{}`)",
                p.model, s.model
            ),
            kind: "invalid_request_error",
            param: Some("model".into()),
            code: Some("model_not_found"),
            retry_after: None,
        });
    }
    let (param, prompt) = match &p.input {
        Input::Prompt(text) => ("prompt", text.clone()),
        Input::Messages(m) => {
            let rendered = s.template.render(m);
            (
                "messages",
                rendered.map_err(|e| ApiError::invalid(Some("messages"), e))?,
            )
        }
    };
    // A chat template writes the special tokens (BOS) itself; a completion prompt gets
    // the tokenizer's.
    let ids = s.tokenizer.encode(&prompt, !chat);
    let ids = ids.map_err(|e| ApiError::invalid(Some(param), e))?;
    let room = s.context.saturating_sub(ids.len() as u32);
    if room == 0 {
        let message = format!(
            "the prompt is {} tokens, the context {}",
            ids.len(),
            s.context
        );
        return Err(ApiError::invalid(Some(param), message));
    }
    // OpenAI's defaults: 16 for completions, the rest of the context for chat.
    let max = p
        .max_tokens
        .unwrap_or(if chat { room } else { room.min(16) });
    let tokens = s
        .batcher
        .submit(&ids, &options(&p, max, &s.eos, s.tokenizer.is_bytes()))
        .map_err(|e| api_error(&e, param))?;
    let head = Head::new(chat, &s.model, NEXT_ID.fetch_add(1, Relaxed));
    let text = TextOut::new(s.tokenizer.clone(), &p.stop, &s.eos);
    let prompt_tokens = ids.len() as u32;
    let sequence = Sequence::new(tokens, text, s.stats.clone(), arrived, prompt_tokens);
    if p.stream {
        let body = Streamer::body(head, sequence, p.include_usage);
        let headers = [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ];
        return Ok((headers, body).into_response());
    }
    let (text, finish) = sequence.collect().await.map_err(|e| api_error(&e, param))?;
    let reason = finish_reason(&finish.reason);
    let choice = match chat {
        true => json!({"index": 0, "message": {"role": "assistant", "content": text},
            "logprobs": null, "finish_reason": reason}),
        false => json!({"index": 0, "text": text, "logprobs": null, "finish_reason": reason}),
    };
    let u = usage(finish.prompt_tokens, finish.completion_tokens);
    Ok(Json(head.body(json!([choice]), Some(u), false)).into_response())
}

/// The library's options for a checked request.
/// The library matches stop strings on token bytes: only given them for the byte
/// tokenizer (`bytes`); otherwise [`TextOut`] finds them and the sequence is dropped.
fn options(p: &Params, max: u32, eos: &[u32], bytes: bool) -> GenerateOptions {
    let seed = p.seed.unwrap_or_else(|| {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        t.as_nanos() as u64 ^ NEXT_ID.load(Relaxed).rotate_left(32)
    });
    let sampling = SamplingParams {
        temperature: p.temperature,
        top_k: 0,
        top_p: p.top_p,
        seed,
    };
    let mut o = GenerateOptions::new(max).sampling(sampling);
    for s in p.stop.iter().filter(|_| bytes) {
        o = o.stop_string(s);
    }
    for &id in eos {
        o = o.eos(id);
    }
    o
}
