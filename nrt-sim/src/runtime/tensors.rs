//! The registry's tensor operations (`nrt_tensor_*` behind the exported functions).

use super::handles::{HandleKind, from_handle, new_id, to_handle};
use super::objects::{Mem, Place, Storage, Tensor};
use super::state::Runtime;
use crate::error::{Fail, Res, fail};
use crate::faults;
use crate::log::Level;
use crate::memory::Buffer;
use nrt_sys::*;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Largest HOST-placement tensor: the runtime documents HOST tensors as one physically
/// contiguous page of at most 4 MB.
const HOST_PLACEMENT_MAX: usize = 4 << 20;

impl Runtime {
    // --- tensors ---------------------------------------------------------------------

    /// Resolves a tensor handle to a live tensor.
    pub(crate) fn tensor(&self, handle: *const nrt_tensor_t, what: &str) -> Res<Arc<Tensor>> {
        let id = from_handle(HandleKind::Tensor, handle, what)?;
        self.tensor_by_id(id, what)
    }

    pub(super) fn tensor_by_id(&self, id: u64, what: &str) -> Res<Arc<Tensor>> {
        self.tensors.get(&id).cloned().ok_or_else(|| Fail {
            status: NRT_INVALID_HANDLE,
            message: format!("{what} (tensor #{id}) was freed or belongs to a closed runtime"),
            level: Level::Error,
        })
    }

    /// Counts a live tensor on its core or the host (`delta` +1 or -1).
    pub(super) fn count_tensor(&mut self, place: Place, add: bool) {
        match place {
            Place::Device(c) => {
                let count = &self.cores[c as usize].tensors;
                if add {
                    count.fetch_add(1, Ordering::Relaxed);
                } else {
                    count.fetch_sub(1, Ordering::Relaxed);
                }
            }
            Place::Host | Place::Virtual => {
                if add {
                    self.host_tensors += 1;
                } else {
                    self.host_tensors -= 1;
                }
            }
        }
    }

    /// Checks that `bytes` more fit in `place`'s memory.
    pub(super) fn check_room(&self, place: Place, bytes: u64, name: &str) -> Res<()> {
        if let Place::Device(c) = place {
            let core = &self.cores[c as usize];
            let used = core.bytes.load(Ordering::Relaxed);
            if used.saturating_add(bytes) > core.capacity {
                return fail(
                    NRT_RESOURCE,
                    format!(
                        "core {c} has {} of {} device bytes free; tensor '{name}' needs {bytes}",
                        core.capacity - used,
                        core.capacity
                    ),
                );
            }
        }
        Ok(())
    }

    /// One more live tensor uses `buf`; `charge` is where a new buffer's bytes go.
    pub(super) fn use_storage(&mut self, buf: &Buffer, charge: Option<(Place, u64)>) {
        let entry = self
            .storage
            .entry(buf.id)
            .or_insert_with(|| Storage { users: 0, charge });
        entry.users += 1;
        if entry.users == 1
            && let Some((place, bytes)) = entry.charge
        {
            match place {
                Place::Device(c) => {
                    self.cores[c as usize]
                        .bytes
                        .fetch_add(bytes, Ordering::Relaxed);
                }
                Place::Host | Place::Virtual => self.host_bytes += bytes,
            }
        }
    }

    /// One live tensor fewer uses `buf`; the last one releases its bytes.
    pub(super) fn release_storage(&mut self, buf: &Buffer) {
        let Some(entry) = self.storage.get_mut(&buf.id) else {
            return;
        };
        entry.users -= 1;
        if entry.users > 0 {
            return;
        }
        let charge = entry.charge;
        self.storage.remove(&buf.id);
        match charge {
            Some((Place::Device(c), bytes)) => {
                self.cores[c as usize]
                    .bytes
                    .fetch_sub(bytes, Ordering::Relaxed);
            }
            Some((_, bytes)) => self.host_bytes -= bytes,
            None => {}
        }
    }

