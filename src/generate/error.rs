//! [`BundleError`]: what can be wrong with a bundle's files, its aliases and roles, and
//! its weights; carried as [`Error::Bundle`](crate::Error::Bundle).

use std::path::PathBuf;

use super::bundle::Bucket;
use crate::dtype::DType;
use crate::error::ErrorKind;

/// A problem with a bundle: its manifest, a member's metadata (`metaneff.pb`), its
/// aliases and roles, or its weights (`.safetensors`). Every variant names the tensor
/// (or file) and the values involved. Found before anything runs on the device.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// A `metaneff.pb` could not be decoded, or does not describe its NEFF (a tensor it
    /// names that the NEFF lacks, an alias index out of range).
    #[error("metaneff {file}: {reason}")]
    Metaneff {
        /// The file (or a label for bytes given in code).
        file: String,
        /// What is wrong, with the values.
        reason: String,
    },

    /// An input and the output it aliases (a state tensor bound both ways) differ in
    /// size or element type, or a tensor bound to them does not fit them.
    #[error("model `{model}`: state input `{input}` / output `{output}`: {reason}")]
    AliasMismatch {
        /// The model (its load label) or member.
        model: String,
        /// The input's name.
        input: String,
        /// The output's name.
        output: String,
        /// What differs, with both values.
        reason: String,
    },

    /// A member takes a weight that the weight file does not hold.
    #[error("weight `{tensor}` (input of member `{member}`) is not in {}", file.display())]
    MissingWeight {
        /// The weight's checkpoint key.
        tensor: String,
        /// The weight file.
        file: PathBuf,
        /// The member that takes it.
        member: String,
    },

    /// A typed tensor (made for another model tensor) bound to a model tensor of
    /// another element type.
    #[error("tensor `{tensor}` holds {found} elements, but `{bound_as}` needs {expected}")]
    TensorDType {
        /// The tensor's name.
        tensor: String,
        /// The model tensor it was bound to.
        bound_as: String,
        /// That model tensor's element type.
        expected: DType,
        /// The tensor's element type.
        found: DType,
    },

    /// A weight in the file has another shape than the member input it is bound to.
    #[error("weight `{tensor}` in {} has shape {found:?}, the model input needs {expected:?}", file.display())]
    WeightShape {
        /// The weight's checkpoint key.
        tensor: String,
        /// The weight file.
        file: PathBuf,
        /// The model input's shape.
        expected: Vec<u64>,
        /// The shape in the file.
        found: Vec<u64>,
    },

    /// A weight in the file has another element type than the member input it is bound to.
    #[error("weight `{tensor}` in {} is {found}, the model input needs {expected}", file.display())]
    WeightDType {
        /// The weight's checkpoint key.
        tensor: String,
        /// The weight file.
        file: PathBuf,
        /// The model input's element type.
        expected: DType,
        /// The element type in the file (safetensors' name for it).
        found: String,
    },

    /// A `.safetensors` file is truncated or corrupt (header, offsets, length).
    #[error("weight file {} is corrupt or truncated: {reason}", file.display())]
    CorruptWeights {
        /// The weight file.
        file: PathBuf,
        /// What the reader found.
        reason: String,
    },

    /// A member input that nothing binds: not a declared user input, not a state, and
    /// not a weight in the file.
    #[error(
        "input `{input}` of member `{member}` is bound by nothing: not a user input, not a state (no alias), not a weight in the weight file"
    )]
    UnboundInput {
        /// The member.
        member: String,
        /// The input's name.
        input: String,
    },

    /// Two members take the same state tensor with different sizes or element types.
    #[error("state `{state}` of member `{member}`: {reason}")]
    StateConflict {
        /// The state's key.
        state: String,
        /// The member that disagrees with an earlier one.
        member: String,
        /// What differs, with both values.
        reason: String,
    },

    /// A bundle directory's `bundle.json` is missing, unreadable or malformed.
    #[error("bundle manifest {}: {reason}", file.display())]
    Manifest {
        /// The manifest file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A tensor-parallel bundle (its manifest's `tensor_parallel.world`) loaded other
    /// than as a rank of a world of that size: each rank computes only its part of the
    /// model, so with another world its collectives would sum the wrong parts.
    #[error(
        "bundle manifest {}: the bundle is written for a tensor-parallel world of {world} ranks, but is loaded {}",
        file.display(),
        loaded.map_or("without a rank (BundleBuilder::rank)".to_string(), |w| format!("as a rank of a world of {w}"))
    )]
    WorldMismatch {
        /// The manifest file.
        file: PathBuf,
        /// The world the bundle is written for.
        world: u32,
        /// The world of the rank it was loaded as (`None`: loaded without a rank).
        loaded: Option<u32>,
    },

    /// No member of the kind a call needs has a bucket that fits it (a prompt longer
    /// than the largest prefill bucket, more rows than the largest decode batch).
    #[error(
        "no {kind} member fits batch {batch} x {seq_len} tokens: the largest bucket is {}",
        largest.map_or("none (no such member)".to_string(), |b| format!("batch {} x {} tokens", b.batch, b.seq_len))
    )]
    NoBucket {
        /// The kind of member looked for (`prefill`, `decode (ids)`, ...).
        kind: String,
        /// Rows the call needs.
        batch: u32,
        /// Tokens per row the call needs.
        seq_len: u32,
        /// The largest bucket of that kind, if there is a member of it at all.
        largest: Option<Bucket>,
    },

    /// A sequence would not fit the cache: positions run from 0 to `ctx - 1`.
    #[error("{what} needs {needed} positions, the cache holds {ctx}")]
    ContextExceeded {
        /// What does not fit (`prompt of 200 tokens`).
        what: String,
        /// Positions needed.
        needed: u64,
        /// The bundle's context length.
        ctx: u32,
    },

    /// Every cache slot of the core is taken by a running generation.
    #[error("core {core}: all {slots} cache slots are in use (asked for {wanted})")]
    NoFreeSlot {
        /// The core.
        core: u32,
        /// Slots the cache has.
        slots: u32,
        /// Slots the call needed.
        wanted: u32,
    },

    /// A token id outside the vocabulary: in a prompt, or produced by the device.
    #[error("{origin}: token id {id} is outside the vocabulary (0..{vocab})")]
    TokenOutOfRange {
        /// Where the id came from (`prompt 0, position 3` or `member decode_b1_ids`).
        origin: String,
        /// The id.
        id: i64,
        /// The vocabulary size.
        vocab: u32,
    },
}

