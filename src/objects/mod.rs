//! The owned libnrt objects, one layer above the raw calls ([`raw`](crate::raw)): the
//! [`Runtime`] (`nrt_init` / `nrt_close`) with what it reports and offers
//! ([`Version`], [`InstanceInfo`], [`MemoryStats`], [`Capabilities`]), loaded
//! [`Model`]s, [`Tensor`]s (device, host or virtual memory; over a caller's buffer;
//! typed for a model tensor) and [`TensorSet`]s, and what they share: the lock over host
//! memory libnrt copies through, and the stack room `nrt_execute` needs.
//!
//! Files: `info` (what a runtime reports), `capabilities` (what the loaded library
//! offers), `runtime` (the builder and the handle), `linked` (feature `link`), `logging`
//! (what runtime start and model loads log), `stack` (stack room for `nrt_execute`),
//! `host_lock` (the host-memory lock), `attached_buffer`, `tensor`, `buffer` (tensors
//! over caller-owned buffers), `typed` (a tensor's model dtype and shape),
//! `tensor_set`, `model`.

pub(crate) mod attached_buffer;
pub(crate) mod buffer;
pub(crate) mod capabilities;
pub(crate) mod host_lock;
pub(crate) mod info;
#[cfg(feature = "link")]
pub(crate) mod linked;
pub(crate) mod logging;
pub(crate) mod model;
pub(crate) mod runtime;
pub(crate) mod stack;
pub(crate) mod tensor;
pub(crate) mod tensor_set;
pub(crate) mod typed;

pub use capabilities::Capabilities;
pub use info::{InstanceInfo, MemoryStats, Version};
pub use model::{Model, ModelInfo, TensorInfo, TensorUsage};
pub use runtime::{Framework, Runtime, RuntimeBuilder, VISIBLE_CORES_VAR};
pub use stack::{EXEC_STACK_NEEDED, HELPER_STACK};
pub use tensor::{Placement, Tensor};
pub use tensor_set::TensorSet;
