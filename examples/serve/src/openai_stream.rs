//! The answers of the OpenAI routes: one request's [`Sequence`] (its tokens turned into
//! text, timed), the JSON of its chunks and answers ([`Head`]), and the SSE body of a
//! streamed answer ([`Streamer`]: `data:` events, the last `data: [DONE]`; a failure
//! is an error event, then `[DONE]`).

use std::convert::Infallible;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use futures_util::StreamExt;
use neuron_rt::generate::{BatchError, Finish, FinishReason, Generated, TokenStream};
use prometheus_client::metrics::histogram::Histogram;
use serde_json::{Value, json};

use crate::openai_req::api_error;
use crate::textout::TextOut;

/// The service's own generation metrics (the batcher counts the rest).
#[derive(Clone, Debug)]
pub struct Stats {
    /// From the request's body read to its first token.
    pub ttft: Histogram,
    /// Between two tokens of a sequence.
    pub itl: Histogram,
}

/// What every chunk or answer of one request carries.
pub struct Head {
    id: String,
    created: u64,
    model: String,
    chat: bool,
}

impl Head {
    /// The head of request number `n`.
    pub fn new(chat: bool, model: &str, n: u64) -> Head {
        let now = SystemTime::now().duration_since(UNIX_EPOCH);
        let created = now.map_or(0, |d| d.as_secs());
        let kind = if chat { "chatcmpl" } else { "cmpl" };
        let id = format!("{kind}-{created:x}{n:04}");
        let model = model.to_owned();
        Head {
            id,
            created,
            model,
            chat,
        }
    }

    /// A completion chunk (or answer) with `choices` and maybe `usage`.
    pub fn body(&self, choices: Value, usage: Option<Value>, chunk: bool) -> Value {
        let object = match (self.chat, chunk) {
            (true, true) => "chat.completion.chunk",
            (true, false) => "chat.completion",
            (false, _) => "text_completion",
        };
        let mut v = json!({"id": self.id, "object": object, "created": self.created,
            "model": self.model, "choices": choices});
        if let Some(usage) = usage {
            v["usage"] = usage;
        }
        v
    }

    /// A streamed choice: a text piece, a role, or the finish.
    pub fn choice(&self, text: Option<&str>, role: bool, finish: Option<&str>) -> Value {
        let mut c = json!({"index": 0, "logprobs": null, "finish_reason": finish});
        if self.chat {
            let mut delta = json!({});
            if role {
                delta["role"] = json!("assistant");
                delta["content"] = json!("");
            }
            if let Some(t) = text {
                delta["content"] = json!(t);
            }
            c["delta"] = delta;
        } else {
            c["text"] = json!(text.unwrap_or(""));
        }
        c
    }
}

pub fn usage(prompt: u32, completion: u32) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion,
        "total_tokens": prompt + completion})
}

pub fn finish_reason(r: &FinishReason) -> &'static str {
    match r {
        FinishReason::Eos(_) | FinishReason::StopString(_) => "stop",
        _ => "length",
    }
}

/// One request's sequence: its tokens, its text, its timing.
pub struct Sequence {
    tokens: TokenStream,
    text: TextOut,
    stats: Stats,
    last: Instant,
    first: bool,
    prompt_tokens: u32,
    completion_tokens: u32,
}

/// The next thing a sequence says.
pub enum Step {
    Text(String),
    Finished(String, Finish),
    Failed(neuron_rt::Error),
}

impl Sequence {
    /// The sequence of `tokens`, for a request whose body was read at `arrived`.
    pub fn new(
        tokens: TokenStream,
        text: TextOut,
        stats: Stats,
        arrived: Instant,
        prompt_tokens: u32,
    ) -> Self {
        let (last, first) = (arrived, true);
        Sequence {
            tokens,
            text,
            stats,
            last,
            first,
            prompt_tokens,
            completion_tokens: 0,
        }
    }

