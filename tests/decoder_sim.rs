//! The small decoder bundle on the simulator, executed member by member through the C
//! API (one device tensor bound as a state input and as its aliased output), against
//! the plain-Rust reference of `support/decoder_ref.rs`: cached decode equals full
//! recomputation, device argmax and the device chain equal host greedy, padding writes
//! nothing, bad indices fail with `NRT_EXEC_OOB`, no byte of a cache goes to the host,
//! one copy of the weights per core.

#[path = "support/decoder_ref.rs"]
mod decoder_ref;

use decoder_ref::{Reference, VOCAB, argmax, rel_err};
use nrt_sim::ffi::*;
use nrt_sys::*;
use std::collections::HashMap;
use std::ffi::CString;
use std::path::Path;
use std::sync::Mutex;

/// One runtime per process: the tests take turns.
static SERIAL: Mutex<()> = Mutex::new(());

const CACHES: [&str; 4] = ["k_l0", "v_l0", "k_l1", "v_l1"];
const CACHE_BYTES: usize = 4 * 4 * 128 * 16 * 4;
const TOLERANCE: f32 = 1e-5;

fn control() -> nrt_sim::SimControl {
    nrt_sim::SimControl::new(nrt_sim::library()).expect("in-process nrt-sim")
}

fn last_error() -> String {
    control().last_error().unwrap_or_default()
}

