//! The NEFF-shaped container around a simulator model: a 1024-byte little-endian header
//! (sizes, SHA-256 of the payload, name) followed by the payload.
//!
//! Header fields used (byte offset: size): 0:8 packaging version (1 = SHA-256 hashed
//! payload; the only one the simulator reads), 8:8 header size (1024), 16:8 payload
//! size, 24:8 / 32:8 format version major/minor, 40:128 build version text, 168:4 cores
//! needed (1), 172:64 payload hash (SHA-256 in the first 32 bytes, zeros after), 236:32
//! uuid (zeros), 268:256 model name (NUL-padded), 524:4 requested core count (1),
//! 528:64 cores per node (zeros), rest zero up to 1024.

use nrt_sys::{NRT_INVALID, NRT_STATUS, NRT_UNSUPPORTED_NEFF_VERSION};
use sha2::{Digest, Sha256};

/// Bytes in the header.
pub(crate) const HEADER_SIZE: usize = 1024;
/// The packaging version the simulator writes and reads.
pub(crate) const PACKAGING_VERSION: u64 = 1;
/// The other packaging version of real NEFFs (MD5 instead of SHA-256).
const PACKAGING_VERSION_MD5: u64 = 2;
const OFF_PACKAGING: usize = 0;
const OFF_HEADER_SIZE: usize = 8;
const OFF_DATA_SIZE: usize = 16;
const OFF_FORMAT_MAJOR: usize = 24;
const OFF_FORMAT_MINOR: usize = 32;
const OFF_BUILD_VERSION: usize = 40;
const OFF_NUM_TPB: usize = 168;
const OFF_HASH: usize = 172;
const OFF_NAME: usize = 268;
const NAME_LEN: usize = 256;
const OFF_REQUESTED_TPB: usize = 524;

/// Wraps `payload` in a container header naming the model `name`.
pub(crate) fn wrap(name: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_SIZE];
    put_u64(&mut out, OFF_PACKAGING, PACKAGING_VERSION);
    put_u64(&mut out, OFF_HEADER_SIZE, HEADER_SIZE as u64);
    put_u64(&mut out, OFF_DATA_SIZE, payload.len() as u64);
    put_u64(&mut out, OFF_FORMAT_MAJOR, 1);
    put_u64(&mut out, OFF_FORMAT_MINOR, 0);
    let build = concat!("nrt-sim ", env!("CARGO_PKG_VERSION")).as_bytes();
    out[OFF_BUILD_VERSION..OFF_BUILD_VERSION + build.len()].copy_from_slice(build);
    out[OFF_NUM_TPB..OFF_NUM_TPB + 4].copy_from_slice(&1u32.to_le_bytes());
    out[OFF_HASH..OFF_HASH + 32].copy_from_slice(&Sha256::digest(payload));
    let name = name.as_bytes();
    let n = name.len().min(NAME_LEN - 1);
    out[OFF_NAME..OFF_NAME + n].copy_from_slice(&name[..n]);
    out[OFF_REQUESTED_TPB..OFF_REQUESTED_TPB + 4].copy_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Checks the header of `bytes` and returns the payload.
