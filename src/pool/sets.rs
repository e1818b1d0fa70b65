//! One copy's tensor-set pairs: pre-allocated, grown on demand up to a bound, handed out
//! by an async [`Acquire`] that waits (woken, never polling) while all are in use.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::xu::ExecSets;
use crate::{Error, Model, Result};

/// The sets of one copy.
pub(super) struct SetPool {
    state: Mutex<State>,
    /// At most this many pairs exist at once.
    max: usize,
}

struct State {
    free: Vec<ExecSets>,
    /// Pairs that exist: free, leased, or being allocated.
    allocated: usize,
    /// Acquirers waiting for a pair, oldest first: (key, waker). `put` removes the first
    /// when it hands a pair back, so an acquirer no longer in the line was woken.
    waiters: VecDeque<(u64, Waker)>,
    next_key: u64,
    /// After shutdown: pairs given back are freed, none are handed out.
    closed: bool,
}

impl SetPool {
    /// A pool with `initial` pairs allocated now, growing up to `max`.
    pub(super) fn new(model: &Model, initial: usize, max: usize) -> Result<SetPool> {
        let free = (0..initial)
            .map(|_| Ok((model.allocate_inputs()?, model.allocate_outputs()?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(SetPool {
            state: Mutex::new(State {
                allocated: free.len(),
                free,
                waiters: VecDeque::new(),
                next_key: 1,
                closed: false,
            }),
            max,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent (pushes, pops, counts), so
        // a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pairs that exist now.
    pub(super) fn allocated(&self) -> usize {
        self.lock().allocated
    }

    /// Waits for a free pair of this pool (allocating one with `model` while fewer than
    /// the bound exist).
    pub(super) fn acquire<'a>(&'a self, model: &'a Model) -> Acquire<'a> {
        Acquire {
            pool: self,
            model,
            key: 0,
        }
    }

    /// Hands a pair back (after shutdown: frees it) and wakes the oldest waiter.
    pub(super) fn put(&self, sets: ExecSets) {
        let mut state = self.lock();
        if state.closed {
            state.allocated -= 1;
            drop(state);
            drop(sets); // freed outside the lock
            return;
        }
        state.free.push(sets);
        let waiter = state.waiters.pop_front();
        drop(state);
        // Woken outside the lock: a waker may run the executor's code.
        if let Some((_, waker)) = waiter {
            waker.wake();
        }
    }

    /// Frees every free pair and refuses further acquisitions (shutdown). Pairs still
    /// leased are freed when they come back.
    pub(super) fn close(&self) {
        let (free, waiters) = {
            let mut state = self.lock();
            state.closed = true;
            state.allocated -= state.free.len();
            (
                std::mem::take(&mut state.free),
                std::mem::take(&mut state.waiters),
            )
        };
        drop(free);
        for (_, waker) in waiters {
            waker.wake();
        }
    }
}

/// The future of [`SetPool::acquire`]. Dropping it gives up its place; if a pair was
/// handed to it meanwhile (it was woken), the next waiter is woken instead, so no pair
/// is left free while someone waits.
pub(super) struct Acquire<'a> {
    pool: &'a SetPool,
    model: &'a Model,
    /// Its key in the line; 0 while not in it.
    key: u64,
}

impl Future for Acquire<'_> {
    type Output = Result<ExecSets>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<ExecSets>> {
        let this = self.get_mut();
        let mut state = this.pool.lock();
        if state.closed {
            this.key = 0;
            return Poll::Ready(Err(Error::PoolUnavailable {
                model: this.model.label().to_owned(),
                reason: "the pool was shut down".into(),
            }));
        }
        let in_line = state.waiters.iter().position(|(k, _)| *k == this.key);
        if let Some(at) = in_line {
            // Still waiting: nothing was handed to it yet.
            if !state.waiters[at].1.will_wake(cx.waker()) {
                state.waiters[at].1 = cx.waker().clone();
            }
            return Poll::Pending;
        }
        if let Some(sets) = state.free.pop() {
            this.key = 0;
            return Poll::Ready(Ok(sets));
        }
        if state.allocated < this.pool.max {
            state.allocated += 1;
            this.key = 0;
            drop(state);
            let allocated = self::allocate(this.model);
            if allocated.is_err() {
                let waiter = {
                    let mut state = this.pool.lock();
                    state.allocated -= 1;
                    state.waiters.pop_front()
                };
                // Another waiter may allocate (or get a pair back) instead.
                if let Some((_, waker)) = waiter {
                    waker.wake();
                }
            }
            return Poll::Ready(allocated);
        }
        // Wait: at the front if it was woken before (a pair was handed to it and taken
        // by a newcomer), else at the back.
        let woken_before = this.key != 0;
        state.next_key += 1;
        this.key = state.next_key;
        let entry = (this.key, cx.waker().clone());
        if woken_before {
            state.waiters.push_front(entry);
        } else {
            state.waiters.push_back(entry);
        }
        Poll::Pending
    }
}

fn allocate(model: &Model) -> Result<ExecSets> {
    Ok((model.allocate_inputs()?, model.allocate_outputs()?))
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        if self.key == 0 {
            return;
        }
        let mut state = self.pool.lock();
        match state.waiters.iter().position(|(k, _)| *k == self.key) {
            Some(at) => {
                let entry = state.waiters.remove(at);
                drop(state);
                drop(entry); // a waker's drop may run executor code: outside the lock
            }
            None => {
                // Woken for a pair it will not take: pass the wake-up on.
                let next = if state.free.is_empty() {
                    None
                } else {
                    state.waiters.pop_front()
                };
                drop(state);
                if let Some((_, waker)) = next {
                    waker.wake();
                }
            }
        }
    }
}
