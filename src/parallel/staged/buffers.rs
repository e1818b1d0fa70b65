//! [`Buffers`]: what one job needs besides its requests (device sets, the tensors bound
//! in them, host input and output buffers), reused job after job by the slots of a
//! ring and by the synchronous path of replicas.

use super::host::{HostInputs, HostOutputs};
use crate::error::{Error, Result};
use crate::objects::{Model, Tensor, TensorSet};
use crate::xu::ExecSets;

pub(crate) struct Buffers {
    /// Device sets; `None` while an execution owns them (or if one lost them).
    pub(crate) sets: Option<ExecSets>,
    /// The tensors of `sets`, in the model's input and output order.
    pub(crate) in_tensors: Vec<Tensor>,
    pub(crate) out_tensors: Vec<Tensor>,
    /// One host buffer per input and output, each of the tensor's size (empty while a
    /// request owns it, or if one lost it).
    pub(crate) host_in: Vec<Vec<u8>>,
    pub(crate) host_out: Vec<Vec<u8>>,
}

impl Buffers {
    /// Empty buffers for `model`: nothing on the device yet.
    pub(crate) fn new(model: &Model) -> Buffers {
        let (n_in, n_out) = (model.inputs().len(), model.outputs().len());
        Buffers {
            sets: None,
            in_tensors: Vec::with_capacity(n_in),
            out_tensors: Vec::with_capacity(n_out),
            host_in: Vec::with_capacity(n_in),
            host_out: Vec::with_capacity(n_out),
        }
    }

    /// Makes sure there are device sets and full-size host buffers: allocates them the
    /// first time (and again only if a failure lost them).
    pub(crate) fn ensure(&mut self, model: &Model) -> Result<()> {
        if self.sets.is_none() {
            let (inputs, outputs) = (model.allocate_inputs()?, model.allocate_outputs()?);
            let pick = |set: &TensorSet, name: &str| {
                set.get(name).cloned().ok_or_else(|| Error::MissingTensor {
                    model: model.label().to_owned(),
                    role: "staged",
                    tensor: name.to_owned(),
                })
            };
            self.in_tensors.clear();
            for info in model.inputs() {
                self.in_tensors.push(pick(&inputs, &info.name)?);
            }
            self.out_tensors.clear();
            for info in model.outputs() {
                self.out_tensors.push(pick(&outputs, &info.name)?);
            }
            self.sets = Some((inputs, outputs));
        }
        for (buffers, infos) in [
            (&mut self.host_in, model.inputs()),
            (&mut self.host_out, model.outputs()),
        ] {
            buffers.resize_with(infos.len(), Vec::new);
            for (buffer, info) in buffers.iter_mut().zip(infos) {
                if buffer.len() != info.size {
                    *buffer = vec![0; info.size];
                }
            }
        }
        Ok(())
    }

    pub(crate) fn inputs<'a>(&'a mut self, model: &'a Model) -> HostInputs<'a> {
        HostInputs {
            infos: model.inputs(),
            buffers: &mut self.host_in,
        }
    }

    pub(crate) fn outputs<'a>(&'a self, model: &'a Model) -> HostOutputs<'a> {
        HostOutputs {
            infos: model.outputs(),
            buffers: &self.host_out,
        }
    }
}
