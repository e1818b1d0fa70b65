//! [`XuKind`]: the types of execution unit.

use std::fmt;

use nrt_sys as sys;

/// The type of an execution unit (`nrta_xu_t`, v3 numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum XuKind {
    /// Data movement: host<->device tensor writes and reads, and tensor copies
    /// (`NRTA_XU_TENSOR_OP`); 2 queues per core.
    TensorOp,
    /// Model execution (`NRTA_XU_COMPUTE`); 1 queue per core.
    Compute,
    /// Standalone collective operations (`NRTA_XU_COLLECTIVES`); 3 queues per core.
    /// Units of this kind can be created and queried, but this crate does not schedule
    /// collectives yet (the vendor marks that part of the API as work in progress).
    Collectives,
}

impl XuKind {
    /// Every kind.
    pub const ALL: [XuKind; 3] = [XuKind::TensorOp, XuKind::Compute, XuKind::Collectives];

    /// The number of queues each core has for this kind.
    pub const fn queue_count(self) -> u32 {
        match self {
            XuKind::TensorOp => 2,
            XuKind::Compute => 1,
            XuKind::Collectives => 3,
        }
    }

    /// The C value (`nrta_xu_t`) of the v3 API.
    pub const fn as_raw(self) -> sys::nrta_xu_t {
        match self {
            XuKind::TensorOp => sys::NRTA_XU_TENSOR_OP,
            XuKind::Compute => sys::NRTA_XU_COMPUTE,
            XuKind::Collectives => sys::NRTA_XU_COLLECTIVES,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            XuKind::TensorOp => "tensor-op",
            XuKind::Compute => "compute",
            XuKind::Collectives => "collectives",
        }
    }
}

impl fmt::Display for XuKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
