//! Settings read from the environment at `nrt_init`.

use std::time::Duration;

/// Default number of simulated NeuronCores.
pub(crate) const DEFAULT_VNC_COUNT: u32 = 2;
/// Default device memory per core: 1 GiB.
pub(crate) const DEFAULT_DEVICE_MEMORY: u64 = 1 << 30;
/// Default async queue depth.
pub(crate) const DEFAULT_QUEUE_DEPTH: u32 = 8;
/// Default execution timeout (the runtime's documented default).
pub(crate) const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(30);
/// Default collective link bandwidth in GB/s (`NRT_SIM_CC_GBPS`).
pub(crate) const DEFAULT_CC_GBPS: f64 = 100.0;
/// Default emulated runtime library version.
pub(crate) const DEFAULT_VERSION: Version = Version {
    major: 2,
    minor: 34,
    patch: 10,
    maintenance: 0,
};
const MAX_VNC_COUNT: u32 = 128;
const MAX_QUEUE_DEPTH: u32 = 1 << 16;

/// A runtime library version (`major.minor.patch.maintenance`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Version {
    pub(crate) major: u64,
    pub(crate) minor: u64,
    pub(crate) patch: u64,
    pub(crate) maintenance: u64,
}

impl Version {
    /// Whether this library version has the v3 async API (runtime 2.31 and later).
    pub(crate) fn has_async_v3(self) -> bool {
        (self.major, self.minor) >= (2, 31)
    }

    /// Whether this library version has completion events
    /// (`nrta_event_register_*`, runtime 2.32 and later).
    pub(crate) fn has_async_events(self) -> bool {
        (self.major, self.minor) >= (2, 32)
    }

    /// Whether this library version allocates VIRTUAL tensors (support was removed in
    /// runtime 2.32).
    pub(crate) fn has_virtual_placement(self) -> bool {
        (self.major, self.minor) < (2, 32)
    }

    fn parse(text: &str) -> Option<Version> {
        let parts: Vec<u64> = text
            .trim()
            .split('.')
            .map(|p| p.parse().ok())
            .collect::<Option<_>>()?;
        if parts.len() < 2 || parts.len() > 4 {
            return None;
        }
        Some(Version {
            major: parts[0],
            minor: parts[1],
            patch: parts.get(2).copied().unwrap_or(0),
            maintenance: parts.get(3).copied().unwrap_or(0),
        })
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}.{}.{}.{}",
            self.major, self.minor, self.patch, self.maintenance
        )
    }
}

/// Everything `nrt_init` reads from the environment.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    /// Cores of the simulated machine (`NRT_SIM_VNC_COUNT`).
    pub(crate) total_cores: u32,
    /// First visible core, as a machine index (`NEURON_RT_VISIBLE_CORES`).
    pub(crate) first_visible: u32,
    /// Number of visible cores; API core indices are `0..visible_cores`.
    pub(crate) visible_cores: u32,
    /// Device memory per core in bytes (`NRT_SIM_DEVICE_MEMORY`).
    pub(crate) device_memory: u64,
    /// Requests an async queue holds, in flight included (`NRT_SIM_QUEUE_DEPTH`).
    pub(crate) queue_depth: u32,
    /// Device time of every execution, overriding the model's (`NRT_SIM_EXEC_LATENCY_US`).
    pub(crate) exec_latency: Option<Duration>,
    /// The runtime's launch cost per execution (`NRT_SIM_LAUNCH_US`, see `clock.rs`).
    pub(crate) launch: Duration,
    /// Executions longer than this fail with `NRT_TIMEOUT` (`NEURON_RT_EXEC_TIMEOUT`).
    pub(crate) exec_timeout: Duration,
    /// Emulated runtime version (`NRT_SIM_VERSION`).
    pub(crate) version: Version,
    /// Stack `nrt_execute` uses on its caller's thread, 0 for none (`NRT_SIM_EXEC_STACK`).
    pub(crate) exec_stack: usize,
    /// Transfer bandwidth in GB/s, 0 for instantaneous (`NRT_SIM_DMA_GBPS`).
    pub(crate) dma_gbps: f64,
    /// Collective link bandwidth in GB/s, 0 for free (`NRT_SIM_CC_GBPS`).
    pub(crate) cc_gbps: f64,
    /// Rank 0's address for collectives across processes (`NEURON_RT_ROOT_COMM_ID`).
    pub(crate) root_comm_id: Option<String>,
    /// The job's shared secret for that rendezvous (`NRT_SIM_COMM_TOKEN`), mixed with
    /// the address into the key every rank proves it holds (`runtime/wire.rs`).
    pub(crate) comm_token: Option<String>,
    /// Check real NEFFs' payload hash at load (`NEURON_RT_VALIDATE_HASH`, default off;
    /// the simulator's own model files are always checked).
    pub(crate) validate_hash: bool,
}

