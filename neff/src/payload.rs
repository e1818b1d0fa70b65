//! Reading the payload: the hash over the compressed bytes (first: nothing is
//! decompressed for a file whose hash is wrong), gzip, the tar entries the reader needs
//! (each size bounded before anything is allocated, `archive`).

use crate::archive::Archive;
use crate::error::{NeffError, Result, hex};
use crate::header::{HEADER_SIZE, Hasher, Header};
use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom};

/// Bounds on what a NEFF may make the reader decompress and keep in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest payload (compressed) accepted, in bytes.
    pub max_payload: u64,
    /// Largest number of bytes decompressed while looking for the entries (entries are
    /// skipped without being kept, but still decompressed).
    pub max_decompressed: u64,
    /// Largest JSON entry (or kept entry) read into memory. (The tar extension entries
    /// before an entry, GNU long names and PAX headers, are refused above 1 MiB each.)
    pub max_entry: u64,
}

impl Default for Limits {
    /// 16 GiB of payload, 1 GiB decompressed, 64 MiB per entry kept.
    fn default() -> Limits {
        Limits {
            max_payload: 16 << 30,
            max_decompressed: 1 << 30,
            max_entry: 64 << 20,
        }
    }
}

/// The archive entries the reader keeps.
#[derive(Debug, Default)]
pub(crate) struct Entries {
    pub(crate) kept: BTreeMap<String, Vec<u8>>,
    /// Entries seen (all of them when the scan went to the end).
    pub(crate) seen: usize,
}

/// Why the decompressed stream stopped.
enum Stop {
    Gzip(String),
    TooLarge,
}

/// Counts decompressed bytes, stops at the limit, and records a gzip failure.
struct Limited<R> {
    inner: R,
    count: u64,
    limit: u64,
    stop: Option<Stop>,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.count >= self.limit && !buf.is_empty() {
            // One byte past the limit tells a stream that ends exactly there from a longer one.
            let mut probe = [0u8; 1];
            let n = self.inner_read(&mut probe)?;
            if n == 0 {
                return Ok(0);
            }
            self.stop = Some(Stop::TooLarge);
            return Err(io::Error::other("decompressed payload too large"));
        }
        let room = usize::try_from(self.limit - self.count).unwrap_or(usize::MAX);
        let len = buf.len().min(room);
        let n = self.inner_read(&mut buf[..len])?;
        self.count += n as u64;
        Ok(n)
    }
}

impl<R: Read> Limited<R> {
    fn inner_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            self.stop.get_or_insert(Stop::Gzip(e.to_string()));
        })
    }
}

/// The entry name without leading `./` (tar files list `./neff.json` or `neff.json`).
fn clean(path: &str) -> &str {
    let mut p = path;
    while let Some(rest) = p.strip_prefix("./") {
        p = rest;
    }
    p
}

/// Reads the payload of `header` from `source` (positioned after the header; its
/// length was checked against the header): verifies the hash when `verify`, before
/// anything is decompressed (a damaged or hostile file costs one pass over its bytes
/// and no memory), then keeps the entries named in `wanted` (stops decompressing once
/// all are found).
pub(crate) fn read<R: Read + Seek>(
    header: &Header,
    mut source: R,
    verify: bool,
    wanted: &[&str],
    limits: &Limits,
) -> Result<Entries> {
    if header.data_size > limits.max_payload {
        return Err(NeffError::TooLarge {
            what: "payload (data size at byte 16)".into(),
            size: header.data_size,
            limit: limits.max_payload,
        });
    }
    if verify {
        let start = source
            .stream_position()
            .map_err(|e| io_error("payload", e))?;
        let mut hasher = Hasher::new(header.packaging);
        let mut buf = vec![0u8; 64 << 10];
        let mut payload = (&mut source).take(header.data_size);
        loop {
            let n = read_up_to(&mut payload, &mut buf).map_err(|e| io_error("payload", e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        header.check_digest(&hasher.finish())?;
        source
            .seek(SeekFrom::Start(start))
            .map_err(|e| io_error("payload", e))?;
    }
    let mut payload = source.take(header.data_size);
    let mut magic = [0u8; 2];
    let got = read_up_to(&mut payload, &mut magic).map_err(|e| io_error("payload", e))?;
    if magic[..got] != [0x1f, 0x8b] {
        return Err(NeffError::NotGzip {
            offset: HEADER_SIZE as u64,
            start: hex(&magic[..got]),
        });
    }
    let stream = io::Cursor::new(magic).chain(payload);
    scan(flate2::read::GzDecoder::new(stream), wanted, limits)
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn io_error(what: &str, e: io::Error) -> NeffError {
    NeffError::BadTar {
        context: format!("reading the {what}"),
        message: e.to_string(),
    }
}

/// Walks the tar entries of the decompressed stream.
fn scan<R: Read>(gz: R, wanted: &[&str], limits: &Limits) -> Result<Entries> {
    let mut limited = Limited {
        inner: gz,
        count: 0,
        limit: limits.max_decompressed,
        stop: None,
    };
    let mut entries = Entries::default();
    let mut last = String::from("the start of the archive");
    let result = scan_entries(&mut limited, wanted, limits, &mut entries, &mut last);
    match (result, limited.stop.take()) {
        (Ok(()), _) => Ok(entries),
        (Err(_), Some(Stop::TooLarge)) => Err(NeffError::TooLarge {
            what: "decompressed payload".into(),
            size: limited.count,
            limit: limits.max_decompressed,
        }),
        (Err(_), Some(Stop::Gzip(message))) => Err(NeffError::BadGzip {
            decompressed: limited.count,
            message,
        }),
        (Err(e), None) => Err(e),
    }
}

fn scan_entries<R: Read>(
    stream: &mut R,
    wanted: &[&str],
    limits: &Limits,
    out: &mut Entries,
    last: &mut String,
) -> Result<()> {
    let mut archive = Archive::new(stream);
    while let Some(entry) = archive.next_entry(last)? {
        out.seen += 1;
        let name = clean(&entry.name).to_owned();
        *last = format!("entry `{name}`");
        if !entry.regular || !wanted.contains(&name.as_str()) || out.kept.contains_key(&name) {
            continue;
        }
        let size = entry.size;
        if size > limits.max_entry {
            return Err(NeffError::TooLarge {
                what: format!("entry `{name}`"),
                size,
                limit: limits.max_entry,
            });
        }
        // Grown as the data arrives: a header may claim more than the archive holds.
        let mut bytes = Vec::with_capacity(size.min(1 << 16) as usize);
        archive.read_data(size, &mut bytes, &format!("entry `{name}`"))?;
        out.kept.insert(name, bytes);
        if wanted.iter().all(|w| out.kept.contains_key(*w)) {
            break;
        }
    }
    Ok(())
}
