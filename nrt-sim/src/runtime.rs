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

// ---------------------------------------------------------------------------------------
// Objects

/// Where a tensor lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    Device(u32),
    Host,
    /// No storage of its own (allocate_empty, VIRTUAL placement): host memory attached.
    Virtual,
}

/// A tensor's storage: a window of a buffer. The buffer is shared by the tensor that
/// allocated it and every slice of it, and lives until the last of them is freed (the
/// runtime documents slice storage as reference counted).
#[derive(Clone)]
pub(crate) struct Mem {
    pub(crate) buf: Arc<Buffer>,
    pub(crate) offset: usize,
}

pub(crate) struct Tensor {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) place: Place,
    pub(crate) size: usize,
    pub(crate) mem: Option<Mem>,
}

/// Live tensors using one buffer, and the memory the buffer is charged to.
struct Storage {
    users: u64,
    /// Where the buffer's bytes are accounted (`None`: caller-owned, not accounted).
    charge: Option<(Place, u64)>,
}

impl Tensor {
    fn label(&self) -> String {
        if self.name.is_empty() {
            format!("tensor #{}", self.id)
        } else {
            format!("tensor '{}'", self.name)
        }
    }

    fn mem(&self) -> Res<&Mem> {
        self.mem.as_ref().ok_or_else(|| Fail {
            status: NRT_INVALID,
            message: format!(
                "{} has no memory (allocated empty; attach a buffer first)",
                self.label()
            ),
            level: Level::Error,
        })
    }

    /// Checks that `[offset, offset + size)` lies inside the tensor, without overflow.
    pub(crate) fn check_range(&self, what: &str, offset: u64, size: u64) -> Res<()> {
        match offset.checked_add(size) {
            Some(end) if end <= self.size as u64 => Ok(()),
            _ => fail(
                NRT_INVALID,
                format!(
                    "{what}: offset {offset} + size {size} is past the end of {} ({} bytes)",
                    self.label(),
                    self.size
                ),
            ),
        }
    }

    /// Copies `size` bytes at `offset` into `dst`.
    ///
    /// # Safety
    ///
    /// `dst` must be valid for writes of `size` bytes. The range must have been checked.
    pub(crate) unsafe fn read_into(&self, dst: *mut u8, offset: usize, size: usize) -> Res<()> {
        let mem = self.mem()?;
        if size == 0 {
            // Nothing to copy; `dst` may be NULL for an empty transfer.
            return Ok(());
        }
        debug_assert!(mem.offset + offset + size <= mem.buf.len());
        let _guard = mem.buf.lock();
        // SAFETY: the range is inside the tensor, whose window is inside the buffer;
        // `dst` is valid for `size` bytes (caller); a host buffer cannot overlap ours
        // except through get_va, where copy (memmove) semantics still hold.
        unsafe { std::ptr::copy(mem.buf.base().add(mem.offset + offset), dst, size) };
        Ok(())
    }

    /// Copies `size` bytes from `src` to `offset`.
    ///
    /// # Safety
    ///
    /// `src` must be valid for reads of `size` bytes. The range must have been checked.
    pub(crate) unsafe fn write_from(&self, src: *const u8, offset: usize, size: usize) -> Res<()> {
        let mem = self.mem()?;
        if size == 0 {
            // Nothing to copy; `src` may be NULL for an empty transfer.
            return Ok(());
        }
        debug_assert!(mem.offset + offset + size <= mem.buf.len());
        let _guard = mem.buf.lock();
        // SAFETY: as in `read_into`, with `src` valid for reads (caller).
        unsafe { std::ptr::copy(src, mem.buf.base().add(mem.offset + offset), size) };
        Ok(())
    }

    /// Sets `size` bytes at `offset` to `value`. The range must have been checked.
    pub(crate) fn fill(&self, offset: usize, value: u8, size: usize) -> Res<()> {
        let mem = self.mem()?;
        let _guard = mem.buf.lock();
        // SAFETY: the checked range lies inside this tensor's window of the buffer.
        unsafe { std::ptr::write_bytes(mem.buf.base().add(mem.offset + offset), value, size) };
        Ok(())
    }

