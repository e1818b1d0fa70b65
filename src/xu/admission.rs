//! Async admission: [`ExecUnit::submit`] waits, without blocking, until the unit's queue
//! has room, in FIFO order among the waiting submissions, and [`ExecUnit::capacity`].
//!
//! libnrt publishes no queue depth: a schedule call on a full queue fails with
//! `NRT_QUEUE_FULL`. The unit learns its capacity from the first such failure (the
//! number of its requests in flight then) and from then on admits no more than that;
//! before, [`DEFAULT_CAPACITY`] bounds it. A waiting submission is woken by the
//! completion of the unit's oldest request in flight (a completion event, or the
//! poller on runtimes without events), never by a timer.
//!
//! Forget-safety without `Drop`: a submission at the front of the line that was given
//! its turn (the one before it left, or the completion it waited for came) and is not
//! polled again must not hold the line forever. The submission right behind it watches
//! it: it is woken with the front (by the same leave, or by the same completion, for
//! which it registers too), and when it finds the front's turn untaken on
//! [`STALE_LOOKS`] consecutive polls of its own (yielding to the executor in between,
//! so a live front that was woken at the same moment runs first), it skips the front.
//! A skipped submission that is polled again goes back to the front of the line (it is
//! older than every other), so a live but slow one loses one turn, not its place; a
//! forgotten one is never seen again. The line is a `VecDeque` reused for the unit's
//! life: no allocation per request.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

use super::events::{Waiter, new_waiter_key};
use super::future::{poll_for, stop_polling};
use super::payload::Payload;
use super::queue::{Admit, ExecUnit, QueueState};
use super::request::Scheduled;
use super::seq::SeqId;
use crate::error::NrtStatus;

/// Consecutive polls on which the submission behind the front finds the front's turn
/// untaken before it skips the front.
const STALE_LOOKS: u8 = 2;

/// Requests admitted on a unit before it learned its real capacity from a full queue.
pub const DEFAULT_CAPACITY: usize = 64;

impl ExecUnit {
    /// How many requests this unit admits at once through [`submit`](ExecUnit::submit):
    /// learned from [`NrtStatus::QueueFull`] on it (its requests in flight then; the
    /// largest such count, which can only be less than the queue's depth, never more),
    /// [`DEFAULT_CAPACITY`] before the first one.
    pub fn capacity(&self) -> usize {
        self.inner.state.capacity()
    }

    /// Schedules `payload` with `submit` once the unit has room: an asynchronous,
    /// first-come-first-served admission that never surfaces
    /// [`NrtStatus::QueueFull`].
    ///
    /// `submit` is a closure around one of this unit's schedule methods, e.g.
    /// `|(inputs, outputs)| unit.execute(&model, inputs, outputs)`. The returned future
    /// calls it when no earlier submission is waiting and fewer than
    /// [`capacity`](ExecUnit::capacity) requests are in flight; on `QueueFull` it learns
    /// the capacity, takes the payload back and waits for the unit's next completion
    /// (an event, no timer and no spinning) before trying again. Any other error is
    /// returned with the payload in the [`Rejected`](crate::Rejected).
    ///
    /// Dropping the future gives up its place in the line; nothing was scheduled then,
    /// and the payload is dropped with it.
    ///
    /// ```
    /// # use neuron_rt::Runtime;
    /// # use neuron_rt::sim::ModelBuilder;
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     let waker = std::task::Waker::noop();
    /// #     let mut cx = std::task::Context::from_waker(&waker);
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
    /// #         std::thread::yield_now();
    /// #     }
    /// # }
    /// let rt = Runtime::builder().simulator().build()?;
    /// let model = rt.load_model_on(&ModelBuilder::add_example(&[2, 3]).build().unwrap(), 0)?;
    /// let unit = rt.compute_unit(0)?;
    /// let sets = (model.allocate_inputs()?, model.allocate_outputs()?);
    /// let request = block_on(unit.submit(sets, |(i, o)| unit.execute(&model, i, o)))?;
    /// let (_inputs, _outputs) = block_on(request.into_future())?;
    /// # Ok::<(), neuron_rt::Error>(())
    /// ```
    pub fn submit<T, F>(&self, payload: T, submit: F) -> Submit<'_, T, F>
    where
        T: Payload,
        F: FnMut(T) -> Scheduled<T>,
    {
        Submit {
            unit: self,
            payload: Some(payload),
            submit,
            key: 0,
            queued: false,
            watching: None,
            polled: false,
            stale: None,
        }
    }
}