fn i32_bytes(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The loaded bundle with its shared device tensors on core 0.
struct Rig {
    models: HashMap<String, *mut nrt_model_t>,
    /// Weights (by checkpoint key) and caches (by state name): one tensor each.
    shared: Vec<(String, *mut nrt_tensor_t)>,
    /// Every tensor allocated, for freeing and for the memory count.
    tensors: Vec<*mut nrt_tensor_t>,
    /// Device bytes the rig should occupy: model files plus tensors.
    expected_bytes: u64,
    reference: Reference,
}

impl Rig {
    fn new(dir: &Path) -> Rig {
        // SAFETY: the version strings are not read.
        let status =
            unsafe { nrt_init(NRT_FRAMEWORK_TYPE_NO_FW, std::ptr::null(), std::ptr::null()) };
        assert_eq!(status, NRT_SUCCESS, "nrt_init: {}", last_error());
        let mut rig = Rig {
            models: HashMap::new(),
            shared: Vec::new(),
            tensors: Vec::new(),
            expected_bytes: 0,
            reference: Reference::load(&dir.join("weights.safetensors")),
        };
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("bundle.json")).unwrap()).unwrap();
        for m in json["members"].as_array().unwrap() {
            let file = std::fs::read(dir.join(m["file"].as_str().unwrap())).unwrap();
            let mut model = std::ptr::null_mut();
            // SAFETY: `file` is readable; valid out-pointer.
            let status = unsafe { nrt_load(file.as_ptr().cast(), file.len(), 0, -1, &mut model) };
            assert_eq!(status, NRT_SUCCESS, "load {m}: {}", last_error());
            rig.expected_bytes += file.len() as u64;
            rig.models.insert(m["name"].as_str().unwrap().into(), model);
        }
        let mut keys: Vec<String> = rig.reference.ckpt.tensors.keys().cloned().collect();
        keys.sort();
        for key in keys {
            let bytes: Vec<u8> = rig
                .reference
                .ckpt
                .get(&key)
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            let t = rig.tensor(&key, bytes.len());
            write(t, &bytes);
            rig.shared.push((key, t));
        }
        for name in CACHES {
            let t = rig.tensor(name, CACHE_BYTES);
            write(t, &vec![0u8; CACHE_BYTES]);
            rig.shared.push((name.into(), t));
        }
        rig
    }

    fn tensor(&mut self, name: &str, size: usize) -> *mut nrt_tensor_t {
        let c = CString::new(name).unwrap();
        let mut t = std::ptr::null_mut();
        // SAFETY: valid name and out-pointer.
        let status = unsafe {
            nrt_tensor_allocate(NRT_TENSOR_PLACEMENT_DEVICE, 0, size, c.as_ptr(), &mut t)
        };
        assert_eq!(status, NRT_SUCCESS, "allocate {name}: {}", last_error());
        self.tensors.push(t);
        self.expected_bytes += size as u64;
        t
    }

    fn cache(&self, name: &str) -> *mut nrt_tensor_t {
        self.shared.iter().find(|(n, _)| n == name).unwrap().1
    }

    /// Executes `member` with `inputs` (besides the shared weights and caches) and
    /// `outputs` (besides the caches, bound to the same tensors as their inputs).
    fn run(
        &self,
        member: &str,
        inputs: &[(&str, *mut nrt_tensor_t)],
        outputs: &[(&str, *mut nrt_tensor_t)],
    ) -> NRT_STATUS {
        let ins = set(inputs
            .iter()
            .copied()
            .chain(self.shared.iter().map(|(n, t)| (n.as_str(), *t))));
        let cache_outs: Vec<(String, *mut nrt_tensor_t)> = CACHES
            .iter()
            .map(|c| (format!("{c}.out"), self.cache(c)))
            .collect();
        let outs = set(outputs
            .iter()
            .copied()
            .chain(cache_outs.iter().map(|(n, t)| (n.as_str(), *t))));
        // SAFETY: handles checked by the simulator.
        let status = unsafe { nrt_execute(self.models[member], ins, outs) };
        for mut s in [ins, outs] {
            // SAFETY: a live set handle.
            unsafe { nrt_destroy_tensor_set(&mut s) };
        }
        status
    }

    /// Runs a member taking `input_ids`, `position_ids`, `seq_ids` and returning
    /// `result` (`logits` f32 or `next_ids` i32) of `result_len` elements.
    fn step(
        &mut self,
        member: &str,
        ids: &[i32],
        pos: &[i32],
        seq: &[i32],
        result: &str,
        result_len: usize,
    ) -> Result<Vec<u8>, NRT_STATUS> {
        let names = [
            ("input_ids", i32_bytes(ids)),
            ("position_ids", i32_bytes(pos)),
            ("seq_ids", i32_bytes(seq)),
        ];
        let mut ins = Vec::new();
        for (name, bytes) in &names {
            let t = self.tensor(name, bytes.len());
            write(t, bytes);
            ins.push((*name, t));
        }
        let out = self.tensor(result, result_len * 4);
        let status = self.run(member, &ins, &[(result, out)]);
        if status != NRT_SUCCESS {
            return Err(status);
        }
        Ok(read(out, result_len * 4))
    }

    fn logits(&mut self, member: &str, ids: &[i32], pos: &[i32], seq: &[i32]) -> Vec<f32> {
        let rows = seq.len();
        let bytes = self
            .step(member, ids, pos, seq, "logits", rows * VOCAB)
            .unwrap_or_else(|s| panic!("{member}: {s}: {}", last_error()));
        f32s(&bytes)
    }

    fn ids(&mut self, member: &str, ids: &[i32], pos: &[i32], seq: &[i32]) -> Vec<i32> {
        let bytes = self
            .step(member, ids, pos, seq, "next_ids", seq.len())
            .unwrap_or_else(|s| panic!("{member}: {s}: {}", last_error()));
        bytes
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn host_reads(&self, t: *mut nrt_tensor_t) -> u64 {
        control()
            .tensor_transfers(t)
            .expect("a live tensor")
            .device_to_host_bytes
    }
}

/// Unloads, frees and closes, also when a test panics (so the next test gets a runtime).
impl Drop for Rig {
    fn drop(&mut self) {
        for &m in self.models.values() {
            // SAFETY: a live model handle.
            unsafe { nrt_unload(m) };
        }
        for t in &mut self.tensors {
            // SAFETY: a live tensor handle.
            unsafe { nrt_tensor_free(t) };
        }
        // SAFETY: no arguments.
        unsafe { nrt_close() };
    }
}

fn set<'a>(entries: impl Iterator<Item = (&'a str, *mut nrt_tensor_t)>) -> *mut nrt_tensor_set_t {
    let mut s = std::ptr::null_mut();
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { nrt_allocate_tensor_set(&mut s) }, NRT_SUCCESS);
    for (name, t) in entries {
        let c = CString::new(name).unwrap();
        // SAFETY: valid C string and handles.
        assert_eq!(
            unsafe { nrt_add_tensor_to_tensor_set(s, c.as_ptr(), t) },
            NRT_SUCCESS
        );
    }
    s
}

