//! The load run's summary line and its verdict, from what the clients saw, the service's
//! counters and the simulator's.

use std::time::Duration;

use nrt_sim::SimControl;

use crate::load::Outcome;
use crate::service::Service;
use crate::stats::percentile_ms;

/// The simulator's counters that the verdict uses, for the cores served.
#[derive(Debug, Default, Clone)]
pub struct Device {
    /// Execution time of each core.
    busy: Vec<Duration>,
    /// Executions run, all cores.
    executions: u64,
    /// Executions that ended with an error status, all cores.
    failed_executions: u64,
    /// Events that injected faults made fail (never reset: differences count).
    faults: u64,
}

impl Device {
    pub fn read(sim: &SimControl, cores: &[u32]) -> Device {
        let counters = sim.counters();
        let core = |c: u32| counters.cores.get(c as usize);
        Device {
            busy: cores
                .iter()
                .map(|&c| core(c).map_or(Duration::ZERO, |k| k.busy))
                .collect(),
            executions: cores
                .iter()
                .filter_map(|&c| core(c))
                .map(|k| k.executions)
                .sum(),
            failed_executions: cores
                .iter()
                .filter_map(|&c| core(c))
                .map(|k| k.failed_executions)
                .sum(),
            faults: sim.faults_injected(),
        }
    }

    fn since(&self, before: &Device) -> Device {
        Device {
            busy: self
                .busy
                .iter()
                .zip(&before.busy)
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
            executions: self.executions - before.executions.min(self.executions),
            failed_executions: self.failed_executions
                - before.failed_executions.min(self.failed_executions),
            faults: self.faults - before.faults.min(self.faults),
        }
    }
}

/// The summary line and whether the run passes.
pub struct Verdict {
    pub line: String,
    /// Why the run fails, if it does.
    pub failures: Vec<String>,
    /// Explanations for the reader (stderr).
    pub notes: Vec<String>,
}

