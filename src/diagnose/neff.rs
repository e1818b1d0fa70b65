//! The NEFF header check: what a model file that is not a NEFF holds instead.
//!
//! A NEFF starts with a 1024-byte little-endian header: packaging version (1 or 2) at
//! byte 0, header size (1024) at 8, payload size at 16, cores needed at 168.

const HEADER: usize = 1024;

fn u64_at(bytes: &[u8], offset: usize) -> Option<u64> {
    let field = bytes.get(offset..offset + 8)?;
    Some(u64::from_le_bytes(field.try_into().ok()?))
}

/// What is wrong with `bytes` as a NEFF, or `None` when its header looks right.
pub(crate) fn problem(bytes: &[u8]) -> Option<String> {
    let version = u64_at(bytes, 0);
    if bytes.len() < HEADER || !matches!(version, Some(1 | 2)) {
        let what = contents(bytes);
        return Some(if bytes.len() < HEADER {
            format!(
                "it has {} bytes, fewer than a NEFF's 1024-byte header, and holds {what}",
                bytes.len()
            )
        } else {
            format!(
                "it holds {what}, and a NEFF starts with a 1024-byte header whose first 8 bytes are packaging version 1 or 2"
            )
        });
    }
    let header_size = u64_at(bytes, 8)?;
    if header_size != HEADER as u64 {
        return Some(format!(
            "its header gives a header size of {header_size} bytes, a NEFF's is 1024"
        ));
    }
    let data_size = u64_at(bytes, 16)?;
    let payload = (bytes.len() - HEADER) as u64;
    if data_size != payload {
        return Some(format!(
            "its header announces {data_size} payload bytes but the file has {payload} after the header (truncated or damaged)"
        ));
    }
    None
}

/// The cores the model needs (`num_tpb`), when the header is a NEFF's.
pub(crate) fn cores_needed(bytes: &[u8]) -> Option<u32> {
    if problem(bytes).is_some() {
        return None;
    }
    let field = bytes.get(168..172)?;
    Some(u32::from_le_bytes(field.try_into().ok()?))
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