    /// The whole tensor's bytes.
    fn to_vec(&self) -> Res<Vec<u8>> {
        let mut out = vec![0u8; self.size];
        // SAFETY: `out` has `self.size` writable bytes; the range is the whole tensor.
        unsafe { self.read_into(out.as_mut_ptr(), 0, self.size)? };
        Ok(out)
    }
}

/// Copies between two tensors (ranges checked by the caller).
pub(crate) fn copy_between(
    src: &Tensor,
    src_offset: usize,
    dst: &Tensor,
    dst_offset: usize,
    size: usize,
) -> Res<()> {
    let (s, d) = (src.mem()?, dst.mem()?);
    let _guards = lock_pair(&s.buf, &d.buf);
    // SAFETY: both ranges were checked against their tensors, whose windows lie inside
    // their buffers; `copy` allows overlap (a tensor copied onto its own slice).
    unsafe {
        std::ptr::copy(
            s.buf.base().add(s.offset + src_offset),
            d.buf.base().add(d.offset + dst_offset),
            size,
        )
    };
    Ok(())
}

/// A loaded model.
pub(crate) struct Model {
    pub(crate) id: u64,
    pub(crate) core: u32,
    pub(crate) program: Arc<Program>,
    /// Device bytes the model occupies (its file size).
    bytes: u64,
}

/// Tensors by name; does not own them (holds ids, resolved at use).
#[derive(Default)]
struct TensorSet {
    entries: BTreeMap<Vec<u8>, u64>,
}

/// One simulated NeuronCore: accounting, counters and the lock that serialises its
/// executions. Shared with async workers, so it outlives `nrt_close` while they finish.
pub(crate) struct Core {
    pub(crate) index: u32,
    pub(crate) capacity: u64,
    exec_lock: Mutex<()>,
    exec_latency: Option<Duration>,
    exec_timeout: Duration,
    /// Set when the core's compute queue is unrecoverable; shared with that queue.
    pub(crate) compute_dead: Arc<AtomicBool>,
    pub(crate) models: AtomicU64,
    pub(crate) tensors: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) executions: AtomicU64,
    pub(crate) failed_executions: AtomicU64,
    pub(crate) busy_ns: AtomicU64,
    pub(crate) tensor_ops: AtomicU64,
    /// Transfer bandwidth in GB/s, 0 = instantaneous (`NRT_SIM_DMA_GBPS`).
    pub(crate) dma_gbps: f64,
    /// Nanoseconds of work done by TENSOR_OP queues 0 and 1 and the COMPUTE queue.
    pub(crate) tensor_op_busy_ns: [AtomicU64; 2],
    pub(crate) compute_queue_busy_ns: AtomicU64,
    /// Nanoseconds spent in synchronous transfers of this core's device tensors.
    pub(crate) sync_transfer_ns: AtomicU64,
}

impl Core {
    /// Waits out the device time of a synchronous transfer of `bytes` started at
    /// `start`, and counts it.
    pub(crate) fn finish_sync_transfer(&self, start: Instant, bytes: u64) {
        crate::dma::finish_transfer(start, bytes, self.dma_gbps);
        self.sync_transfer_ns
            .fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
}

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

    // --- tensors ---------------------------------------------------------------------

    /// Resolves a tensor handle to a live tensor whose storage is still owned.
    /// The core of a device tensor (whose transfers take DMA time), None for host memory.
    pub(crate) fn core_of(&self, t: &Tensor) -> Option<Arc<Core>> {
        match t.place {
            Place::Device(c) => self.cores.get(c as usize).cloned(),
            _ => None,
        }
    }

    pub(crate) fn tensor(&self, handle: *const nrt_tensor_t, what: &str) -> Res<Arc<Tensor>> {
        let id = from_handle(HandleKind::Tensor, handle, what)?;
        self.tensor_by_id(id, what)
    }

    fn tensor_by_id(&self, id: u64, what: &str) -> Res<Arc<Tensor>> {
        self.tensors.get(&id).cloned().ok_or_else(|| Fail {
            status: NRT_INVALID_HANDLE,
            message: format!("{what} (tensor #{id}) was freed or belongs to a closed runtime"),
            level: Level::Error,
        })
    }

