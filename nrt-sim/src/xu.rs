//! Async v3 execution units: one FIFO queue per (core, XU type, queue index), each served
//! by its own worker thread, started on the first request.
//!
//! A queue holds at most `NRT_SIM_QUEUE_DEPTH` requests in flight (queued or running,
//! `issued - completed`). Request `n` (1, 2, 3, ...) of a queue gets the sequence id
//! `xu_id << 48 | n` with `xu_id = type | queue << 4 | core << 8`. The worker writes the
//! request's status to `*ret` (atomic store, release) and then publishes the completion
//! (`completed = n`, release); readers load `completed` with acquire, so a completed
//! request's `*ret` is always visible.
//!
//! `nrt_close` stops taking requests, lets every worker finish the requests already queued
//! (their `*ret` are written as usual), and joins the workers.
//!
//! This is queue machinery only: it knows nothing of tensors, models or the registry.
//! What a request does is a [`Work`] and what a queue needs from its core is a
//! [`UnitCore`], both implemented by the device model (`runtime::units`), so the
//! dependency points one way: `runtime` -> `xu`.

use crate::error::{Fail, Res, fail};
use crate::faults;
use crate::log::{self, Level};
use crate::status;
use nrt_sys::*;
use std::collections::VecDeque;
use std::ffi::c_int;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// What a request does, as the queue's worker sees it (implemented by the device model,
/// `runtime::units`).
pub(crate) trait Work: Send + 'static {
    /// The C function that scheduled the request, for log lines.
    fn func(&self) -> &'static str;
    /// Does the request on the worker thread, its device time included.
    fn run(self) -> Res<()>;
}

/// What a queue needs from the core it belongs to (implemented by `runtime::Core`).
pub(crate) trait UnitCore: Send + Sync + 'static {
    /// The core's index in the API (first visible core = 0).
    fn index(&self) -> u32;
    /// Counts `ns` nanoseconds of work done by queue `queue` of XU type `xu`.
    fn add_busy(&self, xu: nrta_xu_t, queue: u32, ns: u64);
}

/// The caller's status slot.
struct RetSlot(*mut NRT_STATUS);

// SAFETY: valid until completion (the scheduling caller's promise), written once by the
// worker with an atomic store.
unsafe impl Send for RetSlot {}

struct Job<W> {
    n: u64,
    work: W,
    ret: RetSlot,
    /// When it was queued: its device time starts no earlier (see `dma::device_start`).
    queued_at: std::time::Instant,
}

struct State<W> {
    pending: VecDeque<Job<W>>,
    /// Number of the last request accepted.
    issued: u64,
    worker: Option<JoinHandle<()>>,
    shutdown: bool,
    /// Eventfds registered for one request each (`nrta_event_register_seq_id_completion`):
    /// (request number, fd), signalled once and dropped when that request completes.
    seq_events: Vec<(u64, c_int)>,
    /// The eventfd signalled on every completion (`nrta_event_register_xu_completion`).
    xu_event: Option<c_int>,
    /// Why the last [`MAX_REASONS`] failed requests failed: (request number, log line),
    /// oldest first (`nrt_sim_request_error`).
    reasons: VecDeque<(u64, String)>,
}

/// Failed requests whose reason a queue keeps (the oldest is forgotten first).
const MAX_REASONS: usize = 64;

/// One execution-unit queue, running requests of type `W`.
pub(crate) struct XuQueue<W> {
    core: Arc<dyn UnitCore>,
    xu: nrta_xu_t,
    queue: u32,
    xu_id: u16,
    depth: u64,
    state: Mutex<State<W>>,
    wake: Condvar,
    /// Number of the last completed request (0 before any).
    completed: AtomicU64,
    /// Unrecoverable: schedules are refused, queued requests fail.
    dead: Arc<AtomicBool>,
}

fn xu_name(xu: nrta_xu_t) -> &'static str {
    match xu {
        NRTA_XU_TENSOR_OP => "TENSOR_OP",
        NRTA_XU_COMPUTE => "COMPUTE",
        NRTA_XU_COLLECTIVES => "COLLECTIVES",
        _ => "?",
    }
}

impl<W: Work> XuQueue<W> {
    /// Queue `queue` of XU type `xu` of `core`, holding at most `depth` requests in
    /// flight; `dead` is its unrecoverable flag (shared with whoever else must see it).
    pub(crate) fn new(
        core: Arc<dyn UnitCore>,
        xu: nrta_xu_t,
        queue: u32,
        depth: u32,
        dead: Arc<AtomicBool>,
    ) -> Self {
        XuQueue {
            xu_id: (xu as u16) | ((queue as u16) << 4) | ((core.index() as u16) << 8),
            core,
            xu,
            queue,
            depth: depth.into(),
            state: Mutex::new(State {
                pending: VecDeque::new(),
                issued: 0,
                worker: None,
                shutdown: false,
                seq_events: Vec::new(),
                xu_event: None,
                reasons: VecDeque::new(),
            }),
            wake: Condvar::new(),
            completed: AtomicU64::new(0),
            dead,
        }
    }
}

