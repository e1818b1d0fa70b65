//! The run-time loader against small stand-in libraries built with the system C compiler.

use nrt_sys::{DEFAULT_PLACES, Library, NrtFns, Origin};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Builds the two stand-in libraries once: `a/libnrt.so.1` (FAKE_A) and `b/libfake_b.so` (FAKE_B).
fn fake_libs() -> &'static (PathBuf, PathBuf) {
    static LIBS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    LIBS.get_or_init(|| {
        // One folder per process: test runners may run these tests in parallel processes.
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("nrt-sys-fake-libs-{}", std::process::id()));
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let build = |define: &str, out: PathBuf| {
            std::fs::create_dir_all(out.parent().unwrap()).unwrap();
            let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
                .args(["-shared", "-fPIC", "-Wall", "-Wextra", "-Werror"])
                .arg(format!("-D{define}"))
                .arg("-I")
                .arg(manifest.join("include"))
                .arg(manifest.join("tests/c/fake_lib.c"))
                .arg("-o")
                .arg(&out)
                .status()
                .expect("a C compiler (cc) is needed to build the stand-in libraries");
            assert!(status.success(), "building {} failed", out.display());
            out
        };
        (
            build("FAKE_A", root.join("a/libnrt.so.1")),
            build("FAKE_B", root.join("b/libfake_b.so")),
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
