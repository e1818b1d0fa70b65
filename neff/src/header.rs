//! The 1024-byte NEFF header: layout, reading, writing and the payload hash.
//!
//! Layout (little-endian; byte offset: size), as read from compiler-made NEFFs (see
//! `shared/nrt-abi.md` section 5 of the project): 0:8 packaging version (2 = MD5, 1 =
//! SHA-256), 8:8 header size (1024), 16:8 payload size, 24:8 / 32:8 format version
//! major / minor, 40:128 build version text, 168:4 cores needed (`num_tpb`), 172:32
//! payload hash (version 2: the 16-byte MD5 as four little-endian 32-bit words, then 16
//! zero bytes; version 1: the 32-byte SHA-256), 204:16 uuid, 220:256 model name
//! (NUL-terminated), 476:4 requested core count, 480..1024 fields not understood (zero
//! when written, ignored when read).

use crate::error::{NeffError, Result, hex};

/// Bytes in the header.
pub const HEADER_SIZE: usize = 1024;

const OFF_PACKAGING: usize = 0;
const OFF_HEADER_SIZE: usize = 8;
const OFF_DATA_SIZE: usize = 16;
const OFF_FORMAT_MAJOR: usize = 24;
const OFF_FORMAT_MINOR: usize = 32;
const OFF_BUILD_VERSION: usize = 40;
const BUILD_VERSION_LEN: usize = 128;
const OFF_NUM_TPB: usize = 168;
const OFF_HASH: usize = 172;
const HASH_LEN: usize = 32;
const OFF_UUID: usize = 204;
const OFF_NAME: usize = 220;
const NAME_LEN: usize = 256;
const OFF_REQUESTED_TPB: usize = 476;

/// The packaging version (header byte 0): how the payload is hashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Packaging {
    /// Version 1: SHA-256 of the payload.
    V1,
    /// Version 2 (what the Neuron compiler writes): MD5 of the payload.
    V2,
}

impl Packaging {
    /// The number stored at byte 0.
    pub fn number(self) -> u64 {
        match self {
            Packaging::V1 => 1,
            Packaging::V2 => 2,
        }
    }

    /// The packaging for the number at byte 0, if known.
    pub fn from_number(n: u64) -> Option<Packaging> {
        match n {
            1 => Some(Packaging::V1),
            2 => Some(Packaging::V2),
            _ => None,
        }
    }

    /// `"SHA-256"` or `"MD5"`.
    pub fn hash_algorithm(self) -> &'static str {
        match self {
            Packaging::V1 => "SHA-256",
            Packaging::V2 => "MD5",
        }
    }
}

/// A payload hash being computed, of the algorithm a packaging version uses.
#[derive(Clone)]
pub(crate) enum Hasher {
    Md5(md5::Context),
    Sha256(hmac_sha256::Hash),
}

impl Hasher {
    pub(crate) fn new(packaging: Packaging) -> Hasher {
        match packaging {
            Packaging::V1 => Hasher::Sha256(hmac_sha256::Hash::new()),
            Packaging::V2 => Hasher::Md5(md5::Context::new()),
        }
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Md5(h) => h.consume(bytes),
            Hasher::Sha256(h) => h.update(bytes),
        }
    }

    /// The digest in its usual byte order (`md5sum`, `sha256sum`).
    pub(crate) fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Md5(h) => h.finalize().0.to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

/// The header of a NEFF file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Packaging version (byte 0).
    pub packaging: Packaging,
    /// Payload bytes after the header (byte 16).
    pub data_size: u64,
    /// Format version major (byte 24).
    pub format_major: u64,
    /// Format version minor (byte 32).
    pub format_minor: u64,
    /// Build version text (byte 40, up to 128 bytes; empty in compiler-made NEFFs seen).
    pub build_version: String,
    /// NeuronCores the model needs (`num_tpb`, byte 168).
    pub num_tpb: u32,
    /// The hash field as stored (byte 172, 32 bytes).
    pub hash_field: [u8; HASH_LEN],
    /// Model uuid (byte 204).
    pub uuid: [u8; 16],
    /// Model name (byte 220, up to 255 bytes and a NUL).
    pub name: String,
    /// Requested core count (byte 476).
    pub requested_tpb: u32,
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(w)
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(w)
}

