//! [`Model`]: a model loaded on a NeuronCore, its tensor descriptions, and synchronous execution.

use std::ffi::c_int;
use std::fmt;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use nrt_sys as sys;

use super::capabilities::Capabilities;
use super::host_lock::{Access, HostGuard, lock_host_storage};
use super::runtime::Runtime;
use super::stack;
use super::tensor::Placement;
use super::tensor::core_arg;
use super::tensor_set::TensorSet;
use crate::collectives::rank_spec::RankSpec;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::profiling::spans;
use crate::raw;

/// Whether a model tensor is read or written by the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TensorUsage {
    /// An input.
    Input,
    /// An output.
    Output,
}

/// One input or output of a model, as libnrt describes it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorInfo {
    /// The name to bind a tensor under in a [`TensorSet`].
    pub name: String,
    /// Input or output.
    pub usage: TensorUsage,
    /// Size in bytes.
    pub size: usize,
    /// Element type.
    pub dtype: DType,
    /// Dimensions.
    pub shape: Vec<u32>,
}

impl TensorInfo {
    /// The number of elements (product of the shape; 1 for a scalar), or `None` on overflow.
    pub fn element_count(&self) -> Option<usize> {
        self.shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?))
    }
}

/// What libnrt reports about a loaded model (`nrt_get_model_info`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ModelInfo {
    /// The NeuronCore the model is loaded on.
    pub core: u32,
}

/// A model (compiled NEFF) loaded on a NeuronCore; unloaded (`nrt_unload`) when the last
/// handle is dropped.
///
/// `Model` is a handle: `clone` gives another handle to the same loaded model. It is
/// `Send + Sync`, so one model can be shared by threads: libnrt documents `nrt_execute` as
/// callable concurrently on the same model (each thread with its own tensor sets).
///
/// ```no_run
/// use neuron_rt::Runtime;
///
/// let runtime = Runtime::new()?;
/// let model = runtime.load_model_file("model.neff")?;
/// let inputs = model.allocate_inputs()?;
/// let mut outputs = model.allocate_outputs()?;
/// for (name, tensor) in inputs.iter() {
///     tensor.fill(0)?;
///     println!("input {name}: {} bytes", tensor.size());
/// }
/// model.execute(&inputs, &mut outputs)?;
/// let first = &model.outputs()[0];
/// let values: Vec<f32> = outputs.get(&first.name).unwrap().to_vec()?;
/// # Ok::<(), neuron_rt::Error>(())
/// ```
#[derive(Clone)]
pub struct Model {
    pub(crate) inner: Arc<ModelInner>,
}

pub(crate) struct ModelInner {
    raw: NonNull<sys::nrt_model_t>,
    /// Unique in the process (never reused), for the binding checks sets remember.
    id: u64,
    rt: Runtime,
    label: String,
    core: Option<u32>,
    /// The collective rank it was loaded as (`nrt_load_collectives`).
    rank: Option<RankSpec>,
    inputs: Vec<TensorInfo>,
    outputs: Vec<TensorInfo>,
    /// Input and output sets kept for reuse by [`Model::run`] (`crate::run`).
    pub(crate) run_sets: crate::io::run::SetPool,
}

// libnrt documents nrt_execute as callable from several threads at once on the same
// model; its other model functions (tensor info, model info, unload) take the handle
// from any thread. The Rust-side fields are immutable after loading.
// SAFETY: see above; unload runs once, from the last owner, on whatever thread that is.
unsafe impl Send for ModelInner {}
// SAFETY: as for `Send` above.
unsafe impl Sync for ModelInner {}

impl Drop for ModelInner {
    fn drop(&mut self) {
        // SAFETY: `raw` is a loaded model of this runtime, unloaded exactly once (this is
        // the last owner, so no execution or request uses it).
        unsafe { raw::model::unload(self.rt.inner.lib(), self.raw) };
    }
}

impl Runtime {
    /// Loads a model from the bytes of a NEFF file onto the first free NeuronCore.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] without [`Capabilities::MODEL_TENSOR_INFO`];
    /// [`Error::InvalidArgument`] for empty bytes; [`Error::Nrt`] if libnrt rejects the model (e.g.
    /// [`NrtStatus::Invalid`](crate::NrtStatus::Invalid) for a bad file,
    /// [`NrtStatus::LoadNotEnoughNc`](crate::NrtStatus::LoadNotEnoughNc) when no core is free).
    pub fn load_model(&self, neff: &[u8]) -> Result<Model> {
        self.load(neff, None, header_name(neff), None)
    }

