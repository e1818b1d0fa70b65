//! A small Llama-shaped decoder as a bundle of simulator NEFFs sharing one set of
//! weights and KV-cache state tensors: what a compiler's generation artifacts look like
//! (a NEFF per bucket, `metaneff.pb` beside each, a `.safetensors` checkpoint), computed
//! for real by the simulator.
//!
//! [`write_bundle`] writes the directory (layout in `nrt-sim/MODEL_FORMAT.md`, "Decoder
//! bundles"); `nrt-sim-model bundle --out DIR` does the same from the command line.
//!
//! ```
//! let dir = std::env::temp_dir().join(format!("nrt-sim-doc-bundle-{}", std::process::id()));
//! let bundle = nrt_sim::decoder::write_bundle(&dir, &Default::default())?;
//! assert_eq!(bundle.members.len(), 10);
//! assert!(dir.join("prefill_t16/metaneff.pb").is_file());
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), nrt_sim::decoder::BundleError>(())
//! ```
//!
//! Files: `metaneff` (the protobuf messages), `weights` (seeded weights, the
//! `.safetensors` writer), `graph` (each member's ops and metaneff; uses both).

mod graph;
pub mod metaneff;
mod weights;

pub use weights::{Weight, shard, weights};

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Sizes of the decoder. [`Default`] is the small decoder of the generation spec.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct DecoderConfig {
    /// Vocabulary (byte vocabulary: 256, no EOS).
    pub vocab: u32,
    /// Hidden size (`heads * head_dim`).
    pub hidden: u32,
    /// Transformer layers.
    pub layers: u32,
    /// Attention heads.
    pub heads: u32,
    /// Width of one head (even).
    pub head_dim: u32,
    /// MLP intermediate size.
    pub intermediate: u32,
    /// Cache context (positions per slot).
    pub ctx: u32,
    /// Cache slots (sequences held at once).
    pub slots: u32,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// Rotary base.
    pub rope_theta: f64,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            vocab: 256,
            hidden: 64,
            layers: 2,
            heads: 4,
            head_dim: 16,
            intermediate: 128,
            ctx: 128,
            slots: 4,
            rms_norm_eps: 1e-5,
            rope_theta: 10000.0,
        }
    }
}

impl DecoderConfig {
    /// Shape of each state tensor `k_l{i}` / `v_l{i}`: `[slots, heads, ctx, head_dim]`.
    pub fn cache_shape(&self) -> Vec<u32> {
        self.rank_cache_shape(1)
    }

    /// Shape of each state tensor on one rank of a tensor-parallel world of `world`: the
    /// rank's heads only, `[slots, heads / world, ctx, head_dim]`.
    pub fn rank_cache_shape(&self, world: u32) -> Vec<u32> {
        vec![
            self.slots,
            self.heads / world.max(1),
            self.ctx,
            self.head_dim,
        ]
    }

    /// Whether the model splits over `world` ranks: `world` at least 1 and dividing both
    /// `heads` and `intermediate`.
    fn check_world(&self, world: u32) -> Result<(), BundleError> {
        if world == 0
            || !self.heads.is_multiple_of(world)
            || !self.intermediate.is_multiple_of(world)
        {
            return Err(BundleError {
                message: format!(
                    "a tensor-parallel world of {world} ranks must be at least 1 and divide heads {} and intermediate {}",
                    self.heads, self.intermediate
                ),
                source: None,
                kind: BundleErrorKind::World {
                    world,
                    heads: self.heads,
                    intermediate: self.intermediate,
                },
            });
        }
        Ok(())
    }

    fn check(&self) -> Result<(), String> {
        let dims = [
            self.vocab,
            self.hidden,
            self.layers,
            self.heads,
            self.head_dim,
            self.intermediate,
            self.ctx,
            self.slots,
        ];
        if dims.contains(&0) || dims.iter().any(|&d| d > 1 << 16) {
            return Err(format!("every size must be 1 to 65536: {self:?}"));
        }
        if self.heads * self.head_dim != self.hidden || self.head_dim % 2 == 1 {
            return Err(format!(
                "hidden {} must be heads {} x head_dim {} (even)",
                self.hidden, self.heads, self.head_dim
            ));
        }
        Ok(())
    }
}