    /// Counts a live tensor on its core or the host (`delta` +1 or -1).
    fn count_tensor(&mut self, place: Place, add: bool) {
        match place {
            Place::Device(c) => {
                let count = &self.cores[c as usize].tensors;
                if add {
                    count.fetch_add(1, Ordering::Relaxed);
                } else {
                    count.fetch_sub(1, Ordering::Relaxed);
                }
            }
            Place::Host | Place::Virtual => {
                if add {
                    self.host_tensors += 1;
                } else {
                    self.host_tensors -= 1;
                }
            }
        }
    }

    /// Checks that `bytes` more fit in `place`'s memory.
    fn check_room(&self, place: Place, bytes: u64, name: &str) -> Res<()> {
        if let Place::Device(c) = place {
            let core = &self.cores[c as usize];
            let used = core.bytes.load(Ordering::Relaxed);
            if used.saturating_add(bytes) > core.capacity {
                return fail(
                    NRT_RESOURCE,
                    format!(
                        "core {c} has {} of {} device bytes free; tensor '{name}' needs {bytes}",
                        core.capacity - used,
                        core.capacity
                    ),
                );
            }
        }
        Ok(())
    }

    /// One more live tensor uses `buf`; `charge` is where a new buffer's bytes go.
    fn use_storage(&mut self, buf: &Buffer, charge: Option<(Place, u64)>) {
        let entry = self
            .storage
            .entry(buf.id)
            .or_insert_with(|| Storage { users: 0, charge });
        entry.users += 1;
        if entry.users == 1
            && let Some((place, bytes)) = entry.charge
        {
            match place {
                Place::Device(c) => {
                    self.cores[c as usize]
                        .bytes
                        .fetch_add(bytes, Ordering::Relaxed);
                }
                Place::Host | Place::Virtual => self.host_bytes += bytes,
            }
        }
    }

    /// One live tensor fewer uses `buf`; the last one releases its bytes.
    fn release_storage(&mut self, buf: &Buffer) {
        let Some(entry) = self.storage.get_mut(&buf.id) else {
            return;
        };
        entry.users -= 1;
        if entry.users > 0 {
            return;
        }
        let charge = entry.charge;
        self.storage.remove(&buf.id);
        match charge {
            Some((Place::Device(c), bytes)) => {
                self.cores[c as usize]
                    .bytes
                    .fetch_sub(bytes, Ordering::Relaxed);
            }
            Some((_, bytes)) => self.host_bytes -= bytes,
            None => {}
        }
    }

    /// Registers a tensor whose storage (if any) is already in use by it.
    fn insert_tensor(&mut self, t: Tensor) -> *mut nrt_tensor_t {
        self.count_tensor(t.place, true);
        let id = t.id;
        self.tensors.insert(id, Arc::new(t));
        to_handle(HandleKind::Tensor, id)
    }

