//! The signature in `neff.json` (a TVM-style graph), and the fields of `info.json` and
//! `kelf-0.json`.
//!
//! Inputs come from `metadata.signatures.default.inputs` (`{name: {"id", "dtype",
//! "shape"}}`, ordered by id) when present, else from the graph's `arg_nodes`; outputs
//! from the signature's `outputs` when it lists any, else from the graph's `heads`
//! (names from the compiled node's `output_names`). A graph tensor's shape and dtype are
//! `attrs.shape[e]` / `attrs.dltype[e]` of its entry `e = node_row_ptr[node] + index`
//! (without `node_row_ptr`: every node before it counted with one entry, or its
//! `num_outputs` / `output_names` / heads for a compiled node).

use crate::dtype::DType;
use crate::error::{NeffError, Result};
use serde_json::Value;

/// Longest tensor name, in bytes (the C struct holds 256 with the NUL).
pub const MAX_TENSOR_NAME: usize = 255;
/// Largest tensor accepted, in bytes.
pub const MAX_TENSOR_BYTES: u64 = 1 << 40;
/// Most dimensions accepted.
pub const MAX_RANK: usize = 32;

/// One input or output of a NEFF's signature.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorSpec {
    /// Tensor name, as bound in a tensor set.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Dimensions (empty for a scalar).
    pub shape: Vec<u32>,
    /// Size in bytes: elements times the element size.
    pub byte_size: u64,
}

impl TensorSpec {
    /// A spec for `name`, checking the size (at most [`MAX_TENSOR_BYTES`]).
    ///
    /// # Errors
    ///
    /// [`NeffError::TooLarge`] for a larger tensor.
    pub fn new(name: impl Into<String>, dtype: DType, shape: &[u32]) -> Result<TensorSpec> {
        let name = name.into();
        let bytes = shape
            .iter()
            .try_fold(dtype.size() as u64, |acc, &d| acc.checked_mul(d as u64))
            .filter(|&b| b <= MAX_TENSOR_BYTES);
        let Some(byte_size) = bytes else {
            return Err(NeffError::TooLarge {
                what: format!("tensor `{name}` ({dtype} {shape:?})"),
                size: u64::MAX,
                limit: MAX_TENSOR_BYTES,
            });
        };
        Ok(TensorSpec {
            name,
            dtype,
            shape: shape.to_vec(),
            byte_size,
        })
    }

    /// Number of elements (1 for a scalar).
    pub fn elements(&self) -> u64 {
        self.shape.iter().map(|&d| d as u64).product()
    }
}

/// A JSON document being read, for errors naming the entry and the field.
pub(crate) struct Doc<'a> {
    pub(crate) entry: &'a str,
    pub(crate) root: Value,
}

impl<'a> Doc<'a> {
    pub(crate) fn parse(entry: &'a str, bytes: &[u8]) -> Result<Doc<'a>> {
        let root = serde_json::from_slice(bytes).map_err(|e| NeffError::BadJson {
            entry: entry.into(),
            path: "$".into(),
            problem: e.to_string(),
        })?;
        Ok(Doc { entry, root })
    }

    pub(crate) fn err(&self, path: &str, problem: impl Into<String>) -> NeffError {
        NeffError::BadJson {
            entry: self.entry.into(),
            path: path.into(),
            problem: problem.into(),
        }
    }

    /// The string at `key` of the root object, if it is one.
    pub(crate) fn str_field(&self, key: &str) -> Option<String> {
        self.root.get(key)?.as_str().map(str::to_owned)
    }

    fn array<'v>(&self, v: &'v Value, path: &str) -> Result<&'v Vec<Value>> {
        v.as_array()
            .ok_or_else(|| self.err(path, format!("expected an array, found {}", kind(v))))
    }

    fn index(&self, v: &Value, path: &str) -> Result<usize> {
        v.as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                self.err(
                    path,
                    format!("expected a non-negative integer, found {}", kind(v)),
                )
            })
    }

    fn dtype(&self, v: &Value, path: &str) -> Result<DType> {
        let s = v
            .as_str()
            .ok_or_else(|| self.err(path, format!("expected a dtype string, found {}", kind(v))))?;
        DType::parse(s).ok_or_else(|| NeffError::UnknownDType {
            entry: self.entry.into(),
            path: path.into(),
            dtype: s.into(),
        })
    }

    fn shape(&self, v: &Value, path: &str) -> Result<Vec<u32>> {
        let dims = self.array(v, path)?;
        if dims.len() > MAX_RANK {
            return Err(self.err(
                path,
                format!("{} dimensions, more than {MAX_RANK}", dims.len()),
            ));
        }
        dims.iter()
            .enumerate()
            .map(|(i, d)| {
                d.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| {
                        self.err(
                            &format!("{path}[{i}]"),
                            format!("expected a dimension from 0 to {}, found {d}", u32::MAX),
                        )
                    })
            })
            .collect()
    }

    fn name(&self, v: &Value, path: &str) -> Result<String> {
        let s = v
            .as_str()
            .ok_or_else(|| self.err(path, format!("expected a name string, found {}", kind(v))))?;
        check_name(s).map_err(|p| self.err(path, p))?;
        Ok(s.to_owned())
    }

    fn spec(&self, name: String, dtype: DType, shape: Vec<u32>, path: &str) -> Result<TensorSpec> {
        TensorSpec::new(name, dtype, &shape).map_err(|_| {
            self.err(
                path,
                format!("tensor of {dtype} {shape:?} is larger than {MAX_TENSOR_BYTES} bytes"),
            )
        })
    }
}

