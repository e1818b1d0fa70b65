//! [`Lease`]: one copy's tensor sets, held by one request; the payload of its execution
//! and transfers, so that the sets go back to their pool only once the device is done
//! with them, also when the request is dropped (cancelled) in flight.

use std::fmt;
use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::dispatch::{Assigned, Entry, Shared};
use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::objects::{Model, Tensor, TensorSet};
use crate::xu::{Detached, Payload, Sealed, SealedBuffer};
use crate::xu::{ExecUnit, Failed};

/// A pair of tensor sets of one copy of a [`ModelPool`](super::ModelPool)'s model, leased
/// for one request: the zero-copy way to use the pool.
///
/// Fill the input tensors ([`inputs`](Lease::inputs), e.g. with
/// [`Tensor::write`], or by scheduling writes on [`writer`](Lease::writer)), call
/// [`execute`](Lease::execute), read the [`outputs`](Lease::outputs), and drop the lease:
/// its sets go back to the copy's pool. Dropping it at any point (also the `execute`
/// future, while the device runs it) loses no set: a lease the device still uses goes
/// back once the execution completed.
///
/// While it exists, the lease counts in its copy's load (dispatch sends other requests
/// elsewhere) and keeps [`ModelPool::shutdown`](super::ModelPool::shutdown) waiting. A
/// lease leaked with [`mem::forget`](std::mem::forget) leaks its sets (never freed under
/// the device) and keeps a shutdown waiting forever.
pub struct Lease {
    // Dropped in this order after `Drop::drop` (which gives the sets back): the copy's
    // count, the model handle, then the pool's count (so a shutdown waiting for it
    // finds no handle of ours left when it unloads).
    pub(super) assigned: Assigned,
    model: Model,
    _entry: Option<Entry>,
    /// Taken only in `drop`.
    sets: ManuallyDrop<(TensorSet, TensorSet)>,
    /// The pool's tensors that [`Lease::bind`] replaced: (in the output set, name,
    /// tensor), put back before the sets return to the pool.
    replaced: Vec<(bool, String, Tensor)>,
    /// Counted in the copy's `admitted` (scheduled on its compute unit).
    admitted: bool,
    /// Its execution's completion was observed.
    finished: bool,
}

/// How an execution on a leased copy ended.
pub(super) enum Ran {
    Done(Lease),
    /// The copy's unit is dead and refused it: nothing ran (the copy left the rotation).
    Refused(Error, Lease),
    /// It ran (or was accepted) and failed; the lease when it still exists.
    Failed(Failed<Lease>),
}

impl Shared {
    /// A lease on the least loaded live copy, once one of its set pairs is free.
    /// With `core`: a copy on that core.
    pub(super) async fn lease(&self, core: Option<u32>) -> Result<Lease> {
        let entry = self.enter()?;
        self.lease_in(Some(entry), core).await
    }

    /// As [`lease`](Shared::lease), for a request already in the pool (`entry`: the
    /// lease's own count, `None` when the caller holds one for longer).
    pub(super) async fn lease_in(&self, entry: Option<Entry>, core: Option<u32>) -> Result<Lease> {
        loop {
            let assigned = self.dispatch(core)?;
            let copy = Arc::clone(&assigned.copy);
            let Some(model) = copy.model() else {
                return Err(self.reject(self.closed()));
            };
            let sets = copy.sets.acquire(&model).await?;
            if copy.alive() {
                return Ok(Lease {
                    assigned,
                    model,
                    _entry: entry,
                    sets: ManuallyDrop::new(sets),
                    replaced: Vec::new(),
                    admitted: false,
                    finished: false,
                });
            }
            // The copy died while this request waited for its sets: elsewhere.
            copy.counters.refused.fetch_add(1, Ordering::Relaxed);
            copy.sets.put(sets);
        }
    }
}

impl Lease {
    /// The input set (every model input bound).
    pub fn inputs(&self) -> &TensorSet {
        &self.sets.0
    }