    /// `nrt_tensor_allocate`. DEVICE tensors live in the core's memory; HOST (pinned,
    /// at most [`HOST_PLACEMENT_MAX`] bytes, as the runtime documents) and VIRTUAL
    /// (pageable; emulated versions below 2.32 only) tensors in host memory.
    pub(crate) fn allocate_tensor(
        &mut self,
        placement: nrt_tensor_placement_t,
        vnc: i32,
        size: usize,
        name: String,
    ) -> Res<*mut nrt_tensor_t> {
        let place = match placement {
            NRT_TENSOR_PLACEMENT_DEVICE => Place::Device(self.core(vnc.into(), "vnc")?.index),
            NRT_TENSOR_PLACEMENT_HOST => Place::Host,
            NRT_TENSOR_PLACEMENT_VIRTUAL => Place::Virtual,
            other => {
                return fail(
                    NRT_INVALID,
                    format!("placement {other} is not DEVICE (0), HOST (1) or VIRTUAL (2)"),
                );
            }
        };
        let version = self.cfg.version;
        if place == Place::Virtual && !version.has_virtual_placement() {
            return fail(
                NRT_INVALID,
                format!(
                    "tensor '{name}': VIRTUAL placement was removed in runtime 2.32; this simulator emulates {version} (NRT_SIM_VERSION); allocate a DEVICE or HOST tensor, or attach a buffer"
                ),
            );
        }
        if size == 0 {
            return fail(NRT_INVALID, format!("size 0 requested for tensor '{name}'"));
        }
        if place == Place::Host && size > HOST_PLACEMENT_MAX {
            let hint = if version.has_virtual_placement() {
                "use VIRTUAL placement for larger host tensors"
            } else {
                "use several HOST tensors or nrt_tensor_attach_buffer for larger host data"
            };
            return fail(
                NRT_RESOURCE,
                format!(
                    "tensor '{name}' asks for {size} bytes of HOST (pinned) memory; HOST tensors are limited to {HOST_PLACEMENT_MAX} bytes ({hint})"
                ),
            );
        }
        let fault_core = match place {
            Place::Device(c) => Some(c),
            _ => None,
        };
        if let Some(status) = faults::on_alloc(fault_core) {
            return fail(
                status,
                format!("injected allocation fault for tensor '{name}' ({size} bytes)"),
            );
        }
        self.check_room(place, size as u64, &name)?;
        let buf = Buffer::allocate(size).ok_or_else(|| Fail {
            status: NRT_RESOURCE,
            message: format!("cannot allocate {size} bytes of memory for tensor '{name}'"),
            level: Level::Error,
        })?;
        let id = new_id()?;
        let buf = Arc::new(buf);
        self.use_storage(&buf, Some((place, size as u64)));
        Ok(self.insert_tensor(Tensor {
            id,
            name,
            place,
            size,
            mem: Some(Mem { buf, offset: 0 }),
        }))
    }

    /// `nrt_tensor_allocate_empty`: a tensor without storage, to attach a buffer to.
    pub(crate) fn allocate_empty(&mut self, name: String) -> Res<*mut nrt_tensor_t> {
        let id = new_id()?;
        Ok(self.insert_tensor(Tensor {
            id,
            name,
            place: Place::Virtual,
            size: 0,
            mem: None,
        }))
    }

    /// `nrt_tensor_attach_buffer`: the tensor's previous storage is detached (and freed
    /// when no slice uses it any more) and the tensor becomes VIRTUAL over `buffer`, as
    /// the runtime documents, whatever its placement was.
    ///
    /// # Safety
    ///
    /// `buffer` must be valid for reads and writes of `size` bytes while the tensor is used.
    pub(crate) unsafe fn attach_buffer(
        &mut self,
        handle: *mut nrt_tensor_t,
        buffer: *mut u8,
        size: usize,
    ) -> Res<()> {
        let t = self.tensor(handle, "tensor")?;
        let Some(ptr) = NonNull::new(buffer) else {
            return fail(NRT_INVALID, "buffer is NULL");
        };
        if size == 0 {
            return fail(NRT_INVALID, format!("size 0 attached to {}", t.label()));
        }
        if let Some(old) = &t.mem {
            self.release_storage(&old.buf);
        }
        self.count_tensor(t.place, false);
        // SAFETY: the caller guarantees `buffer` is valid for `size` bytes while used.
        let buf = Arc::new(unsafe { Buffer::attach(ptr, size) });
        self.use_storage(&buf, None);
        self.insert_tensor(Tensor {
            id: t.id,
            name: t.name.clone(),
            place: Place::Virtual,
            size,
            mem: Some(Mem { buf, offset: 0 }),
        });
        Ok(())
    }

    /// `nrt_tensor_allocate_slice`: shares the source's storage, which stays allocated
    /// while any tensor using it is live.
    pub(crate) fn allocate_slice(
        &mut self,
        source: *const nrt_tensor_t,
        offset: usize,
        size: usize,
        name: String,
    ) -> Res<*mut nrt_tensor_t> {
        let src = self.tensor(source, "tensor_source")?;
        let mem = src.mem()?.clone();
        src.check_range("slice", offset as u64, size as u64)?;
        if size == 0 {
            return fail(NRT_INVALID, format!("size 0 slice of {}", src.label()));
        }
        let id = new_id()?;
        self.use_storage(&mem.buf, None);
        Ok(self.insert_tensor(Tensor {
            id,
            name,
            place: src.place,
            size,
            mem: Some(Mem {
                offset: mem.offset + offset,
                ..mem
            }),
        }))
    }

