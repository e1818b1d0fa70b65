//! Simulated transfer time: host <-> device data movement takes `size / bandwidth` of
//! device time, with the bandwidth from `NRT_SIM_DMA_GBPS` (0 = instantaneous).

use std::time::{Duration, Instant};

/// Default bandwidth, in GB/s (10^9 bytes per second): the order of one Neuron device's
/// host link (PCIe Gen4 x16 carries about 25 GB/s in practice), rounded down.
pub(crate) const DEFAULT_DMA_GBPS: f64 = 16.0;

/// Below this, a wait spins instead of sleeping (a sleep costs tens of microseconds of
/// timer slack, far more than a small tensor's transfer).
const SPIN_BELOW: Duration = Duration::from_micros(20);

/// Device time of moving `bytes` at `gbps` GB/s (zero when `gbps` is 0).
pub(crate) fn transfer_time(bytes: u64, gbps: f64) -> Duration {
    if gbps <= 0.0 || bytes == 0 {
        return Duration::ZERO;
    }
    Duration::from_secs_f64(bytes as f64 / (gbps * 1e9))
}

/// Waits until `bytes` at `gbps` GB/s have taken their time since `start` (the copy
/// itself counts towards it). Returns at once when that time has passed.
pub(crate) fn finish_transfer(start: Instant, bytes: u64, gbps: f64) {
    let deadline = start + transfer_time(bytes, gbps);
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let left = deadline - now;
        if left > SPIN_BELOW {
            std::thread::sleep(left);
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Lowers the calling thread's timer slack to 1 us, so that its sleeps end close to the
/// simulated device time (the default slack is 50 us). For the simulator's own workers.
pub(crate) fn precise_sleeps() {
    // SAFETY: PR_SET_TIMERSLACK takes an integer and changes only this thread's slack.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong) };
}

#[cfg(test)]
mod tests {
    use super::*;

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
