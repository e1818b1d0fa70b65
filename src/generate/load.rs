//! Uploading weights: many tensors to several cores from several threads, with
//! progress; [`LoadReport`]; [`measure_upload`] against a `memcpy` of the same bytes.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::weights::WeightFile;
use crate::error::{Error, Result};
use crate::objects::{Placement, Runtime, Tensor};

/// Uploads are split into pieces of at most this many bytes: progress moves in steps
/// this fine, and threads share the work of a few large tensors.
const PIECE: usize = 8 << 20;

/// How far a weight upload has come: reported to the callback of
/// [`BundleBuilder::progress`](super::BundleBuilder::progress) after every piece.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadProgress {
    /// Bytes written to devices so far (all cores together).
    pub bytes_done: u64,
    /// Bytes to write in all (the weights' bytes times the cores).
    pub bytes_total: u64,
}

/// A progress callback, called from the upload threads.
pub(crate) type Progress = Arc<dyn Fn(LoadProgress) + Send + Sync>;

/// How a weight upload went ([`Bundle::load_report`](super::Bundle::load_report)).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LoadReport {
    /// Bytes of the weights the bundle uses, once (as in the file).
    pub weight_bytes: u64,
    /// Bytes written to devices: the weights on every core (and state values taken
    /// from the file).
    pub uploaded_bytes: u64,
    /// Bytes of state tensors per core (zeroed or from the file).
    pub state_bytes: u64,
    /// Wall time of the upload (from the first write to the last one's end).
    pub elapsed: Duration,
    /// Threads that wrote.
    pub threads: usize,
    /// Cores written to.
    pub cores: usize,
}

impl LoadReport {
    /// The upload rate: [`uploaded_bytes`](LoadReport::uploaded_bytes) per second of
    /// [`elapsed`](LoadReport::elapsed), in MB/s (10^6 bytes); 0 when nothing was
    /// uploaded.
    pub fn upload_mb_per_s(&self) -> f64 {
        mb_per_s(self.uploaded_bytes, self.elapsed)
    }
}

fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    let s = elapsed.as_secs_f64();
    if bytes == 0 || s <= 0.0 {
        0.0
    } else {
        bytes as f64 / s / 1e6
    }
}

/// One piece of an upload: `data` into `tensor` at `offset`.
pub(crate) struct Piece<'a> {
    pub(crate) tensor: &'a Tensor,
    pub(crate) offset: usize,
    pub(crate) data: &'a [u8],
}

/// The pieces of writing `data` into the whole of `tensor`.
pub(crate) fn pieces<'a>(tensor: &'a Tensor, data: &'a [u8], out: &mut Vec<Piece<'a>>) {
    let mut offset = 0;
    for chunk in data.chunks(PIECE) {
        out.push(Piece {
            tensor,
            offset,
            data: chunk,
        });
        offset += chunk.len();
    }
}

/// Writes every piece with `threads` threads (each takes the next piece not yet
/// taken, so the order is the list's); reports progress after each, one call at a
/// time and never twice the same count (so counts only grow). The first error
/// stops every thread and is returned.
pub(crate) fn upload(
    pieces: &[Piece<'_>],
    threads: usize,
    progress: Option<&Progress>,
) -> Result<(Duration, usize)> {
    let total: u64 = pieces.iter().map(|p| p.data.len() as u64).sum();
    let threads = threads.clamp(1, pieces.len().max(1));
    let next = AtomicUsize::new(0);
    let done = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let reported = Mutex::new(0u64);
    let work = || {
        while !failed.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(p) = pieces.get(i) else { break };
            if let Err(e) = p.tensor.write_at(p.offset, p.data) {
                failed.store(true, Ordering::Relaxed);
                first_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert(e);
                break;
            }
            done.fetch_add(p.data.len() as u64, Ordering::Relaxed);
            if let Some(f) = progress {
                // One call at a time, each with more bytes than the one before.
                let mut last = reported.lock().unwrap_or_else(|e| e.into_inner());
                let bytes_done = done.load(Ordering::Relaxed);
                if bytes_done > *last {
                    *last = bytes_done;
                    f(LoadProgress {
                        bytes_done,
                        bytes_total: total,
                    });
                }
            }
        }
    };
    let start = Instant::now();
    if threads == 1 {
        work();
    } else {
        std::thread::scope(|s| -> Result<()> {
            let mut handles = Vec::with_capacity(threads - 1);
            for _ in 1..threads {
                let handle = std::thread::Builder::new()
                    .name("neuron-rt-upload".into())
                    .spawn_scoped(s, work)
                    .map_err(|error| Error::Thread {
                        what: "weight upload",
                        error,
                    });
                match handle {
                    Ok(h) => handles.push(h),
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                }
            }
            work();
            Ok(())
        })?;
    }
    let elapsed = start.elapsed();
    match first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(e),
        None => Ok((elapsed, threads)),
    }
}

/// An upload rate next to a `memcpy` of the same bytes ([`measure_upload`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UploadMeasurement {
    /// The upload: every tensor of the file to each core.
    pub upload: LoadReport,
    /// The same bytes copied by `memcpy` from the same file (the same mapping or
    /// buffer) into pre-faulted host buffers, with the same number of threads, in MB/s.
    pub memcpy_mb_per_s: f64,
    /// Wall time of that copy.
    pub memcpy_elapsed: Duration,
}

