//! `--tokenizer tokenizer.json` over HTTP on the simulator's small decoder: a byte-level
//! BPE tokenizer whose ids fit its 256 (`textout::test_tokenizer_json`), with a
//! `tokenizer_config.json` and a `generation_config.json` beside it; one whose ids do not
//! fit refused at startup.

use serde_json::{Value, json};

use crate::load;
use crate::openai_load::{Answer, greedy, post};
use crate::openai_tests::serialized;
use crate::textout::test_tokenizer_json;

const MODEL: &str = "small-decoder";

/// serve's options for one core, `flags` and `--tokenizer dir/tokenizer.json`.
fn options(dir: &std::path::Path, flags: &str) -> Result<crate::Options, String> {
    let args = format!(
        "--listen 127.0.0.1:0 --cores 1 {flags} --tokenizer {}",
        dir.join("tokenizer.json").display()
    );
    crate::parse_args(args.split_whitespace().map(String::from))
}

/// `dir/tokenizer.json`: the small byte-level BPE tokenizer.
fn write_tokenizer(dir: &std::path::Path) {
    std::fs::write(dir.join("tokenizer.json"), test_tokenizer_json()).expect("write");
}

/// The generation service alone, with `dir/tokenizer.json`.
async fn start(dir: &std::path::Path) -> Result<crate::openai::Service, String> {
    let o = options(dir, "")?;
    let runtime = neuron_rt::Runtime::builder().library(nrt_sim::library());
    let runtime = runtime.build().map_err(crate::text)?;
    let config = crate::openai::Config {
        bundle: None,
        chat_template: None,
        tokenizer: o.tokenizer.as_deref(),
        cores: 1,
        max_waiting: 4,
        device_time: std::time::Duration::from_millis(1),
    };
    crate::openai::Service::start(&runtime, &config)
}

fn text_of(a: &Answer) -> String {
    let c = &a.events[0]["choices"][0];
    let text = c["text"].as_str().or(c["message"]["content"].as_str());
    text.expect("a text").to_owned()
}

#[test]
fn completions_with_a_tokenizer_json_stream_the_same_text() {
    serialized(async {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path();
        write_tokenizer(dir);
        let config = json!({"bos_token": "<s>", "eos_token": {"content": "<|eos|>"},
            "chat_template": "{{ bos_token }}{% for m in messages %}{{ m['content'] }}\n{% endfor %}{{ eos_token }}"});
        std::fs::write(dir.join("tokenizer_config.json"), config.to_string()).expect("write");
        let generation = json!({"eos_token_id": [254, 253]});
        std::fs::write(dir.join("generation_config.json"), generation.to_string()).expect("w");
        let o = options(dir, "").expect("options");
        let (addr, app, _server) = crate::start(&o).await.expect("service");
        let service = app.openai.clone().expect("the generation service");
        // `generation_config.json`'s ids and `eos_token`'s.
        assert_eq!(service.eos, [253, 254, 255]);
        let mut s = load::connect(addr).await.expect("connect");
        let mut texts = Vec::new();
        for prompt in ["the other one", "héllo wörld → 世界", "a"] {
            let ids = service.tokenizer.encode(prompt, true).expect("encode");
            let body = greedy(MODEL, prompt, 40, false);
            let whole = post(&mut s, "/v1/completions", &body).await.expect("HTTP");
            assert_eq!(whole.status, 200, "{:?}", whole.events);
            assert_eq!(whole.events[0]["usage"]["prompt_tokens"], ids.len());
            let body = greedy(MODEL, prompt, 40, true);
            let streamed = post(&mut s, "/v1/completions", &body).await.expect("HTTP");
            assert!(streamed.done, "{:?}", streamed.events);
            assert_eq!(streamed.text(), text_of(&whole), "{prompt}");
            assert_eq!(streamed.finish_reason(), whole.finish_reason());
            // No piece is a broken character.
            for e in &streamed.events {
                let piece = e["choices"][0]["text"].as_str().unwrap_or("");
                assert!(!piece.contains('\u{FFFD}') || text_of(&whole).contains('\u{FFFD}'));
            }
            texts.push(text_of(&whole));
        }
        assert!(texts.iter().any(|t| !t.is_empty()), "{texts:?}");

        // A stop string inside a greedy text: the text before it, the sequence ended.
        let (prompt, text) = (["the other one", "héllo wörld → 世界", "a"].iter())
            .zip(&texts)
            .find(|(_, t)| t.chars().count() >= 4)
            .expect("a text of 4 characters");
        let stop: String = text.chars().skip(2).take(2).collect();
        let cut = &text[..text.find(&stop).expect("the stop")];
        for stream in [false, true] {
            let mut body = greedy(MODEL, prompt, 40, stream);
            body["stop"] = json!([stop]);
            let a = post(&mut s, "/v1/completions", &body).await.expect("HTTP");
            let got = if stream { a.text() } else { text_of(&a) };
            assert_eq!(got, cut, "{stop:?} in {text:?}");
            assert_eq!(a.finish_reason(), Some("stop"));
        }
        assert!(crate::openai_load::settles(&app, std::time::Duration::from_secs(5)).await);

        // Chat: the template from `tokenizer_config.json`, its bos/eos tokens encoded
        // without the tokenizer's own special tokens.
        let chat = json!({"model": MODEL, "max_tokens": 4, "temperature": 0,
            "messages": [{"role": "user", "content": "hello"}]});
        let a = post(&mut s, "/v1/chat/completions", &chat)
            .await
            .expect("HTTP");
        assert_eq!(a.status, 200, "{:?}", a.events);
        let rendered = service.tokenizer.encode("<s>hello\n<|eos|>", false);
        let n = rendered.expect("encode").len();
        assert_eq!(a.events[0]["usage"]["prompt_tokens"], n);
    });
}

#[test]
fn a_tokenizer_past_the_vocabulary_is_refused() {
    serialized(async {
        let temp = tempfile::tempdir().expect("temp dir");
        let word_level: Value = json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
            "normalizer": null, "pre_tokenizer": {"type": "Whitespace"},
            "post_processor": null, "decoder": null,
            "model": {"type": "WordLevel", "unk_token": "<unk>",
                "vocab": {"<unk>": 0, "hello": 1, "world": 300}},
        });
        let path = temp.path().join("tokenizer.json");
        std::fs::write(&path, word_level.to_string()).expect("write");
        let e = start(temp.path()).await.err().expect("refused");
        assert!(
            e.contains("300") && e.contains("301 ids") && e.contains("256"),
            "{e}"
        );
        // Not a tokenizer at all: its path and the parser's error.
        std::fs::write(&path, "{}").expect("write");
        let e = start(temp.path()).await.err().expect("refused");
        assert!(e.contains("tokenizer.json"), "{e}");
    });
}

#[test]
fn the_openai_load_runs_with_a_tokenizer_json() {
    // `serve --load N --openai --tokenizer FILE`: every stream ends with [DONE], greedy
    // texts equal each prompt's text generated alone, all slots free afterwards.
    serialized(async {
        let temp = tempfile::tempdir().expect("temp dir");
        write_tokenizer(temp.path());
        let o = options(temp.path(), "--openai --load 48 --concurrency 8").expect("options");
        let (addr, app, _server) = crate::start(&o).await.expect("service");
        assert!(app.openai.as_ref().is_some_and(|s| !s.tokenizer.is_bytes()));
        assert!(crate::openai_load::load_run(&o, &app, addr).await);
    });
}
