//! [`scope`]: requests that borrow host memory and tensor sets instead of owning them.

use std::io::Write;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Arc, Mutex};

use super::payload::KeepAlive;
use super::queue::{ExecUnit, UnitInner};
use super::request::Scheduled;
use super::seq::SeqId;
use crate::dtype::Element;
use crate::objects::{Model, Tensor, TensorSet};

/// Runs `f` with a [`Scope`] whose requests may *borrow* host buffers and tensor sets,
/// and returns only once every request scheduled through the scope has completed.
///
/// This is the `std::thread::scope` idea applied to async requests: a borrow handed to a
/// request lasts for the whole scope, and the scope outlives every request, also one
/// that was leaked with `mem::forget`. So nothing needs to be moved into requests, at
/// the price of a wait at the end of the scope (and one small allocation per request, to
/// remember it). Requests can still be waited for inside the scope: `wait` then hands
/// the borrow back (a read gives back the filled `&mut [T]`).
///
/// ```
/// use neuron_rt::{Placement, Runtime, xu};
///
/// let rt = Runtime::builder().simulator().build()?;
/// let t = rt.allocate_tensor(Placement::Device, Some(0), 16, "t")?;
/// let unit = rt.tensor_op_unit(0, 0)?;
/// let input = [1.0f32, 2.0, 3.0, 4.0];
/// let mut output = [0.0f32; 4];
/// xu::scope(|s| -> neuron_rt::Result<()> {
///     let _write = s.write(&unit, &t, 0, &input)?; // waited for when dropped
///     let filled = s.read(&unit, &t, 0, &mut output)?.wait()?;
///     assert_eq!(filled, &[1.0, 2.0, 3.0, 4.0]);
///     Ok(())
/// })?;
/// assert_eq!(output, input);
/// # Ok::<(), neuron_rt::Error>(())
/// ```
///
/// If `f` panics, the scope still waits for its requests, then resumes the panic.
///
/// Borrowed buffers are only accepted through a scope; [`ExecUnit::write`] and
/// [`ExecUnit::read`] take owned buffers, so this does not compile:
///
/// ```compile_fail
/// # fn f(unit: &neuron_rt::ExecUnit, t: &neuron_rt::Tensor, data: &[f32]) {
/// let request = unit.write(t, 0, data); // a borrowed slice is not a HostBuffer
/// std::mem::forget(request); // (which is why: the borrow would end here)
/// # }
/// ```
///
/// and a buffer lent to a scoped read stays lent until the scope ends:
///
/// ```compile_fail
/// # fn f(unit: &neuron_rt::ExecUnit, t: &neuron_rt::Tensor) {
/// let mut out = [0.0f32; 4];
/// neuron_rt::xu::scope(|s| {
///     let request = s.read(unit, t, 0, &mut out);
///     out[0] = 1.0; // error: `out` is borrowed by the scope's request
/// });
/// # }
/// ```
///
/// # Aborts
///
/// If completion of a request can no longer be observed at the end of the scope (both
/// `nrta_is_completed` and `nrta_get_sequence` of the queue that runs it fail), the
/// process is aborted: returning would end borrows that the device may still write
/// through.
pub fn scope<'env, F, R>(f: F) -> R
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> R,
{
    let scope = Scope {
        pending: Mutex::new(Vec::new()),
        scope: PhantomData,
        env: PhantomData,
    };
    let result = catch_unwind(AssertUnwindSafe(|| f(&scope)));
    scope.wait_all();
    match result {
        Ok(value) => value,
        Err(panic) => resume_unwind(panic),
    }
}

struct Record {
    unit: Arc<UnitInner>,
    seq: SeqId,
    _keep: Option<KeepAlive>,
}

/// Schedules requests that borrow for `'scope`; see [`scope`].
pub struct Scope<'scope, 'env: 'scope> {
    /// Every request scheduled through the scope, with what it uses: the requests only
    /// point to their unit, and the scope keeps the unit and the request's model or
    /// tensors alive until all of them completed. So a leaked scoped request leaks
    /// nothing that would keep the runtime open.
    pending: Mutex<Vec<Record>>,
    // Invariant in both lifetimes, as std's thread scope: borrows cannot be shortened.
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

