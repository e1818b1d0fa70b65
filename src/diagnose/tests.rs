//! The findings on fake device and process trees, and for bad environment values.

use std::os::unix::fs::symlink;
use std::path::Path;

use super::hints::{
    Target, core_line, device_lines, env_lines, holder_lines, init_findings, init_lines,
    parse_core_list, reason_line,
};
use super::{Device, Holder, Probe, neff};

/// `dev/` with `neuron*` nodes (plain files) and `proc/` with processes, in a temp dir.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("dev")).unwrap();
        std::fs::create_dir(dir.path().join("proc")).unwrap();
        Tree { dir }
    }
    fn dev(&self) -> std::path::PathBuf {
        self.dir.path().join("dev")
    }
    fn device(&self, name: &str) {
        std::fs::write(self.dev().join(name), b"").unwrap();
    }
    /// Process `pid` with `cmdline` (NUL-separated), `comm`, and fds linking to `targets`.
    fn process(&self, pid: u32, cmdline: &[u8], comm: &str, targets: &[&Path]) {
        let dir = self.dir.path().join("proc").join(pid.to_string());
        std::fs::create_dir_all(dir.join("fd")).unwrap();
        std::fs::write(dir.join("cmdline"), cmdline).unwrap();
        std::fs::write(dir.join("comm"), comm).unwrap();
        for (fd, target) in targets.iter().enumerate() {
            symlink(target, dir.join("fd").join(fd.to_string())).unwrap();
        }
    }
    fn probe(&self) -> Probe {
        Probe::system()
            .dev_dir(self.dev())
            .proc_dir(self.dir.path().join("proc"))
            .env_var("HOME", "/root")
    }
}

#[test]
fn devices_are_the_neuron_nodes_by_number_with_their_access() {
    let tree = Tree::new();
    for name in [
        "neuron10", "neuron1", "neuron0", "neuronx", "neuron", "tty0",
    ] {
        tree.device(name);
    }
    symlink("/nonexistent/neuron2", tree.dev().join("neuron2")).unwrap();
    let devices = tree.probe().devices().unwrap();
    let dev = tree.dev();
    let ok = |n: &str| Device {
        path: dev.join(n),
        access: None,
    };
    assert_eq!(
        devices,
        [
            ok("neuron0"),
            ok("neuron1"),
            Device {
                path: dev.join("neuron2"),
                access: Some("No such file or directory (os error 2)".into()),
            },
            ok("neuron10"),
        ]
    );
    let d = dev.display();
    assert_eq!(
        device_lines(&tree.probe()),
        [
            format!("devices readable and writable: {d}/neuron0, {d}/neuron1, {d}/neuron10"),
            format!(
                "{d}/neuron2 is not usable by this process (No such file or directory (os error 2)): in a container pass --device={d}/neuron2; on the host check its owner and mode"
            ),
        ]
    );
}

#[test]
fn no_device_says_to_install_the_driver_or_pass_the_device_to_the_container() {
    let tree = Tree::new();
    tree.device("null");
    assert_eq!(
        device_lines(&tree.probe()),
        [format!(
            "no Neuron device: {} has no neuron* entry; install and load the Neuron driver (aws-neuronx-dkms), or start the container with each device (--device=/dev/neuron0)",
            tree.dev().display()
        )]
    );
    let missing = tree.probe().dev_dir(tree.dir.path().join("nothing"));
    assert_eq!(
        device_lines(&missing),
        [format!(
            "cannot list {}: No such file or directory (os error 2)",
            tree.dir.path().join("nothing").display()
        )]
    );
}

