//! Reader and writer of NEFF files, the compiled models the AWS Neuron compiler writes
//! and `libnrt` loads.
//!
//! A NEFF is a 1024-byte header ([`Header`]: packaging version, sizes, payload hash,
//! core count, name) followed by a gzip'd tar payload holding `neff.json` (the model's
//! graph and signature), `info.json` (compiler version), `kelf-0.json` (target) and the
//! engines' instruction streams. [`Neff`] reads what a program serving the model needs
//! to know without hardware: the inputs and outputs (names, dtypes, shapes, byte
//! sizes), the cores it needs, the compiler version and target. [`NeffWriter`] writes
//! files in the same format (with a signature and no instructions), for tests and
//! simulators.
//!
//! ```
//! use neuron_neff::{DType, Neff, NeffWriter};
//!
//! let bytes = NeffWriter::new("classifier")
//!     .input("pixels", DType::F16, &[1, 3, 224, 224])
//!     .output("logits", DType::F32, &[1, 1000])
//!     .target("trn1")
//!     .build()?;
//! let neff = Neff::parse(&bytes)?;
//! assert_eq!(neff.inputs()[0].name, "pixels");
//! assert_eq!(neff.inputs()[0].byte_size, 2 * 3 * 224 * 224);
//! assert_eq!(neff.outputs()[0].dtype, DType::F32);
//! assert_eq!(neff.target(), Some("trn1"));
//! assert!(neff.hash_checked());
//! # Ok::<(), neuron_neff::NeffError>(())
//! ```
//!
//! Every size read from a file is bounded ([`Limits`]) before anything is allocated (the
//! tar extension entries too: GNU long names, PAX headers), the payload hash is checked
//! before anything is decompressed, and no input makes the reader panic: a bad file gives a [`NeffError`] naming the byte
//! offset, the archive entry or the JSON field that is wrong.
//!
//! The `neff-inspect` program of this crate prints a NEFF's summary (`--json` for
//! scripts).

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod archive;
mod dtype;
mod error;
mod graph;
mod header;
mod payload;
mod writer;

pub use dtype::DType;
pub use error::{NeffError, Result};
pub use graph::{MAX_RANK, MAX_TENSOR_BYTES, MAX_TENSOR_NAME, TensorSpec};
pub use header::{HEADER_SIZE, Header, Packaging, wrap};
pub use payload::Limits;
pub use writer::NeffWriter;

use graph::Doc;
use std::collections::BTreeMap;
use std::io::{Read, Seek};
use std::path::Path;

/// The graph and signature entry.
pub const NEFF_JSON: &str = "neff.json";
/// The compiler information entry.
pub const INFO_JSON: &str = "info.json";
/// The first kernel ELF description (target, graphs).
pub const KELF_JSON: &str = "kelf-0.json";

/// How [`Neff::parse_with`] and [`Neff::open_with`] read a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseOptions {
    /// Check the payload hash (default: yes).
    pub verify_hash: bool,
    /// Size bounds.
    pub limits: Limits,
    /// Other archive entries to keep in memory (see [`Neff::entry`]); each at most
    /// `limits.max_entry` bytes.
    pub keep_entries: Vec<String>,
}

impl Default for ParseOptions {
    fn default() -> ParseOptions {
        ParseOptions {
            verify_hash: true,
            limits: Limits::default(),
            keep_entries: Vec::new(),
        }
    }
}

/// A NEFF file's header, compiler information and signature.
#[derive(Clone, Debug)]
pub struct Neff {
    header: Header,
    hash_checked: bool,
    tool_version: Option<String>,
    info_name: Option<String>,
    target: Option<String>,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
    entries: BTreeMap<String, Vec<u8>>,
}

impl Neff {
    /// Reads a whole NEFF file held in memory, checking its hash.
    ///
    /// # Errors
    ///
    /// A [`NeffError`] naming what is wrong: a truncated file, a bad header, a bad hash,
    /// a payload that is not a gzip'd tar, no `neff.json`, bad JSON, an unknown dtype,
    /// sizes above the [`Limits`].
    pub fn parse(bytes: &[u8]) -> Result<Neff> {
        Neff::parse_with(bytes, &ParseOptions::default())
    }

