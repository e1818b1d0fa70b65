//! Staged pipelines: write -> execute -> read on the three units of a core at once
//! ([`StagedPipeline`]), and the machinery [`Replicas`](crate::Replicas) runs on every
//! core.
//!
//! libnrt orders nothing across execution units (a consumer must be scheduled by the
//! host after its producer completed); this module is that host logic.

mod buffers;
mod driver;
mod host;
mod pipeline;
pub(crate) mod ring;
mod run;
mod stage;
mod stats;
mod sync;

pub(crate) use buffers::Buffers as SyncBuffers;
pub(crate) use driver::Driver;
pub use host::{HostInputs, HostOutputs};
pub use pipeline::{DEFAULT_STAGED_DEPTH, StagedPipeline};
pub use run::{Staged, StagedStream};
pub use stage::Stage;
pub use stats::CoreStats;
pub(crate) use sync::execute_sync;
