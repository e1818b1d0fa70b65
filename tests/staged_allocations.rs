//! No heap allocation per job once a staged pipeline is warm: the driving thread (which
//! also runs the `write` and `read` closures here, allocation-free) allocates nothing
//! per job over many jobs, for a single core and for replicas. Counted by a global
//! allocator on the test's own thread; the dlopen'ed simulator allocates through its
//! own allocator.
//!
//! One-time growth is allowed: a unit's list of waiting wakers gets its buffer the first
//! time the driver has to wait on that unit, which after a short warm-up depends on
//! timing (a unit whose requests were always complete when looked at never needed it).
//! So the bound is one allocation per unit (3 per core) over hundreds of jobs; an
//! allocation per job would show as hundreds.

mod support;

use neuron_rt::{Replicas, StagedPipeline};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocations;

#[test]
fn the_counter_counts() {
    let before = allocations();
    drop(std::hint::black_box(Vec::<u8>::with_capacity(64)));
    assert_eq!(allocations() - before, 1);
}

#[test]
fn warm_staged_runs_allocate_nothing_per_job() {
    let _g = support::lock();
    {
        let rt = support::runtime();
        let model = rt.load_model_on(&support::add_model(), 0).unwrap();
        let mut pipeline = StagedPipeline::new(&model).unwrap();
        let a = [3f32; 6];
        let b = [4f32; 6];
        let mut out = [0f32; 6];
        let mut sum = 0.0;
        let mut run = pipeline.run(
            0..300u32,
            |_, inputs| {
                inputs.write("a", &a)?;
                inputs.write("b", &b)
            },
            |_, outputs| {
                outputs.read("out", &mut out)?;
                Ok(out[0])
            },
        );
        // Warm-up: slots allocate their sets and buffers, the thread its waker.
        for item in run.by_ref().take(50) {
            sum += item.unwrap();
        }
        let before = allocations();
        for item in run.by_ref().take(200) {
            sum += item.unwrap();
        }
        let allocated = allocations() - before;
        assert!(allocated <= 3, "{allocated} allocations in 200 warm jobs");
        // The rest, so that nothing is in flight when the runtime closes.
        for item in run {
            sum += item.unwrap();
        }
        assert_eq!(sum, 300.0 * 7.0);
    }
    support::assert_no_leaks();
}

#[test]
fn warm_replica_runs_allocate_nothing_per_job() {
    let _g = support::lock();
    {
        let rt = support::runtime();
        let mut replicas = Replicas::load(&rt, &support::add_model()).unwrap();
        let replicas_cores = replicas.cores().len();
        assert!(replicas_cores >= 2, "{:?}", replicas.cores());
        let a = [1f32; 6];
        let mut out = [0f32; 6];
        let mut run = replicas.run(
            0..300u32,
            |_, inputs| inputs.write("a", &a),
            |_, outputs| {
                outputs.read("out", &mut out)?;
                Ok(())
            },
        );
        for item in run.by_ref().take(50) {
            item.unwrap();
        }
        let before = allocations();
        for item in run.by_ref().take(200) {
            item.unwrap();
        }
        let allocated = allocations() - before;
        let units = 3 * replicas_cores as u64;
        assert!(
            allocated <= units,
            "{allocated} allocations in 200 warm jobs"
        );
        // The rest, so that nothing is in flight when the runtime closes.
        for item in run {
            item.unwrap();
        }
    }
    support::assert_no_leaks();
}
