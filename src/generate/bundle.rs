//! [`Bundle`]: several NEFFs loaded on the same core(s), bound to one set of device
//! weight tensors and one set of state tensors per core; its [`Member`]s and their
//! tensor sets.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::aliases::{Aliases, check_fits};
use super::load::LoadReport;
use super::metaneff::TensorRole;
use crate::error::{Error, Result};
use crate::objects::{Model, Placement, Runtime, Tensor, TensorInfo, TensorSet};

/// The shape a member was compiled for: batch size and sequence length per call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bucket {
    /// Rows per call.
    pub batch: u32,
    /// Tokens per row per call.
    pub seq_len: u32,
}

/// What a member computes (`kind` in `bundle.json`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MemberKind {
    /// Context encoding: a prompt's tokens, writing the cache.
    Prefill,
    /// Token generation: one new token per row.
    Decode,
    /// One stage of a step that runs as a chain of members (embedding, a layer, the head).
    ChainStage,
    /// Anything else, by the manifest's name for it (empty when not given).
    Other(String),
}

impl MemberKind {
    pub(crate) fn parse(text: &str) -> MemberKind {
        match text {
            "prefill" | "context_encoding" => MemberKind::Prefill,
            "decode" | "token_generation" => MemberKind::Decode,
            "chain" | "chain_stage" => MemberKind::ChainStage,
            other => MemberKind::Other(other.to_owned()),
        }
    }
}

/// What a member returns per row (`sampling` in `bundle.json`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sampling {
    /// Logits over the vocabulary: the host samples.
    Logits,
    /// The next token ids: the device samples (argmax).
    Ids,
}

/// The model dimensions a bundle records (`config` in `bundle.json`); 0 for a value
/// the manifest does not give.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ModelConfig {
    /// Vocabulary size.
    pub vocab: u32,
    /// Hidden size.
    pub hidden: u32,
    /// Transformer layers.
    pub layers: u32,
    /// Attention heads.
    pub heads: u32,
    /// Width of one head.
    pub head_dim: u32,
    /// Cache context length (positions per slot).
    pub ctx: u32,
    /// Cache slots (sequences the cache holds at once).
    pub slots: u32,
}

/// How a member input is bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Binding {
    pub(crate) role: TensorRole,
    /// The checkpoint key of a weight or the name of a state (the bundle's key).
    pub(crate) key: String,
}

/// The tensors every member of a bundle shares, per core.
pub(crate) struct Shared {
    pub(crate) cores: Vec<u32>,
    /// Per core slot: weight tensors by checkpoint key.
    pub(crate) weights: Vec<BTreeMap<String, Tensor>>,
    /// Per core slot: state tensors by state key.
    pub(crate) states: Vec<BTreeMap<String, Tensor>>,
    /// Per core slot: the cache slots taken by running generations (bit `i`: slot `i`).
    pub(crate) slots_in_use: std::sync::Mutex<Vec<u128>>,
}

impl Shared {
    pub(crate) fn slot(&self, core: u32) -> Option<usize> {
        self.cores.iter().position(|&c| c == core)
    }
}

/// One NEFF of a [`Bundle`], loaded on each of the bundle's cores.
pub struct Member {
    pub(crate) name: String,
    pub(crate) bucket: Option<Bucket>,
    pub(crate) kind: MemberKind,
    pub(crate) sampling: Option<Sampling>,
    pub(crate) chain_stage: Option<u32>,
    /// Per core slot.
    pub(crate) models: Vec<Model>,
    /// Per model input, by name.
    pub(crate) bindings: BTreeMap<String, Binding>,
    pub(crate) aliases: Aliases,
    pub(crate) shared: Arc<Shared>,
}

impl Member {
    /// Its name (`bundle.json`'s, or [`MemberSpec::new`](super::MemberSpec::new)'s).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bucket it was compiled for, when recorded.
    pub fn bucket(&self) -> Option<Bucket> {
        self.bucket
    }

    /// What it computes.
    pub fn kind(&self) -> &MemberKind {
        &self.kind
    }

    /// What it returns per row, when recorded.
    pub fn sampling(&self) -> Option<Sampling> {
        self.sampling
    }

    /// Its position in a chain of members run as one step (0 = the first stage), when
    /// recorded (`chain_stage` in `bundle.json`).
    pub fn chain_stage(&self) -> Option<u32> {
        self.chain_stage
    }

