//! The run-time loader against small stand-in libraries built with the system C compiler.

use nrt_sys::{DEFAULT_PLACES, Library, NrtFns, Origin};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The folder for this process's stand-ins: test runners may run these tests in parallel
/// processes.
fn build_root() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("nrt-sys-fake-libs-{}", std::process::id()))
}

/// Builds `tests/c/fake_lib.c` with `-D{define}` into `out`, with the GNU ld version script
/// `version_script` (its text) when given.
fn build_fake(define: &str, out: PathBuf, version_script: Option<&str>) -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let mut cmd = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cmd.args(["-shared", "-fPIC", "-Wall", "-Wextra", "-Werror"])
        .arg(format!("-D{define}"))
        .arg("-I")
        .arg(manifest.join("include"))
        .arg(manifest.join("tests/c/fake_lib.c"))
        .arg("-o")
        .arg(&out);
    if let Some(script) = version_script {
        let map = out.with_extension("map");
        std::fs::write(&map, script).unwrap();
        cmd.arg(format!("-Wl,--version-script={}", map.display()));
    }
    let status = cmd
        .status()
        .expect("a C compiler (cc) is needed to build the stand-in libraries");
    assert!(status.success(), "building {} failed", out.display());
    out
}

/// Builds the two stand-in libraries once: `a/libnrt.so.1` (FAKE_A) and `b/libfake_b.so` (FAKE_B).
fn fake_libs() -> &'static (PathBuf, PathBuf) {
    static LIBS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    LIBS.get_or_init(|| {
        let root = build_root();
        (
            build_fake("FAKE_A", root.join("a/libnrt.so.1"), None),
            build_fake("FAKE_B", root.join("b/libfake_b.so"), None),
        )
    })
}

fn lib_id(lib: &Library) -> char {
    let ptr = lib.symbol(c"fake_lib_id").expect("fake_lib_id exported");
    // SAFETY: fake_lib.c defines fake_lib_id as `char fake_lib_id(void)`.
    let f: unsafe extern "C" fn() -> u8 = unsafe { std::mem::transmute(ptr) };
    // SAFETY: takes no arguments and touches no state.
    (unsafe { f() }) as char
}

#[test]
fn a_partial_library_loads_with_its_symbols_some_and_the_others_none() {
    let (a, _) = fake_libs();
    let lib = Library::open(a).unwrap();
    assert_eq!(lib.origin(), &Origin::Path(a.clone()));
    let present: Vec<_> = lib
        .fns()
        .presence()
        .iter()
        .filter(|(_, p)| *p)
        .map(|(n, _)| n.to_str().unwrap())
        .collect();
    assert_eq!(present, ["nrt_close", "nrt_get_version", "nrt_init"]);
    assert!(lib.fns().nrt_execute.is_none());
    assert!(lib.fns().nrta_execute_schedule.is_none());
    // The newer families are optional entries like every other: absent here.
    assert!(lib.fns().nrt_sys_trace_start.is_none());
    assert!(lib.fns().nrt_inspect_begin.is_none());
    assert!(lib.fns().nrt_get_dmabuf_fd.is_none());
    assert!(lib.fns().nrt_async_sendrecv_init.is_none());
    assert!(lib.has_symbol(c"nrt_get_version"));
    assert!(!lib.has_symbol(c"nrt_load"));
    assert!(
        lib.has_symbol(c"fake_lib_id"),
        "symbols outside the table are found too"
    );

    // The table entry really is the library's function.
    let get_version = lib.fns().nrt_get_version.unwrap();
    let mut v = nrt_sys::nrt_version_t::default();
    // SAFETY: v is a valid, writable nrt_version_t and the size passed is its size.
    let status = unsafe { get_version(&mut v, std::mem::size_of_val(&v)) };
    assert_eq!(status, nrt_sys::NRT_SUCCESS);
    assert_eq!((v.rt_major, v.rt_minor), (7, 42));
}

#[test]
fn opening_the_same_path_twice_returns_the_same_library() {
    let (_, b) = fake_libs();
    let first = Library::open(b).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let b = b.clone();
            std::thread::spawn(move || Library::open(b).unwrap() as *const Library as usize)
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), first as *const Library as usize);
    }
    assert_eq!(lib_id(first), 'B');
}

#[test]
fn an_empty_table_has_every_name_absent() {
    let fns = NrtFns::default();
    assert_eq!(fns.presence().len(), NrtFns::LEN);
    assert!(fns.presence().iter().all(|(_, p)| !p));
}