fn write(t: *mut nrt_tensor_t, bytes: &[u8]) {
    // SAFETY: `bytes` is readable for its length.
    let status = unsafe { nrt_tensor_write(t, bytes.as_ptr().cast(), 0, bytes.len()) };
    assert_eq!(status, NRT_SUCCESS, "write: {}", last_error());
}

fn read(t: *mut nrt_tensor_t, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    // SAFETY: `out` is writable for `len` bytes.
    let status = unsafe { nrt_tensor_read(t, out.as_mut_ptr().cast(), 0, len) };
    assert_eq!(status, NRT_SUCCESS, "read: {}", last_error());
    out
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Runs `f` on a rig over a fresh bundle, on a thread with room for `nrt_execute`.
fn with_rig(f: impl FnOnce(&mut Rig) + Send) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The refused indices' log lines go to a buffer (printed only if the test fails).
    control().capture_log(true);
    let _ = control().take_log();
    let dir = tempfile::tempdir().unwrap();
    let mut options = nrt_sim::decoder::DecoderBundleOptions::default();
    options.seed = 7;
    nrt_sim::decoder::write_bundle(dir.path(), &options).expect("bundle");
    let path = dir.path().to_path_buf();
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(16 << 20)
            .spawn_scoped(s, move || {
                let mut rig = Rig::new(&path);
                f(&mut rig);
            })
            .unwrap()
            .join()
            .unwrap_or_else(|p| {
                for line in control().take_log() {
                    eprintln!("{line}");
                }
                std::panic::resume_unwind(p)
            })
    });
}

/// Prompt bytes padded to `t` with id 0 and position -1.
fn padded(prompt: &[u32], t: usize) -> (Vec<i32>, Vec<i32>) {
    let mut ids: Vec<i32> = prompt.iter().map(|&x| x as i32).collect();
    let mut pos: Vec<i32> = (0..prompt.len() as i32).collect();
    ids.resize(t, 0);
    pos.resize(t, -1);
    (ids, pos)
}

