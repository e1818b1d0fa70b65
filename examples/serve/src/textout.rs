//! Tokenizers and incremental detokenization, with stop strings held back: a
//! [`Tokenizer`] is the byte tokenizer (token id = byte value) or a Hugging Face
//! `tokenizer.json`; [`TextOut`] turns a sequence's tokens into text pieces that never
//! split a UTF-8 character (or a token that only decodes with its neighbours), never
//! show a stop string, and concatenate to the same text however the tokens are grouped
//! (invalid bytes become U+FFFD as in `String::from_utf8_lossy`).

use std::sync::Arc;

/// How text becomes token ids and back.
#[derive(Debug)]
pub enum Tokenizer {
    /// Token id = byte value (the simulator's small decoder).
    Byte,
    /// A Hugging Face tokenizer (`--tokenizer tokenizer.json`).
    HuggingFace(Box<tokenizers::Tokenizer>),
}

impl Tokenizer {
    /// Loads a `tokenizer.json`.
    pub fn from_file(path: &std::path::Path) -> Result<Tokenizer, String> {
        let t = tokenizers::Tokenizer::from_file(path);
        let t = t.map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Tokenizer::HuggingFace(Box::new(t)))
    }

    /// The ids of `text` (with the tokenizer's special tokens, e.g. BOS, if `special`).
    pub fn encode(&self, text: &str, special: bool) -> Result<Vec<u32>, String> {
        match self {
            Tokenizer::Byte => Ok(text.bytes().map(u32::from).collect()),
            Tokenizer::HuggingFace(t) => match t.encode_fast(text, special) {
                Ok(e) => Ok(e.get_ids().to_vec()),
                Err(e) => Err(format!("the tokenizer: {e}")),
            },
        }
    }

    /// One past the largest id it can produce (256 for bytes).
    pub fn id_bound(&self) -> u64 {
        match self {
            Tokenizer::Byte => 256,
            Tokenizer::HuggingFace(t) => {
                let ids = t.get_vocab(true).into_values();
                ids.map(|id| u64::from(id) + 1).max().unwrap_or(0)
            }
        }
    }

    /// The id of a token's text (`eos_token`), if it has one.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        match self {
            Tokenizer::Byte => None,
            Tokenizer::HuggingFace(t) => t.token_to_id(token),
        }
    }

    /// Whether the library can see the stop strings itself (it matches them on bytes).
    pub fn is_bytes(&self) -> bool {
        matches!(self, Tokenizer::Byte)
    }

    /// `ids` decoded at once, special tokens skipped.
    fn decode_all(t: &tokenizers::Tokenizer, ids: &[u32]) -> String {
        t.decode(ids, true).unwrap_or_default()
    }
}

/// Where the detokenizer is.
#[derive(Debug, Default)]
enum Detok {
    /// Bytes not yet decoded (an incomplete character).
    #[default]
    Bytes,
    /// The ids so far; text up to `read` is out, `prefix..read` decodes the context
    /// that the next tokens are decoded with (as TGI and vLLM do).
    Ids {
        ids: Vec<u32>,
        prefix: usize,
        read: usize,
    },
}

/// One sequence's text so far: what is not yet decided, and whether a stop string ended it.
#[derive(Debug)]
pub struct TextOut {
    tokenizer: Arc<Tokenizer>,
    detok: Detok,
    stops: Vec<String>,
    eos: Vec<u32>,
    /// Bytes not yet decoded (byte tokenizer).
    bytes: Vec<u8>,
    /// Text decoded but held back (it may begin a stop string).
    pending: String,
    stopped: Option<String>,
}

impl TextOut {
    /// A sequence ending at any of `stops` (removed from the text) or `eos` ids (no text).
    pub fn new(tokenizer: Arc<Tokenizer>, stops: &[String], eos: &[u32]) -> TextOut {
        let stops = stops.iter().filter(|s| !s.is_empty()).cloned().collect();
        let detok = match *tokenizer {
            Tokenizer::Byte => Detok::Bytes,
            Tokenizer::HuggingFace(_) => Detok::Ids {
                ids: Vec::new(),
                prefix: 0,
                read: 0,
            },
        };
        TextOut {
            tokenizer,
            detok,
            stops,
            eos: eos.to_vec(),
            bytes: Vec::new(),
            pending: String::new(),
            stopped: None,
        }
    }