/// The future of [`ExecUnit::submit`]: resolves to the accepted request, or to the
/// error with the payload handed back.
#[must_use = "futures do nothing unless polled"]
pub struct Submit<'u, T, F> {
    unit: &'u ExecUnit,
    payload: Option<T>,
    submit: F,
    /// This submission's key (in the unit's line and its event waiters); 0 before the
    /// first wait.
    key: u64,
    /// Whether it holds a place in the unit's line.
    queued: bool,
    /// The request whose completion it waits for, when registered with the unit's events.
    watching: Option<SeqId>,
    /// Whether it was ever registered with the poller.
    polled: bool,
    /// Behind the front: the front's key and on how many consecutive polls its turn
    /// was found untaken.
    stale: Option<(u64, u8)>,
}

// `Submit` holds no self-references.
impl<T, F> Unpin for Submit<'_, T, F> {}

impl<T: Payload, F: FnMut(T) -> Scheduled<T>> Future for Submit<'_, T, F> {
    type Output = Scheduled<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Scheduled<T>> {
        let this = self.get_mut();
        let state = &this.unit.inner.state;
        loop {
            this.stop_watching();
            // Wait for our turn: first in line (or no line at all).
            if !this.first_in_line(state, cx.waker()) {
                return Poll::Pending;
            }
            let in_flight = state.in_flight();
            if in_flight >= state.capacity() as u64 {
                if this.wait_for_completion(state, cx.waker()) {
                    return Poll::Pending;
                }
                continue;
            }
            let Some(payload) = this.payload.take() else {
                // Polled after it resolved: nothing left to submit.
                return Poll::Pending;
            };
            match (this.submit)(payload) {
                Err(rejected) if rejected.error().status() == Some(NrtStatus::QueueFull) => {
                    // Both counts are lower bounds of what the queue held (see
                    // `in_flight`); concurrent submitters may have added to it meanwhile.
                    let seen = in_flight.max(state.in_flight()).max(1);
                    state.learn_capacity(seen as usize);
                    this.payload = Some(rejected.into_inner());
                    if this.wait_for_completion(state, cx.waker()) {
                        return Poll::Pending;
                    }
                }
                done => {
                    this.leave_line(state);
                    return Poll::Ready(done);
                }
            }
        }
    }
}

