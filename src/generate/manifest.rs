//! `bundle.json`: a bundle directory's list of members and model config (format in the
//! module docs of [`generate`](super)).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::bundle::{Bucket, MemberKind, ModelConfig, Sampling};
use super::error::BundleError;
use crate::error::{Error, Result};

/// One member as the manifest lists it.
pub(crate) struct ManifestMember {
    pub(crate) name: String,
    pub(crate) neff: PathBuf,
    /// `None`: no metaneff beside the NEFF.
    pub(crate) metaneff: Option<PathBuf>,
    pub(crate) bucket: Option<Bucket>,
    pub(crate) kind: MemberKind,
    pub(crate) sampling: Option<Sampling>,
    /// Position in its chain (0 = first stage), for a chain stage.
    pub(crate) chain_stage: Option<u32>,
}

pub(crate) struct Manifest {
    pub(crate) config: Option<ModelConfig>,
    /// The weight file named by the manifest (default `weights.safetensors`).
    pub(crate) weights: PathBuf,
    pub(crate) members: Vec<ManifestMember>,
    /// `tensor_parallel.world`: the world a tensor-parallel bundle is written for.
    pub(crate) world: Option<u32>,
}

fn u32_field(v: &Value, key: &str) -> Option<u32> {
    v.get(key)?.as_u64().and_then(|n| u32::try_from(n).ok())
}

impl Manifest {
    pub(crate) fn read(dir: &Path) -> Result<Manifest> {
        let file = dir.join("bundle.json");
        let bad = |reason: String| -> Error {
            BundleError::Manifest {
                file: file.clone(),
                reason,
            }
            .into()
        };
        let text = std::fs::read_to_string(&file).map_err(|error| Error::Io {
            path: file.clone(),
            error,
        })?;
        let root: Value = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
        // `config`, or `model` (nrt-sim's bundle writer).
        let config = root
            .get("config")
            .or_else(|| root.get("model"))
            .map(|c| ModelConfig {
                vocab: u32_field(c, "vocab").unwrap_or(0),
                hidden: u32_field(c, "hidden").unwrap_or(0),
                layers: u32_field(c, "layers").unwrap_or(0),
                heads: u32_field(c, "heads").unwrap_or(0),
                head_dim: u32_field(c, "head_dim").unwrap_or(0),
                ctx: u32_field(c, "ctx").unwrap_or(0),
                slots: u32_field(c, "slots").unwrap_or(0),
            });
        let weights = match root.get("weights") {
            None => dir.join("weights.safetensors"),
            Some(Value::String(w)) => dir.join(w),
            Some(other) => return Err(bad(format!("`weights` must be a path, got {other}"))),
        };
        let list = root
            .get("members")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no `members` list".into()))?;
        let mut members = Vec::with_capacity(list.len());
        for (i, m) in list.iter().enumerate() {
            let text_field = |key: &str| m.get(key).and_then(Value::as_str);
            let name = text_field("name")
                .ok_or_else(|| bad(format!("member {i} has no `name`")))?
                .to_owned();
            if members.iter().any(|e: &ManifestMember| e.name == name) {
                return Err(bad(format!("member `{name}` is listed twice")));
            }
            let neff = dir.join(
                text_field("file").ok_or_else(|| bad(format!("member `{name}` has no `file`")))?,
            );
            let metaneff = match text_field("metaneff") {
                Some(p) => Some(dir.join(p)),
                None => neff
                    .parent()
                    .map(|p| p.join("metaneff.pb"))
                    .filter(|p| p.exists()),
            };
            let bucket = match m.get("bucket") {
                None => None,
                Some(b) => Some(Bucket {
                    batch: u32_field(b, "batch")
                        .ok_or_else(|| bad(format!("member `{name}`: bucket has no `batch`")))?,
                    seq_len: u32_field(b, "seq_len")
                        .ok_or_else(|| bad(format!("member `{name}`: bucket has no `seq_len`")))?,
                }),
            };
            let sampling = match text_field("sampling") {
                None => None,
                Some("logits") => Some(Sampling::Logits),
                Some("ids") => Some(Sampling::Ids),
                // A chain stage passing hidden states on: no sampling.
                Some("hidden") => None,
                Some(other) => {
                    return Err(bad(format!(
                        "member `{name}`: sampling `{other}` is not `logits`, `ids` or `hidden`"
                    )));
                }
            };
            members.push(ManifestMember {
                name,
                neff,
                metaneff,
                bucket,
                kind: MemberKind::parse(text_field("kind").unwrap_or("")),
                sampling,
                chain_stage: u32_field(m, "chain_stage"),
            });
        }
        let world = match root.get("tensor_parallel").map(|t| t.get("world")) {
            None => None,
            Some(w) => match w
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
            {
                Some(n) if n >= 1 => Some(n),
                _ => {
                    return Err(bad(format!(
                        "`tensor_parallel.world` must be a whole number of at least 1, got {}",
                        w.map_or("nothing".to_string(), Value::to_string)
                    )));
                }
            },
        };
        Ok(Manifest {
            config,
            weights,
            members,
            world,
        })
    }
}