    /// [`Neff::parse`] with options (hash check off, other limits, entries to keep).
    ///
    /// # Errors
    ///
    /// As [`Neff::parse`].
    pub fn parse_with(bytes: &[u8], options: &ParseOptions) -> Result<Neff> {
        let (header, payload) = Header::split(bytes)?;
        Neff::read(header, std::io::Cursor::new(payload), options)
    }

    /// Reads the NEFF file at `path`, checking its hash. The payload is streamed: only
    /// the JSON entries are kept in memory.
    ///
    /// # Errors
    ///
    /// [`NeffError::Io`] when the file cannot be read, else as [`Neff::parse`].
    pub fn open(path: impl AsRef<Path>) -> Result<Neff> {
        Neff::open_with(path, &ParseOptions::default())
    }

    /// [`Neff::open`] with options.
    ///
    /// # Errors
    ///
    /// As [`Neff::open`].
    pub fn open_with(path: impl AsRef<Path>, options: &ParseOptions) -> Result<Neff> {
        let path = path.as_ref();
        let io = |source| NeffError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut head = Vec::with_capacity(HEADER_SIZE);
        (&mut file)
            .take(HEADER_SIZE as u64)
            .read_to_end(&mut head)
            .map_err(io)?;
        if head.len() < HEADER_SIZE {
            return Err(NeffError::TooShort {
                len,
                header: HEADER_SIZE as u64,
            });
        }
        let header = Header::parse(&head)?;
        header.check_len(len)?;
        Neff::read(header, std::io::BufReader::new(file), options)
    }

    fn read(header: Header, payload: impl Read + Seek, options: &ParseOptions) -> Result<Neff> {
        let mut wanted = vec![NEFF_JSON, INFO_JSON, KELF_JSON];
        wanted.extend(options.keep_entries.iter().map(String::as_str));
        let mut entries = payload::read(
            &header,
            payload,
            options.verify_hash,
            &wanted,
            &options.limits,
        )?;
        let seen = entries.seen;
        let neff_json = entries
            .kept
            .remove(NEFF_JSON)
            .ok_or(NeffError::MissingEntry {
                entry: NEFF_JSON,
                entries: seen,
            })?;
        let doc = Doc::parse(NEFF_JSON, &neff_json)?;
        let (inputs, outputs) = graph::signature(&doc)?;
        let (tool_version, info_name) = match entries.kept.remove(INFO_JSON) {
            Some(bytes) => {
                let info = Doc::parse(INFO_JSON, &bytes)?;
                (info.str_field("tool_version"), info.str_field("name"))
            }
            None => (None, None),
        };
        let target = match entries.kept.remove(KELF_JSON) {
            Some(bytes) => Doc::parse(KELF_JSON, &bytes)?.str_field("target"),
            None => None,
        };
        entries
            .kept
            .retain(|k, _| options.keep_entries.iter().any(|e| e == k));
        Ok(Neff {
            header,
            hash_checked: options.verify_hash,
            tool_version,
            info_name,
            target,
            inputs,
            outputs,
            entries: entries.kept,
        })
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Whether the payload hash was checked (and matched: a mismatch is an error).
    pub fn hash_checked(&self) -> bool {
        self.hash_checked
    }

    /// The model name: the header's (byte 220), else `info.json`'s `name`.
    pub fn name(&self) -> &str {
        match (&self.header.name, &self.info_name) {
            (h, Some(i)) if h.is_empty() => i,
            (h, _) => h,
        }
    }

    /// NeuronCores the model needs (`num_tpb`, header byte 168).
    pub fn cores(&self) -> u32 {
        self.header.num_tpb
    }

    /// The compiler version (`info.json`'s `tool_version`), if present.
    pub fn tool_version(&self) -> Option<&str> {
        self.tool_version.as_deref()
    }

    /// The target the model was compiled for (`kelf-0.json`'s `target`), if present.
    pub fn target(&self) -> Option<&str> {
        self.target.as_deref()
    }

    /// The inputs, in signature order.
    pub fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }

    /// The outputs, in signature (or graph head) order.
    pub fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }

    /// An entry named in [`ParseOptions::keep_entries`], if the archive has it.
    pub fn entry(&self, name: &str) -> Option<&[u8]> {
        self.entries.get(name).map(Vec::as_slice)
    }
}

/// README.md's code blocks, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
