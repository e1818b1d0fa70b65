//! [`MetaNeff`]: the compiler's sidecar metadata beside a NEFF (`metaneff.pb`): tensor
//! roles (user input, state, weight), checkpoint keys and output-to-input aliases.
//!
//! The file is a protobuf (proto3, package `metaneff`) whose `.proto` is not published;
//! the field numbers used here are those of the project's ABI notes (section 9):
//! `MetaNeff` 1 `input_tensors`, 2 `output_tensors`, 5 `name`, 6 `output_aliases_to`
//! (map output index -> input index); `MetaTensor` 1 `name`, 2 `shape`, 3 `data_type`,
//! 6 `checkpoint_key`, 7 `type`, 8 `user_input_key`. Every other field (the model
//! config, the serialized graph, a tensor's content) is skipped, as protobuf skips any
//! field it does not know, so files with more fields decode.

use std::collections::BTreeMap;
use std::path::Path;

use prost::Message;

use super::error::BundleError;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::objects::TensorInfo;

mod raw;

use raw::{RawMetaNeff, RawMetaTensor};

/// The name suffix the NKI / nkipy flow gives an input that the model updates in place:
/// input `cache.must_alias_input` is aliased by output `cache`.
pub const MUST_ALIAS_SUFFIX: &str = ".must_alias_input";

/// What a model input is for (metaneff's `MetaTensor.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TensorRole {
    /// Not recorded (0, and any value this crate does not know).
    Unspecified,
    /// Data the caller gives per call (1, `USER_INPUT`): ids, positions, masks.
    User,
    /// Device-resident state updated in place (2, `INPUT_STATE`): a KV cache.
    State,
    /// A weight from the checkpoint (3, `INPUT_WEIGHT`).
    Weight,
}

impl TensorRole {
    fn from_raw(raw: i32) -> TensorRole {
        match raw {
            1 => TensorRole::User,
            2 => TensorRole::State,
            3 => TensorRole::Weight,
            _ => TensorRole::Unspecified,
        }
    }

    fn raw(self) -> i32 {
        match self {
            TensorRole::Unspecified => 0,
            TensorRole::User => 1,
            TensorRole::State => 2,
            TensorRole::Weight => 3,
        }
    }
}

/// One tensor of a [`MetaNeff`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaTensor {
    /// The tensor's name (the NEFF's name for it).
    pub name: String,
    /// Its dimensions.
    pub shape: Vec<i64>,
    /// metaneff's element-type code (`data_type`: FLOAT 1, INT32 2, ... BFLOAT16 14);
    /// [`MetaTensor::dtype`] gives it as a [`DType`].
    pub data_type: i32,
    /// What the tensor is for (inputs only).
    pub role: TensorRole,
    /// The key of the weight or state in the checkpoint (`checkpoint_key`), if recorded.
    pub checkpoint_key: Option<String>,
}

/// metaneff `data_type` codes and this crate's element types.
const DATA_TYPES: [(i32, DType); 10] = [
    (1, DType::F32),
    (2, DType::I32),
    (3, DType::U8),
    (6, DType::U8),
    (7, DType::I8),
    (8, DType::U16),
    (9, DType::I16),
    (10, DType::I64),
    (12, DType::F16),
    (14, DType::BF16),
];

impl MetaTensor {
    /// A tensor described as `info` (name, shape, element type) with `role`.
    pub fn from_info(info: &TensorInfo, role: TensorRole) -> MetaTensor {
        MetaTensor {
            name: info.name.clone(),
            shape: info.shape.iter().map(|&d| i64::from(d)).collect(),
            data_type: DATA_TYPES
                .iter()
                .find(|(_, d)| *d == info.dtype)
                .map_or(0, |(code, _)| *code),
            role,
            checkpoint_key: None,
        }
    }

    /// The element type, when the code is one this crate has a type for (`None` for
    /// UNDEFINED, STRING, BOOL, DOUBLE and unknown codes).
    pub fn dtype(&self) -> Option<DType> {
        DATA_TYPES
            .iter()
            .find(|(code, _)| *code == self.data_type)
            .map(|(_, d)| *d)
    }
}

/// A NEFF's sidecar metadata (`metaneff.pb`), as far as loading needs it.
///
/// ```
/// use neuron_rt::generate::{MetaNeff, MetaTensor, TensorRole};
///
/// let mut meta = MetaNeff::default();
/// meta.inputs.push(MetaTensor { name: "cache".into(), shape: vec![4], data_type: 1,
///     role: TensorRole::State, checkpoint_key: None });
/// meta.outputs.push(MetaTensor { name: "cache.out".into(), shape: vec![4], data_type: 1,
///     role: TensorRole::Unspecified, checkpoint_key: None });
/// meta.output_aliases_to.insert(0, 0); // output 0 updates input 0 in place
/// let decoded = MetaNeff::decode(&meta.encode(), "example")?;
/// assert_eq!(decoded, meta);
/// # Ok::<(), neuron_rt::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetaNeff {
    /// The model's name (`name`), empty when not recorded.
    pub name: String,
    /// The inputs, in the compiler's order (the indices of `output_aliases_to`).
    pub inputs: Vec<MetaTensor>,
    /// The outputs, in the compiler's order.
    pub outputs: Vec<MetaTensor>,
    /// Output index -> the index of the input it updates in place.
    pub output_aliases_to: BTreeMap<usize, usize>,
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