/// The queue `(vnc, xu, queue)`, if it exists.
pub(crate) fn find_queue<W>(
    queues: &[Arc<XuQueue<W>>],
    vnc: u32,
    xu: nrta_xu_t,
    queue: u32,
) -> Option<&Arc<XuQueue<W>>> {
    queues
        .iter()
        .find(|q| q.core.index() == vnc && q.xu == xu && q.queue == queue)
}

/// Like [`find_queue`] for API arguments, with an error naming the bad one.
pub(crate) fn lookup<W>(
    queues: &[Arc<XuQueue<W>>],
    cores: usize,
    vnc: i64,
    xu: nrta_xu_t,
    queue: i64,
) -> Res<&Arc<XuQueue<W>>> {
    let Some(count) = faults::queues_of(xu) else {
        return fail(
            NRT_INVALID,
            format!("XU type {xu} is not TENSOR_OP (0), COMPUTE (1) or COLLECTIVES (2)"),
        );
    };
    if vnc < 0 || vnc as usize >= cores {
        return fail(
            NRT_INVALID,
            format!(
                "core {vnc} is not a visible core (0 to {})",
                cores as i64 - 1
            ),
        );
    }
    if queue < 0 || queue >= count.into() {
        return fail(
            NRT_INVALID,
            format!(
                "queue {queue} does not exist: {} has queues 0 to {} per core",
                xu_name(xu),
                count - 1
            ),
        );
    }
    Ok(find_queue(queues, vnc as u32, xu, queue as u32).expect("every valid queue exists"))
}

/// The queue that issued `seq`, decoded from its top 16 bits.
pub(crate) fn queue_of_seq<W>(
    queues: &[Arc<XuQueue<W>>],
    cores: usize,
    seq: nrta_seq_t,
) -> Res<&Arc<XuQueue<W>>> {
    let xu_id = seq >> 48;
    let (xu, queue, vnc) = (xu_id & 0xf, (xu_id >> 4) & 0xf, xu_id >> 8);
    lookup(queues, cores, vnc as i64, xu as nrta_xu_t, queue as i64).map_err(|e| Fail {
        message: format!("sequence id {seq:#x} names no queue: {}", e.message),
        ..e
    })
}

impl<W> XuQueue<W> {
    fn label(&self) -> String {
        format!(
            "core {} {} queue {}",
            self.core.index(),
            xu_name(self.xu),
            self.queue
        )
    }

    fn state(&self) -> MutexGuard<'_, State<W>> {
        // State updates are single assignments or VecDeque push/pop; a poisoned lock
        // still guards consistent data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the queue unrecoverable.
    pub(crate) fn make_dead(&self, why: &str) {
        if !self.dead.swap(true, Ordering::AcqRel) {
            log::log(
                Level::Error,
                "nrta",
                &format!("{} is now unrecoverable: {why}", self.label()),
            );
        }
    }

    pub(crate) fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    /// Last completed sequence id (`xu_id << 48` before any).
    pub(crate) fn last_completed(&self) -> nrta_seq_t {
        ((self.xu_id as u64) << 48) | self.completed.load(Ordering::Acquire)
    }

    /// Keeps why request `n` failed (before its completion is published, so that whoever
    /// sees it complete finds the reason).
    fn remember_reason(&self, n: u64, line: String) {
        let mut st = self.state();
        if st.reasons.len() == MAX_REASONS {
            st.reasons.pop_front();
        }
        st.reasons.push_back((n, line));
    }

    /// Why request `seq` of this queue failed (`"function: request n on core c TYPE queue
    /// q: reason"`), if it did and is among the last [`MAX_REASONS`] failures.
    pub(crate) fn failure_reason(&self, seq: nrta_seq_t) -> Option<String> {
        let n = seq & NRTA_SEQ_NUM_MASK;
        let st = self.state();
        st.reasons
            .iter()
            .rev()
            .find(|(m, _)| *m == n)
            .map(|(_, line)| line.clone())
    }

