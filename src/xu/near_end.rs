//! Predicted ends of awaited requests, for the event thread (`events.rs`).
//!
//! A future's executor thread sleeps while its request runs, and the request's
//! completion event wakes the event thread, which then wakes the executor: two wake-ups
//! in a row, and on a virtual machine the first one, of a thread asleep for the whole
//! request, costs tens of microseconds (the generic future was 30-47 us behind a
//! synchronous call at D = 500 us). When the request's queue predicts its end
//! (`timing.rs`), the event thread wakes itself shortly before it, with a `timerfd` in
//! its epoll set, and looks at the queue's progress for up to [`WATCH_FOR`]: it sees the
//! completion then and wakes the executor at once, or sleeps again and is woken by the
//! completion event within microseconds (its vCPU was running just before). Either way
//! the future is 5-16 us behind a synchronous call from D = 500 us on.
//!
//! This list only keeps the times: which unit and request, and when to start watching.
//! A `timerfd` (not the epoll timeout, which counts milliseconds) is armed for the
//! earliest one, to the nanosecond on `CLOCK_MONOTONIC`, the clock `Instant` reads.
//!
//! How long before a predicted end to arm it ([`NearEnds::lead`]) is learned: a timer
//! wake-up on a VM ends 20-60 us late (longer after a longer sleep), and every
//! microsecond the watch starts before the end is a microsecond of spinning. The lead
//! follows the 75th percentile of the timer's lateness plus [`LEAD_MARGIN`], so that most
//! watches begin a few microseconds before the end (a late one costs only the usual
//! wake-up: the completion event still wakes the future).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use super::timing::AHEAD;

/// Most entries kept at once: one per awaited request whose end is predicted, and only
/// the last submitted request of a queue is predicted, so this many is far beyond any
/// real use; a full list drops new entries (their futures are woken by the event).
const MAX_ENTRIES: usize = 4096;

/// Looks at one request after the first: a look that finds it still running is
/// followed by another, at its predicted end or [`look_gap`] later, whichever is later;
/// the gaps double from [`WATCH_FOR`], so the looks cover about 4 ms past the end (a
/// loaded machine's executions end late, and a request seen by no look teaches the
/// queue's timing nothing). With libnrt's signals working the completion event usually
/// wakes the future first, and the next look then finds nobody waiting and schedules no
/// more: one timer wake-up wasted at most.
pub(crate) const MORE_LOOKS: u8 = 8;

/// How long after a look that gave up the next one is due, with `more` looks left.
pub(crate) fn look_gap(more: u8) -> Duration {
    WATCH_FOR * (1u32 << MORE_LOOKS.saturating_sub(more).min(16))
}

/// One watch due at `at`: request `number` of `unit`, with `more` looks after this one.
pub(crate) struct NearEnd<T> {
    pub(crate) unit: Weak<T>,
    pub(crate) number: u64,
    pub(crate) at: Instant,
    pub(crate) more: u8,
}

/// Added to the learned lateness: the watch's own start (a lock, a look at the queue).
const LEAD_MARGIN: Duration = Duration::from_micros(8);
/// How long a watch looks at the queue's progress before it gives up and leaves the
/// future to its completion event. Short on purpose: that event then wakes an event
/// thread that was running microseconds ago, which costs a few microseconds, while
/// spinning longer only costs CPU (measured with `wait_latency`: watches of 15 and 120
/// us gave the same p50s from 500 us on, at 9-11 and 24-27 points of CPU over `sync`).
pub(crate) const WATCH_FOR: Duration = Duration::from_micros(16);

/// The pending watches and the timer armed for the earliest.
pub(crate) struct NearEnds<T> {
    timer: OwnedFd,
    pending: Mutex<Pending<T>>,
    /// Running estimate (ns) of the 75th percentile of how late the timer fires.
    late_ns: AtomicU64,
}

struct Pending<T> {
    entries: Vec<NearEnd<T>>,
    /// What the timer is armed for, if anything.
    armed: Option<Instant>,
}

