//! The findings for each failing call, as lines of [`Error::hint`](crate::Error::hint).

use nrt_sys::Library;

use super::neff;
use super::{Holders, Probe};
use crate::error::{Error, NrtStatus};
use crate::objects::{Placement, Runtime};

const VISIBLE: &str = crate::VISIBLE_CORES_VAR;
const NUM: &str = "NEURON_RT_NUM_CORES";
const LOG_LEVEL: &str = "NEURON_RT_LOG_LEVEL";

/// `"core N"`, or `"any core"` for a call that lets libnrt choose.
pub(crate) fn place(core: Option<u32>) -> String {
    match core {
        Some(c) => format!("core {c}"),
        None => "any core".to_owned(),
    }
}

/// Where the library's own reason for a failure can be found.
pub(crate) enum Target {
    /// A real libnrt: it logs its reason to stderr at `NEURON_RT_LOG_LEVEL`.
    Hardware,
    /// nrt-sim, with the reason it gave for the failing call (if any).
    Simulator(Option<String>),
}

impl Target {
    /// nrt-sim when the library identifies as it (`nrt_sim_identity`), with its last
    /// error on this thread; a real libnrt otherwise.
    fn of(lib: &Library) -> Target {
        if crate::raw::sim::is_simulator(lib) {
            Target::Simulator(crate::raw::sim::last_error(lib))
        } else {
            Target::Hardware
        }
    }
}

/// Adds the findings to an [`Error::Nrt`] (other errors are returned unchanged) and logs
/// them: `cause`, the specific cause when one was found, leads the message; the other
/// lines are the hint.
fn with_findings(mut err: Error, cause: Option<String>, lines: Vec<String>) -> Error {
    if let Error::Nrt {
        function,
        diagnosis,
        ..
    } = &mut err
    {
        let text = lines.join("\n");
        log::debug!(
            "{function} failed; cause: {}; diagnosis: {}",
            cause.as_deref().unwrap_or("not found"),
            text.replace('\n', "; ")
        );
        *diagnosis = Some(Box::new(crate::error::Diagnosis {
            cause,
            hint: Some(text).filter(|t| !t.is_empty()),
        }));
    }
    err
}

/// The first of `specific` (findings that explain the failure) as the cause, the others
/// before `lines`.
fn split_cause(specific: Vec<String>, lines: Vec<String>) -> (Option<String>, Vec<String>) {
    let mut specific = specific.into_iter();
    let cause = specific.next();
    (cause, specific.chain(lines).collect())
}

/// `nrt_init` failed on `lib`.
pub(crate) fn init_failed(lib: &Library, probe: &Probe, err: Error) -> Error {
    let target = Target::of(lib);
    let (cause, lines) = init_findings(probe, &target);
    with_findings(err, cause, lines)
}

/// The findings for a failed `nrt_init`: the cause when one is known (a malformed core
/// list, no device, a driver too old for the library, the simulator's own reason), and
/// the other lines.
pub(crate) fn init_findings(probe: &Probe, target: &Target) -> (Option<String>, Vec<String>) {
    let mut specific = Vec::new();
    let mut lines = env_lines(probe);
    // A core list that does not parse is the cause, whatever else is found.
    if let Some(i) = lines.iter().position(|l| l.contains("is not a core list")) {
        specific.push(lines.remove(i));
    }
    if let Target::Hardware = target {
        let devices = device_lines(probe);
        if devices.iter().any(|l| l.starts_with("no Neuron device")) {
            specific.extend(devices);
        } else {
            lines.extend(devices);
            lines.extend(holder_lines(&probe.holders()));
        }
        if let Some(line) = driver_line(probe) {
            specific.push(line);
        }
    } else {
        machine_lines(probe, target, &mut lines);
    }
    match target {
        Target::Simulator(Some(reason)) => specific.push(format!("nrt-sim's reason: {reason}")),
        _ => lines.push(reason_line(probe, target)),
    }
    split_cause(specific, lines)
}

/// The findings for a failed `nrt_init`, as the lines of its hint (cause first).
#[cfg(test)]
pub(crate) fn init_lines(probe: &Probe, target: &Target) -> Vec<String> {
    let (cause, lines) = init_findings(probe, target);
    cause.into_iter().chain(lines).collect()
}

/// Lib 2.32 and later fail to initialise on Neuron driver 2.26 or older (the runtime's
/// release notes): a line when the loaded driver is that old.
fn driver_line(probe: &Probe) -> Option<String> {
    let version = probe.driver_version()?;
    let mut parts = version.split('.').map(|p| p.parse::<u32>());
    let (Some(Ok(major)), Some(Ok(minor))) = (parts.next(), parts.next()) else {
        return None;
    };
    ((major, minor) <= (2, 26)).then(|| {
        format!(
            "the Neuron driver is {version} (/sys/module/neuron/version): libnrt 2.32 and later need a driver newer than 2.26; update aws-neuronx-dkms (and reload the driver), or use a libnrt older than 2.32"
        )
    })
}

