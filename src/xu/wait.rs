//! Polling with backoff: how every wait in the async API waits.
//!
//! libnrt's v3 async API has no blocking wait, only polls (`nrta_is_completed`,
//! `nrta_get_sequence`). Polling in a tight loop burns a core for the whole execution,
//! and sleeping a fixed period adds up to that period of latency. So a wait spins a
//! little (completions that are already imminent cost no syscall), then yields, then
//! sleeps for a fraction of the time waited so far (so the lateness of noticing a
//! completion stays a small fraction of the wait), capped at [`MAX_SLEEP`].

use std::time::{Duration, Instant};

/// The longest single sleep between two polls.
pub(crate) const MAX_SLEEP: Duration = Duration::from_millis(1);
/// The shortest sleep, once sleeping has started.
const MIN_SLEEP: Duration = Duration::from_micros(5);
/// Polls in the spinning phase (each followed by a growing number of spin hints).
const SPIN_POLLS: u32 = 7;
/// Polls in the yielding phase.
const YIELD_POLLS: u32 = 10;
/// Sleep = time waited so far / this divisor (before clamping).
const SLEEP_DIVISOR: u32 = 8;

/// The state of one wait: which phase it is in and when it started.
#[derive(Debug)]
pub(crate) struct Backoff {
    polls: u32,
    started: Instant,
}

impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff {
            polls: 0,
            started: Instant::now(),
        }
    }

    /// How long this wait has been going.
    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Pauses before the next poll; never longer than `limit` (a deadline's remainder).
    pub(crate) fn pause(&mut self, limit: Option<Duration>) {
        let polls = self.polls;
        self.polls = self.polls.saturating_add(1);
        if polls < SPIN_POLLS {
            for _ in 0..(1u32 << polls) {
                std::hint::spin_loop();
            }
        } else if polls < SPIN_POLLS + YIELD_POLLS {
            std::thread::yield_now();
        } else {
            let mut sleep = self.next_sleep();
            if let Some(limit) = limit {
                sleep = sleep.min(limit);
            }
            if !sleep.is_zero() {
                std::thread::sleep(sleep);
            }
        }
    }

    /// The sleep for the current point of the wait.
    fn next_sleep(&self) -> Duration {
        (self.elapsed() / SLEEP_DIVISOR).clamp(MIN_SLEEP, MAX_SLEEP)
    }

    /// Whether the wait has reached the sleeping phase.
    #[cfg(test)]
    fn is_sleeping(&self) -> bool {
        self.polls >= SPIN_POLLS + YIELD_POLLS
    }
}

/// Polls `done` until it returns `Some` (or an error), pausing with [`Backoff`] between
/// polls. With a `timeout`, returns `Ok(None)` once it has passed without `done` being
/// `Some`; `done` is always polled at least once, and once more at the deadline.
pub(crate) fn poll_until<T, E>(
    timeout: Option<Duration>,
    mut done: impl FnMut() -> Result<Option<T>, E>,
) -> Result<Option<T>, E> {
    let mut backoff = Backoff::new();
    loop {
        if let Some(value) = done()? {
            return Ok(Some(value));
        }
        let remaining = match timeout {
            None => None,
            Some(t) => match t.checked_sub(backoff.elapsed()) {
                Some(r) if !r.is_zero() => Some(r),
                // Deadline passed: one last look, so a completion that raced with the
                // deadline is not reported as a timeout.
                _ => return done(),
            },
        };
        backoff.pause(remaining);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn sleeps_only_after_spinning_and_yielding() {
        let mut b = Backoff::new();
        for _ in 0..(SPIN_POLLS + YIELD_POLLS) {
            assert!(!b.is_sleeping());
            b.pause(None);
        }
        assert!(b.is_sleeping());
    }

    #[test]
    fn sleep_grows_with_the_wait_and_is_capped() {
        let mut b = Backoff::new();
        assert_eq!(b.next_sleep(), MIN_SLEEP);
        b.started = Instant::now() - Duration::from_micros(800);
        let mid = b.next_sleep();
        assert!(
            mid >= Duration::from_micros(100) && mid < MAX_SLEEP,
            "{mid:?}"
        );
        b.started = Instant::now() - Duration::from_secs(60);
        assert_eq!(b.next_sleep(), MAX_SLEEP);
    }

    #[test]
    fn poll_until_returns_the_first_value() {
        let calls = Cell::new(0);
        let got: Result<Option<u32>, ()> = poll_until(None, || {
            calls.set(calls.get() + 1);
            Ok((calls.get() == 40).then_some(7))
        });
        assert_eq!(got, Ok(Some(7)));
        assert_eq!(calls.get(), 40);
    }

    #[test]
    fn poll_until_times_out_and_passes_errors_through() {
        let start = Instant::now();
        let got: Result<Option<()>, ()> = poll_until(Some(Duration::from_millis(20)), || Ok(None));
        assert_eq!(got, Ok(None));
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(20), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");

        let got: Result<Option<()>, &str> = poll_until(None, || Err("broken"));
        assert_eq!(got, Err("broken"));
    }

    #[test]
    fn a_long_wait_does_not_spin_a_core() {
        // 50 ms of waiting must not take anywhere near a full core: at most a few
        // hundred polls (the sleep phase sleeps >= 5 us, growing).
        let polls = Cell::new(0u32);
        let _: Result<Option<()>, ()> = poll_until(Some(Duration::from_millis(50)), || {
            polls.set(polls.get() + 1);
            Ok(None)
        });
        assert!(polls.get() < 2_000, "{} polls in 50 ms", polls.get());
    }
}
