//! The tokio-native completion path (feature `tokio`) keeps no file descriptor of a
//! runtime that shut down: a unit awaited on many short-lived tokio runtimes (a watch
//! each: an eventfd registered with the runtime's reactor, which holds the runtime's IO
//! driver) ends with the process's open fds back at the baseline. (Its own binary: the
//! count is of the whole process.)
#![cfg(feature = "tokio")]

mod support;

use std::future::IntoFuture;
use std::time::Duration;

/// Runtimes made, awaited on and dropped one after the other.
const RUNTIMES: usize = 100;
/// Fds a few watches still alive at the end may hold (the last runtime's watch goes at
/// the unit's next await): 3 each (an eventfd, the IO driver's epoll fd and waker).
const SLACK: usize = 8;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

fn short_lived(i: usize) -> tokio::runtime::Runtime {
    if i.is_multiple_of(2) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    }
}

#[test]
fn runtimes_that_shut_down_leave_no_fd_behind() {
    let _g = support::lock();
    let rt = support::runtime();
    let model = rt
        .load_model_on(&support::identity_model(Duration::from_millis(2)), 0)
        .unwrap();
    let unit = rt.compute_unit(0).unwrap();
    assert!(unit.has_events(), "the simulator has completion events");
    let mut sets = Some((
        model.allocate_inputs().unwrap(),
        model.allocate_outputs().unwrap(),
    ));
    let mut cycle = |i: usize| {
        let (inputs, outputs) = sets.take().unwrap();
        let request = unit.execute(&model, inputs, outputs).unwrap();
        let tokio = short_lived(i);
        // Pending at its first poll (2 ms on the device): waits through a watch of
        // this runtime's reactor.
        sets = Some(tokio.block_on(request.into_future()).unwrap());
        drop(tokio);
    };
    // The first cycles make what lives for the process (the event thread's epoll, the
    // unit's eventfd, tokio's globals).
    for i in 0..4 {
        cycle(i);
    }
    let baseline = open_fds();
    for i in 0..RUNTIMES {
        cycle(i);
    }
    let after = open_fds();
    println!("open fds: {baseline} before {RUNTIMES} runtimes, {after} after");
    assert!(
        after <= baseline + SLACK,
        "{RUNTIMES} short-lived runtimes left {} fds open ({baseline} before, {after} after)",
        after.saturating_sub(baseline)
    );
}
