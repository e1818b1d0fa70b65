//! [`Request`]: an accepted async request, owning what the device may touch until it
//! completes; [`Rejected`]: a refused one, handing its payload back.

use std::fmt;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};
use std::time::Duration;

use nrt_sys as sys;

use super::queue::{ExecUnit, UnitInner};
use super::seq::SeqId;
use super::slots::{Slot, UNWRITTEN};
use crate::tensor::TensorInner;
use crate::{Element, Error, Model, Result, TensorSet};

pub(crate) mod sealed {
    /// How a payload is held while libnrt may use it.
    pub trait Sealed: Sized {
        /// The payload in the form the request keeps: for host buffers, raw parts, so
        /// that no Rust reference or owning pointer to the bytes exists (or is moved)
        /// while libnrt reads or writes them.
        type Parked: Send + Sync + Unpin;
        /// Takes the payload apart for the request.
        fn park(self) -> Self::Parked;
        /// Puts the payload back together.
        ///
        /// # Safety
        ///
        /// `parked` comes from [`park`](Sealed::park) of this type, once, and libnrt no
        /// longer accesses it.
        unsafe fn unpark(parked: Self::Parked) -> Self;
    }

    /// Host buffers: where their bytes are.
    pub trait SealedBuffer: Sealed {
        /// The buffer's size in bytes.
        fn byte_len(&self) -> usize;
        /// The first byte of a parked buffer; valid for `byte_len` bytes until unparked.
        fn parked_ptr(parked: &Self::Parked) -> *mut u8;
    }
}

use sealed::{Sealed, SealedBuffer};

/// What a [`Request`] can own and hand back: `(TensorSet, TensorSet)` for an
/// execution (inputs, outputs), a [`HostBuffer`] for a tensor write or read, `()` for a
/// tensor copy; and, for requests of an async [`scope`](crate::xu::scope) only, borrowed
/// slices and `(&TensorSet, &mut TensorSet)`. Sealed: the list is fixed by this crate.
pub trait Payload: Sealed {}

/// A host buffer that a tensor write reads from or a tensor read fills: `Vec<T>` or
/// `Box<[T]>` of an [`Element`] type. Sealed.
///
/// The buffer is moved into the request, so nothing else can use or free it while
/// libnrt may; its heap storage does not move meanwhile. A read uses the buffer's
/// length (not its capacity).
pub trait HostBuffer: Payload + SealedBuffer {}

/// Raw parts of a `Vec`, kept instead of the `Vec` while libnrt uses the storage.
pub struct RawBuf<E> {
    ptr: NonNull<E>,
    len: usize,
    cap: usize,
}

// SAFETY: a RawBuf is the unique owner of its storage (like the Vec it came from), and
// Rust never accesses the storage through it while parked; `E: Send` as for Vec<E>.
unsafe impl<E: Send> Send for RawBuf<E> {}
// SAFETY: `&RawBuf` gives no access to the elements at all (only the raw pointer is read
// to pass it to libnrt), so sharing it cannot race.
unsafe impl<E: Sync> Sync for RawBuf<E> {}

impl<E> RawBuf<E> {
    fn from_vec(vec: Vec<E>) -> RawBuf<E> {
        let mut vec = ManuallyDrop::new(vec);
        RawBuf {
            // A Vec's pointer is never null (dangling but aligned when empty).
            ptr: NonNull::new(vec.as_mut_ptr()).unwrap_or(NonNull::dangling()),
            len: vec.len(),
            cap: vec.capacity(),
        }
    }

    /// # Safety
    ///
    /// `self` comes from `from_vec` and is used once.
    unsafe fn into_vec(self) -> Vec<E> {
        // SAFETY: the parts are those of a Vec taken apart by `from_vec` (the caller's
        // guarantee), so they describe a live allocation with `len` initialised elements.
        unsafe { Vec::from_raw_parts(self.ptr.as_ptr(), self.len, self.cap) }
    }
}

