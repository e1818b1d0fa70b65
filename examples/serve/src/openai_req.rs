//! The requests of the OpenAI routes: their JSON bodies checked field by field (a wrong
//! type, an empty prompt, an unsupported option: a 400 naming the field), and the
//! errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`.

use axum::http::{HeaderValue, StatusCode, header::RETRY_AFTER};
use axum::response::{IntoResponse, Response};
use neuron_rt::generate::BatchError;
use serde_json::{Map, Value, json};

use crate::chat::Message;

/// An error answer of the OpenAI routes.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
    /// Seconds for `Retry-After` (429, 503).
    pub retry_after: Option<u32>,
}

impl ApiError {
    /// A 400 `invalid_request_error` about `param`.
    pub fn invalid(param: Option<&str>, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: param.map(str::to_owned),
            code: None,
            retry_after: None,
        }
    }

    /// The body, as JSON (also what an SSE error chunk carries).
    pub fn body(&self) -> Value {
        json!({"error": {
            "message": self.message, "type": self.kind, "param": self.param, "code": self.code,
        }})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry = self.retry_after;
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(s) = retry {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(s));
        }
        response
    }
}

/// A 503 `server_error` with `code`, retry in 5 s.
pub fn unavailable(message: impl Into<String>, code: &'static str) -> ApiError {
    ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: message.into(),
        kind: "server_error",
        param: None,
        code: Some(code),
        retry_after: Some(5),
    }
}

/// The HTTP answer for an error of the batcher (`param`: the field of the prompt).
pub fn api_error(e: &neuron_rt::Error, param: &str) -> ApiError {
    let busy = |message: String| ApiError {
        status: StatusCode::TOO_MANY_REQUESTS,
        message,
        kind: "rate_limit_error",
        param: None,
        code: Some("overloaded"),
        retry_after: Some(1),
    };
    match e.as_batch() {
        Some(BatchError::Overloaded { .. } | BatchError::Stalled { .. }) => busy(e.to_string()),
        Some(BatchError::Unavailable { .. }) => unavailable(e.to_string(), "unavailable"),
        Some(BatchError::Step { fatal: true, .. }) => unavailable(e.to_string(), "device_failure"),
        Some(BatchError::TooLong { .. }) => {
            ApiError::invalid(Some("max_tokens"), format!("max_tokens: {e}"))
        }
        Some(BatchError::BadSampling { .. }) => ApiError::invalid(None, e.to_string()),
        Some(BatchError::EmptyPrompt | BatchError::BadToken { .. }) => {
            ApiError::invalid(Some(param), e.to_string())
        }
        _ => ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: e.to_string(),
            kind: "server_error",
            param: None,
            code: None,
            retry_after: None,
        },
    }
}

/// What a completion or chat request asks for, checked (the prompt not yet rendered).
#[derive(Debug)]
pub struct Params {
    pub model: String,
    /// The prompt (completions) or the messages (chat).
    pub input: Input,
    pub max_tokens: Option<u32>,
    pub temperature: f32,
    pub top_p: f32,
    pub seed: Option<u64>,
    pub stop: Vec<String>,
    pub stream: bool,
    pub include_usage: bool,
}

/// The prompt of a request.
#[derive(Debug)]
pub enum Input {
    Prompt(String),
    Messages(Vec<Message>),
}

type Fields = Map<String, Value>;

/// A field's value; `null` counts as absent.
fn field<'a>(f: &'a Fields, key: &str) -> Option<&'a Value> {
    f.get(key).filter(|v| !v.is_null())
}

fn wrong(key: &str, expected: &str, got: &Value) -> ApiError {
    let got = match got {
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
        Value::Null => "null",
    };
    ApiError::invalid(Some(key), format!("'{key}' must be {expected}, got {got}"))
}

fn string(f: &Fields, key: &str) -> Result<Option<String>, ApiError> {
    match field(f, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(wrong(key, "a string", v)),
    }
}

fn boolean(f: &Fields, key: &str) -> Result<bool, ApiError> {
    match field(f, key) {
        None => Ok(false),
        Some(v) => v.as_bool().ok_or_else(|| wrong(key, "a boolean", v)),
    }
}

