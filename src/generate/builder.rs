//! [`BundleBuilder`] and [`MemberSpec`]: what a bundle is made of, and loading it:
//! members on every core, roles and aliases resolved, weights and states allocated once
//! per core and uploaded in parallel.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::aliases::Aliases;
use super::bundle::{
    Binding, Bucket, Bundle, BundleInner, Member, MemberKind, ModelConfig, Sampling, Shared,
};
use super::error::BundleError;
use super::load::{LoadProgress, LoadReport, Piece, Progress, pieces, upload};
use super::manifest::Manifest;
use super::metaneff::{MetaNeff, TensorRole};
use super::weights::{WeightFile, shard_file_name};
use crate::collectives::rank_spec::RankSpec;
use crate::error::{Error, Result};
use crate::objects::{Model, Placement, Runtime, TensorInfo};
use crate::parallel::pool::builder::NeffSource;

/// One member of a bundle given in code: its NEFF and what is known about it.
#[derive(Clone, Debug)]
#[must_use]
pub struct MemberSpec {
    name: String,
    neff: NeffSource<'static>,
    metaneff: Option<MetaNeff>,
    bucket: Option<Bucket>,
    kind: MemberKind,
    sampling: Option<Sampling>,
    chain_stage: Option<u32>,
    roles: BTreeMap<String, TensorRole>,
    keys: BTreeMap<String, String>,
    aliases: Aliases,
}

impl MemberSpec {
    /// A member named `name` with the NEFF `neff` (bytes or a file path).
    pub fn new(name: &str, neff: impl Into<NeffSource<'static>>) -> MemberSpec {
        MemberSpec {
            name: name.to_owned(),
            neff: neff.into(),
            metaneff: None,
            bucket: None,
            kind: MemberKind::Other(String::new()),
            sampling: None,
            chain_stage: None,
            roles: BTreeMap::new(),
            keys: BTreeMap::new(),
            aliases: Aliases::new(),
        }
    }

    /// The NEFF's sidecar metadata: roles, checkpoint keys and aliases.
    pub fn metaneff(mut self, meta: MetaNeff) -> MemberSpec {
        self.metaneff = Some(meta);
        self
    }

    /// The bucket it was compiled for.
    pub fn bucket(mut self, bucket: Bucket) -> MemberSpec {
        self.bucket = Some(bucket);
        self
    }

    /// What it computes.
    pub fn kind(mut self, kind: MemberKind) -> MemberSpec {
        self.kind = kind;
        self
    }

    /// What it returns per row.
    pub fn sampling(mut self, sampling: Sampling) -> MemberSpec {
        self.sampling = Some(sampling);
        self
    }

    /// Its position in a chain of members run as one step (0 = the first stage).
    pub fn chain_stage(mut self, stage: u32) -> MemberSpec {
        self.chain_stage = Some(stage);
        self
    }

    /// Input `input` has `role`, whatever the metaneff says.
    pub fn role(mut self, input: &str, role: TensorRole) -> MemberSpec {
        self.roles.insert(input.to_owned(), role);
        self
    }

    /// Input `input` is the weight (or state) under `key` in the checkpoint (default:
    /// the metaneff's `checkpoint_key`, else the input's name).
    pub fn weight_key(mut self, input: &str, key: &str) -> MemberSpec {
        self.keys.insert(input.to_owned(), key.to_owned());
        self
    }

    /// Output `output` updates input `input` in place (besides the metaneff's and the
    /// name suffix's aliases; this one wins).
    pub fn alias(mut self, input: &str, output: &str) -> MemberSpec {
        self.aliases.add(input, output);
        self
    }
}

enum WeightSource {
    None,
    Given(Arc<WeightFile>),
    /// From the bundle directory: read, or mapped.
    Dir {
        manifest: PathBuf,
        dir: PathBuf,
        map: bool,
    },
}