#[test]
fn holders_are_the_processes_with_a_device_open() {
    let tree = Tree::new();
    tree.device("neuron0");
    tree.device("neuron1");
    let fake_neuron1 = tree.dev().join("neuron1");
    tree.process(
        4242,
        b"python3\0train.py\0",
        "python3\n",
        &[
            Path::new("/dev/null"),
            Path::new("/dev/neuron0"),
            Path::new("/dev/neuron0"),
        ],
    );
    tree.process(
        77,
        b"",
        "server\n",
        &[&fake_neuron1, Path::new("/dev/neuron1")],
    );
    tree.process(
        500,
        b"bash\0",
        "bash\n",
        &[Path::new("/dev/tty1"), Path::new("/tmp/neuron0")],
    );
    std::fs::create_dir(tree.dir.path().join("proc/self")).unwrap();
    std::fs::create_dir(tree.dir.path().join("proc/600")).unwrap(); // no fd folder
    let holders = tree.probe().holders();
    assert_eq!(holders.unreadable, 0);
    assert_eq!(
        holders.processes,
        [
            Holder {
                pid: 77,
                command: "server".into(),
                devices: vec!["/dev/neuron1".into(), fake_neuron1.display().to_string()],
            },
            Holder {
                pid: 4242,
                command: "python3 train.py".into(),
                devices: vec!["/dev/neuron0".into()],
            },
        ]
    );
    assert_eq!(
        holder_lines(&holders),
        [
            format!(
                "pid 77 (server) has /dev/neuron1, {} open: if it is a leftover run or notebook kernel, stop it (kill 77) and retry",
                fake_neuron1.display()
            ),
            "pid 4242 (python3 train.py) has /dev/neuron0 open: if it is a leftover run or notebook kernel, stop it (kill 4242) and retry".to_owned(),
        ]
    );
    let empty = Tree::new();
    assert_eq!(
        holder_lines(&empty.probe().holders()),
        ["no process has a Neuron device open"]
    );
}

#[test]
fn init_hint_on_hardware_names_variables_devices_holders_and_the_log_level() {
    let tree = Tree::new();
    tree.device("neuron0");
    tree.process(
        31337,
        b"jupyter-kernel\0",
        "python3",
        &[Path::new("/dev/neuron0")],
    );
    let probe = tree.probe().env_var("NEURON_RT_NUM_CORES", "4");
    let dev = tree.dev();
    let d = dev.display();
    assert_eq!(
        init_lines(&probe, &Target::Hardware),
        [
            "NEURON_RT_NUM_CORES=\"4\" asks for 4 NeuronCores: that many must exist on this instance and be free; lower it or unset it".to_owned(),
            format!("devices readable and writable: {d}/neuron0"),
            "pid 31337 (jupyter-kernel) has /dev/neuron0 open: if it is a leftover run or notebook kernel, stop it (kill 31337) and retry".to_owned(),
            "libnrt's own reason: run again with NEURON_RT_LOG_LEVEL=INFO (it logs to stderr)".to_owned(),
        ]
    );
    // The simulator's reason is the cause: first.
    let sim = Target::Simulator(Some("nrt_init: too many cores".into()));
    assert_eq!(
        init_lines(&tree.probe(), &sim),
        [
            "nrt-sim's reason: nrt_init: too many cores",
            "NEURON_RT_VISIBLE_CORES and NEURON_RT_NUM_CORES are not set: libnrt takes every free NeuronCore",
            "the library is nrt-sim: simulated NeuronCores (NRT_SIM_VNC_COUNT of them, default 2), no device used",
        ]
    );
}