    /// Its model loaded on `core` (one of the bundle's cores).
    pub fn model(&self, core: u32) -> Option<&Model> {
        self.models.get(self.shared.slot(core)?)
    }

    /// The model's inputs (the same on every core).
    pub fn inputs(&self) -> &[TensorInfo] {
        self.models[0].inputs()
    }

    /// The model's outputs (the same on every core).
    pub fn outputs(&self) -> &[TensorInfo] {
        self.models[0].outputs()
    }

    /// How input `input` is bound: [`TensorRole::User`] (by the caller, per call),
    /// [`TensorRole::State`] or [`TensorRole::Weight`] (by the bundle).
    pub fn role(&self, input: &str) -> Option<TensorRole> {
        self.bindings.get(input).map(|b| b.role)
    }

    /// The bundle's key for a state or weight input (checkpoint key or state name).
    pub fn key(&self, input: &str) -> Option<&str> {
        self.bindings
            .get(input)
            .filter(|b| b.role != TensorRole::User)
            .map(|b| b.key.as_str())
    }

    /// Which outputs update which inputs in place.
    pub fn aliases(&self) -> &Aliases {
        &self.aliases
    }

    /// The inputs the caller binds (user inputs).
    pub fn user_inputs(&self) -> impl Iterator<Item = &TensorInfo> {
        self.inputs()
            .iter()
            .filter(|i| self.role(&i.name) == Some(TensorRole::User))
    }

    /// The outputs that are not states (no alias of a state or weight input): what a
    /// call returns.
    pub fn user_outputs(&self) -> impl Iterator<Item = &TensorInfo> {
        self.outputs().iter().filter(|o| {
            self.aliases
                .input_of(&o.name)
                .is_none_or(|i| self.role(i) == Some(TensorRole::User))
        })
    }

    /// A new pair of tensor sets `(inputs, outputs)` for this member on `core`, ready
    /// to execute: every weight and state of the bundle bound (each state both as its
    /// input and as the output that updates it), each of `user` bound under its name
    /// (an input or an output name; a user input aliased by an output is bound both
    /// ways), and every other user input and output a new device tensor on `core`.
    ///
    /// Sets are cheap next to the tensors they bind: make several (a ring) to queue
    /// steps whose user tensors differ, e.g. step N+1's ids input bound to step N's
    /// ids output.
    ///
    /// ```
    /// use neuron_rt::{Placement, Runtime};
    /// use neuron_rt::generate::Bundle;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// neuron_rt::sim::decoder::write_bundle(dir.path(), &Default::default()).unwrap();
    /// let runtime = Runtime::builder().simulator().build()?;
    /// let bundle = Bundle::builder(&runtime).dir(dir.path())?.build()?;
    /// let decode = bundle.member("decode_b1_ids").unwrap();
    ///
    /// // Two steps chained on the device: step 2 reads the ids step 1 wrote.
    /// let ids_info = decode.outputs().iter().find(|o| o.name == "next_ids").unwrap();
    /// let ids = runtime.allocate_for(ids_info, Placement::Device, Some(0))?;
    /// let (in1, mut out1) = decode.sets(0, &[("next_ids", &ids)])?;
    /// let (in2, mut out2) = decode.sets(0, &[("input_ids", &ids)])?;
    /// in1.get("input_ids").unwrap().write(&[72i32])?;
    /// in1.get("position_ids").unwrap().write(&[0i32])?;
    /// in2.get("position_ids").unwrap().write(&[1i32])?;
    /// for set in [&in1, &in2] {
    ///     set.get("seq_ids").unwrap().write(&[0i32])?;
    /// }
    /// let model = decode.model(0).unwrap();
    /// model.execute(&in1, &mut out1)?;
    /// model.execute(&in2, &mut out2)?; // input_ids = step 1's next_ids, never on the host
    /// let next: Vec<i32> = out2.get("next_ids").unwrap().to_vec()?;
    /// assert!((0..256).contains(&next[0]));
    /// # Ok::<(), neuron_rt::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a core not in the bundle or a name that is a
    /// state or weight; [`Error::UnknownTensor`] for a name the model lacks; for a user
    /// tensor that does not fit its model tensor [`Error::SizeMismatch`],
    /// [`BundleError::TensorDType`](super::BundleError::TensorDType) or
    /// [`Error::WrongCore`]; otherwise as [`Runtime::allocate_for`] and
    /// [`TensorSet::insert`].
    pub fn sets(&self, core: u32, user: &[(&str, &Tensor)]) -> Result<(TensorSet, TensorSet)> {
        let slot = self.shared.slot(core).ok_or_else(|| {
            Error::invalid(
                "core",
                format!(
                    "member `{}` is loaded on cores {:?}, not on core {core}",
                    self.name, self.shared.cores
                ),
            )
        })?;
        let model = &self.models[slot];
        let given = |name: &str| user.iter().find(|(n, _)| *n == name).map(|(_, t)| *t);
        for (name, _) in user {
            let info = model
                .tensor_info(name)
                .ok_or_else(|| Error::UnknownTensor {
                    model: self.name.clone(),
                    role: "input or output",
                    tensor: (*name).to_owned(),
                    known: model
                        .inputs()
                        .iter()
                        .chain(model.outputs())
                        .map(|i| i.name.clone())
                        .collect(),
                })?;
            // A state's output is the state's too.
            let input = self.aliases.input_of(name).unwrap_or(name);
            if let Some(b) = self
                .bindings
                .get(input)
                .filter(|b| b.role != TensorRole::User)
            {
                return Err(Error::invalid(
                    "user",
                    format!(
                        "`{name}` of member `{}` is bound by the bundle ({:?} `{}`), not by the caller",
                        self.name, b.role, b.key
                    ),
                ));
            }
            check_fits(model, info, given(name).expect("listed"))?;
        }
        let rt = model.runtime();
        let (mut inputs, mut outputs) = (rt.tensor_set()?, rt.tensor_set()?);
        for info in model.inputs() {
            let b = &self.bindings[&info.name];
            let tensor = match b.role {
                TensorRole::Weight => self.shared.weights[slot][&b.key].clone(),
                TensorRole::State => self.shared.states[slot][&b.key].clone(),
                _ => match given(&info.name) {
                    Some(t) => t.clone(),
                    None => rt.allocate_for(info, Placement::Device, Some(core))?,
                },
            };
            inputs.insert(&info.name, &tensor)?;
            if let Some(output) = self.aliases.output_of(&info.name) {
                outputs.insert(output, &tensor)?;
            }
        }
        for info in model.outputs() {
            if outputs.contains(&info.name) {
                continue;
            }
            let tensor = match given(&info.name) {
                Some(t) => t.clone(),
                None => rt.allocate_for(info, Placement::Device, Some(core))?,
            };
            outputs.insert(&info.name, &tensor)?;
        }
        Ok((inputs, outputs))
    }
}