impl BundleError {
    /// The kind of [`Error::Bundle`](crate::Error::Bundle) carrying this error:
    /// [`ErrorKind::InvalidInput`] for [`TensorDType`](BundleError::TensorDType) (a
    /// tensor the caller bound), [`ErrorKind::InvalidData`] for every other variant (the
    /// bundle's files, manifest, metadata or weights do not fit together).
    ///
    /// ```
    /// use neuron_rt::ErrorKind;
    /// use neuron_rt::generate::WeightFile;
    ///
    /// let err = WeightFile::from_bytes("w.safetensors", vec![0xff; 12]).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InvalidData);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self {
            BundleError::TensorDType { .. } => ErrorKind::InvalidInput,
            BundleError::Metaneff { .. }
            | BundleError::AliasMismatch { .. }
            | BundleError::MissingWeight { .. }
            | BundleError::WeightShape { .. }
            | BundleError::WeightDType { .. }
            | BundleError::CorruptWeights { .. }
            | BundleError::UnboundInput { .. }
            | BundleError::StateConflict { .. }
            | BundleError::Manifest { .. } => ErrorKind::InvalidData,
            BundleError::WorldMismatch { .. } => ErrorKind::InvalidInput,
            BundleError::NoBucket { .. }
            | BundleError::ContextExceeded { .. }
            | BundleError::TokenOutOfRange { .. } => ErrorKind::InvalidInput,
            BundleError::NoFreeSlot { .. } => ErrorKind::Busy,
        }
    }
}

impl From<BundleError> for crate::Error {
    fn from(e: BundleError) -> crate::Error {
        crate::Error::Bundle(Box::new(e))
    }
}

impl crate::Error {
    /// The [`BundleError`] of an [`Error::Bundle`](crate::Error::Bundle), for matching.
    ///
    /// ```
    /// use neuron_rt::generate::{BundleError, WeightFile};
    ///
    /// let err = WeightFile::from_bytes("w.safetensors", vec![0xff; 12]).unwrap_err();
    /// assert!(matches!(err.as_bundle(), Some(BundleError::CorruptWeights { .. })));
    /// ```
    pub fn as_bundle(&self) -> Option<&BundleError> {
        match self {
            crate::Error::Bundle(e) => Some(e),
            _ => None,
        }
    }
}
