//! The tar archive inside the payload, read header by header. Every size is checked
//! before a byte it announces is kept: the entries' (by the caller, against
//! [`Limits::max_entry`](crate::Limits::max_entry)) and the extension entries' before
//! them (GNU long names and links, PAX local and global headers), which this reader
//! reads itself, at most [`MAX_EXTENSION`] bytes each.
//!
//! Formats read: POSIX ustar (a name prefix), GNU (long names `L`, long links `K`,
//! sparse files `S` and their extension blocks, base-256 sizes), PAX (`x` records `path`
//! and `size`, which override the header's; `g` headers are skipped) and old v7 headers.

use crate::error::{NeffError, Result};
use std::io::{self, Read};

/// Bytes in a tar block (headers, and the unit data is padded to).
const BLOCK: u64 = 512;

/// Largest extension entry (GNU long name or link, PAX header) the reader accepts: a
/// path is at most a few KiB (Linux's `PATH_MAX` is 4096), a PAX header a few records.
pub(crate) const MAX_EXTENSION: u64 = 1 << 20;

/// An entry of the archive, its extension entries applied.
#[derive(Debug)]
pub(crate) struct Entry {
    /// Its name (from a GNU long name, else a PAX `path`, else the header).
    pub(crate) name: String,
    /// A regular file (type `0` or NUL).
    pub(crate) regular: bool,
    /// Bytes of data (a PAX `size` overrides the header's).
    pub(crate) size: u64,
}

/// Extension entries read for the entry after them.
#[derive(Default)]
struct Pending {
    long_name: Option<String>,
    pax_path: Option<String>,
    pax_size: Option<u64>,
    /// Any extension entry at all (a long link, a global header): an archive that ends
    /// after one is truncated.
    any: bool,
}

/// Reads entries from the decompressed stream `R`.
pub(crate) struct Archive<R> {
    inner: R,
    /// Bytes of the archive consumed.
    pos: u64,
    /// Offset of the next header.
    next: u64,
}

fn bad(context: String, message: impl Into<String>) -> NeffError {
    NeffError::BadTar {
        context,
        message: message.into(),
    }
}

/// The bytes of a NUL-terminated field, up to the first NUL.
fn text(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

/// A numeric header field: octal text (spaces and NULs around it), or GNU base-256 (high
/// bit of the first byte set; the value in the bytes after it, big-endian).
fn number(field: &[u8]) -> std::result::Result<u64, String> {
    if let Some((&first, rest)) = field.split_first().filter(|(f, _)| *f & 0x80 != 0) {
        // Any field width (the checksum's is 8 bytes: its 7 low bits and 7 bytes).
        let mut value = u64::from(first & 0x7f);
        for &b in rest {
            if value > u64::MAX >> 8 {
                return Err("a base-256 number above 2^64".into());
            }
            value = value << 8 | u64::from(b);
        }
        return Ok(value);
    }
    let digits = String::from_utf8_lossy(text(field));
    let digits = digits.trim_matches(' ');
    u64::from_str_radix(digits, 8).map_err(|_| format!("{digits:?} is not an octal number"))
}

/// A PAX extension's records (`"<len> <key>=<value>\n"`): `path` and `size`.
fn pax_records(data: &[u8], pending: &mut Pending, at: &str) -> Result<()> {
    let mut rest = data;
    while !rest.is_empty() && rest.iter().any(|&b| b != 0) {
        let malformed = |why: &str| bad(at.to_owned(), format!("malformed PAX record: {why}"));
        let space = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| malformed("no length"))?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| malformed("the length is not a number"))?;
        if len <= space + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(malformed(&format!(
                "length {len} does not end a record of the {} bytes left",
                rest.len()
            )));
        }
        let record = &rest[space + 1..len - 1];
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| malformed("no `=`"))?;
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        match key {
            b"path" => pending.pax_path = Some(String::from_utf8_lossy(value).into_owned()),
            b"size" => {
                let size = std::str::from_utf8(value)
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(|| malformed("`size` is not a number"))?;
                pending.pax_size = Some(size);
            }
            _ => {}
        }
        rest = &rest[len..];
    }
    Ok(())
}