impl fmt::Debug for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Member")
            .field("name", &self.name)
            .field("bucket", &self.bucket)
            .field("kind", &self.kind)
            .field("sampling", &self.sampling)
            .field("aliases", &self.aliases)
            .finish_non_exhaustive()
    }
}

/// Device memory a bundle holds on each of its cores, besides its models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BundleMemory {
    /// Bytes of weight tensors on each core (one copy, whatever the number of members).
    pub weights_bytes_per_core: u64,
    /// Bytes of state tensors on each core (one copy).
    pub state_bytes_per_core: u64,
    /// The members sharing them.
    pub members: usize,
}

/// Several NEFFs loaded on the same core(s) as one unit: prefill and decode buckets,
/// chain stages. Every member takes its weights from one device tensor per weight per
/// core (uploaded once from a `.safetensors` file) and its state (a KV cache) from one
/// device tensor per state per core, updated in place by whichever member runs.
///
/// Build one with [`Bundle::builder`] ([`BundleBuilder`](super::BundleBuilder)): from a bundle directory
/// (`bundle.json`, one `graph.neff` and `metaneff.pb` per member, `weights.safetensors`)
/// or from members given in code. `Bundle` is a cheap handle (`clone` shares it) and
/// `Send + Sync`.
///
/// ```
/// use neuron_rt::Runtime;
/// use neuron_rt::generate::{Bundle, MemberSpec, WeightFile};
/// use neuron_rt::sim::{DType, ModelBuilder, Op};
///
/// // Two members sharing weight `w` and state `acc`: acc.out = acc + x @ w.
/// let member = |name: &str| {
///     ModelBuilder::new(name)
///         .input("x", DType::F32, &[1, 2])
///         .input("acc", DType::F32, &[1, 2])
///         .input("w", DType::F32, &[2, 2])
///         .output("acc.out", DType::F32, &[1, 2])
///         .op(Op::MatMul { a: "x".into(), b: "w".into(), out: "xw".into() })
///         .op(Op::Add { a: "acc".into(), b: "xw".into(), out: "acc.out".into() })
///         .build()
///         .unwrap()
/// };
/// let header = br#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#;
/// let mut file = (header.len() as u64).to_le_bytes().to_vec();
/// file.extend_from_slice(header);
/// for v in [1.0f32, 0.0, 0.0, 1.0] {
///     file.extend_from_slice(&v.to_le_bytes()); // w = identity
/// }
/// let runtime = Runtime::builder().simulator().build()?;
/// let bundle = Bundle::builder(&runtime)
///     .member(MemberSpec::new("a", member("a")).alias("acc", "acc.out"))
///     .member(MemberSpec::new("b", member("b")).alias("acc", "acc.out"))
///     .weights(WeightFile::from_bytes("w.safetensors", file)?)
///     .build()?;
/// for name in ["a", "b", "a"] {
///     let (inputs, mut outputs) = bundle.member(name).unwrap().sets(0, &[])?;
///     inputs.get("x").unwrap().write(&[1.0f32, 2.0])?;
///     bundle.member(name).unwrap().model(0).unwrap().execute(&inputs, &mut outputs)?;
/// }
/// // Three calls of two members, one state: 3 x (x @ w).
/// assert_eq!(bundle.state(0, "acc").unwrap().to_vec::<f32>()?, [3.0, 6.0]);
/// assert_eq!(bundle.memory().weights_bytes_per_core, 16); // one copy for both members
/// # Ok::<(), neuron_rt::Error>(())
/// ```
#[derive(Clone)]
pub struct Bundle {
    pub(crate) inner: Arc<BundleInner>,
}

