//! Wake-up counting: the context switches of this crate's background threads
//! (`neuron-rt-*`) and of the calling thread, read from `/proc/self/task`.

use std::fs;

/// Voluntary plus involuntary context switches of the calling thread and of every thread
/// of this process whose name starts with `neuron-rt`.
pub fn crate_thread_switches() -> u64 {
    // SAFETY: gettid takes no arguments and cannot fail.
    let me = unsafe { libc::gettid() }.to_string();
    let mut total = 0;
    for task in fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let tid = task.file_name().to_string_lossy().into_owned();
        let name = fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if tid != me && !name.starts_with("neuron-rt") {
            continue;
        }
        let status = fs::read_to_string(task.path().join("status")).unwrap_or_default();
        total += status
            .lines()
            .filter(|l| l.contains("ctxt_switches"))
            .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
            .sum::<u64>();
    }
    total
}

/// Context switches of this crate's event thread (`neuron-rt-events`) alone: how often
/// it woke (0 before it exists).
pub fn event_thread_switches() -> u64 {
    let mut total = 0;
    for task in fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        // comm holds 15 characters: "neuron-rt-events" reads "neuron-rt-event".
        if !name.starts_with("neuron-rt-event") {
            continue;
        }
        let status = fs::read_to_string(task.path().join("status")).unwrap_or_default();
        total += status
            .lines()
            .filter(|l| l.contains("ctxt_switches"))
            .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
            .sum::<u64>();
    }
    total
}

/// [`event_thread_switches`] once the event thread has settled: read until two reads
/// 20 ms apart agree (at most 1 s). A thread the runtime just started (with the first
/// unit that has events) switches a few times before it first sleeps, later on a loaded
/// machine: a count taken too early would charge those to the code under test.
pub fn settled_event_thread_switches() -> u64 {
    let mut last = event_thread_switches();
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let now = event_thread_switches();
        if now == last {
            return now;
        }
        last = now;
    }
    last
}