/// Builds a [`Bundle`]: made by [`Bundle::builder`].
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
/// use neuron_rt::Runtime;
/// use neuron_rt::generate::{Bundle, TensorRole};
///
/// // A bundle directory as a compiler leaves it: here the simulator's small decoder
/// // (ten NEFFs, a metaneff.pb beside each, weights.safetensors).
/// let dir = tempfile::tempdir().unwrap();
/// neuron_rt::sim::decoder::write_bundle(dir.path(), &Default::default()).unwrap();
///
/// let runtime = Runtime::builder().simulator().build()?;
/// let done = Arc::new(AtomicU64::new(0));
/// let seen = Arc::clone(&done);
/// let builder = Bundle::builder(&runtime)
///     .dir(dir.path())?
///     .cores([0, 1]) // every member on both cores, one weight and cache copy on each
///     .progress(move |p| seen.store(p.bytes_done, Ordering::Relaxed));
/// // SAFETY: nobody changes the temporary weight file while it is mapped.
/// let bundle = unsafe { builder.map_weights() }.build()?;
///
/// let report = bundle.load_report();
/// assert_eq!(done.load(Ordering::Relaxed), report.uploaded_bytes);
/// assert_eq!(report.uploaded_bytes, 2 * report.weight_bytes);
/// let decode = bundle.member("decode_b1_ids").unwrap();
/// assert_eq!(decode.role("k_l0"), Some(TensorRole::State));
/// assert_eq!(decode.role("embed_tokens.weight"), Some(TensorRole::Weight));
/// println!("{:.0} MB/s, {:?}", report.upload_mb_per_s(), bundle.memory());
/// # Ok::<(), neuron_rt::Error>(())
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct BundleBuilder {
    runtime: Runtime,
    members: Vec<MemberSpec>,
    weights: WeightSource,
    config: Option<ModelConfig>,
    cores: Option<Vec<u32>>,
    rank: Option<RankSpec>,
    /// The manifest's tensor-parallel world, with the manifest file.
    world: Option<(u32, PathBuf)>,
    user_inputs: Vec<String>,
    threads: Option<usize>,
    progress: Option<Progress>,
}

impl Bundle {
    /// A builder for a bundle in `runtime`: add members ([`BundleBuilder::dir`],
    /// [`BundleBuilder::member`]) and weights, then [`build`](BundleBuilder::build).
    pub fn builder(runtime: &Runtime) -> BundleBuilder {
        BundleBuilder {
            runtime: runtime.clone(),
            members: Vec::new(),
            weights: WeightSource::None,
            config: None,
            cores: None,
            rank: None,
            world: None,
            user_inputs: Vec::new(),
            threads: None,
            progress: None,
        }
    }
}

impl BundleBuilder {
    /// Adds the members of the bundle directory `dir` (its `bundle.json`: see the
    /// [module docs](super)) and takes its weight file (`weights.safetensors`, or the
    /// rank's shard for [`rank`](BundleBuilder::rank)), read into memory at
    /// [`build`](BundleBuilder::build) unless [`map_weights`](BundleBuilder::map_weights).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] for an unreadable manifest or metaneff; [`BundleError::Manifest`]
    /// for a malformed manifest; [`BundleError::Metaneff`] for an undecodable metaneff.
    /// A manifest naming a tensor-parallel world (`tensor_parallel.world`) makes
    /// [`build`](BundleBuilder::build) fail with [`BundleError::WorldMismatch`] unless
    /// the bundle is loaded as a [`rank`](BundleBuilder::rank) of a world of that size.
    pub fn dir(mut self, dir: impl AsRef<Path>) -> Result<BundleBuilder> {
        let dir = dir.as_ref();
        let manifest = Manifest::read(dir)?;
        for m in manifest.members {
            let mut spec = MemberSpec::new(&m.name, m.neff).kind(m.kind);
            if let Some(path) = m.metaneff {
                spec = spec.metaneff(MetaNeff::read(path)?);
            }
            spec.bucket = m.bucket;
            spec.sampling = m.sampling;
            spec.chain_stage = m.chain_stage;
            self.members.push(spec);
        }
        self.config = manifest.config.or(self.config);
        self.world = manifest
            .world
            .filter(|&w| w > 1)
            .map(|w| (w, dir.join("bundle.json")));
        self.weights = WeightSource::Dir {
            manifest: manifest.weights,
            dir: dir.to_path_buf(),
            map: false,
        };
        Ok(self)
    }

    /// Memory-maps the directory's weight file instead of reading it (no copy of it in
    /// host memory).
    ///
    /// # Safety
    ///
    /// As [`WeightFile::map`]: until the bundle is built, nobody may truncate or write
    /// the weight file (the mapping is dropped once the weights are on the devices).
    pub unsafe fn map_weights(mut self) -> BundleBuilder {
        if let WeightSource::Dir { map, .. } = &mut self.weights {
            *map = true;
        }
        self
    }

    /// Adds a member given in code.
    pub fn member(mut self, member: MemberSpec) -> BundleBuilder {
        self.members.push(member);
        self
    }

    /// Takes the weights from `file` (instead of a directory's).
    pub fn weights(mut self, file: WeightFile) -> BundleBuilder {
        self.weights = WeightSource::Given(Arc::new(file));
        self
    }

