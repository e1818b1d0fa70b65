//! When a queue's request will complete, predicted from the ones before it: what lets the
//! event thread be awake (watching the queue's progress) when an awaited request
//! completes, so that the future's executor is woken by a thread already running
//! (`near_end.rs`) instead of by one woken for the completion first.
//!
//! Why: a thread blocked on an eventfd is woken by the completion, and on a virtual
//! machine a generic future then pays two wake-ups in a row (the event thread's, then
//! the executor's: 30-47 us behind a synchronous call at D = 500 us). A watch that starts
//! shortly before the predicted end (a learned lead, at most [`AHEAD`]) sees the
//! completion within a microsecond, or leaves it to the completion event after a short
//! look; a wrong prediction costs no latency (the completion event still wakes the
//! future), and the next prediction learns from it. The blocking `Request::wait` does
//! not use it: it is woken by the completion directly (one wake-up), within target at
//! its CPU.
//!
//! The prediction is made only for a request that was the last one submitted to its
//! queue and waited for right after (one request at a time): its device time then
//! starts at its submission. Requests queued behind others are not predicted.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The longest lead of a watch before the predicted end (a timer wake-up's lateness on a
/// VM is 30-60 us at the p50; `near_end.rs` learns the real one), and how far past the
/// predicted end a future's first poll still gets a watch.
pub(crate) const AHEAD: Duration = Duration::from_micros(60);

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
    pub(crate) fn predicted_end(&self, number: u64) -> Option<Instant> {
        if self.number.load(Ordering::Acquire) != number {
            return None;
        }
        let service = self.service_ns.load(Ordering::Relaxed);
        let submitted = self.submitted_ns.load(Ordering::Relaxed);
        (service > 0).then(|| epoch() + Duration::from_nanos(submitted.saturating_add(service)))
    }

    /// When a watch of request `number` should start, `lead` before its predicted end
    /// (at once if that has passed): `None` without a prediction, or when the predicted
    /// end is more than [`AHEAD`] past (the prediction was too early; the completion
    /// event wakes the waiter).
    pub(crate) fn watch_from(&self, number: u64, lead: Duration) -> Option<Instant> {
        let end = self.predicted_end(number)?;
        let now = Instant::now();
        if now > end + AHEAD {
            return None;
        }
        Some(end.checked_sub(lead).map_or(now, |at| at.max(now)))
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
        let lead = Duration::from_micros(20);
        assert_eq!(t.watch_from(1, lead), None, "not timed yet");
        t.completed(1, start + Duration::from_millis(10), true);
        let submitted = Instant::now();
        t.submitted(2, submitted);
        let at = t.watch_from(2, lead).expect("predicted");
        // Service 10 ms (to the nanosecond through the epoch), watched 20 us before.
        let from = at.duration_since(submitted);
        assert!(
            from > Duration::from_micros(9_970) && from <= Duration::from_micros(9_990),
            "{from:?}"
        );
        assert_eq!(t.watch_from(1, lead), None, "not the last submitted");
        t.submitted(3, Instant::now());
        assert_eq!(t.watch_from(2, lead), None, "queued behind another");
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
        let before = Instant::now();
        let at = t.watch_from(2, AHEAD).expect("predicted");
        assert!(at >= before && at <= Instant::now(), "watched at once");
        t.submitted(3, Instant::now() - Duration::from_millis(5));
        assert_eq!(t.watch_from(3, AHEAD), None);
    }
}
