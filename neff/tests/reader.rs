//! The reader on files made by the writer and by hand: every field, and every error.

use neuron_neff::{
    DType, HEADER_SIZE, Header, Limits, Neff, NeffError, NeffWriter, Packaging, ParseOptions, wrap,
};

fn multi_dtype() -> NeffWriter {
    NeffWriter::new("mixed.neff")
        .input("tokens", DType::I64, &[2, 16])
        .input("scale", DType::F32, &[])
        .input("x_f16", DType::F16, &[2, 3, 4])
        .input("x_bf16", DType::BF16, &[4, 8])
        .output("logits", DType::F32, &[2, 16, 100])
        .output("mask", DType::U8, &[2, 16])
        .output("state", DType::BF16, &[4, 8])
        .target("inf2")
        .tool_version("2.23.6484.0+3b612583")
        .build_version("b1")
        .uuid([0xab; 16])
}

/// A container whose payload is a gzip'd tar of `files`.
fn container(packaging: Packaging, files: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (path, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        tar.append_data(&mut h, path, *bytes).unwrap();
    }
    let payload = tar.into_inner().unwrap().finish().unwrap();
    wrap(Header::new(packaging, "hand"), &payload)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn with_graph(neff_json: &str) -> Vec<u8> {
    container(Packaging::V2, &[("./neff.json", neff_json.as_bytes())])
}

#[test]
fn writer_output_reads_back_field_by_field() {
    let bytes = multi_dtype().build().unwrap();
    let neff = Neff::parse(&bytes).unwrap();
    let h = neff.header();
    assert_eq!(h.packaging, Packaging::V2);
    assert_eq!(h.data_size as usize, bytes.len() - HEADER_SIZE);
    assert_eq!((h.format_major, h.format_minor), (2, 0));
    assert_eq!(h.build_version, "b1");
    assert_eq!(h.uuid, [0xab; 16]);
    assert_eq!((h.num_tpb, h.requested_tpb), (1, 1));
    assert_eq!(neff.name(), "mixed.neff");
    assert!(neff.hash_checked());
    assert_eq!(neff.tool_version(), Some("2.23.6484.0+3b612583"));
    assert_eq!(neff.target(), Some("inf2"));
    let ins: Vec<_> = neff
        .inputs()
        .iter()
        .map(|t| (t.name.as_str(), t.dtype, t.shape.clone(), t.byte_size))
        .collect();
    assert_eq!(
        ins,
        [
            ("tokens", DType::I64, vec![2, 16], 256),
            ("scale", DType::F32, vec![], 4),
            ("x_f16", DType::F16, vec![2, 3, 4], 48),
            ("x_bf16", DType::BF16, vec![4, 8], 64),
        ]
    );
    // The signature lists no outputs (as the compiler writes): they come from the graph.
    let outs: Vec<_> = neff
        .outputs()
        .iter()
        .map(|t| (t.name.as_str(), t.dtype, t.shape.clone(), t.byte_size))
        .collect();
    assert_eq!(
        outs,
        [
            ("logits", DType::F32, vec![2, 16, 100], 12800),
            ("mask", DType::U8, vec![2, 16], 32),
            ("state", DType::BF16, vec![4, 8], 64),
        ]
    );
    // The same outputs when the signature lists them.
    let listed = Neff::parse(&multi_dtype().signature_outputs(true).build().unwrap()).unwrap();
    assert_eq!(listed.outputs(), neff.outputs());
}

#[test]
fn version_2_hash_is_md5_as_little_endian_words() {
    let bytes = multi_dtype().build().unwrap();
    let md5 = md5::compute(&bytes[HEADER_SIZE..]);
    for w in 0..4 {
        let word = &bytes[172 + 4 * w..176 + 4 * w];
        let expect: Vec<u8> = md5[4 * w..4 * w + 4].iter().rev().copied().collect();
        assert_eq!(word, expect.as_slice(), "word {w}");
    }
    assert_eq!(&bytes[188..204], &[0; 16]);
}

#[test]
fn version_1_uses_sha256_and_two_cores_are_read() {
    let bytes = multi_dtype()
        .packaging(Packaging::V1)
        .cores(2)
        .build()
        .unwrap();
    let sha = hmac_sha256::Hash::hash(&bytes[HEADER_SIZE..]);
    assert_eq!(&bytes[172..204], sha.as_slice());
    let neff = Neff::parse(&bytes).unwrap();
    assert_eq!(neff.header().packaging, Packaging::V1);
    assert_eq!(neff.cores(), 2);
    assert_eq!(neff.header().requested_tpb, 2);
}

#[test]
fn open_streams_the_file_and_agrees_with_parse() {
    let bytes = multi_dtype().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.neff");
    std::fs::write(&path, &bytes).unwrap();
    let a = Neff::open(&path).unwrap();
    let b = Neff::parse(&bytes).unwrap();
    assert_eq!(a.inputs(), b.inputs());
    assert_eq!(a.outputs(), b.outputs());
    assert_eq!(a.header(), b.header());
    let missing = Neff::open(dir.path().join("nope.neff")).unwrap_err();
    assert!(matches!(missing, NeffError::Io { .. }), "{missing}");
    assert!(missing.to_string().contains("nope.neff"), "{missing}");
    // A truncated file on disk: the same error as in memory.
    std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    assert!(matches!(
        Neff::open(&path).unwrap_err(),
        NeffError::Truncated { .. }
    ));
}

#[test]
fn short_truncated_and_padded_files_name_the_sizes() {
    let bytes = multi_dtype().build().unwrap();
    let n = bytes.len() as u64;
    let e = Neff::parse(&bytes[..100]).unwrap_err();
    assert!(
        matches!(
            e,
            NeffError::TooShort {
                len: 100,
                header: 1024
            }
        ),
        "{e}"
    );
    let e = Neff::parse(&bytes[..bytes.len() - 10]).unwrap_err();
    match &e {
        NeffError::Truncated {
            expected, found, ..
        } => assert_eq!((*expected, *found), (n, n - 10)),
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains("truncated"), "{e}");
    let mut longer = bytes.clone();
    longer.extend_from_slice(b"xyz");
    let e = Neff::parse(&longer).unwrap_err();
    assert!(matches!(e, NeffError::TrailingData { extra: 3, .. }), "{e}");
}

#[test]
fn header_fields_out_of_range_are_named_by_offset() {
    let bytes = multi_dtype().build().unwrap();
    let mut v3 = bytes.clone();
    v3[0] = 3;
    let e = Neff::parse(&v3).unwrap_err();
    assert!(
        matches!(e, NeffError::UnsupportedVersion { version: 3 }),
        "{e}"
    );
    assert!(e.to_string().contains("byte 0"), "{e}");
    let mut hs = bytes.clone();
    hs[8..16].copy_from_slice(&512u64.to_le_bytes());
    let e = Neff::parse(&hs).unwrap_err();
    assert!(
        matches!(e, NeffError::BadHeaderSize { found: 512, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("byte 8"), "{e}");
}

#[test]
fn corrupted_payload_is_a_bad_hash_unless_the_check_is_off() {
    let mut bytes = multi_dtype().build().unwrap();
    let last = bytes.len() - 20;
    bytes[last] ^= 0xff;
    let e = Neff::parse(&bytes).unwrap_err();
    match &e {
        NeffError::BadHash {
            algorithm,
            expected,
            found,
        } => {
            assert_eq!(*algorithm, "MD5");
            assert_eq!((expected.len(), found.len()), (32, 32));
            assert_ne!(expected, found);
        }
        other => panic!("{other}"),
    }
    // Without the hash check the damage is met by the decompressor (or not at all when
    // it is past what the reader needs): never reported as a bad hash.
    let off = ParseOptions {
        verify_hash: false,
        ..ParseOptions::default()
    };
    match Neff::parse_with(&bytes, &off) {
        Ok(neff) => assert!(!neff.hash_checked()),
        Err(e) => assert!(!matches!(e, NeffError::BadHash { .. }), "{e}"),
    }
    // A header hash that does not match an intact payload.
    let mut bytes = multi_dtype().build().unwrap();
    bytes[172] ^= 1;
    assert!(matches!(
        Neff::parse(&bytes).unwrap_err(),
        NeffError::BadHash { .. }
    ));
    assert!(Neff::parse_with(&bytes, &off).is_ok());
}

#[test]
fn payloads_that_are_not_a_gzipped_tar_are_named() {
    let e = Neff::parse(&wrap(Header::new(Packaging::V2, "t"), b"hello")).unwrap_err();
    match &e {
        NeffError::NotGzip { offset, start } => {
            assert_eq!((*offset, start.as_str()), (1024, "6865"))
        }
        other => panic!("{other}"),
    }
    let e = Neff::parse(&wrap(Header::new(Packaging::V2, "t"), b"")).unwrap_err();
    assert!(matches!(e, NeffError::NotGzip { .. }), "{e}");
    let mut bad = gzip(&[0u8; 4096]);
    let mid = bad.len() / 2;
    bad.truncate(mid);
    let e = Neff::parse(&wrap(Header::new(Packaging::V2, "t"), &bad)).unwrap_err();
    assert!(matches!(e, NeffError::BadGzip { .. }), "{e}");
    let e = Neff::parse(&wrap(Header::new(Packaging::V2, "t"), &gzip(&[b'x'; 1000]))).unwrap_err();
    assert!(matches!(e, NeffError::BadTar { .. }), "{e}");
}

#[test]
fn missing_neff_json_counts_the_entries() {
    let file = container(
        Packaging::V2,
        &[("info.json", b"{}"), ("sg00/def.json", b"{}")],
    );
    let e = Neff::parse(&file).unwrap_err();
    assert!(
        matches!(
            e,
            NeffError::MissingEntry {
                entry: "neff.json",
                entries: 2
            }
        ),
        "{e}"
    );
}

#[test]
fn bad_json_names_the_entry_and_field() {
    let e = Neff::parse(&with_graph("{")).unwrap_err();
    assert!(
        matches!(&e, NeffError::BadJson { entry, path, .. } if entry == "neff.json" && path == "$"),
        "{e}"
    );
    let sig = r#"{"metadata":{"signatures":{"default":{"inputs":
        {"x":{"id":0,"dtype":"float32","shape":[2,"three"]}}}}}}"#;
    let e = Neff::parse(&with_graph(sig)).unwrap_err();
    assert!(
        matches!(&e, NeffError::BadJson { path, .. } if path == "metadata.signatures.default.inputs.x.shape[1]"),
        "{e}"
    );
    let neg = sig.replace("\"three\"", "-1");
    assert!(Neff::parse(&with_graph(&neg)).is_err());
    let info = container(
        Packaging::V2,
        &[("neff.json", b"{}"), ("info.json", b"[1,")],
    );
    let e = Neff::parse(&info).unwrap_err();
    assert!(
        matches!(&e, NeffError::BadJson { entry, .. } if entry == "info.json"),
        "{e}"
    );
}