/// What a member computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberKind {
    /// Context encoding: a prompt of up to `seq_len` tokens per row.
    Prefill,
    /// Token generation: one token per row.
    Decode,
    /// Device chain, stage 0: `input_ids` -> `hidden`.
    ChainEmbed,
    /// Device chain, one transformer layer: `hidden` -> `hidden_out` and the layer's cache.
    ChainLayer(u32),
    /// Device chain, last stage: `hidden` -> `next_ids`.
    ChainHead,
}

/// What a member returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sampling {
    /// `logits` f32 `[batch, vocab]`, sampled on the host.
    Logits,
    /// `next_ids` i32 `[batch, 1]`: the argmax on the device.
    Ids,
}

/// One member of the bundle.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// Name, also its subdirectory.
    pub name: String,
    /// What it computes.
    pub kind: MemberKind,
    /// Rows per call.
    pub batch: u32,
    /// Tokens per row.
    pub seq_len: u32,
    /// Its result (for chain stages other than the head: `Logits`, unused).
    pub sampling: Sampling,
    /// Simulated device time per call.
    pub device_time: Duration,
}

/// Options of [`write_bundle`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct DecoderBundleOptions {
    /// The decoder's sizes.
    pub config: DecoderConfig,
    /// Seed of the weights.
    pub seed: u64,
    /// Device time of each prefill member's call.
    pub prefill_device_time: Duration,
    /// Device time of each decode member's call.
    pub decode_device_time: Duration,
    /// Device time of each chain stage's call.
    pub chain_device_time: Duration,
    /// Prefill buckets (sequence lengths, batch 1).
    pub prefill_buckets: Vec<u32>,
    /// Decode buckets (batch sizes, one token each).
    pub decode_buckets: Vec<u32>,
    /// Ranks of the tensor-parallel world the bundle is written for (default 1: the
    /// whole model on one core). For `world` W > 1 every member computes one rank's
    /// part: `heads / W` attention heads (q, k, v projections column-split, the o
    /// projection row-split, then an all-reduce summing the attention output before the
    /// residual add) and `intermediate / W` of the MLP (gate and up column-split, down
    /// row-split, then an all-reduce); embeddings, norms and the LM head are replicated.
    /// Each rank's KV-cache state tensors hold only its heads
    /// ([`DecoderConfig::rank_cache_shape`]). The member NEFFs are the same for every
    /// rank (load each with `nrt_load_collectives` as rank r of W); rank r's weights are
    /// `weights/tp{r}_sharded_checkpoint.safetensors` ([`shard`] of the full weights,
    /// which `weights.safetensors` still holds). W must divide `heads` and
    /// `intermediate`, else [`write_bundle`] fails with [`BundleErrorKind::World`].
    pub world: u32,
}

impl Default for DecoderBundleOptions {
    fn default() -> Self {
        DecoderBundleOptions {
            config: DecoderConfig::default(),
            seed: 0,
            prefill_device_time: Duration::ZERO,
            decode_device_time: Duration::ZERO,
            chain_device_time: Duration::ZERO,
            prefill_buckets: vec![16, 64],
            decode_buckets: vec![1, 4],
            world: 1,
        }
    }
}

impl DecoderBundleOptions {
    /// The members [`write_bundle`] writes, in `bundle.json`'s order.
    pub fn members(&self) -> Vec<Member> {
        let member = |name: String, kind, batch, seq_len, sampling, device_time| Member {
            name,
            kind,
            batch,
            seq_len,
            sampling,
            device_time,
        };
        let mut out = Vec::new();
        for &t in &self.prefill_buckets {
            let time = self.prefill_device_time;
            out.push(member(
                format!("prefill_t{t}"),
                MemberKind::Prefill,
                1,
                t,
                Sampling::Logits,
                time,
            ));
        }
        for (sampling, tag) in [(Sampling::Logits, "logits"), (Sampling::Ids, "ids")] {
            for &b in &self.decode_buckets {
                let time = self.decode_device_time;
                out.push(member(
                    format!("decode_b{b}_{tag}"),
                    MemberKind::Decode,
                    b,
                    1,
                    sampling,
                    time,
                ));
            }
        }
        let time = self.chain_device_time;
        out.push(member(
            "chain_embed".into(),
            MemberKind::ChainEmbed,
            1,
            1,
            Sampling::Logits,
            time,
        ));
        for i in 0..self.config.layers {
            out.push(member(
                format!("chain_layer_{i}"),
                MemberKind::ChainLayer(i),
                1,
                1,
                Sampling::Logits,
                time,
            ));
        }
        out.push(member(
            "chain_head_ids".into(),
            MemberKind::ChainHead,
            1,
            1,
            Sampling::Ids,
            time,
        ));
        out
    }
}