    /// The output set (every model output bound).
    pub fn outputs(&self) -> &TensorSet {
        &self.sets.1
    }

    /// The model input or output tensor named `name`.
    pub fn tensor(&self, name: &str) -> Option<&Tensor> {
        self.sets.0.get(name).or_else(|| self.sets.1.get(name))
    }

    /// The copy's model (loaded on [`core`](Lease::core)).
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The copy's index in the pool.
    pub fn copy(&self) -> usize {
        self.assigned.copy.index
    }

    /// The NeuronCore the copy is loaded on.
    pub fn core(&self) -> u32 {
        self.assigned.copy.core
    }

    /// TENSOR_OP queue 0 of the copy's core (the pool writes large inputs on it).
    pub fn writer(&self) -> &ExecUnit {
        &self.assigned.copy.writer
    }

    /// TENSOR_OP queue 1 of the copy's core (the pool reads large outputs on it).
    pub fn reader(&self) -> &ExecUnit {
        &self.assigned.copy.reader
    }

    /// Runs the model on the leased sets: admitted to the copy's COMPUTE unit through
    /// [`ExecUnit::submit`] (never overfilling its queue), then awaited without blocking.
    /// Returns the lease, whose outputs are then written.
    ///
    /// # Errors
    ///
    /// A [`Failed`] with the error and the lease (its sets go back to the pool when it
    /// is dropped): the execution's status (e.g.
    /// [`NrtStatus::ExecCompletedWithNumErr`](crate::NrtStatus::ExecCompletedWithNumErr));
    /// a fatal status if the unit died under it (the copy then leaves the rotation; the
    /// request is not retried: it may have changed device state);
    /// [`Error::Unrecoverable`] if the unit was dead already and refused it before it
    /// ran (the copy leaves the rotation: [`ModelPool::lease`](super::ModelPool::lease)
    /// again to run it on another copy, as [`infer`](super::ModelPool::infer) does).
    pub async fn execute(self) -> std::result::Result<Lease, Failed<Lease>> {
        match self.run().await {
            Ran::Done(lease) => Ok(lease),
            Ran::Refused(error, lease) => Err(Failed::new(error, Some(lease))),
            Ran::Failed(failed) => Err(failed),
        }
    }

    /// [`execute`](Lease::execute) for synchronous callers: blocks the calling thread
    /// (parked, woken by the completion) until the execution completed. Do not call it
    /// on an async executor's thread.
    ///
    /// # Errors
    ///
    /// As [`execute`](Lease::execute).
    // The same result type as `execute` (whose error hands the lease back by value).
    #[allow(clippy::result_large_err)]
    pub fn execute_blocking(self) -> std::result::Result<Lease, Failed<Lease>> {
        super::block_on(self.execute())
    }

    // The closure returns the crate's `Scheduled`, whose error hands the payload (the
    // lease) back by value, as `ExecUnit::submit` requires; boxing it would cost an
    // allocation per request.
    #[allow(clippy::result_large_err)]
    pub(super) async fn run(self) -> Ran {
        let copy = Arc::clone(&self.assigned.copy);
        let model = self.model.clone();
        let compute = &copy.compute;
        let scheduled = compute
            .submit(self, |mut lease| {
                // Counted before the call: the device may start on it at once.
                lease.admitted = true;
                copy.counters.admitted.fetch_add(1, Ordering::Relaxed);
                copy.busy_start();
                compute
                    .execute_payload(&model, lease, |l| (&l.sets.0, &l.sets.1))
                    .map_err(|rejected| {
                        let (error, mut lease) = rejected.into_parts();
                        lease.unadmit();
                        copy.busy_end();
                        crate::Rejected::new(error, lease)
                    })
            })
            .await;
        let request = match scheduled {
            Ok(request) => request,
            Err(rejected) => {
                let (error, lease) = rejected.into_parts();
                if error.is_fatal() {
                    copy.mark_dead(&error);
                    copy.counters.refused.fetch_add(1, Ordering::Relaxed);
                    return Ran::Refused(error, lease);
                }
                copy.counters.failed.fetch_add(1, Ordering::Relaxed);
                return Ran::Failed(Failed::new(error, Some(lease)));
            }
        };
        let result = request.completion().await;
        match result {
            Ok(mut lease) => {
                lease.finish();
                lease.assigned.ok = true;
                copy.counters.ok.fetch_add(1, Ordering::Relaxed);
                Ran::Done(lease)
            }
            Err(failed) => {
                let (error, mut lease) = failed.into_parts();
                match &mut lease {
                    Some(lease) => lease.finish(),
                    // Completion could not be observed: the lease leaked.
                    None => copy.busy_end(),
                }
                if error.is_fatal() {
                    copy.mark_dead(&error);
                }
                copy.counters.failed.fetch_add(1, Ordering::Relaxed);
                Ran::Failed(Failed::new(error, lease))
            }
        }
    }

