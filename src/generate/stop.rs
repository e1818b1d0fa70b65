//! When a sequence ends: a token budget, end-of-sequence ids, stop strings.

use std::fmt;
use std::sync::Arc;

/// Why a sequence ended.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FinishReason {
    /// The token budget ([`StopConditions::max_new_tokens`]) is spent.
    Length,
    /// The cache is full: the next token would be at position `ctx`, past the
    /// bundle's context.
    ContextFull,
    /// The model produced an end-of-sequence id (it is the last token yielded).
    Eos(u32),
    /// The text ends with one of the stop strings (its last token is the last yielded).
    StopString(Vec<u8>),
}

impl fmt::Display for FinishReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FinishReason::Length => f.write_str("length"),
            FinishReason::ContextFull => f.write_str("context_full"),
            FinishReason::Eos(id) => write!(f, "eos({id})"),
            FinishReason::StopString(s) => write!(f, "stop({:?})", String::from_utf8_lossy(s)),
        }
    }
}

/// The bytes of a token, to match stop strings against the text produced so far.
pub type Detokenize = Arc<dyn Fn(u32) -> Vec<u8> + Send + Sync>;

/// What ends a sequence: a token budget (always), end-of-sequence ids (where the model
/// has one) and stop strings (matched on the bytes of the generated tokens, so a stop
/// string spanning several tokens is found; the bytes of a token come from
/// [`detokenize`](StopConditions::detokenize), by default the byte vocabulary: id `i`
/// below 256 is byte `i`).
///
/// ```
/// use neuron_rt::generate::{FinishReason, StopConditions};
///
/// let stop = StopConditions::new(10).stop_string("\n\n");
/// let mut state = stop.start();
/// assert_eq!(state.push(&stop, b'a' as u32), None);
/// assert_eq!(state.push(&stop, b'\n' as u32), None);
/// assert_eq!(state.push(&stop, b'\n' as u32), Some(FinishReason::StopString(b"\n\n".to_vec())));
/// ```
#[derive(Clone)]
pub struct StopConditions {
    /// Tokens to generate at most.
    pub max_new_tokens: u32,
    /// Ids that end a sequence (the id is yielded, then the sequence ends).
    pub eos: Vec<u32>,
    /// Byte strings that end a sequence once the generated text ends with one.
    pub stop_strings: Vec<Vec<u8>>,
    detokenize: Option<Detokenize>,
}

impl fmt::Debug for StopConditions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StopConditions")
            .field("max_new_tokens", &self.max_new_tokens)
            .field("eos", &self.eos)
            .field("stop_strings", &self.stop_strings)
            .field("detokenize", &self.detokenize.as_ref().map(|_| "custom"))
            .finish()
    }
}

impl StopConditions {
    /// A budget of `max_new_tokens`, no EOS, no stop strings.
    pub fn new(max_new_tokens: u32) -> StopConditions {
        StopConditions {
            max_new_tokens,
            eos: Vec::new(),
            stop_strings: Vec::new(),
            detokenize: None,
        }
    }

    /// Also ends on `id`.
    pub fn eos(mut self, id: u32) -> StopConditions {
        self.eos.push(id);
        self
    }

    /// Also ends once the text ends with `text` (an empty string is ignored).
    pub fn stop_string(mut self, text: impl AsRef<[u8]>) -> StopConditions {
        if !text.as_ref().is_empty() {
            self.stop_strings.push(text.as_ref().to_vec());
        }
        self
    }

    /// How a token's bytes are found (the tokenizer's decoder; default: byte vocabulary).
    pub fn detokenize(mut self, f: impl Fn(u32) -> Vec<u8> + Send + Sync + 'static) -> Self {
        self.detokenize = Some(Arc::new(f));
        self
    }

    /// The state of one sequence: tokens counted, the tail of its text.
    pub fn start(&self) -> StopState {
        StopState {
            produced: 0,
            tail: Vec::new(),
        }
    }

    fn bytes(&self, id: u32) -> Vec<u8> {
        match &self.detokenize {
            Some(f) => f(id),
            None => u8::try_from(id).map(|b| vec![b]).unwrap_or_default(),
        }
    }

    fn longest_stop(&self) -> usize {
        self.stop_strings.iter().map(Vec::len).max().unwrap_or(0)
    }
}

/// One sequence's progress against its [`StopConditions`].
#[derive(Clone, Debug, Default)]
pub struct StopState {
    produced: u32,
    /// The last bytes of the text, as many as the longest stop string needs.
    tail: Vec<u8>,
}

impl StopState {
    /// Tokens counted so far.
    pub fn produced(&self) -> u32 {
        self.produced
    }

    /// Counts token `id` (already yielded to the caller) and says whether the sequence
    /// ends with it. EOS is checked first, then the stop strings, then the budget.
    pub fn push(&mut self, stop: &StopConditions, id: u32) -> Option<FinishReason> {
        self.produced += 1;
        if stop.eos.contains(&id) {
            return Some(FinishReason::Eos(id));
        }
        let keep = stop.longest_stop();
        if keep > 0 {
            self.tail.extend(stop.bytes(id));
            for s in &stop.stop_strings {
                if self.tail.ends_with(s) {
                    return Some(FinishReason::StopString(s.clone()));
                }
            }
            // A stop string can end inside a later token: keep its length minus one.
            let excess = self.tail.len().saturating_sub(keep.saturating_sub(1));
            self.tail.drain(..excess);
        }
        (self.produced >= stop.max_new_tokens).then_some(FinishReason::Length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_eos_and_stop_strings_end_a_sequence() {
        let stop = StopConditions::new(3);
        let mut s = stop.start();
        assert_eq!(s.push(&stop, 1), None);
        assert_eq!(s.push(&stop, 2), None);
        assert_eq!(s.push(&stop, 3), Some(FinishReason::Length));

        let stop = StopConditions::new(100).eos(7);
        let mut s = stop.start();
        assert_eq!(s.push(&stop, 6), None);
        assert_eq!(s.push(&stop, 7), Some(FinishReason::Eos(7)));

        // A stop string across tokens of several bytes, found after unrelated text.
        let stop = StopConditions::new(100)
            .stop_string("END")
            .detokenize(|id| match id {
                0 => b"xxE".to_vec(),
                1 => b"N".to_vec(),
                2 => b"Dyy".to_vec(),
                _ => b"D".to_vec(),
            });
        let mut s = stop.start();
        assert_eq!(s.push(&stop, 0), None);
        assert_eq!(s.push(&stop, 1), None);
        assert_eq!(s.push(&stop, 2), None, "text ends with Dyy, not END");
        let mut s = stop.start();
        for id in [0, 1] {
            assert_eq!(s.push(&stop, id), None);
        }
        assert_eq!(
            s.push(&stop, 3),
            Some(FinishReason::StopString(b"END".to_vec()))
        );
    }

    #[test]
    fn ids_past_the_byte_vocabulary_have_no_bytes() {
        let stop = StopConditions::new(10).stop_string("a");
        let mut s = stop.start();
        assert_eq!(s.push(&stop, 256 + b'a' as u32), None);
        assert_eq!(
            s.push(&stop, b'a' as u32),
            Some(FinishReason::StopString(b"a".to_vec()))
        );
    }
}