    /// Loads a model from the bytes of a NEFF file onto NeuronCore `core`.
    ///
    /// # Errors
    ///
    /// As [`Runtime::load_model`], and [`Error::InvalidArgument`] for a core above `i32::MAX`.
    pub fn load_model_on(&self, neff: &[u8], core: u32) -> Result<Model> {
        self.load(neff, Some(core), header_name(neff), None)
    }

    /// Loads a model as one rank of a collective group (`nrt_load_collectives`): on
    /// `spec.core`, as rank `spec.rank` of `spec.world`. Every rank of the group must
    /// execute at the same time (their collectives wait for each other); for several
    /// ranks in this process see [`Runtime::load_rank_group`]. Ranks in other processes
    /// (one per rank, as torchrun launches them, see [`RankSpec::from_env`]) need
    /// `NEURON_RT_ROOT_COMM_ID` set before the runtime starts.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] without [`Capabilities::COLLECTIVES`]; the errors of
    /// [`Runtime::load_model_on`] (libnrt's failures from `nrt_load_collectives`).
    pub fn load_model_rank(&self, neff: &[u8], spec: RankSpec) -> Result<Model> {
        self.require(
            Capabilities::COLLECTIVES,
            "collectives (nrt_load_collectives)",
        )?;
        let spec = RankSpec::new(spec.core, spec.rank, spec.world)?;
        self.load(neff, Some(spec.core), header_name(neff), Some(spec))
    }

    /// Reads a NEFF file and loads it onto the first free NeuronCore.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be read; otherwise as [`Runtime::load_model`].
    pub fn load_model_file(&self, path: impl AsRef<Path>) -> Result<Model> {
        let (bytes, label) = read_model_file(path.as_ref())?;
        self.load(&bytes, None, label, None)
    }

    /// Reads a NEFF file and loads it onto NeuronCore `core`.
    ///
    /// # Errors
    ///
    /// As [`Runtime::load_model_file`] and [`Runtime::load_model_on`].
    pub fn load_model_file_on(&self, path: impl AsRef<Path>, core: u32) -> Result<Model> {
        let (bytes, label) = read_model_file(path.as_ref())?;
        self.load(&bytes, Some(core), label, None)
    }

    fn load(
        &self,
        neff: &[u8],
        core: Option<u32>,
        label: String,
        rank: Option<RankSpec>,
    ) -> Result<Model> {
        let span = spans::info_span!(
            "neuron_rt.load",
            model = %label,
            cores = tracing::field::Empty,
            neff_bytes = neff.len(),
            duration = tracing::field::Empty,
        );
        let _entered = span.enter();
        let started = Instant::now();
        let loaded = self.load_inner(neff, core, label, rank);
        spans::record_duration(&span, "duration", started.elapsed());
        if let Some(core) = loaded.as_ref().ok().and_then(Model::core) {
            span.record("cores", core);
        }
        spans::record_result(&span, &loaded);
        loaded
    }

    fn load_inner(
        &self,
        neff: &[u8],
        core: Option<u32>,
        label: String,
        rank: Option<RankSpec>,
    ) -> Result<Model> {
        self.require(
            Capabilities::SYNC_CORE | Capabilities::MODEL_TENSOR_INFO,
            "model loading",
        )?;
        if neff.is_empty() {
            return Err(Error::invalid(
                "neff",
                format!("model `{label}` has 0 bytes: not a model file"),
            ));
        }
        let vnc = core_arg(core)?;
        let lib = self.inner.lib();
        let raw = match rank {
            None => raw::model::load(lib, neff, vnc),
            Some(r) => raw::model::load_collectives(lib, neff, vnc, r.rank, r.world),
        }
        .map_err(|e| crate::diagnose::hints::load_error(self, e, neff, &label, core))?;
        // Ids start at 1, so a set's "no check passed" (0) never matches a role key.
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let mut inner = ModelInner {
            raw,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            rt: self.clone(),
            label,
            core,
            rank,
            inputs: Vec::new(),
            outputs: Vec::new(),
            run_sets: crate::io::run::SetPool::default(),
        };
        // From here on a failure unloads the model (ModelInner::drop).
        if self.capabilities().contains(Capabilities::MODEL_INFO) {
            inner.core = Some(inner.query_info()?.core);
        }
        let (inputs, outputs) = inner.query_tensor_info()?;
        inner.inputs = inputs;
        inner.outputs = outputs;
        Ok(super::logging::model_loaded(Model {
            inner: Arc::new(inner),
        }))
    }
}