    /// Binds `tensor` under `name` (a model input or output) in the leased sets for
    /// this lease only: the pool's own tensor is put back when the lease is dropped.
    /// The way to run a leased copy on tensors the caller keeps on the device (a state
    /// shared by several executions, outputs read later or never).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownTensor`] for a name the model lacks; [`Error::SizeMismatch`],
    /// [`BundleError::TensorDType`](crate::generate::BundleError::TensorDType) or
    /// [`Error::WrongCore`] when `tensor` does not fit (lease on its core with
    /// [`ModelPool::lease_on`](super::ModelPool::lease_on)); otherwise as
    /// [`TensorSet::insert`].
    pub fn bind(&mut self, name: &str, tensor: &Tensor) -> Result<()> {
        let info = self
            .model
            .tensor_info(name)
            .ok_or_else(|| Error::UnknownTensor {
                model: self.model.label().to_owned(),
                role: "input or output",
                tensor: name.to_owned(),
                known: self
                    .model
                    .inputs()
                    .iter()
                    .chain(self.model.outputs())
                    .map(|i| i.name.clone())
                    .collect(),
            })?;
        crate::generate::check_fits(&self.model, info, tensor)?;
        let is_input = self.model.inputs().iter().any(|i| i.name == name);
        let set = if is_input {
            &mut self.sets.0
        } else {
            &mut self.sets.1
        };
        if let Some(old) = set.insert(name, tensor)?
            && !self
                .replaced
                .iter()
                .any(|(out, n, _)| *out != is_input && n == name)
        {
            self.replaced.push((!is_input, name.to_owned(), old));
        }
        Ok(())
    }

    /// Binds `tensor` as input `input` and as output `output` (the state it updates in
    /// place) for this lease only, checked as [`bind_state`](crate::generate::bind_state)
    /// checks; the pool's own tensors are put back when the lease is dropped.
    ///
    /// # Errors
    ///
    /// As [`bind_state`](crate::generate::bind_state) and [`Lease::bind`].
    pub fn bind_state(&mut self, input: &str, output: &str, tensor: &Tensor) -> Result<()> {
        crate::generate::check_alias(&self.model, input, output)?;
        self.bind(output, tensor)?;
        self.bind(input, tensor)
    }

