//! Collective groups: the ranks of one model loaded with `nrt_load_collectives` in this
//! process, and their rendezvous per collective step in shared state.
//!
//! Every collective of an execution is one round: each rank contributes its bytes and
//! waits until all `world` ranks have; then every rank gets all contributions (in rank
//! order) and combines them itself, so all ranks compute the same bits. A rank that
//! waits past its execution's deadline withdraws its contribution and fails with
//! `NRT_EXEC_HW_ERR_COLLECTIVES` (the runtime's status for an execution stuck in a
//! collective), naming the ranks that never arrived.
//!
//! With `NEURON_RT_ROOT_COMM_ID` set and some rank of the world not loaded in this
//! process, every rank loaded here meets the others over TCP instead ([`super::net`]),
//! with the same contributions in, the same parts out and the same failure status.

use super::net::{Link, Place, lock};
use crate::error::{Res, fail};
use crate::model::Exchange;
use nrt_sys::*;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The name the global communicator's ranks greet each other with across processes.
const GLOBAL_NAME: &str = "nrt global communicator";

/// The step of the global group's barrier rounds: barriers follow each other, and a
/// round ends before its members can start the next one.
pub(crate) const BARRIER_STEP: usize = 0;

/// The step of the global group's all-gather rounds (a member in a barrier while another
/// is in an all-gather waits for the timeout, as on a device).
pub(crate) const ALL_GATHER_STEP: usize = 1;

/// One collective group of this process: a model name and a world size.
pub(crate) struct Group {
    pub(crate) name: String,
    pub(crate) world: u32,
    /// The global communicator (`nrt_build_global_comm`, `nrt_barrier`), not a model's
    /// group: only the wording of its errors differs.
    global: bool,
    /// The ranks run a real NEFF in signature-only mode: messages say the outputs are
    /// synthetic.
    synthetic: bool,
    state: Mutex<Meet>,
    arrived: Condvar,
    /// Rank 0's address (`NEURON_RT_ROOT_COMM_ID`) and each rank's link to the group,
    /// used when some rank is not loaded in this process.
    net: Option<(SocketAddr, Vec<Mutex<Link>>)>,
}

#[derive(Default)]
struct Meet {
    /// The core each rank is loaded on, `None` for ranks not loaded here.
    members: Vec<Option<u32>>,
    /// The round collecting contributions, by collective step.
    open: HashMap<usize, Round>,
    /// Completed rounds not yet read by every rank, by round serial.
    done: HashMap<u64, Done>,
    next_serial: u64,
}

struct Round {
    serial: u64,
    parts: Vec<Option<Vec<u8>>>,
    arrived: u32,
}

struct Done {
    parts: Arc<Vec<Vec<u8>>>,
    readers_left: u32,
}

impl Group {
    pub(crate) fn new(name: String, world: u32, root: Option<SocketAddr>) -> Group {
        let net = root.map(|addr| {
            let links = (0..world)
                .map(|r| Mutex::new(Link::new(r, world)))
                .collect();
            (addr, links)
        });
        Group {
            net,
            global: false,
            synthetic: false,
            name,
            world,
            state: Mutex::new(Meet {
                members: vec![None; world as usize],
                ..Meet::default()
            }),
            arrived: Condvar::new(),
        }
    }

    /// The global communicator of a world of `world` (`nrt_build_global_comm`,
    /// `nrt_cc_global_comm_init`, `nrt_barrier`): its members are (core, global id).
    pub(crate) fn global(world: u32, root: Option<SocketAddr>) -> Group {
        Group {
            global: true,
            ..Group::new(GLOBAL_NAME.to_string(), world, root)
        }
    }

    /// The group of a real NEFF's ranks (signature-only mode), when `yes`.
    pub(crate) fn synthetic(mut self, yes: bool) -> Group {
        self.synthetic = yes;
        self
    }

    /// What the group is, for messages.
    fn what(&self) -> String {
        if self.global {
            "the global communicator".to_string()
        } else if self.synthetic {
            format!(
                "model '{}' (real NEFF, signature-only mode: outputs are synthetic, not results)",
                self.name
            )
        } else {
            format!("model '{}'", self.name)
        }
    }

    /// The collective a round is, for messages.
    fn round(&self, step: usize) -> String {
        if self.global {
            match step {
                BARRIER_STEP => "the barrier".to_string(),
                _ => "the all-gather".to_string(),
            }
        } else {
            format!("collective {step}")
        }
    }

    /// Registers `rank` on `core` unless it already is (a global communicator is set
    /// up again at no cost); fails as [`Group::join`] otherwise.
    pub(crate) fn enter(&self, rank: u32, core: u32) -> Res<()> {
        if self.meet().members[rank as usize] == Some(core) {
            return Ok(());
        }
        self.join(rank, core)
    }

