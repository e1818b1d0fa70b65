//! [`RankSpec`]: where one rank of a collective group runs (core, rank id, world size),
//! from code or from the environment launchers set (torchrun's `RANK`, `WORLD_SIZE`,
//! `LOCAL_RANK`; Open MPI's `OMPI_COMM_WORLD_*`; SLURM's `SLURM_PROCID`, `SLURM_NTASKS`,
//! `SLURM_LOCALID`; and `NEURON_RT_ROOT_COMM_ID`).

use crate::error::{Error, Result};

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

    /// The rank of this process, from the variables its launcher set. Launchers are tried
    /// in this order, the first whose rank variable is set wins:
    ///
    /// | launcher | rank | world size | local rank (optional) |
    /// |---|---|---|---|
    /// | torchrun (and scripts that mimic it) | `RANK` | `WORLD_SIZE` | `LOCAL_RANK` |
    /// | Open MPI's `mpirun` | `OMPI_COMM_WORLD_RANK` | `OMPI_COMM_WORLD_SIZE` | `OMPI_COMM_WORLD_LOCAL_RANK` |
    /// | SLURM's `srun` | `SLURM_PROCID` | `SLURM_NTASKS` | `SLURM_LOCALID` |
    ///
    /// For a world of more than one rank, `NEURON_RT_ROOT_COMM_ID` (rank 0's
    /// `host:port`, which libnrt itself reads at `nrt_init` and the developer guide calls
    /// mandatory for collectives) must be set too. The job script sets it (the vendor's
    /// SLURM scripts: `NEURON_RT_ROOT_COMM_ID=<first host of the job>:46820`); when it is
    /// not set but `SLURM_JOB_NODELIST` is, the error gives the value derived from the
    /// list's first host, and [`RankSpec::export_root_comm_id`] sets it before the
    /// runtime starts.
    ///
    /// The core is 0 when `NEURON_RT_VISIBLE_CORES` is set (the launcher gave this
    /// process its own cores, so its first visible one is its rank's), else the local rank.
    ///
    /// # Errors
    ///
    /// [`Error::Env`] naming the variable and its value: no launcher's rank variable set,
    /// a rank or world size that is not a number, a world of 0, a rank not below the
    /// world, a local rank above the rank or not below the world, `NEURON_RT_ROOT_COMM_ID`
    /// missing for a world above 1 or not `host:port`.
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
    /// // srun: rank 3 of 4, the second task on its node.
    /// let spec = RankSpec::from_env_with(env(&[
    ///     ("SLURM_PROCID", "3"),
    ///     ("SLURM_NTASKS", "4"),
    ///     ("SLURM_LOCALID", "1"),
    ///     ("NEURON_RT_ROOT_COMM_ID", "trn-node-01:46820"),
    /// ]))?;
    /// assert_eq!(spec, RankSpec::new(1, 3, 4)?);
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
        let Some(launcher) = Launcher::ALL.into_iter().find(|l| value(l.rank).is_some()) else {
            return Err(env_error(
                "RANK",
                None,
                "not set, and neither is OMPI_COMM_WORLD_RANK (mpirun) or SLURM_PROCID (srun); a launcher (torchrun, mpirun, srun or your own) sets the rank and world size of every rank's process",
            ));
        };
        let number = |name: &'static str, required: bool| -> Result<Option<u32>> {
            match value(name) {
                None if required => Err(env_error(
                    name,
                    None,
                    format!(
                        "not set, but {}={} is: {} sets both",
                        launcher.rank,
                        value(launcher.rank).unwrap_or_default(),
                        launcher.name
                    ),
                )),
                None => Ok(None),
                Some(v) => v.trim().parse::<u32>().map(Some).map_err(|_| {
                    env_error(name, Some(v.clone()), "not a non-negative whole number")
                }),
            }
        };
        let rank = number(launcher.rank, true)?.unwrap_or_default();
        let world = number(launcher.world, true)?.unwrap_or_default();
        let local = number(launcher.local, false)?;
        if world == 0 {
            return Err(env_error(
                launcher.world,
                Some("0".into()),
                "a world has at least 1 rank",
            ));
        }
        if rank >= world {
            return Err(env_error(
                launcher.rank,
                Some(rank.to_string()),
                format!("not below {}={world}", launcher.world),
            ));
        }
        if let Some(l) = local
            && (l > rank || l >= world)
        {
            return Err(env_error(
                launcher.local,
                Some(l.to_string()),
                format!(
                    "inconsistent with {}={rank} and {}={world} (a local rank is at most the global one)",
                    launcher.rank, launcher.world
                ),
            ));
        }
        if world > 1 {
            match value(ROOT_COMM_ID) {
                None => {
                    let derived = match derived_root_comm_id(&get) {
                        Some(id) => format!(
                            "; from SLURM_JOB_NODELIST its first host gives {ROOT_COMM_ID}={id}: export that in the job script, or call RankSpec::export_root_comm_id before the runtime starts"
                        ),
                        None => String::new(),
                    };
                    return Err(env_error(
                        ROOT_COMM_ID,
                        None,
                        format!(
                            "not set; a world of {world} ranks needs rank 0's address as host:port (e.g. 127.0.0.1:62182 on one machine), the same in every rank's process{derived}"
                        ),
                    ));
                }
                Some(v) if !is_host_port(&v) => {
                    return Err(env_error(
                        ROOT_COMM_ID,
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

    /// Sets `NEURON_RT_ROOT_COMM_ID` for this process when it is not set and the job
    /// runs under SLURM: the first host of `SLURM_JOB_NODELIST` (SLURM's compressed form,
    /// such as `trn-[01-04,07],head`) with port [`DEFAULT_ROOT_COMM_PORT`], as the vendor's
    /// SLURM scripts set it. Logs the value it derived (`info`). Returns the value now in
    /// force, `None` when it is neither set nor derivable. libnrt reads the variable at
    /// `nrt_init`, so call this before building the [`Runtime`](crate::Runtime).
    ///
    /// # Safety
    ///
    /// It may call [`std::env::set_var`]: no other thread may read or write the
    /// environment during the call (in practice: call it at the start of `main`).
    ///
    /// # Errors
    ///
    /// [`Error::Env`] when the variable is set but not `host:port`.
    pub unsafe fn export_root_comm_id() -> Result<Option<String>> {
        if let Ok(v) = std::env::var(ROOT_COMM_ID) {
            if !is_host_port(&v) {
                return Err(env_error(
                    ROOT_COMM_ID,
                    Some(v),
                    "not host:port with a port from 1 to 65535",
                ));
            }
            return Ok(Some(v));
        }
        let Some(id) = derived_root_comm_id(&|name: &str| std::env::var(name).ok()) else {
            return Ok(None);
        };
        // SAFETY: the caller guarantees that no other thread accesses the environment
        // during this call (this function's `# Safety` contract).
        unsafe { std::env::set_var(ROOT_COMM_ID, &id) };
        log::info!("{ROOT_COMM_ID}={id}: derived from the first host of SLURM_JOB_NODELIST");
        Ok(Some(id))
    }
}

/// The port of rank 0's address when [`RankSpec::export_root_comm_id`] derives it from
/// SLURM's node list: 46820, the port the vendor's SLURM training scripts put in
/// `NEURON_RT_ROOT_COMM_ID` (neuronx-distributed's examples; its vLLM scripts use 8990).
pub const DEFAULT_ROOT_COMM_PORT: u16 = 46820;

const ROOT_COMM_ID: &str = "NEURON_RT_ROOT_COMM_ID";

/// The variables one kind of launcher sets for each rank's process.
#[derive(Clone, Copy)]
struct Launcher {
    name: &'static str,
    rank: &'static str,
    world: &'static str,
    local: &'static str,
}

impl Launcher {
    /// In the order [`RankSpec::from_env`] tries them.
    const ALL: [Launcher; 3] = [
        Launcher {
            name: "torchrun",
            rank: "RANK",
            world: "WORLD_SIZE",
            local: "LOCAL_RANK",
        },
        Launcher {
            name: "Open MPI's mpirun",
            rank: "OMPI_COMM_WORLD_RANK",
            world: "OMPI_COMM_WORLD_SIZE",
            local: "OMPI_COMM_WORLD_LOCAL_RANK",
        },
        Launcher {
            name: "SLURM's srun",
            rank: "SLURM_PROCID",
            world: "SLURM_NTASKS",
            local: "SLURM_LOCALID",
        },
    ];
}

/// `<first host of SLURM_JOB_NODELIST>:DEFAULT_ROOT_COMM_PORT`, when the list is set and
/// its first entry parses.
fn derived_root_comm_id(get: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let list = get("SLURM_JOB_NODELIST")?;
    let host = first_host(&list)?;
    Some(format!("{host}:{DEFAULT_ROOT_COMM_PORT}"))
}

/// The first host of a SLURM host list: `a,b` -> `a`; `trn-[01-04,07]` -> `trn-01`
/// (the range's first number, zero padding kept); `n[3]x` -> `n3x`. `None` for an empty
/// or malformed list.
fn first_host(list: &str) -> Option<String> {
    let list = list.trim();
    // The first entry ends at the first comma outside brackets.
    let mut depth = 0usize;
    let mut end = list.len();
    for (i, c) in list.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.checked_sub(1)?,
            ',' if depth == 0 => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    let entry = &list[..end];
    let host = match entry.split_once('[') {
        None => entry.to_string(),
        Some((prefix, rest)) => {
            let (ranges, suffix) = rest.split_once(']')?;
            let first = ranges.split(',').next()?.split('-').next()?;
            if first.is_empty()
                || !first.bytes().all(|b| b.is_ascii_digit())
                || suffix.contains('[')
            {
                return None;
            }
            format!("{prefix}{first}{suffix}")
        }
    };
    (!host.is_empty() && !host.contains(char::is_whitespace)).then_some(host)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    fn variable(err: Error) -> (&'static str, Option<String>, String) {
        match err {
            Error::Env {
                variable,
                value,
                reason,
            } => (variable, value, reason),
            other => panic!("not an Env error: {other}"),
        }
    }

    #[test]
    fn open_mpi_and_slurm_ranks_are_read() {
        let ompi = env(&[
            ("OMPI_COMM_WORLD_RANK", "2"),
            ("OMPI_COMM_WORLD_SIZE", "4"),
            ("OMPI_COMM_WORLD_LOCAL_RANK", "0"),
            ("NEURON_RT_ROOT_COMM_ID", "10.1.2.3:46820"),
        ]);
        assert_eq!(
            RankSpec::from_env_with(ompi).unwrap(),
            RankSpec::new(0, 2, 4).unwrap()
        );
        let slurm = env(&[
            ("SLURM_PROCID", "5"),
            ("SLURM_NTASKS", "8"),
            ("SLURM_LOCALID", "1"),
            ("NEURON_RT_ROOT_COMM_ID", "trn-01:46820"),
        ]);
        assert_eq!(
            RankSpec::from_env_with(slurm).unwrap(),
            RankSpec::new(1, 5, 8).unwrap()
        );
    }

    #[test]
    fn torchrun_wins_over_open_mpi_which_wins_over_slurm() {
        let all = env(&[
            ("RANK", "1"),
            ("WORLD_SIZE", "2"),
            ("OMPI_COMM_WORLD_RANK", "3"),
            ("OMPI_COMM_WORLD_SIZE", "4"),
            ("SLURM_PROCID", "6"),
            ("SLURM_NTASKS", "8"),
            ("NEURON_RT_ROOT_COMM_ID", "h:1"),
        ]);
        assert_eq!(
            RankSpec::from_env_with(all).unwrap(),
            RankSpec::new(0, 1, 2).unwrap()
        );
        let mpi_and_slurm = env(&[
            ("OMPI_COMM_WORLD_RANK", "3"),
            ("OMPI_COMM_WORLD_SIZE", "4"),
            ("SLURM_PROCID", "6"),
            ("SLURM_NTASKS", "8"),
            ("NEURON_RT_ROOT_COMM_ID", "h:1"),
        ]);
        assert_eq!(
            RankSpec::from_env_with(mpi_and_slurm).unwrap(),
            RankSpec::new(0, 3, 4).unwrap()
        );
    }

    #[test]
    fn errors_name_the_launchers_variables() {
        let (var, value, reason) = variable(RankSpec::from_env_with(env(&[])).unwrap_err());
        assert_eq!((var, value), ("RANK", None));
        assert!(
            reason.contains("SLURM_PROCID") && reason.contains("OMPI_COMM_WORLD_RANK"),
            "{reason}"
        );
        let (var, _, reason) =
            variable(RankSpec::from_env_with(env(&[("SLURM_PROCID", "0")])).unwrap_err());
        assert_eq!(var, "SLURM_NTASKS");
        assert!(reason.contains("SLURM_PROCID=0"), "{reason}");
        let (var, value, _) = variable(
            RankSpec::from_env_with(env(&[("SLURM_PROCID", "4"), ("SLURM_NTASKS", "4")]))
                .unwrap_err(),
        );
        assert_eq!((var, value.as_deref()), ("SLURM_PROCID", Some("4")));
        let (var, value, _) = variable(
            RankSpec::from_env_with(env(&[
                ("OMPI_COMM_WORLD_RANK", "0"),
                ("OMPI_COMM_WORLD_SIZE", "x"),
            ]))
            .unwrap_err(),
        );
        assert_eq!((var, value.as_deref()), ("OMPI_COMM_WORLD_SIZE", Some("x")));
    }

    #[test]
    fn a_missing_root_address_under_slurm_says_what_the_node_list_gives() {
        let (var, value, reason) = variable(
            RankSpec::from_env_with(env(&[
                ("SLURM_PROCID", "1"),
                ("SLURM_NTASKS", "2"),
                ("SLURM_JOB_NODELIST", "trn-[07-08]"),
            ]))
            .unwrap_err(),
        );
        assert_eq!((var, value), ("NEURON_RT_ROOT_COMM_ID", None));
        assert!(
            reason.contains("NEURON_RT_ROOT_COMM_ID=trn-07:46820"),
            "{reason}"
        );
    }

    #[test]
    fn first_host_of_slurm_node_lists() {
        for (list, host) in [
            ("trn-01", Some("trn-01")),
            ("a,b,c", Some("a")),
            ("trn-[01-04,07],head", Some("trn-01")),
            ("node[3]x", Some("node3x")),
            ("n[010-012]", Some("n010")),
            ("", None),
            ("n[", None),
            ("n[a-b]", None),
            ("n]x", None),
        ] {
            assert_eq!(first_host(list).as_deref(), host, "{list}");
        }
    }
}
