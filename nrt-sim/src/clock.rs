//! The simulated device's clock: waits that end at simulated device time, the runtime's
//! launch cost per execution, and the simulator's own lag behind its model.
//!
//! # Waiting for a device time
//!
//! A thread sleeping until a deadline wakes late: by its timer slack (50 us for a thread
//! that did not lower it) and by the time the kernel (and, in a virtual machine, the
//! hypervisor) takes to run it again, which grows with how long its CPU has been idle
//! (tens of microseconds on a VM whose idle vCPUs halt). A fixed spin window before the
//! deadline was too small for that: executions of D lasted D + 25 to 60 us. So
//! [`wait_until`] sleeps with a 1 us slack to an absolute deadline on `CLOCK_MONOTONIC`
//! (`clock_nanosleep` with `TIMER_ABSTIME`, the clock `Instant` reads), [`margin`]
//! before the deadline, and spins the rest; the margin follows how late this machine's
//! sleeps really end (a running estimate of their 99th percentile, 20 to 300 us: the p99 of an execution's
//! length is what the target bounds). At
//! most one thread per CPU but one spins at a time: with more simulated cores busy than
//! the machine has CPUs, the others sleep to their deadline (a wake-up late) rather than
//! take the CPU the spinning ones and the application need.
//!
//! # Launch cost
//!
//! The real runtime spends time between taking an execution and starting it on the
//! device: users' traces show the device idle 170-190 us between back-to-back
//! synchronous executions on runtime 2.31, against about 13 us on 2.30, whose implicit
//! async mode queued requests ahead (aws-neuron-sdk issue #1370, Perfetto traces), and
//! NxD Inference's async mode reports 5-20 % lower latency from overlapping it. An execution queued (or called) at `q`
//! starts at `max(previous end, q + L)`; `L` is `NRT_SIM_LAUNCH_US` (read at `nrt_init`,
//! 0 by default) or `nrt_sim_set_launch_us`.
//!
//! # Lag
//!
//! The model's timeline (the trace's `nc_exec_running` spans) is exact by construction;
//! the host threads that play it are not. Every execution records its start lag (when
//! the simulator's thread reached the device start, minus the modelled start: 0 when it
//! was there early) and its end lag (when the wait for the device end returned, minus
//! the modelled end), reported by `nrt_sim_get_clock_stats` as p50 / p99 of the last
//! [`LAG_SAMPLES`] executions.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The least spin window: a sleep's own cost (a syscall and a context switch).
const MIN_MARGIN: Duration = Duration::from_micros(20);
/// The largest spin window: a loaded machine's sleeps end milliseconds late; spinning
/// for longer than this would take more CPU from it than the precision is worth (and a
/// spinning thread loses its scheduler priority to sleepers).
const MAX_MARGIN: Duration = Duration::from_micros(300);
/// The spin window before anything was measured: a VM's halted-vCPU wake-up.
const INITIAL_MARGIN_NS: u64 = 80_000;

/// Running estimate of how late a sleep ends (ns): the spin window.
static MARGIN_NS: AtomicU64 = AtomicU64::new(INITIAL_MARGIN_NS);

/// The launch cost `L` in nanoseconds.
static LAUNCH_NS: AtomicU64 = AtomicU64::new(0);

/// Largest accepted launch cost: 10 s (more is surely a mistake).
pub(crate) const MAX_LAUNCH_US: u64 = 10_000_000;

