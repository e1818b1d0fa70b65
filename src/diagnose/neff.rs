//! The NEFF check of a failed load: what a model file that is not a NEFF holds instead,
//! and what a NEFF needs (cores, target, compiler version), read with [`crate::neff`].

use neuron_neff::{HEADER_SIZE, Header, Neff, NeffError};

/// What is wrong with `bytes` as a NEFF container, or `None` when its header and length
/// are right.
pub(crate) fn problem(bytes: &[u8]) -> Option<String> {
    let err = match Header::split(bytes) {
        Ok(_) => return None,
        Err(e) => e,
    };
    Some(match err {
        NeffError::TooShort { len, .. } => format!(
            "it has {len} bytes, fewer than a NEFF's 1024-byte header, and holds {}",
            contents(bytes)
        ),
        NeffError::UnsupportedVersion { .. } => format!(
            "it holds {}, and a NEFF starts with a 1024-byte header whose first 8 bytes are packaging version 1 or 2",
            contents(bytes)
        ),
        NeffError::BadHeaderSize { found, .. } => {
            format!("its header gives a header size of {found} bytes, a NEFF's is 1024")
        }
        NeffError::Truncated { data_size, .. } | NeffError::TrailingData { data_size, .. } => {
            format!(
                "its header announces {data_size} payload bytes but the file has {} after the header (truncated or damaged)",
                bytes.len() - HEADER_SIZE
            )
        }
        other => other.to_string(),
    })
}

/// The cores the model needs (`num_tpb`), when the container is a NEFF's.
pub(crate) fn cores_needed(bytes: &[u8]) -> Option<u32> {
    Header::split(bytes).ok().map(|(h, _)| h.num_tpb)
}

/// A NEFF compiled for Neuron hardware (a gzip'd tar payload) read for its needs (hash
/// checked), or why it cannot be read; `None` when the container is bad (see
/// [`problem`]) or holds something else (nrt-sim's own model files).
pub(crate) fn read(bytes: &[u8]) -> Option<Result<Neff, NeffError>> {
    let (_, payload) = Header::split(bytes).ok()?;
    payload
        .starts_with(&[0x1f, 0x8b])
        .then(|| Neff::parse(bytes))
}

/// What `neff` needs, as one phrase: cores, target, compiler version.
pub(crate) fn needs(neff: &Neff) -> String {
    format!(
        "{} NeuronCore(s), target {}, compiled by {}",
        neff.cores(),
        neff.target().unwrap_or("unknown (no kelf-0.json)"),
        neff.tool_version()
            .unwrap_or("an unknown compiler (no info.json)")
    )
}

/// A short description of what `bytes` hold.
fn contents(bytes: &[u8]) -> String {
    match bytes {
        [] => "nothing".to_owned(),
        [0x7f, b'E', b'L', b'F', ..] => "an ELF file (a program or shared library)".to_owned(),
        [0x1f, 0x8b, ..] => "a gzip archive (a NEFF's payload without its header?)".to_owned(),
        [b'P', b'K', 3, 4, ..] => {
            "a zip archive (a PyTorch .pt file or a saved model, not a compiled NEFF?)".to_owned()
        }
        _ => text_start(bytes).map_or_else(
            || {
                let hex: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
                format!("binary data starting {}", hex.join(" "))
            },
            |line| format!("text starting `{line}`"),
        ),
    }
}

/// The first line of `bytes` (at most 40 characters) when they start as printable text.
fn text_start(bytes: &[u8]) -> Option<String> {
    let head = &bytes[..bytes.len().min(256)];
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        // A multi-byte character cut at the end of `head` is still text.
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).ok()?,
        Err(_) => return None,
    };
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return None;
    }
    let line: String = text.lines().next()?.trim().chars().take(40).collect();
    (!line.is_empty()).then_some(line)
}
