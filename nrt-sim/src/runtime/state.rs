//! Process-wide state: the init/close window ([`Phase`]), the open [`Runtime`] with its
//! cores and queues, and what the last closed session leaves readable.

use super::group::Group;
use super::objects::{Core, Model, Storage, Tensor, TensorSet};
use super::units::{Queue, make_queues};
use crate::config::Config;
use crate::error::{Fail, Res, fail};
use crate::faults;
use crate::log::{self, Level};
use crate::xu;
use nrt_sys::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

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

/// The open runtime: configuration, cores, async queues and the object registry.
pub(crate) struct Runtime {
    pub(crate) cfg: Config,
    pub(crate) cores: Vec<Arc<Core>>,
    pub(super) models: HashMap<u64, Arc<Model>>,
    pub(super) tensors: HashMap<u64, Arc<Tensor>>,
    /// Buffers by id, with the count of live tensors using each.
    pub(super) storage: HashMap<u64, Storage>,
    pub(super) sets: HashMap<u64, TensorSet>,
    pub(crate) host_tensors: u64,
    pub(crate) host_bytes: u64,
    pub(super) queues: Vec<Arc<Queue>>,
    /// Collective groups with at least one loaded rank, by (model name, world size).
    pub(super) groups: HashMap<(String, u32), Arc<Group>>,
    /// The global communicator (`nrt_build_global_comm`, `nrt_barrier`), from the first
    /// member's call to `nrt_close`.
    pub(super) global: Option<Arc<Group>>,
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
    faults::check_cores(&env_faults, cfg.visible_cores).map_err(|why| Fail {
        status: NRT_INVALID,
        message: format!("NRT_SIM_FAULTS: {why}"),
        level: Level::Error,
    })?;
    faults::arm_from_env(env_faults);
    let cores: Vec<Arc<Core>> = (0..cfg.visible_cores)
        .map(|index| {
            Arc::new(Core {
                index,
                capacity: cfg.device_memory,
                exec_lock: Mutex::new(None),
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
                cc_gbps: cfg.cc_gbps,
                tensor_op_busy_ns: Default::default(),
                compute_queue_busy_ns: AtomicU64::new(0),
                sync_transfer_ns: AtomicU64::new(0),
            })
        })
        .collect();
    crate::stack::set_exec_stack(cfg.exec_stack);
    crate::clock::set_launch_cost(cfg.launch);
    let queues = make_queues(&cores, cfg.queue_depth);
    let rt = Runtime {
        cfg,
        cores,
        models: HashMap::new(),
        groups: HashMap::new(),
        global: None,
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

/// Refuses async v3 calls when emulating a runtime older than 2.31.
pub(crate) fn require_async_v3() -> Res<()> {
    let v = current_version()?;
    if v.has_async_v3() {
        Ok(())
    } else {
        fail(
            NRT_FAILURE,
            format!(
                "the async v3 API needs runtime 2.31 or later; this simulator emulates {v} (NRT_SIM_VERSION)"
            ),
        )
    }
}

/// Refuses the completion-event calls when emulating a runtime older than 2.32 (and the
/// async v3 calls' refusal first).
pub(crate) fn require_async_events() -> Res<()> {
    require_async_v3()?;
    let v = current_version()?;
    if v.has_async_events() {
        Ok(())
    } else {
        fail(
            NRT_FAILURE,
            format!(
                "completion events need runtime 2.32 or later; this simulator emulates {v} (NRT_SIM_VERSION)"
            ),
        )
    }
}

/// Cores of the simulated machine: the open runtime's, else from the environment.
pub(crate) fn total_cores() -> Res<u32> {
    if let Phase::Open(rt) = &*phase() {
        return Ok(rt.cfg.total_cores);
    }
    crate::config::total_cores_from_env().or_else(|m| fail(NRT_INVALID, m))
}

/// Cores this process may use: the open runtime's, else from the environment.
pub(crate) fn visible_cores() -> Res<u32> {
    if let Phase::Open(rt) = &*phase() {
        return Ok(rt.cfg.visible_cores);
    }
    let total = crate::config::total_cores_from_env().or_else(|m| fail(NRT_INVALID, m))?;
    match crate::config::visible_from_env(total) {
        Ok((_, n)) => Ok(n),
        Err(crate::config::EnvError::Invalid(m)) => fail(NRT_INVALID, m),
        Err(crate::config::EnvError::NotEnough(m)) => fail(NRT_RESOURCE, m),
    }
}

/// Process-wide figures for the control interface (`nrt_sim_get_counters`).
pub(crate) struct Summary {
    /// Visible cores of the open runtime, or of the last closed one (0 before any).
    pub(crate) core_count: u32,
    pub(crate) open: bool,
    pub(crate) tensor_sets: u64,
    pub(crate) host_tensors: u64,
    pub(crate) host_bytes: u64,
    pub(crate) live_at_last_close: u64,
}

/// The figures of the open runtime, or of the last closed session (no live objects).
pub(crate) fn summary() -> Summary {
    let live_at_last_close = last_session().as_ref().map_or(0, |l| l.live_at_close);
    match &*phase() {
        Phase::Open(rt) => Summary {
            core_count: rt.cores.len() as u32,
            open: true,
            tensor_sets: rt.tensor_sets(),
            host_tensors: rt.host_tensors,
            host_bytes: rt.host_bytes,
            live_at_last_close,
        },
        _ => Summary {
            core_count: last_session().as_ref().map_or(0, |l| l.cores.len() as u32),
            open: false,
            tensor_sets: 0,
            host_tensors: 0,
            host_bytes: 0,
            live_at_last_close,
        },
    }
}

/// Cores to report counters of: the open runtime's (`true`: live) or the last session's.
pub(crate) fn reported_cores() -> (Vec<Arc<Core>>, bool) {
    if let Phase::Open(rt) = &*phase() {
        return (rt.cores.clone(), true);
    }
    match &*last_session() {
        Some(last) => (last.cores.clone(), false),
        None => (Vec::new(), false),
    }
}

/// Arms `parsed` faults (`nrt_sim_inject_faults`); immediate `xu` faults take effect at
/// once when the runtime is open.
///
/// With the runtime open, faults naming a core it does not have are refused
/// (`NRT_INVALID`, nothing armed); with it closed, the next `nrt_init` cannot know them
/// apart from `NRT_SIM_FAULTS`, so they are armed as given.
pub(crate) fn arm_faults(parsed: Vec<faults::Fault>) -> Res<()> {
    // Lock order: the registry before the fault list.
    let ph = phase();
    if let Phase::Open(rt) = &*ph {
        faults::check_cores(&parsed, rt.cfg.visible_cores).or_else(|why| fail(NRT_INVALID, why))?;
    }
    faults::arm(parsed);
    if let Phase::Open(rt) = &*ph {
        rt.apply_immediate_xu_faults();
    }
    Ok(())
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

    /// Device bytes in use on core `vnc` (tensors and models) and its capacity.
    pub(crate) fn memory_stats(&self, vnc: u32) -> Res<(u64, u64)> {
        let core = self.core(vnc.into(), "vnc")?;
        Ok((core.bytes.load(Ordering::Relaxed), core.capacity))
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
