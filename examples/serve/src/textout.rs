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

#[cfg(test)]
mod tests {
    use super::*;

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
