//! [`NeffWriter`]: NEFF files in the compiler's container format, with a signature and
//! no instructions (for tests, simulators and examples; no vendor file needed).

use crate::dtype::DType;
use crate::error::{NeffError, Result};
use crate::graph::{TensorSpec, check_name};
use crate::header::{Header, Packaging, wrap};
use crate::{INFO_JSON, KELF_JSON, NEFF_JSON};
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use std::io::Write;

/// Writes a NEFF: header (packaging version 2 with MD5 by default, or 1 with SHA-256)
/// and a gzip'd tar holding `neff.json` (a TVM-style graph: input nodes, one compiled
/// node with the outputs, `attrs.shape` / `attrs.dltype`, and
/// `metadata.signatures.default`), `info.json` and `kelf-0.json`, laid out as the Neuron
/// compiler lays them out. The output is deterministic (no timestamps).
///
/// ```
/// use neuron_neff::{DType, Neff, NeffWriter, Packaging};
/// let bytes = NeffWriter::new("two-core")
///     .input("x", DType::BF16, &[8, 128])
///     .output("y", DType::BF16, &[8, 128])
///     .cores(2)
///     .packaging(Packaging::V1)
///     .build()?;
/// let neff = Neff::parse(&bytes)?;
/// assert_eq!((neff.cores(), neff.header().packaging), (2, Packaging::V1));
/// # Ok::<(), neuron_neff::NeffError>(())
/// ```
#[derive(Clone, Debug)]
pub struct NeffWriter {
    name: String,
    packaging: Packaging,
    cores: u32,
    inputs: Vec<(String, DType, Vec<u32>)>,
    outputs: Vec<(String, DType, Vec<u32>)>,
    target: String,
    tool_version: String,
    build_version: String,
    uuid: [u8; 16],
    signature_outputs: bool,
    extra: Vec<(String, Vec<u8>)>,
}

impl NeffWriter {
    /// A NEFF named `name` (header byte 220 and `info.json`): packaging version 2, one
    /// core, target `trn1`, tool version `neuron-neff <version>`, no tensors.
    pub fn new(name: impl Into<String>) -> NeffWriter {
        NeffWriter {
            name: name.into(),
            packaging: Packaging::V2,
            cores: 1,
            inputs: Vec::new(),
            outputs: Vec::new(),
            target: "trn1".into(),
            tool_version: concat!("neuron-neff ", env!("CARGO_PKG_VERSION")).into(),
            build_version: String::new(),
            uuid: [0; 16],
            signature_outputs: false,
            extra: Vec::new(),
        }
    }

    /// Adds an input (`shape` empty for a scalar).
    pub fn input(
        mut self,
        name: impl Into<String>,
        dtype: impl Into<DType>,
        shape: &[u32],
    ) -> Self {
        self.inputs
            .push((name.into(), dtype.into(), shape.to_vec()));
        self
    }

    /// Adds an output (`shape` empty for a scalar).
    pub fn output(
        mut self,
        name: impl Into<String>,
        dtype: impl Into<DType>,
        shape: &[u32],
    ) -> Self {
        self.outputs
            .push((name.into(), dtype.into(), shape.to_vec()));
        self
    }

    /// NeuronCores the model needs (`num_tpb`; default 1).
    pub fn cores(mut self, cores: u32) -> Self {
        self.cores = cores;
        self
    }

    /// Packaging version (default [`Packaging::V2`], as the compiler writes).
    pub fn packaging(mut self, packaging: Packaging) -> Self {
        self.packaging = packaging;
        self
    }