    /// Marks a transfer or other step after dispatch as failed on the copy.
    pub(super) fn count_failure(&self, error: &Error) {
        let copy = &self.assigned.copy;
        if error.is_fatal() {
            copy.mark_dead(error);
        }
        copy.counters.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Its execution's completion was observed.
    fn finish(&mut self) {
        if !std::mem::replace(&mut self.finished, true) {
            self.assigned.copy.busy_end();
        }
    }

    fn unadmit(&mut self) {
        if std::mem::take(&mut self.admitted) {
            self.assigned
                .copy
                .counters
                .admitted
                .fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.admitted && !self.finished {
            // Dropped while its execution was queued or running: released only now,
            // after the device completed it (see the `Payload` impl below).
            self.assigned
                .copy
                .counters
                .cancelled
                .fetch_add(1, Ordering::Relaxed);
            self.finish();
        }
        self.unadmit();
        // SAFETY: this is the destructor: the sets are taken once and never used again.
        let mut sets = unsafe { ManuallyDrop::take(&mut self.sets) };
        // The pool's tensors back in place (the device is done with the sets: the
        // request that owned the lease completed); a pair that cannot be restored is
        // freed instead, and the pool may allocate a new one.
        for (output, name, tensor) in self.replaced.drain(..) {
            let set = if output { &mut sets.1 } else { &mut sets.0 };
            if let Err(e) = set.insert(&name, &tensor) {
                log::warn!("model pool: a leased set pair could not be restored ({e}); freeing it");
                drop(sets);
                self.assigned.copy.sets.discard();
                return;
            }
        }
        self.assigned.copy.sets.put(sets);
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("copy", &self.copy())
            .field("core", &self.core())
            .field("model", &self.model.label())
            .finish_non_exhaustive()
    }
}

// A lease is the payload of its execution: the request owns it (so its sets) until the
// device completed, and a request dropped in flight releases it only then (on the
// background thread of `xu/detached.rs`), giving the sets back to the pool.
impl Sealed for Lease {
    // Rust never touches what the device reads or writes through the sets: the sets,
    // and so the lease, are simply held.
    type Parked = Lease;
    fn park(self) -> Lease {
        self
    }
    unsafe fn unpark(parked: Lease) -> Lease {
        parked
    }
    fn detach(parked: Lease) -> std::result::Result<Detached, Lease> {
        // SAFETY: releasing a lease gives its sets back to the pool, which is what must
        // wait for completion; `Detached::run` runs it only after the request completed.
        Ok(unsafe { Detached::new(move || drop(parked)) })
    }
}
impl Payload for Lease {}

/// A host buffer of a transfer to or from a leased set, with the lease: the request holds
/// both, so the sets cannot be reused while the transfer may still touch them.
pub(super) struct LeaseBuf<E: Element> {
    pub(super) buf: Vec<E>,
    pub(super) lease: Lease,
}

impl<E: Element> Sealed for LeaseBuf<E> {
    type Parked = (<Vec<E> as Sealed>::Parked, Lease);
    fn park(self) -> Self::Parked {
        (self.buf.park(), self.lease)
    }
    unsafe fn unpark(parked: Self::Parked) -> Self {
        let (buf, lease) = parked;
        LeaseBuf {
            // SAFETY: forwarded from the caller: `buf` was parked by `park` above, once,
            // and libnrt no longer accesses it.
            buf: unsafe { <Vec<E> as Sealed>::unpark(buf) },
            lease,
        }
    }
    fn detach(parked: Self::Parked) -> std::result::Result<Detached, Self::Parked> {
        let (buf, lease) = parked;
        match <Vec<E> as Sealed>::detach(buf) {
            Ok(release) => {
                let both = move || {
                    // SAFETY: this closure runs only through `Detached::run` (below),
                    // after the request completed, which is `release`'s condition.
                    unsafe { release.run() };
                    drop(lease);
                };
                // SAFETY: `both` runs `release`, so it may only run through
                // `Detached::run`: it is handed over inside the `Detached` only.
                Ok(unsafe { Detached::new(both) })
            }
            Err(buf) => Err((buf, lease)),
        }
    }
}
impl<E: Element> SealedBuffer for LeaseBuf<E> {
    fn byte_len(&self) -> usize {
        self.buf.byte_len()
    }
    fn parked_ptr(parked: &Self::Parked) -> *mut u8 {
        <Vec<E> as SealedBuffer>::parked_ptr(&parked.0)
    }
}
impl<E: Element> Payload for LeaseBuf<E> {}
