//! One job through write -> execute -> read with the synchronous API (`nrt_tensor_write`,
//! `nrt_execute`, `nrt_tensor_read`): the path of `Replicas::execute`.

use super::buffers::Buffers;
use super::host::{HostInputs, HostOutputs};
use super::stage::Stage;
use crate::error::{Error, Result};
use crate::objects::Model;

/// Runs one job of `model` in `bufs`; the error names the stage that failed.
pub(crate) fn execute_sync<T>(
    model: &Model,
    bufs: &mut Buffers,
    write: impl FnOnce(&mut HostInputs<'_>) -> Result<()>,
    read: impl FnOnce(&HostOutputs<'_>) -> Result<T>,
) -> std::result::Result<T, (Stage, Error)> {
    let at = |stage: Stage| move |error: Error| (stage, error);
    bufs.ensure(model).map_err(at(Stage::Write))?;
    write(&mut bufs.inputs(model)).map_err(at(Stage::Write))?;
    for (tensor, data) in bufs.in_tensors.iter().zip(&bufs.host_in) {
        tensor.write_at(0, data).map_err(at(Stage::Write))?;
    }
    let Some((inputs, outputs)) = bufs.sets.as_mut() else {
        return Err((
            Stage::Execute,
            Error::invalid("sets", "the job's tensor sets are missing"),
        ));
    };
    model.execute(inputs, outputs).map_err(at(Stage::Execute))?;
    for (tensor, data) in bufs.out_tensors.iter().zip(&mut bufs.host_out) {
        tensor.read_at(0, data).map_err(at(Stage::Read))?;
    }
    read(&bufs.outputs(model)).map_err(at(Stage::Read))
}