fn number(f: &Fields, key: &str, range: (f64, f64)) -> Result<Option<f64>, ApiError> {
    let Some(v) = field(f, key) else {
        return Ok(None);
    };
    let x = v.as_f64().ok_or_else(|| wrong(key, "a number", v))?;
    if !(range.0..=range.1).contains(&x) {
        let (lo, hi) = range;
        let message = format!("'{key}' must be between {lo} and {hi}, got {x}");
        return Err(ApiError::invalid(Some(key), message));
    }
    Ok(Some(x))
}

fn integer(f: &Fields, key: &str) -> Result<Option<i64>, ApiError> {
    match field(f, key) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| wrong(key, "an integer", v)),
    }
}

/// The request body (`chat`: of `/v1/chat/completions`), checked against a context of
/// `context` positions.
pub fn parse(body: &[u8], chat: bool, context: u32) -> Result<Params, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(None, format!("the body is not valid JSON: {e}")))?;
    let Value::Object(f) = value else {
        return Err(ApiError::invalid(None, "the body must be a JSON object"));
    };
    let model = string(&f, "model")?;
    if let Some(n) = integer(&f, "n")?.filter(|&n| n != 1) {
        let message = format!("only n = 1 is supported, got {n}");
        return Err(ApiError::invalid(Some("n"), message));
    }
    let logprobs = field(&f, "logprobs").is_some_and(|v| v != &Value::Bool(false));
    if logprobs || (chat && field(&f, "top_logprobs").is_some()) {
        return Err(ApiError::invalid(
            Some("logprobs"),
            "logprobs are not supported",
        ));
    }
    if boolean(&f, "echo")? {
        return Err(ApiError::invalid(Some("echo"), "echo is not supported"));
    }
    let input = if chat { messages(&f)? } else { prompt(&f)? };
    let keys: &[&str] = match chat {
        true => &["max_completion_tokens", "max_tokens"],
        false => &["max_tokens"],
    };
    let mut max_tokens = None;
    for &key in keys {
        let Some(n) = integer(&f, key)? else { continue };
        if n < 1 || n > i64::from(context) {
            let message =
                format!("'{key}' must be between 1 and the context of {context}, got {n}");
            return Err(ApiError::invalid(Some(key), message));
        }
        max_tokens = max_tokens.or(Some(n as u32));
    }
    let stop = match field(&f, "stop") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if a.len() <= 4 => (a.iter())
            .map(|s| {
                s.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| wrong("stop", "a string or an array of strings", s))
            })
            .collect::<Result<_, _>>()?,
        Some(Value::Array(_)) => {
            return Err(ApiError::invalid(
                Some("stop"),
                "'stop' takes at most 4 strings",
            ));
        }
        Some(v) => return Err(wrong("stop", "a string or an array of strings", v)),
    };
    let include_usage = match field(&f, "stream_options") {
        None => false,
        Some(Value::Object(o)) => boolean(o, "include_usage").map_err(|_| {
            wrong(
                "stream_options.include_usage",
                "a boolean",
                o.get("include_usage").unwrap_or(&Value::Null),
            )
        })?,
        Some(v) => return Err(wrong("stream_options", "an object", v)),
    };
    let seed = integer(&f, "seed")?.map(|s| s as u64);
    let temperature = number(&f, "temperature", (0.0, 2.0))?.unwrap_or(1.0) as f32;
    let top_p = number(&f, "top_p", (0.0, 1.0))?.unwrap_or(1.0) as f32;
    if top_p == 0.0 {
        let message = "'top_p' must be above 0 (at most 1), got 0";
        return Err(ApiError::invalid(Some("top_p"), message));
    }
    let stream = boolean(&f, "stream")?;
    // The model is looked up last (after every field is checked).
    let Some(model) = model else {
        let message = "you must provide a model parameter";
        return Err(ApiError::invalid(Some("model"), message));
    };
    Ok(Params {
        model,
        input,
        max_tokens,
        temperature,
        top_p,
        seed,
        stop,
        stream,
        include_usage,
    })
}

fn prompt(f: &Fields) -> Result<Input, ApiError> {
    match field(f, "prompt") {
        None => Err(ApiError::invalid(Some("prompt"), "'prompt' is required")),
        Some(Value::String(s)) if s.is_empty() => Err(ApiError::invalid(
            Some("prompt"),
            "'prompt' must not be empty",
        )),
        Some(Value::String(s)) => Ok(Input::Prompt(s.clone())),
        Some(Value::Array(_)) => Err(ApiError::invalid(
            Some("prompt"),
            "'prompt' must be a string: arrays of prompts or of token ids are not supported",
        )),
        Some(v) => Err(wrong("prompt", "a string", v)),
    }
}

