//! What a request owns while libnrt may use it: [`Payload`]s (tensor sets, host
//! buffers, and, inside an async scope, borrowed slices and sets), held in "parked" form
//! so that no Rust reference to bytes libnrt writes exists meanwhile.

use std::mem::ManuallyDrop;
use std::ptr::NonNull;

use std::sync::Arc;

use crate::dtype::Element;
use crate::objects::tensor::TensorInner;
use crate::objects::{Model, TensorSet};

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

        /// For a request dropped before it completed: `Ok` with what releases the
        /// payload once libnrt no longer uses it (owned payloads), or the payload back
        /// (borrowed ones: their scope waits for the request instead).
        fn detach(parked: Self::Parked) -> Result<Detached, Self::Parked> {
            Err(parked)
        }
    }

    /// A parked payload waiting to be released after its request completed.
    pub struct Detached(Box<dyn FnOnce() + Send>);

    impl Detached {
        /// # Safety
        ///
        /// `release` may unpark a payload: it must only run through [`Detached::run`].
        pub(crate) unsafe fn new(release: impl FnOnce() + Send + 'static) -> Detached {
            Detached(Box::new(release))
        }

        /// Releases the payload.
        ///
        /// # Safety
        ///
        /// The request the payload belongs to has completed (observed), so libnrt no
        /// longer accesses it.
        pub(crate) unsafe fn run(self) {
            (self.0)()
        }
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

/// Handles a request holds so that what libnrt uses stays alive until completion.
pub(crate) enum KeepAlive {
    Model(Model),
    Tensor(#[allow(dead_code)] Arc<TensorInner>),
    Tensors(
        #[allow(dead_code)] Arc<TensorInner>,
        #[allow(dead_code)] Arc<TensorInner>,
    ),
}

impl KeepAlive {
    /// The label of the model an execution keeps loaded (spans name it).
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) fn model_label(&self) -> Option<&str> {
        match self {
            KeepAlive::Model(model) => Some(model.label()),
            _ => None,
        }
    }
}

/// What a [`Request`](crate::Request) can own and hand back: `(TensorSet, TensorSet)` for an
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
    fn detach(parked: Self::Parked) -> Result<sealed::Detached, Self::Parked> {
        let release = move || {
            // SAFETY: runs only through `Detached::run` (below), after the request
            // completed; `parked` came from `park`, once.
            let _released = unsafe { Self::unpark(parked) };
        };
        // SAFETY: `release` unparks, so it may only run through `Detached::run`: it is
        // handed over inside the `Detached` and nowhere else.
        Ok(unsafe { sealed::Detached::new(release) })
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
    fn detach(parked: Self::Parked) -> Result<sealed::Detached, Self::Parked> {
        let release = move || {
            // SAFETY: runs only through `Detached::run` (below), after the request
            // completed; `parked` came from `park`, once.
            let _released = unsafe { Self::unpark(parked) };
        };
        // SAFETY: `release` unparks, so it may only run through `Detached::run`: it is
        // handed over inside the `Detached` and nowhere else.
        Ok(unsafe { sealed::Detached::new(release) })
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
    fn detach(parked: Self::Parked) -> Result<sealed::Detached, Self::Parked> {
        let release = move || {
            // SAFETY: runs only through `Detached::run` (below), after the request
            // completed; `parked` came from `park`, once.
            let _released = unsafe { Self::unpark(parked) };
        };
        // SAFETY: `release` unparks, so it may only run through `Detached::run`: it is
        // handed over inside the `Detached` and nowhere else.
        Ok(unsafe { sealed::Detached::new(release) })
    }
}
impl Payload for (TensorSet, TensorSet) {}

impl Sealed for () {
    type Parked = ();
    fn park(self) {}
    unsafe fn unpark(_: ()) {}
    fn detach(_: ()) -> Result<sealed::Detached, ()> {
        // SAFETY: releasing nothing is sound at any time.
        Ok(unsafe { sealed::Detached::new(|| {}) })
    }
}
impl Payload for () {}

/// The payload of an execution: its `(inputs, outputs)` tensor sets.
pub type ExecSets = (TensorSet, TensorSet);
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
}