    /// Whether request `seq` (issued by this queue) has completed.
    pub(crate) fn is_completed(&self, seq: nrta_seq_t) -> Res<bool> {
        let n = seq & NRTA_SEQ_NUM_MASK;
        let issued = self.state().issued;
        if n == 0 || n > issued {
            return fail(
                NRT_INVALID,
                format!(
                    "sequence id {seq:#x} (number {n}) was never issued by {} (last issued: {issued})",
                    self.label()
                ),
            );
        }
        Ok(n <= self.completed.load(Ordering::Acquire))
    }

    /// Queues `work`; returns its sequence id. Nothing changes on error.
    ///
    /// # Safety
    ///
    /// `ret` must be non-null, aligned, and valid for writes until the request completes;
    /// host pointers inside `work` likewise.
    pub(crate) unsafe fn schedule(
        self: &Arc<Self>,
        work: W,
        ret: *mut NRT_STATUS,
    ) -> Res<nrta_seq_t>
    where
        W: Work,
    {
        if self.is_dead() {
            return fail(
                NRT_EXEC_UNIT_UNRECOVERABLE,
                format!(
                    "{} is unrecoverable; re-initialize the runtime",
                    self.label()
                ),
            );
        }
        let mut st = self.state();
        if st.shutdown {
            return fail(NRT_CLOSED, "the runtime is closing");
        }
        let in_flight = st.issued - self.completed.load(Ordering::Acquire);
        if in_flight >= self.depth {
            return Err(Fail {
                status: NRT_QUEUE_FULL,
                message: format!(
                    "{} has {in_flight} request(s) in flight, its depth (NRT_SIM_QUEUE_DEPTH)",
                    self.label()
                ),
                level: Level::Debug,
            });
        }
        if st.worker.is_none() {
            let me = self.clone();
            let name = format!(
                "nrt-sim-{}-{}-{}",
                self.core.index(),
                xu_name(self.xu).to_ascii_lowercase(),
                self.queue
            );
            // Executions run on this thread: as much stack as a caller of nrt_execute
            // needs, and more.
            let handle = std::thread::Builder::new()
                .name(name)
                .stack_size(crate::stack::WORKER_STACK)
                .spawn(move || me.work_loop())
                .map_err(|e| Fail {
                    status: NRT_RESOURCE,
                    message: format!("cannot start the worker of {}: {e}", self.label()),
                    level: Level::Error,
                })?;
            st.worker = Some(handle);
        }
        st.issued += 1;
        let n = st.issued;
        st.pending.push_back(Job {
            n,
            work,
            ret: RetSlot(ret),
            queued_at: std::time::Instant::now(),
        });
        drop(st);
        self.wake.notify_one();
        Ok(((self.xu_id as u64) << 48) | n)
    }

