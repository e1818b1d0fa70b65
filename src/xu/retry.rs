//! [`ExecUnit::submit_with_retry`] and its [`RetryPolicy`].

use std::time::{Duration, Instant};

use super::payload::Payload;
use super::queue::ExecUnit;
use super::request::Scheduled;
use super::seq::SeqId;
use super::wait::Backoff;
use crate::error::NrtStatus;

/// Bounds for [`ExecUnit::submit_with_retry`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Submissions to try in total, the first one included (one is always made, also
    /// with 0).
    pub max_attempts: u32,
    /// Time after which no further attempt is made (the first one is always made).
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    /// 1000 attempts within 30 seconds.
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 1000,
            timeout: Duration::from_secs(30),
        }
    }
}

impl ExecUnit {
    /// Calls `submit` with `payload` until it is accepted, waiting for a completion on
    /// this unit after each [`NrtStatus::QueueFull`] rejection, within `policy`'s
    /// bounds.
    ///
    /// `submit` is typically a closure around one of this unit's schedule methods, e.g.
    /// `|(inputs, outputs)| unit.execute(&model, inputs, outputs)`. The wait blocks on a
    /// completion event where the runtime has them (else it polls with backoff); when
    /// the queue is full with no request of this crate in it (other code filled it), a
    /// retry follows a short pause instead.
    ///
    /// # Errors
    ///
    /// Any rejection other than `QueueFull` (also [`NrtStatus::ExecNcBusy`], which
    /// waiting for a completion cannot cure) is returned at once; when the policy's
    /// attempts or time run out, or progress on the queue can no longer be observed,
    /// the last `QueueFull` rejection is returned. Either way the payload comes back in
    /// the [`Rejected`](crate::Rejected).
    pub fn submit_with_retry<T: Payload>(
        &self,
        policy: RetryPolicy,
        payload: T,
        mut submit: impl FnMut(T) -> Scheduled<T>,
    ) -> Scheduled<T> {
        let mut payload = payload;
        let mut attempts = 0u32;
        let started = Instant::now();
        let mut unknown_queue = Backoff::new();
        let state = &self.inner.state;
        loop {
            // Read before the attempt, so that a completion between the rejection and
            // the wait below is not missed.
            let before = self.inner.last_completed().map(|s| s.number());
            let rejected = match submit(payload) {
                Ok(request) => return Ok(request),
                Err(rejected) => rejected,
            };
            attempts = attempts.saturating_add(1);
            if rejected.error().status() != Some(NrtStatus::QueueFull)
                || attempts >= policy.max_attempts
            {
                return Err(rejected);
            }
            let remaining = match policy.timeout.checked_sub(started.elapsed()) {
                Some(r) if !r.is_zero() => r,
                _ => return Err(rejected),
            };
            let Ok(before) = before else {
                return Err(rejected);
            };
            let next = before + 1;
            log::debug!(
                "{self}: queue full, retry {attempts} of {}",
                policy.max_attempts
            );
            match state.xu_id() {
                // Our own requests fill the queue: wait for the next one to complete.
                Some(xu_id) if next <= state.last_submitted_number() => {
                    if self
                        .inner
                        .wait_until(SeqId::new(xu_id, next), Some(remaining))
                        .is_err()
                    {
                        return Err(rejected);
                    }
                }
                // Drained meanwhile: retry at once.
                Some(_) => {}
                // Other code's requests fill it: nothing of ours to wait for.
                None => unknown_queue.pause(Some(remaining)),
            }
            payload = rejected.into_inner();
        }
    }
}