    async fn step(&mut self) -> Step {
        loop {
            match self.tokens.next().await {
                Some(Ok(Generated::Token(id))) => {
                    let now = Instant::now();
                    let gap = (now - self.last).as_secs_f64();
                    match std::mem::replace(&mut self.first, false) {
                        true => self.stats.ttft.observe(gap),
                        false => self.stats.itl.observe(gap),
                    }
                    self.last = now;
                    self.completion_tokens += 1;
                    let piece = self.text.push(id);
                    if self.text.ends_here() {
                        // A stop string the library does not see (a Hugging Face
                        // tokenizer's): the sequence ends here, its stream (so its slot)
                        // dropped with this `Sequence`.
                        let stop = self.text.stopped().unwrap_or_default().as_bytes().to_vec();
                        let finish = Finish {
                            reason: FinishReason::StopString(stop),
                            prompt_tokens: self.prompt_tokens,
                            completion_tokens: self.completion_tokens,
                        };
                        return Step::Finished(piece, finish);
                    }
                    if !piece.is_empty() {
                        return Step::Text(piece);
                    }
                }
                Some(Ok(Generated::Finished(f))) => return Step::Finished(self.text.finish(), f),
                Some(Err(e)) => return Step::Failed(e),
                None => {
                    let reason = "the sequence ended without a finish".to_owned();
                    let e = BatchError::Unavailable { reason };
                    return Step::Failed(e.into());
                }
            }
        }
    }

    /// The whole text and the finish.
    pub async fn collect(mut self) -> Result<(String, Finish), neuron_rt::Error> {
        let mut text = String::new();
        loop {
            match self.step().await {
                Step::Text(piece) => text.push_str(&piece),
                Step::Finished(rest, f) => return Ok((text + &rest, f)),
                Step::Failed(e) => return Err(e),
            }
        }
    }
}

#[derive(PartialEq)]
enum Phase {
    Start,
    Tokens,
    Done,
}

/// A streamed answer: SSE events, the last one `data: [DONE]`.
pub struct Streamer {
    head: Head,
    seq: Sequence,
    include_usage: bool,
    state: Phase,
}

fn event(v: &Value) -> String {
    format!("data: {v}\n\n")
}

impl Streamer {
    /// The SSE body of a streamed answer (dropping it cancels the sequence).
    pub fn body(head: Head, seq: Sequence, include_usage: bool) -> Body {
        let state = Phase::Start;
        let s = Streamer {
            head,
            seq,
            include_usage,
            state,
        };
        Body::from_stream(futures_util::stream::unfold(s, Streamer::next))
    }

    async fn next(mut self) -> Option<(Result<Bytes, Infallible>, Streamer)> {
        let h = &self.head;
        let out = match self.state {
            Phase::Done => return None,
            Phase::Start if h.chat => {
                self.state = Phase::Tokens;
                event(&h.body(json!([h.choice(None, true, None)]), None, true))
            }
            _ => {
                self.state = Phase::Tokens;
                match self.seq.step().await {
                    Step::Text(t) => {
                        event(&h.body(json!([h.choice(Some(&t), false, None)]), None, true))
                    }
                    Step::Finished(rest, f) => {
                        self.state = Phase::Done;
                        let mut out = String::new();
                        if !rest.is_empty() {
                            out += &event(&h.body(
                                json!([h.choice(Some(&rest), false, None)]),
                                None,
                                true,
                            ));
                        }
                        let reason = Some(finish_reason(&f.reason));
                        out += &event(&h.body(json!([h.choice(None, false, reason)]), None, true));
                        if self.include_usage {
                            let u = usage(f.prompt_tokens, f.completion_tokens);
                            out += &event(&h.body(json!([]), Some(u), true));
                        }
                        out + "data: [DONE]\n\n"
                    }
                    Step::Failed(e) => {
                        self.state = Phase::Done;
                        event(&api_error(&e, "prompt").body()) + "data: [DONE]\n\n"
                    }
                }
            }
        };
        Some((Ok(Bytes::from(out)), self))
    }
}
