//! Host-driven collectives on the global communicator through the safe API on the
//! dlopen'ed simulator: `Runtime::build_global_comm` and `Runtime::barrier` (ranks on
//! threads meet, a missing rank fails in time, bad arguments are typed errors) and
//! `Runtime::all_gather` (`nrt_all_gather`: every rank's data in rank order, round after
//! round; a missing rank fails in time with the collective status; lengths that do not
//! fit are typed errors naming them; a library without the function says so); ranks in
//! two processes meet at a barrier and gather over `NEURON_RT_ROOT_COMM_ID`, and a rank
//! whose part has another size than rank 0's is named in rank 0's error with both sizes.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use neuron_rt::nrt_sys::Library;
use neuron_rt::{Error, NrtStatus, RankSpec, Runtime};

/// Runs `body(rank)` for ranks `0..world` on cores `0..world`, one thread each.
fn on_ranks<T: Send>(world: u32, body: impl Fn(RankSpec) -> T + Sync) -> Vec<T> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..world)
            .map(|rank| {
                let body = &body;
                s.spawn(move || body(RankSpec::new(rank, rank, world).unwrap()))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn four_ranks_get_every_ranks_data_in_rank_order_round_after_round() {
    let (_g, rt) = support::collective_runtime();
    let gathered = on_ranks(4, |spec| {
        let mut rounds = Vec::new();
        for round in 0..3u32 {
            let mine: Vec<f32> = (0..5)
                .map(|i| (100 * round + 10 * spec.rank + i) as f32)
                .collect();
            rounds.push(rt.all_gather(spec, &mine).unwrap());
        }
        // Other element types go through the same bytes.
        let words = rt.all_gather(spec, &[spec.rank as u16 * 257]).unwrap();
        (rounds, words)
    });
    for round in 0..3u32 {
        let expected: Vec<f32> = (0..4u32)
            .flat_map(|rank| (0..5).map(move |i| (100 * round + 10 * rank + i) as f32))
            .collect();
        for (rank, (rounds, _)) in gathered.iter().enumerate() {
            assert_eq!(
                rounds[round as usize], expected,
                "rank {rank}, round {round}"
            );
        }
    }
    for (_, words) in &gathered {
        assert_eq!(words, &[0, 257, 514, 771]);
    }
    drop(rt);
    support::assert_no_leaks();
}

#[test]
fn all_gather_into_fills_the_callers_buffer_and_checks_its_length() {
    let (_g, rt) = support::collective_runtime();
    let spec = RankSpec::new(0, 0, 1).unwrap();
    let mut out = [0i32; 3];
    rt.all_gather_into(spec, &[4, 5, 6], &mut out).unwrap();
    assert_eq!(out, [4, 5, 6]);

    let two = RankSpec::new(0, 0, 2).unwrap();
    let err = rt
        .all_gather_into(two, &[1i32; 3], &mut [0; 5])
        .unwrap_err();
    match &err {
        Error::InvalidArgument {
            argument: "output",
            reason,
        } => assert!(
            reason.contains("5 elements")
                && reason.contains("3 elements from each of 2 ranks needs 6"),
            "{reason}"
        ),
        other => panic!("{other}"),
    }
    // An empty input gathers nothing, on every rank.
    assert!(rt.all_gather::<f32>(spec, &[]).unwrap().is_empty());
}

#[test]
fn a_missing_rank_fails_the_all_gather_with_the_collective_status_in_time() {
    let (_g, rt) = support::collective_runtime();
    let start = Instant::now();
    let result = rt.all_gather(RankSpec::new(1, 1, 2).unwrap(), &[1u8; 8]);
    let err = result.unwrap_err();
    assert_eq!(err.status(), Some(NrtStatus::ExecHwErrCollectives), "{err}");
    assert!(
        matches!(
            &err,
            Error::Nrt {
                function: "nrt_all_gather",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("rank 1 of 2 on core 1"), "{err}");
    // NEURON_RT_EXEC_TIMEOUT is 0.5 s here.
    assert!(start.elapsed() < Duration::from_secs(5));
    // The communicator works again once both ranks come.
    let gathered = on_ranks(2, |spec| rt.all_gather(spec, &[spec.rank as u8]).unwrap());
    assert_eq!(gathered, [[0, 1], [0, 1]]);
}

#[test]
fn ranks_giving_different_lengths_all_fail_as_invalid() {
    let (_g, rt) = support::collective_runtime();
    let results = on_ranks(2, |spec| {
        let input = vec![7u8; 2 + spec.rank as usize];
        rt.all_gather(spec, &input)
    });
    for (rank, result) in results.iter().enumerate() {
        let err = result.as_ref().unwrap_err();
        assert_eq!(err.status(), Some(NrtStatus::Invalid), "rank {rank}: {err}");
        // The simulator's reason, with both sizes, is in the error.
        let (mine, other) = (2 + rank, 3 - rank);
        let why = format!(
            "nrt-sim's reason: nrt_all_gather: member {rank} of 2 gave rank_input_size {mine} but member {} gave {other}",
            1 - rank
        );
        assert!(err.to_string().contains(&why), "rank {rank}: {err}");
    }
}

#[test]
fn bad_ranks_are_typed_errors_naming_the_values() {
    let (_g, rt) = support::collective_runtime();
    let far = RankSpec::new(9, 0, 1).unwrap();
    let err = rt.all_gather(far, &[1u8]).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument { argument: "core", reason } if reason.contains("core 9")),
        "{err}"
    );
    let bad = RankSpec {
        core: 0,
        rank: 3,
        world: 2,
    };
    let err = rt.all_gather(bad, &[1u8]).unwrap_err();
    assert!(matches!(&err, Error::InvalidArgument { .. }), "{err}");
    // A world so large that the output cannot exist is refused before anything runs.
    let huge = RankSpec {
        core: 0,
        rank: 0,
        world: u32::MAX,
    };
    let err = rt.all_gather_into(huge, &[0u64; 4], &mut []).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::InvalidArgument {
                argument: "output",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn an_input_above_u32_max_bytes_is_refused_naming_its_size() {
    let (_g, rt) = support::collective_runtime();
    // 4 GiB each, zeroed: the allocator maps zero pages, which nothing here touches.
    let input = vec![0u8; 1 << 32];
    let mut output = vec![0u8; 1 << 32];
    let spec = RankSpec::new(0, 0, 1).unwrap();
    let err = rt.all_gather_into(spec, &input, &mut output).unwrap_err();
    match &err {
        Error::InvalidArgument {
            argument: "input",
            reason,
        } => assert!(
            reason.contains("4294967296 bytes per rank") && reason.contains("at most 4294967295"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_library_without_all_gather_says_so() {
    let _g = support::lock();
    let mut fns = *support::sim().fns();
    fns.nrt_all_gather = None;
    // SAFETY: the dlopen'ed simulator's own functions, one of them removed.
    let lib = unsafe { Library::in_process("sim-without-all-gather", fns, None) };
    let rt = Runtime::builder().library(lib).build().unwrap();
    let err = rt
        .all_gather(RankSpec::new(0, 0, 1).unwrap(), &[1u8])
        .unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { needed: Some(n), .. } if n.contains("nrt_all_gather")),
        "{err}"
    );
}

#[test]
fn two_ranks_on_threads_meet_at_barriers() {
    let (_g, rt) = support::collective_runtime();
    let entered = AtomicU32::new(0);
    on_ranks(2, |spec| {
        rt.build_global_comm(spec).unwrap();
        for round in 1..=3u32 {
            if spec.rank == 1 {
                std::thread::sleep(Duration::from_millis(20));
            }
            entered.fetch_add(1, Ordering::SeqCst);
            rt.barrier(spec).unwrap();
            // Nobody leaves a barrier before both ranks entered it.
            let now = entered.load(Ordering::SeqCst);
            assert!(now >= 2 * round, "round {round}: {now} entered");
        }
    });
}

#[test]
fn a_missing_rank_fails_the_barrier_with_the_collective_status_in_time() {
    let (_g, rt) = support::collective_runtime();
    let start = Instant::now();
    let result = rt.barrier(RankSpec::new(0, 0, 2).unwrap());
    assert_eq!(
        result.as_ref().err().and_then(Error::status),
        Some(NrtStatus::ExecHwErrCollectives)
    );
    assert!(
        matches!(
            &result,
            Err(Error::Nrt {
                function: "nrt_barrier",
                ..
            })
        ),
        "{result:?}"
    );
    assert!(
        result
            .unwrap_err()
            .to_string()
            .contains("rank 0 of 2 on core 0")
    );
    // NEURON_RT_EXEC_TIMEOUT is 0.5 s here.
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn bad_barrier_arguments_are_typed_errors_naming_the_values() {
    let (_g, rt) = support::collective_runtime();
    let far = RankSpec::new(9, 0, 1).unwrap();
    for result in [rt.barrier(far), rt.build_global_comm(far)] {
        assert!(
            matches!(&result, Err(Error::InvalidArgument { argument: "core", reason }) if reason.contains("core 9")),
            "{result:?}"
        );
    }
    let bad = RankSpec {
        core: 0,
        rank: 2,
        world: 2,
    };
    assert!(matches!(
        rt.barrier(bad),
        Err(Error::InvalidArgument { .. })
    ));
    // A world other than the communicator's is libnrt's to refuse.
    rt.build_global_comm(RankSpec::new(0, 0, 2).unwrap())
        .unwrap();
    let other = rt.build_global_comm(RankSpec::new(1, 0, 1).unwrap());
    assert_eq!(
        other.err().and_then(|e| e.status()),
        Some(NrtStatus::Invalid)
    );
}

/// One rank process of `ranks_in_two_processes_meet_and_gather` (a no-op otherwise): its
/// rank from the launcher's variables, a barrier, then an all-gather checked exactly.
/// With `ALL_GATHER_CHILD=mismatch` (`a_part_of_the_wrong_size_is_named_in_the_error`)
/// rank 1 gathers 65536 bytes where rank 0 gathers 16, and rank 0's error must say so.
#[test]
fn child_rank_process() {
    let Some(mode) = std::env::var_os("ALL_GATHER_CHILD") else {
        return;
    };
    let spec = RankSpec::from_env().unwrap();
    let rt = support::runtime();
    rt.barrier(spec).unwrap();
    if mode == "mismatch" {
        let mine = vec![spec.rank; if spec.rank == 1 { 16384 } else { 4 }];
        let err = rt.all_gather(spec, &mine).unwrap_err();
        let text = err.to_string();
        println!("rank {}: {text}", spec.rank);
        if spec.rank == 0 {
            assert_eq!(err.status(), Some(NrtStatus::Invalid), "{text}");
            assert!(
                text.contains("nrt-sim's reason: nrt_all_gather: "),
                "{text}"
            );
            assert!(
                text.contains("rank 1 sent a part of 65536 bytes where every rank contributes 16"),
                "{text}"
            );
            assert_eq!(err.cause().map(|c| text.contains(c)), Some(true), "{text}");
        }
        return;
    }
    let mine: Vec<u32> = (0..3).map(|i| 10 * spec.rank + i).collect();
    let all = rt.all_gather(spec, &mine).unwrap();
    assert_eq!(all, [0, 1, 2, 10, 11, 12]);
}

/// Runs `child_rank_process` as ranks 0 and 1 in two processes with `mode`; asserts both
/// passed.
fn two_rank_processes(mode: &str, exec_timeout: &str) {
    // A free port for rank 0: bound, then released for rank 0 to listen on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Both at once: each waits for the other at the barrier.
    let children: Vec<_> = (0..2)
        .map(|rank: u32| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "child_rank_process",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("ALL_GATHER_CHILD", mode)
                .env("RANK", rank.to_string())
                .env("WORLD_SIZE", "2")
                .env("LOCAL_RANK", rank.to_string())
                .env("NEURON_RT_ROOT_COMM_ID", format!("127.0.0.1:{port}"))
                .env("NEURON_RT_VISIBLE_CORES", rank.to_string())
                .env("NRT_SIM_VNC_COUNT", "2")
                .env("NEURON_RT_EXEC_TIMEOUT", exec_timeout)
                .env_remove("NEURON_RT_NUM_CORES")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let children: Vec<_> = children
        .into_iter()
        .map(|child| child.wait_with_output().unwrap())
        .collect();
    for (rank, out) in children.iter().enumerate() {
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "rank {rank}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn ranks_in_two_processes_meet_and_gather() {
    if std::env::var_os("ALL_GATHER_CHILD").is_none() {
        two_rank_processes("1", "10");
    }
}

#[test]
fn a_part_of_the_wrong_size_is_named_in_the_error() {
    if std::env::var_os("ALL_GATHER_CHILD").is_none() {
        two_rank_processes("mismatch", "3");
    }
}

#[test]
fn an_all_gather_whose_output_cannot_be_allocated_is_a_typed_error() {
    let (_g, rt) = support::collective_runtime();
    // u32::MAX ranks of 4 u64 each: 137 GB, more than this machine can map. The output
    // was allocated before any check and the process aborted.
    let huge = RankSpec {
        core: 0,
        rank: 0,
        world: u32::MAX,
    };
    let err = rt.all_gather(huge, &[0u64; 4]).unwrap_err();
    match &err {
        Error::InvalidArgument {
            argument: "output",
            reason,
        } => assert!(
            reason.contains("4294967295") && reason.contains("137438953440"),
            "{reason}"
        ),
        other => panic!("{other}"),
    }
    // Beyond the address space.
    // 2 GiB of zeroed input (pages never touched) from each of u32::MAX ranks.
    let input = vec![0u64; 1 << 28];
    let err = rt.all_gather(huge, &input).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::InvalidArgument {
                argument: "output",
                ..
            }
        ),
        "{err}"
    );
}