/// `nrt_load` of `neff` (labelled `label`) on `core` failed with `err`: the error with
/// the call's context and the diagnosis.
pub(crate) fn load_error(
    rt: &Runtime,
    err: Error,
    neff: &[u8],
    label: &str,
    core: Option<u32>,
) -> Error {
    let err = err.context(format!(
        "model `{label}`, {} bytes, {}",
        neff.len(),
        place(core)
    ));
    load_failed(rt, err, neff, label, core)
}

/// `nrt_tensor_allocate` of tensor `name` failed with `err`: the error with the call's
/// context and the diagnosis.
pub(crate) fn alloc_error(
    rt: &Runtime,
    err: Error,
    placement: Placement,
    core: Option<u32>,
    size: usize,
    name: &str,
) -> Error {
    let err = err.context(format!(
        "tensor `{name}`, {size} bytes, {placement:?} on {}",
        place(core)
    ));
    alloc_failed(rt, err, placement, core, size)
}

/// `nrt_load` of `neff` (labelled `label`) on `core` failed.
fn load_failed(rt: &Runtime, err: Error, neff: &[u8], label: &str, core: Option<u32>) -> Error {
    let Some(status) = err.status() else {
        return err;
    };
    let target = Target::of(rt.library());
    let probe = &rt.inner.probe;
    let visible = rt.visible_core_count().ok();
    let mut specific = Vec::new();
    if let Some(problem) = neff::problem(neff) {
        specific.push(format!(
            "model `{label}` is not a NEFF: {problem}; load the .neff file the Neuron compiler wrote"
        ));
    }
    if let (Some(needed), Some(visible)) = (neff::cores_needed(neff), visible)
        && needed > visible
    {
        specific.push(format!(
            "model `{label}` needs {needed} NeuronCores (its header), {visible} visible"
        ));
    }
    specific.extend(core_line(probe, core, visible));
    let mut lines = Vec::new();
    match neff::read(neff) {
        Some(Ok(n)) => lines.push(format!(
            "model `{label}` needs {}; the runtime offers {}",
            neff::needs(&n),
            offers(rt, visible)
        )),
        Some(Err(e)) => specific.push(format!("model `{label}` is a damaged NEFF: {e}")),
        None => {}
    }
    if status == NrtStatus::Resource {
        let cores: Vec<u32> = match (core, visible) {
            (Some(c), _) => vec![c],
            (None, Some(n)) => (0..n).collect(),
            (None, None) => Vec::new(),
        };
        let free: Vec<usize> = cores
            .iter()
            .filter_map(|&c| rt.memory_stats(c).ok())
            .map(|m| m.bytes_limit.saturating_sub(m.bytes_used))
            .collect();
        // The file is a lower bound of what a load needs on the device.
        if let Some(&most) = free.iter().max()
            && most < neff.len()
        {
            specific.push(format!(
                "model `{label}` ({}) does not fit: the most free device memory on {} is {}",
                bytes(neff.len()),
                if cores.len() == 1 {
                    "its core"
                } else {
                    "any core"
                },
                bytes(most)
            ));
        }
        lines.extend(memory_lines(rt, &cores));
        lines.push(format!("the model file has {} bytes", neff.len()));
    }
    if matches!(
        status,
        NrtStatus::Resource | NrtStatus::LoadNotEnoughNc | NrtStatus::ExecNcBusy
    ) {
        lines.extend(env_lines(probe));
        machine_lines(probe, &target, &mut lines);
    }
    lines.push(reason_line(probe, &target));
    let (cause, lines) = split_cause(specific, lines);
    with_findings(err, cause, lines)
}

/// Allocating `size` bytes of `placement` memory on `core` failed.
fn alloc_failed(
    rt: &Runtime,
    err: Error,
    placement: Placement,
    core: Option<u32>,
    size: usize,
) -> Error {
    let Some(status) = err.status() else {
        return err;
    };
    let target = Target::of(rt.library());
    let specific: Vec<String> = core_line(&rt.inner.probe, core, rt.visible_core_count().ok())
        .into_iter()
        .collect();
    let mut lines = Vec::new();
    if status == NrtStatus::Resource
        && placement == Placement::Device
        && let Some(c) = core
    {
        lines.extend(memory_lines(rt, &[c]));
        lines.push(format!("the tensor needs {size} bytes"));
    }
    lines.push(reason_line(&rt.inner.probe, &target));
    let (cause, lines) = split_cause(specific, lines);
    with_findings(err, cause, lines)
}