impl<E: Element> Sealed for Vec<E> {
    type Parked = RawBuf<E>;
    fn park(self) -> RawBuf<E> {
        RawBuf::from_vec(self)
    }
    unsafe fn unpark(parked: RawBuf<E>) -> Vec<E> {
        // SAFETY: forwarded from the caller: `parked` came from `park`, once. Any bytes
        // libnrt wrote are valid elements (`Element`'s contract).
        unsafe { parked.into_vec() }
    }
}
impl<E: Element> Payload for Vec<E> {}
impl<E: Element> SealedBuffer for Vec<E> {
    fn byte_len(&self) -> usize {
        size_of_val(self.as_slice())
    }
    fn parked_ptr(parked: &RawBuf<E>) -> *mut u8 {
        parked.ptr.as_ptr().cast()
    }
}
impl<E: Element> HostBuffer for Vec<E> {}

impl<E: Element> Sealed for Box<[E]> {
    type Parked = RawBuf<E>;
    fn park(self) -> RawBuf<E> {
        // `into_vec` reuses the allocation (capacity == length).
        RawBuf::from_vec(self.into_vec())
    }
    unsafe fn unpark(parked: RawBuf<E>) -> Box<[E]> {
        // SAFETY: as for Vec. Capacity equals length, so no reallocation happens.
        unsafe { parked.into_vec() }.into_boxed_slice()
    }
}
impl<E: Element> Payload for Box<[E]> {}
impl<E: Element> SealedBuffer for Box<[E]> {
    fn byte_len(&self) -> usize {
        size_of_val(&**self)
    }
    fn parked_ptr(parked: &RawBuf<E>) -> *mut u8 {
        parked.ptr.as_ptr().cast()
    }
}
impl<E: Element> HostBuffer for Box<[E]> {}

/// A borrowed slice as raw parts, kept instead of the reference while libnrt uses it (a
/// reference that is moved around would be re-asserted at each move, while libnrt
/// writes through a pointer derived from it).
pub struct RawSlice<E> {
    ptr: NonNull<E>,
    len: usize,
}

// SAFETY: stands for a `&[E]` or `&mut [E]` (both Send for `E: Send + Sync`, which every
// Element is); Rust never accesses the elements through it while parked.
unsafe impl<E: Send + Sync> Send for RawSlice<E> {}
// SAFETY: `&RawSlice` gives no access to the elements (only the pointer is read).
unsafe impl<E: Sync> Sync for RawSlice<E> {}

impl<E> RawSlice<E> {
    fn from_slice(slice: &[E]) -> RawSlice<E> {
        RawSlice {
            ptr: NonNull::from(slice).cast(),
            len: slice.len(),
        }
    }

    fn from_mut(slice: &mut [E]) -> RawSlice<E> {
        RawSlice {
            len: slice.len(),
            ptr: NonNull::from(slice).cast(),
        }
    }
}

// Borrowed buffers: only for requests of an async scope (`xu::scope`), which waits for
// every request before its borrows end, also for requests that were leaked. They are
// deliberately not `HostBuffer`s: `ExecUnit::write`/`read` cannot take them.
impl<'a, E: Element> Sealed for &'a [E] {
    type Parked = RawSlice<E>;
    fn park(self) -> RawSlice<E> {
        RawSlice::from_slice(self)
    }
    unsafe fn unpark(parked: RawSlice<E>) -> &'a [E] {
        // SAFETY: the parts come from a `&'a [E]` (the caller's guarantee) that is still
        // borrowed for 'a and was only read meanwhile.
        unsafe { std::slice::from_raw_parts(parked.ptr.as_ptr(), parked.len) }
    }
}
impl<E: Element> Payload for &[E] {}
impl<E: Element> SealedBuffer for &[E] {
    fn byte_len(&self) -> usize {
        size_of_val(*self)
    }
    fn parked_ptr(parked: &RawSlice<E>) -> *mut u8 {
        parked.ptr.as_ptr().cast()
    }
}