/// Locks the host storage of the tensors an execution reads (`inputs`, shared) and
/// writes (`outputs`, exclusive); see the `Tensor` docs. No lock and no allocation when
/// every tensor is in device memory.
fn lock_set_storage<'a>(inputs: &'a TensorSet, outputs: &'a TensorSet) -> Vec<HostGuard<'a>> {
    // The sets know whether they hold host tensors: without, no tensor is looked at.
    if !inputs.has_host_storage() && !outputs.has_host_storage() {
        return Vec::new();
    }
    lock_host_storage(
        inputs
            .iter()
            .map(|(_, t)| (t, Access::Read))
            .chain(outputs.iter().map(|(_, t)| (t, Access::Write))),
    )
}

/// The model name from a NEFF header (bytes 220..476, NUL-terminated; section 5 of the
/// project's ABI notes), when it holds text; a label for messages only.
fn header_name(neff: &[u8]) -> String {
    neff.get(220..476)
        .map(|field| field.split(|&b| b == 0).next().unwrap_or_default())
        .and_then(|name| std::str::from_utf8(name).ok())
        .filter(|name| !name.is_empty() && name.chars().all(|c| !c.is_control()))
        .map_or_else(|| "<in-memory model>".to_owned(), str::to_owned)
}

fn read_model_file(path: &Path) -> Result<(Vec<u8>, String)> {
    let bytes = std::fs::read(path).map_err(|error| Error::Io {
        path: path.to_path_buf(),
        error,
    })?;
    Ok((bytes, path.display().to_string()))
}

impl ModelInner {
    fn query_info(&self) -> Result<ModelInfo> {
        // SAFETY: the model is loaded (this value owns it).
        let (info, written) =
            unsafe { raw::model::get_model_info(self.rt.inner.lib(), self.raw.as_ptr()) }
                .map_err(|e| e.context(format!("model `{}`", self.label)))?;
        let size = size_of::<sys::nrt_model_info_t>();
        if written < size {
            return Err(Error::UnexpectedResult {
                function: "nrt_get_model_info",
                reason: format!("wrote {written} bytes of model info, expected {size}"),
            });
        }
        Ok(ModelInfo { core: info.vnc })
    }

    fn query_tensor_info(&self) -> Result<(Vec<TensorInfo>, Vec<TensorInfo>)> {
        // SAFETY: the model is loaded (this value owns it).
        let entries =
            unsafe { raw::model::get_model_tensor_info(self.rt.inner.lib(), self.raw.as_ptr()) }
                .map_err(|e| e.context(format!("model `{}`", self.label)))?;
        let mut infos = Vec::with_capacity(entries.len());
        for entry in entries {
            let usage = match entry.usage {
                sys::NRT_TENSOR_USAGE_INPUT => TensorUsage::Input,
                sys::NRT_TENSOR_USAGE_OUTPUT => TensorUsage::Output,
                other => {
                    return Err(Error::UnexpectedResult {
                        function: "nrt_get_model_tensor_info",
                        reason: format!(
                            "tensor `{}` of model `{}` has unknown usage {other}",
                            entry.name, self.label
                        ),
                    });
                }
            };
            infos.push(TensorInfo {
                name: entry.name,
                usage,
                size: entry.size,
                dtype: DType::from_raw(entry.dtype),
                shape: entry.shape,
            });
        }
        let (inputs, outputs) = infos
            .into_iter()
            .partition(|info| info.usage == TensorUsage::Input);
        Ok((inputs, outputs))
    }
}

/// [`stack::with_exec_stack`] for the execution calls, with its error typed.
fn with_exec_stack<R: Send>(f: impl FnOnce() -> R + Send) -> Result<R> {
    stack::with_exec_stack(f).map_err(|error| Error::Thread {
        what: "nrt_execute (the calling thread has too little stack)",
        error,
    })
}

impl Model {
    /// The collective rank the model was loaded as ([`Runtime::load_model_rank`]), `None`
    /// for a model loaded alone.
    pub fn rank(&self) -> Option<RankSpec> {
        self.inner.rank
    }

    /// The inputs, in the order libnrt lists them.
    pub fn inputs(&self) -> &[TensorInfo] {
        &self.inner.inputs
    }

    /// The outputs, in the order libnrt lists them.
    pub fn outputs(&self) -> &[TensorInfo] {
        &self.inner.outputs
    }