/// `NEURON_RT_VALIDATE_HASH`: a boolean, `TRUE` or `FALSE` (any case), default false.
/// Evidence: the vendor's runtime configuration guide lists it as Boolean, "TRUE or
/// FALSE", default FALSE, and shows `NEURON_RT_VALIDATE_HASH=true` / `=false`; the
/// developer guide (`nrt_load` model environment) gives `<true/false>, default=false`.
/// `1` / `0` are accepted too; other values fail `nrt_init` like every bad setting.
pub(crate) fn parse_bool(name: &str, text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("{name}={text:?} is not TRUE or FALSE")),
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parse_u32(name: &str, text: &str, min: u32, max: u32) -> Result<u32, String> {
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| format!("{name}={text:?} is not an integer from {min} to {max}"))
}

/// Parses a byte count with an optional binary suffix: `4096`, `64K`, `512M`, `2G`.
fn parse_bytes(name: &str, text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, shift) = match t.as_bytes().last().map(u8::to_ascii_uppercase) {
        Some(b'K') => (&t[..t.len() - 1], 10),
        Some(b'M') => (&t[..t.len() - 1], 20),
        Some(b'G') => (&t[..t.len() - 1], 30),
        Some(b'T') => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    digits
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|v| v.checked_mul(1u64 << shift))
        .filter(|&v| v > 0)
        .ok_or_else(|| {
            format!("{name}={text:?} is not a positive byte count (e.g. 1073741824, 512M, 1G)")
        })
}

/// Total cores: `NRT_SIM_VNC_COUNT`, or the default.
pub(crate) fn total_cores_from_env() -> Result<u32, String> {
    match var("NRT_SIM_VNC_COUNT") {
        Some(t) => parse_u32("NRT_SIM_VNC_COUNT", &t, 1, MAX_VNC_COUNT),
        None => Ok(DEFAULT_VNC_COUNT),
    }
}

/// Visible cores `(first, count)` out of `total`. `NEURON_RT_VISIBLE_CORES` is a list of
/// indices and inclusive ranges that must form one contiguous increasing run (`3`,
/// `0-2`, `3,4,5`, `3-5,6`), as the runtime documents; it takes precedence over
/// `NEURON_RT_NUM_CORES`, a core count (0 = all) that takes the first cores. Unset means
/// all.
pub(crate) fn visible_from_env(total: u32) -> Result<(u32, u32), EnvError> {
    if let Some(text) = var("NEURON_RT_VISIBLE_CORES") {
        return parse_visible(&text, total).map_err(EnvError::Invalid);
    }
    match var("NEURON_RT_NUM_CORES") {
        Some(text) => parse_num_cores(&text, total),
        None => Ok((0, total)),
    }
}

/// A setting that stops `nrt_init`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EnvError {
    /// A malformed or out-of-range value (`nrt_init` fails with `NRT_INVALID`).
    Invalid(String),
    /// More cores requested than the machine has (`NRT_RESOURCE`, like a runtime that
    /// cannot reserve them).
    NotEnough(String),
}

impl From<String> for EnvError {
    fn from(message: String) -> EnvError {
        EnvError::Invalid(message)
    }
}

impl EnvError {
    pub(crate) fn message(&self) -> &str {
        match self {
            EnvError::Invalid(m) | EnvError::NotEnough(m) => m,
        }
    }
}

pub(crate) fn parse_num_cores(text: &str, total: u32) -> Result<(u32, u32), EnvError> {
    let n = text.trim().parse::<u32>().map_err(|_| {
        EnvError::Invalid(format!(
            "NEURON_RT_NUM_CORES={text:?} is not a number of cores (0 for all)"
        ))
    })?;
    match n {
        0 => Ok((0, total)),
        n if n <= total => Ok((0, n)),
        n => Err(EnvError::NotEnough(format!(
            "NEURON_RT_NUM_CORES={n} asks for more cores than the {total} of the simulated machine (NRT_SIM_VNC_COUNT)"
        ))),
    }
}