    fn work_loop(&self)
    where
        W: Work,
    {
        crate::clock::precise_sleeps();
        loop {
            let job = {
                let mut st = self.state();
                loop {
                    if let Some(job) = st.pending.pop_front() {
                        break job;
                    }
                    if st.shutdown {
                        return;
                    }
                    st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
                }
            };
            let Job {
                n,
                work,
                ret,
                queued_at,
            } = job;
            let func = work.func();
            crate::dma::set_arrival(Some(queued_at));
            // A panic in the simulator must not leave the request incomplete forever.
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.process(work)))
                    .unwrap_or_else(|_| {
                        fail(NRT_FAILURE, "internal error (panic) in the simulator")
                    });
            crate::dma::set_arrival(None);
            let status = match result {
                Ok(()) => NRT_SUCCESS,
                Err(f) => {
                    let line = format!("request {n} on {}: {}", self.label(), f.message);
                    log::log(Level::Error, func, &line);
                    self.remember_reason(n, format!("{func}: {line}"));
                    f.status
                }
            };
            // SAFETY: `ret` is non-null, aligned and valid until this request completes
            // (checked and promised at schedule time); the store happens before the
            // completion is published below.
            unsafe { AtomicU32::from_ptr(ret.0) }.store(status, Ordering::Release);
            self.completed.store(n, Ordering::Release);
            self.signal_completion(n);
        }
    }

    /// Signals the eventfds waiting for request `n` (and earlier ones) and the unit's
    /// own, after its status and completion were published. Under the state lock, so
    /// that once a deregistration returns its fd is never written again (the caller may
    /// close it then), and a registration racing with this completion either is seen
    /// here or sees the completion itself.
    fn signal_completion(&self, n: u64) {
        let mut st = self.state();
        if st.seq_events.is_empty() && st.xu_event.is_none() {
            return;
        }
        let label = self.label();
        st.seq_events.retain(|&(waits_for, fd)| {
            let done = waits_for <= n;
            if done {
                signal(fd, &label);
            }
            !done
        });
        if let Some(fd) = st.xu_event {
            signal(fd, &label);
        }
    }

    /// `nrta_event_register_seq_id_completion` for a request of this queue: signals `fd`
    /// when request `seq` completes, at once if it has; a negative `fd` removes every
    /// registration of `seq`.
    pub(crate) fn register_seq_event(&self, seq: nrta_seq_t, fd: c_int) -> Res<()> {
        let n = seq & NRTA_SEQ_NUM_MASK;
        if fd >= 0 {
            check_eventfd(fd)?;
        }
        let mut st = self.state();
        if n == 0 || n > st.issued {
            return fail(
                NRT_INVALID,
                format!(
                    "sequence id {seq:#x} (number {n}) was never issued by {} (last issued: {})",
                    self.label(),
                    st.issued
                ),
            );
        }
        if fd < 0 {
            st.seq_events.retain(|&(waits_for, _)| waits_for != n);
        } else if n <= self.completed.load(Ordering::Acquire) {
            signal(fd, &self.label());
        } else {
            st.seq_events.push((n, fd));
        }
        Ok(())
    }

    /// `nrta_event_register_xu_completion`: signal `fd` on every completion of this
    /// queue (replacing an earlier fd); a negative `fd` deregisters.
    pub(crate) fn register_xu_event(&self, fd: c_int) -> Res<()> {
        if fd >= 0 {
            check_eventfd(fd)?;
        }
        self.state().xu_event = (fd >= 0).then_some(fd);
        Ok(())
    }

    fn process(&self, work: W) -> Res<()>
    where
        W: Work,
    {
        if self.is_dead() {
            return fail(
                NRT_EXEC_UNIT_UNRECOVERABLE,
                format!("{} is unrecoverable", self.label()),
            );
        }
        if let Some(status) = faults::on_xu_request(self.core.index(), self.xu, self.queue) {
            self.make_dead("fault injected");
            return fail(status, "injected execution-unit fault");
        }
        // Busy from the request's device start (its arrival, or the end of the one
        // before it), so that a late wake-up of this thread is not idle device time.
        let start = crate::dma::busy_start();
        let result = work.run();
        let busy = crate::dma::busy_end().saturating_duration_since(start);
        self.core
            .add_busy(self.xu, self.queue, busy.as_nanos() as u64);
        if let Err(f) = &result
            && status::is_fatal(f.status)
        {
            self.make_dead(&format!("a request failed with status {}", f.status));
        }
        result
    }
}

/// Refuses an `fd` that is not an open eventfd (`NRT_INVALID`).
///
/// Signals are written under the queue's lock (so that a deregistered fd is never
/// written again): a descriptor whose write(2) can block (a full pipe) would stall the
/// queue, and a closed one would be a caller's bug found only at completion time. An
/// eventfd's write blocks only when its counter is about to overflow (2^64 - 2).
/// Where `/proc` is not mounted only the descriptor's validity is checked.
fn check_eventfd(fd: c_int) -> Res<()> {
    // SAFETY: F_GETFD only reads the descriptor table entry of an integer.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return fail(
            NRT_INVALID,
            format!(
                "fd {fd} is not an open file descriptor: {}",
                std::io::Error::last_os_error()
            ),
        );
    }
    match std::fs::read_link(format!("/proc/self/fd/{fd}")) {
        Ok(target) if target.as_os_str() != "anon_inode:[eventfd]" => fail(
            NRT_INVALID,
            format!(
                "fd {fd} is not an eventfd ({}); create one with eventfd(2)",
                target.display()
            ),
        ),
        _ => Ok(()),
    }
}

/// Adds 1 to the eventfd `fd`'s counter. A failure (fd closed without deregistering
/// first, not an eventfd) is the caller's bug: logged, never fatal.
fn signal(fd: c_int, label: &str) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live local; `fd` is only an integer to the kernel,
    // which rejects a closed one with EBADF.
    let written = unsafe { libc::write(fd, (&raw const one).cast(), size_of::<u64>()) };
    if written != size_of::<u64>() as isize {
        log::log(
            Level::Warn,
            "nrta_event",
            &format!(
                "cannot signal fd {fd} for {label}: {}",
                std::io::Error::last_os_error()
            ),
        );
    }
}

/// Stops every queue: no new requests; workers finish what is queued, then exit.
pub(crate) fn shutdown<W>(queues: &[Arc<XuQueue<W>>]) {
    let mut workers = Vec::new();
    for q in queues {
        let mut st = q.state();
        st.shutdown = true;
        workers.extend(st.worker.take());
        drop(st);
        q.wake.notify_all();
    }
    for w in workers {
        // A worker never panics past its catch_unwind; nothing to do if it did.
        let _ = w.join();
    }
}
