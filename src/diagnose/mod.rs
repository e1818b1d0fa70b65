//! Diagnosis of failed `nrt_init`, `nrt_load` and tensor allocations: what the crate can
//! find out about the machine (environment, `/dev/neuron*`, processes holding the devices,
//! per-core memory, the model file) becomes the [`Error::hint`](crate::Error::hint) of the
//! error.
//!
//! [`Probe`] reads the machine. Its device folder, `/proc` folder and environment can be
//! replaced, so the findings can be checked on fake trees, or a report printed for a
//! support request:
//!
//! ```
//! use neuron_rt::diagnose::Probe;
//!
//! let probe = Probe::system();
//! for device in probe.devices().unwrap_or_default() {
//!     println!("{}: {}", device.path.display(), device.access.as_deref().unwrap_or("ok"));
//! }
//! for holder in probe.holders().processes {
//!     println!("pid {} ({}) holds {:?}", holder.pid, holder.command, holder.devices);
//! }
//! ```

pub(crate) mod hints;
mod neff;
#[cfg(test)]
mod tests;

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What to do when the default search found no libnrt.
const LIBRARY_NOT_FOUND_HINT: &str = "\
on a Neuron instance, install the Neuron runtime (package aws-neuronx-runtime-lib; libnrt.so.1 lands in /opt/aws/neuron/lib)
or name the library file: LIBNRT_PATH=/path/to/libnrt.so.1
without Neuron hardware, develop on the simulator: feature `sim` and RuntimeBuilder::simulator(), or LIBNRT_PATH=<path of libnrt_sim.so> (cargo build -p nrt-sim-cdylib)";

/// What to do when the file `LIBNRT_PATH` names did not load (no other place is tried).
const LIBNRT_PATH_HINT: &str = "\
LIBNRT_PATH names the library file to load, and only that file is tried: correct it to an existing libnrt.so.1 (on a Neuron instance /opt/aws/neuron/lib/libnrt.so.1), or unset it to search the default places
without Neuron hardware, name the simulator's library: LIBNRT_PATH=<path of libnrt_sim.so> (cargo build -p nrt-sim-cdylib)";

/// What to do when the path given in code did not load.
const EXPLICIT_PATH_HINT: &str = "\
the path given to RuntimeBuilder::library_path is the only one tried: correct it to an existing libnrt.so.1 (on a Neuron instance /opt/aws/neuron/lib/libnrt.so.1)";

/// What to do about `load`: [`Error::hint`](crate::Error::hint) of
/// [`Error::LibraryNotFound`](crate::Error::LibraryNotFound), by how the places tried
/// were chosen.
pub(crate) fn library_not_found_hint(load: &nrt_sys::LoadError) -> &'static str {
    match load.attempts.first().map(|a| a.source) {
        Some("LIBNRT_PATH") => LIBNRT_PATH_HINT,
        Some("explicit path") => EXPLICIT_PATH_HINT,
        _ => LIBRARY_NOT_FOUND_HINT,
    }
}

/// Reads what the diagnosis needs from the machine: the device folder (`/dev`), the
/// process folder (`/proc`) and environment variables. Each can be replaced, for tests
/// on fake trees or to inspect another root.
#[derive(Clone, Debug)]
pub struct Probe {
    dev_dir: PathBuf,
    proc_dir: PathBuf,
    sys_dir: PathBuf,
    /// `None`: the process environment; `Some`: only these variables are set.
    env: Option<Vec<(String, String)>>,
}

impl Default for Probe {
    fn default() -> Probe {
        Probe::system()
    }
}

/// A `/dev/neuron*` device node.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Device {
    /// Its path, e.g. `/dev/neuron0`.
    pub path: PathBuf,
    /// `None` when this process may read and write it; else why not.
    pub access: Option<String>,
}

/// A process with a Neuron device open.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Holder {
    /// Its process id.
    pub pid: u32,
    /// Its command line (or command name), as `/proc/<pid>` shows it.
    pub command: String,
    /// The device paths it has open, sorted.
    pub devices: Vec<String>,
}

/// The processes holding Neuron devices, from the open files under the `/proc` folder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Holders {
    /// Every process with a device open, by pid.
    pub processes: Vec<Holder>,
    /// How many processes' open files could not be read (another user's, without root).
    pub unreadable: usize,
}

impl Probe {
    /// The real machine: `/dev`, `/proc` and the process environment.
    pub fn system() -> Probe {
        Probe {
            dev_dir: PathBuf::from("/dev"),
            proc_dir: PathBuf::from("/proc"),
            sys_dir: PathBuf::from("/sys"),
            env: None,
        }
    }

    /// Looks for `neuron*` device nodes in `dir` instead of `/dev`.
    #[must_use]
    pub fn dev_dir(mut self, dir: impl Into<PathBuf>) -> Probe {
        self.dev_dir = dir.into();
        self
    }

    /// Reads processes (`<pid>/fd`, `<pid>/cmdline`, `<pid>/comm`) from `dir` instead of
    /// `/proc`.
    #[must_use]
    pub fn proc_dir(mut self, dir: impl Into<PathBuf>) -> Probe {
        self.proc_dir = dir.into();
        self
    }

