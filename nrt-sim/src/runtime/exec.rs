//! [`Bound`]: an execution with every tensor resolved, run on its core (sync
//! `nrt_execute` on the caller's thread, async on the COMPUTE queue's worker).

use super::group::Member;
use super::objects::{Core, Model, Tensor};
use crate::error::{Res, fail};
use crate::faults;
use crate::model::{Program, Solo};
use nrt_sys::*;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// An execution with every tensor resolved: runs without the registry lock.
pub(crate) struct Bound {
    pub(crate) model: Arc<Model>,
    pub(crate) core: Arc<Core>,
    inputs: Vec<Arc<Tensor>>,
    outputs: Vec<Arc<Tensor>>,
}

impl Bound {
    /// An execution of `model` on `core` with these tensors (checked by the binder).
    pub(super) fn new(
        model: Arc<Model>,
        core: Arc<Core>,
        inputs: Vec<Arc<Tensor>>,
        outputs: Vec<Arc<Tensor>>,
    ) -> Self {
        Bound {
            model,
            core,
            inputs,
            outputs,
        }
    }

    /// Runs once: waits for the core, computes, writes the outputs, takes the device time.
    pub(crate) fn run(&self) -> Res<()> {
        let core = &self.core;
        let p = &self.model.program;
        if core.compute_dead.load(Ordering::Acquire) {
            return fail(
                NRT_EXEC_UNIT_UNRECOVERABLE,
                format!(
                    "core {}'s compute unit is unrecoverable; re-initialize the runtime",
                    core.index
                ),
            );
        }
        let mut last_end = core.exec_lock.lock().unwrap_or_else(|e| e.into_inner());
        // Modelled: when it was queued (or called) plus the launch cost, not before the
        // previous execution's end; the host thread got here at `real_start`.
        let start = crate::dma::execution_start(*last_end);
        let real_start = Instant::now();
        let world = self.model.rank.as_ref().map_or(1, |r| r.group.world);
        let device_time = core
            .exec_latency
            .unwrap_or(p.device_time)
            .saturating_add(p.link_time(world, core.cc_gbps));
        // When the device is done: the device time after its start. (The host thread
        // computing the outputs may finish later when the CPUs are busy, or when a
        // collective waits for its ranks; that is host time, not device time: counting
        // it would make every late wake-up of a busy host serialise the device.)
        let mut device_end = crate::dma::after(start, device_time);
        let result = if device_time > core.exec_timeout {
            std::thread::sleep(core.exec_timeout);
            device_end = Instant::now();
            fail(
                NRT_TIMEOUT,
                format!(
                    "model {} on core {} needs {device_time:?} of device time, more than the {:?} timeout (NEURON_RT_EXEC_TIMEOUT)",
                    p.label(),
                    core.index,
                    core.exec_timeout
                ),
            )
        } else {
            let result = self.compute(p, crate::dma::after(start, core.exec_timeout));
            crate::clock::wait_until(device_end);
            crate::clock::record_lag(start, real_start, device_end, Instant::now());
            *last_end = Some(device_end);
            result
        };
        // Device time, not this thread's: its late wake-up is not the device's.
        core.busy_ns.fetch_add(
            (device_end - start).as_nanos().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
        let status = result.as_ref().map_or_else(|f| f.status, |_| NRT_SUCCESS);
        crate::trace::device_span(core.index, &p.name, start, device_end, status as i32);
        crate::profile::execution(core.index, &p.name, start, device_end, status as i32);
        core.executions.fetch_add(1, Ordering::Relaxed);
        if result.is_err() {
            core.failed_executions.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Runs `count` times, stopping at the first failure (`nrt_execute_repeat`).
    pub(crate) fn run_repeat(&self, count: u32) -> Res<()> {
        (0..count).try_for_each(|i| {
            if i == 1 {
                // The runtime issues each repetition when the one before returns.
                crate::dma::set_arrival(None);
            }
            self.run()
        })
    }

    fn compute(&self, p: &Program, deadline: Instant) -> Res<()> {
        let fault = faults::on_exec(self.core.index);
        if let Some((_, false)) = fault {
            // The failed execution leaves the outputs untouched.
        } else if p.synthetic {
            // A real NEFF: synthetic bytes (documented), not results.
            let n = self.model.executions.fetch_add(1, Ordering::Relaxed);
            for (i, t) in self.outputs.iter().enumerate() {
                let bytes = crate::model::synthetic_output(&p.name, i, n, t.size);
                // SAFETY: `bytes` is exactly the output's size.
                unsafe { t.write_from(bytes.as_ptr(), 0, bytes.len())? };
            }
        } else {
            self.model.executions.fetch_add(1, Ordering::Relaxed);
            let inputs = self
                .inputs
                .iter()
                .map(|t| t.to_vec())
                .collect::<Res<Vec<_>>>()?;
            let outputs = match &self.model.rank {
                Some(r) => p.run_ranked(
                    &inputs,
                    &mut Member {
                        group: &r.group,
                        rank: r.rank,
                        deadline,
                        timeout: self.core.exec_timeout,
                    },
                ),
                None => p.run_ranked(&inputs, &mut Solo),
            }?;
            for (t, bytes) in self.outputs.iter().zip(outputs) {
                // SAFETY: `bytes` is exactly the output's size (checked at bind time).
                unsafe { t.write_from(bytes.as_ptr(), 0, bytes.len())? };
                crate::completion::completed(t.id);
            }
        }
        match fault {
            Some((status, written)) => fail(
                status,
                format!(
                    "injected execution fault {status} ({}) on core {} (model {}; outputs {})",
                    crate::status::name(status).unwrap_or("unknown status"),
                    self.core.index,
                    p.label(),
                    if written { "written" } else { "not written" }
                ),
            ),
            None => Ok(()),
        }
    }
}
