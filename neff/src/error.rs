//! [`NeffError`]: what is wrong with a NEFF file, naming the byte offset or the entry.

use std::path::PathBuf;

/// Why a NEFF could not be read (or written). Each variant names the byte offset, the
/// archive entry or the JSON field that is wrong, with the values found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NeffError {
    /// The file is shorter than the 1024-byte header.
    #[error("truncated NEFF: {len} bytes, shorter than the {header}-byte header")]
    TooShort {
        /// File length in bytes.
        len: u64,
        /// Header size (1024).
        header: u64,
    },
    /// The file ends before the payload the header announces (header byte 16).
    #[error(
        "truncated NEFF: the header (data size at byte 16) announces {data_size} payload bytes, so {expected} bytes in all, but the file has {found}"
    )]
    Truncated {
        /// Payload size from the header.
        data_size: u64,
        /// Header plus payload size.
        expected: u64,
        /// File length.
        found: u64,
    },
    /// More bytes follow the payload than the header announces.
    #[error(
        "NEFF has {found} bytes, but its header (data size at byte 16) announces {data_size} payload bytes, so {expected} bytes in all: {extra} extra bytes at the end"
    )]
    TrailingData {
        /// Payload size from the header.
        data_size: u64,
        /// Header plus payload size.
        expected: u64,
        /// File length.
        found: u64,
        /// `found - expected`.
        extra: u64,
    },
    /// Packaging version (header byte 0) other than 1 or 2.
    #[error(
        "unsupported NEFF packaging version {version} at byte 0 (known: 1 = SHA-256 hashed, 2 = MD5 hashed)"
    )]
    UnsupportedVersion {
        /// The value at byte 0.
        version: u64,
    },
    /// Header size (header byte 8) other than 1024.
    #[error("bad NEFF header size {found} at byte 8 (expected {expected})")]
    BadHeaderSize {
        /// The value at byte 8.
        found: u64,
        /// 1024.
        expected: u64,
    },
    /// The payload's hash differs from the one in the header (bytes 172..204).
    #[error(
        "bad NEFF hash: the header (byte 172) holds {algorithm} {expected}, the payload's is {found} (file corrupted?)"
    )]
    BadHash {
        /// `"MD5"` (packaging version 2) or `"SHA-256"` (version 1).
        algorithm: &'static str,
        /// The hash in the header, as hex (for MD5 in `md5sum` byte order).
        expected: String,
        /// The hash of the payload, as hex.
        found: String,
    },
    /// The payload (from byte 1024) is not gzip data.
    #[error(
        "NEFF payload at byte {offset} is not gzip data (starts {start}; a NEFF's payload is a gzip'd tar)"
    )]
    NotGzip {
        /// File offset of the payload (1024).
        offset: u64,
        /// The first payload bytes, as hex.
        start: String,
    },
    /// The gzip stream is damaged.
    #[error("NEFF payload: bad gzip data after {decompressed} decompressed bytes: {message}")]
    BadGzip {
        /// Bytes decompressed before the failure.
        decompressed: u64,
        /// The decoder's message.
        message: String,
    },
    /// The decompressed payload is not a valid tar archive.
    #[error("NEFF payload: bad tar archive ({context}): {message}")]
    BadTar {
        /// Where: after which entry, or which entry.
        context: String,
        /// The archive reader's message.
        message: String,
    },
    /// A required archive entry is missing.
    #[error("NEFF payload has no `{entry}` entry ({entries} entries seen)")]
    MissingEntry {
        /// The entry name (`neff.json`).
        entry: &'static str,
        /// Number of entries in the archive.
        entries: usize,
    },
    /// A JSON entry is not valid JSON, or a field has the wrong form.
    #[error("NEFF entry `{entry}`: bad JSON at `{path}`: {problem}")]
    BadJson {
        /// Archive entry (`neff.json`, `info.json`, `kelf-0.json`).
        entry: String,
        /// Path of the field (`metadata.signatures.default.inputs.x.shape[1]`), `$` for
        /// the document.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// A dtype string the reader does not know.
    #[error("NEFF entry `{entry}`: unknown dtype {dtype:?} at `{path}`")]
    UnknownDType {
        /// Archive entry.
        entry: String,
        /// Path of the field.
        path: String,
        /// The string found.
        dtype: String,
    },
    /// `attrs.shape` and `attrs.dltype` of the graph list different numbers of entries,
    /// or a tensor refers to an entry neither has.
    #[error(
        "NEFF entry `neff.json`: attrs.shape has {shapes} entries and attrs.dltype {dtypes}{detail}"
    )]
    CountMismatch {
        /// Entries in `attrs.shape`.
        shapes: usize,
        /// Entries in `attrs.dltype`.
        dtypes: usize,
        /// What needed more (empty when the lists merely differ).
        detail: String,
    },
    /// A size in the file is larger than the reader accepts.
    #[error("NEFF {what} is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// What (payload, decompressed payload, entry `neff.json`, tensor `x`).
        what: String,
        /// Its size (or the size reached so far).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The writer was given something a NEFF cannot hold.
    #[error("cannot write NEFF: {0}")]
    Invalid(String),
    /// The file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with [`NeffError`].
pub type Result<T, E = NeffError> = std::result::Result<T, E>;

/// `bytes` as lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
