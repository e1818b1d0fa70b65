//! The seed corpus of the `neff_reader` fuzz target (`fuzz/corpus/neff_reader`), made by
//! the writer: `NEFF_WRITE_CORPUS=1 cargo test -p neuron-neff --test fuzz_corpus`
//! rewrites it; otherwise this checks that every seed still reads as the writer's model,
//! and that every crafted seed (`crafted::seeds`: huge tar extension entries, a wrong
//! hash) is still refused with a size or hash error.

mod crafted;

use neuron_neff::{DType, Neff, NeffError, NeffWriter, Packaging};
use std::path::PathBuf;

fn seeds() -> Vec<(&'static str, NeffWriter)> {
    vec![
        (
            "one_f16.neff",
            NeffWriter::new("file.neff")
                .input("x", DType::F16, &[2, 2])
                .input("y", DType::F16, &[2, 2])
                .output("output0", DType::F16, &[2, 2]),
        ),
        (
            "mixed_signature_outputs.neff",
            NeffWriter::new("mixed")
                .input("ids", DType::I64, &[1, 8])
                .input("emb", DType::BF16, &[8, 4])
                .input("scale", DType::F32, &[])
                .output("logits", DType::F32, &[1, 8, 3])
                .output("mask", DType::U8, &[8])
                .signature_outputs(true)
                .target("inf2"),
        ),
        (
            "two_core_v1.neff",
            NeffWriter::new("tp2")
                .input("a", DType::I32, &[4])
                .output("b", DType::U16, &[4])
                .cores(2)
                .packaging(Packaging::V1),
        ),
    ]
}

#[test]
fn seeds_are_the_writers_models() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/neff_reader");
    let write = std::env::var_os("NEFF_WRITE_CORPUS").is_some();
    for (file, writer) in seeds() {
        let bytes = writer.build().unwrap();
        let path = dir.join(file);
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let seed =
            Neff::open(&path).unwrap_or_else(|e| panic!("{e} (rewrite with NEFF_WRITE_CORPUS=1)"));
        let fresh = Neff::parse(&bytes).unwrap();
        assert_eq!(seed.inputs(), fresh.inputs(), "{file}");
        assert_eq!(seed.outputs(), fresh.outputs(), "{file}");
        assert_eq!(seed.header().num_tpb, fresh.header().num_tpb, "{file}");
    }
}

#[test]
fn crafted_seeds_are_refused_by_size_or_hash() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/neff_reader");
    let write = std::env::var_os("NEFF_WRITE_CORPUS").is_some();
    for (file, bytes) in crafted::seeds() {
        let path = dir.join(&file);
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let seed = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{file}: {e} (rewrite with NEFF_WRITE_CORPUS=1)"));
        assert!(seed.len() < 64 << 10, "{file}: {} bytes", seed.len());
        let e = Neff::open(&path).unwrap_err();
        assert!(
            matches!(e, NeffError::TooLarge { .. } | NeffError::BadHash { .. }),
            "{file}: {e}"
        );
    }
}