impl<'scope> Scope<'scope, '_> {
    /// [`ExecUnit::write`] from a borrowed slice.
    ///
    /// # Errors
    ///
    /// As for [`ExecUnit::write`].
    pub fn write<E: Element>(
        &'scope self,
        unit: &ExecUnit,
        tensor: &Tensor,
        offset: usize,
        data: &'scope [E],
    ) -> Scheduled<&'scope [E]> {
        self.track(unit.write_payload(tensor, offset, data))
    }

    /// [`ExecUnit::read`] into a borrowed slice, filling all of it; `wait` hands it back.
    ///
    /// # Errors
    ///
    /// As for [`ExecUnit::read`].
    pub fn read<E: Element>(
        &'scope self,
        unit: &ExecUnit,
        tensor: &Tensor,
        offset: usize,
        buffer: &'scope mut [E],
    ) -> Scheduled<&'scope mut [E]> {
        self.track(unit.read_payload(tensor, offset, buffer))
    }

    /// [`ExecUnit::execute`] with borrowed tensor sets; `wait` hands them back.
    ///
    /// # Errors
    ///
    /// As for [`ExecUnit::execute`].
    pub fn execute(
        &'scope self,
        unit: &ExecUnit,
        model: &Model,
        inputs: &'scope TensorSet,
        outputs: &'scope mut TensorSet,
    ) -> Scheduled<(&'scope TensorSet, &'scope mut TensorSet)> {
        self.track(unit.execute_payload(model, (inputs, outputs), |(i, o)| (&**i, &**o)))
    }

    /// Remembers an accepted request, so that the scope waits for it.
    fn track<T: super::Payload + 'scope>(&self, scheduled: Scheduled<T>) -> Scheduled<T> {
        scheduled.map(|mut request| {
            // `T` borrows for 'scope, so the request cannot outlive the scope, which
            // holds the unit and the keep-alive handles until after `wait_all`.
            let (unit, keep) = request.detach_to_scope();
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.push(Record {
                unit,
                seq: request.seq(),
                _keep: keep,
            });
            request
        })
    }

    /// Waits for every request of the scope (see [`scope`]'s `# Aborts`).
    fn wait_all(&self) {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        for Record { unit, seq, .. } in &pending {
            let (unit, seq) = (unit, *seq);
            // `is_completed` falls back on the queue's last completed number when libnrt
            // cannot answer for `seq`.
            if let Err(error) = unit.wait(seq) {
                // Not `eprintln!`, which panics if stderr fails: unwinding from here would
                // end the borrows as surely as returning.
                let _ = writeln!(
                    std::io::stderr(),
                    "neuron-rt: cannot observe completion of request {seq} on {unit} ({error}); \
                     it may still access memory borrowed by an async scope, so the process aborts"
                );
                std::process::abort();
            }
        }
        // Every request is done: units, models and tensors may go now.
        drop(pending);
    }
}

impl std::fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pending = self.pending.lock().map_or(0, |p| p.len());
        f.debug_struct("Scope").field("requests", &pending).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{Placement, Runtime};

    /// The counted handle is made from the request's raw pointer to the unit, which
    /// must be allowed to reach the `Arc`'s counts: Miri (Stacked Borrows) checks that,
    /// with the in-process simulator: `cargo +nightly miri test -p neuron-rt --lib scope`.
    #[test]
    fn a_scoped_request_hands_out_a_counted_handle_to_its_unit() {
        let rt = Runtime::builder()
            .library(nrt_sim::library())
            .build()
            .unwrap();
        let t = rt
            .allocate_tensor(Placement::Device, Some(0), 16, "t")
            .unwrap();
        let unit = rt.tensor_op_unit(0, 0).unwrap();
        let data = [1u32, 2, 3, 4];
        let escaped = scope(|s| {
            let request = s.write(&unit, &t, 0, &data).unwrap();
            // A counted handle made from the request's pointer to the scope's unit.
            let same = request.unit();
            assert_eq!(same.xu_id(), unit.xu_id());
            request.wait().unwrap();
            same
        });
        drop(unit);
        // The handle outlives the scope (and its record of the unit) on its own count.
        assert_eq!(escaped.core(), 0);
        assert_eq!(escaped.last_completed().unwrap(), escaped.last_submitted());
    }
}
