//! The simulated device: process-wide state, handles, tensors, tensor sets, models and
//! synchronous execution.
//!
//! Locks, always taken in this order: `PHASE` (the registry) -> an async queue's state ->
//! `faults`; a core's execution lock -> buffer locks -> `faults`. `PHASE` is never held
//! while executing or copying tensor data.

use crate::config::Config;
use crate::faults;
use crate::log::{self, Level};
use crate::memory::{Buffer, lock_pair};
use crate::model::Program;
use crate::xu::{self, XuQueue};
use nrt_sys::*;
use std::collections::{BTreeMap, HashMap};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A failed call: the status to return and the log line saying why.
#[derive(Debug)]
pub(crate) struct Fail {
    pub(crate) status: NRT_STATUS,
    pub(crate) message: String,
    /// Level of the log line; below `Error` the thread's last error is left alone
    /// (used for `NRT_QUEUE_FULL`, which is routine back-pressure).
    pub(crate) level: Level,
}

pub(crate) type Res<T> = Result<T, Fail>;

/// `Err(Fail)` with `status` and `message`.
pub(crate) fn fail<T>(status: NRT_STATUS, message: impl Into<String>) -> Res<T> {
    Err(Fail {
        status,
        message: message.into(),
        level: Level::Error,
    })
}

// ---------------------------------------------------------------------------------------
// Handles

/// What a C handle points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HandleKind {
    Model,
    Tensor,
    TensorSet,
}

impl HandleKind {
    fn tag(self) -> usize {
        match self {
            HandleKind::Model => 0x4d,
            HandleKind::Tensor => 0x54,
            HandleKind::TensorSet => 0x53,
        }
    }

    fn name(self) -> &'static str {
        match self {
            HandleKind::Model => "model",
            HandleKind::Tensor => "tensor",
            HandleKind::TensorSet => "tensor set",
        }
    }
}

/// Largest HOST-placement tensor: the runtime documents HOST tensors as one physically
/// contiguous page of at most 4 MB.
pub(crate) const HOST_PLACEMENT_MAX: usize = 4 << 20;

/// Ids are never reused (not even across init/close), so a stale handle is always
/// recognised as such. 36 bits of id fit below the tag.
const ID_BITS: u32 = 36;
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn new_id() -> Res<u64> {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    if id >= 1 << ID_BITS {
        return fail(NRT_RESOURCE, "the simulator ran out of handle ids");
    }
    Ok(id)
}

/// Handles are opaque tokens, not addresses: `tag << 40 | id << 4`. C code never
/// dereferences them, and a token cannot dangle.
pub(crate) fn to_handle<T>(kind: HandleKind, id: u64) -> *mut T {
    std::ptr::without_provenance_mut((kind.tag() << 40) | ((id as usize) << 4))
}

/// The id inside a handle; NULL -> `NRT_INVALID`, not a handle of this kind ->
/// `NRT_INVALID_HANDLE`. Whether the id is live is checked by the caller.
pub(crate) fn from_handle<T>(kind: HandleKind, handle: *const T, what: &str) -> Res<u64> {
    let addr = handle.addr();
    if addr == 0 {
        return fail(NRT_INVALID, format!("{what} is NULL"));
    }
    if addr >> 40 != kind.tag() || addr & 0xf != 0 {
        return fail(
            NRT_INVALID_HANDLE,
            format!("{what} {addr:#x} is not a {} handle", kind.name()),
        );
    }
    Ok(((addr & ((1 << 40) - 1)) >> 4) as u64)
}

mod models;
mod objects;
mod tensors;

pub(crate) use models::Bound;
pub(crate) use objects::*;

// ---------------------------------------------------------------------------------------
// Process-wide state

pub(crate) enum Phase {
    Uninit,
    Open(Box<Runtime>),
    Closed,
}

static PHASE: Mutex<Phase> = Mutex::new(Phase::Uninit);

