//! Profiling and observation: device profiles of a model ([`ProfileGuard`](crate::ProfileGuard)),
//! the system trace ([`SysTrace`](crate::SysTrace)), device-timed benchmarks
//! ([`Model::benchmark_device`](crate::Model::benchmark_device)), inspect and continuous
//! profiling sessions, and the debug stream / dma-buf export of tensors.

pub(crate) mod bench_device;
pub(crate) mod debug_stream;
pub(crate) mod inspect;
pub(crate) mod profile;
pub(crate) mod trace;