impl<'a, E: Element> Sealed for &'a mut [E] {
    type Parked = RawSlice<E>;
    fn park(self) -> RawSlice<E> {
        RawSlice::from_mut(self)
    }
    unsafe fn unpark(parked: RawSlice<E>) -> &'a mut [E] {
        // SAFETY: the parts come from a `&'a mut [E]` (the caller's guarantee), still
        // exclusively borrowed for 'a; libnrt is done writing it, and any bytes it wrote
        // are valid elements (`Element`'s contract).
        unsafe { std::slice::from_raw_parts_mut(parked.ptr.as_ptr(), parked.len) }
    }
}
impl<E: Element> Payload for &mut [E] {}
impl<E: Element> SealedBuffer for &mut [E] {
    fn byte_len(&self) -> usize {
        size_of_val(&**self)
    }
    fn parked_ptr(parked: &RawSlice<E>) -> *mut u8 {
        parked.ptr.as_ptr().cast()
    }
}

impl<'a> Sealed for (&'a TensorSet, &'a mut TensorSet) {
    // As for owned sets: Rust never touches what libnrt reads or writes through them.
    type Parked = (&'a TensorSet, &'a mut TensorSet);
    fn park(self) -> Self::Parked {
        self
    }
    unsafe fn unpark(parked: Self::Parked) -> Self {
        parked
    }
}
impl<'a> Payload for (&'a TensorSet, &'a mut TensorSet) {}

impl Sealed for (TensorSet, TensorSet) {
    // The sets are libnrt objects; Rust never touches what the device reads or writes
    // through them, so they are simply held.
    type Parked = (TensorSet, TensorSet);
    fn park(self) -> Self::Parked {
        self
    }
    unsafe fn unpark(parked: Self::Parked) -> Self {
        parked
    }
}
impl Payload for (TensorSet, TensorSet) {}

impl Sealed for () {
    type Parked = ();
    fn park(self) {}
    unsafe fn unpark(_: ()) {}
}
impl Payload for () {}

/// The payload of an execution: its `(inputs, outputs)` tensor sets.
pub type ExecSets = (TensorSet, TensorSet);

/// What a schedule call returns: the accepted [`Request`], or the error with the payload
/// handed back ([`Rejected`]). `?` turns the latter into an [`Error`].
pub type Scheduled<T> = std::result::Result<Request<T>, Rejected<T>>;