    /// `nrt_tensor_free`.
    pub(crate) fn free_tensor(&mut self, handle: *const nrt_tensor_t) -> Res<()> {
        let id = from_handle(HandleKind::Tensor, handle, "*tensor")?;
        let Some(t) = self.tensors.remove(&id) else {
            return fail(
                NRT_INVALID_HANDLE,
                format!("*tensor (tensor #{id}) was already freed or belongs to a closed runtime"),
            );
        };
        self.count_tensor(t.place, false);
        if let Some(mem) = &t.mem {
            self.release_storage(&mem.buf);
        }
        Ok(())
    }

    /// The fake device address of a device tensor.
    pub(crate) fn device_allocation_info(
        &self,
        handle: *const nrt_tensor_t,
    ) -> Res<nrt_tensor_device_allocation_info_t> {
        let t = self.tensor(handle, "tensor")?;
        let Place::Device(core) = t.place else {
            return fail(
                NRT_INVALID,
                format!("{} is not in device memory", t.label()),
            );
        };
        let mem = t.mem()?;
        Ok(nrt_tensor_device_allocation_info_t {
            physical_address: ((core as u64 + 1) << 44) | (mem.buf.id << 20) | mem.offset as u64,
            size: t.size,
            hbm_index: 0,
        })
    }

    // --- tensor sets -----------------------------------------------------------------

    pub(crate) fn allocate_set(&mut self) -> Res<*mut nrt_tensor_set_t> {
        let id = new_id()?;
        self.sets.insert(id, TensorSet::default());
        Ok(to_handle(HandleKind::TensorSet, id))
    }

    fn set(&self, handle: *const nrt_tensor_set_t, what: &str) -> Res<(u64, &TensorSet)> {
        let id = from_handle(HandleKind::TensorSet, handle, what)?;
        match self.sets.get(&id) {
            Some(s) => Ok((id, s)),
            None => fail(
                NRT_INVALID_HANDLE,
                format!("{what} (set #{id}) was destroyed or belongs to a closed runtime"),
            ),
        }
    }

    pub(crate) fn destroy_set(&mut self, handle: *const nrt_tensor_set_t) -> Res<()> {
        let (id, _) = self.set(handle, "*tensor_set")?;
        self.sets.remove(&id);
        Ok(())
    }

    pub(crate) fn add_to_set(
        &mut self,
        set: *mut nrt_tensor_set_t,
        name: &[u8],
        tensor: *mut nrt_tensor_t,
    ) -> Res<()> {
        let (set_id, _) = self.set(set, "tensor_set")?;
        let t = self.tensor(tensor, "tensor")?;
        if name.is_empty() || name.len() > 255 {
            return fail(
                NRT_INVALID,
                format!("tensor name must be 1 to 255 bytes (got {})", name.len()),
            );
        }
        let entries = &mut self.sets.get_mut(&set_id).expect("checked above").entries;
        entries.insert(name.to_vec(), t.id);
        Ok(())
    }

    pub(crate) fn get_from_set(
        &self,
        set: *mut nrt_tensor_set_t,
        name: &[u8],
    ) -> Res<*mut nrt_tensor_t> {
        let (_, s) = self.set(set, "tensor_set")?;
        let Some(&id) = s.entries.get(name) else {
            // The runtime documents NRT_FAILURE (not NRT_INVALID) for a name not in the set.
            return fail(
                NRT_FAILURE,
                format!(
                    "the tensor set has no tensor named '{}' (it has {} tensor(s))",
                    String::from_utf8_lossy(name),
                    s.entries.len()
                ),
            );
        };
        let what = format!("tensor '{}' of the set", String::from_utf8_lossy(name));
        self.tensor_by_id(id, &what)?;
        Ok(to_handle(HandleKind::Tensor, id))
    }

