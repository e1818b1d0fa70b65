//! [`TokenStream`]: one request's tokens, shared between its reader and the scheduler
//! thread of its core through a bounded buffer.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use super::types::{Finish, Generated};
use crate::error::Result;

/// What the scheduler and the stream share for one sequence.
pub(super) struct Seq {
    out: Mutex<Out>,
    readable: Condvar,
    /// Set by the stream's `Drop`: the scheduler frees the slot at the next step.
    pub(super) cancelled: AtomicBool,
    pub(super) capacity: usize,
    /// Wakes the scheduler thread of the sequence's core.
    kick: Arc<dyn Fn() + Send + Sync>,
}

#[derive(Default)]
struct Out {
    items: VecDeque<Result<Generated>>,
    /// No more items will come (the last one is in `items` or was read).
    closed: bool,
    waker: Option<Waker>,
}

impl Seq {
    pub(super) fn new(kick: Arc<dyn Fn() + Send + Sync>, capacity: usize) -> Arc<Seq> {
        Arc::new(Seq {
            out: Mutex::default(),
            readable: Condvar::new(),
            cancelled: AtomicBool::new(false),
            capacity,
            kick,
        })
    }

    fn out(&self) -> MutexGuard<'_, Out> {
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Items the buffer can take before it is full.
    pub(super) fn room(&self) -> usize {
        self.capacity.saturating_sub(self.out().items.len())
    }

    /// Whether the buffer is full (the row pauses).
    pub(super) fn is_full(&self) -> bool {
        self.out().items.len() >= self.capacity
    }

    /// Adds an item; `last` closes the stream. The buffer's bound is the caller's
    /// (a full row is not stepped); a closing item always fits.
    pub(super) fn push(&self, item: Result<Generated>, last: bool) {
        let waker = {
            let mut out = self.out();
            if out.closed {
                return;
            }
            out.items.push_back(item);
            out.closed |= last;
            out.waker.take()
        };
        self.readable.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The next item, if one is there; `Ready(None)` once closed and read.
    fn take(&self, waker: Option<&Waker>) -> Poll<Option<Result<Generated>>> {
        let mut out = self.out();
        let was_full = out.items.len() >= self.capacity;
        if let Some(item) = out.items.pop_front() {
            drop(out);
            if was_full {
                // A paused row may go on.
                (self.kick)();
            }
            return Poll::Ready(Some(item));
        }
        if out.closed {
            return Poll::Ready(None);
        }
        if let Some(w) = waker {
            out.waker = Some(w.clone());
        }
        Poll::Pending
    }
}

/// One request's tokens: a [`Stream`](futures_core::Stream) (and, without an async
/// runtime, [`next_blocking`](TokenStream::next_blocking)) of
/// [`Generated::Token`]s, then one [`Generated::Finished`] with the finish reason and
/// usage counts, then the end; or an error item (the step failed, the stream stalled),
/// then the end.
///
/// It owns what it needs (no borrow of the scheduler or bundle: `Send + 'static`).
/// Dropping it never blocks: the sequence is cancelled at the scheduler's next step
/// boundary, and its slot freed.
pub struct TokenStream {
    pub(super) seq: Arc<Seq>,
    pub(super) done: bool,
}

impl TokenStream {
    /// The next item, waiting for it on this thread; `None` after the last one.
    pub fn next_blocking(&mut self) -> Option<Result<Generated>> {
        if self.done {
            return None;
        }
        let seq = &self.seq;
        let mut out = seq.out();
        loop {
            if !out.items.is_empty() || out.closed {
                drop(out);
                let Poll::Ready(item) = seq.take(None) else {
                    unreachable!("an item or the end is there")
                };
                self.done = item.is_none();
                return item;
            }
            out = seq.readable.wait(out).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Every remaining item's token ids and the finish (the first error ends it).
    pub fn collect_blocking(mut self) -> Result<(Vec<u32>, Option<Finish>)> {
        let mut ids = Vec::new();
        while let Some(item) = self.next_blocking() {
            match item? {
                Generated::Token(id) => ids.push(id),
                Generated::Finished(f) => return Ok((ids, Some(f))),
            }
        }
        Ok((ids, None))
    }
}

impl futures_core::Stream for TokenStream {
    type Item = Result<Generated>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let polled = self.seq.take(Some(cx.waker()));
        if let Poll::Ready(None) = polled {
            self.done = true;
        }
        polled
    }
}

impl Drop for TokenStream {
    fn drop(&mut self) {
        let closed = self.seq.out().closed;
        if !closed {
            self.seq.cancelled.store(true, Ordering::Release);
            (self.seq.kick)();
        }
    }
}

impl std::fmt::Debug for TokenStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let out = self.seq.out();
        f.debug_struct("TokenStream")
            .field("buffered", &out.items.len())
            .field("closed", &out.closed)
            .finish()
    }
}
