//! [`Stage`]: the three steps of a staged job.

use std::fmt;

/// One of the three steps a job of a [`StagedPipeline`](crate::StagedPipeline) or of
/// [`Replicas`](crate::Replicas) goes through, each on its own execution unit.
///
/// Named by [`Error::Stage`](crate::Error::Stage) when a job fails.
///
/// ```
/// # use neuron_rt::{Runtime, StagedPipeline};
/// # let neff = neuron_rt::sim::ModelBuilder::add_example(&[2, 3]).build().unwrap();
/// # let rt = Runtime::builder().simulator().build()?;
/// # let model = rt.load_model(&neff)?; // out = a + b on f32 [2, 3]
/// use neuron_rt::{Error, Stage};
///
/// let mut pipeline = StagedPipeline::new(&model)?;
/// let mut results = pipeline.run(
///     [1.0f32],
///     |_, inputs| inputs.write("a", &[1.0f32; 2]), // too short: a has 6 elements
///     |_, _| Ok(()),
/// );
/// let error = results.next().unwrap().unwrap_err();
/// assert!(matches!(error, Error::Stage { stage: Stage::Write, job: 0, .. }));
/// assert!(error.to_string().starts_with("job 0 failed at the write stage on core"));
/// # Ok::<(), neuron_rt::Error>(())
/// ```
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
