//! [`Request`]: an accepted async request, owning what the device may touch until it
//! completes; [`Rejected`]: a refused one, handing its payload back.

use std::fmt;
use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};
use std::time::{Duration, Instant};

use nrt_sys as sys;

use super::detached::{self, Orphan};
use super::payload::{KeepAlive, Payload};
use super::queue::{ExecUnit, UnitInner};
use super::seq::SeqId;
use super::slots::{Slot, UNWRITTEN};
use crate::error::{Error, Result};
use crate::profiling::spans::{self, Span};

/// How long a blocking wait watches the request's status slot before it blocks (see
/// `Inner::watch_slot`): about one thread wake-up, so a request that completes
/// that soon costs no more than a spin on `nrta_is_completed` would. A queue whose last
/// blocking wait outlasted the watch blocks at once on the next one (`long_waits`), so
/// long requests waste no CPU on it.
const WATCH_SLOT: Duration = Duration::from_micros(50);

/// What a schedule call returns: the accepted [`Request`], or the error with the payload
/// handed back ([`Rejected`]). `?` turns the latter into an [`Error`].
pub type Scheduled<T> = std::result::Result<Request<T>, Rejected<T>>;

/// A request accepted by an execution unit, not yet waited for.
///
/// The request owns everything libnrt may still read or write for it: the payload
/// (tensor sets, host buffer), handles to the model and tensors it uses, and the
/// `NRT_STATUS` slot libnrt writes its final status to. [`wait`](Request::wait)
/// returns the payload once the request has completed and its status has been checked.
///
/// Dropping a request never blocks: a completed one is released at once; one still
/// running is handed, with everything it owns, to a background thread that releases it
/// after the device completed it (woken by libnrt's completion event). Cancelling is
/// therefore instant and safe: nothing the device may still use is freed early, and the
/// request keeps the runtime open until then (`nrt_close` runs after the last such
/// request completed). Its status is discarded (a fatal one still marks the unit
/// unrecoverable); call `wait` to see it. A request of an async
/// [`scope`](crate::xu::scope) that borrows is the exception: dropping it waits, as its
/// scope requires. If completion can no longer be observed (polling fails), or if the
/// request is leaked with [`mem::forget`](std::mem::forget), its payload, slot and
/// handles are leaked instead of freed, so libnrt never writes to freed memory; a leaked
/// request also keeps the runtime open for the rest of the process (and, with feature
/// `tracing`, its `neuron_rt.schedule` span never closes).
///
/// `Request` implements [`IntoFuture`](std::future::IntoFuture): `request.await` works
/// with any executor (see [`RequestFuture`](crate::RequestFuture)).
///
/// ```
/// use neuron_rt::{Placement, Runtime};
///
/// let rt = Runtime::builder().simulator().build()?;
/// let tensor = rt.allocate_tensor(Placement::Device, Some(0), 16, "t")?;
/// let unit = rt.tensor_op_unit(0, 0)?;
/// let request = unit.write(&tensor, 0, vec![1u32, 2, 3, 4])?; // the Vec moves in
/// println!("scheduled as {}", request.seq()); // XU id : number on that queue
/// let data = request.wait()?; // ... and comes back once written
/// let filled = unit.read(&tensor, 0, vec![0u32; 4])?.wait()?;
/// assert_eq!(filled, data);
/// # Ok::<(), neuron_rt::Error>(())
/// ```
#[must_use = "a request's status is only known by waiting for it; dropping it discards errors"]
pub struct Request<T: Payload> {
    inner: ManuallyDrop<Inner<T>>,
}

struct Inner<T: Payload> {
    /// The unit the request runs on; its queue's pool holds the slot.
    unit: UnitRef,
    seq: SeqId,
    slot: Slot,
    function: &'static str,
    parked: T::Parked,
    /// `None` once handed to an async scope, which then holds it.
    keep: Option<KeepAlive>,
    /// The `neuron_rt.schedule` span (feature `tracing`), closed when the request's
    /// completion is observed (never, for a leaked request).
    span: Span,
}

