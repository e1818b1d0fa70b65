//! The registry's tensor sets and models, and execution binding (resolving a model and
//! its tensor sets to a [`Bound`]).

use super::exec::Bound;
use super::group::Group;
use super::handles::{HandleKind, from_handle, new_id, to_handle};
use super::net;
use super::objects::{Core, Model, Place, Rank, TensorSet};
use super::state::Runtime;
use crate::error::{Fail, Res, fail};
use crate::faults;
use crate::log::Level;
use crate::model::Program;
use nrt_sys::*;
use std::sync::Arc;
use std::sync::atomic::Ordering;

impl Runtime {
    // --- tensor sets -----------------------------------------------------------------

    pub(crate) fn allocate_set(&mut self) -> Res<*mut nrt_tensor_set_t> {
        let id = new_id()?;
        self.sets.insert(id, TensorSet::default());
        Ok(to_handle(HandleKind::TensorSet, id))
    }

    pub(super) fn set(
        &self,
        handle: *const nrt_tensor_set_t,
        what: &str,
    ) -> Res<(u64, &TensorSet)> {
        let id = from_handle(HandleKind::TensorSet, handle, what)?;
        match self.sets.get(&id) {
            Some(s) => Ok((id, s)),
            None => fail(
                NRT_INVALID_HANDLE,
                format!("{what} (set #{id}) was destroyed or belongs to a closed runtime"),
            ),
        }
    }

    pub(crate) fn destroy_set(&mut self, handle: *const nrt_tensor_set_t) -> Res<()> {
        let (id, _) = self.set(handle, "*tensor_set")?;
        self.sets.remove(&id);
        Ok(())
    }

    pub(crate) fn add_to_set(
        &mut self,
        set: *mut nrt_tensor_set_t,
        name: &[u8],
        tensor: *mut nrt_tensor_t,
    ) -> Res<()> {
        let (set_id, _) = self.set(set, "tensor_set")?;
        let t = self.tensor(tensor, "tensor")?;
        if name.is_empty() || name.len() > 255 {
            return fail(
                NRT_INVALID,
                format!("tensor name must be 1 to 255 bytes (got {})", name.len()),
            );
        }
        let entries = &mut self.sets.get_mut(&set_id).expect("checked above").entries;
        entries.insert(name.to_vec(), t.id);
        Ok(())
    }

    pub(crate) fn get_from_set(
        &self,
        set: *mut nrt_tensor_set_t,
        name: &[u8],
    ) -> Res<*mut nrt_tensor_t> {
        let (_, s) = self.set(set, "tensor_set")?;
        let Some(&id) = s.entries.get(name) else {
            // The runtime documents NRT_FAILURE (not NRT_INVALID) for a name not in the set.
            return fail(
                NRT_FAILURE,
                format!(
                    "the tensor set has no tensor named '{}' (it has {} tensor(s))",
                    String::from_utf8_lossy(name),
                    s.entries.len()
                ),
            );
        };
        let what = format!("tensor '{}' of the set", String::from_utf8_lossy(name));
        self.tensor_by_id(id, &what)?;
        Ok(to_handle(HandleKind::Tensor, id))
    }

    // --- models ----------------------------------------------------------------------