    fn meet(&self) -> MutexGuard<'_, Meet> {
        lock(&self.state)
    }

    /// Registers `rank` as loaded on `core`; fails for a rank already loaded or a core
    /// another rank of the group uses (their executions would wait on each other).
    pub(crate) fn join(&self, rank: u32, core: u32) -> Res<()> {
        let mut m = self.meet();
        if let Some(c) = m.members[rank as usize] {
            return fail(
                NRT_INVALID,
                format!(
                    "rank {rank} of world {} of {} is already {}",
                    self.world,
                    self.what(),
                    if self.global {
                        format!("registered (on core {c}); a rank has one core")
                    } else {
                        format!("loaded (on core {c}); unload it first")
                    }
                ),
            );
        }
        if let Some(other) = m.members.iter().position(|c| *c == Some(core)) {
            return fail(
                NRT_INVALID,
                format!(
                    "core {core} already runs rank {other} of {}; every rank of a group needs its own core",
                    self.what()
                ),
            );
        }
        m.members[rank as usize] = Some(core);
        Ok(())
    }

    /// Unregisters `rank`; returns whether the group has no member left.
    pub(crate) fn leave(&self, rank: u32) -> bool {
        let mut m = self.meet();
        m.members[rank as usize] = None;
        if let Some((_, links)) = &self.net {
            // Closes the rank's connections (and rank 0's listener).
            *lock(&links[rank as usize]) = Link::new(rank, self.world);
        }
        m.members.iter().all(Option::is_none)
    }

    /// The exchange over TCP of `rank` (some rank of the world is in another process).
    fn exchange_net(
        &self,
        (root, links): (SocketAddr, &[Mutex<Link>]),
        rank: u32,
        step: usize,
        bytes: Vec<u8>,
        deadline: Instant,
        timeout: Duration,
    ) -> Res<Vec<Vec<u8>>> {
        let at = Place {
            name: &self.name,
            world: self.world,
            rank,
            root,
        };
        lock(&links[rank as usize])
            .exchange(&at, step, bytes, deadline)
            .or_else(|why| {
                fail(
                    NRT_EXEC_HW_ERR_COLLECTIVES,
                    format!(
                        "rank {rank} of world {} of {} (across processes, NEURON_RT_ROOT_COMM_ID={root}) failed in {} within {timeout:?} (NEURON_RT_EXEC_TIMEOUT): {why}",
                        self.world,
                        self.what(),
                        self.round(step)
                    ),
                )
            })
    }

    /// Contributes `bytes` of `rank` to collective `step` and waits, until `deadline`,
    /// for every rank's contribution.
    pub(crate) fn exchange(
        &self,
        rank: u32,
        step: usize,
        bytes: Vec<u8>,
        deadline: Instant,
        timeout: Duration,
    ) -> Res<Vec<Vec<u8>>> {
        let mut m = self.meet();
        let world = self.world;
        if let Some((root, links)) = &self.net
            && m.members.iter().any(Option::is_none)
        {
            drop(m);
            let net = (*root, links.as_slice());
            return self.exchange_net(net, rank, step, bytes, deadline, timeout);
        }
        if !m.open.contains_key(&step) {
            let serial = m.next_serial;
            m.next_serial += 1;
            let round = Round {
                serial,
                parts: vec![None; world as usize],
                arrived: 0,
            };
            m.open.insert(step, round);
        }
        let round = m.open.get_mut(&step).expect("inserted above");
        let slot = &mut round.parts[rank as usize];
        if slot.is_some() {
            return fail(
                NRT_INVALID,
                format!(
                    "rank {rank} of {} is already in {}: one execution per rank at a time",
                    self.what(),
                    self.round(step)
                ),
            );
        }
        *slot = Some(bytes);
        round.arrived += 1;
        let serial = round.serial;
        if round.arrived == world {
            let round = m.open.remove(&step).expect("present");
            let parts: Vec<Vec<u8>> = round
                .parts
                .into_iter()
                .map(Option::unwrap_or_default)
                .collect();
            if world > 1 {
                let done = Done {
                    parts: Arc::new(parts.clone()),
                    readers_left: world - 1,
                };
                m.done.insert(serial, done);
                self.arrived.notify_all();
            }
            return Ok(parts);
        }
        loop {
            if let Some(d) = m.done.get_mut(&serial) {
                d.readers_left -= 1;
                let parts = d.parts.as_ref().clone();
                if d.readers_left == 0 {
                    m.done.remove(&serial);
                }
                return Ok(parts);
            }
            let now = Instant::now();
            if now >= deadline {
                return self.give_up(m, rank, step, serial, timeout);
            }
            m = self
                .arrived
                .wait_timeout(m, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Withdraws `rank`'s contribution to the round and reports who never came.
    fn give_up(
        &self,
        mut m: MutexGuard<'_, Meet>,
        rank: u32,
        step: usize,
        serial: u64,
        timeout: Duration,
    ) -> Res<Vec<Vec<u8>>> {
        let mut missing = Vec::new();
        if let Some(round) = m.open.get_mut(&step).filter(|r| r.serial == serial) {
            missing = (0..self.world)
                .filter(|&r| round.parts[r as usize].is_none())
                .collect();
            round.parts[rank as usize] = None;
            round.arrived -= 1;
            if round.arrived == 0 {
                m.open.remove(&step);
            }
        }
        let absent: Vec<u32> = missing
            .iter()
            .copied()
            .filter(|&r| m.members[r as usize].is_none())
            .collect();
        let hint = if absent.is_empty() {
            String::new()
        } else {
            format!(
                "; rank(s) {absent:?} are not loaded in this process (ranks in other processes need NEURON_RT_ROOT_COMM_ID)"
            )
        };
        fail(
            NRT_EXEC_HW_ERR_COLLECTIVES,
            format!(
                "rank {rank} of world {} of {} waited {timeout:?} (NEURON_RT_EXEC_TIMEOUT) in {}; rank(s) {missing:?} never arrived{hint}",
                self.world,
                self.what(),
                self.round(step)
            ),
        )
    }
}

/// One rank's execution meeting its group: the [`Exchange`] a program runs with.
pub(crate) struct Member<'a> {
    pub(crate) group: &'a Group,
    pub(crate) rank: u32,
    pub(crate) deadline: Instant,
    pub(crate) timeout: Duration,
}

impl Exchange for Member<'_> {
    fn rank(&self) -> u32 {
        self.rank
    }

    fn exchange(&mut self, step: usize, bytes: Vec<u8>) -> Res<Vec<Vec<u8>>> {
        self.group
            .exchange(self.rank, step, bytes, self.deadline, self.timeout)
    }
}
