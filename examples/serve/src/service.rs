//! The inference service: one replica of the model per core, requests admitted to the
//! least-loaded live core, a core whose unit died taken out of the rotation.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use neuron_rt::{Error, ExecSets, ExecUnit, Model, NrtStatus, Runtime, TensorInfo};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::stats::{Counter, Histogram};
use crate::tensors::{self, HostData};

/// The body of `POST /infer`: one flat array per model input.
#[derive(Deserialize, Debug)]
pub struct InferRequest {
    pub inputs: HashMap<String, Value>,
}

/// The answer to a successful `POST /infer`.
#[derive(Serialize, Deserialize, Debug)]
pub struct InferResponse {
    pub outputs: HashMap<String, Value>,
    /// The core that ran the request.
    pub core: u32,
    /// Time in the service, from admission to the outputs read back.
    pub latency_ms: f64,
}

/// Why a request got no outputs.
#[derive(Debug)]
pub enum InferError {
    /// The inputs do not fit the model (HTTP 400).
    BadRequest(String),
    /// The execution (or a transfer) failed on `core` (HTTP 500, or 503 when the
    /// core's unit became unrecoverable).
    Device { core: u32, error: Error },
    /// No core is left in the rotation (HTTP 503).
    NoCore,
}

/// One core: its copy of the model, its units and a pool of tensor sets.
pub struct Replica {
    pub core: u32,
    model: Model,
    compute: ExecUnit,
    /// TENSOR_OP queue 0 of the core, for transfers too large to copy synchronously.
    copy: ExecUnit,
    /// Sets not used by a request; a request takes one pair and returns it when done
    /// (a failed request's sets are gone with its error: the pool allocates anew).
    pool: Mutex<Vec<ExecSets>>,
    /// Requests assigned to this core that have not finished (in admission or running).
    load: AtomicUsize,
    dead: AtomicBool,
    pub stats: CoreStats,
}

#[derive(Default)]
pub struct CoreStats {
    pub ok: Counter,
    /// Requests that completed with an error status on this core.
    pub failed: Counter,
    /// Requests that completed with a fatal status (the unit died under them):
    /// the one the failure struck, and those queued behind it.
    pub fatal: Counter,
    /// Requests refused by this core's dead unit before running, sent to another core.
    pub rerouted: Counter,
}

/// Counters of the whole service.
#[derive(Default)]
pub struct Stats {
    pub requests: Counter,
    pub ok: Counter,
    pub errors: Counter,
    pub bad_requests: Counter,
    pub no_core: Counter,
    /// Admission to answer, successful requests.
    pub latency: Histogram,
    /// Accepted by the unit to completion observed, successful requests.
    pub device: Histogram,
}

pub struct Service {
    replicas: Vec<Replica>,
    inputs: Vec<TensorInfo>,
    outputs: Vec<TensorInfo>,
    next: AtomicUsize,
    pub stats: Stats,
}

/// Decrements a replica's load when the request leaves it, however it leaves.
struct Assigned<'a>(&'a AtomicUsize);

impl Drop for Assigned<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Service {
    /// Loads `neff` on each of `cores` and prepares one set pair per core.
    pub fn new(runtime: &Runtime, neff: &[u8], cores: &[u32]) -> neuron_rt::Result<Service> {
        let mut replicas = Vec::new();
        for &core in cores {
            let model = runtime.load_model_on(neff, core)?;
            let sets = (model.allocate_inputs()?, model.allocate_outputs()?);
            replicas.push(Replica {
                core,
                compute: runtime.compute_unit(core)?,
                copy: runtime.tensor_op_unit(core, 0)?,
                model,
                pool: Mutex::new(vec![sets]),
                load: AtomicUsize::new(0),
                dead: AtomicBool::new(false),
                stats: CoreStats::default(),
            });
        }
        let first = replicas.first().ok_or(Error::InvalidArgument {
            argument: "cores",
            reason: "no core to serve on".into(),
        })?;
        let (inputs, outputs) = (
            first.model.inputs().to_vec(),
            first.model.outputs().to_vec(),
        );
        if let Some(t) = inputs
            .iter()
            .chain(&outputs)
            .find(|t| !tensors::supported(t.dtype))
        {
            return Err(Error::InvalidArgument {
                argument: "model",
                reason: format!(
                    "tensor `{}` has type {:?}, not served over JSON",
                    t.name, t.dtype
                ),
            });
        }
        Ok(Service {
            replicas,
            inputs,
            outputs,
            next: AtomicUsize::new(0),
            stats: Stats::default(),
        })
    }

    pub fn replicas(&self) -> &[Replica] {
        &self.replicas
    }

    pub fn model_inputs(&self) -> &[TensorInfo] {
        &self.inputs
    }

    /// Runs one request to its end: outputs, or the reason there are none.
    pub async fn infer(
        self: Arc<Self>,
        request: InferRequest,
    ) -> Result<InferResponse, InferError> {
        self.stats.requests.add();
        let started = Instant::now();
        let result = self.run(request, started).await;
        match &result {
            Ok(_) => {
                self.stats.ok.add();
                self.stats.latency.record(started.elapsed());
            }
            Err(InferError::BadRequest(_)) => self.stats.bad_requests.add(),
            Err(InferError::NoCore) => self.stats.no_core.add(),
            Err(InferError::Device { .. }) => {}
        }
        if result.is_err() {
            self.stats.errors.add();
        }
        result
    }