#[test]
fn cached_decode_equals_full_recomputation_and_device_sampling_equals_host_greedy() {
    with_rig(|rig| {
        let prompt: Vec<u32> = b"the cache ".iter().map(|&b| b as u32).collect();
        let (ids, pos) = padded(&prompt, 16);
        // Host sampling, slot 0: prefill, then 32 decode steps through the cache.
        let mut seq = prompt.clone();
        let mut logits = rig.logits("prefill_t16", &ids, &pos, &[0]);
        let mut worst = 0.0f32;
        let mut greedy = Vec::new();
        for step in 0..=32 {
            let want = rig.reference.forward(&seq).pop().unwrap();
            let err = rel_err(&logits, &want);
            assert!(err <= TOLERANCE, "step {step}: err {err}");
            worst = worst.max(err);
            let next = argmax(&want);
            assert_eq!(argmax(&logits), next, "step {step}: argmax");
            if step == 32 {
                break;
            }
            greedy.push(next as i32);
            let p = seq.len() as i32;
            seq.push(next);
            logits = rig.logits("decode_b1_logits", &[next as i32], &[p], &[0]);
        }
        eprintln!("cached decode vs reference: max_rel_err={worst:e} over 33 steps");
        // Re-running prefill on the whole sequence (slot 3) gives the cached result.
        let (ids64, pos64) = padded(&seq, 64);
        let again = rig.logits("prefill_t64", &ids64, &pos64, &[3]);
        let err = rel_err(&logits, &again);
        assert!(err <= TOLERANCE, "cached vs re-run prefill: {err}");
        eprintln!("cached decode vs prefill re-run: rel_err={err:e}");

        // Device sampling, slot 1: step N's next_ids tensor is step N+1's input_ids.
        let first = argmax(&rig.logits("prefill_t16", &ids, &pos, &[1])) as i32;
        assert_eq!(first, greedy[0]);
        let ring = [rig.tensor("ids_a", 4), rig.tensor("ids_b", 4)];
        let (pos_t, seq_t) = (rig.tensor("position_ids", 4), rig.tensor("seq_ids", 4));
        write(ring[0], &i32_bytes(&[first]));
        write(seq_t, &i32_bytes(&[1]));
        for (k, want) in greedy.iter().enumerate().skip(1) {
            write(pos_t, &i32_bytes(&[(prompt.len() + k - 1) as i32]));
            let (input, output) = (ring[(k - 1) % 2], ring[k % 2]);
            let status = rig.run(
                "decode_b1_ids",
                &[
                    ("input_ids", input),
                    ("position_ids", pos_t),
                    ("seq_ids", seq_t),
                ],
                &[("next_ids", output)],
            );
            assert_eq!(status, NRT_SUCCESS, "{}", last_error());
            let got = i32::from_le_bytes(read(output, 4).try_into().unwrap());
            assert_eq!(got, *want, "device argmax at step {k}");
        }

        // The device chain, slot 2: embed, layer 0, layer 1, head, hidden on the device.
        rig.logits("prefill_t16", &ids, &pos, &[2]);
        let hidden: Vec<_> = (0..3)
            .map(|i| rig.tensor(&format!("h{i}"), 64 * 4))
            .collect();
        let (ids_t, next_t) = (rig.tensor("input_ids", 4), rig.tensor("next_ids", 4));
        write(seq_t, &i32_bytes(&[2]));
        let mut current = greedy[0];
        for (k, want) in greedy.iter().enumerate().skip(1) {
            write(ids_t, &i32_bytes(&[current]));
            write(pos_t, &i32_bytes(&[(prompt.len() + k - 1) as i32]));
            let tokens = [("position_ids", pos_t), ("seq_ids", seq_t)];
            assert_eq!(
                rig.run(
                    "chain_embed",
                    &[("input_ids", ids_t)],
                    &[("hidden", hidden[0])]
                ),
                NRT_SUCCESS
            );
            for l in 0..2 {
                let mut ins = vec![("hidden", hidden[l])];
                ins.extend(tokens);
                let status = rig.run(
                    &format!("chain_layer_{l}"),
                    &ins,
                    &[("hidden_out", hidden[l + 1])],
                );
                assert_eq!(status, NRT_SUCCESS, "{}", last_error());
            }
            assert_eq!(
                rig.run(
                    "chain_head_ids",
                    &[("hidden", hidden[2])],
                    &[("next_ids", next_t)]
                ),
                NRT_SUCCESS
            );
            current = i32::from_le_bytes(read(next_t, 4).try_into().unwrap());
            assert_eq!(current, *want, "chain argmax at step {k}");
        }

        // Not one byte of any cache went to the host; one weight copy on the core.
        for c in CACHES {
            assert_eq!(rig.host_reads(rig.cache(c)), 0, "{c} was read back");
        }
        let used = control().counters().cores[0].device_bytes;
        assert_eq!(
            used, rig.expected_bytes,
            "device bytes: models + one copy of each tensor"
        );
    });
}