/// How a request refers to its unit: by a counted reference, or (for a request of an
/// async scope) by a pointer (from `Arc::as_ptr`) to a unit that the scope keeps alive
/// for longer than the request can exist. With the latter, leaking the request leaks
/// no reference count, so the runtime still closes after the scope.
enum UnitRef {
    Owned(Arc<UnitInner>),
    Scoped(*const UnitInner),
}

// SAFETY: both variants stand for a shared reference to a `UnitInner`, which is Send and
// Sync; the scoped pointer stays valid for the request's whole life (see `UnitRef`).
unsafe impl Send for UnitRef {}
// SAFETY: as for `Send`.
unsafe impl Sync for UnitRef {}

impl std::ops::Deref for UnitRef {
    type Target = UnitInner;
    fn deref(&self) -> &UnitInner {
        match self {
            UnitRef::Owned(unit) => unit,
            // SAFETY: the scope that made this request holds an `Arc` of the unit until
            // after the request is gone (its type cannot outlive the scope), so the
            // pointer is valid for as long as `self` is.
            UnitRef::Scoped(ptr) => unsafe { &**ptr },
        }
    }
}

impl UnitRef {
    /// A counted reference to the unit.
    fn to_arc(&self) -> Arc<UnitInner> {
        match self {
            UnitRef::Owned(unit) => Arc::clone(unit),
            UnitRef::Scoped(ptr) => {
                let ptr = *ptr;
                // SAFETY: `ptr` came from `Arc::as_ptr` of an `Arc` the scope still holds
                // (see `Deref`), so it points to a live `Arc` allocation whose count is at
                // least 1; incrementing it and adopting the increment is balanced.
                unsafe {
                    Arc::increment_strong_count(ptr);
                    Arc::from_raw(ptr)
                }
            }
        }
    }
}

impl<T: Payload> Request<T> {
    pub(crate) fn new(
        unit: Arc<UnitInner>,
        seq: SeqId,
        slot: Slot,
        function: &'static str,
        parked: T::Parked,
        keep: KeepAlive,
        span: Span,
    ) -> Request<T> {
        Request {
            inner: ManuallyDrop::new(Inner {
                unit: UnitRef::Owned(unit),
                seq,
                slot,
                function,
                parked,
                keep: Some(keep),
                span,
            }),
        }
    }

    /// Hands the request's counted unit reference and keep-alive handles to an async
    /// scope, which must hold them until after this request is gone (guaranteed when
    /// `T` borrows for the scope's lifetime, so the request cannot outlive the scope).
    pub(crate) fn detach_to_scope(&mut self) -> (Arc<UnitInner>, Option<KeepAlive>) {
        let unit = self.inner.unit.to_arc();
        // From `Arc::as_ptr`, not from a `&UnitInner`: `to_arc` reaches the reference
        // counts in front of the value, which a pointer made from a reference to the
        // value alone may not access.
        self.inner.unit = UnitRef::Scoped(Arc::as_ptr(&unit));
        (unit, self.inner.keep.take())
    }

    /// The request's sequence id.
    pub fn seq(&self) -> SeqId {
        self.inner.seq
    }

    /// The request's unit.
    pub(crate) fn unit_ref(&self) -> &UnitInner {
        &self.inner.unit
    }

    /// The unit the request runs on (the one it was scheduled on; its XU id is the
    /// one [`seq`](Request::seq) carries).
    pub fn unit(&self) -> ExecUnit {
        ExecUnit {
            inner: self.inner.unit.to_arc(),
        }
    }

    /// Whether the request has completed (`nrta_is_completed`; if that fails, the last
    /// completed id of the request's queue, `nrta_get_sequence`, answers). Completion
    /// says nothing about success: [`wait`](Request::wait) checks the status.
    ///
    /// # Errors
    ///
    /// [`Error::Nrt`] if libnrt cannot tell either way.
    pub fn is_complete(&self) -> Result<bool> {
        self.inner.unit.is_completed(self.inner.seq)
    }