/// Judges a run. `device` is the simulator's counters before and after (absent on real
/// hardware); `faults_armed` whether `NRT_SIM_FAULTS` was set.
pub fn judge(
    outcome: &Outcome,
    service: &Service,
    device: Option<(&Device, &Device)>,
    faults_armed: bool,
    device_time: Duration,
    concurrency: usize,
) -> Verdict {
    let wall = outcome.wall.as_secs_f64();
    let p50 = percentile_ms(&outcome.latencies, 0.50);
    let p99 = percentile_ms(&outcome.latencies, 0.99);
    let delta = device.map(|(before, after)| after.since(before));
    let busy_pct = delta.as_ref().map(|d| {
        let busy: f64 = d.busy.iter().map(Duration::as_secs_f64).sum();
        100.0 * busy / (wall * d.busy.len().max(1) as f64)
    });
    let mut line = format!(
        "requests={} ok={} errors={} p50_ms={p50:.2} p99_ms={p99:.2} throughput_rps={:.1} device_busy_pct={}",
        outcome.requests,
        outcome.ok,
        outcome.errors,
        outcome.ok as f64 / wall.max(1e-9),
        busy_pct.map_or_else(|| "na".to_string(), |b| format!("{b:.1}")),
    );
    let mut failures = Vec::new();
    let mut notes = Vec::new();
    if outcome.hung > 0 {
        failures.push(format!(
            "{} requests got no answer within the timeout",
            outcome.hung
        ));
    }
    if outcome.ok + outcome.errors != outcome.requests {
        failures.push(format!(
            "ok + errors = {} != requests = {}",
            outcome.ok + outcome.errors,
            outcome.requests
        ));
    }
    if outcome.wrong > 0 {
        failures.push(format!("{} answers had wrong outputs", outcome.wrong));
    }
    if !outcome.error_kinds.is_empty() {
        let kinds: Vec<String> = outcome
            .error_kinds
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        notes.push(format!("errors by status: {}", kinds.join(", ")));
    }
    let replicas = service.replicas();
    let sum = |f: fn(&crate::service::Replica) -> u64| replicas.iter().map(f).sum::<u64>();
    let served: Vec<String> = replicas
        .iter()
        .map(|r| {
            let state = match r.dead_status() {
                Some(s) => format!(", out of service ({s:?})"),
                None => String::new(),
            };
            format!("core {}: {} ok{state}", r.core, r.stats.ok.get())
        })
        .collect();
    notes.push(served.join("; "));
    if faults_armed {
        let d = delta.clone().unwrap_or_default();
        line.push_str(&format!(" faults={}", d.faults));
        // Every error must be accounted for: an injected fault (an execution completed
        // with an error status, or the request that killed a unit), or a request that was
        // already queued on a unit when it died (it completes with the fatal status, but
        // no fault counts it). Each unit dies of exactly one fault, so the fatal
        // completions beyond one per dead unit are those queued requests.
        let dead = replicas
            .iter()
            .filter(|r| r.dead_status().is_some())
            .count() as u64;
        let fatal = sum(|r| r.stats.fatal.get());
        let failed = sum(|r| r.stats.failed.get());
        let lost = fatal.saturating_sub(dead);
        let expected = d.faults + lost;
        notes.push(format!(
            "faults injected {} = executions failed on the device {} + units killed {dead}; \
             requests lost in flight on dying units {lost}; rerouted from dead units {}; \
             expected errors {} + {lost} = {expected}",
            d.faults,
            d.failed_executions,
            sum(|r| r.stats.rerouted.get()),
            d.faults
        ));
        if outcome.errors as u64 != expected {
            failures.push(format!(
                "errors = {} != faults {} + lost in flight {lost}",
                outcome.errors, d.faults
            ));
        }
        if d.faults != d.failed_executions + dead || failed != d.failed_executions {
            failures.push(format!(
                "the service saw {failed} failed executions, the simulator {}, with {} faults and {dead} dead units",
                d.failed_executions, d.faults
            ));
        }
        if replicas.iter().all(|r| r.dead_status().is_some()) {
            notes.push("no core is left in service".into());
        }
    } else if outcome.errors > 0 {
        failures.push(format!("{} errors without injected faults", outcome.errors));
    }
    let d_ms = device_time.as_secs_f64() * 1e3;
    if faults_armed {
        // The targets are for a healthy service (a dead core halves the capacity).
        return Verdict {
            line,
            failures,
            notes,
        };
    }
    if let (Some(b), Some(d)) = (busy_pct, &delta) {
        // The simulator counts the time each execution really took (its timer's
        // overshoot included); at exactly D per execution the figure would be this.
        let busy: f64 = d.busy.iter().map(Duration::as_secs_f64).sum();
        let nominal = 100.0 * d.executions as f64 * device_time.as_secs_f64()
            / (wall * d.busy.len().max(1) as f64);
        notes.push(format!(
            "target device busy >= 90 %: {} ({b:.1} %; {} executions of {:.3} ms busy each, \
             {nominal:.1} % at exactly {d_ms} ms each)",
            if b >= 90.0 { "met" } else { "NOT met" },
            d.executions,
            1e3 * busy / d.executions.max(1) as f64,
        ));
    }
    // A closed loop of C clients on K busy cores: Little's law puts the mean latency at
    // C x D / K at least, whatever the service does.
    let floor = concurrency as f64 * d_ms / replicas.len().max(1) as f64;
    notes.push(format!(
        "target p99 <= 5 x device time = {:.2} ms: {} (p99 {p99:.2} ms; with {concurrency} \
         clients on {} cores of {d_ms} ms the mean latency is at least {floor:.2} ms)",
        5.0 * d_ms,
        if p99 <= 5.0 * d_ms { "met" } else { "NOT met" },
        replicas.len(),
    ));
    Verdict {
        line,
        failures,
        notes,
    }
}