#[test]
fn init_cause_is_a_missing_device_a_bad_core_list_or_an_old_driver() {
    let tree = Tree::new();
    // No /dev/neuron*: that is the cause.
    let (cause, _) = init_findings(&tree.probe(), &Target::Hardware);
    assert!(cause.unwrap().starts_with("no Neuron device: "));
    // A core list that does not parse comes first.
    let probe = tree.probe().env_var("NEURON_RT_VISIBLE_CORES", "1,0");
    let (cause, lines) = init_findings(&probe, &Target::Hardware);
    assert!(
        cause
            .unwrap()
            .starts_with("NEURON_RT_VISIBLE_CORES=\"1,0\" is not a core list"),
    );
    assert!(lines[0].starts_with("no Neuron device: "), "{lines:?}");

    // Driver 2.26 with the devices present: the driver is the cause; 2.27 is fine.
    tree.device("neuron0");
    let sys = tree.dir.path().join("sys");
    std::fs::create_dir_all(sys.join("module/neuron")).unwrap();
    std::fs::write(sys.join("module/neuron/version"), "2.26.5.0\n").unwrap();
    let probe = tree.probe().sys_dir(&sys);
    assert_eq!(probe.driver_version().as_deref(), Some("2.26.5.0"));
    let (cause, lines) = init_findings(&probe, &Target::Hardware);
    assert_eq!(
        cause.as_deref(),
        Some(
            "the Neuron driver is 2.26.5.0 (/sys/module/neuron/version): libnrt 2.32 and later need a driver newer than 2.26; update aws-neuronx-dkms (and reload the driver), or use a libnrt older than 2.32"
        )
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("devices readable and writable"))
    );
    std::fs::write(sys.join("module/neuron/version"), "2.27.4.0").unwrap();
    assert_eq!(init_findings(&probe, &Target::Hardware).0, None);
    // No driver loaded: no version, no driver line.
    assert_eq!(tree.probe().sys_dir(tree.dir.path()).driver_version(), None);
}

#[test]
fn a_core_past_the_visible_ones_is_explained_by_the_visible_core_offset() {
    let probe = Probe::system().env_var("NEURON_RT_VISIBLE_CORES", "3,4");
    assert_eq!(
        core_line(&probe, Some(3), Some(2)).unwrap(),
        "core 3 does not exist: 2 NeuronCores are visible (cores 0-1); core indices count from the first visible core: with NEURON_RT_VISIBLE_CORES=\"3,4\" physical core 3 is core 0 of this process (cores 0-1)"
    );
    // A core outside the list: no such explanation.
    assert_eq!(
        core_line(&probe, Some(7), Some(2)).unwrap(),
        "core 7 does not exist: 2 NeuronCores are visible (cores 0-1)"
    );
    assert_eq!(core_line(&probe, Some(1), Some(2)), None);
}

#[test]
fn a_library_that_did_not_load_gets_the_hint_for_how_it_was_chosen() {
    use nrt_sys::{Attempt, LoadError};
    let load = |source| LoadError {
        attempts: vec![Attempt {
            place: "/x/libnrt.so.1".into(),
            source,
            error: "No such file".into(),
        }],
    };
    let env = super::library_not_found_hint(&load("LIBNRT_PATH"));
    assert!(
        env.starts_with("LIBNRT_PATH names the library file to load, and only that file is tried"),
        "{env}"
    );
    assert!(!env.contains("LIBNRT_PATH=/path/to/libnrt.so.1"), "{env}");
    let code = super::library_not_found_hint(&load("explicit path"));
    assert!(code.contains("RuntimeBuilder::library_path"), "{code}");
    let default = super::library_not_found_hint(&load("default search"));
    assert!(
        default.contains("LIBNRT_PATH=/path/to/libnrt.so.1"),
        "{default}"
    );
}

#[test]
fn env_values_are_named_and_explained() {
    let lines = |vars: &[(&str, &str)]| {
        let probe = vars
            .iter()
            .fold(Probe::system().env_var("X", "1"), |p, (n, v)| {
                p.env_var(n, v)
            });
        env_lines(&probe)
    };
    assert_eq!(
        lines(&[("NEURON_RT_VISIBLE_CORES", "abc")]),
        [
            "NEURON_RT_VISIBLE_CORES=\"abc\" is not a core list (`abc` is not an index or a range): use indices or inclusive ranges forming one contiguous run, such as 0, 0-1 or 2,3, or unset it to use every core",
            "NEURON_RT_NUM_CORES is not set",
        ]
    );
    assert_eq!(
        lines(&[
            ("NEURON_RT_VISIBLE_CORES", "4-5"),
            ("NEURON_RT_NUM_CORES", "2")
        ]),
        [
            "NEURON_RT_VISIBLE_CORES=\"4-5\" asks for cores 4 to 5: they must exist on this instance (indices start at 0) and not be held by another process; name cores that exist, or unset it; this process numbers them 0 to 1",
            "NEURON_RT_NUM_CORES=\"2\" is ignored: NEURON_RT_VISIBLE_CORES takes precedence",
        ]
    );
    assert_eq!(
        lines(&[("NEURON_RT_VISIBLE_CORES", "3")])[0],
        "NEURON_RT_VISIBLE_CORES=\"3\" asks for core 3: it must exist on this instance (indices start at 0) and not be held by another process; name cores that exist, or unset it; this process calls it core 0"
    );
    assert_eq!(
        lines(&[("NEURON_RT_NUM_CORES", "many")]),
        ["NEURON_RT_NUM_CORES=\"many\" is not a number of cores (0 for all)"]
    );
    assert_eq!(
        lines(&[("NEURON_RT_NUM_CORES", "0")]),
        ["NEURON_RT_NUM_CORES=0 asks for every NeuronCore"]
    );
}