#[test]
fn batched_decode_matches_per_row_and_inactive_rows_touch_nothing() {
    with_rig(|rig| {
        let prompts: [&[u8]; 3] = [b"abc", b"hello wor", b"z"];
        let mut seqs: Vec<Vec<u32>> = Vec::new();
        for (slot, p) in prompts.iter().enumerate() {
            let prompt: Vec<u32> = p.iter().map(|&b| b as u32).collect();
            let (ids, pos) = padded(&prompt, 16);
            rig.logits("prefill_t16", &ids, &pos, &[slot as i32]);
            seqs.push(prompt);
        }
        // Row 3 is inactive: padding position, an out-of-range slot (not used).
        let next: Vec<u32> = seqs
            .iter()
            .map(|s| argmax(&rig.reference.forward(s).pop().unwrap()))
            .collect();
        let ids = [next[0] as i32, next[1] as i32, next[2] as i32, 0];
        let pos = [
            seqs[0].len() as i32,
            seqs[1].len() as i32,
            seqs[2].len() as i32,
            -1,
        ];
        let seq = [0, 1, 2, 99];
        let logits = rig.logits("decode_b4_logits", &ids, &pos, &seq);
        for r in 0..3 {
            let mut s = seqs[r].clone();
            s.push(next[r]);
            let want = rig.reference.forward(&s).pop().unwrap();
            let err = rel_err(&logits[r * VOCAB..(r + 1) * VOCAB], &want);
            assert!(err <= TOLERANCE, "row {r}: {err}");
        }
        assert!(
            logits[3 * VOCAB..].iter().all(|&x| x == 0.0),
            "inactive row's logits are 0"
        );
        let got = rig.ids(
            "decode_b4_ids",
            &[ids[0], ids[1], ids[2], 0],
            &[pos[0] + 1, pos[1] + 1, pos[2] + 1, -1],
            &seq,
        );
        assert_eq!(got[3], 0, "inactive row's id is 0");
        // Slot 3 was never written; slot 2 holds positions 0..=2 (prompt 1 + 2 decodes).
        let k = f32s(&read(rig.cache("k_l0"), CACHE_BYTES));
        let row = |slot: usize, p: usize| &k[((slot * 4) * 128 + p) * 16..][..16];
        assert!(
            k[3 * 4 * 128 * 16..].iter().all(|&x| x == 0.0),
            "slot 3 written"
        );
        assert!((0..3).all(|p| row(2, p).iter().any(|&x| x != 0.0)));
        assert!(
            row(2, 3).iter().all(|&x| x == 0.0),
            "slot 2 position 3 written"
        );
        // That read is counted: the counter sees host copies when there are some.
        assert_eq!(rig.host_reads(rig.cache("k_l0")), CACHE_BYTES as u64);
    });
}

#[test]
fn padding_positions_write_no_cache_rows() {
    with_rig(|rig| {
        let prompt: Vec<u32> = b"pad".iter().map(|&b| b as u32).collect();
        let (ids, pos) = padded(&prompt, 16);
        rig.logits("prefill_t16", &ids, &pos, &[2]);
        for c in CACHES {
            let v = f32s(&read(rig.cache(c), CACHE_BYTES));
            for slot in 0..4 {
                for head in 0..4 {
                    for p in 0..128 {
                        let row = &v[((slot * 4 + head) * 128 + p) * 16..][..16];
                        let written = row.iter().any(|&x| x != 0.0);
                        assert_eq!(
                            written,
                            slot == 2 && p < 3,
                            "{c} slot {slot} head {head} position {p}"
                        );
                    }
                }
            }
        }
    });
}

#[test]
fn bad_ids_slots_and_positions_fail_with_exec_oob_and_leave_the_cache() {
    with_rig(|rig| {
        let (ids, pos) = padded(&[1, 2, 3], 16);
        rig.logits("prefill_t16", &ids, &pos, &[0]);
        let before: Vec<Vec<u8>> = CACHES
            .iter()
            .map(|c| read(rig.cache(c), CACHE_BYTES))
            .collect();
        // (input_ids, position_ids, seq_ids, what the error names)
        type Case = (&'static [i32], &'static [i32], &'static [i32], &'static str);
        let cases: [Case; 5] = [
            (&[256], &[3], &[0], "id 256"),
            (&[-1], &[3], &[0], "id -1"),
            (&[5], &[3], &[4], "seq_id 4"),
            (&[5], &[128], &[0], "position 128"),
            (&[5], &[-2], &[0], "position -2"),
        ];
        for (ids, pos, seq, what) in cases {
            let status = rig
                .step("decode_b1_logits", ids, pos, seq, "logits", VOCAB)
                .unwrap_err();
            assert_eq!(status, NRT_EXEC_OOB, "{what}");
            let e = last_error();
            assert!(e.contains(what), "{what}: {e}");
        }
        let after: Vec<Vec<u8>> = CACHES
            .iter()
            .map(|c| read(rig.cache(c), CACHE_BYTES))
            .collect();
        assert!(before == after, "a failed execution changed a cache");
    });
}
