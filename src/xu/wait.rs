//! Polling with backoff: how every wait in the async API waits.
//!
//! libnrt's v3 async API has no blocking wait, only polls (`nrta_is_completed`,
//! `nrta_get_sequence`). Polling in a tight loop burns a core for the whole execution,
//! and sleeping a fixed period adds up to that period of latency. So a wait spins for
//! the first 50 us (completions that are already imminent cost no syscall), yields until
//! 100 us, then sleeps for 1/8 of the time waited so far (so noticing a completion is at
//! most about 12% late), capped at [`MAX_SLEEP`] (5 ms: at most 200 wake-ups per second
//! per wait once it has lasted 40 ms). A wait of duration `D` therefore keeps a core busy
//! for at most about 100 us, plus one wake-up per sleep.

use std::time::{Duration, Instant};

/// The longest single sleep between two polls.
pub(crate) const MAX_SLEEP: Duration = Duration::from_millis(5);
/// The shortest sleep, once sleeping has started.
const MIN_SLEEP: Duration = Duration::from_micros(10);
/// How long a wait spins (polls separated by spin hints) before it starts yielding.
const SPIN_FOR: Duration = Duration::from_micros(50);
/// How long into a wait it yields between polls before it starts sleeping. Completions
/// that are a thread wake-up away (tens of microseconds) are noticed without a sleep,
/// whose real length is at least the kernel's timer slack (~50 us).
const YIELD_UNTIL: Duration = Duration::from_micros(100);
/// Sleep = time waited so far / this divisor (before clamping), so a completion is
/// noticed at most about 1/8 of the wait late.
const SLEEP_DIVISOR: u32 = 8;

/// The state of one wait: when it started and how many polls it made.
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
        let step = Self::step(self.elapsed(), self.polls);
        self.polls = self.polls.saturating_add(1);
        match step {
            Step::Spin(hints) => (0..hints).for_each(|_| std::hint::spin_loop()),
            Step::Yield => std::thread::yield_now(),
            Step::Sleep(sleep) => {
                let sleep = Self::limited(sleep, limit);
                if !sleep.is_zero() {
                    std::thread::sleep(sleep);
                }
            }
        }
    }

    /// A sleep shortened to `limit` (the remainder of a deadline), if any.
    fn limited(sleep: Duration, limit: Option<Duration>) -> Duration {
        limit.map_or(sleep, |l| sleep.min(l))
    }

    /// What to do after `elapsed` of waiting and `polls` polls.
    fn step(elapsed: Duration, polls: u32) -> Step {
        if elapsed < SPIN_FOR {
            Step::Spin(1 << polls.min(2))
        } else if elapsed < YIELD_UNTIL {
            Step::Yield
        } else {
            Step::Sleep((elapsed / SLEEP_DIVISOR).clamp(MIN_SLEEP, MAX_SLEEP))
        }
    }
}

/// One pause of a [`Backoff`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Spin for this many spin-loop hints.
    Spin(u32),
    /// Give the core to another thread.
    Yield,
    /// Sleep this long.
    Sleep(Duration),
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
    fn spins_then_yields_then_sleeps_longer_and_longer() {
        let us = Duration::from_micros;
        assert_eq!(Backoff::step(us(0), 0), Step::Spin(1));
        assert_eq!(Backoff::step(us(5), 1), Step::Spin(2));
        assert_eq!(Backoff::step(us(49), 40), Step::Spin(4));
        assert_eq!(Backoff::step(us(50), 41), Step::Yield);
        assert_eq!(Backoff::step(us(99), 500), Step::Yield);
        assert_eq!(
            Backoff::step(us(100), 501),
            Step::Sleep(Duration::from_nanos(12_500))
        );
        assert_eq!(Backoff::step(us(1600), 600), Step::Sleep(us(200)));
        assert_eq!(
            Backoff::step(Duration::from_secs(60), 9000),
            Step::Sleep(MAX_SLEEP)
        );
    }

    #[test]
    fn a_pause_late_in_a_wait_sleeps_and_respects_the_limit() {
        let mut b = Backoff::new();
        b.started = Instant::now() - Duration::from_secs(60);
        let t = Instant::now();
        b.pause(None);
        assert!(
            t.elapsed() >= Duration::from_micros(900),
            "{:?}",
            t.elapsed()
        );
        // A deadline's remainder caps the sleep; a spent deadline means no sleep at all.
        assert_eq!(
            Backoff::limited(MAX_SLEEP, Some(Duration::from_micros(30))),
            Duration::from_micros(30)
        );
        assert_eq!(
            Backoff::limited(MAX_SLEEP, Some(Duration::ZERO)),
            Duration::ZERO
        );
        assert_eq!(Backoff::limited(MAX_SLEEP, None), MAX_SLEEP);
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
    fn a_long_wait_polls_rarely() {
        // 100 ms of waiting: after the first 100 us, polls are at least 10 us apart and
        // soon 1/8 of the time waited, so a few hundred polls plus the early ones.
        let polls = Cell::new(0u32);
        let _: Result<Option<()>, ()> = poll_until(Some(Duration::from_millis(100)), || {
            polls.set(polls.get() + 1);
            Ok(None)
        });
        let late = polls.get();
        assert!(late < 5_000, "{late} polls in 100 ms");
    }
}
