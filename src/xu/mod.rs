//! The async API (libnrt's `nrta_*`, v3): requests scheduled on execution units.
//!
//! A NeuronCore has several execution units (XUs), each a queue that runs its requests
//! one at a time in submission order: one COMPUTE queue (model executions), two
//! TENSOR_OP queues (host<->device transfers, tensor copies) and three COLLECTIVES
//! queues. An [`ExecUnit`] is a handle to one of them. Scheduling never blocks: it
//! returns a [`Request`] at once (or a [`Rejected`] with the payload handed back, e.g.
//! when the queue is full), and the request's own status is checked by
//! [`Request::wait`].
//!
//! The vendor's advice is to keep 2-3 requests queued on every unit so that it never
//! idles; [`Pipeline`] does that for a stream of jobs.
//!
//! # Ownership
//!
//! libnrt reads and writes the memory of a request until it completes, long after the
//! schedule call returned. So a request *owns* that memory: the tensor sets of an
//! execution, the host buffer of a write or read, the status slot, and handles to the
//! model and tensors. `wait` hands the payload back. Dropping a request waits for it;
//! leaking one (`mem::forget`) leaks its memory rather than freeing it under the
//! device. No allocation happens per request once a unit is warm.
//!
//! # Ordering across units
//!
//! Requests on one unit run in order. Across units (a TENSOR_OP write feeding a COMPUTE
//! execution, say) nothing is ordered: schedule the consumer only after the producer
//! has completed. Double buffering keeps both units busy anyway:
//!
//! ```no_run
//! # fn main() -> neuron_rt::Result<()> {
//! use neuron_rt::{Runtime, TensorSet};
//!
//! let rt = Runtime::new()?;
//! let model = rt.load_model_file("model.neff")?;
//! let core = model.core().unwrap_or(0);
//! let (compute, copy_in) = (rt.compute_unit(core)?, rt.tensor_op_unit(core, 0)?);
//! let batches: Vec<Vec<f32>> = vec![vec![0.5; 6]; 8];
//!
//! // Two sets of (inputs, outputs): one is being executed while the other is filled.
//! let mut free: Vec<(TensorSet, TensorSet)> = (0..2)
//!     .map(|_| Ok((model.allocate_inputs()?, model.allocate_outputs()?)))
//!     .collect::<neuron_rt::Result<_>>()?;
//! let mut running = None;
//! for batch in batches {
//!     let (inputs, outputs) = free.pop().expect("two sets, at most one running");
//!     let input = inputs.get("a").expect("model input `a`").clone();
//!     // Producer: the write runs while the previous execution is still on the device.
//!     let write = copy_in.write(&input, 0, batch)?;
//!     let _buffer = write.wait()?; // the consumer starts only after its producer completed
//!     let next = compute.execute(&model, inputs, outputs)?;
//!     if let Some(previous) = running.replace(next) {
//!         let (inputs, outputs): (TensorSet, TensorSet) = neuron_rt::Request::wait(previous)?;
//!         // ... read `outputs` (or schedule a TENSOR_OP read) ...
//!         free.push((inputs, outputs));
//!     }
//! }
//! if let Some(last) = running {
//!     last.wait()?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Version
//!
//! Everything here needs the v3 async API (runtime library >= 2.31,
//! [`Capabilities::ASYNC_V3`](crate::Capabilities::ASYNC_V3)). With an older library,
//! creating a unit fails with [`Error::Unsupported`](crate::Error::Unsupported); the v2
//! functions of a 2.30 library have other signatures and are never called.

mod future;
mod pipeline;
mod request;
mod seq;
mod slots;
mod unit;
mod wait;

pub use future::RequestFuture;
pub use pipeline::{DEFAULT_DEPTH, Pipeline};
pub use request::{ExecSets, HostBuffer, Payload, Rejected, Request, Scheduled};
pub use seq::SeqId;
pub use unit::{ExecUnit, RetryPolicy, XuKind};