    /// Waits at most `timeout` for the request to complete; returns whether it did. After
    /// `true`, [`wait`](Request::wait) returns without waiting.
    ///
    /// # Errors
    ///
    /// [`Error::Nrt`] if polling fails.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        self.inner.unit.wait_until(self.inner.seq, Some(timeout))
    }

    /// Waits for the request to complete and returns its payload (for a read: the
    /// filled buffer).
    ///
    /// It first watches the request's status memory, which libnrt writes on completion,
    /// for up to 50 µs: a short request is then seen without two system calls and a
    /// thread wake-up. When the unit's previous blocking wait lasted longer than that, it
    /// skips the watch (a long request would only burn the CPU). Then, with completion
    /// events (runtime >= 2.32), the thread blocks on an eventfd that libnrt signals when
    /// the request completes. On a 2.31 runtime it polls with
    /// backoff: it spins briefly, then yields, then sleeps in steps of at most 5 ms, so
    /// a long execution does not keep a core busy.
    ///
    /// # Errors
    ///
    /// [`Error::Nrt`] with the request's own status if it completed with one (e.g.
    /// [`NrtStatus::ExecCompletedWithNumErr`](crate::NrtStatus::ExecCompletedWithNumErr)
    /// for NaNs, [`Timeout`](crate::NrtStatus::Timeout)); the payload is dropped then
    /// (use [`wait_with_payload`](Request::wait_with_payload) to keep it). A fatal
    /// status also marks the unit unrecoverable. If polling itself fails, that error is
    /// returned and the payload is leaked (see the type docs).
    pub fn wait(self) -> Result<T> {
        let (payload, status) = self.wait_with_payload();
        status?;
        // `status` is Ok only when the payload was recovered.
        payload.ok_or_else(|| Error::UnexpectedResult {
            function: "nrta_is_completed",
            reason: "completion observed but payload missing".into(),
        })
    }

    /// Like [`wait`](Request::wait), but hands the payload back even when the request
    /// completed with an error status. The payload is `None` only when completion could
    /// not be observed (polling failed), in which case it was leaked.
    pub fn wait_with_payload(self) -> (Option<T>, Result<()>) {
        let inner = self.into_inner();
        let span = inner.wait_span();
        let _entered = span.enter();
        let (payload, status) = inner.wait();
        spans::record_result(&span, &status);
        (payload, status)
    }

    fn into_inner(self) -> Inner<T> {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used again and never dropped (ManuallyDrop), so the
        // inner value is moved out exactly once.
        unsafe { ManuallyDrop::take(&mut this.inner) }
    }
}

impl<T: Payload> Inner<T> {
    /// The `neuron_rt.wait` span of a wait for this request: a child of its
    /// `neuron_rt.schedule` span, with the same fields.
    fn wait_span(&self) -> Span {
        spans::debug_span!(
            parent: &self.span,
            "neuron_rt.wait",
            model = self.keep.as_ref().and_then(KeepAlive::model_label),
            core = self.unit.state.core,
            unit_kind = self.unit.state.kind.name(),
            queue = self.unit.state.queue,
            seq_id = %self.seq,
        )
    }