#[test]
fn unknown_dtype_string_is_named_with_its_path() {
    let sig = r#"{"metadata":{"signatures":{"default":{"inputs":
        {"x":{"id":0,"dtype":"complex64","shape":[2]}}}}}}"#;
    let e = Neff::parse(&with_graph(sig)).unwrap_err();
    match &e {
        NeffError::UnknownDType { entry, path, dtype } => {
            assert_eq!(entry, "neff.json");
            assert_eq!(path, "metadata.signatures.default.inputs.x.dtype");
            assert_eq!(dtype, "complex64");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn graph_without_signature_or_row_pointers_gives_inputs_then_outputs() {
    let graph = r#"{
        "nodes": [{"op":"null","name":"x","inputs":[]}, {"op":"null","name":"y","inputs":[]},
                  {"op":"tvm_op","name":"n","attrs":{"kelf":"kelf-0.json","output_names":["output0","aux"]},
                   "inputs":[[0,0,0],[1,0,0]]}],
        "arg_nodes": [0, 1],
        "heads": [[2,0,0],[2,1,0]],
        "attrs": {"shape": ["list_shape", [[1,4],[1,4],[1,4],[3]]],
                  "dltype": ["list_str", ["float16","float16","float16","int32"]]},
        "metadata": {"signatures": {"default": {"inputs": {}, "outputs": {}}}}
    }"#;
    let neff = Neff::parse(&with_graph(graph)).unwrap();
    let names: Vec<_> = neff.inputs().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["x", "y"]);
    let outs: Vec<_> = neff
        .outputs()
        .iter()
        .map(|t| (t.name.as_str(), t.dtype, t.byte_size))
        .collect();
    assert_eq!(outs, [("output0", DType::F16, 8), ("aux", DType::I32, 12)]);
    // No info.json / kelf-0.json: those fields are absent, not errors.
    assert_eq!((neff.tool_version(), neff.target()), (None, None));
}

