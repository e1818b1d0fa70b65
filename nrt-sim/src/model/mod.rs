//! Simulator model files: the builder, the payload format, and the computation.
//!
//! The file format is documented in the crate docs and `nrt-sim/MODEL_FORMAT.md`.
//!
//! Files: `types` (dtypes, ops, tensor specs, limits), `compute` (element-wise and matrix
//! kernels on byte buffers), `program` (a checked model: payload text in and out, and its
//! run), `builder` (the public ways to write and check model files). Each uses only the
//! ones listed before it.

mod builder;
mod compute;
mod program;
mod types;

pub use builder::{ModelBuilder, build_model_from_text, describe_model};
pub(crate) use program::Program;
pub(crate) use types::TensorSpec;
pub use types::{BuildError, DType, Op};

#[cfg(test)]
mod tests;