    // --- models ----------------------------------------------------------------------

    /// `nrt_load` of an already parsed program (`file_size` bytes of device memory).
    pub(crate) fn load(
        &mut self,
        program: Program,
        file_size: usize,
        vnc: i32,
        vnc_count: i32,
    ) -> Res<*mut nrt_model_t> {
        if vnc_count != -1 && vnc_count != 1 {
            return fail(
                NRT_INVALID,
                format!("vnc_count {vnc_count} is not supported (deprecated: pass -1)"),
            );
        }
        let bytes = file_size as u64;
        let fits = |c: &Core| c.bytes.load(Ordering::Relaxed).saturating_add(bytes) <= c.capacity;
        let core = match vnc {
            -1 => match self.cores.iter().find(|c| fits(c)) {
                Some(c) => c.clone(),
                None => {
                    return fail(
                        NRT_RESOURCE,
                        format!(
                            "no visible core has {bytes} free device bytes for model '{}'",
                            program.name
                        ),
                    );
                }
            },
            v if v < -1 => {
                return fail(
                    NRT_INVALID,
                    format!("vnc {v} is neither -1 nor a core index"),
                );
            }
            v if v as usize >= self.cores.len() => {
                return fail(
                    NRT_LOAD_NOT_ENOUGH_NC,
                    format!(
                        "model '{}' asked for core {v}, but only {} core(s) are visible",
                        program.name,
                        self.cores.len()
                    ),
                );
            }
            v => {
                let c = self.cores[v as usize].clone();
                if !fits(&c) {
                    return fail(
                        NRT_RESOURCE,
                        format!(
                            "core {v} has {} of {} device bytes free; model '{}' needs {bytes}",
                            c.capacity - c.bytes.load(Ordering::Relaxed),
                            c.capacity,
                            program.name
                        ),
                    );
                }
                c
            }
        };
        if let Some(status) = faults::on_load(core.index) {
            return fail(
                status,
                format!(
                    "injected load fault for model '{}' on core {}",
                    program.name, core.index
                ),
            );
        }
        let id = new_id()?;
        core.bytes.fetch_add(bytes, Ordering::Relaxed);
        core.models.fetch_add(1, Ordering::Relaxed);
        self.models.insert(
            id,
            Arc::new(Model {
                id,
                core: core.index,
                program: Arc::new(program),
                bytes,
            }),
        );
        Ok(to_handle(HandleKind::Model, id))
    }

    pub(crate) fn model(&self, handle: *const nrt_model_t) -> Res<Arc<Model>> {
        let id = from_handle(HandleKind::Model, handle, "model")?;
        self.models.get(&id).cloned().ok_or_else(|| Fail {
            status: NRT_INVALID_HANDLE,
            message: format!("model #{id} was unloaded or belongs to a closed runtime"),
            level: Level::Error,
        })
    }

    pub(crate) fn unload(&mut self, handle: *const nrt_model_t) -> Res<()> {
        let m = self.model(handle)?;
        self.models.remove(&m.id);
        let core = &self.cores[m.core as usize];
        core.bytes.fetch_sub(m.bytes, Ordering::Relaxed);
        core.models.fetch_sub(1, Ordering::Relaxed);
        Ok(())
    }