/// Measures how fast the weights of `file` reach the devices, next to how fast the host
/// copies the same bytes: uploads every tensor of `file` into new device tensors on
/// each of `cores` with `threads` threads (as a bundle load does), and copies the same
/// bytes, in the same pieces, from the same file into a pre-faulted host buffer as large
/// as everything uploaded, with the same number of threads. The copy runs first, so both see the page cache and the
/// mapping warm. The device tensors are freed before returning.
///
/// ```
/// use neuron_rt::Runtime;
/// use neuron_rt::generate::{WeightFile, measure_upload, write_synthetic_weights};
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("w.safetensors");
/// write_synthetic_weights(&path, 4, 1 << 20)?;
/// let file = WeightFile::read(&path)?;
/// let runtime = Runtime::builder().simulator().build()?;
/// let m = measure_upload(&runtime, &file, &[0], 1)?;
/// assert_eq!(m.upload.uploaded_bytes, 1 << 20);
/// println!("upload {:.0} MB/s, memcpy {:.0} MB/s", m.upload.upload_mb_per_s(), m.memcpy_mb_per_s);
/// # Ok::<(), neuron_rt::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::InvalidArgument`] for no cores or 0 threads; otherwise as
/// [`Runtime::allocate_tensor`] and [`Tensor::write_at`].
pub fn measure_upload(
    runtime: &Runtime,
    file: &WeightFile,
    cores: &[u32],
    threads: usize,
) -> Result<UploadMeasurement> {
    if cores.is_empty() || threads == 0 {
        return Err(Error::invalid(
            "cores",
            format!("needs at least one core and one thread, got {cores:?} and {threads}"),
        ));
    }
    let views: Vec<_> = file.names().filter_map(|n| file.get(n)).collect();
    // The memcpy: the same pieces, each into its own place in one host buffer as large
    // as everything uploaded (so, like device memory, every destination byte is
    // distinct), faulted in before the clock starts.
    let mut copy_pieces: Vec<&[u8]> = Vec::new();
    for _ in cores {
        for v in &views {
            copy_pieces.extend(v.data.chunks(PIECE));
        }
    }
    let copied: u64 = copy_pieces.iter().map(|p| p.len() as u64).sum();
    let mut dest = vec![1u8; usize::try_from(copied).unwrap_or(usize::MAX)];
    let mut jobs: Vec<Vec<(&[u8], &mut [u8])>> = (0..threads).map(|_| Vec::new()).collect();
    let mut rest = dest.as_mut_slice();
    for (i, p) in copy_pieces.iter().enumerate() {
        let (here, after) = rest.split_at_mut(p.len());
        jobs[i % threads].push((p, here));
        rest = after;
    }
    let start = Instant::now();
    std::thread::scope(|s| {
        for list in jobs {
            s.spawn(move || {
                for (src, dst) in list {
                    dst.copy_from_slice(src);
                    std::hint::black_box(dst);
                }
            });
        }
    });
    let memcpy_elapsed = start.elapsed();
    drop(dest);
    // The upload, as a bundle load does it.
    let mut tensors = Vec::with_capacity(views.len() * cores.len());
    for &core in cores {
        for v in &views {
            tensors.push((
                runtime.allocate_tensor(Placement::Device, Some(core), v.data.len(), v.name)?,
                v.data,
            ));
        }
    }
    let mut list = Vec::new();
    for (t, data) in &tensors {
        pieces(t, data, &mut list);
    }
    let (elapsed, threads) = upload(&list, threads, None)?;
    Ok(UploadMeasurement {
        upload: LoadReport {
            weight_bytes: file.data_bytes(),
            uploaded_bytes: copied,
            state_bytes: 0,
            elapsed,
            threads,
            cores: cores.len(),
        },
        memcpy_mb_per_s: mb_per_s(copied, memcpy_elapsed),
        memcpy_elapsed,
    })
}

/// Writes a `.safetensors` file of `tensors` f32 tensors named `w{i}` of
/// `total_bytes / tensors` bytes each (rounded down to whole elements), filled with a
/// pattern, for upload measurements.
///
/// # Errors
///
/// [`Error::InvalidArgument`] for 0 tensors or a size under 4 bytes per tensor;
/// [`Error::Io`] if the file cannot be written.
pub fn write_synthetic_weights(
    path: &std::path::Path,
    tensors: usize,
    total_bytes: u64,
) -> Result<()> {
    let each = usize::try_from(total_bytes / tensors.max(1) as u64).unwrap_or(usize::MAX) / 4;
    if tensors == 0 || each == 0 {
        return Err(Error::invalid(
            "tensors",
            format!(
                "{tensors} tensors of {total_bytes} bytes together: each needs at least 4 bytes"
            ),
        ));
    }
    let mut header = String::from("{");
    for i in 0..tensors {
        let (a, b) = (i * each * 4, (i + 1) * each * 4);
        if i > 0 {
            header.push(',');
        }
        header.push_str(&format!(
            r#""w{i}":{{"dtype":"F32","shape":[{each}],"data_offsets":[{a},{b}]}}"#
        ));
    }
    header.push('}');
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let io = |error| Error::Io {
        path: path.to_path_buf(),
        error,
    };
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    out.write_all(&(header.len() as u64).to_le_bytes())
        .map_err(io)?;
    out.write_all(header.as_bytes()).map_err(io)?;
    let block: Vec<u8> = (0..each * 4).map(|i| (i % 251) as u8).collect();
    for _ in 0..tensors {
        out.write_all(&block).map_err(io)?;
    }
    out.flush().map_err(io)
}
