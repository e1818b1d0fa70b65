//! [`Stage`]: the three steps of a staged job.

use std::fmt;

/// One of the three steps a job of a [`StagedPipeline`](crate::StagedPipeline) or of
/// [`Replicas`](crate::Replicas) goes through, each on its own execution unit.
///
/// Named by [`Error::Stage`](crate::Error::Stage) when a job fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Filling the job's host input buffers (the caller's `write` closure) and writing
    /// them to the device input tensors, on TENSOR_OP queue 0.
    Write,
    /// Running the model, on the COMPUTE queue.
    Execute,
    /// Reading the device output tensors into host buffers, on TENSOR_OP queue 1, and
    /// handing them to the caller's `read` closure.
    Read,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Write => "write",
            Stage::Execute => "execute",
            Stage::Read => "read",
        })
    }
}