/// The text of a NUL-padded field (up to the first NUL; invalid UTF-8 replaced).
fn text_at(b: &[u8], off: usize, len: usize) -> String {
    let field = &b[off..off + len];
    let end = field.iter().position(|&c| c == 0).unwrap_or(len);
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// Copies at most `max` bytes of `text` (cut at a character boundary) into `out`.
fn put_text(out: &mut [u8], off: usize, max: usize, text: &str) {
    let mut n = text.len().min(max);
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    out[off..off + n].copy_from_slice(&text.as_bytes()[..n]);
}

impl Header {
    /// A header for a payload of `packaging`, named `name`, for one core, format
    /// version 2.0 (what the compiler writes); size and hash are set by [`Header::seal`].
    pub fn new(packaging: Packaging, name: &str) -> Header {
        Header {
            packaging,
            data_size: 0,
            format_major: 2,
            format_minor: 0,
            build_version: String::new(),
            num_tpb: 1,
            hash_field: [0; HASH_LEN],
            uuid: [0; 16],
            name: name.to_owned(),
            requested_tpb: 1,
        }
    }

    /// Reads the header at the start of `bytes` (the payload size is not checked against
    /// the file here: see [`Header::split`]).
    ///
    /// # Errors
    ///
    /// [`NeffError::TooShort`], [`NeffError::UnsupportedVersion`],
    /// [`NeffError::BadHeaderSize`].
    pub fn parse(bytes: &[u8]) -> Result<Header> {
        if bytes.len() < HEADER_SIZE {
            return Err(NeffError::TooShort {
                len: bytes.len() as u64,
                header: HEADER_SIZE as u64,
            });
        }
        let version = u64_at(bytes, OFF_PACKAGING);
        let packaging =
            Packaging::from_number(version).ok_or(NeffError::UnsupportedVersion { version })?;
        let header_size = u64_at(bytes, OFF_HEADER_SIZE);
        if header_size != HEADER_SIZE as u64 {
            return Err(NeffError::BadHeaderSize {
                found: header_size,
                expected: HEADER_SIZE as u64,
            });
        }
        let mut hash_field = [0u8; HASH_LEN];
        hash_field.copy_from_slice(&bytes[OFF_HASH..OFF_HASH + HASH_LEN]);
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&bytes[OFF_UUID..OFF_UUID + 16]);
        Ok(Header {
            packaging,
            data_size: u64_at(bytes, OFF_DATA_SIZE),
            format_major: u64_at(bytes, OFF_FORMAT_MAJOR),
            format_minor: u64_at(bytes, OFF_FORMAT_MINOR),
            build_version: text_at(bytes, OFF_BUILD_VERSION, BUILD_VERSION_LEN),
            num_tpb: u32_at(bytes, OFF_NUM_TPB),
            hash_field,
            uuid,
            name: text_at(bytes, OFF_NAME, NAME_LEN),
            requested_tpb: u32_at(bytes, OFF_REQUESTED_TPB),
        })
    }

    /// Checks that a file of `file_len` bytes holds exactly the header and the payload
    /// it announces.
    ///
    /// # Errors
    ///
    /// [`NeffError::Truncated`] (shorter) or [`NeffError::TrailingData`] (longer).
    pub fn check_len(&self, file_len: u64) -> Result<()> {
        let data_size = self.data_size;
        let expected = data_size.saturating_add(HEADER_SIZE as u64);
        if file_len < expected {
            return Err(NeffError::Truncated {
                data_size,
                expected,
                found: file_len,
            });
        }
        if file_len > expected {
            return Err(NeffError::TrailingData {
                data_size,
                expected,
                found: file_len,
                extra: file_len - expected,
            });
        }
        Ok(())
    }

    /// Reads the header of a whole file and checks its length: the header and the payload.
    ///
    /// # Errors
    ///
    /// Those of [`Header::parse`] and [`Header::check_len`].
    pub fn split(bytes: &[u8]) -> Result<(Header, &[u8])> {
        let header = Header::parse(bytes)?;
        header.check_len(bytes.len() as u64)?;
        Ok((header, &bytes[HEADER_SIZE..]))
    }

    /// The payload hash the header holds, in the usual byte order (`md5sum` /
    /// `sha256sum`): for version 2 the first 16 bytes of the field with each 4-byte word
    /// reversed.
    pub fn expected_hash(&self) -> Vec<u8> {
        match self.packaging {
            Packaging::V1 => self.hash_field.to_vec(),
            Packaging::V2 => self.hash_field[..16]
                .chunks_exact(4)
                .flat_map(|w| [w[3], w[2], w[1], w[0]])
                .collect(),
        }
    }

    /// The hash field holding `digest` (usual byte order) as this packaging stores it.
    fn hash_field_for(packaging: Packaging, digest: &[u8]) -> [u8; HASH_LEN] {
        let mut field = [0u8; HASH_LEN];
        match packaging {
            Packaging::V1 => field.copy_from_slice(&digest[..HASH_LEN]),
            Packaging::V2 => {
                for (i, w) in digest[..16].chunks_exact(4).enumerate() {
                    field[i * 4..i * 4 + 4].copy_from_slice(&[w[3], w[2], w[1], w[0]]);
                }
            }
        }
        field
    }

    /// Checks `digest` (usual byte order) of the payload against the header.
    pub(crate) fn check_digest(&self, digest: &[u8]) -> Result<()> {
        let expected = self.expected_hash();
        if expected != digest {
            return Err(NeffError::BadHash {
                algorithm: self.packaging.hash_algorithm(),
                expected: hex(&expected),
                found: hex(digest),
            });
        }
        Ok(())
    }

    /// Checks the hash of `payload` against the header.
    ///
    /// # Errors
    ///
    /// [`NeffError::BadHash`] with both hashes.
    pub fn verify(&self, payload: &[u8]) -> Result<()> {
        let mut h = Hasher::new(self.packaging);
        h.update(payload);
        self.check_digest(&h.finish())
    }

    /// Sets the payload size and hash for `payload`.
    pub fn seal(&mut self, payload: &[u8]) {
        let mut h = Hasher::new(self.packaging);
        h.update(payload);
        self.data_size = payload.len() as u64;
        self.hash_field = Header::hash_field_for(self.packaging, &h.finish());
    }

    /// The 1024 header bytes (text fields cut to their size, at a character boundary).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; HEADER_SIZE];
        let mut put = |off: usize, v: u64| out[off..off + 8].copy_from_slice(&v.to_le_bytes());
        put(OFF_PACKAGING, self.packaging.number());
        put(OFF_HEADER_SIZE, HEADER_SIZE as u64);
        put(OFF_DATA_SIZE, self.data_size);
        put(OFF_FORMAT_MAJOR, self.format_major);
        put(OFF_FORMAT_MINOR, self.format_minor);
        put_text(
            &mut out,
            OFF_BUILD_VERSION,
            BUILD_VERSION_LEN - 1,
            &self.build_version,
        );
        out[OFF_NUM_TPB..OFF_NUM_TPB + 4].copy_from_slice(&self.num_tpb.to_le_bytes());
        out[OFF_HASH..OFF_HASH + HASH_LEN].copy_from_slice(&self.hash_field);
        out[OFF_UUID..OFF_UUID + 16].copy_from_slice(&self.uuid);
        put_text(&mut out, OFF_NAME, NAME_LEN - 1, &self.name);
        out[OFF_REQUESTED_TPB..OFF_REQUESTED_TPB + 4]
            .copy_from_slice(&self.requested_tpb.to_le_bytes());
        out
    }
}