/// What the runtime offers a model: visible cores, the instance, the library version.
fn offers(rt: &Runtime, visible: Option<u32>) -> String {
    let cores = visible.map_or("an unknown number of visible cores".to_owned(), |n| {
        format!("{n} visible NeuronCore(s)")
    });
    let instance = match rt.instance_info() {
        Ok(i) => format!(
            " on {} ({})",
            i.family_name().unwrap_or("an unknown instance family"),
            if i.arch_name.is_empty() {
                "unknown arch"
            } else {
                &i.arch_name
            }
        ),
        Err(_) => String::new(),
    };
    let version = rt
        .version()
        .map(|v| format!(", libnrt {v}"))
        .unwrap_or_default();
    format!("{cores}{instance}{version}")
}

/// A line when `core` does not exist among `visible` cores; when
/// `NEURON_RT_VISIBLE_CORES` starts past 0 and `core` is one of the physical cores it
/// names, the likely cause: core indices count from the first visible core.
pub(crate) fn core_line(probe: &Probe, core: Option<u32>, visible: Option<u32>) -> Option<String> {
    let (core, visible) = (core?, visible?);
    if core < visible {
        return None;
    }
    let mut line = match visible {
        0 => format!("core {core} does not exist: no NeuronCore is visible"),
        1 => format!("core {core} does not exist: 1 NeuronCore is visible (core 0)"),
        n => format!(
            "core {core} does not exist: {n} NeuronCores are visible (cores 0-{})",
            n - 1
        ),
    };
    if let Some(list) = probe.var(VISIBLE)
        && let Ok((first, last)) = parse_core_list(&list)
        && first > 0
        && (first..=last).contains(&core)
    {
        line.push_str(&format!(
            "; core indices count from the first visible core: with {VISIBLE}={list:?} physical core {core} is core {} of this process (cores 0-{})",
            core - first,
            last - first
        ));
    }
    Some(line)
}

/// Device memory of each core in `cores`.
fn memory_lines(rt: &Runtime, cores: &[u32]) -> Vec<String> {
    cores
        .iter()
        .filter_map(|&c| {
            let m = rt.memory_stats(c).ok()?;
            Some(format!(
                "core {c} device memory: {} used of {}, {} free",
                bytes(m.bytes_used),
                bytes(m.bytes_limit),
                bytes(m.bytes_limit.saturating_sub(m.bytes_used))
            ))
        })
        .collect()
}

/// The core-selection variables `nrt_init` reads, with what their values ask for.
pub(crate) fn env_lines(probe: &Probe) -> Vec<String> {
    let visible = probe.var(VISIBLE);
    let num = probe.var(NUM);
    let mut lines = Vec::new();
    if let Some(v) = &visible {
        lines.push(match parse_core_list(v) {
            Err(why) => format!(
                "{VISIBLE}={v:?} is not a core list ({why}): use indices or inclusive ranges forming one contiguous run, such as 0, 0-1 or 2,3, or unset it to use every core"
            ),
            Ok((a, b)) => {
                let (cores, they, numbered) = if a == b {
                    (format!("core {a}"), "it", "this process calls it core 0".to_owned())
                } else {
                    (
                        format!("cores {a} to {b}"),
                        "they",
                        format!("this process numbers them 0 to {}", b - a),
                    )
                };
                format!(
                    "{VISIBLE}={v:?} asks for {cores}: {they} must exist on this instance (indices start at 0) and not be held by another process; name cores that exist, or unset it; {numbered}"
                )
            }
        });
    }
    match (&num, &visible) {
        (None, None) => lines.push(format!(
            "{VISIBLE} and {NUM} are not set: libnrt takes every free NeuronCore"
        )),
        (None, Some(_)) => lines.push(format!("{NUM} is not set")),
        (Some(n), Some(_)) => lines.push(format!(
            "{NUM}={n:?} is ignored: {VISIBLE} takes precedence"
        )),
        (Some(n), None) => lines.push(match n.trim().parse::<u32>() {
            Err(_) => format!("{NUM}={n:?} is not a number of cores (0 for all)"),
            Ok(0) => format!("{NUM}=0 asks for every NeuronCore"),
            Ok(count) => format!(
                "{NUM}={n:?} asks for {count} NeuronCores: that many must exist on this instance and be free; lower it or unset it"
            ),
        }),
    }
    lines
}