    /// `kelf-0.json`'s target (default `trn1`).
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = target.into();
        self
    }

    /// `info.json`'s `tool_version` (the compiler version).
    pub fn tool_version(mut self, version: impl Into<String>) -> Self {
        self.tool_version = version.into();
        self
    }

    /// The header's build version text (byte 40; empty by default, as seen).
    pub fn build_version(mut self, version: impl Into<String>) -> Self {
        self.build_version = version.into();
        self
    }

    /// The header's uuid (byte 204; zeros by default).
    pub fn uuid(mut self, uuid: [u8; 16]) -> Self {
        self.uuid = uuid;
        self
    }

    /// Also list the outputs in `metadata.signatures.default.outputs` (the compiler
    /// leaves it empty, so readers take the outputs from the graph; default: empty).
    pub fn signature_outputs(mut self, yes: bool) -> Self {
        self.signature_outputs = yes;
        self
    }

    /// Adds another archive entry (`path` relative, e.g. `sg00/def.json`).
    pub fn entry(mut self, path: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        self.extra.push((path.into(), bytes.into()));
        self
    }

    /// Checks the model and writes the file.
    ///
    /// # Errors
    ///
    /// [`NeffError::Invalid`] for an empty model name, a tensor name that is empty,
    /// longer than 255 bytes or used twice, a dtype outside [`DType::ALL`], zero cores, an entry path that is empty,
    /// absolute or one of the three JSON entries; [`NeffError::TooLarge`] for a tensor
    /// above [`MAX_TENSOR_BYTES`](crate::MAX_TENSOR_BYTES).
    pub fn build(&self) -> Result<Vec<u8>> {
        if self.name.is_empty() || self.name.contains('\0') {
            return Err(NeffError::Invalid(format!(
                "model name {:?} must be non-empty without NUL",
                self.name
            )));
        }
        if self.cores == 0 {
            return Err(NeffError::Invalid("a model needs at least 1 core".into()));
        }
        let mut seen = HashSet::new();
        let mut specs = |list: &[(String, DType, Vec<u32>)]| -> Result<Vec<TensorSpec>> {
            list.iter()
                .map(|(name, dtype, shape)| {
                    check_name(name).map_err(NeffError::Invalid)?;
                    if !seen.insert(name.clone()) {
                        return Err(NeffError::Invalid(format!(
                            "tensor name {name:?} is used twice"
                        )));
                    }
                    if !DType::ALL.contains(dtype) {
                        return Err(NeffError::Invalid(format!(
                            "tensor {name:?} has dtype {dtype}, which a NEFF cannot name (it names {})",
                            DType::ALL.map(DType::name).join(", ")
                        )));
                    }
                    TensorSpec::new(name.clone(), *dtype, shape)
                })
                .collect()
        };
        let inputs = specs(&self.inputs)?;
        let outputs = specs(&self.outputs)?;
        for (path, _) in &self.extra {
            if path.is_empty()
                || path.starts_with('/')
                || [NEFF_JSON, INFO_JSON, KELF_JSON].contains(&path.as_str())
            {
                return Err(NeffError::Invalid(format!(
                    "extra entry path {path:?} must be relative and not a JSON entry the writer makes"
                )));
            }
        }
        let mut files: Vec<(String, Vec<u8>)> = vec![
            (NEFF_JSON.into(), to_json(&self.graph(&inputs, &outputs))),
            (INFO_JSON.into(), to_json(&self.info())),
            (KELF_JSON.into(), to_json(&self.kelf())),
        ];
        files.extend(self.extra.iter().cloned());
        let payload = gzip_tar(&files)?;
        let mut header = Header::new(self.packaging, &self.name);
        header.num_tpb = self.cores;
        header.requested_tpb = self.cores;
        header.uuid = self.uuid;
        header.build_version = self.build_version.clone();
        Ok(wrap(header, &payload))
    }

    fn graph(&self, inputs: &[TensorSpec], outputs: &[TensorSpec]) -> Value {
        let n_in = inputs.len();
        let mut nodes: Vec<Value> = inputs
            .iter()
            .map(|t| json!({"op": "null", "name": t.name, "inputs": []}))
            .collect();
        let names: Vec<&str> = outputs.iter().map(|t| t.name.as_str()).collect();
        nodes.push(json!({
            "op": "tvm_op",
            "name": "neuron_op_0",
            "attrs": {
                "func_name": "neuron_op_0",
                "kelf": KELF_JSON,
                "num_inputs": n_in.to_string(),
                "num_outputs": outputs.len().to_string(),
                "flatten_data": "0",
                "output_names": names,
            },
            "inputs": (0..n_in).map(|i| json!([i, 0, 0])).collect::<Vec<_>>(),
        }));
        let all: Vec<&TensorSpec> = inputs.iter().chain(outputs).collect();
        let sig = |list: &[TensorSpec]| -> Map<String, Value> {
            list.iter()
                .enumerate()
                .map(|(i, t)| {
                    let v = json!({"id": i, "dtype": t.dtype.as_str(), "shape": t.shape});
                    (t.name.clone(), v)
                })
                .collect()
        };
        let mut row_ptr: Vec<usize> = (0..=n_in).collect();
        row_ptr.push(n_in + outputs.len());
        json!({
            "nodes": nodes,
            "arg_nodes": (0..n_in).collect::<Vec<_>>(),
            "node_row_ptr": row_ptr,
            "heads": (0..outputs.len()).map(|i| json!([n_in, i, 0])).collect::<Vec<_>>(),
            "attrs": {
                "storage_id": ["list_int", (0..all.len()).collect::<Vec<_>>()],
                "shape": ["list_shape", all.iter().map(|t| &t.shape).collect::<Vec<_>>()],
                "dltype": ["list_str", all.iter().map(|t| t.dtype.as_str()).collect::<Vec<_>>()],
            },
            "metadata": {
                "signatures": {
                    "default": {
                        "inputs": sig(inputs),
                        "outputs": if self.signature_outputs { sig(outputs) } else { Map::new() },
                    }
                }
            }
        })
    }

    fn info(&self) -> Value {
        let mut per_node = vec![0u32; 64];
        per_node[0] = self.cores;
        json!({
            "tool_version": self.tool_version,
            "kelp_version": self.tool_version,
            "name": self.name,
            "num_tpb": self.cores,
            "num_tpb_requested": self.cores,
            "num_tpb_per_node": per_node,
        })
    }

    fn kelf(&self) -> Value {
        json!({
            "graphs": [{"definition": "sg00/def.json", "name": "sg00"}],
            "version": self.tool_version,
            "target": self.target,
        })
    }
}

fn to_json(v: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(v).expect("a Value with string keys always serializes")
}

/// A gzip'd tar of `files` (regular files, mode 0644, time 0).
fn gzip_tar(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>> {
    let invalid =
        |path: &str, e: std::io::Error| NeffError::Invalid(format!("archive entry {path:?}: {e}"));
    let gz = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (path, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, path, bytes.as_slice())
            .map_err(|e| invalid(path, e))?;
    }
    let gz = tar.into_inner().map_err(|e| invalid("end", e))?;
    let mut out = gz.finish().map_err(|e| invalid("gzip", e))?;
    out.flush().map_err(|e| invalid("gzip", e))?;
    Ok(out)
}
