//! [`WeightFile`]: a `.safetensors` checkpoint, read into memory or memory-mapped, its
//! header checked once (offsets, lengths), its tensors viewed without a copy.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors};

use super::error::BundleError;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::objects::TensorInfo;

/// The file name of rank `rank`'s shard in a tensor-parallel checkpoint, relative to
/// the bundle directory: `weights/tp{rank}_sharded_checkpoint.safetensors` (the layout
/// neuronx-distributed-inference writes).
pub fn shard_file_name(rank: u32) -> String {
    format!("weights/tp{rank}_sharded_checkpoint.safetensors")
}

enum Storage {
    Bytes(Vec<u8>),
    Mapped(memmap2::Mmap),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Bytes(b) => b,
            Storage::Mapped(m) => m,
        }
    }
}

/// One tensor's place in the file.
struct Entry {
    dtype: Dtype,
    shape: Vec<u64>,
    /// Byte range in the whole file.
    start: usize,
    end: usize,
}

/// A `.safetensors` weight file: the tensors of a checkpoint by name, with their element
/// types and shapes; their bytes are viewed in place.
///
/// Open it with [`read`](WeightFile::read) (the whole file in memory: safe, costs one
/// copy of the file in host RAM) or [`map`](WeightFile::map) (memory-mapped: no copy,
/// the page cache serves the bytes; `unsafe`, see there). The header is checked when the
/// file is opened: a truncated or corrupt file is refused then, naming the file.
///
/// ```
/// use neuron_rt::generate::WeightFile;
///
/// // A file with one f32 [2] tensor, as the `safetensors` crate writes it.
/// let header = br#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
/// let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
/// bytes.extend_from_slice(header);
/// bytes.extend_from_slice(&[0, 0, 128, 63, 0, 0, 0, 64]); // 1.0, 2.0
/// let weights = WeightFile::from_bytes("w.safetensors", bytes)?;
/// let w = weights.get("w").unwrap();
/// assert_eq!((w.shape, w.data.len()), (&[2u64][..], 8));
/// # Ok::<(), neuron_rt::Error>(())
/// ```
pub struct WeightFile {
    path: PathBuf,
    storage: Storage,
    entries: BTreeMap<String, Entry>,
    data_bytes: u64,
}

/// One tensor of a [`WeightFile`]: its element type, shape and bytes (little-endian,
/// row-major, as the file stores them).
#[derive(Clone, Copy, Debug)]
pub struct WeightView<'a> {
    /// Its name (checkpoint key).
    pub name: &'a str,
    /// Its element type, when this crate has one for the file's (`None` for BOOL,
    /// F64, complex and the 4/6-bit and other 8-bit float formats).
    pub dtype: Option<DType>,
    /// The file's name for the element type (`"F32"`, `"BF16"`, ...).
    pub file_dtype: &'static str,
    /// Its dimensions.
    pub shape: &'a [u64],
    /// Its bytes.
    pub data: &'a [u8],
}

fn dtype_of(d: Dtype) -> (Option<DType>, &'static str) {
    match d {
        Dtype::F32 => (Some(DType::F32), "F32"),
        Dtype::F16 => (Some(DType::F16), "F16"),
        Dtype::BF16 => (Some(DType::BF16), "BF16"),
        Dtype::I64 => (Some(DType::I64), "I64"),
        Dtype::U64 => (Some(DType::U64), "U64"),
        Dtype::I32 => (Some(DType::I32), "I32"),
        Dtype::U32 => (Some(DType::U32), "U32"),
        Dtype::I16 => (Some(DType::I16), "I16"),
        Dtype::U16 => (Some(DType::U16), "U16"),
        Dtype::I8 => (Some(DType::I8), "I8"),
        Dtype::U8 => (Some(DType::U8), "U8"),
        Dtype::F8_E4M3 => (Some(DType::Fp8E4), "F8_E4M3"),
        Dtype::F8_E5M2 => (Some(DType::Fp8E5), "F8_E5M2"),
        Dtype::BOOL => (None, "BOOL"),
        Dtype::F64 => (None, "F64"),
        _ => (None, "another safetensors dtype"),
    }
}