/// Checks a tensor name: 1 to [`MAX_TENSOR_NAME`] bytes, no NUL.
pub(crate) fn check_name(s: &str) -> std::result::Result<(), String> {
    if s.is_empty() || s.len() > MAX_TENSOR_NAME || s.contains('\0') {
        return Err(format!(
            "tensor name {s:?} must be 1 to {MAX_TENSOR_NAME} bytes without NUL (it is {})",
            s.len()
        ));
    }
    Ok(())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Inputs and outputs of the `neff.json` graph.
pub(crate) fn signature(doc: &Doc<'_>) -> Result<(Vec<TensorSpec>, Vec<TensorSpec>)> {
    if !doc.root.is_object() {
        return Err(doc.err(
            "$",
            format!("expected an object, found {}", kind(&doc.root)),
        ));
    }
    let sig = pick_signature(doc)?;
    let graph = Graph::read(doc)?;
    let part = |key: &str| {
        let (path, s) = sig.as_ref()?;
        Some((path.as_str(), s.get(key)?))
    };
    let inputs = match part("inputs") {
        Some((path, v)) if !is_empty(v) => sig_tensors(doc, v, &format!("{path}.inputs"))?,
        _ => graph.inputs(doc)?,
    };
    let outputs = match part("outputs") {
        Some((path, v)) if !is_empty(v) => sig_tensors(doc, v, &format!("{path}.outputs"))?,
        _ => graph.outputs(doc)?,
    };
    Ok((inputs, outputs))
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// `metadata.signatures.default`, or the only signature, with its path.
fn pick_signature<'d>(doc: &'d Doc<'_>) -> Result<Option<(String, &'d Value)>> {
    let Some(sigs) = doc.root.get("metadata").and_then(|m| m.get("signatures")) else {
        return Ok(None);
    };
    let path = "metadata.signatures";
    let map = sigs
        .as_object()
        .ok_or_else(|| doc.err(path, format!("expected an object, found {}", kind(sigs))))?;
    let (key, sig) = match map.get("default") {
        Some(s) => ("default", s),
        None if map.len() == 1 => {
            let (k, s) = map.iter().next().expect("one entry");
            (k.as_str(), s)
        }
        None => return Ok(None),
    };
    let path = format!("{path}.{key}");
    if !sig.is_object() {
        return Err(doc.err(&path, format!("expected an object, found {}", kind(sig))));
    }
    Ok(Some((path, sig)))
}

/// `{name: {"id", "dtype", "shape"}}` (or a list of `{"name", ...}`), ordered by id.
fn sig_tensors(doc: &Doc<'_>, v: &Value, path: &str) -> Result<Vec<TensorSpec>> {
    let items: Vec<(String, String, &Value)> = match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, t)| Ok((k.clone(), format!("{path}.{k}"), t)))
            .collect::<Result<_>>()?,
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let p = format!("{path}[{i}]");
                let name = t.get("name").ok_or_else(|| doc.err(&p, "no `name`"))?;
                Ok((doc.name(name, &format!("{p}.name"))?, p, t))
            })
            .collect::<Result<_>>()?,
        other => {
            return Err(doc.err(
                path,
                format!("expected an object of tensors, found {}", kind(other)),
            ));
        }
    };
    let mut specs = Vec::with_capacity(items.len());
    for (name, p, t) in items {
        check_name(&name).map_err(|e| doc.err(&p, e))?;
        let dtype = t
            .get("dtype")
            .ok_or_else(|| doc.err(&p, "no `dtype`"))
            .and_then(|d| doc.dtype(d, &format!("{p}.dtype")))?;
        let shape = t
            .get("shape")
            .ok_or_else(|| doc.err(&p, "no `shape`"))
            .and_then(|s| doc.shape(s, &format!("{p}.shape")))?;
        let id = match t.get("id") {
            Some(i) => doc.index(i, &format!("{p}.id"))?,
            None => usize::MAX,
        };
        specs.push((id, doc.spec(name, dtype, shape, &p)?));
    }
    // Stable: tensors without an id keep their order, after those with one.
    specs.sort_by_key(|(id, _)| *id);
    Ok(specs.into_iter().map(|(_, s)| s).collect())
}

