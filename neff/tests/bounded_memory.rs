//! Memory the reader allocates on crafted files, counted by this test binary's global
//! allocator (per thread, so tests running in parallel do not see each other's): tar
//! extension entries (GNU long names and links, PAX local and global headers) are refused
//! by their announced size before a byte of them is kept, and a payload whose hash is
//! wrong is refused before it is decompressed.

mod crafted;

use neuron_neff::{Neff, NeffError, ParseOptions};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// [`System`], counting the bytes live on each thread and their peak.
struct Counting;

thread_local! {
    // const-initialised, no destructor: no allocation and no registration on first use,
    // so the allocator can use them.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    // try_with: allocations during thread teardown are not counted.
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is forwarded to `System` with the same arguments; the counting
// touches only const-initialised thread-locals (no allocation, no re-entry).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded (the caller's obligations are the same).
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded.
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// `f`'s result and the most bytes it had allocated at once on this thread.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let out = f();
    let peak = PEAK.with(Cell::get) - start;
    (out, peak.max(0) as usize)
}

/// What the reader may allocate for these small files: its buffers, the decoder's state,
/// the headers and error text.
const SMALL: usize = 2 << 20;

const MIB: u64 = 1 << 20;

fn kind_name(kind: u8) -> char {
    kind as char
}

#[test]
fn extension_entries_holding_16_mib_are_refused_before_they_are_kept() {
    for kind in crafted::EXTENSIONS {
        let file = crafted::with_extension(kind, 16 * MIB, 16 * MIB);
        assert!(file.len() < 256 << 10, "{} bytes", file.len());
        let (result, peak) = peak_of(|| Neff::parse(&file));
        assert!(
            peak < SMALL,
            "type {}: {peak} bytes allocated",
            kind_name(kind)
        );
        let e = result.unwrap_err();
        match &e {
            NeffError::TooLarge { what, size, limit } => {
                assert_eq!(*size, 16 * MIB, "{e}");
                assert!(*limit < 16 * MIB, "{e}");
                assert!(what.contains(&format!("`{}`", kind_name(kind))), "{e}");
            }
            other => panic!("type {}: {other}", kind_name(kind)),
        }
    }
}

#[test]
fn extension_entries_announcing_a_terabyte_are_refused_at_their_header() {
    for kind in crafted::EXTENSIONS {
        // 1 TiB announced, 1 MiB + 1 held: the file ends long before the announced size.
        let file = crafted::with_extension(kind, 1 << 40, MIB + 1);
        let (result, peak) = peak_of(|| Neff::parse(&file));
        let e = result.unwrap_err();
        assert!(
            matches!(&e, NeffError::TooLarge { size, .. } if *size == 1 << 40),
            "type {}: {e}",
            kind_name(kind)
        );
        assert!(e.to_string().contains("1099511627776"), "{e}");
        assert!(
            peak < SMALL,
            "type {}: {peak} bytes allocated",
            kind_name(kind)
        );
    }
}

#[test]
fn small_extension_entries_and_ustar_prefixes_still_read() {
    // A GNU long name for the graph, and a PAX header naming it: both read.
    let long = format!("{}/neff.json", "d".repeat(120));
    let mut tar = Vec::new();
    crafted::entry(
        &mut tar,
        "././@LongLink",
        b'L',
        format!("{long}\0").as_bytes(),
    );
    crafted::entry(&mut tar, "ignored", b'0', b"{}");
    let record = "path=neff.json";
    // The length counts itself (2 digits), the space, the record and the newline.
    let record = format!("{} {record}\n", record.len() + 4);
    crafted::entry(&mut tar, "PaxHeaders/x", b'x', record.as_bytes());
    crafted::entry(&mut tar, "short-name", b'0', b"{}");
    // A ustar name prefix.
    let prefix = "p".repeat(130);
    tar.extend_from_slice(&crafted::ustar_header(&prefix, "info.json", 2));
    tar.extend_from_slice(b"{}");
    tar.resize(tar.len().next_multiple_of(512), 0);
    crafted::end(&mut tar);
    let file = crafted::neff(&crafted::gzip(&[crafted::Part::Bytes(&tar)]));
    let in_prefix = format!("{prefix}/info.json");
    let opts = ParseOptions {
        keep_entries: vec![long.clone(), in_prefix.clone()],
        ..ParseOptions::default()
    };
    let neff = Neff::parse_with(&file, &opts).unwrap();
    assert_eq!(neff.entry(&long), Some(&b"{}"[..]));
    assert_eq!(neff.entry(&in_prefix), Some(&b"{}"[..]));
}

#[test]
fn a_payload_with_a_wrong_hash_is_refused_before_it_is_decompressed() {
    // A 32 MiB neff.json of spaces (about 32 KiB compressed): read whole by a reader that
    // decompresses first.
    let good = crafted::big_json(32 * MIB);
    assert!(good.len() < 1 << 20, "{} bytes", good.len());
    // The check means something: with the right hash the entry is read and kept.
    let (result, peak) = peak_of(|| Neff::parse(&good));
    assert!(result.is_ok(), "{}", result.unwrap_err());
    assert!(peak as u64 >= 32 * MIB, "{peak} bytes allocated");
    let bad = crafted::wrong_hash(good);
    let (result, peak) = peak_of(|| Neff::parse(&bad));
    let e = result.unwrap_err();
    assert!(matches!(e, NeffError::BadHash { .. }), "{e}");
    assert!(
        peak < SMALL,
        "{peak} bytes allocated before the hash was found wrong"
    );
    // The same from a file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.neff");
    std::fs::write(&path, &bad).unwrap();
    let (result, peak) = peak_of(|| Neff::open(&path));
    let e = result.unwrap_err();
    assert!(matches!(e, NeffError::BadHash { .. }), "{e}");
    assert!(
        peak < SMALL,
        "{peak} bytes allocated before the hash was found wrong"
    );
}