pub(crate) struct BundleInner {
    pub(crate) runtime: Runtime,
    pub(crate) members: Vec<Member>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) config: Option<ModelConfig>,
    pub(crate) report: LoadReport,
}

impl Bundle {
    /// The runtime it is loaded in.
    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// The cores it is loaded on (every member on each).
    pub fn cores(&self) -> &[u32] {
        &self.inner.shared.cores
    }

    /// The model dimensions from `bundle.json`, when it gives them.
    pub fn config(&self) -> Option<&ModelConfig> {
        self.inner.config.as_ref()
    }

    /// The members, in the order given (manifest order for a directory).
    pub fn members(&self) -> &[Member] {
        &self.inner.members
    }

    /// The member named `name`.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.inner.members.iter().find(|m| m.name == name)
    }

    /// The state tensor `name` on `core` (shared by every member taking it).
    pub fn state(&self, core: u32, name: &str) -> Option<&Tensor> {
        let shared = &self.inner.shared;
        shared.states[shared.slot(core)?].get(name)
    }

    /// Every state tensor on `core`, by name (empty for a core not in the bundle).
    pub fn states(&self, core: u32) -> impl Iterator<Item = (&str, &Tensor)> {
        let shared = &self.inner.shared;
        shared
            .slot(core)
            .into_iter()
            .flat_map(move |s| shared.states[s].iter().map(|(k, t)| (k.as_str(), t)))
    }

    /// The weight tensor `key` (checkpoint key) on `core`.
    pub fn weight(&self, core: u32, key: &str) -> Option<&Tensor> {
        let shared = &self.inner.shared;
        shared.weights[shared.slot(core)?].get(key)
    }

    /// Sets every state tensor on every core to zero (a fresh cache).
    ///
    /// # Errors
    ///
    /// As [`Tensor::fill`].
    pub fn clear_states(&self) -> Result<()> {
        for per_core in &self.inner.shared.states {
            for tensor in per_core.values() {
                tensor.fill(0)?;
            }
        }
        Ok(())
    }

    /// The device memory of its weights and states per core.
    pub fn memory(&self) -> BundleMemory {
        let sum = |maps: &[BTreeMap<String, Tensor>]| {
            maps.first()
                .map_or(0, |m| m.values().map(|t| t.size() as u64).sum())
        };
        BundleMemory {
            weights_bytes_per_core: sum(&self.inner.shared.weights),
            state_bytes_per_core: sum(&self.inner.shared.states),
            members: self.inner.members.len(),
        }
    }

    /// How the weights were uploaded: bytes, time, rate.
    pub fn load_report(&self) -> &LoadReport {
        &self.inner.report
    }
}

impl fmt::Debug for Bundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bundle")
            .field("cores", &self.cores())
            .field("members", &self.inner.members)
            .field("memory", &self.memory())
            .finish_non_exhaustive()
    }
}