/// The graph part of `neff.json`.
struct Graph<'d> {
    nodes: &'d [Value],
    arg_nodes: Vec<usize>,
    /// (node, output index) per head.
    heads: Vec<(usize, usize)>,
    row_ptr: Vec<usize>,
    shapes: &'d [Value],
    dtypes: &'d [Value],
}

impl<'d> Graph<'d> {
    fn read(doc: &'d Doc<'_>) -> Result<Graph<'d>> {
        let root = &doc.root;
        let empty: &'d [Value] = &[];
        let nodes = match root.get("nodes") {
            Some(v) => doc.array(v, "nodes")?.as_slice(),
            None => empty,
        };
        let in_range = |i: usize, path: &str| -> Result<usize> {
            if i < nodes.len() {
                Ok(i)
            } else {
                Err(doc.err(
                    path,
                    format!("node {i} does not exist ({} nodes)", nodes.len()),
                ))
            }
        };
        let mut arg_nodes = Vec::new();
        if let Some(v) = root.get("arg_nodes") {
            for (i, n) in doc.array(v, "arg_nodes")?.iter().enumerate() {
                let p = format!("arg_nodes[{i}]");
                arg_nodes.push(in_range(doc.index(n, &p)?, &p)?);
            }
        }
        let mut heads = Vec::new();
        if let Some(v) = root.get("heads") {
            for (i, h) in doc.array(v, "heads")?.iter().enumerate() {
                let p = format!("heads[{i}]");
                let parts = doc.array(h, &p)?;
                let (Some(node), Some(index)) = (parts.first(), parts.get(1)) else {
                    return Err(doc.err(&p, "expected [node, index, version]"));
                };
                let node = in_range(doc.index(node, &format!("{p}[0]"))?, &p)?;
                heads.push((node, doc.index(index, &format!("{p}[1]"))?));
            }
        }
        let attr_list = |key: &str| -> Result<&'d [Value]> {
            let path = format!("attrs.{key}");
            let Some(v) = root.get("attrs").and_then(|a| a.get(key)) else {
                return Ok(empty);
            };
            // ["list_shape", [...]] / ["list_str", [...]]
            let pair = doc.array(v, &path)?;
            match pair.get(1) {
                Some(list) => Ok(doc.array(list, &format!("{path}[1]"))?.as_slice()),
                None => Err(doc.err(&path, "expected [\"list_...\", [entries]]")),
            }
        };
        let shapes = attr_list("shape")?;
        let dtypes = attr_list("dltype")?;
        if shapes.len() != dtypes.len() {
            return Err(NeffError::CountMismatch {
                shapes: shapes.len(),
                dtypes: dtypes.len(),
                detail: String::new(),
            });
        }
        let row_ptr = match root.get("node_row_ptr") {
            Some(v) => {
                let list = doc.array(v, "node_row_ptr")?;
                if list.len() != nodes.len() + 1 {
                    return Err(doc.err(
                        "node_row_ptr",
                        format!(
                            "{} entries for {} nodes (expected nodes + 1)",
                            list.len(),
                            nodes.len()
                        ),
                    ));
                }
                list.iter()
                    .enumerate()
                    .map(|(i, n)| doc.index(n, &format!("node_row_ptr[{i}]")))
                    .collect::<Result<Vec<_>>>()?
            }
            None => derived_row_ptr(nodes, &heads),
        };
        Ok(Graph {
            nodes,
            arg_nodes,
            heads,
            row_ptr,
            shapes,
            dtypes,
        })
    }

    /// The tensor of entry `e` (of node `node`), named `name`.
    fn tensor(&self, doc: &Doc<'_>, e: usize, name: String, what: &str) -> Result<TensorSpec> {
        if e >= self.shapes.len() {
            return Err(NeffError::CountMismatch {
                shapes: self.shapes.len(),
                dtypes: self.dtypes.len(),
                detail: format!("; {what} `{name}` is entry {e}"),
            });
        }
        let shape = doc.shape(&self.shapes[e], &format!("attrs.shape[1][{e}]"))?;
        let dtype = doc.dtype(&self.dtypes[e], &format!("attrs.dltype[1][{e}]"))?;
        doc.spec(name, dtype, shape, &format!("attrs.shape[1][{e}]"))
    }

    fn inputs(&self, doc: &Doc<'_>) -> Result<Vec<TensorSpec>> {
        self.arg_nodes
            .iter()
            .map(|&n| {
                let path = format!("nodes[{n}].name");
                let name = self.nodes[n]
                    .get("name")
                    .ok_or_else(|| doc.err(&path, "missing"))
                    .and_then(|v| doc.name(v, &path))?;
                self.tensor(doc, self.row_ptr[n], name, "input")
            })
            .collect()
    }

    fn outputs(&self, doc: &Doc<'_>) -> Result<Vec<TensorSpec>> {
        self.heads
            .iter()
            .enumerate()
            .map(|(i, &(n, index))| {
                let node = &self.nodes[n];
                let names = node
                    .get("attrs")
                    .and_then(|a| a.get("output_names"))
                    .or_else(|| node.get("output_names"));
                let name = match names.and_then(|v| v.as_array()).and_then(|a| a.get(index)) {
                    Some(v) => doc.name(v, &format!("nodes[{n}].attrs.output_names[{index}]"))?,
                    // A head on an input node, or no names: the node's name, else a
                    // position name.
                    None => match node.get("name").and_then(Value::as_str) {
                        Some(s) if node.get("op").and_then(Value::as_str) == Some("null") => {
                            s.to_owned()
                        }
                        _ => format!("output{i}"),
                    },
                };
                let e = self.row_ptr[n].saturating_add(index);
                self.tensor(doc, e, name, "output")
            })
            .collect()
    }
}

