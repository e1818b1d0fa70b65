//! [`ModelPool::infer`](super::ModelPool::infer)'s path: host inputs checked, a lease,
//! inputs written (small ones synchronously, large ones on the copy's TENSOR_OP queue
//! 0), the execution, outputs read back (large ones on TENSOR_OP queue 1), and a request
//! refused by a dead unit before it ran sent to another copy.

use std::sync::atomic::Ordering;

use super::dispatch::Shared;
use super::lease::{Lease, LeaseBuf, Ran};
use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::io::run::check_inputs;
use crate::io::{Input, Output, Outputs};
use crate::objects::Tensor;
use crate::profiling::spans::{self, Span};
use crate::xu::ExecUnit;

/// How a step on a lease ended.
enum Step {
    Done(Lease),
    /// A dead unit refused it before anything ran (its lease released): try another
    /// copy.
    Refused,
    Failed(Error),
}

impl Shared {
    pub(super) async fn infer(&self, inputs: &[(&str, Input<'_>)]) -> Result<Outputs> {
        let span = spans::debug_span!(
            "neuron_rt.pool.infer",
            pool = %self.label,
            copy = tracing::field::Empty,
            core = tracing::field::Empty,
            admission_wait = tracing::field::Empty,
        );
        let result = spans::instrument(span.clone(), self.infer_in(inputs, &span)).await;
        spans::record_result(&span, &result);
        result
    }

    /// [`infer`](Self::infer) inside its span, which gets the copy chosen (the last one,
    /// when a dead copy made it re-route) and how long the admission took.
    async fn infer_in(&self, inputs: &[(&str, Input<'_>)], span: &Span) -> Result<Outputs> {
        // Held across re-routing, so a shutdown waits for the whole request.
        let _entry = self.enter()?;
        if let Err(error) = check_inputs(&self.label, &self.inputs, inputs) {
            return Err(self.reject(error));
        }
        let started = spans::start(span);
        // Each pass either answers or takes a dead copy out of the rotation (dispatch
        // then fails once none is left).
        loop {
            let lease = self.lease_in(None, None).await?;
            spans::record_since(span, "admission_wait", started);
            span.record("copy", lease.assigned.copy.index as u64);
            span.record("core", lease.assigned.copy.core);
            let lease = match self.write_inputs(lease, inputs).await {
                Step::Done(lease) => lease,
                Step::Refused => continue,
                Step::Failed(error) => return Err(error),
            };
            match lease.run().await {
                Ran::Done(lease) => return self.read_outputs(lease).await,
                Ran::Refused(..) => continue,
                Ran::Failed(failed) => return Err(failed.into_error()),
            }
        }
    }

    /// Writes every input into the lease's input set.
    async fn write_inputs(&self, mut lease: Lease, inputs: &[(&str, Input<'_>)]) -> Step {
        for (name, input) in inputs {
            let Some(tensor) = lease.inputs().get(name).cloned() else {
                let error = self.missing("input", name);
                lease.count_failure(&error);
                return Step::Failed(error);
            };
            if input.len_bytes() < self.large_transfer {
                if let Err(error) = input.write_to(&tensor) {
                    lease.count_failure(&error);
                    return Step::Failed(error);
                }
                continue;
            }
            let writer = lease.writer().clone();
            let buf = input.as_bytes().to_vec();
            lease = match transfer(&writer, &tensor, buf, lease, Direction::Write).await {
                Ok(done) => done.lease,
                Err(step) => return step,
            };
        }
        Step::Done(lease)
    }

    /// Reads every output from the lease's output set; the lease is released after.
    async fn read_outputs(&self, mut lease: Lease) -> Result<Outputs> {
        let mut items = Vec::with_capacity(self.outputs.len());
        for info in &self.outputs {
            let Some(tensor) = lease.outputs().get(&info.name).cloned() else {
                return Err(self.missing("output", &info.name));
            };
            if info.size < self.large_transfer {
                items.push(Output::read_from(&tensor, info)?);
                continue;
            }
            let reader = lease.reader().clone();
            // Straight into the output's 8-byte words when the size allows.
            let (output, next) = if info.size.is_multiple_of(8) {
                let words = vec![0u64; info.size / 8];
                let done = read(&reader, &tensor, words, lease).await?;
                (Output::from_words(info, done.buf), done.lease)
            } else {
                let done = read(&reader, &tensor, vec![0u8; info.size], lease).await?;
                let mut output = Output::zeroed(info);
                output.bytes_mut().copy_from_slice(&done.buf);
                (output, done.lease)
            };
            items.push(output);
            lease = next;
        }
        drop(lease);
        Ok(crate::Outputs::new(items))
    }

    fn missing(&self, role: &'static str, name: &str) -> Error {
        Error::MissingTensor {
            model: self.label.clone(),
            role,
            tensor: name.to_owned(),
        }
    }
}

#[derive(Clone, Copy)]
enum Direction {
    Write,
    Read,
}

/// An output read on `unit`; a failure is this request's (the execution already ran).
async fn read<E: Element>(
    unit: &ExecUnit,
    tensor: &Tensor,
    buf: Vec<E>,
    lease: Lease,
) -> Result<LeaseBuf<E>> {
    match transfer(unit, tensor, buf, lease, Direction::Read).await {
        Ok(done) => Ok(done),
        Err(Step::Failed(error)) => Err(error),
        Err(Step::Refused | Step::Done(_)) => Err(Error::invalid(
            "unit",
            format!("{unit} refused to read output `{}`", tensor.name()),
        )),
    }
}

/// One transfer between `buf` and `tensor` (a tensor of the lease's sets) on `unit`,
/// admitted with [`ExecUnit::submit`]; the request holds the lease meanwhile, so that
/// the sets are not reused before the device is done with them.
// The closure returns the crate's `Scheduled`, whose error hands the payload (the
// lease) back by value, as `ExecUnit::submit` requires; boxing it would cost an
// allocation per request.
#[allow(clippy::result_large_err)]
async fn transfer<E: Element>(
    unit: &ExecUnit,
    tensor: &Tensor,
    buf: Vec<E>,
    lease: Lease,
    direction: Direction,
) -> std::result::Result<LeaseBuf<E>, Step> {
    let payload = LeaseBuf { buf, lease };
    let scheduled = unit
        .submit(payload, |p| match direction {
            Direction::Write => unit.write_payload(tensor, 0, p),
            Direction::Read => unit.read_payload(tensor, 0, p),
        })
        .await;
    let request = match scheduled {
        Ok(request) => request,
        Err(rejected) => {
            let (error, payload) = rejected.into_parts();
            let lease = payload.lease;
            if error.is_fatal() {
                lease.assigned.copy.mark_dead(&error);
                if matches!(direction, Direction::Write) {
                    let counters = &lease.assigned.copy.counters;
                    counters.refused.fetch_add(1, Ordering::Relaxed);
                    return Err(Step::Refused);
                }
            }
            if matches!(direction, Direction::Write) {
                lease.count_failure(&error);
            } else if error.is_fatal() {
                lease.assigned.copy.mark_dead(&error);
            }
            return Err(Step::Failed(error));
        }
    };
    match request.completion().await {
        Ok(done) => Ok(done),
        Err(failed) => {
            let (error, payload) = failed.into_parts();
            let copy = match &payload {
                Some(payload) => &payload.lease.assigned.copy,
                // Completion could not be observed: the payload (and lease) leaked.
                None => return Err(Step::Failed(error)),
            };
            if matches!(direction, Direction::Write) {
                copy.counters.failed.fetch_add(1, Ordering::Relaxed);
            }
            if error.is_fatal() {
                copy.mark_dead(&error);
            }
            Err(Step::Failed(error))
        }
    }
}
