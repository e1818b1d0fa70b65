//! Collectives across processes: one rank's TCP link to its group over
//! `NEURON_RT_ROOT_COMM_ID` (loopback addresses only; `std::net`, no other traffic).
//!
//! Rank 0 listens on the address; every other rank connects to it (retrying until its
//! execution's deadline), proves it belongs to the job ([`super::wire`]: a handshake on
//! the job's key, from `NEURON_RT_ROOT_COMM_ID` and `NRT_SIM_COMM_TOKEN`, in which rank
//! 0 proves the same to it) and keeps one connection. Each collective step rank 0 asks
//! every rank, in rank order, for its contribution, then sends every contribution back
//! to every rank, which combines them with the in-process code, so results are bit for
//! bit those of the in-process path. Every part must be exactly as long as the
//! receiver's own contribution (all ranks of a round contribute the same size): any
//! other length is refused before anything is allocated, in both directions. Any
//! failure drops the connection (a later execution connects again); rank 0 then drops
//! every connection, so the waiting ranks learn it at once. A rank sends its
//! contribution only when asked, so a connection its rank gave up on never holds a
//! stale one; rank 0 waits, until the deadline, for a rank whose connection closed to
//! connect again. A second connection for a rank whose connection is still open is
//! refused (closed).
//!
//! One process may be rank 0 of several groups on the same address (a model's ranks
//! and the global communicator, as libnrt bootstraps every communicator from the one
//! `NEURON_RT_ROOT_COMM_ID`): they share one listener ([`Acceptor`]), which files each
//! authenticated connection under the group its hello names until that group's rank 0
//! takes it.

use super::acceptor::{Acceptor, still_open};
use super::wire::{self, CHALLENGE, Hello, Key, Role};
use crate::error::{Res, fail};
use nrt_sys::*;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) use super::acceptor::lock;

/// The longest single connect attempt and the pause between attempts.
const CONNECT_ATTEMPT: Duration = Duration::from_millis(200);
const RETRY_PAUSE: Duration = Duration::from_millis(10);

/// Where and how a job's ranks meet: rank 0's address and the job's key.
#[derive(Clone, Copy)]
pub(crate) struct Rendezvous {
    pub(crate) addr: SocketAddr,
    pub(crate) key: Key,
}

/// The rendezvous of `NEURON_RT_ROOT_COMM_ID` = `text` with `NRT_SIM_COMM_TOKEN` =
/// `token` (see [`root_addr`] for the address's checks).
pub(crate) fn rendezvous(text: &str, token: Option<&str>) -> Res<Rendezvous> {
    Ok(Rendezvous {
        addr: root_addr(text)?,
        key: Key::derive(text.trim(), token),
    })
}

/// Parses `NEURON_RT_ROOT_COMM_ID`: an `ip:port` on a loopback address, else
/// `NRT_INVALID` naming the value.
pub(crate) fn root_addr(text: &str) -> Res<SocketAddr> {
    let Ok(addr) = text.trim().parse::<SocketAddr>() else {
        return fail(
            NRT_INVALID,
            format!(
                "NEURON_RT_ROOT_COMM_ID={text:?} is not an ip:port address; the simulator runs ranks across processes of this machine only: use 127.0.0.1:<port>"
            ),
        );
    };
    if !addr.ip().is_loopback() || addr.port() == 0 {
        return fail(
            NRT_INVALID,
            format!(
                "NEURON_RT_ROOT_COMM_ID={text:?} is not a loopback address with a port; the simulator sends collective traffic to 127.0.0.1 (or ::1) only: use 127.0.0.1:<port>"
            ),
        );
    }
    Ok(addr)
}

/// One rank's side of the group's connections.
pub(crate) enum Link {
    /// Rank 0: the address's listener (taken at the first exchange, shared with the
    /// other groups this process is rank 0 of) and a connection per rank.
    Root {
        listener: Option<Arc<Mutex<Acceptor>>>,
        peers: Vec<Option<TcpStream>>,
    },
    /// Any other rank: its connection to rank 0.
    Peer { stream: Option<TcpStream> },
}

/// What a link exchange needs to know of its group.
pub(crate) struct Place<'a> {
    pub(crate) name: &'a str,
    pub(crate) world: u32,
    pub(crate) rank: u32,
    pub(crate) at: Rendezvous,
}

/// Why an exchange failed: the status (`NRT_INVALID` for contributions of different
/// sizes, else the collective failure) and what happened.
pub(crate) type Failure = (NRT_STATUS, String);

fn broken(why: String) -> Failure {
    (NRT_EXEC_HW_ERR_COLLECTIVES, why)
}

impl Link {
    /// The link of rank `rank` of a world of `world`; connects nothing yet.
    pub(crate) fn new(rank: u32, world: u32) -> Link {
        if rank == 0 {
            Link::Root {
                listener: None,
                peers: (0..world).map(|_| None).collect(),
            }
        } else {
            Link::Peer { stream: None }
        }
    }

