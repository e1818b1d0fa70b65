//! One copy's tensor-set pairs: pre-allocated, grown on demand up to a bound, handed out
//! by an async [`Acquire`] that waits (woken, never polling) while all are in use.
//!
//! Forget-safety without `Drop`: a pair given back goes to the oldest waiter, which may
//! have been `mem::forget`-ten and then never comes for it. As in the unit's admission
//! line (`xu/admission.rs`), waiters watch the pairs handed to others: the new first in
//! line is woken with each hand-off (a waiter arriving, or polled for any reason, looks
//! too), and a waiter that finds the oldest handed pair untaken on [`STALE_LOOKS`]
//! consecutive polls of its own (yielding to the executor in between, so that a live
//! recipient woken at the same moment runs first) takes that pair. A waiter whose pair
//! was taken so goes back to the front of the line when polled again (it is older than
//! every other): a live but slow one loses one turn, not its place; a forgotten one
//! costs nothing. (When the first in line was forgotten too, the next request to arrive
//! takes the pair; the waiters behind are woken by the hand-offs that follow.)

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::error::{Error, Result};
use crate::objects::Model;
use crate::xu::ExecSets;

/// Consecutive polls on which the first waiter finds the oldest pair handed to another
/// waiter untaken before it takes it.
const STALE_LOOKS: u8 = 2;

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
    /// Pairs handed to woken waiters, by key, oldest first: a pair given back goes
    /// straight to the oldest waiter, so that a newcomer never takes it first (no waiter
    /// starves).
    handed: VecDeque<(u64, ExecSets)>,
    next_key: u64,
    /// After shutdown: pairs given back are freed, none are handed out.
    closed: bool,
}

impl State {
    /// The waker of the first in line while pairs are handed to others (it watches
    /// them, see the module docs): woken by the caller, outside the lock.
    fn watcher(&self) -> Option<Waker> {
        (!self.handed.is_empty())
            .then(|| self.waiters.front().map(|(_, w)| w.clone()))
            .flatten()
    }

    /// Takes waiter `key` out of the line: its entry (to drop outside the lock), and
    /// the [`watcher`](State::watcher) taking over from it when it was first.
    fn leave(&mut self, key: u64) -> (Option<(u64, Waker)>, Option<Waker>) {
        let at = self.waiters.iter().position(|(k, _)| *k == key);
        let entry = at.and_then(|at| self.waiters.remove(at));
        let watcher = if at == Some(0) { self.watcher() } else { None };
        (entry, watcher)
    }
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
                handed: VecDeque::new(),
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
            stale: None,
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
            Some((key, _)) => state.handed.push_back((*key, sets)),
            None => state.free.push(sets),
        }
        // The next in line watches that the pair is taken (see the module docs).
        let watcher = waiter.as_ref().and_then(|_| state.watcher());
        drop(state);
        // Woken outside the lock: a waker may run the executor's code.
        if let Some((_, waker)) = waiter {
            waker.wake();
        }
        if let Some(waker) = watcher {
            waker.wake();
        }
    }

    /// A leased pair was freed instead of given back: one fewer exists, so a waiter may
    /// allocate one.
    pub(super) fn discard(&self) {
        let waiter = {
            let mut state = self.lock();
            state.allocated -= 1;
            state.waiters.pop_front()
        };
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
    /// First in line: the key of the oldest pair handed to another waiter, and on how
    /// many consecutive polls it was found untaken.
    stale: Option<(u64, u8)>,
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
            let mine = state.handed.iter().position(|(k, _)| *k == this.key);
            if let Some((_, sets)) = mine.and_then(|at| state.handed.remove(at)) {
                this.key = 0;
                this.stale = None;
                return Poll::Ready(Ok(sets));
            }
            if let Some(at) = state.waiters.iter().position(|(k, _)| *k == this.key) {
                if !state.waiters[at].1.will_wake(cx.waker()) {
                    state.waiters[at].1 = cx.waker().clone();
                }
                return this.watch_handed(state, cx.waker());
            }
            // Woken without a pair (an allocation failed elsewhere), or its pair was
            // taken by the next in line (see the module docs): try, first in line.
            this.stale = None;
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
        // Pairs handed to others may never be taken.
        this.watch_handed(state, cx.waker())
    }
}

impl Acquire<'_> {
    /// In line (with `waker` registered): takes the oldest pair handed to another waiter
    /// if it was found untaken on [`STALE_LOOKS`] consecutive polls (see the module
    /// docs); else stays pending.
    fn watch_handed(
        &mut self,
        mut state: MutexGuard<'_, State>,
        waker: &Waker,
    ) -> Poll<Result<ExecSets>> {
        let Some(&(handed_to, _)) = state.handed.front() else {
            self.stale = None;
            return Poll::Pending;
        };
        let looks = match self.stale {
            Some((key, n)) if key == handed_to => n + 1,
            _ => 1,
        };
        if looks < STALE_LOOKS {
            // Let the recipient (woken at the same moment) run first.
            self.stale = Some((handed_to, looks));
            drop(state);
            waker.wake_by_ref();
            return Poll::Pending;
        }
        self.stale = None;
        let Some((_, sets)) = state.handed.pop_front() else {
            return Poll::Pending; // (just seen: not reached)
        };
        let (entry, watcher) = state.leave(self.key);
        self.key = 0;
        drop(state);
        drop(entry); // a waker's drop may run executor code: outside the lock
        if let Some(waker) = watcher {
            waker.wake();
        }
        Poll::Ready(Ok(sets))
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
        if state.waiters.iter().any(|(k, _)| *k == self.key) {
            let (entry, watcher) = state.leave(self.key);
            drop(state);
            drop(entry); // a waker's drop may run executor code: outside the lock
            if let Some(waker) = watcher {
                waker.wake();
            }
        } else {
            let mine = state.handed.iter().position(|(k, _)| *k == self.key);
            if let Some((_, sets)) = mine.and_then(|at| state.handed.remove(at)) {
                // A pair was handed to it: on to the next waiter (or the free list).
                drop(state);
                self.pool.put(sets);
            }
        }
    }
}