/// What a header's type is, for messages.
fn extension_name(kind: u8) -> Option<&'static str> {
    match kind {
        b'L' => Some("GNU long-name"),
        b'K' => Some("GNU long-link"),
        b'x' => Some("PAX header"),
        b'g' => Some("PAX global header"),
        _ => None,
    }
}

impl<R: Read> Archive<R> {
    pub(crate) fn new(inner: R) -> Archive<R> {
        Archive {
            inner,
            pos: 0,
            next: 0,
        }
    }

    /// Reads up to `buf.len()` bytes; fewer only at the end of the stream.
    fn fill(&mut self, buf: &mut [u8], context: &dyn Fn() -> String) -> Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(bad(context(), e.to_string())),
            }
        }
        self.pos += got as u64;
        Ok(got)
    }

    /// Skips to offset `to` of the archive (forward only).
    fn skip_to(&mut self, to: u64, context: &dyn Fn() -> String) -> Result<()> {
        let want = to.saturating_sub(self.pos);
        let got = io::copy(&mut (&mut self.inner).take(want), &mut io::sink())
            .map_err(|e| bad(context(), e.to_string()))?;
        self.pos += got;
        if got < want {
            return Err(bad(
                context(),
                format!("the archive ends {} bytes early", want - got),
            ));
        }
        Ok(())
    }

    /// Reads `size` bytes of the entry whose header was just read into `out` (grown as
    /// the data arrives: a header may claim more than the archive holds).
    pub(crate) fn read_data(&mut self, size: u64, out: &mut Vec<u8>, what: &str) -> Result<()> {
        let context = || format!("contents of {what}");
        let got = (&mut self.inner)
            .take(size)
            .read_to_end(out)
            .map_err(|e| bad(context(), e.to_string()))?;
        self.pos += got as u64;
        if (got as u64) < size {
            return Err(bad(context(), format!("{got} of its {size} bytes present")));
        }
        Ok(())
    }

    /// The next entry, its extension entries read and applied; `None` at the end of the
    /// archive (the stream's end, or a zero block). `last` names the entry before, for
    /// messages.
    pub(crate) fn next_entry(&mut self, last: &str) -> Result<Option<Entry>> {
        let mut pending = Pending::default();
        loop {
            let at = self.next;
            let here = || format!("header at archive byte {at}, after {last}");
            self.skip_to(at, &here)?;
            let mut h = [0u8; BLOCK as usize];
            let got = self.fill(&mut h, &here)?;
            if got == 0 || h.iter().all(|&b| b == 0) {
                if pending.any {
                    return Err(bad(
                        here(),
                        "the archive ends after an extension entry, before the entry it describes",
                    ));
                }
                return Ok(None);
            }
            if got < h.len() {
                return Err(bad(
                    here(),
                    format!("the archive ends inside a header ({got} of {BLOCK} bytes)"),
                ));
            }
            check_sum(&h).map_err(|m| bad(here(), m))?;
            let kind = h[156];
            let header_size =
                number(&h[124..136]).map_err(|m| bad(here(), format!("size: {m}")))?;
            let data_at = self.next + BLOCK;
            if let Some(ext) = extension_name(kind) {
                pending.any = true;
                if header_size > MAX_EXTENSION {
                    return Err(NeffError::TooLarge {
                        what: format!(
                            "tar {ext} entry (type `{}`, header at archive byte {at}, after {last})",
                            kind as char
                        ),
                        size: header_size,
                        limit: MAX_EXTENSION,
                    });
                }
                self.next = data_at + header_size.next_multiple_of(BLOCK);
                let what = format!("the {ext} entry at archive byte {at}");
                match kind {
                    b'L' | b'x' => {
                        let mut data = Vec::with_capacity(header_size as usize);
                        self.read_data(header_size, &mut data, &what)?;
                        if kind == b'L' {
                            if pending.long_name.is_some() {
                                return Err(bad(what, "a second long name for one entry"));
                            }
                            pending.long_name =
                                Some(String::from_utf8_lossy(text(&data)).into_owned());
                        } else {
                            pax_records(&data, &mut pending, &what)?;
                        }
                    }
                    // Long links and global headers: nothing the reader uses.
                    _ => {}
                }
                continue;
            }
            let mut next = data_at;
            if kind == b'S' && h[482] != 0 {
                // GNU sparse: extension blocks of the sparse map follow the header, the
                // last one with its `isextended` byte (504) zero.
                loop {
                    let mut ext = [0u8; BLOCK as usize];
                    if self.fill(&mut ext, &here)? < ext.len() {
                        return Err(bad(here(), "the archive ends inside a sparse map"));
                    }
                    next += BLOCK;
                    if ext[504] == 0 {
                        break;
                    }
                }
            }
            let size = pending.pax_size.unwrap_or(header_size);
            self.next = size
                .checked_next_multiple_of(BLOCK)
                .and_then(|s| next.checked_add(s))
                .ok_or_else(|| bad(here(), format!("entry size {size} overflows")))?;
            let name = match (pending.long_name, pending.pax_path) {
                (Some(name), _) | (None, Some(name)) => name,
                (None, None) => header_name(&h),
            };
            return Ok(Some(Entry {
                name,
                regular: kind == b'0' || kind == 0,
                size,
            }));
        }
    }
}