impl MetaNeff {
    /// Decodes the bytes of a `metaneff.pb`; `label` names it in errors.
    ///
    /// # Errors
    ///
    /// [`BundleError::Metaneff`] if the bytes are not such a protobuf, or an alias
    /// index is negative or out of range of the tensors.
    pub fn decode(bytes: &[u8], label: &str) -> Result<MetaNeff> {
        let bad = |reason: String| -> Error {
            BundleError::Metaneff {
                file: label.to_owned(),
                reason,
            }
            .into()
        };
        let raw =
            RawMetaNeff::decode(bytes).map_err(|e| bad(format!("not a MetaNeff protobuf: {e}")))?;
        let tensor = |t: RawMetaTensor| MetaTensor {
            name: text(t.name),
            shape: t.shape,
            data_type: t.data_type,
            role: TensorRole::from_raw(t.r#type),
            checkpoint_key: (!t.checkpoint_key.is_empty()).then(|| text(t.checkpoint_key)),
        };
        let inputs: Vec<MetaTensor> = raw.input_tensors.into_iter().map(tensor).collect();
        let outputs: Vec<MetaTensor> = raw.output_tensors.into_iter().map(tensor).collect();
        let mut output_aliases_to = BTreeMap::new();
        for (out, inp) in raw.output_aliases_to {
            let (o, i) = match (usize::try_from(out), usize::try_from(inp)) {
                (Ok(o), Ok(i)) if o < outputs.len() && i < inputs.len() => (o, i),
                _ => {
                    return Err(bad(format!(
                        "output_aliases_to[{out}] = {inp} is out of range ({} outputs, {} inputs)",
                        outputs.len(),
                        inputs.len()
                    )));
                }
            };
            output_aliases_to.insert(o, i);
        }
        Ok(MetaNeff {
            name: text(raw.name),
            inputs,
            outputs,
            output_aliases_to,
        })
    }

    /// Reads and decodes a `metaneff.pb` file.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if it cannot be read; otherwise as [`MetaNeff::decode`].
    pub fn read(path: impl AsRef<Path>) -> Result<MetaNeff> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|error| Error::Io {
            path: path.to_path_buf(),
            error,
        })?;
        MetaNeff::decode(&bytes, &path.display().to_string())
    }

    /// The protobuf bytes, with the field numbers [`decode`](MetaNeff::decode) reads.
    pub fn encode(&self) -> Vec<u8> {
        let tensor = |t: &MetaTensor| RawMetaTensor {
            name: t.name.clone().into_bytes(),
            shape: t.shape.clone(),
            data_type: t.data_type,
            checkpoint_key: t.checkpoint_key.clone().unwrap_or_default().into_bytes(),
            r#type: t.role.raw(),
        };
        RawMetaNeff {
            input_tensors: self.inputs.iter().map(tensor).collect(),
            output_tensors: self.outputs.iter().map(tensor).collect(),
            name: self.name.clone().into_bytes(),
            output_aliases_to: self
                .output_aliases_to
                .iter()
                .map(|(&o, &i)| (o as i64, i as i64))
                .collect(),
        }
        .encode_to_vec()
    }

    /// The input named `name`.
    pub fn input(&self, name: &str) -> Option<&MetaTensor> {
        self.inputs.iter().find(|t| t.name == name)
    }

    /// `(input name, output name)` for every alias.
    pub fn alias_names(&self) -> impl Iterator<Item = (&str, &str)> {
        self.output_aliases_to
            .iter()
            .map(|(&o, &i)| (self.inputs[i].name.as_str(), self.outputs[o].name.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A field this reader does not know (tag 4: serialized_graph_def; tag 3 of a tensor:
    /// varint) and a tensor's content (tag 4) are skipped.
    #[test]
    fn unknown_fields_are_skipped() {
        let mut meta = MetaNeff::default();
        meta.inputs.push(MetaTensor {
            name: "w".into(),
            shape: vec![2, 3],
            data_type: 1,
            role: TensorRole::Weight,
            checkpoint_key: Some("layers.0.w".into()),
        });
        let mut bytes = meta.encode();
        // MetaNeff field 4 (bytes): "graph"; field 9 (varint) 7.
        bytes.extend_from_slice(&[4 << 3 | 2, 5, b'g', b'r', b'a', b'p', b'h', 9 << 3, 7]);
        let decoded = MetaNeff::decode(&bytes, "test").unwrap();
        assert_eq!(decoded, meta);
    }

    #[test]
    fn out_of_range_aliases_are_refused() {
        let mut meta = MetaNeff::default();
        meta.output_aliases_to.insert(0, 0);
        let err = MetaNeff::decode(&meta.encode(), "m.pb").unwrap_err();
        assert!(
            err.to_string().contains("output_aliases_to[0] = 0"),
            "{err}"
        );
        let err = MetaNeff::decode(&[0xff, 0xff], "m.pb").unwrap_err();
        assert!(
            matches!(err.as_bundle(), Some(BundleError::Metaneff { .. })),
            "{err}"
        );
    }
}
