//! Collectives in the in-process simulator: `nrt_load_collectives`, the collective ops of
//! the model format, the rendezvous of the ranks of a group (sync and async), a rank that
//! never arrives, and the load-time checks of rank, world and environment; and ranks in
//! separate processes meeting over `NEURON_RT_ROOT_COMM_ID` (children of this binary).

mod common;

use common::*;
use nrt_sim::ffi::*;
use nrt_sim::{DType, ModelBuilder, Op, build_model_from_text, describe_model};
use nrt_sys::*;

/// Every collective op over `world` ranks of an f32 `[4]` input `x`:
/// `s` = all_reduce, `g` = all_gather (`[4 * world]`), `r` = reduce_scatter.
fn cc_model(world: u32) -> Vec<u8> {
    ModelBuilder::new("cc")
        .input("x", DType::F32, &[4])
        .output("s", DType::F32, &[4])
        .output("g", DType::F32, &[4 * world])
        .output("r", DType::F32, &[4 / world])
        .op(Op::AllReduce {
            input: "x".into(),
            out: "s".into(),
        })
        .op(Op::AllGather {
            input: "x".into(),
            ranks: world,
            out: "g".into(),
        })
        .op(Op::ReduceScatter {
            input: "x".into(),
            ranks: world,
            out: "r".into(),
        })
        .build()
        .unwrap()
}

fn try_load_rank(
    bytes: &[u8],
    vnc: i32,
    rank: u32,
    world: u32,
) -> Result<*mut nrt_model_t, NRT_STATUS> {
    let mut m = std::ptr::null_mut();
    // SAFETY: `bytes` is readable; valid out-pointer.
    let status = unsafe {
        nrt_load_collectives(
            bytes.as_ptr().cast(),
            bytes.len(),
            vnc,
            -1,
            rank,
            world,
            &mut m,
        )
    };
    if status == NRT_SUCCESS {
        Ok(m)
    } else {
        Err(status)
    }
}

fn load_rank(bytes: &[u8], vnc: i32, rank: u32, world: u32) -> *mut nrt_model_t {
    try_load_rank(bytes, vnc, rank, world)
        .unwrap_or_else(|s| panic!("load rank {rank}: {s}: {}", last_error()))
}

/// One rank of `cc_model(world)` on core `vnc`, with its tensors.
struct Rank {
    model: *mut nrt_model_t,
    tensors: Vec<*mut nrt_tensor_t>,
    inputs: *mut nrt_tensor_set_t,
    outputs: *mut nrt_tensor_set_t,
}

// SAFETY: the handles are opaque tokens the simulator checks; it is thread-safe.
unsafe impl Send for Rank {}
// SAFETY: as above.
unsafe impl Sync for Rank {}

impl Rank {
    fn new(vnc: i32, rank: u32, world: u32, x: &[f32]) -> Rank {
        let model = load_rank(&cc_model(world), vnc, rank, world);
        let n = 4 / world as usize;
        let tx = alloc(vnc, 16, "x");
        let (s, g, r) = (
            alloc(vnc, 16, "s"),
            alloc(vnc, 16 * world as usize, "g"),
            alloc(vnc, 4 * n, "r"),
        );
        write_f32(tx, x);
        Rank {
            model,
            tensors: vec![tx, s, g, r],
            inputs: set_of(&[("x", tx)]),
            outputs: set_of(&[("s", s), ("g", g), ("r", r)]),
        }
    }

    fn execute(&self) -> NRT_STATUS {
        execute(self.model, self.inputs, self.outputs)
    }

    /// (sum, gathered, scattered block)
    fn results(&self, world: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        (
            read_f32(self.tensors[1], 4),
            read_f32(self.tensors[2], 4 * world),
            read_f32(self.tensors[3], 4 / world),
        )
    }

    fn release(self) {
        destroy_set(self.inputs);
        destroy_set(self.outputs);
        for t in self.tensors {
            free(t);
        }
        unload(self.model);
    }
}

const X0: [f32; 4] = [1.0, 2.0, 3.0, 4.0];
const X1: [f32; 4] = [10.0, 20.0, 30.0, 0.5];