fn messages(f: &Fields) -> Result<Input, ApiError> {
    let list = match field(f, "messages") {
        None => {
            return Err(ApiError::invalid(
                Some("messages"),
                "'messages' is required",
            ));
        }
        Some(Value::Array(a)) if a.is_empty() => {
            return Err(ApiError::invalid(
                Some("messages"),
                "'messages' must not be empty",
            ));
        }
        Some(Value::Array(a)) => a,
        Some(v) => return Err(wrong("messages", "an array", v)),
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let Value::Object(m) = m else {
            return Err(wrong(&format!("messages[{i}]"), "an object", m));
        };
        let key = |k: &str| format!("messages[{i}].{k}");
        let role = match field(m, "role") {
            Some(Value::String(r)) => r.clone(),
            Some(v) => return Err(wrong(&key("role"), "a string", v)),
            None => {
                return Err(ApiError::invalid(
                    Some(&key("role")),
                    format!("'{}' is required", key("role")),
                ));
            }
        };
        // A string, or text parts `[{"type": "text", "text": ...}]`.
        let content = match field(m, "content") {
            None => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => {
                let text = |p: &Value| p.get("text").and_then(Value::as_str).map(str::to_owned);
                (parts.iter())
                    .map(|p| {
                        text(p).ok_or_else(|| wrong(&key("content"), "a string or text parts", p))
                    })
                    .collect::<Result<String, _>>()?
            }
            Some(v) => return Err(wrong(&key("content"), "a string", v)),
        };
        out.push(Message { role, content });
    }
    Ok(Input::Messages(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(body: Value, chat: bool) -> (Option<String>, String) {
        let e = parse(body.to_string().as_bytes(), chat, 128).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        (e.param, e.message)
    }

    #[test]
    fn bad_fields_are_named() {
        let m = "small-decoder";
        for (body, chat, param) in [
            (json!({"model": m, "prompt": 5}), false, "prompt"),
            (json!({"model": m, "prompt": ""}), false, "prompt"),
            (json!({"model": m, "prompt": ["a", "b"]}), false, "prompt"),
            (
                json!({"model": m, "prompt": "a", "max_tokens": 0}),
                false,
                "max_tokens",
            ),
            (
                json!({"model": m, "prompt": "a", "max_tokens": 129}),
                false,
                "max_tokens",
            ),
            (
                json!({"model": m, "prompt": "a", "max_tokens": "3"}),
                false,
                "max_tokens",
            ),
            (json!({"model": m, "prompt": "a", "n": 2}), false, "n"),
            (
                json!({"model": m, "prompt": "a", "logprobs": 1}),
                false,
                "logprobs",
            ),
            (
                json!({"model": m, "prompt": "a", "echo": true}),
                false,
                "echo",
            ),
            (
                json!({"model": m, "prompt": "a", "temperature": "hot"}),
                false,
                "temperature",
            ),
            (
                json!({"model": m, "prompt": "a", "stop": [1]}),
                false,
                "stop",
            ),
            (
                json!({"model": m, "prompt": "a", "stream": 1}),
                false,
                "stream",
            ),
            (json!({"model": 7, "prompt": "a"}), false, "model"),
            (json!({"prompt": "a"}), false, "model"),
            (json!({"model": m, "messages": []}), true, "messages"),
            (
                json!({"model": m, "messages": [{"role": 1}]}),
                true,
                "messages[0].role",
            ),
            (
                json!({"model": m, "messages": [{"role": "user"}], "max_completion_tokens": 0}),
                true,
                "max_completion_tokens",
            ),
        ] {
            let (got, message) = refused(body.clone(), chat);
            assert_eq!(got.as_deref(), Some(param), "{body}: {message}");
            assert!(message.contains(param), "{body}: {message}");
        }
        let p = parse(br#"{"model": "x", "prompt": "hi", "stop": "\n", "whatever": {}, "n": 1, "logprobs": null}"#, false, 128);
        let p = p.unwrap();
        assert_eq!(
            (p.stop, p.max_tokens, p.stream),
            (vec!["\n".to_owned()], None, false)
        );
    }
}