impl<T> NearEnds<T> {
    /// A new list with its timer; `None` if no timerfd could be made (futures are then
    /// woken by the completion event alone).
    pub(crate) fn new() -> Option<NearEnds<T>> {
        // SAFETY: no pointers; a negative result is an error.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        (fd >= 0).then(|| NearEnds {
            // SAFETY: a new descriptor nothing else owns.
            timer: unsafe { OwnedFd::from_raw_fd(fd) },
            pending: Mutex::new(Pending {
                entries: Vec::new(),
                armed: None,
            }),
            late_ns: AtomicU64::new((AHEAD - LEAD_MARGIN).as_nanos() as u64),
        })
    }

    /// The timer's descriptor, readable when a watch is due (for the epoll set).
    pub(crate) fn fd(&self) -> RawFd {
        self.timer.as_raw_fd()
    }

    /// How long before a predicted end a watch should be armed (see the module docs):
    /// from [`LEAD_MARGIN`] to [`AHEAD`].
    pub(crate) fn lead(&self) -> Duration {
        (Duration::from_nanos(self.late_ns.load(Ordering::Relaxed)) + LEAD_MARGIN).min(AHEAD)
    }

    /// Folds one firing's lateness into the estimate: up three times faster than down,
    /// so that about 75 % of firings are within it.
    fn observe_lateness(&self, late: Duration) {
        let m = self.late_ns.load(Ordering::Relaxed);
        let step = (m / 16).max(500);
        let late = late.as_nanos().min(u64::MAX as u128) as u64;
        let next = if late > m {
            m + (3 * step).min(late - m)
        } else {
            m - step.min(m - late)
        };
        self.late_ns
            .store(next.min(AHEAD.as_nanos() as u64), Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, Pending<T>> {
        // Entries are pushed and removed whole; `armed` is rewritten whole.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a watch of request `number` of `unit` from `at` on, with `more` looks after
    /// it (see [`NearEnd`]); arms the timer if it is the earliest. Returns whether it
    /// was added (not with a full list).
    pub(crate) fn add(&self, unit: Weak<T>, number: u64, at: Instant, more: u8) -> bool {
        let mut pending = self.lock();
        if pending.entries.len() >= MAX_ENTRIES {
            return false;
        }
        pending.entries.push(NearEnd {
            unit,
            number,
            at,
            more,
        });
        if pending.armed.is_none_or(|armed| at < armed) && self.arm(at) {
            pending.armed = Some(at);
        }
        true
    }

    /// Moves the watches due by `now` into `due` (empty on entry), clears the timer's
    /// expiry count, and arms it for the earliest watch left.
    pub(crate) fn take_due(&self, now: Instant, due: &mut Vec<NearEnd<T>>) {
        let mut expirations = 0u64;
        // SAFETY: reads at most 8 bytes into a live local; nothing to read is fine.
        let _ = unsafe {
            libc::read(
                self.timer.as_raw_fd(),
                (&raw mut expirations).cast(),
                size_of::<u64>(),
            )
        };
        let mut pending = self.lock();
        let mut i = 0;
        while let Some(entry) = pending.entries.get(i) {
            if entry.at <= now {
                due.push(pending.entries.swap_remove(i));
            } else {
                i += 1;
            }
        }
        due.sort_unstable_by_key(|e| e.at);
        // The timer was armed for the earliest of them: how late it fired.
        if let (Some(first), Some(armed)) = (due.first(), pending.armed)
            && first.at == armed
        {
            self.observe_lateness(now.saturating_duration_since(armed));
        }
        let next = pending.entries.iter().map(|e| e.at).min();
        pending.armed = next.filter(|&at| self.arm(at));
    }

    /// Arms the timer to expire at `at` (at once if it has passed); whether it could.
    fn arm(&self, at: Instant) -> bool {
        let mut now_ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: writes one timespec into a live local.
        if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now_ts) } != 0 {
            return false;
        }
        // `Instant` reads CLOCK_MONOTONIC: the offset from now carries over. A zero
        // value would disarm the timer, so a passed time expires in 1 ns.
        let ahead = at.saturating_duration_since(Instant::now()).as_nanos() as i128;
        let target = (now_ts.tv_sec as i128) * 1_000_000_000 + now_ts.tv_nsec as i128 + ahead;
        let target = target.max(1);
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: (target / 1_000_000_000) as libc::time_t,
                tv_nsec: (target % 1_000_000_000) as libc::c_long,
            },
        };
        // SAFETY: valid timerfd; `spec` is a live itimerspec; the old value is not asked.
        let set = unsafe {
            libc::timerfd_settime(
                self.timer.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        };
        set == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn readable(fd: RawFd, timeout_ms: i32) -> bool {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, timeout_ms) == 1 }
    }

    #[test]
    fn the_timer_fires_for_the_earliest_watch_and_rearms_for_the_next() {
        let list = NearEnds::<u32>::new().expect("timerfd");
        let unit = Arc::new(7u32);
        let start = Instant::now();
        assert!(list.add(
            Arc::downgrade(&unit),
            2,
            start + Duration::from_millis(40),
            MORE_LOOKS
        ));
        assert!(list.add(
            Arc::downgrade(&unit),
            1,
            start + Duration::from_millis(10),
            MORE_LOOKS
        ));
        assert!(!readable(list.fd(), 0), "not due yet");
        assert!(readable(list.fd(), 1000), "the earliest watch fires");
        let mut due = Vec::new();
        list.take_due(Instant::now(), &mut due);
        assert!(start.elapsed() >= Duration::from_millis(10));
        assert_eq!(due.iter().map(|e| e.number).collect::<Vec<_>>(), [1]);
        assert_eq!(*due[0].unit.upgrade().expect("unit"), 7);
        due.clear();
        // Re-armed for the second one; the expiry count was cleared.
        assert!(!readable(list.fd(), 0));
        assert!(readable(list.fd(), 1000));
        list.take_due(Instant::now(), &mut due);
        assert!(start.elapsed() >= Duration::from_millis(40));
        assert_eq!(due.iter().map(|e| e.number).collect::<Vec<_>>(), [2]);
        due.clear();
        list.take_due(Instant::now(), &mut due);
        assert!(due.is_empty());
        assert!(!readable(list.fd(), 20), "nothing left: disarmed");
    }

    #[test]
    fn the_lead_follows_the_timers_lateness_within_its_bounds() {
        let list = NearEnds::<u32>::new().expect("timerfd");
        assert_eq!(list.lead(), AHEAD, "before any firing: the longest lead");
        for _ in 0..400 {
            list.observe_lateness(Duration::from_micros(2));
        }
        assert_eq!(
            list.lead(),
            Duration::from_micros(10),
            "2 us late + the margin"
        );
        // A fifth of firings 40 us late: the 75th percentile stays low...
        for i in 0..400 {
            let late = if i % 5 == 0 { 40 } else { 2 };
            list.observe_lateness(Duration::from_micros(late));
        }
        assert!(list.lead() < Duration::from_micros(20), "{:?}", list.lead());
        // ...half of them: it rises to them, bounded by AHEAD.
        for i in 0..400 {
            let late = if i % 2 == 0 { 200 } else { 2 };
            list.observe_lateness(Duration::from_micros(late));
        }
        assert_eq!(list.lead(), AHEAD);
    }

    #[test]
    fn the_looks_after_a_first_one_double_their_gaps_to_about_4_ms() {
        assert_eq!(look_gap(MORE_LOOKS), WATCH_FOR);
        assert_eq!(look_gap(MORE_LOOKS - 1), 2 * WATCH_FOR);
        let total: Duration = (1..=MORE_LOOKS).map(look_gap).sum();
        assert!(
            total >= Duration::from_millis(4) && total < Duration::from_millis(5),
            "{total:?}"
        );
    }

    #[test]
    fn a_passed_time_fires_at_once_and_a_full_list_refuses() {
        let list = NearEnds::<u32>::new().expect("timerfd");
        let unit = Arc::new(0u32);
        let past = Instant::now() - Duration::from_millis(5);
        assert!(list.add(Arc::downgrade(&unit), 1, past, MORE_LOOKS));
        assert!(readable(list.fd(), 1000));
        let far = Instant::now() + Duration::from_secs(3600);
        for n in 1..MAX_ENTRIES {
            assert!(list.add(Arc::downgrade(&unit), n as u64, far, MORE_LOOKS));
        }
        assert!(!list.add(Arc::downgrade(&unit), 0, far, MORE_LOOKS), "full");
    }
}
