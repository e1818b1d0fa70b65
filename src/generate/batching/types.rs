//! The values the batcher, its cores and its streams share: options, stream items.

use std::time::Duration;

use crate::generate::stop::FinishReason;

/// Settings of a [`Batcher`](super::Batcher).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchingOptions {
    /// Requests each core queues beyond its free slots before refusing more (64).
    pub max_waiting: usize,
    /// Items a stream buffers before its row pauses (256).
    pub buffer: usize,
    /// How long a paused row keeps its slot before it is cancelled (30 s).
    pub stall_timeout: Duration,
    /// Greedy steps use the decode member that samples on the device (on).
    pub device_sampling: bool,
    /// Prefill chunks queued before each decode step, at most (3): more fill the
    /// cache slots of new sequences faster, and delay the running ones' next token by
    /// a chunk's device time each.
    pub prefill_chunks_per_step: usize,
}

impl Default for BatchingOptions {
    fn default() -> Self {
        BatchingOptions {
            max_waiting: 64,
            buffer: 256,
            stall_timeout: Duration::from_secs(30),
            device_sampling: true,
            prefill_chunks_per_step: 3,
        }
    }
}

impl BatchingOptions {
    /// With at most `n` requests queued per core beyond its free slots.
    pub fn max_waiting(mut self, n: usize) -> Self {
        self.max_waiting = n;
        self
    }

    /// With streams buffering `n` items (at least 2: a token and the finish).
    pub fn buffer(mut self, n: usize) -> Self {
        self.buffer = n;
        self
    }

    /// With this stall timeout.
    pub fn stall_timeout(mut self, timeout: Duration) -> Self {
        self.stall_timeout = timeout;
        self
    }

    /// With at most `n` prefill chunks before each decode step (at least 1).
    pub fn prefill_chunks_per_step(mut self, n: usize) -> Self {
        self.prefill_chunks_per_step = n.max(1);
        self
    }

    /// With or without device sampling for greedy steps.
    pub fn device_sampling(mut self, on: bool) -> Self {
        self.device_sampling = on;
        self
    }
}

/// One item of a [`TokenStream`](super::TokenStream).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Generated {
    /// The next token of the sequence.
    Token(u32),
    /// The sequence ended (the last item).
    Finished(Finish),
}

/// How a sequence ended, and its usage counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finish {
    /// Why it ended.
    pub reason: FinishReason,
    /// Tokens in its prompt.
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
}