/// The simulator model file (`graph.neff`) and `metaneff.pb` bytes of one member.
///
/// # Errors
///
/// [`BundleError`] when the configuration is inconsistent.
pub fn member_files(
    config: &DecoderConfig,
    member: &Member,
) -> Result<(Vec<u8>, Vec<u8>), BundleError> {
    rank_member_files(config, member, 1)
}

/// [`member_files`] of one rank of a tensor-parallel world of `world` (the same files
/// for every rank; see [`DecoderBundleOptions::world`]).
///
/// # Errors
///
/// [`BundleError`] when the configuration is inconsistent; [`BundleErrorKind::World`]
/// when `world` does not divide `heads` and `intermediate`.
pub fn rank_member_files(
    config: &DecoderConfig,
    member: &Member,
    world: u32,
) -> Result<(Vec<u8>, Vec<u8>), BundleError> {
    config.check().map_err(BundleError::config)?;
    config.check_world(world)?;
    let (model, meta) = graph::build(config, member, world);
    let neff = model
        .build()
        .map_err(|e| BundleError::config(format!("member {}: {e}", member.name)))?;
    Ok((neff, prost::Message::encode_to_vec(&meta)))
}

/// What [`write_bundle`] wrote.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Bundle {
    /// The bundle directory.
    pub dir: PathBuf,
    /// Its members, in `bundle.json`'s order.
    pub members: Vec<Member>,
    /// `weights.safetensors` in `dir` (the full weights).
    pub weights: PathBuf,
    /// For a world above 1: each rank's shard in `dir`, in rank order
    /// (`weights/tp{rank}_sharded_checkpoint.safetensors`); empty for a world of 1.
    pub shards: Vec<PathBuf>,
}

/// What kind of failure a [`BundleError`] is.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BundleErrorKind {
    /// The configuration is inconsistent (the message says how).
    Config,
    /// A file could not be written ([`std::error::Error::source`] is the I/O error).
    Io,
    /// The tensor-parallel `world` is 0 or does not divide `heads` or `intermediate`.
    World {
        /// The world asked for.
        world: u32,
        /// The model's attention heads.
        heads: u32,
        /// The model's MLP intermediate size.
        intermediate: u32,
    },
}

/// A bundle could not be written.
#[derive(Debug)]
pub struct BundleError {
    message: String,
    source: Option<std::io::Error>,
    kind: BundleErrorKind,
}

impl BundleError {
    fn config(message: String) -> Self {
        BundleError {
            message,
            source: None,
            kind: BundleErrorKind::Config,
        }
    }

    fn io(path: &Path, e: std::io::Error) -> Self {
        BundleError {
            message: format!("writing {}: {e}", path.display()),
            source: Some(e),
            kind: BundleErrorKind::Io,
        }
    }

    /// What kind of failure it is.
    pub fn kind(&self) -> &BundleErrorKind {
        &self.kind
    }
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "decoder bundle: {}", self.message)
    }
}

impl std::error::Error for BundleError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), BundleError> {
    std::fs::write(path, bytes).map_err(|e| BundleError::io(path, e))
}

fn kind_name(kind: MemberKind) -> &'static str {
    match kind {
        MemberKind::Prefill => "prefill",
        MemberKind::Decode => "decode",
        MemberKind::ChainEmbed | MemberKind::ChainLayer(_) | MemberKind::ChainHead => "chain",
    }
}

