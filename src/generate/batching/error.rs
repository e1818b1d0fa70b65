//! [`BatchError`]: what the continuous-batching scheduler refuses or reports.

use std::time::Duration;

use crate::error::{ErrorKind, NrtStatus};

/// A request the [`Batcher`](super::Batcher) refused, or why a sequence ended with an
/// error (in [`Error::Batching`](crate::Error::Batching)).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// The bundle lacks a member the scheduler needs.
    #[error("the bundle has no {needed} member (members: {members:?})")]
    MissingMember {
        /// What was looked for, e.g. "prefill (batch 1)".
        needed: String,
        /// The bundle's members.
        members: Vec<String>,
    },
    /// The request's prompt is empty.
    #[error("the prompt is empty: a sequence needs at least one token")]
    EmptyPrompt,
    /// Prompt and new tokens do not fit the cache.
    #[error(
        "prompt of {prompt} tokens plus max_new_tokens {max_new_tokens} is {} positions, over the context of {context}",
        prompt + max_new_tokens
    )]
    TooLong {
        /// Tokens in the prompt.
        prompt: u32,
        /// Tokens asked for.
        max_new_tokens: u32,
        /// Positions per cache slot.
        context: u32,
    },
    /// A prompt token is not in the vocabulary.
    #[error("prompt token {index} is id {id}, not below the vocabulary size {vocab}")]
    BadToken {
        /// Its index in the prompt.
        index: usize,
        /// The id.
        id: u32,
        /// The vocabulary size.
        vocab: u32,
    },
    /// The sampling parameters are not valid (see
    /// [`SamplingParams::check`](crate::generate::SamplingParams::check)).
    #[error("sampling parameters: {reason}")]
    BadSampling {
        /// What is wrong, with the value.
        reason: String,
    },
    /// Every live core has its waiting queue full: retry later.
    #[error("overloaded: every live core has {limit} requests waiting for a slot")]
    Overloaded {
        /// The waiting queue's bound per core.
        limit: usize,
    },
    /// No core can take the request: the scheduler shut down, or every core's unit died.
    #[error("no core can serve: {reason}")]
    Unavailable {
        /// Why (shut down, or each core's fatal error).
        reason: String,
    },
    /// The step that computed this sequence failed (the others of its core go on unless
    /// the unit died: `fatal`).
    #[error("{member} on core {core} failed: {message}")]
    Step {
        /// The core.
        core: u32,
        /// The member that failed.
        member: String,
        /// The execution's error, as text (one error ends several sequences).
        message: String,
        /// Its libnrt status, when it had one.
        status: Option<NrtStatus>,
        /// Whether the unit died (the core serves no more).
        fatal: bool,
    },
    /// The stream was not read for the stall timeout while its buffer was full: the
    /// sequence was cancelled to free its slot.
    #[error(
        "cancelled: the stream's buffer of {buffer} tokens stayed full for the stall timeout of {timeout:?}"
    )]
    Stalled {
        /// Tokens the buffer holds.
        buffer: usize,
        /// The stall timeout.
        timeout: Duration,
    },
}

impl BatchError {
    /// How a service should treat it: a caller's mistake
    /// ([`EmptyPrompt`](BatchError::EmptyPrompt), [`BadToken`](BatchError::BadToken),
    /// [`TooLong`](BatchError::TooLong), [`BadSampling`](BatchError::BadSampling): invalid
    /// input), overload ([`Overloaded`](BatchError::Overloaded): busy, retry later), no
    /// core left ([`Unavailable`](BatchError::Unavailable)), a failed step (a device
    /// failure when its unit died, else by its status), a stalled client
    /// ([`Stalled`](BatchError::Stalled): busy), a bundle without the members needed
    /// ([`MissingMember`](BatchError::MissingMember): invalid data).
    pub fn kind(&self) -> ErrorKind {
        match self {
            BatchError::EmptyPrompt
            | BatchError::BadToken { .. }
            | BatchError::TooLong { .. }
            | BatchError::BadSampling { .. } => ErrorKind::InvalidInput,
            BatchError::Overloaded { .. } | BatchError::Stalled { .. } => ErrorKind::Busy,
            BatchError::Unavailable { .. } => ErrorKind::Unavailable,
            BatchError::MissingMember { .. } => ErrorKind::InvalidData,
            BatchError::Step { fatal: true, .. } => ErrorKind::DeviceFailure,
            BatchError::Step { status, .. } => {
                status.map_or(ErrorKind::Other, |s| ErrorKind::of_status(s, "nrt_execute"))
            }
        }
    }
}

impl From<BatchError> for crate::error::Error {
    fn from(e: BatchError) -> crate::error::Error {
        crate::error::Error::Batching(Box::new(e))
    }
}

impl crate::error::Error {
    /// The [`BatchError`] of an [`Error::Batching`](crate::Error::Batching), for matching.
    pub fn as_batch(&self) -> Option<&BatchError> {
        match self {
            crate::error::Error::Batching(e) => Some(e),
            _ => None,
        }
    }
}