    /// `nrt_load` of an already parsed program (`file_size` bytes of device memory);
    /// `nrt_load_collectives` with `rank` = (rank, world).
    pub(crate) fn load(
        &mut self,
        program: Program,
        file_size: usize,
        vnc: i32,
        vnc_count: i32,
        rank: Option<(u32, u32)>,
    ) -> Res<*mut nrt_model_t> {
        self.check_rank(&program, rank)?;
        if vnc_count != -1 && vnc_count != 1 {
            return fail(
                NRT_INVALID,
                format!("vnc_count {vnc_count} is not supported (deprecated: pass -1)"),
            );
        }
        let label = program.label();
        // A real NEFF may need several cores: `n` consecutive visible cores from the
        // first, each charged its share of the file's bytes.
        let n = program.cores.max(1) as usize;
        let visible = self.cores.len();
        let bytes = (file_size as u64).div_ceil(n as u64);
        let fits = |c: &Core| c.bytes.load(Ordering::Relaxed).saturating_add(bytes) <= c.capacity;
        let span = |first: usize| -> String {
            match n {
                1 => format!("core {first}"),
                _ => format!("cores {first}-{}", first + n - 1),
            }
        };
        if n > visible {
            return fail(
                NRT_LOAD_NOT_ENOUGH_NC,
                format!(
                    "model {label} needs {n} NeuronCores, but only {visible} core(s) are visible"
                ),
            );
        }
        let first = match vnc {
            -1 => match (0..=visible - n).find(|&f| self.cores[f..f + n].iter().all(|c| fits(c))) {
                Some(f) => f,
                None if n == 1 => {
                    return fail(
                        NRT_RESOURCE,
                        format!("no visible core has {bytes} free device bytes for model {label}"),
                    );
                }
                None => {
                    return fail(
                        NRT_RESOURCE,
                        format!(
                            "no {n} consecutive visible cores have {bytes} free device bytes each for model {label}"
                        ),
                    );
                }
            },
            v if v < -1 => {
                return fail(
                    NRT_INVALID,
                    format!("vnc {v} is neither -1 nor a core index"),
                );
            }
            v if v as usize + n > visible => {
                return fail(
                    NRT_LOAD_NOT_ENOUGH_NC,
                    format!(
                        "model {label} asked for {}, but only {visible} core(s) are visible",
                        span(v as usize)
                    ),
                );
            }
            v => {
                let v = v as usize;
                if let Some(c) = self.cores[v..v + n].iter().find(|c| !fits(c)) {
                    return fail(
                        NRT_RESOURCE,
                        format!(
                            "core {} has {} of {} device bytes free; model {label} needs {bytes}{}",
                            c.index,
                            c.capacity - c.bytes.load(Ordering::Relaxed),
                            c.capacity,
                            if n > 1 { " on each of its cores" } else { "" }
                        ),
                    );
                }
                v
            }
        };
        let core = self.cores[first].clone();
        if let Some(status) = faults::on_load(core.index) {
            return fail(
                status,
                format!(
                    "injected load fault for model {label} on core {}",
                    core.index
                ),
            );
        }
        let id = new_id()?;
        let rank = match rank {
            Some((rank, world)) => Some(self.join_group(&program, rank, world, core.index)?),
            None => None,
        };
        for c in &self.cores[first..first + n] {
            c.bytes.fetch_add(bytes, Ordering::Relaxed);
            c.models.fetch_add(1, Ordering::Relaxed);
        }
        self.models.insert(
            id,
            Arc::new(Model {
                id,
                core: core.index,
                program: Arc::new(program),
                bytes,
                rank,
                executions: Default::default(),
            }),
        );
        Ok(to_handle(HandleKind::Model, id))
    }

    /// The checks of a rank and world against the program and the environment.
    fn check_rank(&self, program: &Program, rank: Option<(u32, u32)>) -> Res<()> {
        let label = program.label();
        let Some((rank, world)) = rank else {
            return match program.world() {
                Some(w) if w > 1 => fail(
                    NRT_INVALID,
                    format!(
                        "model {label} has collectives over {w} ranks; load it with nrt_load_collectives as one rank of a world of {w}"
                    ),
                ),
                _ => Ok(()),
            };
        };
        if world == 0 || rank >= world {
            return fail(
                NRT_INVALID,
                format!(
                    "rank (ctx_device_id) {rank} is not below the world size (ctx_device_count) {world}"
                ),
            );
        }
        if let Some(w) = program.world()
            && w != world
        {
            return fail(
                NRT_INVALID,
                format!(
                    "model {label} is compiled for a world of {w} ranks, but loaded as rank {rank} of {world}"
                ),
            );
        }
        if world > 1 {
            if let Some(root) = &self.cfg.root_comm_id {
                // Ranks may run in other processes: refuse an address we would not use.
                net::root_addr(root)?;
                return Ok(());
            }
            if world > self.cfg.visible_cores {
                return fail(
                    NRT_INVALID,
                    format!(
                        "model {label} as rank {rank} of a world of {world}: only {} core(s) are visible, so other ranks run in other processes, which needs NEURON_RT_ROOT_COMM_ID=<rank 0 host:port>; it is not set",
                        self.cfg.visible_cores
                    ),
                );
            }
        }
        Ok(())
    }

