//! Incremental detokenization for the byte tokenizer (token id = byte value), with stop
//! strings held back: [`TextOut`] turns a sequence's tokens into text pieces that never
//! split a UTF-8 character, never show a stop string, and concatenate to the same text
//! however the tokens are grouped (invalid bytes become U+FFFD as in
//! `String::from_utf8_lossy`).

/// One sequence's text so far: bytes not yet decided, and whether a stop string ended it.
#[derive(Debug, Default)]
pub struct TextOut {
    stops: Vec<Vec<u8>>,
    eos: Vec<u32>,
    pending: Vec<u8>,
    stopped: bool,
}

impl TextOut {
    /// A sequence ending at any of `stops` (removed from the text) or `eos` ids (no text).
    pub fn new(stops: &[String], eos: &[u32]) -> TextOut {
        let stops = stops.iter().filter(|s| !s.is_empty());
        TextOut {
            stops: stops.map(|s| s.as_bytes().to_vec()).collect(),
            eos: eos.to_vec(),
            ..TextOut::default()
        }
    }

    /// Whether a stop string was seen (later tokens add nothing).
    #[cfg(test)]
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Adds token `id`; returns the text now decided (maybe empty).
    pub fn push(&mut self, id: u32) -> String {
        if self.stopped || self.eos.contains(&id) {
            return String::new();
        }
        // Ids past the byte vocabulary have no bytes.
        if let Ok(b) = u8::try_from(id) {
            self.pending.push(b);
        }
        let earliest = (self.stops.iter())
            .filter_map(|s| find(&self.pending, s))
            .min();
        if let Some(at) = earliest {
            self.stopped = true;
            self.pending.truncate(at);
            return self.finish();
        }
        let held = self.held_back();
        self.decode(self.pending.len() - held, false)
    }

    /// The rest of the text at the end of the sequence (an incomplete character: U+FFFD).
    pub fn finish(&mut self) -> String {
        self.decode(self.pending.len(), true)
    }

    /// The length of the longest suffix of `pending` that begins a stop string.
    fn held_back(&self) -> usize {
        let p = &self.pending;
        (1..=p.len())
            .rev()
            .find(|&n| {
                self.stops
                    .iter()
                    .any(|s| n < s.len() && s.starts_with(&p[p.len() - n..]))
            })
            .unwrap_or(0)
    }

    /// Decodes up to `upto` bytes of `pending`: whole characters, one U+FFFD per invalid
    /// sequence; an incomplete character at the end stays pending unless `last`.
    fn decode(&mut self, upto: usize, last: bool) -> String {
        let mut out = String::new();
        let mut at = 0;
        while at < upto {
            match std::str::from_utf8(&self.pending[at..upto]) {
                Ok(s) => {
                    out.push_str(s);
                    at = upto;
                }
                Err(e) => {
                    let valid = at + e.valid_up_to();
                    // The prefix up to `valid` is UTF-8 (what the error says).
                    out.push_str(&String::from_utf8_lossy(&self.pending[at..valid]));
                    match e.error_len() {
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            at = valid + n;
                        }
                        // Incomplete: may be completed by later bytes (unless held back
                        // bytes or the end decide it: then lossy, like the whole text).
                        None if last => {
                            out.push_str(&String::from_utf8_lossy(&self.pending[valid..upto]));
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
        self.pending.drain(..at);
        out
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    (haystack.windows(needle.len())).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(bytes: &[u8], stops: &[&str]) -> (Vec<String>, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut t = TextOut::new(&stops, &[]);
        let mut out: Vec<String> = bytes.iter().map(|&b| t.push(b.into())).collect();
        out.push(t.finish());
        (out, t.stopped())
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
        let mut t = TextOut::new(&[], &[0]);
        assert_eq!(t.push(b'a'.into()) + &t.push(0) + &t.finish(), "a");
    }
}