    /// Registers a tensor whose storage (if any) is already in use by it.
    pub(super) fn insert_tensor(&mut self, t: Tensor) -> *mut nrt_tensor_t {
        self.count_tensor(t.place, true);
        let id = t.id;
        self.tensors.insert(id, Arc::new(t));
        to_handle(HandleKind::Tensor, id)
    }

    /// `nrt_tensor_allocate`. DEVICE tensors live in the core's memory; HOST (pinned,
    /// at most [`HOST_PLACEMENT_MAX`] bytes, as the runtime documents) and VIRTUAL
    /// (pageable; emulated versions below 2.32 only) tensors in host memory.
    pub(crate) fn allocate_tensor(
        &mut self,
        placement: nrt_tensor_placement_t,
        vnc: i32,
        size: usize,
        name: String,
    ) -> Res<*mut nrt_tensor_t> {
        let place = match placement {
            NRT_TENSOR_PLACEMENT_DEVICE => Place::Device(self.core(vnc.into(), "vnc")?.index),
            NRT_TENSOR_PLACEMENT_HOST => Place::Host,
            NRT_TENSOR_PLACEMENT_VIRTUAL => Place::Virtual,
            other => {
                return fail(
                    NRT_INVALID,
                    format!("placement {other} is not DEVICE (0), HOST (1) or VIRTUAL (2)"),
                );
            }
        };
        let version = self.cfg.version;
        if place == Place::Virtual && !version.has_virtual_placement() {
            return fail(
                NRT_INVALID,
                format!(
                    "tensor '{name}': VIRTUAL placement was removed in runtime 2.32; this simulator emulates {version} (NRT_SIM_VERSION); allocate a DEVICE or HOST tensor, or attach a buffer"
                ),
            );
        }
        if size == 0 {
            return fail(NRT_INVALID, format!("size 0 requested for tensor '{name}'"));
        }
        if place == Place::Host && size > HOST_PLACEMENT_MAX {
            let hint = if version.has_virtual_placement() {
                "use VIRTUAL placement for larger host tensors"
            } else {
                "use several HOST tensors or nrt_tensor_attach_buffer for larger host data"
            };
            return fail(
                NRT_RESOURCE,
                format!(
                    "tensor '{name}' asks for {size} bytes of HOST (pinned) memory; HOST tensors are limited to {HOST_PLACEMENT_MAX} bytes ({hint})"
                ),
            );
        }
        let fault_core = match place {
            Place::Device(c) => Some(c),
            _ => None,
        };
        if let Some(status) = faults::on_alloc(fault_core) {
            return fail(
                status,
                format!("injected allocation fault for tensor '{name}' ({size} bytes)"),
            );
        }
        self.check_room(place, size as u64, &name)?;
        let buf = Buffer::allocate(size).ok_or_else(|| Fail {
            status: NRT_RESOURCE,
            message: format!("cannot allocate {size} bytes of memory for tensor '{name}'"),
            level: Level::Error,
        })?;
        let id = new_id()?;
        let buf = Arc::new(buf);
        self.use_storage(&buf, Some((place, size as u64)));
        Ok(self.insert_tensor(Tensor {
            id,
            name,
            place,
            size,
            mem: Some(Mem { buf, offset: 0 }),
        }))
    }

    /// `nrt_tensor_allocate_empty`: a tensor without storage, to attach a buffer to.
    pub(crate) fn allocate_empty(&mut self, name: String) -> Res<*mut nrt_tensor_t> {
        let id = new_id()?;
        Ok(self.insert_tensor(Tensor {
            id,
            name,
            place: Place::Virtual,
            size: 0,
            mem: None,
        }))
    }