fn bundle_json(options: &DecoderBundleOptions, members: &[Member]) -> serde_json::Value {
    let c = &options.config;
    let json_members: Vec<serde_json::Value> = members
        .iter()
        .map(|m| {
            let stage = match m.kind {
                MemberKind::ChainEmbed => Some(0),
                MemberKind::ChainLayer(i) => Some(i + 1),
                MemberKind::ChainHead => Some(c.layers + 1),
                _ => None,
            };
            let sampling = match (m.kind, m.sampling) {
                (MemberKind::ChainEmbed | MemberKind::ChainLayer(_), _) => "hidden",
                (_, Sampling::Logits) => "logits",
                (_, Sampling::Ids) => "ids",
            };
            serde_json::json!({
                "name": m.name,
                "file": format!("{}/graph.neff", m.name),
                "metaneff": format!("{}/metaneff.pb", m.name),
                "bucket": {"batch": m.batch, "seq_len": m.seq_len},
                "kind": kind_name(m.kind),
                "chain_stage": stage,
                "sampling": sampling,
                "device_time_us": m.device_time.as_micros() as u64,
            })
        })
        .collect();
    let mut chain: Vec<String> = vec!["chain_embed".into()];
    chain.extend((0..c.layers).map(|i| format!("chain_layer_{i}")));
    chain.push("chain_head_ids".into());
    let state: Vec<serde_json::Value> = (0..c.layers)
        .flat_map(|i| [format!("k_l{i}"), format!("v_l{i}")])
        .map(|name| serde_json::json!({"name": name, "dtype": "f32", "shape": c.rank_cache_shape(options.world)}))
        .collect();
    let mut json = serde_json::json!({
        "format": "nrt-sim-decoder-bundle",
        "version": 1,
        "model": {
            "vocab": c.vocab, "hidden": c.hidden, "layers": c.layers, "heads": c.heads,
            "head_dim": c.head_dim, "intermediate": c.intermediate, "ctx": c.ctx,
            "slots": c.slots, "rms_norm_eps": c.rms_norm_eps, "rope_theta": c.rope_theta,
            "dtype": "f32", "eos_token_id": null, "pad_token_id": 0,
        },
        "weights": "weights.safetensors",
        "seed": options.seed,
        "state": state,
        "members": json_members,
        "chains": [{"name": "decode_b1_chain", "members": chain, "bucket": {"batch": 1, "seq_len": 1}, "sampling": "ids"}],
    });
    if options.world > 1 {
        json["tensor_parallel"] = serde_json::json!({
            "world": options.world,
            "shards": (0..options.world).map(shard_file_name).collect::<Vec<_>>(),
        });
    }
    json
}

/// Rank `rank`'s weight shard, relative to the bundle directory.
fn shard_file_name(rank: u32) -> String {
    format!("weights/tp{rank}_sharded_checkpoint.safetensors")
}

/// Writes the decoder bundle into `dir` (created if missing; existing files replaced):
/// `bundle.json`, `<member>/graph.neff` and `<member>/metaneff.pb` per member, and
/// `weights.safetensors` ([`weights`] of `options.seed`); for a
/// [`world`](DecoderBundleOptions::world) W above 1 also each rank's shard
/// `weights/tp{rank}_sharded_checkpoint.safetensors` ([`shard`]), and `bundle.json`
/// says `"tensor_parallel": {"world": W, "shards": [...]}`.
///
/// # Errors
///
/// [`BundleError`] naming the file that could not be written, or what is inconsistent
/// in `options.config`; [`BundleErrorKind::World`] when `options.world` does not
/// divide `heads` and `intermediate`.
pub fn write_bundle(
    dir: impl AsRef<Path>,
    options: &DecoderBundleOptions,
) -> Result<Bundle, BundleError> {
    let dir = dir.as_ref();
    options.config.check().map_err(BundleError::config)?;
    options.config.check_world(options.world)?;
    let members = options.members();
    std::fs::create_dir_all(dir).map_err(|e| BundleError::io(dir, e))?;
    for m in &members {
        let (neff, meta) = rank_member_files(&options.config, m, options.world)?;
        let sub = dir.join(&m.name);
        std::fs::create_dir_all(&sub).map_err(|e| BundleError::io(&sub, e))?;
        write(&sub.join("graph.neff"), &neff)?;
        write(&sub.join("metaneff.pb"), &meta)?;
    }
    let weights_path = dir.join("weights.safetensors");
    let full = weights(&options.config, options.seed);
    weights::write_safetensors(&full, &weights_path).map_err(BundleError::config)?;
    let mut shards = Vec::new();
    if options.world > 1 {
        let sub = dir.join("weights");
        std::fs::create_dir_all(&sub).map_err(|e| BundleError::io(&sub, e))?;
        for rank in 0..options.world {
            let path = dir.join(shard_file_name(rank));
            weights::write_safetensors(&shard(&full, options.world, rank), &path)
                .map_err(BundleError::config)?;
            shards.push(path);
        }
    }
    let json = serde_json::to_string_pretty(&bundle_json(options, &members))
        .map_err(|e| BundleError::config(format!("bundle.json: {e}")))?;
    write(&dir.join("bundle.json"), json.as_bytes())?;
    Ok(Bundle {
        dir: dir.to_path_buf(),
        members,
        weights: weights_path,
        shards,
    })
}
