//! NEFF files crafted by hand, byte by byte: tar extension entries (GNU long names,
//! PAX headers) that claim or hold more than a reader may keep, and payloads whose
//! hash is wrong. Shared by `bounded_memory.rs` and `fuzz_corpus.rs`.

#![allow(dead_code)] // each test file uses part of it

use neuron_neff::{Header, Packaging, wrap};
use std::io::Write;

/// The tar types of the extension entries: GNU long name and long link, PAX local and
/// global headers.
pub const EXTENSIONS: [u8; 4] = [b'L', b'K', b'x', b'g'];

/// A GNU tar header for `name` of type `kind` announcing `size` bytes (octal when it
/// fits 11 digits, else GNU base-256), with its checksum.
pub fn header(name: &str, kind: u8, size: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    if size < 1 << 33 {
        h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    } else {
        h[124] = 0x80;
        h[128..136].copy_from_slice(&size.to_be_bytes());
    }
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = kind;
    h[257..265].copy_from_slice(b"ustar  \0");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// A POSIX ustar header for `prefix/name` (the name split as ustar stores names longer
/// than 100 bytes) of a regular file of `size` bytes.
pub fn ustar_header(prefix: &str, name: &str, size: u64) -> [u8; 512] {
    let mut h = header(name, b'0', size);
    h[257..265].copy_from_slice(b"ustar\x0000");
    h[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// Appends entry `name` of type `kind` holding `data` (padded to 512 bytes).
pub fn entry(tar: &mut Vec<u8>, name: &str, kind: u8, data: &[u8]) {
    tar.extend_from_slice(&header(name, kind, data.len() as u64));
    tar.extend_from_slice(data);
    tar.resize(tar.len().next_multiple_of(512), 0);
}

/// The end of an archive: two zero blocks.
pub fn end(tar: &mut Vec<u8>) {
    tar.resize(tar.len() + 1024, 0);
}

/// A NEFF (packaging version 2, hash sealed) whose payload is `gzip`.
pub fn neff(gzip: &[u8]) -> Vec<u8> {
    wrap(Header::new(Packaging::V2, "crafted"), gzip)
}

/// `parts` gzip'd as one stream (each part written as it comes: a part of `Zeros(n)`
/// is `n` zero bytes, never held in memory).
pub fn gzip(parts: &[Part<'_>]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let zeros = [0u8; 1 << 16];
    for part in parts {
        match part {
            Part::Bytes(b) => gz.write_all(b).unwrap(),
            &Part::Zeros(mut n) => {
                while n > 0 {
                    let k = n.min(zeros.len() as u64) as usize;
                    gz.write_all(&zeros[..k]).unwrap();
                    n -= k as u64;
                }
            }
        }
    }
    gz.finish().unwrap()
}

/// A piece of the decompressed payload.
pub enum Part<'a> {
    /// These bytes.
    Bytes(&'a [u8]),
    /// This many zero bytes.
    Zeros(u64),
}

/// A NEFF whose archive starts with an extension entry of type `kind` announcing
/// `claimed` bytes and holding `held` zero bytes, then a `neff.json`: what a reader that
/// reads extension entries whole before looking at their size allocates `held` bytes
/// for (or fails at the end of the stream when `held < claimed`).
pub fn with_extension(kind: u8, claimed: u64, held: u64) -> Vec<u8> {
    let head = header("././@LongLink", kind, claimed);
    let mut rest = Vec::new();
    if held >= claimed {
        // The entry's padding, then a neff.json and the end.
        let pad = claimed.next_multiple_of(512) - claimed;
        rest.resize(pad as usize, 0);
        entry(&mut rest, "neff.json", b'0', b"{}");
        end(&mut rest);
    }
    neff(&gzip(&[
        Part::Bytes(&head),
        Part::Zeros(held),
        Part::Bytes(&rest),
    ]))
}

/// A NEFF whose only entry is a `neff.json` of `json_bytes` bytes (`{}` and spaces: valid
/// JSON, so a reader keeps it whole), hash sealed; flip a hash byte to make it wrong.
pub fn big_json(json_bytes: u64) -> Vec<u8> {
    let head = header("neff.json", b'0', json_bytes);
    let spaces = vec![b' '; 1 << 16];
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&head).unwrap();
    gz.write_all(b"{}").unwrap();
    let mut left = json_bytes - 2;
    while left > 0 {
        let k = left.min(spaces.len() as u64) as usize;
        gz.write_all(&spaces[..k]).unwrap();
        left -= k as u64;
    }
    let mut tail = vec![0u8; (json_bytes.next_multiple_of(512) - json_bytes) as usize];
    end(&mut tail);
    gz.write_all(&tail).unwrap();
    neff(&gz.finish().unwrap())
}

/// The crafted seeds of the fuzz corpus (`fuzz/corpus/neff_reader`), small files each:
/// an extension entry of every type announcing 1 TiB, or holding 2 MiB, and a payload
/// whose hash is wrong.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for kind in EXTENSIONS {
        let k = kind as char;
        out.push((
            format!("ext_{k}_1tib.neff"),
            with_extension(kind, 1 << 40, 512),
        ));
        out.push((
            format!("ext_{k}_2mib.neff"),
            with_extension(kind, 2 << 20, 2 << 20),
        ));
    }
    out.push((
        "wrong_hash_2mib_json.neff".into(),
        wrong_hash(big_json(2 << 20)),
    ));
    out
}

/// `bytes` with the payload hash (header byte 172) wrong.
pub fn wrong_hash(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes[172] ^= 0xff;
    bytes
}