    /// Sends `bytes` as this rank's contribution to collective `step` and returns every
    /// rank's contribution in rank order, each as long as `bytes`; `Err` says what
    /// failed (who never came, which connection broke, who sent another size).
    pub(crate) fn exchange(
        &mut self,
        at: &Place<'_>,
        step: usize,
        bytes: Vec<u8>,
        deadline: Instant,
    ) -> Result<Vec<Vec<u8>>, Failure> {
        let step = step as u32;
        match self {
            Link::Root { listener, peers } => {
                let result = root_exchange(listener, peers, at, step, bytes, deadline);
                if result.is_err() {
                    // The waiting ranks learn it now, and reconnect next execution.
                    peers.iter_mut().for_each(|p| *p = None);
                }
                result
            }
            Link::Peer { stream } => {
                let result = peer_exchange(stream, at, step, &bytes, deadline);
                if result.is_err() {
                    *stream = None;
                }
                result
            }
        }
    }
}

fn remaining(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(io::Error::new(io::ErrorKind::TimedOut, "execution timeout"))
    } else {
        Ok(left.max(Duration::from_millis(1)))
    }
}

/// The failure for an error of rank `r`'s part or of the reply: a part of another size
/// is `NRT_INVALID`.
fn part_failure(e: &io::Error, who: &str) -> Failure {
    match wire::wrong_size(e) {
        Some(w) => (
            NRT_INVALID,
            format!("{who} sent {w}: every rank contributes the same size"),
        ),
        None => broken(format!("{who}: {e}")),
    }
}

fn root_exchange(
    listener: &mut Option<Arc<Mutex<Acceptor>>>,
    peers: &mut [Option<TcpStream>],
    at: &Place<'_>,
    step: u32,
    bytes: Vec<u8>,
    deadline: Instant,
) -> Result<Vec<Vec<u8>>, Failure> {
    let root = at.at.addr;
    if listener.is_none() {
        *listener = Some(
            Acceptor::on(root, at.at.key, wire::MAX_WORLD)
                .map_err(|e| broken(format!("rank 0 cannot listen on {root} ({e})")))?,
        );
    }
    let l = listener.as_ref().expect("bound above");
    let size = bytes.len();
    let mut parts: Vec<Option<Vec<u8>>> = vec![None; at.world as usize];
    parts[0] = Some(bytes);
    let mut duplicates = 0u32;
    loop {
        // Connections made since the last look: of a rank without an open one, or
        // whose old one its rank closed (it failed and reconnected); a second one for
        // a rank whose connection is open is refused.
        let mine = lock(l).take(at.name.as_bytes(), at.world);
        for (r, s) in mine {
            let slot = &mut peers[r as usize];
            if slot.as_ref().is_some_and(is_open) {
                duplicates += 1;
            } else {
                *slot = Some(s);
            }
        }
        let missing: Vec<u32> = (1..at.world)
            .filter(|&r| peers[r as usize].is_none())
            .collect();
        if !missing.is_empty() {
            if Instant::now() >= deadline {
                let mut why = format!(
                    "rank(s) {missing:?} never connected to rank 0 at {root} (none completed the handshake for this group)"
                );
                if let Some(refused) = lock(l).refusals() {
                    why.push_str(&format!("; {refused}"));
                }
                if duplicates > 0 {
                    why.push_str(&format!(
                        "; {duplicates} second connection(s) for connected ranks refused"
                    ));
                }
                return Err(broken(why));
            }
            std::thread::sleep(RETRY_PAUSE.min(deadline.saturating_duration_since(Instant::now())));
            continue;
        }
        for r in 1..at.world as usize {
            if parts[r].is_some() {
                continue;
            }
            let s = peers[r].as_mut().expect("connected above");
            match read_part(s, step, size, deadline) {
                Ok(part) => parts[r] = Some(part),
                Err(e) if wire::wrong_size(&e).is_some() => {
                    return Err(part_failure(&e, &format!("rank {r}")));
                }
                Err(e) if is_timeout(&e) => {
                    return Err(broken(format!(
                        "rank(s) [{r}] never arrived: connected, it sent no contribution to collective {step} in time ({e})"
                    )));
                }
                // A closed connection (the rank failed, exited or reconnected): wait
                // for it to connect again until the deadline.
                Err(_) => peers[r] = None,
            }
        }
        if parts.iter().all(Option::is_some) {
            break;
        }
    }
    let parts: Vec<Vec<u8>> = parts.into_iter().map(Option::unwrap_or_default).collect();
    let reply = wire::encode_reply(step, &parts);
    for peer in peers.iter_mut().skip(1) {
        let sent = peer.as_mut().map(|s| -> io::Result<()> {
            s.set_write_timeout(Some(remaining(deadline)?))?;
            s.write_all(&reply)
        });
        if let Some(Err(_)) = sent {
            // That rank fails on its side; the others have their result.
            *peer = None;
        }
    }
    Ok(parts)
}