    /// The text of `ids` at once, as the pieces of a sequence concatenate to.
    #[cfg(test)]
    pub fn decode(tokenizer: &Arc<Tokenizer>, ids: &[u32]) -> String {
        let mut t = TextOut::new(tokenizer.clone(), &[], &[]);
        let text: String = ids.iter().map(|&id| t.push(id)).collect();
        text + &t.finish()
    }

    /// The stop string that ended the text, if one did (later tokens add nothing).
    pub fn stopped(&self) -> Option<&str> {
        self.stopped.as_deref()
    }

    /// Whether the sequence must be ended here: a stop string the library does not
    /// match itself (it matches them on token bytes: only for the byte tokenizer).
    pub fn ends_here(&self) -> bool {
        self.stopped.is_some() && !self.tokenizer.is_bytes()
    }

    /// Adds token `id`; returns the text now decided (maybe empty).
    pub fn push(&mut self, id: u32) -> String {
        if self.stopped.is_some() || self.eos.contains(&id) {
            return String::new();
        }
        let piece = self.detokenize(Some(id), false);
        self.hold(piece)
    }

    /// The rest of the text at the end of the sequence (an incomplete character: U+FFFD).
    pub fn finish(&mut self) -> String {
        if self.stopped.is_some() {
            return String::new();
        }
        let piece = self.detokenize(None, true);
        let out = self.hold(piece);
        out + &std::mem::take(&mut self.pending)
    }

    /// Adds the decoded `piece`; returns what is decided: up to a stop string (then
    /// stopped), or all but the longest suffix that begins one.
    fn hold(&mut self, piece: String) -> String {
        self.pending.push_str(&piece);
        let p = &self.pending;
        let earliest = (self.stops.iter())
            .filter_map(|s| p.find(s.as_str()).map(|at| (at, s)))
            .min_by_key(|&(at, _)| at);
        if let Some((at, s)) = earliest {
            self.stopped = Some(s.clone());
            self.pending.truncate(at);
            return std::mem::take(&mut self.pending);
        }
        let held = (1..=p.len())
            .rev()
            .find(|&n| {
                let tail = &p.as_bytes()[p.len() - n..];
                (self.stops.iter()).any(|s| n < s.len() && s.as_bytes().starts_with(tail))
            })
            .unwrap_or(0);
        // A stop string begins at a character boundary, so the held suffix does too.
        let rest = self.pending.split_off(self.pending.len() - held);
        std::mem::replace(&mut self.pending, rest)
    }

    /// Adds `id` (if any); returns the text it completes (all of it if `last`).
    fn detokenize(&mut self, id: Option<u32>, last: bool) -> String {
        match (&mut self.detok, &*self.tokenizer) {
            (Detok::Ids { ids, prefix, read }, Tokenizer::HuggingFace(t)) => {
                ids.extend(id);
                let before = Tokenizer::decode_all(t, &ids[*prefix..*read]);
                let after = Tokenizer::decode_all(t, &ids[*prefix..]);
                // Only once the new tokens add whole characters to the same context.
                let grown = after.len() > before.len() && after.starts_with(&before);
                if grown && (last || !after.ends_with(char::REPLACEMENT_CHARACTER)) {
                    (*prefix, *read) = (*read, ids.len());
                    after[before.len()..].to_owned()
                } else if last && !after.starts_with(&before) {
                    // The context decodes differently with the end (no text is lost,
                    // none repeated: what it adds past the common prefix).
                    let common = common_prefix(&before, &after);
                    after[common..].to_owned()
                } else {
                    String::new()
                }
            }
            _ => {
                if let Some(b) = id.and_then(|id| u8::try_from(id).ok()) {
                    // Ids past the byte vocabulary have no bytes.
                    self.bytes.push(b);
                }
                self.decode_bytes(last)
            }
        }
    }

    /// Decodes `bytes`: whole characters, one U+FFFD per invalid sequence; an
    /// incomplete character at the end stays undecided unless `last`.
    fn decode_bytes(&mut self, last: bool) -> String {
        let mut out = String::new();
        let mut at = 0;
        let upto = self.bytes.len();
        while at < upto {
            match std::str::from_utf8(&self.bytes[at..upto]) {
                Ok(s) => {
                    out.push_str(s);
                    at = upto;
                }
                Err(e) => {
                    let valid = at + e.valid_up_to();
                    // The prefix up to `valid` is UTF-8 (what the error says).
                    out.push_str(&String::from_utf8_lossy(&self.bytes[at..valid]));
                    match e.error_len() {
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            at = valid + n;
                        }
                        // Incomplete: may be completed by later bytes (unless the end
                        // decides it: then lossy, like the whole text).
                        None if last => {
                            out.push_str(&String::from_utf8_lossy(&self.bytes[valid..upto]));
                            at = upto;
                        }
                        None => {
                            at = valid;
                            break;
                        }
                    }
                }
            }
        }
        self.bytes.drain(..at);
        out
    }
}