    /// Reads the Neuron driver's version (`module/neuron/version`) from `dir` instead of
    /// `/sys`.
    #[must_use]
    pub fn sys_dir(mut self, dir: impl Into<PathBuf>) -> Probe {
        self.sys_dir = dir.into();
        self
    }

    /// The loaded Neuron driver's version, e.g. `"2.24.7.0"`, from
    /// `/sys/module/neuron/version`; `None` when the driver is not loaded.
    ///
    /// The kernel publishes a module's `MODULE_VERSION` there (sysfs module ABI), and the
    /// Neuron driver (module `neuron`, package `aws-neuronx-dkms`) declares one.
    pub fn driver_version(&self) -> Option<String> {
        let text = fs::read_to_string(self.sys_dir.join("module/neuron/version")).ok()?;
        Some(text.trim().to_owned()).filter(|v| !v.is_empty())
    }

    /// Uses a fixed environment instead of the process's: only the variables given by
    /// calls of this method are set.
    #[must_use]
    pub fn env_var(mut self, name: &str, value: &str) -> Probe {
        self.env
            .get_or_insert_with(Vec::new)
            .push((name.to_owned(), value.to_owned()));
        self
    }

    /// The value of environment variable `name`, if set (and valid Unicode).
    pub fn var(&self, name: &str) -> Option<String> {
        match &self.env {
            None => std::env::var(name).ok(),
            Some(vars) => vars
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone()),
        }
    }

    /// The `neuron<N>` device nodes in the device folder, by number, with whether this
    /// process may read and write each.
    ///
    /// # Errors
    ///
    /// The error of listing the folder.
    pub fn devices(&self) -> io::Result<Vec<Device>> {
        let mut found: Vec<(u32, PathBuf)> = fs::read_dir(&self.dev_dir)?
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| {
                let n = device_number(entry.file_name().to_str()?)?;
                Some((n, entry.path()))
            })
            .collect();
        found.sort();
        Ok(found
            .into_iter()
            .map(|(_, path)| {
                let access = access_problem(&path);
                Device { path, access }
            })
            .collect())
    }

    /// The processes that have a `neuron<N>` device (in `/dev` or the device folder)
    /// open, from the symbolic links under `<proc>/<pid>/fd`.
    pub fn holders(&self) -> Holders {
        let mut holders = Holders::default();
        let Ok(entries) = fs::read_dir(&self.proc_dir) else {
            return holders;
        };
        let mut pids: Vec<u32> = entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        pids.sort_unstable();
        for pid in pids {
            let dir = self.proc_dir.join(pid.to_string());
            let fds = match fs::read_dir(dir.join("fd")) {
                Ok(fds) => fds,
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    holders.unreadable += 1;
                    continue;
                }
                // The process exited meanwhile, or is a kernel thread without fds.
                Err(_) => continue,
            };
            let mut devices: Vec<String> = fds
                .filter_map(|fd| fs::read_link(fd.ok()?.path()).ok())
                .filter(|target| self.is_device(target))
                .map(|target| target.display().to_string())
                .collect();
            if devices.is_empty() {
                continue;
            }
            devices.sort();
            devices.dedup();
            holders.processes.push(Holder {
                pid,
                command: command_of(&dir),
                devices,
            });
        }
        holders
    }

    /// Whether `target` (an open file's path) is a Neuron device node.
    fn is_device(&self, target: &Path) -> bool {
        let named = target
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| device_number(n).is_some());
        let parent = target.parent();
        named && (parent == Some(Path::new("/dev")) || parent == Some(self.dev_dir.as_path()))
    }
}

/// `N` for a name `neuronN`.
fn device_number(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("neuron")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Why this process may not read and write `path`, or `None` when it may.
fn access_problem(path: &Path) -> Option<String> {
    if let Err(e) = fs::metadata(path) {
        return Some(e.to_string());
    }
    let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call; access(2) only
    // reads it and opens nothing.
    let rc = unsafe { libc::access(c_path.as_ptr(), libc::R_OK | libc::W_OK) };
    (rc != 0).then(|| io::Error::last_os_error().to_string())
}

/// The command line of the process in `dir` (`cmdline` with spaces for the NULs), or its
/// command name (`comm`), or `"?"`.
fn command_of(dir: &Path) -> String {
    let cmdline = fs::read(dir.join("cmdline")).unwrap_or_default();
    let words: Vec<String> = cmdline
        .split(|&b| b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    if !words.is_empty() {
        return words.join(" ");
    }
    fs::read_to_string(dir.join("comm"))
        .map(|c| c.trim().to_owned())
        .ok()
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "?".to_owned())
}

impl crate::RuntimeBuilder {
    /// Reads the machine through `probe` when diagnosing a failed `nrt_init`, model load
    /// or allocation (default: [`Probe::system`]).
    pub fn probe(mut self, probe: Probe) -> crate::RuntimeBuilder {
        self.probe = probe;
        self
    }
}
