//! Simulated device time: host <-> device data movement takes `size / bandwidth`, with
//! the bandwidth from `NRT_SIM_DMA_GBPS` (0 = instantaneous), and every wait for device
//! time (transfers, executions) ends as precisely on a caller's thread as on a worker.

use std::time::{Duration, Instant};

/// Default bandwidth, in GB/s (10^9 bytes per second): the order of one Neuron device's
/// host link (PCIe Gen4 x16 carries about 25 GB/s in practice), rounded down.
pub(crate) const DEFAULT_DMA_GBPS: f64 = 16.0;

/// Device time of moving `bytes` at `gbps` GB/s (zero when `gbps` is 0).
pub(crate) fn transfer_time(bytes: u64, gbps: f64) -> Duration {
    if gbps <= 0.0 || bytes == 0 {
        return Duration::ZERO;
    }
    seconds(bytes as f64 / (gbps * 1e9))
}

/// `secs` as a duration; one too long for a `Duration` (a tiny bandwidth) is the longest.
pub(crate) fn seconds(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

/// `d` after `start`, saturating (at a century from `start`) instead of panicking when
/// the sum is past what an `Instant` holds.
pub(crate) fn after(start: Instant, d: Duration) -> Instant {
    start
        .checked_add(d)
        .or_else(|| start.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(start)
}

/// Waits until `bytes` at `gbps` GB/s have taken their time since `start` (the copy
/// itself counts towards it). Returns at once when that time has passed.
pub(crate) fn finish_transfer(start: Instant, bytes: u64, gbps: f64) {
    let end = after(start, transfer_time(bytes, gbps));
    crate::clock::wait_until(end);
    // Only queue workers look at it (`transfer_start`); sync callers never do.
    QUEUE_END.with(|e| e.set(Some(end)));
}

thread_local! {
    /// When the request this thread runs now was queued (a queue worker), or when the
    /// synchronous call it runs began (`nrt_execute`).
    static ARRIVAL: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
    /// On a queue worker: when its previous transfer ended on the device.
    static QUEUE_END: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
    /// On a queue worker: when it finished its previous request.
    static WORKER_END: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// On a queue worker, the start of the request about to run, for its queue's busy
/// counter: its arrival, but not before the previous request finished (busy intervals of
/// one queue never overlap). Pair with [`busy_end`].
pub(crate) fn busy_start() -> Instant {
    device_start(WORKER_END.with(|e| e.get()))
}

/// On a queue worker: the request that [`busy_start`] began finished now; returns now.
pub(crate) fn busy_end() -> Instant {
    let now = Instant::now();
    WORKER_END.with(|e| e.set(Some(now)));
    now
}

/// This thread is about to run a request queued (or a synchronous call made) at
/// `queued_at` (`None`: done with it).
pub(crate) fn set_arrival(queued_at: Option<Instant>) {
    ARRIVAL.with(|a| a.set(queued_at));
}

/// A synchronous call's arrival on its thread (see [`set_arrival`]), cleared on drop
/// (also when the call fails or panics).
pub(crate) struct Called(());

impl Called {
    /// The calling thread's synchronous call starts now.
    pub(crate) fn now() -> Called {
        set_arrival(Some(Instant::now()));
        Called(())
    }
}

impl Drop for Called {
    fn drop(&mut self) {
        set_arrival(None);
    }
}

/// When the operation about to run starts on the device: when it arrived (its queueing
/// time on a queue worker, now on a calling thread), but not before `busy_until`, the
/// end of the previous operation on the same engine. A device runs queued work back to
/// back, so a worker's late wake-up after the previous operation is no device time: the
/// next one starts at that operation's end, not when the host thread noticed it.
pub(crate) fn device_start(busy_until: Option<Instant>) -> Instant {
    let arrival = ARRIVAL.with(|a| a.get()).unwrap_or_else(Instant::now);
    busy_until.map_or(arrival, |end| arrival.max(end))
}

/// When an execution starts on its core: [`device_start`] with the runtime's launch cost
/// `L` (`clock::launch_cost`) after its arrival, `max(previous end, arrival + L)`.
pub(crate) fn execution_start(busy_until: Option<Instant>) -> Instant {
    let arrival = ARRIVAL.with(|a| a.get()).unwrap_or_else(Instant::now);
    let launched = after(arrival, crate::clock::launch_cost());
    busy_until.map_or(launched, |end| launched.max(end))
}

/// The device start of a transfer on this thread's queue ([`device_start`] after the
/// queue's previous transfer).
pub(crate) fn transfer_start() -> Instant {
    device_start(QUEUE_END.with(|e| e.get()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_times_too_long_for_an_instant_saturate_instead_of_panicking() {
        // 1e-300 GB/s is a valid setting; the transfer takes longer than a Duration holds.
        assert_eq!(transfer_time(u64::MAX, 1e-300), Duration::MAX);
        let now = Instant::now();
        assert!(after(now, Duration::MAX) > now + Duration::from_secs(1 << 30));
        finish_transfer(now, 0, 1e-300);
    }

    #[test]
    fn transfer_time_is_size_over_bandwidth() {
        assert_eq!(transfer_time(1 << 20, 0.0), Duration::ZERO);
        assert_eq!(transfer_time(0, 16.0), Duration::ZERO);
        assert_eq!(transfer_time(16_000_000_000, 16.0), Duration::from_secs(1));
        assert_eq!(transfer_time(2_000, 1.0), Duration::from_micros(2));
    }

    #[test]
    fn finish_transfer_waits_at_least_the_transfer_time() {
        let start = Instant::now();
        finish_transfer(start, 3_000_000, 1.0);
        assert!(start.elapsed() >= Duration::from_millis(3));
        let start = Instant::now();
        finish_transfer(start, 5_000, 1.0); // 5 us: spun
        assert!(start.elapsed() >= Duration::from_micros(5));
    }
}