/// The length of the longest common prefix of `a` and `b` (a character boundary).
fn common_prefix(a: &str, b: &str) -> usize {
    let mut pairs = a.char_indices().zip(b.chars());
    let diff = pairs.find(|&((_, x), y)| x != y).map(|((i, _), _)| i);
    diff.unwrap_or(a.len().min(b.len()))
}

/// A small byte-level BPE `tokenizer.json` (GPT-2's byte alphabet and pre-tokenizer
/// regex) whose ids fit the small decoder's 256: ids 0..211 are bytes (`\n`, printable
/// ASCII and the bytes of UTF-8 multi-byte characters, in that order, not their byte
/// values), 211..255 merges of common letter pairs, 255 the special `<|eos|>`.
#[cfg(test)]
pub fn test_tokenizer_json() -> String {
    // GPT-2's `bytes_to_unicode`: printable bytes are themselves, the rest 256 + n.
    let mut chars = [' '; 256];
    let mut n = 0;
    for b in 0..=255u32 {
        let printable = matches!(b, 0x21..=0x7e | 0xa1..=0xac | 0xae..=0xff);
        let c = if printable {
            b
        } else {
            n += 1;
            255 + n
        };
        chars[b as usize] = char::from_u32(c).expect("a char");
    }
    let bytes = std::iter::once(b'\n')
        .chain(0x20..=0x7e)
        .chain((0x80..=0xf4).filter(|b| !matches!(b, 0xc0 | 0xc1)));
    let mut vocab = serde_json::Map::new();
    for b in bytes {
        let id = vocab.len();
        vocab.insert(chars[usize::from(b)].to_string(), id.into());
    }
    let pairs = "th he in er an re on at en nd ti es or te of ed is it al ar st to nt ng se \
                 ha as ou io le ve co me de hi ri ro ic ne ea ra ce li ch";
    let mut merges = Vec::new();
    for pair in pairs.split_whitespace() {
        let id = vocab.len();
        vocab.insert(pair.to_owned(), id.into());
        merges.push(format!("{} {}", &pair[..1], &pair[1..]));
    }
    assert_eq!(vocab.len(), 255);
    let byte_level = serde_json::json!({"type": "ByteLevel", "add_prefix_space": false,
        "trim_offsets": true, "use_regex": true});
    serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [{"id": 255, "content": "<|eos|>", "single_word": false,
            "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
        "normalizer": null, "pre_tokenizer": byte_level, "post_processor": null,
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": null, "unk_token": null,
            "continuing_subword_prefix": null, "end_of_word_suffix": null,
            "fuse_unk": false, "byte_fallback": false, "vocab": vocab, "merges": merges},
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_tokenizer() -> (Arc<Tokenizer>, tokenizers::Tokenizer) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tokenizer.json");
        std::fs::write(&path, test_tokenizer_json()).expect("write");
        let t = Tokenizer::from_file(&path).expect("tokenizer");
        let Tokenizer::HuggingFace(hf) = &t else {
            unreachable!()
        };
        let hf = (**hf).clone();
        (Arc::new(t), hf)
    }

    const TEXTS: [&str; 3] = [
        "the cat then ate the other one\nhello",
        "héllo wörld → 世界 🎉 ñandú",
        "a 🎉🎉 b\n\nthe end",
    ];

    #[test]
    fn a_tokenizer_json_round_trips() {
        let (t, _) = test_tokenizer();
        assert_eq!(t.id_bound(), 256);
        assert_eq!(t.token_id("<|eos|>"), Some(255));
        for text in TEXTS {
            let ids = t.encode(text, true).expect("encode");
            assert!(ids.iter().all(|&id| id < 255), "{ids:?}");
            assert_ne!(ids, text.bytes().map(u32::from).collect::<Vec<_>>());
            assert_eq!(TextOut::decode(&t, &ids), text);
        }
        let ids = t.encode("the", true).expect("encode");
        assert_eq!(ids.len(), 2, "a merge: {ids:?}");
    }

    /// Every prefix of the ids, one token at a time: the pieces concatenate to the full
    /// decode of that prefix, and no piece is an incomplete character (U+FFFD) when the
    /// full text has none.
    #[test]
    fn incremental_detokenization_equals_the_full_decode() {
        let (t, hf) = test_tokenizer();
        for text in TEXTS {
            let mut ids = t.encode(text, true).expect("encode");
            // A lone continuation byte and the special token (skipped) in the middle.
            ids.insert(ids.len() / 2, 255);
            ids.insert(ids.len() / 3, 150);
            for k in 0..=ids.len() {
                let full = hf.decode(&ids[..k], true).expect("decode");
                let mut out = TextOut::new(t.clone(), &[], &[]);
                let mut pieces: Vec<String> = ids[..k].iter().map(|&id| out.push(id)).collect();
                pieces.push(out.finish());
                assert_eq!(pieces.concat(), full, "{text:?} up to {k}");
                let bad = full.matches('\u{FFFD}').count();
                let shown: usize = pieces.iter().map(|p| p.matches('\u{FFFD}').count()).sum();
                assert_eq!(shown, bad, "{pieces:?}");
            }
            // Multi-byte characters span tokens: some pieces are empty (held).
            let mut out = TextOut::new(t.clone(), &[], &[]);
            let pieces: Vec<String> = ids.iter().map(|&id| out.push(id)).collect();
            assert!(!text.is_ascii() <= pieces.iter().any(String::is_empty));
        }
    }

    #[test]
    fn stop_strings_on_a_tokenizer_json() {
        let (t, _) = test_tokenizer();
        let stops = ["世".to_owned(), "hen".to_owned()];
        for text in TEXTS {
            let ids = t.encode(text, true).expect("encode");
            let mut out = TextOut::new(t.clone(), &stops, &[255]);
            let mut pieces: Vec<String> = ids.iter().map(|&id| out.push(id)).collect();
            pieces.push(out.finish());
            let cut = stops.iter().filter_map(|s| text.find(s.as_str())).min();
            assert_eq!(
                pieces.concat(),
                text[..cut.unwrap_or(text.len())],
                "{pieces:?}"
            );
            assert_eq!(out.stopped().is_some(), cut.is_some());
            assert_eq!(out.ends_here(), cut.is_some());
        }
    }

    fn pieces(bytes: &[u8], stops: &[&str]) -> (Vec<String>, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut t = TextOut::new(Arc::new(Tokenizer::Byte), &stops, &[]);
        let mut out: Vec<String> = bytes.iter().map(|&b| t.push(b.into())).collect();
        out.push(t.finish());
        (out, t.stopped().is_some())
    }

    #[test]
    fn utf8_is_never_split_and_invalid_bytes_are_lossy() {
        let text = "héllo → 世界 🎉".as_bytes();
        let (out, _) = pieces(text, &[]);
        assert!(out.iter().all(|p| p.chars().count() <= 1), "{out:?}");
        assert_eq!(out.concat(), "héllo → 世界 🎉");
        for bytes in [
            &b"a\xff\xfeb\xe4\xb8"[..],
            b"\xe4\xb8a\xf0\x9f\x8e",
            b"\xc3",
            b"\xf0\x9f\x8e\x89\x80x",
        ] {
            let (out, _) = pieces(bytes, &[]);
            assert_eq!(out.concat(), String::from_utf8_lossy(bytes), "{bytes:?}");
        }
    }

    #[test]
    fn stop_strings_are_held_back_and_removed() {
        let (out, stopped) = pieces(b"one\ntwo\n\nthree", &["\n\n"]);
        assert!(stopped);
        assert_eq!(out.concat(), "one\ntwo");
        // The `\n` after "one" is held until "t" shows it is no stop string.
        assert_eq!(out[3], "");
        assert_eq!(out[4], "\nt");
        let (out, stopped) = pieces(b"abcab", &["abd", "cab"]);
        assert!(stopped);
        assert_eq!(out.concat(), "ab");
        let (out, stopped) = pieces(b"xab", &["abc"]);
        assert!(!stopped);
        assert_eq!(out.concat(), "xab", "a held prefix comes out at the end");
    }

    #[test]
    fn eos_adds_no_text() {
        let mut t = TextOut::new(Arc::new(Tokenizer::Byte), &[], &[0]);
        assert_eq!(t.push(b'a'.into()) + &t.push(0) + &t.finish(), "a");
    }
}