#[test]
fn collective_ops_give_exact_results_on_every_rank() {
    let _s = Session::new();
    let ranks = [Rank::new(0, 0, 2, &X0), Rank::new(1, 1, 2, &X1)];
    let statuses: Vec<NRT_STATUS> = std::thread::scope(|s| {
        let handles: Vec<_> = ranks
            .iter()
            .map(|r| spawn_with_exec_stack(s, || r.execute()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(statuses, [NRT_SUCCESS, NRT_SUCCESS], "{}", last_error());
    let sum = vec![11.0, 22.0, 33.0, 4.5];
    let gathered = [X0, X1].concat();
    assert_eq!(
        ranks[0].results(2),
        (sum.clone(), gathered.clone(), vec![11.0, 22.0])
    );
    assert_eq!(ranks[1].results(2), (sum, gathered, vec![33.0, 4.5]));
    for r in ranks {
        r.release();
    }
    assert_eq!(counters().live_objects(), 0);
}

#[test]
fn async_executions_of_every_rank_meet_on_their_compute_units() {
    let _s = Session::new();
    let ranks = [Rank::new(0, 0, 2, &X0), Rank::new(1, 1, 2, &X1)];
    let mut rets = [SENTINEL; 2];
    let mut seqs = [0 as nrta_seq_t; 2];
    for (i, r) in ranks.iter().enumerate() {
        // SAFETY: handles checked by the simulator; `rets[i]` and `seqs[i]` outlive the
        // request (waited for below).
        let status = unsafe {
            nrta_execute_schedule(r.model, r.inputs, r.outputs, 0, &mut rets[i], &mut seqs[i])
        };
        assert_eq!(status, NRT_SUCCESS, "{}", last_error());
    }
    for seq in seqs {
        wait_completed(seq);
    }
    assert_eq!(rets, [NRT_SUCCESS, NRT_SUCCESS]);
    assert_eq!(ranks[1].results(2).0, vec![11.0, 22.0, 33.0, 4.5]);
    for r in ranks {
        r.release();
    }
}

#[test]
fn a_world_of_one_is_a_plain_copy_and_all_reduce_models_load_alone() {
    let _s = Session::new();
    let r = Rank::new(0, 0, 1, &X0);
    assert_eq!(
        on_exec_stack(|| r.execute()),
        NRT_SUCCESS,
        "{}",
        last_error()
    );
    assert_eq!(r.results(1), (X0.to_vec(), X0.to_vec(), X0.to_vec()));
    r.release();
}

#[test]
fn a_rank_that_never_executes_fails_the_others_with_the_collective_status() {
    if !in_child(
        "a_rank_that_never_executes_fails_the_others_with_the_collective_status",
        &[("NEURON_RT_EXEC_TIMEOUT", "0.3")],
    ) {
        return;
    }
    let _s = Session::new();
    let ranks = [Rank::new(0, 0, 2, &X0), Rank::new(1, 1, 2, &X1)];
    // The error line is per thread: read it on the executing one.
    let (status, message) = on_exec_stack(|| (ranks[0].execute(), last_error()));
    assert_eq!(status, NRT_EXEC_HW_ERR_COLLECTIVES);
    assert!(message.contains("rank(s) [1] never arrived"), "{message}");
    // The group recovers: the next execution of both ranks meets.
    let statuses: Vec<NRT_STATUS> = std::thread::scope(|s| {
        let handles: Vec<_> = ranks
            .iter()
            .map(|r| spawn_with_exec_stack(s, || r.execute()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(statuses, [NRT_SUCCESS, NRT_SUCCESS]);
    for r in ranks {
        r.release();
    }
}

#[test]
fn a_rank_not_loaded_in_this_process_is_named_in_the_error() {
    if !in_child(
        "a_rank_not_loaded_in_this_process_is_named_in_the_error",
        &[("NEURON_RT_EXEC_TIMEOUT", "0.2")],
    ) {
        return;
    }
    let _s = Session::new();
    let r = Rank::new(1, 1, 2, &X1);
    let (status, message) = on_exec_stack(|| (r.execute(), last_error()));
    assert_eq!(status, NRT_EXEC_HW_ERR_COLLECTIVES);
    assert!(
        message.contains("rank(s) [0] are not loaded in this process")
            && message.contains("NEURON_RT_ROOT_COMM_ID"),
        "{message}"
    );
    r.release();
}

#[test]
fn bad_ranks_worlds_and_placements_are_refused_at_load() {
    let _s = Session::new();
    let m2 = cc_model(2);
    assert_eq!(try_load_rank(&m2, 0, 2, 2), Err(NRT_INVALID));
    assert!(last_error().contains("rank (ctx_device_id) 2 is not below the world size"));
    assert_eq!(try_load_rank(&m2, 0, 0, 0), Err(NRT_INVALID));
    assert_eq!(try_load(&m2, 0), Err(NRT_INVALID));
    assert!(last_error().contains("load it with nrt_load_collectives"));
    assert_eq!(try_load_rank(&cc_model(1), 0, 0, 2), Err(NRT_INVALID));
    assert!(last_error().contains("compiled for a world of 1 ranks"));
    let first = load_rank(&m2, 0, 0, 2);
    assert_eq!(try_load_rank(&m2, 1, 0, 2), Err(NRT_INVALID));
    assert!(last_error().contains("rank 0 of world 2 of model 'cc' is already loaded"));
    assert_eq!(try_load_rank(&m2, 0, 1, 2), Err(NRT_INVALID));
    assert!(last_error().contains("core 0 already runs rank 0"));
    unload(first);
    // Two cores visible by default: a world of 4 needs other processes.
    let m4 = cc_model(4);
    assert_eq!(try_load_rank(&m4, 0, 0, 4), Err(NRT_INVALID));
    assert!(last_error().contains("NEURON_RT_ROOT_COMM_ID"));
    assert_eq!(counters().live_objects(), 0);
}

#[test]
fn the_model_format_writes_and_checks_collective_ops() {
    let text = "nrt-sim-model 1\nname tp\ninput x f32 [6,2]\noutput g f32 [18,2]\noutput r f32 [2,2]\noutput s f32 [6,2]\n\
                op all_gather x 3 g\nop reduce_scatter x 3 r\nop all_reduce x s\n";
    let file = build_model_from_text(text).unwrap();
    let canonical = describe_model(&file).unwrap();
    assert!(canonical.contains("op all_gather x 3 g"), "{canonical}");
    assert!(canonical.contains("op reduce_scatter x 3 r"), "{canonical}");
    assert!(canonical.contains("op all_reduce x s"), "{canonical}");
    let uneven = ModelBuilder::new("bad")
        .input("x", DType::F32, &[5])
        .output("r", DType::F32, &[2])
        .op(Op::ReduceScatter {
            input: "x".into(),
            ranks: 2,
            out: "r".into(),
        })
        .build()
        .unwrap_err();
    assert!(
        uneven
            .message()
            .contains("does not split into 2 equal blocks")
    );
    let mixed = build_model_from_text(
        "nrt-sim-model 1\nname m\ninput x f32 [4]\noutput a f32 [8]\noutput b f32 [1]\nop all_gather x 2 a\nop reduce_scatter x 4 b\n",
    )
    .unwrap_err();
    assert!(
        mixed.message().contains("names 4 ranks, but op 0 names 2"),
        "{mixed}"
    );
}

// --- ranks across processes ------------------------------------------------------------

/// A port nobody listens on right now (bound, then released).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The body of one rank of a world of two, each in its own process with one core:
/// rank `CC_RANK` executes `CC_RUNS` times (default 3) and checks every result bit for
/// bit; with `CC_THEN_FAIL` set, one more execution must fail (the other rank is gone).
#[test]
fn child_rank_of_a_world_of_two_processes() {
    let Ok(rank) = std::env::var("CC_RANK") else {
        return; // only run as a child of the tests below
    };
    let rank: u32 = rank.parse().unwrap();
    let runs: usize = std::env::var("CC_RUNS").map_or(3, |v| v.parse().unwrap());
    let _s = Session::new();
    let r = Rank::new(0, rank, 2, if rank == 0 { &X0 } else { &X1 });
    for _ in 0..runs {
        assert_eq!(
            on_exec_stack(|| r.execute()),
            NRT_SUCCESS,
            "{}",
            last_error()
        );
        let sum = vec![11.0, 22.0, 33.0, 4.5];
        let block = if rank == 0 {
            vec![11.0, 22.0]
        } else {
            vec![33.0, 4.5]
        };
        assert_eq!(r.results(2), (sum, [X0, X1].concat(), block));
    }
    if std::env::var_os("CC_THEN_FAIL").is_some() {
        let (status, message) = on_exec_stack(|| (r.execute(), last_error()));
        assert_eq!(status, NRT_EXEC_HW_ERR_COLLECTIVES, "{message}");
        assert!(message.contains("rank(s) [1] never connected"), "{message}");
    }
    if std::env::var_os("CC_GLOBAL").is_some() {
        // The global communicator on the same root address while the model's group
        // still holds it: a barrier, then an all-gather of each rank's bytes.
        // SAFETY: no pointer arguments.
        let status = unsafe { nrt_barrier(0, rank, 2) };
        assert_eq!(status, NRT_SUCCESS, "{}", last_error());
        let input = [rank as u8 + 1; 3];
        let mut output = [0u8; 6];
        // SAFETY: 3 readable bytes in, 2 x 3 writable bytes out, not overlapping.
        let status = unsafe {
            nrt_all_gather(
                0,
                rank,
                2,
                3,
                input.as_ptr().cast_mut().cast(),
                output.as_mut_ptr().cast(),
            )
        };
        assert_eq!(status, NRT_SUCCESS, "{}", last_error());
        assert_eq!(output, [1, 1, 1, 2, 2, 2]);
        // And the model's group still works after it.
        assert_eq!(
            on_exec_stack(|| r.execute()),
            NRT_SUCCESS,
            "{}",
            last_error()
        );
    }
    r.release();
}

/// Runs `child_rank_of_a_world_of_two_processes` as ranks 0 and 1 at once, each with
/// its extra variables, and asserts that both passed.
fn run_two_rank_processes(extra: [&[(&str, &str)]; 2]) {
    let name = "child_rank_of_a_world_of_two_processes";
    let root = format!("127.0.0.1:{}", free_port());
    let children: Vec<_> = ["0", "1"]
        .into_iter()
        .zip(extra)
        .map(|(rank, extra)| {
            let mut env = vec![
                ("CC_RANK", rank),
                ("NRT_SIM_VNC_COUNT", "1"),
                ("NEURON_RT_ROOT_COMM_ID", root.as_str()),
                ("NEURON_RT_EXEC_TIMEOUT", "5"),
            ];
            env.extend_from_slice(extra);
            let mut cmd = child_command(name, &env);
            cmd.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    for child in children {
        assert_child_passed(name, &child.wait_with_output().unwrap());
    }
}

#[test]
fn all_reduce_across_two_processes_is_exact() {
    if std::env::var_os("NRT_SIM_TEST_CHILD").is_some() {
        return;
    }
    run_two_rank_processes([&[], &[]]);
}

#[test]
fn the_global_communicator_meets_across_processes_beside_a_models_group() {
    if std::env::var_os("NRT_SIM_TEST_CHILD").is_some() {
        return;
    }
    run_two_rank_processes([&[("CC_GLOBAL", "1")], &[("CC_GLOBAL", "1")]]);
}

#[test]
fn a_rank_process_that_exits_fails_rank_0_with_the_collective_status() {
    if std::env::var_os("NRT_SIM_TEST_CHILD").is_some() {
        return;
    }
    // Both meet once; rank 1 exits (its connection drops), rank 0's next execution
    // waits for it to connect again and fails at its 5 s timeout.
    run_two_rank_processes([
        &[("CC_RUNS", "1"), ("CC_THEN_FAIL", "1")],
        &[("CC_RUNS", "1")],
    ]);
}

#[test]
fn a_rank_missing_from_another_process_fails_the_present_one_with_the_collective_status() {
    let root = format!("127.0.0.1:{}", free_port());
    if !in_child(
        "a_rank_missing_from_another_process_fails_the_present_one_with_the_collective_status",
        &[
            ("NEURON_RT_EXEC_TIMEOUT", "0.5"),
            ("NRT_SIM_VNC_COUNT", "2"),
            ("NEURON_RT_ROOT_COMM_ID", &root),
        ],
    ) {
        return;
    }
    let _s = Session::new();
    // Rank 1 alone: rank 0 never listens.
    let r1 = Rank::new(1, 1, 2, &X1);
    let start = std::time::Instant::now();
    let (status, message) = on_exec_stack(|| (r1.execute(), last_error()));
    assert_eq!(status, NRT_EXEC_HW_ERR_COLLECTIVES, "{message}");
    assert!(message.contains("rank(s) [0] never arrived"), "{message}");
    r1.release();
    // Rank 0 alone: rank 1 never connects.
    let r0 = Rank::new(0, 0, 2, &X0);
    let (status, message) = on_exec_stack(|| (r0.execute(), last_error()));
    assert_eq!(status, NRT_EXEC_HW_ERR_COLLECTIVES, "{message}");
    assert!(message.contains("rank(s) [1] never connected"), "{message}");
    // Two timeouts of 0.5 s, with a generous bound.
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
    r0.release();
}

#[test]
fn a_non_loopback_root_comm_id_is_refused_at_load() {
    if !in_child(
        "a_non_loopback_root_comm_id_is_refused_at_load",
        &[("NEURON_RT_ROOT_COMM_ID", "10.1.2.3:5000")],
    ) {
        return;
    }
    let _s = Session::new();
    assert_eq!(try_load_rank(&cc_model(2), 0, 0, 2), Err(NRT_INVALID));
    let message = last_error();
    assert!(
        message.contains("10.1.2.3:5000") && message.contains("not a loopback address"),
        "{message}"
    );
    assert_eq!(counters().live_objects(), 0);
}

#[test]
fn a_rank_of_an_absurd_world_is_refused_at_load() {
    if !in_child(
        "a_rank_of_an_absurd_world_is_refused_at_load",
        &[("NEURON_RT_ROOT_COMM_ID", "127.0.0.1:9")],
    ) {
        return;
    }
    let _s = Session::new();
    let start = std::time::Instant::now();
    // A model without collectives takes any world; 2^26 ranks would take gigabytes of
    // per-rank state before anything runs.
    let plain = add_model(1, std::time::Duration::ZERO);
    assert_eq!(try_load_rank(&plain, 0, 0, 1 << 26), Err(NRT_INVALID));
    let message = last_error();
    assert!(
        message.contains("67108864") && message.contains("4096"),
        "{message}"
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(2));
}