impl WeightFile {
    /// Reads the whole file into memory and checks its header.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if it cannot be read; [`BundleError::CorruptWeights`] if it is not
    /// a whole `.safetensors` file.
    pub fn read(path: impl AsRef<Path>) -> Result<WeightFile> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|error| Error::Io {
            path: path.to_path_buf(),
            error,
        })?;
        WeightFile::new(path.to_path_buf(), Storage::Bytes(bytes))
    }

    /// Memory-maps the file (pages populated up front) and checks its header: no copy
    /// of the file in host memory; the kernel's page cache serves the bytes.
    ///
    /// # Safety
    ///
    /// Until the returned value is dropped, no process (this one included) may truncate
    /// the file or write to it: the mapping shows the file's current bytes, so a write
    /// changes weights under the views this crate hands out (Rust assumes them
    /// immutable), and a truncation makes any access to the lost pages raise `SIGBUS`,
    /// which kills the process. Checkpoints written once and then only read meet this;
    /// use [`WeightFile::read`] for a file that others may change.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if it cannot be opened or mapped; [`BundleError::CorruptWeights`]
    /// if it is not a whole `.safetensors` file.
    pub unsafe fn map(path: impl AsRef<Path>) -> Result<WeightFile> {
        let path = path.as_ref();
        let io = |error| Error::Io {
            path: path.to_path_buf(),
            error,
        };
        let file = File::open(path).map_err(io)?;
        // SAFETY: the caller promises that nobody truncates or writes the file while
        // the mapping (owned by the returned value) exists.
        let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }.map_err(io)?;
        WeightFile::new(path.to_path_buf(), Storage::Mapped(map))
    }

    /// A weight file from bytes already in memory; `label` names it in errors.
    ///
    /// # Errors
    ///
    /// [`BundleError::CorruptWeights`] if the bytes are not a whole `.safetensors` file.
    pub fn from_bytes(label: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<WeightFile> {
        WeightFile::new(label.into(), Storage::Bytes(bytes))
    }

    fn new(path: PathBuf, storage: Storage) -> Result<WeightFile> {
        let bytes = storage.bytes();
        let corrupt = |reason: String| -> Error {
            BundleError::CorruptWeights {
                file: path.clone(),
                reason,
            }
            .into()
        };
        let (header, metadata) = SafeTensors::read_metadata(bytes).map_err(|e| {
            corrupt(format!(
                "{e} (the file has {} bytes{})",
                bytes.len(),
                header_note(bytes)
            ))
        })?;
        let base = 8 + header;
        let mut entries = BTreeMap::new();
        let mut data_bytes = 0u64;
        for (name, info) in metadata.tensors() {
            let (start, end) = info.data_offsets;
            let (Some(start), Some(end)) = (base.checked_add(start), base.checked_add(end)) else {
                return Err(corrupt(format!(
                    "tensor `{name}` has offsets past the file"
                )));
            };
            if start > end || end > bytes.len() {
                return Err(corrupt(format!(
                    "tensor `{name}` spans bytes {start}..{end}, the file has {}",
                    bytes.len()
                )));
            }
            data_bytes += (end - start) as u64;
            entries.insert(
                name,
                Entry {
                    dtype: info.dtype,
                    shape: info.shape.iter().map(|&d| d as u64).collect(),
                    start,
                    end,
                },
            );
        }
        Ok(WeightFile {
            path,
            storage,
            entries,
            data_bytes,
        })
    }

    /// The tensor `name`.
    pub fn get(&self, name: &str) -> Option<WeightView<'_>> {
        let (name, e) = self.entries.get_key_value(name)?;
        let (dtype, file_dtype) = dtype_of(e.dtype);
        Some(WeightView {
            name,
            dtype,
            file_dtype,
            shape: &e.shape,
            data: &self.storage.bytes()[e.start..e.end],
        })
    }

    /// The tensors' names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The number of tensors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the file holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The file's path (or the label given to [`from_bytes`](WeightFile::from_bytes)).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file is memory-mapped ([`map`](WeightFile::map)).
    pub fn is_mapped(&self) -> bool {
        matches!(self.storage, Storage::Mapped(_))
    }

    /// The bytes of all tensors together.
    pub fn data_bytes(&self) -> u64 {
        self.data_bytes
    }

    /// The tensor under `key`, checked against the model input `info` it is bound to
    /// (`member` names the taker in errors): present, same element type (when the
    /// model's is known), same shape, same size.
    ///
    /// # Errors
    ///
    /// [`BundleError::MissingWeight`], [`BundleError::WeightDType`],
    /// [`BundleError::WeightShape`]; [`Error::SizeMismatch`] when the bytes differ
    /// from the input's size although the shape matches (an element type libnrt
    /// does not report).
    pub fn checked(&self, key: &str, info: &TensorInfo, member: &str) -> Result<WeightView<'_>> {
        let w = self.get(key).ok_or_else(|| BundleError::MissingWeight {
            tensor: key.to_owned(),
            file: self.path.clone(),
            member: member.to_owned(),
        })?;
        let model_known = !matches!(info.dtype, DType::Unknown | DType::Other(_));
        if model_known && w.dtype != Some(info.dtype) {
            return Err(BundleError::WeightDType {
                tensor: key.to_owned(),
                file: self.path.clone(),
                expected: info.dtype,
                found: w.file_dtype.to_owned(),
            }
            .into());
        }
        let expected: Vec<u64> = info.shape.iter().map(|&d| u64::from(d)).collect();
        if w.shape != expected.as_slice() {
            return Err(BundleError::WeightShape {
                tensor: key.to_owned(),
                file: self.path.clone(),
                expected,
                found: w.shape.to_vec(),
            }
            .into());
        }
        if w.data.len() != info.size {
            return Err(Error::SizeMismatch {
                tensor: key.to_owned(),
                what: "model input the weight is bound to",
                expected: info.size,
                actual: w.data.len(),
            });
        }
        Ok(w)
    }
}

/// What the first 8 bytes announce, for the message about a corrupt file.
fn header_note(bytes: &[u8]) -> String {
    match bytes.get(..8) {
        Some(n) => format!(
            ", its header announces {} header bytes",
            u64::from_le_bytes(n.try_into().expect("8 bytes"))
        ),
        None => String::new(),
    }
}

impl std::fmt::Debug for WeightFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeightFile")
            .field("path", &self.path)
            .field("tensors", &self.entries.len())
            .field("data_bytes", &self.data_bytes)
            .field("mapped", &self.is_mapped())
            .finish()
    }
}