    /// The model dimensions to report ([`Bundle::config`]) when no manifest gives them.
    pub fn config(mut self, config: ModelConfig) -> BundleBuilder {
        self.config = Some(config);
        self
    }

    /// Loads every member on each of `cores` (default: core 0), with one copy of the
    /// weights and states per core.
    pub fn cores(mut self, cores: impl IntoIterator<Item = u32>) -> BundleBuilder {
        self.cores = Some(cores.into_iter().collect());
        self
    }

    /// Loads the bundle as rank `spec.rank` of a tensor-parallel group of `spec.world`
    /// on core `spec.core` (`nrt_load_collectives`; one bundle per rank), taking the
    /// directory's `weights/tp{rank}_sharded_checkpoint.safetensors` when it exists.
    pub fn rank(mut self, spec: RankSpec) -> BundleBuilder {
        self.rank = Some(spec);
        self
    }

    /// Names of the inputs the caller binds per call (ids, positions, ...). Once any
    /// are declared (or a metaneff marks user inputs), an input that is not a user
    /// input, a state or a weight in the file fails the build with
    /// [`BundleError::UnboundInput`]; otherwise such inputs count as user inputs.
    pub fn user_inputs(mut self, names: &[&str]) -> BundleBuilder {
        self.user_inputs
            .extend(names.iter().map(|n| (*n).to_owned()));
        self
    }

    /// Upload threads (default: one per core).
    pub fn threads(mut self, threads: usize) -> BundleBuilder {
        self.threads = Some(threads.max(1));
        self
    }

    /// Calls `f` with the bytes uploaded so far and in all, from the upload threads,
    /// after every piece of at most 8 MiB.
    pub fn progress(mut self, f: impl Fn(LoadProgress) + Send + Sync + 'static) -> BundleBuilder {
        self.progress = Some(Arc::new(f));
        self
    }

    /// Where the weights were expected, for an error when there are none.
    fn expected_weights(&self) -> PathBuf {
        match &self.weights {
            WeightSource::Dir { manifest, .. } => manifest.clone(),
            _ => PathBuf::from("<no weight file given>"),
        }
    }

    fn weight_file(&self) -> Result<Option<Arc<WeightFile>>> {
        match &self.weights {
            WeightSource::None => Ok(None),
            WeightSource::Given(file) => Ok(Some(Arc::clone(file))),
            WeightSource::Dir { manifest, dir, map } => {
                let shard = self.rank.map(|r| dir.join(shard_file_name(r.rank)));
                let path = shard
                    .filter(|p| p.exists())
                    .unwrap_or_else(|| manifest.clone());
                if !path.exists() {
                    return Ok(None);
                }
                let file = if *map {
                    // SAFETY: `map_weights`' caller promised that nobody truncates or
                    // writes the file until the build ends, when this mapping is dropped.
                    unsafe { WeightFile::map(&path)? }
                } else {
                    WeightFile::read(&path)?
                };
                Ok(Some(Arc::new(file)))
            }
        }
    }

