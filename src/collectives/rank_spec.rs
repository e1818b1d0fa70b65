//! [`RankSpec`]: where one rank of a collective group runs (core, rank id, world size),
//! from code or from the environment launchers set (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`,
//! `NEURON_RT_ROOT_COMM_ID`).

use crate::{Error, Result};

/// One rank of a collective group: the NeuronCore it runs on, its rank id and the world
/// size (`nrt_load_collectives`' `vnc`, `ctx_device_id`, `ctx_device_count`).
///
/// ```
/// use neuron_rt::RankSpec;
/// let spec = RankSpec::new(0, 1, 2)?;
/// assert_eq!((spec.core, spec.rank, spec.world), (0, 1, 2));
/// assert!(RankSpec::new(0, 2, 2).is_err());
/// # Ok::<(), neuron_rt::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RankSpec {
    /// The NeuronCore (index among the visible ones) the rank's model is loaded on.
    pub core: u32,
    /// The rank id, below `world`.
    pub rank: u32,
    /// The number of ranks in the group, at least 1.
    pub world: u32,
}

impl RankSpec {
    /// Rank `rank` of a world of `world` ranks on core `core`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a world of 0 or a rank not below the world, or a
    /// core above `i32::MAX`.
    pub fn new(core: u32, rank: u32, world: u32) -> Result<RankSpec> {
        if world == 0 {
            return Err(Error::invalid(
                "world",
                "a world has at least 1 rank, got 0",
            ));
        }
        if rank >= world {
            return Err(Error::invalid(
                "rank",
                format!("rank {rank} is not below the world size {world}"),
            ));
        }
        if i32::try_from(core).is_err() {
            return Err(Error::invalid(
                "core",
                format!("core {core} is above i32::MAX"),
            ));
        }
        Ok(RankSpec { core, rank, world })
    }

    /// The rank of this process, from the variables torchrun-style launchers set:
    /// `RANK` and `WORLD_SIZE` (required), `LOCAL_RANK` (optional, default 0) and, for a
    /// world of more than one rank, `NEURON_RT_ROOT_COMM_ID` (rank 0's `host:port`, which
    /// libnrt itself reads at `nrt_init` and the developer guide calls mandatory for
    /// collectives).
    ///
    /// The core is 0 when `NEURON_RT_VISIBLE_CORES` is set (the launcher gave this
    /// process its own cores, so its first visible one is its rank's), else `LOCAL_RANK`.
    ///
    /// # Errors
    ///
    /// [`Error::Env`] naming the variable and its value: `RANK` or `WORLD_SIZE` not set
    /// or not a number, `WORLD_SIZE=0`, `RANK` not below `WORLD_SIZE`, `LOCAL_RANK`
    /// above `RANK` or not below `WORLD_SIZE`, `NEURON_RT_ROOT_COMM_ID` missing for a
    /// world above 1 or not `host:port`.
    pub fn from_env() -> Result<RankSpec> {
        RankSpec::from_env_with(|name| std::env::var(name).ok())
    }

    /// [`RankSpec::from_env`] reading the variables through `get` (`None`: not set), for
    /// tests and launchers that keep the values elsewhere.
    ///
    /// ```
    /// use neuron_rt::{Error, RankSpec};
    /// let env = |vars: &'static [(&'static str, &'static str)]| {
    ///     move |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    /// };
    /// let spec = RankSpec::from_env_with(env(&[
    ///     ("RANK", "1"),
    ///     ("WORLD_SIZE", "2"),
    ///     ("LOCAL_RANK", "1"),
    ///     ("NEURON_RT_ROOT_COMM_ID", "127.0.0.1:62182"),
    /// ]))?;
    /// assert_eq!(spec, RankSpec::new(1, 1, 2)?);
    /// let err = RankSpec::from_env_with(env(&[("RANK", "0"), ("WORLD_SIZE", "2")])).unwrap_err();
    /// assert!(matches!(err, Error::Env { variable: "NEURON_RT_ROOT_COMM_ID", .. }));
    /// # Ok::<(), neuron_rt::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`RankSpec::from_env`].
    pub fn from_env_with(get: impl Fn(&str) -> Option<String>) -> Result<RankSpec> {
        let value = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let number = |name: &'static str, required: bool| -> Result<Option<u32>> {
            match value(name) {
                None if required => Err(env_error(
                    name,
                    None,
                    "not set; a launcher (torchrun, or your own) sets RANK and WORLD_SIZE for every rank's process",
                )),
                None => Ok(None),
                Some(v) => v.trim().parse::<u32>().map(Some).map_err(|_| {
                    env_error(name, Some(v.clone()), "not a non-negative whole number")
                }),
            }
        };
        let rank = number("RANK", true)?.unwrap_or_default();
        let world = number("WORLD_SIZE", true)?.unwrap_or_default();
        let local = number("LOCAL_RANK", false)?;
        if world == 0 {
            return Err(env_error(
                "WORLD_SIZE",
                Some("0".into()),
                "a world has at least 1 rank",
            ));
        }
        if rank >= world {
            return Err(env_error(
                "RANK",
                Some(rank.to_string()),
                format!("not below WORLD_SIZE={world}"),
            ));
        }
        if let Some(l) = local
            && (l > rank || l >= world)
        {
            return Err(env_error(
                "LOCAL_RANK",
                Some(l.to_string()),
                format!(
                    "inconsistent with RANK={rank} and WORLD_SIZE={world} (a local rank is at most the global one)"
                ),
            ));
        }
        if world > 1 {
            match value("NEURON_RT_ROOT_COMM_ID") {
                None => {
                    return Err(env_error(
                        "NEURON_RT_ROOT_COMM_ID",
                        None,
                        format!(
                            "not set; a world of {world} ranks needs rank 0's address as host:port (e.g. 127.0.0.1:62182 on one machine), the same in every rank's process"
                        ),
                    ));
                }
                Some(v) if !is_host_port(&v) => {
                    return Err(env_error(
                        "NEURON_RT_ROOT_COMM_ID",
                        Some(v),
                        "not host:port with a port from 1 to 65535",
                    ));
                }
                Some(_) => {}
            }
        }
        let core = if value("NEURON_RT_VISIBLE_CORES").is_some() {
            0
        } else {
            local.unwrap_or(0)
        };
        RankSpec::new(core, rank, world)
    }
}

fn env_error(variable: &'static str, value: Option<String>, reason: impl Into<String>) -> Error {
    Error::Env {
        variable,
        value,
        reason: reason.into(),
    }
}

fn is_host_port(text: &str) -> bool {
    text.trim()
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0))
}