    /// [`Request::wait_with_payload`] without its span.
    fn wait(self) -> (Option<T>, Result<()>) {
        let inner = self;
        // Spin on the slot only while this queue's requests tend to complete within the
        // watch: for long ones the spin is pure CPU (measured: 64 % of a core at 100 us
        // requests against 17 % for a synchronous call, for 3-6 us of latency).
        let long_waits = &inner.unit.state.long_waits;
        let spin = !long_waits.load(Ordering::Relaxed);
        let started = (!spin).then(Instant::now);
        // A long request is waited for by blocking on its completion event, woken by the
        // completion itself: with the simulator's exact clock that wait is within 5-28 us
        // of a synchronous call at the p50 (D = 100 us to 10 ms, guide::benchmarks), at
        // its CPU. Blocking with a timer until shortly before a predicted end and then
        // watching the slot was 1-20 us closer at 3 to 5 times the CPU: timer wake-ups
        // on a VM end 30-60 us late, so the watch had to start that much earlier.
        if spin {
            inner.watch_slot(WATCH_SLOT);
        }
        // The slot is written when the request completes: confirm with libnrt once, and
        // wait (block) only if it is not complete yet.
        if matches!(inner.unit.is_completed(inner.seq), Ok(true)) {
            if !spin {
                let timing = &inner.unit.state.timing;
                timing.completed(inner.seq.number(), Instant::now(), false);
                // Shorter than a watch after all: spin next time.
                if started.is_some_and(|s| s.elapsed() < WATCH_SLOT) {
                    long_waits.store(false, Ordering::Relaxed);
                }
            }
            let (payload, status) = inner.complete();
            return (Some(payload), status);
        }
        let waited = inner.unit.wait(inner.seq);
        if !spin {
            let timing = &inner.unit.state.timing;
            timing.completed(inner.seq.number(), Instant::now(), false);
        }
        // A spin that saw nothing means a long request; without a spin, the whole wait
        // tells.
        let long = started.is_none_or(|s| s.elapsed() >= WATCH_SLOT);
        long_waits.store(long, Ordering::Relaxed);
        match waited {
            Ok(()) => {
                let (payload, status) = inner.complete();
                (Some(payload), status)
            }
            Err(error) => {
                inner.leak();
                (None, Err(error))
            }
        }
    }

    /// Watches the request's status slot for up to `limit` ([`WATCH_SLOT`] before the
    /// caller blocks): libnrt writes the slot when the request completes, and a request
    /// that completes within that time is then seen without the two system calls and
    /// the thread wake-up of an event wait. Returns whether it saw the slot being
    /// written (not whether it was written before the watch began).
    /// Only a hint: completion is still confirmed with libnrt afterwards.
    fn watch_slot(&self, limit: Duration) -> bool {
        // SAFETY: the slot's pool belongs to `self.unit`, alive while `self` is.
        let cell = unsafe { self.slot.cell() };
        // The slot is looked at after every spin hint (a PAUSE can take ~50 ns); the
        // clock is read only once a first round of spins did not see it written, and
        // then every 64 spins.
        if cell.load(Ordering::Relaxed) != UNWRITTEN {
            // Written before the watch began: when, it cannot tell.
            return false;
        }
        let mut start = None;
        let mut spins = 0u32;
        while cell.load(Ordering::Relaxed) == UNWRITTEN {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(64) {
                let started = *start.get_or_insert_with(Instant::now);
                if started.elapsed() >= limit {
                    return false;
                }
            }
            std::hint::spin_loop();
        }
        true
    }

    /// Reads the status and takes the payload back. Only call after completion was
    /// observed: from then on libnrt writes neither the slot nor the payload.
    fn complete(self) -> (T, Result<()>) {
        // Pairs with libnrt's release when it publishes completion: the slot's value
        // and a read's bytes are visible from here on.
        fence(Ordering::Acquire);
        // SAFETY: the slot's pool belongs to `self.unit`, alive while `self` is (held by
        // this request, or by its scope for longer).
        let raw = unsafe { self.slot.cell() }.load(Ordering::Acquire);
        let Inner {
            unit,
            seq,
            slot,
            function,
            parked,
            keep,
            span,
        } = self;
        unit.state.slots.give_back(slot);
        // SAFETY: `parked` came from `park` of this payload, is unparked once, and the
        // request has completed, so libnrt no longer accesses it.
        let payload = unsafe { T::unpark(parked) };
        drop(keep);
        let status = match raw {
            sys::NRT_SUCCESS => Ok(()),
            UNWRITTEN => Err(Error::UnexpectedResult {
                function,
                reason: format!(
                    "request {seq} on {} completed without writing its status",
                    unit.state
                ),
            }),
            raw => Err(unit.request_error(function, seq, raw)),
        };
        spans::record_result(&span, &status);
        drop(span);
        (payload, status)
    }