/// The header's checksum (bytes 148..156, octal) against the sum of its bytes with that
/// field counted as spaces.
fn check_sum(h: &[u8; BLOCK as usize]) -> std::result::Result<(), String> {
    let stored = number(&h[148..156]).map_err(|m| format!("checksum: {m}"))?;
    let sum: u64 = h[..148]
        .iter()
        .chain(&h[156..])
        .map(|&b| u64::from(b))
        .sum::<u64>()
        + 8 * u64::from(b' ');
    if stored != sum {
        return Err(format!(
            "header checksum mismatch: {stored} recorded, {sum} computed"
        ));
    }
    Ok(())
}

/// The name in a header: POSIX ustar joins its prefix (bytes 345..500) and name; GNU and
/// v7 headers have the name alone.
fn header_name(h: &[u8; BLOCK as usize]) -> String {
    let name = text(&h[..100]);
    let prefix = text(&h[345..500]);
    if &h[257..263] == b"ustar\0" && !prefix.is_empty() {
        let mut full = prefix.to_vec();
        full.push(b'/');
        full.extend_from_slice(name);
        String::from_utf8_lossy(&full).into_owned()
    } else {
        String::from_utf8_lossy(name).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_octal_or_base_256() {
        assert_eq!(number(b"00000001750\0"), Ok(1000));
        assert_eq!(number(b"  1750 \0\0\0\0\0"), Ok(1000));
        let mut big = [0u8; 12];
        big[0] = 0x80;
        big[4..].copy_from_slice(&(1u64 << 40).to_be_bytes());
        assert_eq!(number(&big), Ok(1 << 40));
        big[1] = 1;
        assert!(number(&big).is_err());
        assert!(number(b"12x\0").is_err());
        assert!(number(b"\0\0\0\0").is_err());
    }

    #[test]
    fn base_256_numbers_of_any_width_never_panic() {
        // The checksum field is 8 bytes: a base-256 value there once indexed past an
        // empty slice (found by the neff_reader fuzz target).
        assert_eq!(number(&[0x80, 0, 0, 0, 0, 0, 0x03, 0xe8]), Ok(1000));
        assert_eq!(number(&[0x81, 0, 0, 0, 0, 0, 0, 0]), Ok(1 << 56));
        assert_eq!(number(&[0xff; 8]), Ok(u64::MAX >> 1));
        assert_eq!(number(&[0x80]), Ok(0));
        assert!(number(&[0x81, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(number(&[]).is_err());
    }

    #[test]
    fn pax_records_give_path_and_size_and_refuse_bad_lengths() {
        let mut p = Pending::default();
        pax_records(b"18 path=neff.json\n11 size=42\n", &mut p, "x").unwrap();
        assert_eq!(p.pax_path.as_deref(), Some("neff.json"));
        assert_eq!(p.pax_size, Some(42));
        for bad in [
            &b"99 path=a\n"[..],
            b"5 path=a\n",
            b"path=a\n",
            b"9 size=z\n",
        ] {
            assert!(
                pax_records(bad, &mut Pending::default(), "x").is_err(),
                "{bad:?}"
            );
        }
    }
}