/// A whole container: `header` (sealed for `payload`) followed by `payload`.
///
/// ```
/// use neuron_neff::{Header, Packaging, wrap};
/// let file = wrap(Header::new(Packaging::V1, "m"), b"payload");
/// let (header, payload) = Header::split(&file)?;
/// header.verify(payload)?;
/// assert_eq!((header.name.as_str(), payload), ("m", &b"payload"[..]));
/// # Ok::<(), neuron_neff::NeffError>(())
/// ```
pub fn wrap(mut header: Header, payload: &[u8]) -> Vec<u8> {
    header.seal(payload);
    let mut out = header.to_bytes();
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_real_offsets() {
        let mut h = Header::new(Packaging::V2, "file.neff");
        h.uuid = [7; 16];
        h.num_tpb = 2;
        h.requested_tpb = 2;
        let file = wrap(h, b"abc");
        assert_eq!(u64_at(&file, 0), 2);
        assert_eq!(u64_at(&file, 8), 1024);
        assert_eq!(u64_at(&file, 16), 3);
        assert_eq!(u32_at(&file, 168), 2);
        assert_eq!(&file[204..220], &[7; 16]);
        assert_eq!(&file[220..230], b"file.neff\0");
        assert_eq!(u32_at(&file, 476), 2);
        // MD5("abc") = 900150983cd24fb0d6963f7d28e17f72, stored as LE words.
        assert_eq!(&file[172..176], &[0x98, 0x50, 0x01, 0x90]);
        assert_eq!(&file[176..180], &[0xb0, 0x4f, 0xd2, 0x3c]);
        assert_eq!(&file[188..204], &[0; 16]);
        let (h, _) = Header::split(&file).unwrap();
        assert_eq!(hex(&h.expected_hash()), "900150983cd24fb0d6963f7d28e17f72");
    }

    /// The published test vectors (RFC 1321, FIPS 180-2) through the header's own path
    /// (`seal`, the stored field, `expected_hash`, `verify`) and the streaming hasher
    /// the readers use, fed in uneven pieces.
    #[test]
    fn hashes_match_the_published_test_vectors() {
        const LONG: &[u8] = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        let cases = [
            (
                Packaging::V2,
                &b"abc"[..],
                "900150983cd24fb0d6963f7d28e17f72",
            ),
            (Packaging::V2, b"", "d41d8cd98f00b204e9800998ecf8427e"),
            (Packaging::V2, LONG, "8215ef0796a20bcaaae116d3876c664a"),
            (
                Packaging::V1,
                b"abc",
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                Packaging::V1,
                b"",
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
            (
                Packaging::V1,
                LONG,
                "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
            ),
        ];
        for (packaging, payload, digest) in cases {
            let mut header = Header::new(packaging, "v.neff");
            header.seal(payload);
            assert_eq!(
                hex(&header.expected_hash()),
                digest,
                "{packaging:?} {payload:?}"
            );
            let file = wrap(header.clone(), payload);
            let (parsed, rest) = Header::split(&file).unwrap();
            assert_eq!(parsed.hash_field, header.hash_field);
            parsed.verify(rest).unwrap();
            let mut h = Hasher::new(packaging);
            for piece in payload.chunks(5) {
                h.update(piece);
            }
            assert_eq!(hex(&h.finish()), digest, "{packaging:?} streamed");
            if !payload.is_empty() {
                let err = parsed.verify(&payload[1..]).unwrap_err();
                assert!(matches!(err, NeffError::BadHash { .. }), "{err}");
            }
        }
    }

    #[test]
    fn long_names_are_cut_at_a_character_boundary() {
        let name = "é".repeat(200); // 400 bytes
        let file = wrap(Header::new(Packaging::V1, &name), b"");
        let h = Header::parse(&file).unwrap();
        assert_eq!(h.name, "é".repeat(127));
    }
}
