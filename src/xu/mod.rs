//! The async API (libnrt's `nrta_*`, v3): requests scheduled on execution units.
//!
//! Everything here is also re-exported at the crate root.
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
//! model and tensors. `wait` hands the payload back. Dropping a request does not block:
//! what it owns is released in the background once the device completed it; leaking one (`mem::forget`) leaks its memory rather than freeing it under the
//! device. No allocation happens per request once a unit is warm. Alternatively,
//! requests made through a [`scope`] may borrow buffers and sets: the scope waits for
//! all of them before the borrows end.
//!
//! # Ordering across units
//!
//! Requests on one unit run in order. Across units (a TENSOR_OP write feeding a COMPUTE
//! execution, say) nothing is ordered: schedule the consumer only after the producer
//! has completed. Double buffering keeps both units busy anyway:
//!
//! ```
//! use neuron_rt::{ExecSets, Request, Runtime};
//! use neuron_rt::sim::{DType, ModelBuilder, Op};
//!
//! // y = 2 x, on f32 [4]. On hardware: `Runtime::new()?` and `load_model_file`.
//! let neff = ModelBuilder::new("double")
//!     .input("x", DType::F32, &[4])
//!     .output("y", DType::F32, &[4])
//!     .op(Op::ScaleBias { input: "x".into(), scale: 2.0, bias: 0.0, out: "y".into() })
//!     .build()
//!     .unwrap();
//! let rt = Runtime::builder().simulator().build()?;
//! let model = rt.load_model(&neff)?;
//! let core = model.core().unwrap_or(0);
//! let compute = rt.compute_unit(core)?;
//! let (copy_in, copy_out) = (rt.tensor_op_unit(core, 0)?, rt.tensor_op_unit(core, 1)?);
//!
//! // Two pairs of (inputs, outputs): one executes while the other is being filled.
//! let mut free: Vec<ExecSets> = (0..2)
//!     .map(|_| Ok((model.allocate_inputs()?, model.allocate_outputs()?)))
//!     .collect::<neuron_rt::Result<_>>()?;
//! let mut running: Option<Request<ExecSets>> = None;
//! let mut results = Vec::new();
//! for batch in 0..4 {
//!     let (inputs, outputs) = free.pop().expect("two pairs, at most one running");
//!     let x = inputs.get("x").expect("model input").clone();
//!     // Producer on TENSOR_OP: runs while the previous execution is on the device.
//!     let written = copy_in.write(&x, 0, vec![batch as f32; 4])?;
//!     written.wait()?; // the consumer is scheduled only after its producer completed
//!     let next = compute.execute(&model, inputs, outputs)?;
//!     if let Some(previous) = running.replace(next) {
//!         let (inputs, outputs) = previous.wait()?;
//!         let y = outputs.get("y").expect("model output");
//!         results.push(copy_out.read(y, 0, vec![0.0f32; 4])?.wait()?[0]);
//!         free.push((inputs, outputs));
//!     }
//! }
//! let (_, outputs) = running.take().expect("the last batch").wait()?;
//! let y = outputs.get("y").expect("model output");
//! results.push(copy_out.read(y, 0, vec![0.0f32; 4])?.wait()?[0]);
//! assert_eq!(results, [0.0, 2.0, 4.0, 6.0]);
//! # Ok::<(), neuron_rt::Error>(())
//! ```
//!
//! # Version
//!
//! Everything here needs the v3 async API (runtime library >= 2.31,
//! [`Capabilities::ASYNC_V3`](crate::Capabilities::ASYNC_V3)). With an older library,
//! creating a unit fails with [`Error::Unsupported`](crate::Error::Unsupported); the v2
//! functions of a 2.30 library have other signatures and are never called.

mod admission;
mod create;
mod detached;
mod eventfd;
mod events;
mod failed;
mod future;
mod kind;
mod near_end;
mod payload;
mod pipeline;
mod queue;
mod request;
mod retry;
mod scope;
mod seq;
mod slots;
mod timing;
#[cfg(feature = "tokio")]
mod tokio_events;
mod unit;
mod wait;

pub use admission::{DEFAULT_CAPACITY, Submit};
pub use failed::Failed;
pub(crate) use future::CompletionWatch;
pub use future::{Completion, RequestFuture};
pub use kind::XuKind;
pub(crate) use payload::sealed::{Detached, Sealed, SealedBuffer};
pub use payload::{ExecSets, HostBuffer, Payload};
pub use pipeline::{DEFAULT_DEPTH, Pipeline, PipelineStream, Submitted};
pub use queue::ExecUnit;
pub(crate) use queue::{UnitInner, UnitRegistry};
pub use request::{Rejected, Request, Scheduled};
pub use retry::RetryPolicy;
pub use scope::{Scope, scope};
pub use seq::SeqId;