    /// Loads every member on every core, binds roles, allocates and uploads the weights
    /// and states.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for no members, no cores, a core listed twice or two
    /// members of one name; [`BundleError::WorldMismatch`] for a tensor-parallel
    /// directory loaded without a [`rank`](BundleBuilder::rank) or as a rank of another
    /// world; the load errors of [`Runtime::load_model_on`] /
    /// [`Runtime::load_model_rank`]; [`BundleError::Metaneff`] when a metaneff names a
    /// tensor its NEFF lacks; [`BundleError::AliasMismatch`]; [`BundleError::UnboundInput`];
    /// [`BundleError::MissingWeight`], [`BundleError::WeightShape`],
    /// [`BundleError::WeightDType`] naming the weight; [`BundleError::StateConflict`];
    /// the errors of allocating and writing tensors. Nothing stays loaded on error.
    pub fn build(self) -> Result<Bundle> {
        let started = Instant::now();
        let cores = match (self.rank, &self.cores) {
            (Some(r), _) => vec![r.core],
            (None, Some(c)) => c.clone(),
            (None, None) => vec![0],
        };
        check_lists(&cores, &self.members)?;
        if let Some((world, file)) = &self.world {
            let loaded = self.rank.map(|r| r.world);
            if loaded != Some(*world) {
                return Err(BundleError::WorldMismatch {
                    file: file.clone(),
                    world: *world,
                    loaded,
                }
                .into());
            }
        }
        let weights = self.weight_file()?;
        let mut loaded = Vec::with_capacity(self.members.len());
        for spec in &self.members {
            let (bytes, _label) = neff_bytes(&spec.neff)?;
            let models = cores
                .iter()
                .map(|&core| match self.rank {
                    Some(r) => self.runtime.load_model_rank(&bytes, r),
                    None => self.runtime.load_model_on(&bytes, core),
                })
                .collect::<Result<Vec<Model>>>()?;
            let (bindings, aliases) =
                resolve(spec, &models[0], weights.as_deref(), &self.user_inputs)?;
            loaded.push((models, bindings, aliases));
        }
        // One tensor per weight and per state: described by the first member taking it.
        let mut weight_infos: BTreeMap<String, TensorInfo> = BTreeMap::new();
        let mut state_infos: BTreeMap<String, (TensorInfo, String)> = BTreeMap::new();
        for (spec, (models, bindings, _)) in self.members.iter().zip(&loaded) {
            for info in models[0].inputs() {
                let b = &bindings[&info.name];
                let keyed = TensorInfo {
                    name: b.key.clone(),
                    ..info.clone()
                };
                match b.role {
                    TensorRole::Weight => {
                        let file =
                            weights
                                .as_deref()
                                .ok_or_else(|| BundleError::MissingWeight {
                                    tensor: b.key.clone(),
                                    file: self.expected_weights(),
                                    member: spec.name.clone(),
                                })?;
                        file.checked(&b.key, info, &spec.name)?;
                        weight_infos.entry(b.key.clone()).or_insert(keyed);
                    }
                    TensorRole::State => match state_infos.get(&b.key) {
                        None => {
                            state_infos.insert(b.key.clone(), (keyed, spec.name.clone()));
                        }
                        Some((first, by)) => same_state(first, by, info, &spec.name)?,
                    },
                    _ => {}
                }
            }
        }
        // Per core: allocate; states start at zero unless the file holds a value.
        let mut shared = Shared {
            cores: cores.clone(),
            weights: Vec::with_capacity(cores.len()),
            states: Vec::with_capacity(cores.len()),
            slots_in_use: std::sync::Mutex::new(vec![0; cores.len()]),
        };
        for &core in &cores {
            let mut w = BTreeMap::new();
            for (key, info) in &weight_infos {
                w.insert(
                    key.clone(),
                    self.runtime
                        .allocate_for(info, Placement::Device, Some(core))?,
                );
            }
            let mut s = BTreeMap::new();
            for (key, (info, by)) in &state_infos {
                let tensor = self
                    .runtime
                    .allocate_for(info, Placement::Device, Some(core))?;
                match weights.as_deref().filter(|f| f.get(key).is_some()) {
                    Some(file) => drop(file.checked(key, info, by)?),
                    None => tensor.fill(0)?,
                }
                s.insert(key.clone(), tensor);
            }
            shared.weights.push(w);
            shared.states.push(s);
        }
        let mut list: Vec<Piece<'_>> = Vec::new();
        if let Some(file) = weights.as_deref() {
            for slot in 0..cores.len() {
                for (key, tensor) in shared.weights[slot].iter().chain(&shared.states[slot]) {
                    if let Some(view) = file.get(key) {
                        pieces(tensor, view.data, &mut list);
                    }
                }
            }
        }
        let threads = self.threads.unwrap_or(cores.len());
        let (elapsed, threads) = upload(&list, threads, self.progress.as_ref())?;
        let weight_bytes: u64 = weight_infos.values().map(|i| i.size as u64).sum();
        let report = LoadReport {
            weight_bytes,
            uploaded_bytes: list.iter().map(|p| p.data.len() as u64).sum(),
            state_bytes: state_infos.values().map(|(i, _)| i.size as u64).sum(),
            elapsed,
            threads,
            cores: cores.len(),
        };
        drop(list);
        let shared = Arc::new(shared);
        let members = self
            .members
            .into_iter()
            .zip(loaded)
            .map(|(spec, (models, bindings, aliases))| Member {
                name: spec.name,
                bucket: spec.bucket,
                kind: spec.kind,
                sampling: spec.sampling,
                chain_stage: spec.chain_stage,
                models,
                bindings,
                aliases,
                shared: Arc::clone(&shared),
            })
            .collect::<Vec<_>>();
        log::info!(
            "bundle: {} members on cores {:?}, {} weight bytes per core, uploaded at {:.0} MB/s, loaded in {:?}",
            members.len(),
            cores,
            weight_bytes,
            report.upload_mb_per_s(),
            started.elapsed()
        );
        Ok(Bundle {
            inner: Arc::new(BundleInner {
                runtime: self.runtime,
                members,
                shared,
                config: self.config,
                report,
            }),
        })
    }
}