pub(crate) fn parse_visible(text: &str, total: u32) -> Result<(u32, u32), String> {
    let bad = |why: &str| {
        format!(
            "NEURON_RT_VISIBLE_CORES={text:?} {why}; expected core indices or inclusive ranges forming one increasing contiguous run (like 1, 0-1 or 2,3-4) within the {total} cores (0-{})",
            total - 1
        )
    };
    let mut run: Option<(u32, u32)> = None;
    for part in text.trim().split(',') {
        let part = part.trim();
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<u32>(), b.trim().parse::<u32>()),
            None => (part.parse::<u32>(), part.parse::<u32>()),
        };
        let (Ok(first), Ok(last)) = (first, last) else {
            return Err(bad(&format!("has {part:?}, not an index or a range")));
        };
        if first > last {
            return Err(bad(&format!("has the decreasing range {part:?}")));
        }
        if last >= total {
            return Err(bad(&format!("names core {last}, which does not exist")));
        }
        run = match run {
            None => Some((first, last)),
            Some((start, end)) if first == end + 1 => Some((start, last)),
            Some((_, end)) => {
                return Err(bad(&format!(
                    "is not contiguous: {part:?} does not continue right after core {end}"
                )));
            }
        };
    }
    let (first, last) = run.expect("split yields at least one part");
    Ok((first, last - first + 1))
}

/// `NRT_SIM_VERSION`, or the default.
pub(crate) fn version_from_env() -> Result<Version, String> {
    match var("NRT_SIM_VERSION") {
        Some(t) => Version::parse(&t).ok_or_else(|| {
            format!("NRT_SIM_VERSION={t:?} is not a version like 2.30.0 or 2.34.10.0")
        }),
        None => Ok(DEFAULT_VERSION),
    }
}

impl Config {
    /// Reads every setting; the error names the variable and its bad value.
    pub(crate) fn from_env() -> Result<Config, EnvError> {
        let (first_visible, visible_cores) = visible_from_env(total_cores_from_env()?)?;
        Config::rest_from_env(first_visible, visible_cores).map_err(EnvError::Invalid)
    }

