//! The load run: the load, its summary line and its verdict, from what the clients saw,
//! the pool's and the service's counters, and the simulator's.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;

use nrt_sim::SimControl;

use crate::{Options, http::App, load};

/// The simulator's busy seconds and failed executions (summed over `cores`) and the
/// faults it injected so far.
fn device(sim: &SimControl, cores: &[u32]) -> [f64; 3] {
    let counters = sim.counters();
    let mut sums = [0.0, 0.0, sim.faults_injected() as f64];
    for k in cores.iter().filter_map(|&c| counters.cores.get(c as usize)) {
        sums[0] += k.busy.as_secs_f64();
        sums[1] += k.failed_executions as f64;
    }
    sums
}

/// Runs the load and prints the line, notes and failures; whether the run passed.
pub async fn load_run(o: &Options, app: &App, addr: SocketAddr) -> bool {
    let (requests, cores) = (o.load.unwrap_or(0), app.pool.cores());
    let before = app.sim.map(|s| device(&s, &cores));
    let outcome = load::run(addr, o, app.pool.inputs()).await;
    // Over the run: busy seconds, failed executions, faults.
    let after = app.sim.map(|s| device(&s, &cores));
    let d = before
        .zip(after)
        .map(|(b, a)| [a[0] - b[0], a[1] - b[1], a[2] - b[2]]);
    let wall = outcome.wall.as_secs_f64().max(1e-9);
    let (sorted, n) = (&outcome.latencies, outcome.latencies.len());
    let ms = |p: f64| {
        let rank = ((p * n as f64).ceil() as usize).clamp(1, n.max(1));
        sorted.get(rank - 1).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    let busy = d.map(|d| format!("{:.1}", 100.0 * d[0] / (wall * cores.len() as f64)));
    let errors: usize = outcome.error_kinds.values().sum();
    let (ok, p50, p99) = (outcome.ok, ms(0.5), ms(0.99));
    let (rps, busy) = (ok as f64 / wall, busy.unwrap_or_else(|| "na".into()));
    let mut line = format!(
        "requests={requests} ok={ok} errors={errors} p50_ms={p50:.2} p99_ms={p99:.2} throughput_rps={rps:.1} device_busy_pct={busy}"
    );
    let mut failures = Vec::new();
    if outcome.hung > 0 || ok + errors != requests {
        let missing = requests - ok - errors;
        failures.push(format!("{missing} of {requests} requests got no answer"));
    }
    if let Some(wrong) = outcome.error_kinds.get("wrong outputs") {
        failures.push(format!("{wrong} answers had wrong outputs"));
    }
    let m = app.pool.metrics();
    let copy = |c: &neuron_rt::CopyMetrics| {
        let state = c.out_of_service.as_deref().unwrap_or("in service");
        format!("core {}: {} ok, {state}", c.core, c.counts.ok)
    };
    let mut notes: Vec<String> = m.copies.iter().map(copy).collect();
    let kinds = outcome.error_kinds.iter();
    notes.extend(kinds.map(|(kind, n)| format!("errors {kind}: {n}")));
    let faults_armed = std::env::var("NRT_SIM_FAULTS").is_ok_and(|f| !f.trim().is_empty());
    match d {
        Some([_, failed_runs, faults]) if faults_armed => {
            // Every error is an injected fault (an execution completed with an error
            // status, or the request that killed a unit), or a request queued on a unit
            // when it died: it completes with the fatal status, but no fault counts it.
            // Each unit dies of one fault: fatal answers beyond one per dead unit are those.
            let (faults, failed_runs) = (faults as u64, failed_runs as u64);
            line.push_str(&format!(" faults={faults}"));
            let dead = (m.copies.len() - m.in_service()) as u64;
            let fatal = app.counts.fatal.load(Relaxed);
            let lost = fatal.saturating_sub(dead);
            let failed = m.total.failed.saturating_sub(fatal);
            let refused = m.total.refused;
            notes.push(format!(
                "faults {faults} = failed executions {failed_runs} + units killed {dead}; \
                 lost in flight on dying units {lost}; refused and re-routed {refused}"
            ));
            if errors as u64 != faults + lost {
                failures.push(format!("errors {errors} != faults {faults} + lost {lost}"));
            }
            if faults != failed_runs + dead || failed != failed_runs {
                let saw = format!("the pool saw {failed} failed executions");
                failures.push(format!("{saw}, the simulator {failed_runs}"));
            }
        }
        _ if errors > 0 => failures.push(format!("{errors} errors without injected faults")),
        _ => {}
    }
    println!("{line}");
    notes.iter().for_each(|note| eprintln!("  {note}"));
    failures.iter().for_each(|f| eprintln!("FAIL: {f}"));
    failures.is_empty()
}