/// Runs `open_default` in a child process with the given environment (the dynamic
/// linker reads LD_LIBRARY_PATH only at process start) and returns its report.
fn open_default_in_child(envs: &[(&str, &Path)], remove: &[&str]) -> String {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["child_open_default", "--exact", "--ignored", "--nocapture"])
        .env("NRT_SYS_LOADER_CHILD", "1")
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("LIBNRT_PATH");
    for k in remove {
        cmd.env_remove(k);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("REPORT "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Not a test on its own: the body of the child process above.
#[test]
#[ignore = "run by the other loader tests in a child process"]
fn child_open_default() {
    if std::env::var_os("NRT_SYS_LOADER_CHILD").is_none() {
        return;
    }
    match Library::open_default() {
        Ok(lib) => println!("REPORT loaded {} from {}", lib_id(lib), lib.origin()),
        Err(e) => {
            for a in e.attempts {
                println!("REPORT tried {} | {} | {}", a.place, a.source, a.error);
            }
        }
    }
}

#[test]
fn libnrt_path_wins_over_the_linker_search() {
    let (a, b) = fake_libs();
    let report = open_default_in_child(
        &[("LD_LIBRARY_PATH", a.parent().unwrap()), ("LIBNRT_PATH", b)],
        &[],
    );
    assert_eq!(report, format!("loaded B from {}", b.display()));
}

#[test]
fn without_libnrt_path_the_linker_search_finds_libnrt_so_1() {
    let (a, _) = fake_libs();
    let report = open_default_in_child(&[("LD_LIBRARY_PATH", a.parent().unwrap())], &[]);
    assert_eq!(report, "loaded A from libnrt.so.1");
}

#[test]
fn a_libnrt_path_that_does_not_load_is_the_only_place_reported() {
    let report =
        open_default_in_child(&[("LIBNRT_PATH", Path::new("/nonexistent/libnrt.so"))], &[]);
    assert!(
        report.starts_with("tried /nonexistent/libnrt.so | LIBNRT_PATH | "),
        "{report}"
    );
    assert_eq!(report.lines().count(), 1, "{report}");
}

#[test]
fn with_no_library_anywhere_every_place_tried_is_reported() {
    if Path::new("/opt/aws/neuron/lib").exists() {
        eprintln!("skipped: this machine has a Neuron SDK install");
        return;
    }
    let report = open_default_in_child(&[], &[]);
    let places: Vec<_> = report
        .lines()
        .map(|l| {
            let mut parts = l.strip_prefix("tried ").expect(l).split(" | ");
            let place = parts.next().unwrap().to_string();
            assert_eq!(parts.next(), Some("default search"));
            let error = parts.next().unwrap();
            assert!(error.contains("cannot open shared object file"), "{error}");
            place
        })
        .collect();
    assert_eq!(places, DEFAULT_PLACES);
}

// ---------------------------------------------------------------------------------------
// Symbol versions: FAKE_V (nrt_init, nrt_close, nrta_get_sequence, nrta_is_completed,
// nrta_execute_schedule, nrta_error_tracker_create) with and without version scripts.

/// Like the shipped libnrt: `nrt_*` under NRT_2.0.0, `nrta_*` under NRT_3.0.0.
const SCRIPT_V3: &str = "NRT_2.0.0 { global: nrt_*; fake_lib_id; local: *; };
NRT_3.0.0 { global: nrta_*; } NRT_2.0.0;
";

/// Another generation: the async calls under NRT_4.0.0, except `nrta_is_completed`
/// (NRT_3.0.0) and the v2 marker (NRT_2.0.0).
const SCRIPT_V4: &str =
    "NRT_2.0.0 { global: nrt_*; fake_lib_id; nrta_error_tracker_create; local: *; };
NRT_3.0.0 { global: nrta_is_completed; } NRT_2.0.0;
NRT_4.0.0 { global: nrta_*; } NRT_3.0.0;
";

/// Defines NRT_2.0.0 for `nrt_*` and leaves every `nrta_*` outside any version node.
const SCRIPT_NRTA_UNVERSIONED: &str = "NRT_2.0.0 { global: nrt_*; fake_lib_id; };
";

struct VersionedLibs {
    v3: PathBuf,
    v4: PathBuf,
    nrta_unversioned: PathBuf,
    plain: PathBuf,
}

fn versioned_libs() -> &'static VersionedLibs {
    static LIBS: OnceLock<VersionedLibs> = OnceLock::new();
    LIBS.get_or_init(|| {
        let root = build_root().join("v");
        VersionedLibs {
            v3: build_fake("FAKE_V", root.join("libv3.so"), Some(SCRIPT_V3)),
            v4: build_fake("FAKE_V", root.join("libv4.so"), Some(SCRIPT_V4)),
            nrta_unversioned: build_fake(
                "FAKE_V",
                root.join("libnrta_unversioned.so"),
                Some(SCRIPT_NRTA_UNVERSIONED),
            ),
            plain: build_fake("FAKE_V", root.join("libplain.so"), None),
        }
    })
}

/// What plain `dlsym` finds in `path`, independently of nrt-sys.
fn dlsym_finds(path: &Path, name: &str) -> bool {
    // SAFETY: the stand-ins' initialisers are the C runtime's only.
    let lib = unsafe { libloading::Library::new(path) }.unwrap();
    // SAFETY: only the address is read.
    unsafe { lib.get::<*mut std::ffi::c_void>(name.as_bytes()) }.is_ok()
}

/// The table's names that are present, as strings.
fn present(lib: &Library) -> Vec<&'static str> {
    lib.fns()
        .presence()
        .iter()
        .filter(|(_, p)| *p)
        .map(|(n, _)| n.to_str().unwrap())
        .collect()
}

