//! When a queue's request will complete, predicted from the ones before it: what lets a
//! blocking wait be awake (watching the status slot) when the request completes instead
//! of being woken then.
//!
//! Why: a thread blocked on an eventfd is woken by the completion, and on a virtual
//! machine whose idle vCPUs halt that wake-up costs tens of microseconds, more the longer
//! the thread was idle. A wait that blocks only until shortly before the predicted end
//! ([`AHEAD`]) and then watches the slot sees the completion within a microsecond, for at
//! most `2 * AHEAD` of spinning per wait; a wrong prediction costs no latency (the
//! completion event still wakes it, or it blocks again after the watch), and the next
//! prediction learns from it.
//!
//! The prediction is made only for a request that was the last one submitted to its
//! queue and waited for right after (one request at a time): its device time then
//! starts at its submission. Requests queued behind others are not predicted.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long before the predicted end a wait stops blocking and watches the slot: more
/// than a thread's wake-up from a timed block (its timer slack is lowered for it).
pub(crate) const AHEAD: Duration = Duration::from_micros(60);

/// Shorter blocks than this are not worth a system call: the wait watches at once.
const MIN_BLOCK: Duration = Duration::from_micros(30);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn since_epoch(t: Instant) -> u64 {
    t.saturating_duration_since(epoch())
        .as_nanos()
        .min(u64::MAX as u128) as u64
}

/// Per queue: when its last request was submitted, and how long its requests take.
#[derive(Debug, Default)]
pub(crate) struct Timing {
    /// Number of the last submitted request whose submission time is known.
    number: AtomicU64,
    /// Its submission, in ns since [`epoch`].
    submitted_ns: AtomicU64,
    /// Estimated submission-to-completion time of a request (0: unknown).
    service_ns: AtomicU64,
    /// Number + 1 of the last request whose completion was recorded (0: none): a request seen
    /// complete twice (by the event thread's watch, then by its completion event)
    /// counts once, the first (exact) time.
    recorded: AtomicU64,
}

/// What a wait should do before it looks at completion the usual way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// No prediction: the usual wait.
    Unknown,
    /// Block (on the completion event) for this long, then watch the slot.
    BlockThenWatch(Duration),
    /// The end is near: watch the slot now.
    Watch,
}

impl Timing {
    /// A submission is about to be made (its time, for [`Timing::submitted`]).
    pub(crate) fn now() -> Instant {
        Instant::now()
    }

    /// Request `number` was submitted at `at`.
    pub(crate) fn submitted(&self, number: u64, at: Instant) {
        self.submitted_ns.store(since_epoch(at), Ordering::Relaxed);
        self.number.store(number, Ordering::Release);
    }

    /// The predicted end of request `number`, if it is the last one submitted and the
    /// queue's requests have been timed.
    fn predicted_end(&self, number: u64) -> Option<Instant> {
        if self.number.load(Ordering::Acquire) != number {
            return None;
        }
        let service = self.service_ns.load(Ordering::Relaxed);
        let submitted = self.submitted_ns.load(Ordering::Relaxed);
        (service > 0).then(|| epoch() + Duration::from_nanos(submitted.saturating_add(service)))
    }

    /// What a wait for request `number` starting now should do first.
    pub(crate) fn plan(&self, number: u64) -> Plan {
        let Some(end) = self.predicted_end(number) else {
            return Plan::Unknown;
        };
        let now = Instant::now();
        match end
            .checked_sub(AHEAD)
            .and_then(|w| w.checked_duration_since(now))
        {
            Some(block) if block >= MIN_BLOCK => Plan::BlockThenWatch(block),
            // Already past the predicted end: the prediction was too early.
            _ if now > end + AHEAD => Plan::Unknown,
            _ => Plan::Watch,
        }
    }

    /// When a watch of request `number` should start, for a waiter that starts now (the
    /// event thread's watches for futures, `near_end.rs`): `None` without a prediction.
    pub(crate) fn watch_from(&self, number: u64) -> Option<Instant> {
        match self.plan(number) {
            Plan::Unknown => None,
            Plan::Watch => Some(Instant::now()),
            Plan::BlockThenWatch(block) => Some(Instant::now() + block),
        }
    }

    /// Request `number` was seen complete at `at`, by a thread watching the slot
    /// (`watched`: that is when it completed) or by one woken after it completed (it
    /// completed earlier, by about a wake-up). A watched time replaces the estimate; a
    /// woken one, shaded down by half of [`AHEAD`], lowers it or raises it by half the
    /// difference, so that the next wait watches early enough to see the true time.
    pub(crate) fn completed(&self, number: u64, at: Instant, watched: bool) {
        if self.number.load(Ordering::Acquire) != number
            || self
                .recorded
                .swap(number.wrapping_add(1), Ordering::Relaxed)
                == number.wrapping_add(1)
        {
            return;
        }
        let took = since_epoch(at).saturating_sub(self.submitted_ns.load(Ordering::Relaxed));
        let s = self.service_ns.load(Ordering::Relaxed);
        let next = if watched {
            took
        } else {
            let est = took.saturating_sub(AHEAD.as_nanos() as u64 / 2);
            if s == 0 || est < s {
                est
            } else {
                s + (est - s) / 2
            }
        };
        self.service_ns.store(next.max(1), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_submitted_request_of_a_timed_queue_is_predicted() {
        let t = Timing::default();
        let start = Instant::now();
        t.submitted(1, start);
        assert_eq!(t.plan(1), Plan::Unknown, "not timed yet");
        t.completed(1, start + Duration::from_millis(10), true);
        t.submitted(2, Instant::now());
        assert!(matches!(t.plan(2), Plan::BlockThenWatch(d) if d > Duration::from_millis(9)));
        assert_eq!(t.plan(1), Plan::Unknown, "not the last submitted");
        t.submitted(3, Instant::now());
        assert_eq!(t.plan(2), Plan::Unknown, "queued behind another");
    }

    #[test]
    fn a_watched_completion_sets_the_estimate_and_a_woken_one_is_shaded_down() {
        let t = Timing::default();
        let at = Instant::now();
        let service = || Duration::from_nanos(t.service_ns.load(Ordering::Relaxed));
        t.submitted(1, at);
        t.completed(1, at + Duration::from_micros(200), false);
        assert_eq!(service(), Duration::from_micros(170));
        t.submitted(2, at);
        t.completed(2, at + Duration::from_micros(290), false);
        assert_eq!(service(), Duration::from_micros(215), "up by half");
        t.submitted(3, at);
        t.completed(3, at + Duration::from_micros(100), true);
        assert_eq!(service(), Duration::from_micros(100), "watched: exact");
        t.submitted(4, at);
        t.completed(4, at + Duration::from_micros(120), true);
        assert_eq!(service(), Duration::from_micros(120));
        // A completion of another request changes nothing.
        t.completed(2, at + Duration::from_secs(1), true);
        assert_eq!(service(), Duration::from_micros(120));
    }

    #[test]
    fn a_near_end_is_watched_at_once_and_a_passed_one_is_not_predicted() {
        // Times before the epoch read as the epoch: start well after it.
        epoch();
        std::thread::sleep(Duration::from_millis(10));
        let t = Timing::default();
        let at = Instant::now();
        t.submitted(1, at);
        t.completed(1, at + Duration::from_micros(50), true);
        t.submitted(2, Instant::now());
        assert_eq!(t.plan(2), Plan::Watch);
        t.submitted(3, Instant::now() - Duration::from_millis(5));
        assert_eq!(t.plan(3), Plan::Unknown);
    }
}
