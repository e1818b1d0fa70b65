//! A member's reusable input and output sets on one core, and the reads and writes a
//! scheduler does through them.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::generate::bundle::Bundle;
use crate::generate::chain::NEXT_IDS_OUTPUT;
use crate::generate::generator::LOGITS_OUTPUT;
use crate::xu::{ExecSets, ExecUnit, Request};

/// A member's reusable sets on this core. Each pair is in at most one queued execution
/// at a time (the request owns it until it completes).
pub(super) struct Sets {
    pub(super) member: String,
    pub(super) sets: Option<ExecSets>,
}

impl Sets {
    pub(super) fn new(bundle: &Bundle, member: &str, core: u32) -> Result<Sets> {
        let m = bundle.member(member).expect("planned member");
        Ok(Sets {
            member: member.to_owned(),
            sets: Some(m.sets(core, &[])?),
        })
    }

    pub(super) fn pair(&self) -> Result<&ExecSets> {
        self.sets.as_ref().ok_or_else(|| {
            Error::invalid(
                "sets",
                format!(
                    "the sets of `{}` were lost with a failed request",
                    self.member
                ),
            )
        })
    }

    /// Queues an execution of the member with these sets on `compute`.
    pub(super) fn schedule(
        &mut self,
        bundle: &Bundle,
        core: u32,
        compute: &ExecUnit,
    ) -> Result<Request<ExecSets>> {
        let model = bundle
            .member(&self.member)
            .and_then(|m| m.model(core))
            .expect("planned member on its core");
        let (inputs, outputs) = self.sets.take().ok_or_else(|| self.pair().unwrap_err())?;
        compute.execute(model, inputs, outputs).map_err(|r| {
            let (e, sets) = r.into_parts();
            self.sets = Some(sets);
            e
        })
    }

    /// Runs the member with these sets and waits (when nothing else is queued: a
    /// blocking call returns sooner than a request's completion event).
    pub(super) fn execute(&mut self, bundle: &Bundle, core: u32) -> Result<()> {
        let model = bundle
            .member(&self.member)
            .and_then(|m| m.model(core))
            .expect("planned member on its core");
        let (inputs, outputs) = self.sets.as_mut().ok_or_else(|| {
            Error::invalid(
                "sets",
                format!(
                    "the sets of `{}` were lost with a failed request",
                    self.member
                ),
            )
        })?;
        model.execute(inputs, outputs)
    }

    /// Waits for `request` (this member's) and takes its sets back.
    pub(super) fn complete(&mut self, request: Request<ExecSets>) -> Result<()> {
        let (sets, result) = request.wait_with_payload();
        self.sets = sets;
        result
    }

    /// Writes integer `values` into input `name` in its element type.
    pub(super) fn write(&self, name: &str, values: &[i64]) -> Result<()> {
        let t = self
            .pair()?
            .0
            .get(name)
            .ok_or_else(|| Error::MissingTensor {
                model: self.member.clone(),
                role: "input",
                tensor: name.to_owned(),
            })?;
        let bytes: Vec<u8> = match t.dtype() {
            Some(DType::I64 | DType::U64) => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            _ => values
                .iter()
                .flat_map(|&v| (v as i32).to_le_bytes())
                .collect(),
        };
        t.write_bytes(&bytes)
    }

    /// The next ids (device sampling).
    pub(super) fn read_ids(&self) -> Result<Vec<i64>> {
        let t = self.output(NEXT_IDS_OUTPUT)?;
        Ok(match t.dtype() {
            Some(DType::I64 | DType::U64) => t.to_vec::<i64>()?,
            _ => t.to_vec::<i32>()?.into_iter().map(i64::from).collect(),
        })
    }

    pub(super) fn read_logits(&self) -> Result<Vec<f32>> {
        self.output(LOGITS_OUTPUT)?.to_vec()
    }

    pub(super) fn output(&self, name: &str) -> Result<&crate::objects::Tensor> {
        self.pair()?
            .1
            .get(name)
            .ok_or_else(|| Error::MissingTensor {
                model: self.member.clone(),
                role: "output",
                tensor: name.to_owned(),
            })
    }
}