    /// Hands the request to the background thread that releases it after completion
    /// (see `detached.rs`); gives it back if it borrows (scope requests) or there is no
    /// such thread.
    fn detach(self) -> std::result::Result<(), Inner<T>> {
        let Inner {
            unit,
            seq,
            slot,
            function,
            parked,
            keep,
            span,
        } = self;
        let unit = match unit {
            UnitRef::Owned(unit) => unit,
            scoped @ UnitRef::Scoped(_) => {
                return Err(Inner {
                    unit: scoped,
                    seq,
                    slot,
                    function,
                    parked,
                    keep,
                    span,
                });
            }
        };
        let payload = match T::detach(parked) {
            Ok(payload) => payload,
            Err(parked) => {
                return Err(Inner {
                    unit: UnitRef::Owned(unit),
                    seq,
                    slot,
                    function,
                    parked,
                    keep,
                    span,
                });
            }
        };
        if let Err(orphan) = detached::hand_over(Orphan::new(unit, seq, slot, payload, keep, span))
        {
            // No background thread could be started: wait here after all.
            orphan.release_when_complete();
        }
        Ok(())
    }

    /// Gives up on the request without freeing anything libnrt might still write.
    fn leak(self) {
        std::mem::forget(self);
    }
}

impl<T: Payload> Drop for Request<T> {
    fn drop(&mut self) {
        // SAFETY: `self.inner` is not used again: this is the destructor.
        let inner = unsafe { ManuallyDrop::take(&mut self.inner) };
        if matches!(inner.unit.is_completed(inner.seq), Ok(true)) {
            drop(inner.complete());
            return;
        }
        // Still running: the background thread releases it once it completed.
        let Err(inner) = inner.detach() else {
            return;
        };
        // A request that borrows (of an async scope): its scope relies on this wait.
        match inner.unit.wait(inner.seq) {
            Ok(()) => drop(inner.complete()),
            Err(_) => inner.leak(),
        }
    }
}

impl<T: Payload> fmt::Debug for Request<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("seq", &self.inner.seq)
            .field("function", &self.inner.function)
            .field("unit", &format_args!("{}", self.inner.unit.state))
            .finish_non_exhaustive()
    }
}

/// A request that was not scheduled: the error, and the payload handed back so it can
/// be reused (for example resubmitted after [`NrtStatus::QueueFull`](crate::NrtStatus::QueueFull)).
///
/// Converts into [`Error`] (dropping the payload), so `?` works in functions returning
/// [`Result`].
pub struct Rejected<T> {
    error: Error,
    payload: T,
}

impl<T> Rejected<T> {
    pub(crate) fn new(error: Error, payload: T) -> Rejected<T> {
        Rejected { error, payload }
    }

    /// Why the request was refused.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// Whether submitting the same payload again later may succeed (a full queue).
    pub fn is_retryable(&self) -> bool {
        self.error.is_retryable()
    }

    /// The payload.
    pub fn into_inner(self) -> T {
        self.payload
    }

    /// The error and the payload.
    pub fn into_parts(self) -> (Error, T) {
        (self.error, self.payload)
    }

    /// The error, dropping the payload.
    pub fn into_error(self) -> Error {
        self.error
    }
}

impl<T> From<Rejected<T>> for Error {
    fn from(rejected: Rejected<T>) -> Error {
        rejected.error
    }
}

impl<T> fmt::Debug for Rejected<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejected")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for Rejected<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request rejected: {}", self.error)
    }
}

impl<T> std::error::Error for Rejected<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejected_hands_back_payload_and_converts_to_error() {
        let r = Rejected::new(Error::invalid("unit", "wrong kind"), vec![1u8, 2]);
        assert!(!r.is_retryable());
        assert_eq!(
            r.to_string(),
            "request rejected: invalid argument `unit`: wrong kind"
        );
        let (e, payload) = r.into_parts();
        assert_eq!(payload, [1, 2]);
        assert!(matches!(
            e,
            Error::InvalidArgument {
                argument: "unit",
                ..
            }
        ));
        let r = Rejected::new(Error::invalid("x", "y"), ());
        let e: Error = r.into();
        assert!(matches!(e, Error::InvalidArgument { argument: "x", .. }));
    }
}