fn call_get_sequence(lib: &Library) -> u64 {
    let get_sequence = lib
        .fns()
        .nrta_get_sequence
        .expect("nrta_get_sequence bound");
    let mut seq = 0;
    // SAFETY: FAKE_V's nrta_get_sequence writes one nrta_seq_t through the pointer given.
    let status = unsafe { get_sequence(5, 1, 0, &mut seq) };
    assert_eq!(status, nrt_sys::NRT_SUCCESS);
    seq
}

#[test]
fn nrta_functions_under_nrt_3_0_0_are_bound_and_callable() {
    let libs = versioned_libs();
    let lib = Library::open(&libs.v3).unwrap();
    assert!(lib.defines_symbol_versions());
    assert_eq!(
        present(lib),
        [
            "nrt_close",
            "nrt_init",
            "nrta_execute_schedule",
            "nrta_get_sequence",
            "nrta_is_completed"
        ]
    );
    assert_eq!(call_get_sequence(lib), 3005);
    assert!(lib.has_symbol(c"nrta_execute_schedule"));
    assert!(lib.has_symbol(c"nrta_error_tracker_create"));
    assert_eq!(lib_id(lib), 'V');
}

#[test]
fn nrta_functions_of_another_version_node_are_none() {
    let libs = versioned_libs();
    let lib = Library::open(&libs.v4).unwrap();
    assert!(lib.defines_symbol_versions());
    // Plain dlsym would have bound them.
    for name in ["nrta_execute_schedule", "nrta_get_sequence"] {
        assert!(dlsym_finds(&libs.v4, name), "{name}");
    }
    assert!(lib.fns().nrta_execute_schedule.is_none());
    assert!(lib.fns().nrta_get_sequence.is_none());
    // The one async call under NRT_3.0.0 is bound; nrt_* take the default version.
    assert_eq!(present(lib), ["nrt_close", "nrt_init", "nrta_is_completed"]);
    // symbol/has_symbol agree with the table for table names...
    assert_eq!(lib.symbol(c"nrta_execute_schedule"), None);
    assert!(!lib.has_symbol(c"nrta_get_sequence"));
    assert!(lib.has_symbol(c"nrta_is_completed"));
    // ...and find names outside the table by their default version (the v2 marker here
    // is under NRT_2.0.0).
    assert!(lib.has_symbol(c"nrta_error_tracker_create"));
    assert!(lib.has_symbol(c"fake_lib_id"));
}

#[test]
fn nrta_functions_outside_any_node_of_a_versioned_library_are_none() {
    let libs = versioned_libs();
    let lib = Library::open(&libs.nrta_unversioned).unwrap();
    assert!(lib.defines_symbol_versions());
    assert!(dlsym_finds(&libs.nrta_unversioned, "nrta_execute_schedule"));
    assert_eq!(present(lib), ["nrt_close", "nrt_init"]);
}

#[test]
fn an_unversioned_library_is_looked_up_with_plain_dlsym() {
    let libs = versioned_libs();
    let lib = Library::open(&libs.plain).unwrap();
    assert!(!lib.defines_symbol_versions());
    assert_eq!(
        present(lib),
        [
            "nrt_close",
            "nrt_init",
            "nrta_execute_schedule",
            "nrta_get_sequence",
            "nrta_is_completed"
        ]
    );
    assert_eq!(call_get_sequence(lib), 3005);
    assert!(lib.has_symbol(c"nrta_error_tracker_create"));
    let (a, b) = fake_libs();
    for path in [a, b] {
        assert!(!Library::open(path).unwrap().defines_symbol_versions());
    }
}