    fn join_group(&mut self, program: &Program, rank: u32, world: u32, core: u32) -> Res<Rank> {
        let name = program.name.as_str();
        let group = self
            .groups
            .entry((name.to_string(), world))
            .or_insert_with(|| {
                let root = self.cfg.root_comm_id.as_deref();
                let root = root
                    .filter(|_| world > 1)
                    .and_then(|r| net::root_addr(r).ok());
                Arc::new(Group::new(name.to_string(), world, root).synthetic(program.synthetic))
            })
            .clone();
        group.join(rank, core)?;
        Ok(Rank { group, rank })
    }

    pub(crate) fn model(&self, handle: *const nrt_model_t) -> Res<Arc<Model>> {
        let id = from_handle(HandleKind::Model, handle, "model")?;
        self.models.get(&id).cloned().ok_or_else(|| Fail {
            status: NRT_INVALID_HANDLE,
            message: format!("model #{id} was unloaded or belongs to a closed runtime"),
            level: Level::Error,
        })
    }

    pub(crate) fn unload(&mut self, handle: *const nrt_model_t) -> Res<()> {
        let m = self.model(handle)?;
        self.models.remove(&m.id);
        if let Some(r) = &m.rank
            && r.group.leave(r.rank)
        {
            self.groups.remove(&(r.group.name.clone(), r.group.world));
        }
        let first = m.core as usize;
        for core in &self.cores[first..first + m.program.cores.max(1) as usize] {
            core.bytes.fetch_sub(m.bytes, Ordering::Relaxed);
            core.models.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Resolves and checks everything an execution needs (`nrt_execute` and
    /// `nrta_execute_schedule`).
    pub(crate) fn bind(
        &self,
        model: *const nrt_model_t,
        input_set: *const nrt_tensor_set_t,
        output_set: *const nrt_tensor_set_t,
    ) -> Res<Bound> {
        let model = self.model(model)?;
        let (_, ins) = self.set(input_set, "input_set")?;
        let (_, outs) = self.set(output_set, "output_set")?;
        let p = &model.program;
        let resolve = |set: &TensorSet, specs: &[crate::model::TensorSpec], role: &str| {
            specs
                .iter()
                .map(|spec| {
                    let Some(&id) = set.entries.get(spec.name.as_bytes()) else {
                        return fail(
                            NRT_INVALID,
                            format!(
                                "model {} {role} '{}' is missing from the {role} set",
                                p.label(),
                                spec.name
                            ),
                        );
                    };
                    let what = format!("tensor bound as {role} '{}'", spec.name);
                    let t = self.tensor_by_id(id, &what)?;
                    if t.mem.is_none() {
                        return fail(
                            NRT_INVALID,
                            format!("{what} ({}) has no memory attached", t.label()),
                        );
                    }
                    if t.size != spec.byte_size() {
                        return fail(
                            NRT_INVALID,
                            format!(
                                "{what} ({}) is {} bytes; model {} expects {} bytes ({} {:?})",
                                t.label(),
                                t.size,
                                p.label(),
                                spec.byte_size(),
                                spec.dtype,
                                spec.shape
                            ),
                        );
                    }
                    if let Place::Device(c) = t.place
                        && c != model.core
                    {
                        return fail(
                            NRT_INVALID,
                            format!(
                                "{what} ({}) is on core {c}, but model {} is loaded on core {}",
                                t.label(),
                                p.label(),
                                model.core
                            ),
                        );
                    }
                    Ok(t)
                })
                .collect::<Res<Vec<_>>>()
        };
        let inputs = resolve(ins, &p.inputs, "input")?;
        let outputs = resolve(outs, &p.outputs, "output")?;
        let core = self.cores[model.core as usize].clone();
        Ok(Bound::new(model, core, inputs, outputs))
    }
}