/// Counters kept from the last closed session.
pub(crate) struct LastSession {
    pub(crate) cores: Vec<Arc<Core>>,
    pub(crate) live_at_close: u64,
}

static LAST: Mutex<Option<LastSession>> = Mutex::new(None);

pub(crate) fn phase() -> MutexGuard<'static, Phase> {
    // A panic inside a registry update is caught at the FFI boundary; the maps stay
    // structurally valid, so keep going rather than fail every later call.
    PHASE.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn last_session() -> MutexGuard<'static, Option<LastSession>> {
    LAST.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` on the open runtime; `NRT_UNINITIALIZED` / `NRT_CLOSED` outside the window.
pub(crate) fn with_open<T>(f: impl FnOnce(&mut Runtime) -> Res<T>) -> Res<T> {
    match &mut *phase() {
        Phase::Open(rt) => f(rt),
        Phase::Uninit => fail(NRT_UNINITIALIZED, "called before nrt_init"),
        Phase::Closed => fail(NRT_CLOSED, "called after nrt_close"),
    }
}

pub(crate) struct Runtime {
    pub(crate) cfg: Config,
    pub(crate) cores: Vec<Arc<Core>>,
    models: HashMap<u64, Arc<Model>>,
    tensors: HashMap<u64, Arc<Tensor>>,
    /// Buffers by id, with the count of live tensors using each.
    storage: HashMap<u64, Storage>,
    sets: HashMap<u64, TensorSet>,
    pub(crate) host_tensors: u64,
    pub(crate) host_bytes: u64,
    pub(crate) queues: Vec<Arc<XuQueue>>,
}

/// `nrt_init`.
pub(crate) fn init(framework: nrt_framework_type_t) -> Res<()> {
    log::reload_level();
    if framework == NRT_FRAMEWORK_TYPE_INVALID || framework > NRT_FRAMEWORK_TYPE_PRECHECK {
        return fail(
            NRT_INVALID,
            format!("framework type {framework} is not one of 1 (NO_FW) to 5 (PRECHECK)"),
        );
    }
    let mut ph = phase();
    if let Phase::Open(_) = *ph {
        return fail(
            NRT_FAILURE,
            "the runtime is already initialized; call nrt_close first",
        );
    }
    let cfg = Config::from_env().map_err(|e| Fail {
        status: match e {
            crate::config::EnvError::Invalid(_) => NRT_INVALID,
            crate::config::EnvError::NotEnough(_) => NRT_RESOURCE,
        },
        message: e.message().to_owned(),
        level: Level::Error,
    })?;
    let env_faults = match std::env::var("NRT_SIM_FAULTS") {
        Ok(spec) if !spec.trim().is_empty() => faults::parse(&spec).map_err(|e| Fail {
            status: NRT_INVALID,
            message: format!("NRT_SIM_FAULTS: {e}"),
            level: Level::Error,
        })?,
        _ => Vec::new(),
    };
    faults::arm_from_env(env_faults);
    let cores: Vec<Arc<Core>> = (0..cfg.visible_cores)
        .map(|index| {
            Arc::new(Core {
                index,
                capacity: cfg.device_memory,
                exec_lock: Mutex::new(()),
                exec_latency: cfg.exec_latency,
                exec_timeout: cfg.exec_timeout,
                compute_dead: Arc::new(AtomicBool::new(false)),
                models: AtomicU64::new(0),
                tensors: AtomicU64::new(0),
                bytes: AtomicU64::new(0),
                executions: AtomicU64::new(0),
                failed_executions: AtomicU64::new(0),
                busy_ns: AtomicU64::new(0),
                tensor_ops: AtomicU64::new(0),
                dma_gbps: cfg.dma_gbps,
                tensor_op_busy_ns: Default::default(),
                compute_queue_busy_ns: AtomicU64::new(0),
                sync_transfer_ns: AtomicU64::new(0),
            })
        })
        .collect();
    crate::stack::set_exec_stack(cfg.exec_stack);
    let queues = xu::make_queues(&cores, cfg.queue_depth);
    let rt = Runtime {
        cfg,
        cores,
        models: HashMap::new(),
        tensors: HashMap::new(),
        storage: HashMap::new(),
        sets: HashMap::new(),
        host_tensors: 0,
        host_bytes: 0,
        queues,
    };
    rt.apply_immediate_xu_faults();
    log::log(
        Level::Info,
        "nrt_init",
        &format!(
            "simulated runtime {} with {} visible core(s) (machine cores {}..{} of {}), {} bytes each",
            rt.cfg.version,
            rt.cfg.visible_cores,
            rt.cfg.first_visible,
            rt.cfg.first_visible + rt.cfg.visible_cores - 1,
            rt.cfg.total_cores,
            rt.cfg.device_memory
        ),
    );
    *ph = Phase::Open(Box::new(rt));
    Ok(())
}

/// `nrt_close`: waits for queued async work, then frees everything still live.
pub(crate) fn close() {
    let rt = {
        let mut ph = phase();
        match std::mem::replace(&mut *ph, Phase::Closed) {
            Phase::Open(rt) => rt,
            other => {
                let was_uninit = matches!(other, Phase::Uninit);
                *ph = other;
                log::log(
                    Level::Warn,
                    "nrt_close",
                    if was_uninit {
                        "called before nrt_init; nothing to close"
                    } else {
                        "called twice; the runtime is already closed"
                    },
                );
                return;
            }
        }
    };
    xu::shutdown(&rt.queues);
    let live = rt.live_objects();
    if live > 0 {
        log::log(
            Level::Warn,
            "nrt_close",
            &format!(
                "{live} object(s) still live at close ({} model(s), {} tensor(s), {} tensor set(s)); freed",
                rt.models.len(),
                rt.tensors.len(),
                rt.sets.len()
            ),
        );
    }
    for core in &rt.cores {
        core.models.store(0, Ordering::Relaxed);
        core.tensors.store(0, Ordering::Relaxed);
        core.bytes.store(0, Ordering::Relaxed);
    }
    *last_session() = Some(LastSession {
        cores: rt.cores.clone(),
        live_at_close: live,
    });
}

/// The emulated version: the open runtime's, else from the environment.
pub(crate) fn current_version() -> Res<crate::config::Version> {
    if let Phase::Open(rt) = &*phase() {
        return Ok(rt.cfg.version);
    }
    crate::config::version_from_env().map_err(|m| Fail {
        status: NRT_INVALID,
        message: m,
        level: Level::Error,
    })
}

impl Runtime {
    pub(crate) fn live_objects(&self) -> u64 {
        (self.models.len() + self.tensors.len() + self.sets.len()) as u64
    }

    pub(crate) fn tensor_sets(&self) -> u64 {
        self.sets.len() as u64
    }

    /// Marks the queues named by immediate `xu` faults unrecoverable.
    pub(crate) fn apply_immediate_xu_faults(&self) {
        for (vnc, xu_type, queue) in faults::take_immediate_xu() {
            match xu::find_queue(&self.queues, vnc, xu_type, queue) {
                Some(q) => q.make_dead("fault injected"),
                None => log::log(
                    Level::Warn,
                    "nrt_sim_inject_faults",
                    &format!(
                        "xu fault for core {vnc} ignored: only {} core(s) are visible",
                        self.cores.len()
                    ),
                ),
            }
        }
    }

    /// Checks an API core index.
    pub(crate) fn core(&self, vnc: i64, what: &str) -> Res<&Arc<Core>> {
        usize::try_from(vnc)
            .ok()
            .and_then(|i| self.cores.get(i))
            .ok_or_else(|| Fail {
                status: NRT_INVALID,
                message: format!(
                    "{what} {vnc} is not a visible core (0 to {})",
                    self.cores.len() as i64 - 1
                ),
                level: Level::Error,
            })
    }
}