/// Whether rank 0's connection to a rank is still open (its rank did not close it).
fn is_open(s: &TcpStream) -> bool {
    if s.set_nonblocking(true).is_err() {
        return false;
    }
    let open = still_open(s);
    open && s.set_nonblocking(false).is_ok()
}

fn peer_exchange(
    stream: &mut Option<TcpStream>,
    at: &Place<'_>,
    step: u32,
    bytes: &[u8],
    deadline: Instant,
) -> Result<Vec<Vec<u8>>, Failure> {
    if stream.is_none() {
        *stream = Some(connect(at, deadline).map_err(broken)?);
    }
    let s = stream.as_mut().expect("connected above");
    let result = (|| {
        // Rank 0 asks for the contribution when it is ready for it.
        s.set_read_timeout(Some(remaining(deadline)?))?;
        wire::expect_step(wire::read_u32(s)?, step)?;
        s.set_write_timeout(Some(remaining(deadline)?))?;
        s.write_all(&wire::encode_part(step, bytes))?;
        s.set_read_timeout(Some(remaining(deadline)?))?;
        wire::read_reply(s, step, at.world, bytes.len())
    })();
    result.map_err(|e| {
        let who = format!(
            "rank(s) [0] never arrived: the connection to rank 0 at {} failed",
            at.at.addr
        );
        match wire::wrong_size(&e) {
            Some(_) => part_failure(&e, &format!("rank 0 at {}", at.at.addr)),
            None => broken(format!("{who} ({e})")),
        }
    })
}

/// Connects to rank 0 and completes the handshake, retrying until `deadline`.
fn connect(at: &Place<'_>, deadline: Instant) -> Result<TcpStream, String> {
    let mut last = String::from("no attempt");
    // A failed proof says more than the refused connections after it.
    let mut impostor = None;
    loop {
        let Ok(left) = remaining(deadline) else {
            return Err(format!(
                "rank(s) [0] never arrived: rank 0 at {} never accepted ({})",
                at.at.addr,
                impostor.unwrap_or(last)
            ));
        };
        match TcpStream::connect_timeout(&at.at.addr, left.min(CONNECT_ATTEMPT))
            .map_err(|e| e.to_string())
            .and_then(|s| handshake(s, at, deadline))
        {
            Ok(s) => return Ok(s),
            Err(e) if e.contains("failed to prove") => impostor = Some(e),
            Err(e) => last = e,
        }
        std::thread::sleep(RETRY_PAUSE.min(deadline.saturating_duration_since(Instant::now())));
    }
}

/// The rank's side of the handshake on a new connection.
fn handshake(mut s: TcpStream, at: &Place<'_>, deadline: Instant) -> Result<TcpStream, String> {
    let io = |e: io::Error| e.to_string();
    s.set_nodelay(true).map_err(io)?;
    let hello = Hello {
        world: at.world,
        rank: at.rank,
        name: at.name.as_bytes().to_vec(),
        nonce: wire::nonce(),
    }
    .encode();
    s.set_write_timeout(Some(remaining(deadline).map_err(io)?))
        .map_err(io)?;
    s.write_all(&hello).map_err(io)?;
    s.set_read_timeout(Some(remaining(deadline).map_err(io)?))
        .map_err(io)?;
    let mut answer = [0u8; CHALLENGE];
    s.read_exact(&mut answer)
        .map_err(|e| format!("no answer to the hello ({e})"))?;
    let (nonce_r, proof_r) = answer.split_at(wire::NONCE);
    if !wire::same(
        proof_r,
        &wire::proof(&at.at.key, Role::Root, &hello, nonce_r),
    ) {
        return Err(format!(
            "the process listening on {} failed to prove it is rank 0 of this job (another job, another NRT_SIM_COMM_TOKEN, or not a rank at all)",
            at.at.addr
        ));
    }
    s.write_all(&wire::proof(&at.at.key, Role::Peer, &hello, nonce_r))
        .map_err(io)?;
    Ok(s)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// Asks a rank for its contribution to `step` and reads it: exactly `size` bytes. (A
/// rank sends only when asked, so a connection it gave up on never holds a stale
/// contribution.)
fn read_part(s: &mut TcpStream, step: u32, size: usize, deadline: Instant) -> io::Result<Vec<u8>> {
    s.set_write_timeout(Some(remaining(deadline)?))?;
    s.write_all(&step.to_le_bytes())?;
    s.set_read_timeout(Some(remaining(deadline)?))?;
    wire::read_part(s, step, size)
}

#[cfg(test)]
#[path = "net_tests.rs"]
mod tests;