#[test]
fn shape_and_dtype_lists_of_different_lengths_are_a_count_mismatch() {
    let graph = r#"{"nodes":[{"op":"null","name":"x"}],"arg_nodes":[0],"heads":[],
        "attrs":{"shape":["list_shape",[[1],[2]]],"dltype":["list_str",["float32"]]}}"#;
    let e = Neff::parse(&with_graph(graph)).unwrap_err();
    assert!(
        matches!(
            e,
            NeffError::CountMismatch {
                shapes: 2,
                dtypes: 1,
                ..
            }
        ),
        "{e}"
    );
    // An output whose entry neither list has.
    let graph = r#"{"nodes":[{"op":"null","name":"x"},{"op":"tvm_op","name":"n","attrs":{"output_names":["o"]}}],
        "arg_nodes":[0],"heads":[[1,0,0]],
        "attrs":{"shape":["list_shape",[[1]]],"dltype":["list_str",["float32"]]}}"#;
    let e = Neff::parse(&with_graph(graph)).unwrap_err();
    assert!(
        matches!(&e, NeffError::CountMismatch { shapes: 1, dtypes: 1, detail } if detail.contains("`o`")),
        "{e}"
    );
}

#[test]
fn sizes_above_the_limits_are_refused_before_allocation() {
    let bytes = multi_dtype().build().unwrap();
    let small_entry = ParseOptions {
        limits: Limits {
            max_entry: 64,
            ..Limits::default()
        },
        ..ParseOptions::default()
    };
    let e = Neff::parse_with(&bytes, &small_entry).unwrap_err();
    assert!(
        matches!(&e, NeffError::TooLarge { what, limit: 64, .. } if what.contains("neff.json")),
        "{e}"
    );
    // A gzip bomb: a 64 MiB entry of zeros (a few KiB compressed) before neff.json,
    // against a 1 MiB limit.
    let zeros = vec![0u8; 64 << 20];
    let bomb = container(
        Packaging::V2,
        &[("weights.bin", &zeros), ("neff.json", b"{}")],
    );
    assert!(bomb.len() < 1 << 20);
    let small = ParseOptions {
        limits: Limits {
            max_decompressed: 1 << 20,
            ..Limits::default()
        },
        ..ParseOptions::default()
    };
    let e = Neff::parse_with(&bomb, &small).unwrap_err();
    assert!(
        matches!(&e, NeffError::TooLarge { what, .. } if what == "decompressed payload"),
        "{e}"
    );
    let payload_limit = ParseOptions {
        limits: Limits {
            max_payload: 100,
            ..Limits::default()
        },
        ..ParseOptions::default()
    };
    let e = Neff::parse_with(&bytes, &payload_limit).unwrap_err();
    assert!(matches!(e, NeffError::TooLarge { .. }), "{e}");
    // A tensor whose byte size overflows.
    let sig = r#"{"metadata":{"signatures":{"default":{"inputs":
        {"x":{"id":0,"dtype":"int64","shape":[4294967295,4294967295,4294967295]}}}}}}"#;
    let e = Neff::parse(&with_graph(sig)).unwrap_err();
    assert!(
        matches!(&e, NeffError::BadJson { problem, .. } if problem.contains("larger than")),
        "{e}"
    );
}