/// `(first, last)` of a `NEURON_RT_VISIBLE_CORES` value: indices and inclusive ranges,
/// comma-separated, forming one contiguous increasing run.
pub(crate) fn parse_core_list(text: &str) -> std::result::Result<(u32, u32), String> {
    let mut run: Option<(u32, u32)> = None;
    for part in text.split(',') {
        let part = part.trim();
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let parse = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| format!("`{part}` is not an index or a range"))
        };
        let (a, b) = (parse(a)?, parse(b)?);
        if a > b {
            return Err(format!("the range `{part}` is reversed"));
        }
        run = match run {
            None => Some((a, b)),
            Some((first, last)) if last.checked_add(1) == Some(a) => Some((first, b)),
            Some(_) => return Err(format!("`{part}` does not continue the run before it")),
        };
    }
    run.ok_or_else(|| "it is empty".to_owned())
}

/// Devices and their holders on hardware; on the simulator, a line saying so.
fn machine_lines(probe: &Probe, target: &Target, lines: &mut Vec<String>) {
    if let Target::Simulator(_) = target {
        lines.push(
            "the library is nrt-sim: simulated NeuronCores (NRT_SIM_VNC_COUNT of them, default 2), no device used"
                .to_owned(),
        );
        return;
    }
    lines.extend(device_lines(probe));
    lines.extend(holder_lines(&probe.holders()));
}

/// Whether the Neuron devices exist and are usable.
pub(crate) fn device_lines(probe: &Probe) -> Vec<String> {
    let dev = probe.dev_dir.display();
    let devices = match probe.devices() {
        Ok(d) => d,
        Err(e) => return vec![format!("cannot list {dev}: {e}")],
    };
    if devices.is_empty() {
        return vec![format!(
            "no Neuron device: {dev} has no neuron* entry; install and load the Neuron driver (aws-neuronx-dkms), or start the container with each device (--device=/dev/neuron0)"
        )];
    }
    let mut lines = Vec::new();
    let mut usable = Vec::new();
    for d in devices {
        let path = d.path.display().to_string();
        match d.access {
            None => usable.push(path),
            Some(why) => lines.push(format!(
                "{path} is not usable by this process ({why}): in a container pass --device={path}; on the host check its owner and mode"
            )),
        }
    }
    if !usable.is_empty() {
        lines.insert(
            0,
            format!("devices readable and writable: {}", usable.join(", ")),
        );
    }
    lines
}

/// Who holds the devices.
pub(crate) fn holder_lines(holders: &Holders) -> Vec<String> {
    let me = std::process::id();
    let mut lines: Vec<String> = holders
        .processes
        .iter()
        .map(|h| {
            let who = if h.pid == me { " (this process)" } else { "" };
            format!(
                "pid {}{who} ({}) has {} open: if it is a leftover run or notebook kernel, stop it (kill {}) and retry",
                h.pid,
                h.command,
                h.devices.join(", "),
                h.pid
            )
        })
        .collect();
    if lines.is_empty() {
        lines.push("no process has a Neuron device open".to_owned());
    }
    if holders.unreadable > 0 {
        lines.push(format!(
            "the open files of {} processes could not be read: run as root to see every holder",
            holders.unreadable
        ));
    }
    lines
}

/// Where the library's own reason is.
pub(crate) fn reason_line(probe: &Probe, target: &Target) -> String {
    match target {
        Target::Simulator(Some(reason)) => format!("nrt-sim's reason: {reason}"),
        Target::Simulator(None) => "nrt-sim gave no reason".to_owned(),
        Target::Hardware => match probe.var(LOG_LEVEL) {
            Some(level)
                if ["INFO", "DEBUG", "TRACE"].contains(&level.trim().to_uppercase().as_str()) =>
            {
                format!("libnrt logged its reason to stderr ({LOG_LEVEL}={level})")
            }
            _ => {
                format!("libnrt's own reason: run again with {LOG_LEVEL}=INFO (it logs to stderr)")
            }
        },
    }
}

/// `n` bytes for people: bytes, KiB, MiB or GiB.
pub(crate) fn bytes(n: usize) -> String {
    const UNITS: [(&str, f64); 3] = [
        ("GiB", 1024.0 * 1024.0 * 1024.0),
        ("MiB", 1024.0 * 1024.0),
        ("KiB", 1024.0),
    ];
    let mut larger: Option<String> = None;
    for (unit, size) in UNITS {
        let text = format!("{:.1} {unit}", n as f64 / size);
        // 1023.96 MiB reads better as 1.0 GiB than as 1024.0 MiB.
        if text.starts_with("1024.0 ") {
            return larger.unwrap_or(text);
        }
        if n as f64 >= size {
            return text;
        }
        larger = Some(text);
    }
    format!("{n} bytes")
}