/// Entry offsets when `node_row_ptr` is absent: one entry per input node; a compiled
/// node has `attrs.num_outputs`, else as many as its `output_names`, else as its heads
/// need.
fn derived_row_ptr(nodes: &[Value], heads: &[(usize, usize)]) -> Vec<usize> {
    let mut ptr = Vec::with_capacity(nodes.len() + 1);
    let mut at = 0usize;
    for (i, node) in nodes.iter().enumerate() {
        ptr.push(at);
        let attrs = node.get("attrs");
        let declared = attrs
            .and_then(|a| a.get("num_outputs"))
            .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
            .or_else(|| {
                let names = attrs.and_then(|a| a.get("output_names"));
                Some(
                    names
                        .or_else(|| node.get("output_names"))?
                        .as_array()?
                        .len() as u64,
                )
            });
        let from_heads = heads
            .iter()
            .filter(|(n, _)| *n == i)
            .map(|(_, idx)| idx.saturating_add(1))
            .max()
            .unwrap_or(0);
        let count = match (node.get("op").and_then(Value::as_str), declared) {
            (Some("null"), _) => 1,
            (_, Some(d)) => usize::try_from(d).unwrap_or(usize::MAX),
            (_, None) => from_heads.max(1),
        };
        at = at.saturating_add(count);
    }
    ptr.push(at);
    ptr
}
