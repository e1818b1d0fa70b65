//! Collectives: ranks of a group ([`RankSpec`](crate::RankSpec), a launcher's environment;
//! [`RankGroup`](crate::RankGroup), ranks on cores of this process) and the host-driven
//! global-communicator calls ([`Runtime::barrier`](crate::Runtime::barrier),
//! [`Runtime::all_gather`](crate::Runtime::all_gather)).

mod global_comm;
pub(crate) mod rank_group;
pub(crate) mod rank_spec;
