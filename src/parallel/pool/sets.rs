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
    /// Acquirers waiting for a pair, oldest first: (key, waker).
    waiters: VecDeque<(u64, Waker)>,
    /// Pairs handed to woken waiters, by key: a pair given back goes straight to the
    /// oldest waiter, so that a newcomer never takes it first (no waiter starves).
    handed: Vec<(u64, ExecSets)>,
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
                handed: Vec::new(),
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

    /// Hands a pair back: to the oldest waiter if there is one, else to the free list
    /// (after shutdown: frees it).
    pub(super) fn put(&self, sets: ExecSets) {
        let mut state = self.lock();
        if state.closed {
            state.allocated -= 1;
            drop(state);
            drop(sets); // freed outside the lock
            return;
        }
        let waiter = state.waiters.pop_front();
        match &waiter {
            Some((key, _)) => state.handed.push((*key, sets)),
            None => state.free.push(sets),
        }
        drop(state);
        // Woken outside the lock: a waker may run the executor's code.
        if let Some((_, waker)) = waiter {
            waker.wake();
        }
    }

    /// Frees every free pair and refuses further acquisitions (shutdown). Pairs still
    /// leased are freed when they come back.
    pub(super) fn close(&self) {
        let (free, handed, waiters) = {
            let mut state = self.lock();
            state.closed = true;
            state.allocated -= state.free.len() + state.handed.len();
            (
                std::mem::take(&mut state.free),
                std::mem::take(&mut state.handed),
                std::mem::take(&mut state.waiters),
            )
        };
        drop((free, handed));
        for (_, waker) in waiters {
            waker.wake();
        }
    }
}

/// The future of [`SetPool::acquire`]: first come, first served. Dropping it gives up its
/// place; a pair handed to it meanwhile goes on to the next waiter, so no pair is left
/// free while someone waits.
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
        let waited = this.key != 0;
        if waited {
            if let Some(at) = state.handed.iter().position(|(k, _)| *k == this.key) {
                this.key = 0;
                return Poll::Ready(Ok(state.handed.swap_remove(at).1));
            }
            if let Some(at) = state.waiters.iter().position(|(k, _)| *k == this.key) {
                if !state.waiters[at].1.will_wake(cx.waker()) {
                    state.waiters[at].1 = cx.waker().clone();
                }
                return Poll::Pending;
            }
            // Woken without a pair (an allocation failed elsewhere): try, first in line.
        }
        // A newcomer goes behind those waiting; a woken waiter goes first.
        if waited || state.waiters.is_empty() {
            if let Some(sets) = state.free.pop() {
                this.key = 0;
                return Poll::Ready(Ok(sets));
            }
            if state.allocated < this.pool.max {
                state.allocated += 1;
                this.key = 0;
                drop(state);
                let allocated = allocate(this.model);
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
        }
        state.next_key += 1;
        this.key = state.next_key;
        let entry = (this.key, cx.waker().clone());
        if waited {
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
        if let Some(at) = state.waiters.iter().position(|(k, _)| *k == self.key) {
            let entry = state.waiters.remove(at);
            drop(state);
            drop(entry); // a waker's drop may run executor code: outside the lock
        } else if let Some(at) = state.handed.iter().position(|(k, _)| *k == self.key) {
            // A pair was handed to it: on to the next waiter (or the free list).
            let (_, sets) = state.handed.swap_remove(at);
            drop(state);
            self.pool.put(sets);
        }
    }
}