fn check_lists(cores: &[u32], members: &[MemberSpec]) -> Result<()> {
    if members.is_empty() {
        return Err(Error::invalid(
            "members",
            "a bundle needs at least one member, got none",
        ));
    }
    if cores.is_empty() {
        return Err(Error::invalid(
            "cores",
            "a bundle needs at least one core, got none",
        ));
    }
    for (i, c) in cores.iter().enumerate() {
        if cores[..i].contains(c) {
            return Err(Error::invalid(
                "cores",
                format!("core {c} is listed twice in {cores:?}"),
            ));
        }
    }
    for (i, m) in members.iter().enumerate() {
        if members[..i].iter().any(|e| e.name == m.name) {
            return Err(Error::invalid(
                "members",
                format!("two members are named `{}`", m.name),
            ));
        }
    }
    Ok(())
}

fn neff_bytes(neff: &NeffSource<'_>) -> Result<(Vec<u8>, String)> {
    match neff {
        NeffSource::Bytes(b) => Ok((b.to_vec(), "<in-memory model>".into())),
        NeffSource::File(path) => std::fs::read(path)
            .map(|b| (b, path.display().to_string()))
            .map_err(|error| Error::Io {
                path: path.clone(),
                error,
            }),
    }
}

/// [`BundleError::StateConflict`] unless member `member`'s input `info` takes the same
/// state as `first` (of member `by`): same size, element type and shape.
fn same_state(first: &TensorInfo, by: &str, info: &TensorInfo, member: &str) -> Result<()> {
    if first.size != info.size || first.dtype != info.dtype || first.shape != info.shape {
        return Err(BundleError::StateConflict {
            state: first.name.clone(),
            member: member.to_owned(),
            reason: format!(
                "input `{}` is {} {:?} ({} bytes), member `{by}` takes it as {} {:?} ({} bytes)",
                info.name, info.dtype, info.shape, info.size, first.dtype, first.shape, first.size
            ),
        }
        .into());
    }
    Ok(())
}

/// Every input's role and key, and the aliases, for member `spec` loaded as `model`.
fn resolve(
    spec: &MemberSpec,
    model: &Model,
    weights: Option<&WeightFile>,
    declared_user: &[String],
) -> Result<(BTreeMap<String, Binding>, Aliases)> {
    let meta = spec.metaneff.as_ref();
    if let Some(meta) = meta {
        for (role, list, infos) in [
            ("input", &meta.inputs, model.inputs()),
            ("output", &meta.outputs, model.outputs()),
        ] {
            if let Some(t) = list
                .iter()
                .find(|t| !infos.iter().any(|i| i.name == t.name))
            {
                return Err(BundleError::Metaneff {
                    file: format!("of member `{}`", spec.name),
                    reason: format!(
                        "it lists {role} `{}`, which the NEFF does not have (its {role}s: {})",
                        t.name,
                        infos
                            .iter()
                            .map(|i| i.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }
                .into());
            }
        }
    }
    let mut aliases = match meta {
        Some(m) => Aliases::from_metaneff(model, m)?,
        None => Aliases::new(),
    };
    aliases = aliases
        .merged(&Aliases::from_suffix(model))
        .merged(&spec.aliases);
    aliases.check_as(model, &spec.name)?;
    let strict = !declared_user.is_empty()
        || meta.is_some_and(|m| m.inputs.iter().any(|t| t.role == TensorRole::User));
    let mut bindings = BTreeMap::new();
    for info in model.inputs() {
        let name = info.name.as_str();
        let meta_t = meta.and_then(|m| m.input(name));
        let key = spec
            .keys
            .get(name)
            .cloned()
            .or_else(|| meta_t.and_then(|t| t.checkpoint_key.clone()))
            .unwrap_or_else(|| name.to_owned());
        let in_file = weights.is_some_and(|w| w.get(&key).is_some());
        let role = spec
            .roles
            .get(name)
            .copied()
            .or(meta_t
                .map(|t| t.role)
                .filter(|r| *r != TensorRole::Unspecified))
            .or(declared_user
                .iter()
                .any(|u| u == name)
                .then_some(TensorRole::User))
            .or(aliases.output_of(name).map(|_| TensorRole::State))
            .or(in_file.then_some(TensorRole::Weight))
            .or((!strict).then_some(TensorRole::User))
            .filter(|r| *r != TensorRole::Unspecified)
            .ok_or_else(|| BundleError::UnboundInput {
                member: spec.name.clone(),
                input: name.to_owned(),
            })?;
        let key = if role == TensorRole::User {
            name.to_owned()
        } else {
            key
        };
        bindings.insert(name.to_owned(), Binding { role, key });
    }
    Ok((bindings, aliases))
}