    fn rest_from_env(first_visible: u32, visible_cores: u32) -> Result<Config, String> {
        let total_cores = total_cores_from_env()?;
        let device_memory = match var("NRT_SIM_DEVICE_MEMORY") {
            Some(t) => parse_bytes("NRT_SIM_DEVICE_MEMORY", &t)?,
            None => DEFAULT_DEVICE_MEMORY,
        };
        let queue_depth = match var("NRT_SIM_QUEUE_DEPTH") {
            Some(t) => parse_u32("NRT_SIM_QUEUE_DEPTH", &t, 1, MAX_QUEUE_DEPTH)?,
            None => DEFAULT_QUEUE_DEPTH,
        };
        let exec_latency = match var("NRT_SIM_EXEC_LATENCY_US") {
            Some(t) => Some(Duration::from_micros(t.trim().parse::<u64>().map_err(
                |_| format!("NRT_SIM_EXEC_LATENCY_US={t:?} is not a whole number of microseconds"),
            )?)),
            None => None,
        };
        let launch = match var("NRT_SIM_LAUNCH_US") {
            Some(t) => Duration::from_micros(
                t.trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|&us| us <= crate::clock::MAX_LAUNCH_US)
                    .ok_or_else(|| {
                        format!(
                            "NRT_SIM_LAUNCH_US={t:?} is not a whole number of microseconds from 0 to {}",
                            crate::clock::MAX_LAUNCH_US
                        )
                    })?,
            ),
            None => Duration::ZERO,
        };
        let exec_timeout = match var("NEURON_RT_EXEC_TIMEOUT") {
            Some(t) => t
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e9)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| {
                    format!("NEURON_RT_EXEC_TIMEOUT={t:?} is not a positive number of seconds")
                })?,
            None => DEFAULT_EXEC_TIMEOUT,
        };
        let exec_stack = match var("NRT_SIM_EXEC_STACK") {
            Some(t) if t.trim() == "0" => 0,
            Some(t) => parse_bytes("NRT_SIM_EXEC_STACK", &t)
                .ok()
                .filter(|&b| b <= crate::stack::MAX_EXEC_STACK as u64)
                .ok_or_else(|| {
                    format!(
                        "NRT_SIM_EXEC_STACK={t:?} is not 0 (off) or a byte count up to 1G (e.g. 4M, 8388608)"
                    )
                })? as usize,
            None => crate::stack::DEFAULT_EXEC_STACK,
        };
        let dma_gbps = match var("NRT_SIM_DMA_GBPS") {
            Some(t) => t
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|g| g.is_finite() && (0.0..=1e6).contains(g))
                .ok_or_else(|| {
                    format!("NRT_SIM_DMA_GBPS={t:?} is not a bandwidth in GB/s from 0 (instantaneous) to 1000000")
                })?,
            None => crate::dma::DEFAULT_DMA_GBPS,
        };
        let cc_gbps = match var("NRT_SIM_CC_GBPS") {
            Some(t) => t
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|g| g.is_finite() && (0.0..=1e6).contains(g))
                .ok_or_else(|| {
                    format!(
                        "NRT_SIM_CC_GBPS={t:?} is not a bandwidth in GB/s from 0 (free) to 1000000"
                    )
                })?,
            None => DEFAULT_CC_GBPS,
        };
        let validate_hash = match var("NEURON_RT_VALIDATE_HASH") {
            Some(t) => parse_bool("NEURON_RT_VALIDATE_HASH", &t)?,
            None => false,
        };
        Ok(Config {
            validate_hash,
            dma_gbps,
            cc_gbps,
            root_comm_id: var("NEURON_RT_ROOT_COMM_ID").map(|v| v.trim().to_string()),
            comm_token: std::env::var("NRT_SIM_COMM_TOKEN").ok(),
            exec_stack,
            total_cores,
            first_visible,
            visible_cores,
            device_memory,
            queue_depth,
            exec_latency,
            launch,
            exec_timeout,
            version: version_from_env()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_with_two_to_four_parts() {
        assert_eq!(
            Version::parse("2.30"),
            Some(Version {
                major: 2,
                minor: 30,
                patch: 0,
                maintenance: 0
            })
        );
        assert_eq!(Version::parse("2.31.24.0").unwrap().patch, 24);
        assert!(Version::parse("2").is_none());
        assert!(Version::parse("2.x").is_none());
        assert!(!Version::parse("2.30.9").unwrap().has_async_v3());
        assert!(Version::parse("2.31.0").unwrap().has_async_v3());
        assert!(Version::parse("3.0").unwrap().has_async_v3());
    }

    #[test]
    fn validate_hash_is_a_boolean() {
        for (text, v) in [
            ("TRUE", true),
            ("true", true),
            (" 1 ", true),
            ("False", false),
            ("0", false),
        ] {
            assert_eq!(parse_bool("V", text), Ok(v), "{text}");
        }
        assert!(parse_bool("V", "yes").unwrap_err().contains("V=\"yes\""));
    }

    #[test]
    fn byte_counts_take_binary_suffixes() {
        assert_eq!(parse_bytes("X", "4096").unwrap(), 4096);
        assert_eq!(parse_bytes("X", "64k").unwrap(), 65536);
        assert_eq!(parse_bytes("X", "2G").unwrap(), 2 << 30);
        assert!(parse_bytes("X", "0").is_err());
        assert!(parse_bytes("X", "lots").unwrap_err().contains("X=\"lots\""));
        assert!(parse_bytes("X", "99999999999T").is_err());
    }

    #[test]
    fn visible_cores_are_indices_and_ranges_forming_one_run() {
        assert_eq!(parse_visible("1", 4).unwrap(), (1, 1));
        assert_eq!(parse_visible(" 1-3 ", 4).unwrap(), (1, 3));
        assert_eq!(parse_visible("0-0", 1).unwrap(), (0, 1));
        // Lists and list/range mixes, as long as they are contiguous and increasing.
        assert_eq!(parse_visible("1,2", 4).unwrap(), (1, 2));
        assert_eq!(parse_visible("0-1, 2,3", 4).unwrap(), (0, 4));
        assert_eq!(parse_visible("1,2-3", 4).unwrap(), (1, 3));
        for bad in [
            "4", "2-1", "0-4", "a", "1-", "-1", "0,2", "2,1", "1,1", "0-2,1", "", "1,",
        ] {
            let err = parse_visible(bad, 4).unwrap_err();
            assert!(err.contains("within the 4 cores (0-3)"), "{bad}: {err}");
        }
        assert!(
            parse_visible("0,2", 4)
                .unwrap_err()
                .contains("not contiguous")
        );
    }

    #[test]
    fn num_cores_takes_the_first_cores() {
        assert_eq!(parse_num_cores("0", 4), Ok((0, 4)));
        assert_eq!(parse_num_cores("3", 4), Ok((0, 3)));
        assert!(matches!(
            parse_num_cores("5", 4),
            Err(EnvError::NotEnough(m)) if m.contains("more cores than the 4")
        ));
        assert!(matches!(parse_num_cores("x", 4), Err(EnvError::Invalid(_))));
    }
}