/// Handles a request holds so that what libnrt uses stays alive until completion.
pub(crate) enum KeepAlive {
    Model(#[allow(dead_code)] Model),
    Tensor(#[allow(dead_code)] Arc<TensorInner>),
    Tensors(
        #[allow(dead_code)] Arc<TensorInner>,
        #[allow(dead_code)] Arc<TensorInner>,
    ),
}

/// A request accepted by an execution unit, not yet waited for.
///
/// The request owns everything libnrt may still read or write for it: the payload
/// (tensor sets, host buffer), handles to the model and tensors it uses, and the
/// `NRT_STATUS` slot libnrt writes its final status to. [`wait`](Request::wait)
/// returns the payload once the request has completed and its status has been checked.
///
/// Dropping a request waits for it to complete (errors are dropped with it; call
/// `wait` to see them). If completion can no longer be observed (polling fails), or if
/// the request is leaked with [`mem::forget`](std::mem::forget), its payload, slot and
/// handles are leaked instead of freed, so libnrt never writes to freed memory. A leaked
/// request also keeps the runtime open for the rest of the process (except a request of
/// an async [`scope`](crate::xu::scope), whose scope holds those handles).
///
/// `Request` implements [`IntoFuture`](std::future::IntoFuture): `request.await` works
/// with any executor (see [`RequestFuture`](crate::RequestFuture)).
///
/// ```
/// use neuron_rt::{Placement, Runtime};
///
/// let rt = Runtime::builder().library(nrt_sim::library()).build()?;
/// let tensor = rt.allocate_tensor(Placement::Device, Some(0), 16, "t")?;
/// let unit = rt.tensor_op_unit(0, 0)?;
/// let request = unit.write(&tensor, 0, vec![1u32, 2, 3, 4])?; // the Vec moves in
/// println!("scheduled as {}", request.seq()); // XU id : number on that queue
/// let data = request.wait()?; // ... and comes back once written
/// let filled = unit.read(&tensor, 0, vec![0u32; 4])?.wait()?;
/// assert_eq!(filled, data);
/// # Ok::<(), neuron_rt::Error>(())
/// ```
#[must_use = "a request's status is only known by waiting for it; dropping it waits and discards errors"]
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
    ) -> Request<T> {
        Request {
            inner: ManuallyDrop::new(Inner {
                unit: UnitRef::Owned(unit),
                seq,
                slot,
                function,
                parked,
                keep: Some(keep),
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
    /// With completion events (runtime >= 2.32) the thread blocks on an eventfd that
    /// libnrt signals when the request completes. On a 2.31 runtime it polls with
    /// backoff: it spins briefly, then yields, then sleeps in steps of at most 1 ms, so
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
        match inner.unit.wait_until(inner.seq, None) {
            Ok(true) => {
                let (payload, status) = inner.complete();
                (Some(payload), status)
            }
            // A wait without a limit only returns once complete; `false` would be a bug.
            Ok(false) => {
                inner.leak();
                (
                    None,
                    Err(Error::UnexpectedResult {
                        function: "nrta_is_completed",
                        reason: "an unlimited wait returned before completion".into(),
                    }),
                )
            }
            Err(error) => {
                inner.leak();
                (None, Err(error))
            }
        }
    }

    fn into_inner(self) -> Inner<T> {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used again and never dropped (ManuallyDrop), so the
        // inner value is moved out exactly once.
        unsafe { ManuallyDrop::take(&mut this.inner) }
    }
}

impl<T: Payload> Inner<T> {
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
        (payload, status)
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
        match inner.unit.wait_until(inner.seq, None) {
            Ok(true) => drop(inner.complete()),
            Ok(false) | Err(_) => inner.leak(),
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
    fn vec_park_keeps_storage_in_place_and_round_trips() {
        let v: Vec<f32> = Vec::from([1.0, 2.0, 3.0]);
        let ptr = v.as_ptr();
        let parked = v.park();
        assert_eq!(
            <Vec<f32> as SealedBuffer>::parked_ptr(&parked),
            ptr as *mut u8
        );
        // SAFETY: parked just above, unparked once.
        let back = unsafe { Vec::<f32>::unpark(parked) };
        assert_eq!(back, [1.0, 2.0, 3.0]);
        assert_eq!(back.as_ptr(), ptr);
    }

    #[test]
    fn boxed_slices_round_trip_without_reallocating() {
        let b: Box<[u16]> = vec![7u16; 5].into_boxed_slice();
        assert_eq!(b.byte_len(), 10);
        let ptr = b.as_ptr();
        let parked = b.park();
        // SAFETY: parked just above, unparked once.
        let back = unsafe { Box::<[u16]>::unpark(parked) };
        assert_eq!(back.as_ptr(), ptr);
        assert_eq!(&*back, &[7u16; 5]);
    }

    #[test]
    fn byte_len_counts_length_not_capacity() {
        let mut v: Vec<u32> = Vec::with_capacity(100);
        v.extend([1, 2, 3]);
        assert_eq!(v.byte_len(), 12);
        let empty: Vec<f64> = Vec::new();
        assert_eq!(empty.byte_len(), 0);
        // SAFETY: parked just above, unparked once.
        let back = unsafe { Vec::<f64>::unpark(empty.park()) };
        assert!(back.is_empty());
    }

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