    /// The input or output named `name`.
    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.inputs()
            .iter()
            .chain(self.outputs())
            .find(|info| info.name == name)
    }

    /// The NeuronCore the model is loaded on: as reported by libnrt, or as requested at
    /// load; `None` only for an auto-placed model on a library without `nrt_get_model_info`.
    pub fn core(&self) -> Option<u32> {
        self.inner.core
    }

    /// A label for messages: the file path, or the name in the model header.
    pub fn label(&self) -> &str {
        &self.inner.label
    }

    /// Asks libnrt for the model's information (`nrt_get_model_info`).
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] without [`Capabilities::MODEL_INFO`]; [`Error::Nrt`] if it fails.
    pub fn info(&self) -> Result<ModelInfo> {
        self.inner
            .rt
            .require(Capabilities::MODEL_INFO, "model information")?;
        self.inner.query_info()
    }

    /// The runtime the model is loaded in.
    pub fn runtime(&self) -> &Runtime {
        &self.inner.rt
    }

    /// Runs the model once (`nrt_execute`): reads the tensors bound in `inputs`, writes
    /// those bound in `outputs`.
    ///
    /// Before calling libnrt, checks that every model input and output is bound under
    /// its name with exactly the model's size, on the model's core.
    ///
    /// # Errors
    ///
    /// [`Error::MissingTensor`], [`Error::SizeMismatch`], [`Error::WrongCore`] or
    /// [`Error::ForeignHandle`] naming the offending tensor (nothing runs);
    /// [`Error::Nrt`] if the execution fails; [`Error::Thread`] if the calling thread
    /// has too little stack and no helper thread could be started.
    ///
    /// # Stack
    ///
    /// libnrt's `nrt_execute` needs several MiB of stack. When less than
    /// [`EXEC_STACK_NEEDED`](crate::EXEC_STACK_NEEDED) is left on the calling thread
    /// (Rust's spawned threads have 2 MiB; a process's main thread usually 8 MiB in all,
    /// which is enough), the call runs on a helper thread with a large stack while this
    /// one waits (helpers
    /// are kept and reused: a hand-off of tens of microseconds per call). Execute from
    /// threads with 16 MiB stacks to avoid that.
    pub fn execute(&self, inputs: &TensorSet, outputs: &mut TensorSet) -> Result<()> {
        self.check_bindings(inputs, outputs)?;
        let span = spans::debug_span!(
            "neuron_rt.execute",
            model = %self.label(),
            core = self.inner.core,
        );
        let _entered = span.enter();
        let guards = lock_set_storage(inputs, outputs);
        let lib = self.inner.rt.inner.lib();
        let result = with_exec_stack(|| {
            // Why the call below is sound: the model and both sets are live handles of the
            // same runtime, every tensor bound in them is kept alive by its set, and each
            // model tensor is bound with its exact size (checked above); this thread has
            // the stack room libnrt needs (`with_exec_stack`). The host storage of the
            // bound tensors is locked (`guards`), so no other thread copies into or out
            // of it meanwhile.
            // SAFETY: the conditions just above hold for this call.
            unsafe { raw::exec::execute(lib, self.raw(), inputs.raw(), outputs.raw()) }
        });
        drop(guards);
        let result =
            result.and_then(|r| r.map_err(|e| e.context(format!("model `{}`", self.label()))));
        spans::record_result(&span, &result);
        result
    }

    /// Runs the model `repeat` times in a row with the same tensors (`nrt_execute_repeat`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `repeat` is 0 or above `i32::MAX`; otherwise as
    /// [`Model::execute`] (also its stack rule).
    pub fn execute_repeat(
        &self,
        inputs: &TensorSet,
        outputs: &mut TensorSet,
        repeat: u32,
    ) -> Result<()> {
        let count = c_int::try_from(repeat)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                Error::invalid(
                    "repeat",
                    format!("must be 1 to {}, got {repeat}", c_int::MAX),
                )
            })?;
        self.check_bindings(inputs, outputs)?;
        let guards = lock_set_storage(inputs, outputs);
        let lib = self.inner.rt.inner.lib();
        let result = with_exec_stack(|| {
            // SAFETY: as in `execute`; `count` is at least 1 (checked).
            unsafe {
                raw::exec::execute_repeat(lib, self.raw(), inputs.raw(), outputs.raw(), count)
            }
        });
        drop(guards);
        result?.map_err(|e| e.context(format!("model `{}`, {repeat} times", self.label())))
    }

    /// A set with a new device tensor for every input, named and sized as the model
    /// says, on the model's core.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] if the model's core is unknown, or the library cannot
    /// create and free tensor sets and tensors ([`Runtime::tensor_set`],
    /// [`Runtime::allocate_tensor`]); [`Error::Nrt`] if an allocation fails. Nothing
    /// is left allocated on error.
    pub fn allocate_inputs(&self) -> Result<TensorSet> {
        self.allocate_set(self.inputs())
    }

    /// A set with a new device tensor for every output, named and sized as the model
    /// says, on the model's core.
    ///
    /// # Errors
    ///
    /// As [`Model::allocate_inputs`].
    pub fn allocate_outputs(&self) -> Result<TensorSet> {
        self.allocate_set(self.outputs())
    }

    fn allocate_set(&self, infos: &[TensorInfo]) -> Result<TensorSet> {
        let core = self.core().ok_or_else(|| Error::Unsupported {
            feature: "nrt_get_model_info",
            needed: Some("a libnrt that reports the core of an auto-placed model".into()),
        })?;
        let rt = self.runtime();
        let mut set = rt.tensor_set()?;
        for info in infos {
            let tensor = rt.allocate_for(info, Placement::Device, Some(core))?;
            set.insert(&info.name, &tensor)?;
        }
        Ok(set)
    }

    /// The raw libnrt model, valid while this `Model` (or a clone) is alive.
    pub(crate) fn raw(&self) -> *mut sys::nrt_model_t {
        self.inner.raw.as_ptr()
    }

    /// Checks that `inputs` and `outputs` bind every model input and output with the
    /// model's size, on its core, in its runtime: the checks every execution path (sync
    /// and async) makes before handing the sets to libnrt.
    pub(crate) fn check_bindings(&self, inputs: &TensorSet, outputs: &TensorSet) -> Result<()> {
        // Checked once per set and role: a set that passed for this model and did not
        // change since passes again (see `TensorSet::passed`), which spares the name
        // lookups of every call after the first.
        let (as_inputs, as_outputs) = (self.inner.id << 1, self.inner.id << 1 | 1);
        if inputs.passed(as_inputs) && outputs.passed(as_outputs) {
            return Ok(());
        }
        self.check_each_binding(inputs, outputs)?;
        inputs.mark_passed(as_inputs);
        outputs.mark_passed(as_outputs);
        Ok(())
    }

    fn check_each_binding(&self, inputs: &TensorSet, outputs: &TensorSet) -> Result<()> {
        let rt = self.runtime();
        rt.check_same(inputs.runtime(), || "input tensor set".into())?;
        rt.check_same(outputs.runtime(), || "output tensor set".into())?;
        for (role, infos, set) in [
            ("input", self.inputs(), inputs),
            ("output", self.outputs(), outputs),
        ] {
            for info in infos {
                let tensor = set.get(&info.name).ok_or_else(|| Error::MissingTensor {
                    model: self.label().to_owned(),
                    role,
                    tensor: info.name.clone(),
                })?;
                if tensor.size() != info.size {
                    return Err(Error::SizeMismatch {
                        tensor: info.name.clone(),
                        what: if role == "input" {
                            "model input"
                        } else {
                            "model output"
                        },
                        expected: info.size,
                        actual: tensor.size(),
                    });
                }
                if let (Placement::Device, Some(tensor_core), Some(model_core)) =
                    (tensor.placement(), tensor.core(), self.core())
                    && tensor_core != model_core
                {
                    return Err(Error::WrongCore {
                        tensor: tensor.name().to_owned(),
                        tensor_core,
                        what: format!("model `{}`", self.label()),
                        expected_core: model_core,
                    });
                }
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model")
            .field("label", &self.inner.label)
            .field("core", &self.inner.core)
            .field("inputs", &self.inner.inputs)
            .field("outputs", &self.inner.outputs)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_name_is_read_when_it_is_text() {
        let mut neff = vec![0u8; 1024];
        neff[220..223].copy_from_slice(b"add");
        assert_eq!(header_name(&neff), "add");
        assert_eq!(header_name(&[1, 2, 3]), "<in-memory model>");
        neff[220] = 0xff;
        assert_eq!(header_name(&neff), "<in-memory model>");
    }

    #[test]
    fn element_count_multiplies_the_shape() {
        let mut info = TensorInfo {
            name: "x".into(),
            usage: TensorUsage::Input,
            size: 24,
            dtype: DType::F32,
            shape: vec![2, 3],
        };
        assert_eq!(info.element_count(), Some(6));
        info.shape.clear();
        assert_eq!(info.element_count(), Some(1));
        info.shape = vec![u32::MAX, u32::MAX, u32::MAX];
        assert_eq!(info.element_count(), None);
    }
}