    /// Resolves and checks everything an execution needs (`nrt_execute` and
    /// `nrta_execute_schedule`).
    pub(crate) fn bind(
        &self,
        model: *const nrt_model_t,
        input_set: *const nrt_tensor_set_t,
        output_set: *const nrt_tensor_set_t,
    ) -> Res<Bound> {
        let model = self.model(model)?;
        let (_, ins) = self.set(input_set, "input_set")?;
        let (_, outs) = self.set(output_set, "output_set")?;
        let p = &model.program;
        let resolve = |set: &TensorSet, specs: &[crate::model::TensorSpec], role: &str| {
            specs
                .iter()
                .map(|spec| {
                    let Some(&id) = set.entries.get(spec.name.as_bytes()) else {
                        return fail(
                            NRT_INVALID,
                            format!(
                                "model '{}' {role} '{}' is missing from the {role} set",
                                p.name, spec.name
                            ),
                        );
                    };
                    let what = format!("tensor bound as {role} '{}'", spec.name);
                    let t = self.tensor_by_id(id, &what)?;
                    if t.mem.is_none() {
                        return fail(
                            NRT_INVALID,
                            format!("{what} ({}) has no memory attached", t.label()),
                        );
                    }
                    if t.size != spec.byte_size() {
                        return fail(
                            NRT_INVALID,
                            format!(
                                "{what} ({}) is {} bytes; model '{}' expects {} bytes ({} {:?})",
                                t.label(),
                                t.size,
                                p.name,
                                spec.byte_size(),
                                spec.dtype,
                                spec.shape
                            ),
                        );
                    }
                    if let Place::Device(c) = t.place
                        && c != model.core
                    {
                        return fail(
                            NRT_INVALID,
                            format!(
                                "{what} ({}) is on core {c}, but model '{}' is loaded on core {}",
                                t.label(),
                                p.name,
                                model.core
                            ),
                        );
                    }
                    Ok(t)
                })
                .collect::<Res<Vec<_>>>()
        };
        let inputs = resolve(ins, &p.inputs, "input")?;
        let outputs = resolve(outs, &p.outputs, "output")?;
        Ok(Bound {
            core: self.cores[model.core as usize].clone(),
            model,
            inputs,
            outputs,
        })
    }
}

/// An execution with every tensor resolved: runs without the registry lock.
pub(crate) struct Bound {
    pub(crate) model: Arc<Model>,
    pub(crate) core: Arc<Core>,
    inputs: Vec<Arc<Tensor>>,
    outputs: Vec<Arc<Tensor>>,
}

impl Bound {
    /// Runs once: waits for the core, computes, writes the outputs, takes the device time.
    pub(crate) fn run(&self) -> Res<()> {
        let core = &self.core;
        let p = &self.model.program;
        if core.compute_dead.load(Ordering::Acquire) {
            return fail(
                NRT_EXEC_UNIT_UNRECOVERABLE,
                format!(
                    "core {}'s compute unit is unrecoverable; re-initialize the runtime",
                    core.index
                ),
            );
        }
        let _exclusive = core.exec_lock.lock().unwrap_or_else(|e| e.into_inner());
        let start = Instant::now();
        let device_time = core.exec_latency.unwrap_or(p.device_time);
        let result = if device_time > core.exec_timeout {
            std::thread::sleep(core.exec_timeout);
            fail(
                NRT_TIMEOUT,
                format!(
                    "model '{}' on core {} needs {device_time:?} of device time, more than the {:?} timeout (NEURON_RT_EXEC_TIMEOUT)",
                    p.name, core.index, core.exec_timeout
                ),
            )
        } else {
            let result = self.compute(p);
            crate::dma::wait_until(start + device_time);
            result
        };
        core.busy_ns.fetch_add(
            start.elapsed().as_nanos().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
        core.executions.fetch_add(1, Ordering::Relaxed);
        if result.is_err() {
            core.failed_executions.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn compute(&self, p: &Program) -> Res<()> {
        let fault = faults::on_exec(self.core.index);
        if let Some((_, false)) = fault {
            // The failed execution leaves the outputs untouched.
        } else {
            let inputs = self
                .inputs
                .iter()
                .map(|t| t.to_vec())
                .collect::<Res<Vec<_>>>()?;
            for (t, bytes) in self.outputs.iter().zip(p.run(&inputs)) {
                // SAFETY: `bytes` is exactly the output's size (checked at bind time).
                unsafe { t.write_from(bytes.as_ptr(), 0, bytes.len())? };
            }
        }
        match fault {
            Some((status, written)) => fail(
                status,
                format!(
                    "injected execution fault {status} ({}) on core {} (model '{}'; outputs {})",
                    crate::status::name(status).unwrap_or("unknown status"),
                    self.core.index,
                    p.name,
                    if written { "written" } else { "not written" }
                ),
            ),
            None => Ok(()),
        }
    }
}
