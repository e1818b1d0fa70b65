//! Simulator model files: the builder, the payload format, and the computation.
//!
//! The file format is documented in the crate docs and `nrt-sim/MODEL_FORMAT.md`.
//!
//! Files: `types` (dtypes, ops, tensor specs, limits), `compute` (element-wise and matrix
//! kernels on byte buffers), `nn` (the decoder ops' kernels: gather, RMSNorm, rotary
//! positions, cache write, attention, ...) and `nn_ops` (their text form, shape rules and
//! dispatch), `collective` (collective ops: shapes, link cost, combining
//! every rank's contribution; the [`Exchange`] a run meets its group through), `program` (a checked model: payload text in and out, and its
//! run), `real` (real NEFFs in signature-only mode:
//! their signature as a program without ops, and the synthetic outputs), `file` (a whole
//! model file, own or real, as `nrt_load` reads it), `builder` (the
//! public ways to write and check model files). Each uses only the
//! ones listed before it.

mod builder;
mod collective;
mod compute;
mod file;
mod nn;
mod nn_ops;
mod program;
mod real;
mod types;

pub use builder::{ModelBuilder, build_model_from_text, describe_model};
pub(crate) use collective::{Exchange, Solo};
pub(crate) use file::load as read_model_file;
pub(crate) use program::Program;
pub use real::{DEVICE_TIME_ENTRY, is_signature_only, synthetic_output, with_device_time};
pub(crate) use types::TensorSpec;
pub use types::{BuildError, DType, Op};

#[cfg(test)]
mod nn_tests;
#[cfg(test)]
mod tests;
