//! Work spread over execution units and cores: the model pool that servers use (one model
//! on many cores for independent requests), staged pipelines (write -> execute -> read on
//! a core's three units) and replicas (one model on many cores, jobs in order). No libnrt
//! calls of their own: they use [`ExecUnit`](crate::ExecUnit) requests and the sync API.

pub(crate) mod pool;
pub(crate) mod replicas;
pub(crate) mod staged;