impl<T, F> Submit<'_, T, F> {
    /// Whether this submission may go now; if not, it waits in line with `waker`.
    fn first_in_line(&mut self, state: &QueueState, waker: &Waker) -> bool {
        let mut line = state.admission.lock();
        if !self.queued {
            if line.is_empty() {
                return true;
            }
            if self.key == 0 {
                self.key = new_waiter_key();
            }
            line.push_back(Admit::new(self.key, waker));
            self.queued = true;
        }
        let Some(at) = line.iter().position(|e| e.key == self.key) else {
            // Skipped while it was not polled (see the module docs): older than every
            // submission in line, it goes back to the front.
            line.push_front(Admit::new(self.key, waker));
            self.stale = None;
            return true;
        };
        if !line[at].waker.will_wake(waker) {
            line[at].waker = waker.clone();
        }
        if at == 0 {
            let me = &mut line[0];
            me.granted = false;
            me.room = None;
            self.stale = None;
            return true;
        }
        if at > 1 {
            self.stale = None;
            return false;
        }
        // Right behind the front: watch that it takes its turn.
        let front = &line[0];
        let (front_key, granted, room) = (front.key, front.granted, front.room);
        drop(line);
        // The front waits for room: its turn came when the request it waits for
        // completed, or when there is room anyway (that request may never be issued:
        // the queue drained between the front's `QueueFull` and its registration).
        let room_came = room.is_some_and(|seq| {
            state.in_flight() < state.capacity() as u64
                || state
                    .last_completed()
                    .is_ok_and(|last| last.number() >= seq.number())
        });
        if !granted && !room_came {
            self.stale = None;
            if let Some(seq) = room {
                // Woken by the completion the front waits for, too.
                self.watch(state, seq, waker);
            }
            return false;
        }
        let looks = match self.stale {
            Some((key, n)) if key == front_key => n + 1,
            _ => 1,
        };
        if looks < STALE_LOOKS {
            // Let the front (woken at the same moment) run first.
            self.stale = Some((front_key, looks));
            waker.wake_by_ref();
            return false;
        }
        self.stale = None;
        let mut line = state.admission.lock();
        if line.front().is_some_and(|e| e.key == front_key) {
            line.pop_front();
        }
        match line.iter().position(|e| e.key == self.key) {
            Some(0) => {
                let me = &mut line[0];
                me.granted = false;
                me.room = None;
                // The new second watches this one.
                if let Some(next) = line.get(1) {
                    next.waker.wake_by_ref();
                }
                true
            }
            // The front changed meanwhile: look again on the next poll.
            _ => {
                waker.wake_by_ref();
                false
            }
        }
    }

    /// Registers `waker` for the completion of `seq` (an event waiter, or the poller).
    fn watch(&mut self, state: &QueueState, seq: SeqId, waker: &Waker) {
        if let Some(events) = &state.events {
            match events.add_waiter(seq, self.key, waker) {
                Waiter::Added | Waiter::Kept => {
                    self.watching = Some(seq);
                    return;
                }
                Waiter::Refused => {}
            }
        }
        self.polled = true;
        poll_for(self.key, &self.unit.inner.state, seq, waker);
    }

    /// Takes a place at the front of the line (if not in it yet), so that later
    /// submissions wait behind this one while it waits for room.
    fn hold_front(&mut self, state: &QueueState, waker: &Waker) {
        if self.queued {
            return;
        }
        if self.key == 0 {
            self.key = new_waiter_key();
        }
        state
            .admission
            .lock()
            .push_front(Admit::new(self.key, waker));
        self.queued = true;
    }

    fn leave_line(&mut self, state: &QueueState) {
        if std::mem::take(&mut self.queued) {
            state.admission.leave(self.key);
        }
    }

    /// Arranges for `waker` to be woken by the unit's next completion. Returns `false`
    /// if there is room already (the caller tries again at once).
    fn wait_for_completion(&mut self, state: &QueueState, waker: &Waker) -> bool {
        self.hold_front(state, waker);
        let Some(oldest) = state.next_to_complete() else {
            // libnrt cannot say what completed: look again on the next poll.
            waker.wake_by_ref();
            return true;
        };
        // The one behind watches for this completion too (see the module docs).
        if let Some(me) = state
            .admission
            .lock()
            .iter_mut()
            .find(|e| e.key == self.key)
        {
            me.room = Some(oldest);
        }
        self.watch(state, oldest, waker);
        if self.watching.is_some() {
            // A completion just before the registration signalled nobody.
            return state.in_flight() >= state.capacity() as u64;
        }
        true
    }

    fn stop_watching(&mut self) {
        if let (Some(seq), Some(events)) = (self.watching.take(), &self.unit.inner.state.events) {
            events.remove_waiter(seq, self.key);
        }
        if std::mem::take(&mut self.polled) {
            stop_polling(self.key);
        }
    }
}

impl<T, F> Drop for Submit<'_, T, F> {
    fn drop(&mut self) {
        self.stop_watching();
        let state = &self.unit.inner.state;
        self.leave_line(state);
    }
}

impl<T, F> fmt::Debug for Submit<'_, T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Submit")
            .field("unit", &self.unit)
            .field("waiting", &self.queued)
            .finish_non_exhaustive()
    }
}

impl QueueState {
    /// See [`ExecUnit::capacity`].
    pub(crate) fn capacity(&self) -> usize {
        match self.capacity.load(Ordering::Acquire) {
            0 => DEFAULT_CAPACITY,
            n => n,
        }
    }

    /// Records what a full queue showed. Every observation is at most the real depth
    /// (the queue never holds more), and may be less (requests completed or were
    /// submitted around it), so the largest one seen is kept: the capacity only grows,
    /// towards the depth, never beyond it.
    fn learn_capacity(&self, seen: usize) {
        let _ = self
            .capacity
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                (c == 0 || seen > c).then_some(seen)
            });
    }

    /// Requests accepted through this crate and not completed yet; never more than the
    /// queue held at some moment during the call: the submitted count is read before the
    /// completed one (0 if libnrt cannot say what completed: the submission then tries,
    /// and a full queue teaches it).
    pub(crate) fn in_flight(&self) -> u64 {
        let submitted = self.last_submitted_number();
        match self.last_completed() {
            Ok(last) => submitted.saturating_sub(last.number()),
            Err(_) => 0,
        }
    }

    /// The request whose completion frees the next place in this queue: the one after
    /// the last completed. Also when other code filled the queue (this crate then knows
    /// the XU id only from libnrt's answer). `None` if libnrt cannot say what completed.
    fn next_to_complete(&self) -> Option<SeqId> {
        let last = self.last_completed().ok()?;
        let xu_id = self.xu_id().unwrap_or(last.xu_id());
        Some(SeqId::new(xu_id, last.number() + 1))
    }
}
