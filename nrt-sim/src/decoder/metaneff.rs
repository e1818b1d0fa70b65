//! The `metaneff.pb` messages (protobuf, proto3, package `metaneff`) that the Neuron
//! frameworks store beside a NEFF, as far as they are known; hand-written structs (no
//! `.proto` is published, only generated Python) with `prost::Message` implemented by
//! hand in `codec.rs` (no derive macro: prost-derive and its crates stay out of every
//! build of the workspace).
//!
//! Field numbers: `MetaNeff` 1-6, `MetaTensor` 1-5, `ModelConfig` 1-5 and the
//! `DataType` values are encoded in the serialized descriptor of torch-neuronx's
//! generated `torch_neuronx/proto/metaneff_pb2.py`. `MetaTensor` 6 `checkpoint_key`,
//! 7 `type`, 8 `user_input_key`, `MetaNeff` 7-9 (`num_user_inputs`, `num_states`,
//! `num_weights`), `ModelConfig` 6 `return_aliases` and the `Type` values come from one
//! third-party reading of the native parser: single-source (see `MODEL_FORMAT.md`).

use std::collections::BTreeMap;

mod codec;

/// `metaneff.MetaTensor.DataType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i32)]
pub enum DataType {
    /// Not set.
    Undefined = 0,
    /// `f32`.
    Float = 1,
    /// `i32`.
    Int32 = 2,
    /// A byte.
    Byte = 3,
    /// A string.
    String = 4,
    /// A boolean.
    Bool = 5,
    /// `u8`.
    Uint8 = 6,
    /// `i8`.
    Int8 = 7,
    /// `u16`.
    Uint16 = 8,
    /// `i16`.
    Int16 = 9,
    /// `i64`.
    Int64 = 10,
    /// `f16`.
    Float16 = 12,
    /// `f64`.
    Double = 13,
    /// `bf16`.
    Bfloat16 = 14,
}

/// `metaneff.MetaTensor.Type`: the role of an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i32)]
pub enum TensorType {
    /// Not set (outputs).
    UndefinedType = 0,
    /// Given by the caller at each call.
    UserInput = 1,
    /// A state tensor (KV cache): bound once, updated in place through an aliased output.
    InputState = 2,
    /// A weight: bound once from the checkpoint (`checkpoint_key`).
    InputWeight = 3,
}

/// `metaneff.MetaTensor`: one input or output of the NEFF.
#[derive(Clone, Default, PartialEq)]
pub struct MetaTensor {
    /// The NEFF's tensor name.
    pub name: Vec<u8>,
    /// Dimensions.
    pub shape: Vec<i64>,
    /// Element type ([`DataType`]).
    pub data_type: i32,
    /// Constant content, if any.
    pub content: Vec<u8>,
    /// Whether the first dimension may vary per call.
    pub allow_dynamic_batch_size: bool,
    /// The key of a weight or state in the checkpoint (proto3 `optional`).
    pub checkpoint_key: Option<Vec<u8>>,
    /// The role of an input ([`TensorType`]).
    pub r#type: i32,
    /// The caller's name of a user input (proto3 `optional`).
    pub user_input_key: Option<Vec<u8>>,
}

/// `metaneff.ModelConfig`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelConfig {
    /// Field 1.
    pub num_infer: i64,
    /// Field 2.
    pub timeout: i64,
    /// Field 3.
    pub optimal_ncg_size: i64,
    /// Field 4.
    pub async_load: bool,
    /// Field 5.
    pub lazy_load: bool,
    /// Field 6 (single-source).
    pub return_aliases: bool,
}

/// `metaneff.MetaNeff`: the host-side description of one NEFF.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetaNeff {
    /// Inputs in the NEFF's order (user inputs, then states, then weights).
    pub input_tensors: Vec<MetaTensor>,
    /// Outputs in the NEFF's order.
    pub output_tensors: Vec<MetaTensor>,
    /// Load options.
    pub model_config: Option<ModelConfig>,
    /// The compiled graph (HLO), empty here.
    pub serialized_graph_def: Vec<u8>,
    /// Model name.
    pub name: Vec<u8>,
    /// Output index -> input index it updates in place.
    pub output_aliases_to: BTreeMap<i64, i64>,
    /// Number of user inputs (single-source field).
    pub num_user_inputs: i64,
    /// Number of state inputs (single-source field).
    pub num_states: i64,
    /// Number of weight inputs (single-source field).
    pub num_weights: i64,
}
