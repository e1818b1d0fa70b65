//! The C headers are valid C and C++, declare everything in the ABI notes, and lay
//! out every struct exactly as the Rust bindings do (gcc's view against bindgen's).

use std::path::{Path, PathBuf};
use std::process::Command;

fn include_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("include")
}

fn c_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/headers_complete.c")
}

fn compiler(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not run {cmd:?}: {e} (a C compiler is needed)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn headers_compile_as_strict_c_and_cpp_with_every_declaration() {
    let dir = tempfile::tempdir().unwrap();
    run_ok(
        Command::new(compiler("CC", "cc"))
            .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-c"])
            .arg("-I")
            .arg(include_dir())
            .arg(c_source())
            .arg("-o")
            .arg(dir.path().join("c.o")),
    );
    run_ok(
        Command::new(compiler("CXX", "c++"))
            .args([
                "-x",
                "c++",
                "-std=c++17",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-c",
            ])
            .arg("-I")
            .arg(include_dir())
            .arg(c_source())
            .arg("-o")
            .arg(dir.path().join("cpp.o")),
    );
}

#[test]
fn c_check_covers_every_function_in_the_table() {
    let text = std::fs::read_to_string(c_source()).unwrap();
    for name in nrt_sys::NrtFns::NAMES {
        let name = name.to_str().unwrap();
        assert!(
            text.contains(&format!("(any_fn){name},")),
            "tests/c/headers_complete.c does not reference {name}"
        );
    }
    assert_eq!(text.matches("(any_fn)nrt").count(), nrt_sys::NrtFns::LEN);
}

#[test]
fn struct_layouts_match_gcc() {
    use nrt_sys::*;
    use std::mem::{offset_of, size_of};
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("layout");
    run_ok(
        Command::new(compiler("CC", "cc"))
            .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-DLAYOUT_ONLY"])
            .arg("-I")
            .arg(include_dir())
            .arg(c_source())
            .arg("-o")
            .arg(&exe),
    );
    let printed = run_ok(&mut Command::new(&exe));
    let c: std::collections::HashMap<&str, usize> = printed
        .lines()
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k, v.parse().unwrap())
        })
        .collect();
    let mut checked = 0;
    macro_rules! layout {
        ($t:ident: $($f:ident),*) => {{
            assert_eq!(c[stringify!($t)], size_of::<$t>(), "sizeof({})", stringify!($t));
            checked += 1;
            $(
                // bindgen renames a C field named after a Rust keyword (`type` -> `type_`).
                let key = format!("{}.{}", stringify!($t), stringify!($f).trim_end_matches('_'));
                assert_eq!(c[key.as_str()], offset_of!($t, $f), "offsetof {key}");
                checked += 1;
            )*
        }};
    }
    layout!(nrt_instance_info_t: family, size, arch_name, device_revision);
    layout!(nrt_version_t: rt_major, rt_minor, rt_patch, rt_maintenance, rt_detail, git_hash);
    layout!(nrt_tensor_info_t: name, usage, size, dtype, shape, ndim);
    layout!(nrt_tensor_info_array_t: tensor_count, tensor_array);
    layout!(nrt_model_info_t: vnc);
    layout!(nrt_vnc_memory_stats_t: bytes_used, bytes_limit);
    layout!(nrt_tensor_device_allocation_info_t: physical_address, size, hbm_index);
    layout!(nrt_tensor_batch_op_t: offset, size, buffer);
    layout!(nrt_tensor_batch_t: tensor, ops, num_ops);
    layout!(nrt_cc_comm_t: replica_group, rank, rank_n, ctx_device_id, ctx_device_count, vnc);
    layout!(nrt_tensor_list_t: tensors, num_tensors);
    layout!(ndebug_stream_event_header_t: data_size, type_, reserved);
    layout!(
        ndebug_stream_payload_debug_tensor_read_t: prefix,
        logical_nc_id,
        pipe,
        tensor_dtype,
        tensor_shape,
        tensor_data_size,
        reserved0,
        tensor_data
    );
    layout!(nrt_ucode_img: bin, size);
    layout!(nrt_ucode_info: iram, dram);
    assert_eq!(c.len(), checked, "every printed size and offset is checked");
}

/// nrt-abi.md section 8: as in the vendor's headers, `nrt.h` alone does not declare the
/// experimental collectives or the model information call; `nrt_experimental.h` does.
/// Redeclaring those names as something else compiles only if `nrt.h` left them out.
#[test]
fn experimental_declarations_are_not_in_nrt_h() {
    let dir = tempfile::tempdir().unwrap();
    let only_nrt = dir.path().join("only_nrt.c");
    std::fs::write(
        &only_nrt,
        "#include \"nrt/nrt.h\"\n\
         static int nrt_barrier, nrt_all_gather, nrt_get_model_info;\n\
         typedef int nrt_model_info_t;\n\
         int main(void) { nrt_model_info_t x = nrt_barrier + nrt_all_gather + nrt_get_model_info; return x; }\n",
    )
    .unwrap();
    run_ok(
        Command::new(compiler("CC", "cc"))
            .args(["-std=c11", "-Wall", "-Werror", "-c"])
            .arg("-I")
            .arg(include_dir())
            .arg(&only_nrt)
            .arg("-o")
            .arg(dir.path().join("a.o")),
    );
    let with_experimental = dir.path().join("with_experimental.c");
    std::fs::write(
        &with_experimental,
        "#include \"nrt/nrt.h\"\n#include \"nrt/nrt_experimental.h\"\n\
         static int nrt_barrier;\nint main(void) { return nrt_barrier; }\n",
    )
    .unwrap();
    let out = Command::new(compiler("CC", "cc"))
        .args(["-std=c11", "-c"])
        .arg("-I")
        .arg(include_dir())
        .arg(&with_experimental)
        .arg("-o")
        .arg(dir.path().join("b.o"))
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "nrt_experimental.h should declare nrt_barrier"
    );
}
