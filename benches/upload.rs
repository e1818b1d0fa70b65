//! Weight upload (issue 27, item 3): a synthetic 256 MiB `.safetensors` of 64 f32
//! tensors, memory-mapped (page cache warm: written just before, then read once),
//! uploaded to every simulated core with one thread per core, next to a `memcpy` of the
//! same bytes from the same mapping into pre-faulted buffers with the same thread count,
//! in the same run (`neuron_rt::generate::measure_upload`). Five rounds; the best of
//! each is reported (the quietest moment of a shared machine).
//!
//! `cargo bench --bench upload`: one line,
//! `upload bytes=<b> cores=<c> threads=<t> upload_mb_per_s=<u> memcpy_mb_per_s=<r> dma_mb_per_s=<d> ratio=<u/min(r,d)>`,
//! with d = the simulator's DMA rate (`NRT_SIM_DMA_GBPS`, default 16 GB/s) x cores.
//! Environment: `UPLOAD_MIB` (default 256), `UPLOAD_TENSORS` (64), `UPLOAD_ROUNDS` (5).

use neuron_rt::Runtime;
use neuron_rt::generate::{WeightFile, measure_upload, write_synthetic_weights};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let bytes = env("UPLOAD_MIB", 256) << 20;
    let tensors = env("UPLOAD_TENSORS", 64) as usize;
    let rounds = env("UPLOAD_ROUNDS", 5).max(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("synthetic.safetensors");
    write_synthetic_weights(&path, tensors, bytes).expect("write weights");
    // SAFETY: the bench's own temporary file, not changed while mapped.
    let file = unsafe { WeightFile::map(&path) }.expect("map weights");
    let runtime = Runtime::builder().simulator().build().expect("simulator");
    let cores: Vec<u32> = (0..runtime.visible_core_count().expect("cores")).collect();
    let gbps: f64 = std::env::var("NRT_SIM_DMA_GBPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16.0);
    let dma = gbps * 1000.0 * cores.len() as f64;
    let (mut upload, mut memcpy) = (0.0f64, 0.0f64);
    let mut uploaded = 0;
    for _ in 0..rounds {
        let m = measure_upload(&runtime, &file, &cores, cores.len()).expect("measure");
        upload = upload.max(m.upload.upload_mb_per_s());
        memcpy = memcpy.max(m.memcpy_mb_per_s);
        uploaded = m.upload.uploaded_bytes;
    }
    println!(
        "upload bytes={uploaded} cores={} threads={} upload_mb_per_s={upload:.0} memcpy_mb_per_s={memcpy:.0} dma_mb_per_s={dma:.0} ratio={:.2}",
        cores.len(),
        cores.len(),
        upload / memcpy.min(dma)
    );
}