#[test]
fn kept_entries_are_returned() {
    let bytes = multi_dtype()
        .entry("nrt-sim.txt", b"device_time_ns 5\n".to_vec())
        .build()
        .unwrap();
    let opts = ParseOptions {
        keep_entries: vec!["nrt-sim.txt".into()],
        ..ParseOptions::default()
    };
    let neff = Neff::parse_with(&bytes, &opts).unwrap();
    assert_eq!(neff.entry("nrt-sim.txt"), Some(&b"device_time_ns 5\n"[..]));
    assert_eq!(neff.entry("neff.json"), None);
}

#[test]
fn writer_refuses_what_a_neff_cannot_hold() {
    let dup = NeffWriter::new("m")
        .input("x", DType::F32, &[1])
        .output("x", DType::F32, &[1]);
    assert!(matches!(dup.build(), Err(NeffError::Invalid(m)) if m.contains("twice")));
    let long = NeffWriter::new("m").input("n".repeat(256), DType::F32, &[1]);
    assert!(matches!(long.build(), Err(NeffError::Invalid(_))));
    assert!(NeffWriter::new("").build().is_err());
    assert!(NeffWriter::new("m").cores(0).build().is_err());
    assert!(
        NeffWriter::new("m")
            .entry("neff.json", b"{}".to_vec())
            .build()
            .is_err()
    );
    let huge = NeffWriter::new("m").input("x", DType::U64, &[1 << 20, 1 << 20, 1 << 20]);
    assert!(matches!(huge.build(), Err(NeffError::TooLarge { .. })));
}

#[test]
fn every_prefix_and_many_bit_flips_give_errors_not_panics() {
    let bytes = multi_dtype().build().unwrap();
    for len in 0..bytes.len() {
        assert!(Neff::parse(&bytes[..len]).is_err(), "prefix {len}");
    }
    let off = ParseOptions {
        verify_hash: false,
        ..ParseOptions::default()
    };
    for i in (HEADER_SIZE..bytes.len()).step_by(3) {
        let mut b = bytes.clone();
        b[i] ^= 0x5a;
        assert!(
            Neff::parse(&b).is_err(),
            "flip at {i} passed the hash check"
        );
        let _ = Neff::parse_with(&b, &off);
    }
}