thread_local! {
    /// Whether this thread's timer slack is already 1 us ([`precise_sleeps`]).
    static PRECISE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The launch cost every execution pays before it starts (see the module docs).
pub(crate) fn launch_cost() -> Duration {
    Duration::from_nanos(LAUNCH_NS.load(Ordering::Relaxed))
}

/// Sets the launch cost (`NRT_SIM_LAUNCH_US` at `nrt_init`, `nrt_sim_set_launch_us`).
pub(crate) fn set_launch_cost(d: Duration) {
    LAUNCH_NS.store(d.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
}

/// How long before a deadline [`wait_until`] stops sleeping and spins.
pub(crate) fn margin() -> Duration {
    Duration::from_nanos(MARGIN_NS.load(Ordering::Relaxed))
}

/// Folds one sleep's lateness into the margin: a quantile estimate that moves up 99
/// times faster than down, so that about 99 % of sleeps end within it (with 95 %, one
/// execution in twenty woke past its spin window: D = 500 us had a p99 of D + 25 to 38 us).
fn observe_lateness(late: Duration) {
    observe_into(&MARGIN_NS, late);
}

fn observe_into(margin: &AtomicU64, late: Duration) {
    let m = margin.load(Ordering::Relaxed);
    let step = (m / 64).max(200);
    let late = late.as_nanos().min(u64::MAX as u128) as u64;
    let next = if late > m {
        m.saturating_add((99 * step).min(late - m))
    } else {
        m.saturating_sub(step.min(m - late))
    };
    let next = next.clamp(MIN_MARGIN.as_nanos() as u64, MAX_MARGIN.as_nanos() as u64);
    margin.store(next, Ordering::Relaxed);
}

/// Waits until `deadline`, to within a microsecond or two when the machine lets this
/// thread run: sleeps to `deadline - margin()` (absolute, 1 us slack), then spins.
pub(crate) fn wait_until(deadline: Instant) {
    let now = Instant::now();
    if now >= deadline {
        return;
    }
    let margin = margin();
    if deadline - now > margin + MIN_MARGIN {
        let wake = deadline - margin;
        sleep_until(wake);
        observe_lateness(Instant::now().saturating_duration_since(wake));
    }
    let Some(_spinning) = Spinner::enter() else {
        // Every CPU but one already spins for another deadline (many simulated cores
        // on a small machine). A second sleep would end a wake-up late (on a quiet VM
        // whose idle vCPUs halt, 100 us and more: 8 simulated cores on 2 CPUs lost 13 %
        // of their throughput to it), so yield the CPU in a loop instead: the window is
        // short (the margin), and a yielding thread gives way to every runnable one
        // (the spinning ones, the application), taking only CPU nothing else wants.
        while Instant::now() < deadline {
            std::thread::yield_now();
        }
        return;
    };
    while Instant::now() < deadline {
        std::hint::spin_loop();
    }
}

/// Threads spinning for a deadline now.
static SPINNING: AtomicU64 = AtomicU64::new(0);

/// A thread's place among the spinning ones; at most one CPU less than the machine has
/// (at least one) spin at once.
struct Spinner;

impl Spinner {
    fn enter() -> Option<Spinner> {
        static MAX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        let max = *MAX.get_or_init(|| {
            std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
                as u64
        });
        if SPINNING.fetch_add(1, Ordering::AcqRel) < max {
            Some(Spinner)
        } else {
            SPINNING.fetch_sub(1, Ordering::AcqRel);
            None
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        SPINNING.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Sleeps until `wake` on `CLOCK_MONOTONIC` with a 1 us timer slack (this thread's own
/// slack is put back afterwards on threads that are not the simulator's).
fn sleep_until(wake: Instant) {
    let precise = PRECISE.with(std::cell::Cell::get);
    // SAFETY: PR_GET_TIMERSLACK takes no pointer and returns this thread's slack.
    let old = (!precise).then(|| unsafe { libc::prctl(libc::PR_GET_TIMERSLACK) });
    if let Some(old) = old.filter(|&s| s > 1000) {
        // SAFETY: PR_SET_TIMERSLACK takes an integer and changes only this thread.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong) };
        absolute_sleep(wake);
        // SAFETY: as above; puts back the slack the thread had.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, old as libc::c_ulong) };
    } else {
        absolute_sleep(wake);
    }
}

/// `clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)` until `wake` (an `Instant` reads
/// that clock on Linux); a signal ends it early (the caller spins the rest).
fn absolute_sleep(wake: Instant) {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let now = Instant::now();
    // SAFETY: `ts` is a valid out-pointer.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } != 0 {
        std::thread::sleep(wake.saturating_duration_since(now));
        return;
    }
    let ahead = wake.saturating_duration_since(now);
    let nanos = ts.tv_nsec as u64 + u64::from(ahead.subsec_nanos());
    let target = libc::timespec {
        tv_sec: ts
            .tv_sec
            .saturating_add(ahead.as_secs().min(i64::MAX as u64 / 2) as libc::time_t)
            .saturating_add((nanos / 1_000_000_000) as libc::time_t),
        tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: `target` is a valid timespec; no remainder is asked for (absolute time).
    unsafe {
        libc::clock_nanosleep(
            libc::CLOCK_MONOTONIC,
            libc::TIMER_ABSTIME,
            &target,
            std::ptr::null_mut(),
        )
    };
}

/// Lowers the calling thread's timer slack to 1 us for good. For the simulator's own
/// workers (their sleeps need no slack change each time).
pub(crate) fn precise_sleeps() {
    // SAFETY: PR_SET_TIMERSLACK takes an integer and changes only this thread's slack.
    let rc = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong) };
    PRECISE.with(|p| p.set(rc == 0));
}

/// Executions whose lag [`clock_stats`] reports (the most recent ones).
pub(crate) const LAG_SAMPLES: usize = 4096;

/// Lags of the last executions, in ns: a ring per kind.
struct Lags {
    start: Vec<u64>,
    end: Vec<u64>,
    next: usize,
    total: u64,
}

static LAGS: Mutex<Lags> = Mutex::new(Lags::new());

fn nanos(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
}

/// The simulator's lag behind its model over the last [`LAG_SAMPLES`] executions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LagStats {
    /// Executions recorded since the library was loaded (or the last reset).
    pub(crate) executions: u64,
    pub(crate) start_p50: Duration,
    pub(crate) start_p99: Duration,
    pub(crate) end_p50: Duration,
    pub(crate) end_p99: Duration,
}

impl Lags {
    const fn new() -> Lags {
        Lags {
            start: Vec::new(),
            end: Vec::new(),
            next: 0,
            total: 0,
        }
    }

    fn record(&mut self, start_ns: u64, end_ns: u64) {
        let at = self.next;
        if self.start.len() < LAG_SAMPLES {
            self.start.push(start_ns);
            self.end.push(end_ns);
        } else {
            self.start[at] = start_ns;
            self.end[at] = end_ns;
        }
        self.next = (at + 1) % LAG_SAMPLES;
        self.total += 1;
    }

    fn stats(&self) -> LagStats {
        let pct = |v: &[u64], p: usize| {
            if v.is_empty() {
                return Duration::ZERO;
            }
            let mut v = v.to_vec();
            v.sort_unstable();
            Duration::from_nanos(v[((v.len() - 1) * p) / 100])
        };
        LagStats {
            executions: self.total,
            start_p50: pct(&self.start, 50),
            start_p99: pct(&self.start, 99),
            end_p50: pct(&self.end, 50),
            end_p99: pct(&self.end, 99),
        }
    }
}

/// Records one execution's lag: `real_start` / `real_end` (when the simulator's thread
/// got there) against the modelled `start` / `end` (earlier than modelled is no lag).
pub(crate) fn record_lag(start: Instant, real_start: Instant, end: Instant, real_end: Instant) {
    let (s, e) = (
        nanos(real_start.saturating_duration_since(start)),
        nanos(real_end.saturating_duration_since(end)),
    );
    LAGS.lock().unwrap_or_else(|p| p.into_inner()).record(s, e);
}

/// The lag statistics; `reset` empties them afterwards.
pub(crate) fn clock_stats(reset: bool) -> LagStats {
    let mut lags = LAGS.lock().unwrap_or_else(|p| p.into_inner());
    let stats = lags.stats();
    if reset {
        *lags = Lags::new();
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_never_ends_before_its_deadline() {
        for us in [0u64, 5, 50, 300, 2000] {
            let deadline = Instant::now() + Duration::from_micros(us);
            wait_until(deadline);
            assert!(Instant::now() >= deadline, "{us} us");
        }
    }

    #[test]
    fn the_margin_follows_late_sleeps_up_fast_and_down_slowly_within_its_bounds() {
        let m = AtomicU64::new(INITIAL_MARGIN_NS);
        let get = || Duration::from_nanos(m.load(Ordering::Relaxed));
        for _ in 0..10_000 {
            observe_into(&m, Duration::from_secs(1));
        }
        assert_eq!(get(), MAX_MARGIN);
        observe_into(&m, Duration::ZERO);
        assert!(get() > MAX_MARGIN - Duration::from_micros(50));
        for _ in 0..100_000 {
            observe_into(&m, Duration::ZERO);
        }
        assert_eq!(get(), MIN_MARGIN);
        // A steady lateness is tracked: the margin settles just above it.
        for _ in 0..100_000 {
            observe_into(&m, Duration::from_micros(70));
        }
        assert!(get() >= Duration::from_micros(69) && get() <= Duration::from_micros(75));
    }

    #[test]
    fn percentiles_of_lags_come_from_the_recorded_samples() {
        let mut lags = Lags::new();
        for i in 0..100u64 {
            lags.record(i * 1000, 2 * i * 1000);
        }
        lags.record(0, 0);
        let s = lags.stats();
        assert_eq!(s.executions, 101);
        assert_eq!(s.start_p50, Duration::from_micros(49));
        assert_eq!(s.end_p99, Duration::from_micros(2 * 98));
        for _ in 0..2 * LAG_SAMPLES {
            lags.record(5, 5);
        }
        assert_eq!(lags.start.len(), LAG_SAMPLES);
        assert_eq!(lags.stats().end_p99, Duration::from_nanos(5));
    }
}