///
/// Errors: status and a message for the log (`NRT_INVALID` for a bad header, size or
/// hash or a real NEFF's packaging version 2, `NRT_UNSUPPORTED_NEFF_VERSION` for any
/// other packaging version).
pub(crate) fn unwrap(bytes: &[u8]) -> Result<&[u8], (NRT_STATUS, String)> {
    if bytes.len() < HEADER_SIZE {
        return Err((
            NRT_INVALID,
            format!(
                "model file is {} bytes, shorter than its {HEADER_SIZE}-byte header",
                bytes.len()
            ),
        ));
    }
    let version = get_u64(bytes, OFF_PACKAGING);
    let header_size = get_u64(bytes, OFF_HEADER_SIZE);
    let data_size = get_u64(bytes, OFF_DATA_SIZE);
    if version == 0 && header_size == 0 && data_size == 0 {
        return Err((
            NRT_INVALID,
            "model file header is all zeros: not a model file".into(),
        ));
    }
    if version == PACKAGING_VERSION_MD5 {
        // A version the runtime reads: the file is a real NEFF, not unsupported.
        return Err((
            NRT_INVALID,
            format!(
                "model file packaging version {PACKAGING_VERSION_MD5} (MD5-hashed archive) is used by NEFFs compiled for Neuron hardware: not an nrt-sim model (the simulator reads version {PACKAGING_VERSION}, written by nrt_sim::ModelBuilder or nrt-sim-model)"
            ),
        ));
    }
    if version != PACKAGING_VERSION {
        return Err((
            NRT_UNSUPPORTED_NEFF_VERSION,
            format!(
                "model file packaging version {version} is not supported (the simulator reads version {PACKAGING_VERSION})"
            ),
        ));
    }
    if header_size != HEADER_SIZE as u64 {
        return Err((
            NRT_INVALID,
            format!("model file header size field is {header_size}, expected {HEADER_SIZE}"),
        ));
    }
    let payload = &bytes[HEADER_SIZE..];
    if data_size != payload.len() as u64 {
        return Err((
            NRT_INVALID,
            format!(
                "model file header says {data_size} payload bytes, but {} follow the header (file size {})",
                payload.len(),
                bytes.len()
            ),
        ));
    }
    let hash = Sha256::digest(payload);
    if hash[..] != bytes[OFF_HASH..OFF_HASH + 32] {
        return Err((
            NRT_INVALID,
            "model file payload does not match the SHA-256 hash in its header (file corrupted?)"
                .into(),
        ));
    }
    let tpb = u32::from_le_bytes(bytes[OFF_NUM_TPB..OFF_NUM_TPB + 4].try_into().unwrap());
    if tpb > 1 {
        return Err((
            NRT_INVALID,
            format!("model needs {tpb} NeuronCores; the simulator runs single-core models only"),
        ));
    }
    Ok(payload)
}

fn put_u64(buf: &mut [u8], off: usize, v: u64) {
    buf[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

fn get_u64(buf: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(buf[off..off + 8].try_into().unwrap())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_then_unwrap_gives_the_payload() {
        let file = wrap("m", b"payload");
        assert_eq!(file.len(), HEADER_SIZE + 7);
        assert_eq!(unwrap(&file).unwrap(), b"payload");
        assert_eq!(&file[OFF_NAME..OFF_NAME + 2], b"m\0");
    }

    #[test]
    fn short_file_is_invalid() {
        let (status, msg) = unwrap(&[1u8; 100]).unwrap_err();
        assert_eq!(status, NRT_INVALID);
        assert!(msg.contains("100 bytes"), "{msg}");
    }

    #[test]
    fn other_packaging_version_is_unsupported() {
        let mut file = wrap("m", b"x");
        put_u64(&mut file, OFF_PACKAGING, 3);
        assert_eq!(unwrap(&file).unwrap_err().0, NRT_UNSUPPORTED_NEFF_VERSION);
        // Version 2 exists (real NEFFs): such a file is foreign, not unsupported.
        put_u64(&mut file, OFF_PACKAGING, 2);
        let (status, msg) = unwrap(&file).unwrap_err();
        assert_eq!(status, NRT_INVALID);
        assert!(msg.contains("not an nrt-sim model"), "{msg}");
    }

    #[test]
    fn size_mismatch_and_bad_hash_are_invalid() {
        let mut file = wrap("m", b"abc");
        file.push(0);
        let (status, msg) = unwrap(&file).unwrap_err();
        assert_eq!(status, NRT_INVALID);
        assert!(msg.contains("says 3 payload bytes, but 4"), "{msg}");
        let mut file = wrap("m", b"abc");
        *file.last_mut().unwrap() = b'x';
        let (status, msg) = unwrap(&file).unwrap_err();
        assert_eq!(status, NRT_INVALID);
        assert!(msg.contains("SHA-256"), "{msg}");
        let mut file = wrap("m", b"abc");
        put_u64(&mut file, OFF_HEADER_SIZE, 512);
        assert_eq!(unwrap(&file).unwrap_err().0, NRT_INVALID);
    }

    #[test]
    fn multi_core_model_is_rejected() {
        let mut file = wrap("m", b"abc");
        file[OFF_NUM_TPB..OFF_NUM_TPB + 4].copy_from_slice(&4u32.to_le_bytes());
        let (status, msg) = unwrap(&file).unwrap_err();
        assert_eq!(status, NRT_INVALID);
        assert!(msg.contains("4 NeuronCores"), "{msg}");
    }
}
