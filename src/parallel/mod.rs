//! Work spread over execution units and cores: staged pipelines (write -> execute ->
//! read on a core's three units) and replicas (one model on many cores). No libnrt calls
//! of their own: they use [`ExecUnit`](crate::ExecUnit) requests and the sync API.

pub(crate) mod replicas;
pub(crate) mod staged;