    async fn run(
        &self,
        mut request: InferRequest,
        started: Instant,
    ) -> Result<InferResponse, InferError> {
        let mut data = Vec::with_capacity(self.inputs.len());
        for info in &self.inputs {
            let value = request.inputs.remove(&info.name).ok_or_else(|| {
                InferError::BadRequest(format!("input `{}` is missing", info.name))
            })?;
            data.push(tensors::parse(info, &value).map_err(InferError::BadRequest)?);
        }
        if let Some(name) = request.inputs.keys().next() {
            return Err(InferError::BadRequest(format!(
                "the model has no input `{name}`"
            )));
        }
        // Each pass either answers or takes a dead core out of the rotation.
        for _ in 0..=self.replicas.len() {
            let replica = self.pick().ok_or(InferError::NoCore)?;
            match replica
                .run(&self.inputs, &data, &self.outputs, &self.stats)
                .await
            {
                Attempt::Done(outputs) => {
                    return Ok(InferResponse {
                        outputs,
                        core: replica.core,
                        latency_ms: (started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
                    });
                }
                Attempt::Failed(error) => {
                    return Err(InferError::Device {
                        core: replica.core,
                        error,
                    });
                }
                Attempt::Refused => replica.stats.rerouted.add(),
            }
        }
        Err(InferError::NoCore)
    }

    /// The live replica with the fewest requests assigned (ties: round robin).
    fn pick(&self) -> Option<&Replica> {
        let n = self.replicas.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| &self.replicas[(start + k) % n])
            .filter(|r| r.alive())
            .min_by_key(|r| r.load.load(Ordering::Relaxed))
    }
}

/// How one try on one core ended.
enum Attempt {
    Done(HashMap<String, Value>),
    Failed(Error),
    /// The core's unit is dead and ran nothing: try another core.
    Refused,
}

impl Replica {
    /// Whether the core is in the rotation.
    pub fn alive(&self) -> bool {
        !self.dead.load(Ordering::Relaxed) && self.compute.unrecoverable().is_none()
    }

    /// The fatal status that took the core out of the rotation, if any.
    pub fn dead_status(&self) -> Option<NrtStatus> {
        self.compute.unrecoverable()
    }

    pub fn load(&self) -> usize {
        self.load.load(Ordering::Relaxed)
    }

    fn take_sets(&self) -> neuron_rt::Result<ExecSets> {
        let pooled = self.pool.lock().ok().and_then(|mut pool| pool.pop());
        match pooled {
            Some(sets) => Ok(sets),
            None => Ok((
                self.model.allocate_inputs()?,
                self.model.allocate_outputs()?,
            )),
        }
    }

    fn give_back(&self, sets: ExecSets) {
        if let Ok(mut pool) = self.pool.lock() {
            pool.push(sets);
        }
    }

    async fn run(
        &self,
        inputs: &[TensorInfo],
        data: &[HostData],
        outputs: &[TensorInfo],
        stats: &Stats,
    ) -> Attempt {
        self.load.fetch_add(1, Ordering::Relaxed);
        let _assigned = Assigned(&self.load);
        let sets = match self.prepare(inputs, data).await {
            Ok(sets) => sets,
            Err(error) => return self.failed(error),
        };
        // Async admission: waits (without blocking a thread) while the queue is full.
        let scheduled = self
            .compute
            .submit(sets, |(i, o)| self.compute.execute(&self.model, i, o))
            .await;
        let request = match scheduled {
            Ok(request) => request,
            Err(rejected) => {
                let error = rejected.into_error();
                // `Error::Unrecoverable` once the unit knows; the first schedule call
                // after the unit died reports libnrt's fatal status itself.
                return if matches!(error, Error::Unrecoverable { .. }) || error.is_fatal() {
                    // Nothing was scheduled: the request goes to another core.
                    self.dead.store(true, Ordering::Relaxed);
                    Attempt::Refused
                } else {
                    self.failed(error)
                };
            }
        };
        let accepted = Instant::now();
        match request.await {
            Ok(sets) => {
                stats.device.record(accepted.elapsed());
                let mut values = HashMap::with_capacity(outputs.len());
                for info in outputs {
                    let read = match sets.1.get(&info.name) {
                        Some(tensor) => tensors::read(&self.copy, tensor, info).await,
                        None => Err(self.missing("output", info)),
                    };
                    match read {
                        Ok(value) => values.insert(info.name.clone(), value),
                        Err(error) => return self.failed(error),
                    };
                }
                self.give_back(sets);
                self.stats.ok.add();
                Attempt::Done(values)
            }
            Err(error) => {
                if error.is_fatal() {
                    self.stats.fatal.add();
                    self.dead.store(true, Ordering::Relaxed);
                    Attempt::Failed(error)
                } else {
                    self.failed(error)
                }
            }
        }
    }

    /// A pair of sets with the request's inputs written.
    async fn prepare(
        &self,
        inputs: &[TensorInfo],
        data: &[HostData],
    ) -> neuron_rt::Result<ExecSets> {
        let sets = self.take_sets()?;
        for (info, values) in inputs.iter().zip(data) {
            let tensor = sets
                .0
                .get(&info.name)
                .ok_or_else(|| self.missing("input", info))?;
            tensors::write(&self.copy, tensor, values).await?;
        }
        Ok(sets)
    }

    fn missing(&self, role: &'static str, info: &TensorInfo) -> Error {
        Error::MissingTensor {
            model: self.model.label().to_string(),
            role,
            tensor: info.name.clone(),
        }
    }

    fn failed(&self, error: Error) -> Attempt {
        self.stats.failed.add();
        Attempt::Failed(error)
    }
}