#[test]
fn core_lists_parse_as_one_contiguous_run() {
    assert_eq!(parse_core_list("0"), Ok((0, 0)));
    assert_eq!(parse_core_list("4-5"), Ok((4, 5)));
    assert_eq!(parse_core_list("1,2"), Ok((1, 2)));
    assert_eq!(parse_core_list("0-1, 2"), Ok((0, 2)));
    assert_eq!(
        parse_core_list("0,2"),
        Err("`2` does not continue the run before it".into())
    );
    assert_eq!(
        parse_core_list("5-4"),
        Err("the range `5-4` is reversed".into())
    );
    assert_eq!(
        parse_core_list(""),
        Err("`` is not an index or a range".into())
    );
    assert_eq!(
        parse_core_list("-1"),
        Err("`-1` is not an index or a range".into())
    );
}

#[test]
fn reason_line_depends_on_the_log_level() {
    let p = Probe::system().env_var("NEURON_RT_LOG_LEVEL", "info");
    assert_eq!(
        reason_line(&p, &Target::Hardware),
        "libnrt logged its reason to stderr (NEURON_RT_LOG_LEVEL=info)"
    );
    let p = Probe::system().env_var("NEURON_RT_LOG_LEVEL", "ERROR");
    assert_eq!(
        reason_line(&p, &Target::Hardware),
        "libnrt's own reason: run again with NEURON_RT_LOG_LEVEL=INFO (it logs to stderr)"
    );
    assert_eq!(
        reason_line(&p, &Target::Simulator(None)),
        "nrt-sim gave no reason"
    );
}

#[test]
fn neff_check_says_what_the_file_holds() {
    let mut text = b"[package]\nname = \"x\"\n".repeat(100);
    assert_eq!(
        neff::problem(&text).as_deref(),
        Some(
            "it holds text starting `[package]`, and a NEFF starts with a 1024-byte header whose first 8 bytes are packaging version 1 or 2"
        )
    );
    text.truncate(30);
    assert_eq!(
        neff::problem(&text).as_deref(),
        Some(
            "it has 30 bytes, fewer than a NEFF's 1024-byte header, and holds text starting `[package]`"
        )
    );
    let mut elf = vec![0u8; 2048];
    elf[..4].copy_from_slice(b"\x7fELF");
    assert!(neff::problem(&elf).unwrap().contains("an ELF file"));
    assert!(
        neff::problem(&[0x1f, 0x8b, 8, 0])
            .unwrap()
            .contains("a gzip archive")
    );
    assert!(
        neff::problem(&[0xde, 0xad, 0xbe, 0xef])
            .unwrap()
            .ends_with("binary data starting de ad be ef")
    );

    let good = nrt_sim::ModelBuilder::add_example(&[2, 3]).build().unwrap();
    assert_eq!(neff::problem(&good), None);
    assert_eq!(neff::cores_needed(&good), Some(1));
    let cut = &good[..good.len() - 10];
    assert_eq!(
        neff::problem(cut),
        Some(format!(
            "its header announces {} payload bytes but the file has {} after the header (truncated or damaged)",
            good.len() - 1024,
            cut.len() - 1024
        ))
    );
}
