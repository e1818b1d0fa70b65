//! The NEFF container around a model file: the 1024-byte header of `neuron_neff`
//! (the layout of compiler-made NEFFs: packaging version at 0, sizes at 8 and 16, cores
//! at 168, hash at 172, uuid at 204, name at 220, requested cores at 476) followed by
//! the payload.
//!
//! The simulator's own model files use packaging version 1 (SHA-256 of the payload, in
//! the 32 bytes at 172), format version 1.0, build version `nrt-sim <version>`, one core,
//! and a text payload (`MODEL_FORMAT.md`). Real NEFFs (version 2 or 1, gzip'd tar
//! payload) are read by `model::real`.

use neuron_neff::{Header, NeffError, Packaging};
use nrt_sys::{NRT_INVALID, NRT_STATUS, NRT_UNSUPPORTED_NEFF_VERSION};

/// The packaging version the simulator writes for its own model files.
pub(crate) const PACKAGING: Packaging = Packaging::V1;

/// Wraps `payload` in a container header naming the model `name`.
pub(crate) fn wrap(name: &str, payload: &[u8]) -> Vec<u8> {
    let mut header = Header::new(PACKAGING, name);
    header.format_major = 1;
    header.format_minor = 0;
    header.build_version = concat!("nrt-sim ", env!("CARGO_PKG_VERSION")).into();
    neuron_neff::wrap(header, payload)
}

/// The `nrt_load` status for a container the reader refused: the real runtime's
/// `NRT_UNSUPPORTED_NEFF_VERSION` for an unknown packaging version, `NRT_INVALID` (an
/// invalid NEFF) for everything else, a truncated file included.
pub(crate) fn status_of(e: &NeffError) -> NRT_STATUS {
    match e {
        NeffError::UnsupportedVersion { .. } => NRT_UNSUPPORTED_NEFF_VERSION,
        _ => NRT_INVALID,
    }
}

/// Checks the header and the file length of `bytes`; returns the header and payload.
///
/// Errors: status and a message for the log (`status_of`).
pub(crate) fn split(bytes: &[u8]) -> Result<(Header, &[u8]), (NRT_STATUS, String)> {
    if bytes.len() >= 24 && bytes[..24].iter().all(|&b| b == 0) {
        return Err((
            NRT_INVALID,
            "model file header is all zeros: not a model file".into(),
        ));
    }
    Header::split(bytes).map_err(|e| (status_of(&e), format!("model file: {e}")))
}

/// Checks an own model file's container (packaging version 1, SHA-256 always checked,
/// one core) and returns its payload.
pub(crate) fn unwrap_own<'a>(
    header: &Header,
    payload: &'a [u8],
) -> Result<&'a [u8], (NRT_STATUS, String)> {
    if header.packaging != PACKAGING {
        return Err((
            NRT_INVALID,
            format!(
                "model file has packaging version {} but its payload is not gzip data: neither a NEFF compiled for Neuron hardware (a gzip'd tar) nor an nrt-sim model (version {}, written by nrt_sim::ModelBuilder or nrt-sim-model)",
                header.packaging.number(),
                PACKAGING.number()
            ),
        ));
    }
    header
        .verify(payload)
        .map_err(|e| (NRT_INVALID, format!("model file: {e}")))?;
    if header.num_tpb > 1 {
        return Err((
            NRT_INVALID,
            format!(
                "nrt-sim model needs {} NeuronCores; the simulator's own models are single-core (real NEFFs may need more)",
                header.num_tpb
            ),
        ));
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own(bytes: &[u8]) -> Result<&[u8], (NRT_STATUS, String)> {
        let (h, p) = split(bytes)?;
        unwrap_own(&h, p)
    }

    #[test]
    fn wrap_then_unwrap_gives_the_payload_and_the_real_layout() {
        let file = wrap("m", b"payload");
        assert_eq!(file.len(), 1024 + 7);
        assert_eq!(own(&file).unwrap(), b"payload");
        // Name at 220 and uuid (zero) at 204, as in compiler-made NEFFs.
        assert_eq!(&file[220..222], b"m\0");
        assert_eq!(&file[204..220], &[0; 16]);
        assert_eq!(&file[168..172], &1u32.to_le_bytes());
        assert_eq!(&file[476..480], &1u32.to_le_bytes());
    }

    #[test]
    fn short_file_is_invalid() {
        let (status, msg) = own(&[1u8; 100]).unwrap_err();
        assert_eq!(status, NRT_INVALID);
        assert!(msg.contains("100 bytes"), "{msg}");
        let (_, msg) = own(&[0u8; 2000]).unwrap_err();
        assert!(msg.contains("all zeros"), "{msg}");
    }

    #[test]
    fn other_packaging_version_is_unsupported() {
        let mut file = wrap("m", b"x");
        file[0] = 3;
        assert_eq!(own(&file).unwrap_err().0, NRT_UNSUPPORTED_NEFF_VERSION);
        // Version 2 with a text payload: neither kind of file.
        file[0] = 2;
        let (status, msg) = own(&file).unwrap_err();
        assert_eq!(status, NRT_INVALID);
        assert!(msg.contains("neither a NEFF"), "{msg}");
    }

    #[test]
    fn size_mismatch_and_bad_hash_are_invalid() {
        let mut file = wrap("m", b"abc");
        file.push(0);
        let (status, msg) = own(&file).unwrap_err();
        assert_eq!(status, NRT_INVALID);
        assert!(msg.contains("announces 3 payload bytes"), "{msg}");
        let mut file = wrap("m", b"abc");
        *file.last_mut().unwrap() = b'x';
        let (status, msg) = own(&file).unwrap_err();
        assert_eq!(status, NRT_INVALID);
        assert!(msg.contains("SHA-256"), "{msg}");
        let mut file = wrap("m", b"abc");
        file[8..16].copy_from_slice(&512u64.to_le_bytes());
        assert_eq!(own(&file).unwrap_err().0, NRT_INVALID);
    }

    #[test]
    fn multi_core_own_model_is_rejected() {
        let mut file = wrap("m", b"abc");
        file[168..172].copy_from_slice(&4u32.to_le_bytes());
        let (status, msg) = own(&file).unwrap_err();
        assert_eq!(status, NRT_INVALID);
        assert!(msg.contains("4 NeuronCores"), "{msg}");
    }
}