    /// `nrt_tensor_attach_buffer`: the tensor's previous storage is detached (and freed
    /// when no slice uses it any more) and the tensor becomes VIRTUAL over `buffer`, as
    /// the runtime documents, whatever its placement was.
    ///
    /// # Safety
    ///
    /// `buffer` must be valid for reads and writes of `size` bytes while the tensor is used.
    pub(crate) unsafe fn attach_buffer(
        &mut self,
        handle: *mut nrt_tensor_t,
        buffer: *mut u8,
        size: usize,
    ) -> Res<()> {
        let t = self.tensor(handle, "tensor")?;
        let Some(ptr) = NonNull::new(buffer) else {
            return fail(NRT_INVALID, "buffer is NULL");
        };
        if size == 0 {
            return fail(NRT_INVALID, format!("size 0 attached to {}", t.label()));
        }
        if let Some(old) = &t.mem {
            self.release_storage(&old.buf);
        }
        self.count_tensor(t.place, false);
        // SAFETY: the caller guarantees `buffer` is valid for `size` bytes while used.
        let buf = Arc::new(unsafe { Buffer::attach(ptr, size) });
        self.use_storage(&buf, None);
        self.insert_tensor(Tensor {
            id: t.id,
            name: t.name.clone(),
            place: Place::Virtual,
            size,
            mem: Some(Mem { buf, offset: 0 }),
        });
        Ok(())
    }

    /// `nrt_tensor_allocate_slice`: shares the source's storage, which stays allocated
    /// while any tensor using it is live.
    pub(crate) fn allocate_slice(
        &mut self,
        source: *const nrt_tensor_t,
        offset: usize,
        size: usize,
        name: String,
    ) -> Res<*mut nrt_tensor_t> {
        let src = self.tensor(source, "tensor_source")?;
        let mem = src.mem()?.clone();
        src.check_range("slice", offset as u64, size as u64)?;
        if size == 0 {
            return fail(NRT_INVALID, format!("size 0 slice of {}", src.label()));
        }
        let id = new_id()?;
        self.use_storage(&mem.buf, None);
        Ok(self.insert_tensor(Tensor {
            id,
            name,
            place: src.place,
            size,
            mem: Some(Mem {
                offset: mem.offset + offset,
                ..mem
            }),
        }))
    }

    /// `nrt_tensor_free`.
    pub(crate) fn free_tensor(&mut self, handle: *const nrt_tensor_t) -> Res<()> {
        let id = from_handle(HandleKind::Tensor, handle, "*tensor")?;
        let Some(t) = self.tensors.remove(&id) else {
            return fail(
                NRT_INVALID_HANDLE,
                format!("*tensor (tensor #{id}) was already freed or belongs to a closed runtime"),
            );
        };
        self.count_tensor(t.place, false);
        if let Some(mem) = &t.mem {
            self.release_storage(&mem.buf);
        }
        Ok(())
    }

    /// The fake device address of a device tensor.
    /// A copy of the device memory at `[va, va + size)`, where `va` is inside one device
    /// tensor's allocation as `nrt_tensor_get_device_allocation_info` reports it.
    pub(crate) fn device_bytes(&self, va: u64, size: u64) -> Res<Vec<u8>> {
        for t in self.tensors.values() {
            let Ok(info) = self.device_allocation_info_of(t) else {
                continue;
            };
            let base = info.physical_address;
            if va >= base && va - base < t.size as u64 {
                let offset = va - base;
                t.check_range("export", offset, size)?;
                let all = t.to_vec()?;
                return Ok(all[offset as usize..(offset + size) as usize].to_vec());
            }
        }
        fail(
            NRT_INVALID,
            format!("address {va:#x} is not in a device tensor's allocation"),
        )
    }

    pub(crate) fn device_allocation_info(
        &self,
        handle: *const nrt_tensor_t,
    ) -> Res<nrt_tensor_device_allocation_info_t> {
        let t = self.tensor(handle, "tensor")?;
        self.device_allocation_info_of(&t)
    }

    fn device_allocation_info_of(&self, t: &Tensor) -> Res<nrt_tensor_device_allocation_info_t> {
        let Place::Device(core) = t.place else {
            return fail(
                NRT_INVALID,
                format!("{} is not in device memory", t.label()),
            );
        };
        let mem = t.mem()?;
        Ok(nrt_tensor_device_allocation_info_t {
            physical_address: ((core as u64 + 1) << 44) | (mem.buf.id << 20) | mem.offset as u64,
            size: t.size,
            hbm_index: 0,
        })
    }
}
