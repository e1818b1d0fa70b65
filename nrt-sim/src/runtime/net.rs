//! Collectives across processes: one rank's TCP link to its group over
//! `NEURON_RT_ROOT_COMM_ID` (loopback addresses only; `std::net`, no other traffic).
//!
//! Rank 0 listens on the address; every other rank connects to it (retrying until its
//! execution's deadline) and keeps one connection. Each collective step rank 0 asks
//! every rank, in rank order, for its contribution, then sends every contribution back
//! to every rank, which combines them with the in-process code, so results are bit for
//! bit those of the in-process path. Messages are length-prefixed (little-endian):
//! hello `magic world rank name_len name`, request `step`, contribution
//! `step len bytes`, reply `step count (len bytes)*`. Any failure drops the connection
//! (a later execution connects again); rank 0 then drops every connection, so the
//! waiting ranks learn it at once. A rank sends its contribution only when asked, so a
//! connection its rank gave up on never holds a stale one; rank 0 waits, until the
//! deadline, for a rank whose connection closed to connect again.
//!
//! One process may be rank 0 of several groups on the same address (a model's ranks
//! and the global communicator, as libnrt bootstraps every communicator from the one
//! `NEURON_RT_ROOT_COMM_ID`): they share one listener ([`Acceptor`]), which files each
//! connection under the group its hello names until that group's rank 0 takes it.

use crate::error::{Res, fail};
use nrt_sys::*;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

const MAGIC: u32 = 0x4e52_5443; // "NRTC"
/// The largest contribution accepted from a peer (guards against garbage lengths).
const MAX_PART: u64 = 1 << 32;
/// The longest single connect attempt and the pause between attempts.
const CONNECT_ATTEMPT: Duration = Duration::from_millis(200);
const RETRY_PAUSE: Duration = Duration::from_millis(10);

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
    pub(crate) root: SocketAddr,
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
    /// rank's contribution in rank order; `Err` says what failed (who never came, which
    /// connection broke), for the caller's collective error.
    pub(crate) fn exchange(
        &mut self,
        at: &Place<'_>,
        step: usize,
        bytes: Vec<u8>,
        deadline: Instant,
    ) -> Result<Vec<Vec<u8>>, String> {
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

fn root_exchange(
    listener: &mut Option<Arc<Mutex<Acceptor>>>,
    peers: &mut [Option<TcpStream>],
    at: &Place<'_>,
    step: u32,
    bytes: Vec<u8>,
    deadline: Instant,
) -> Result<Vec<Vec<u8>>, String> {
    if listener.is_none() {
        *listener = Some(
            Acceptor::on(at.root)
                .map_err(|e| format!("rank 0 cannot listen on {} ({e})", at.root))?,
        );
    }
    let l = listener.as_ref().expect("bound above");
    let mut parts: Vec<Option<Vec<u8>>> = vec![None; at.world as usize];
    parts[0] = Some(bytes);
    loop {
        // Connections made since the last look replace older ones of their rank (a
        // rank that failed reconnects), then wait for the ranks not connected yet.
        accept_pending(l, peers, at, deadline);
        let missing: Vec<u32> = (1..at.world)
            .filter(|&r| peers[r as usize].is_none())
            .collect();
        if !missing.is_empty() {
            if Instant::now() >= deadline {
                return Err(format!(
                    "rank(s) {missing:?} never connected to rank 0 at {}",
                    at.root
                ));
            }
            std::thread::sleep(RETRY_PAUSE.min(deadline - Instant::now()));
            continue;
        }
        for r in 1..at.world as usize {
            if parts[r].is_some() {
                continue;
            }
            let s = peers[r].as_mut().expect("connected above");
            match read_part(s, step, deadline) {
                Ok(part) => parts[r] = Some(part),
                Err(e) if is_timeout(&e) => {
                    return Err(format!(
                        "rank(s) [{r}] never arrived: no contribution from it ({e})"
                    ));
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
    for peer in peers.iter_mut().skip(1) {
        let sent = peer
            .as_mut()
            .map(|s| write_reply(s, step, &parts, deadline));
        if let Some(Err(_)) = sent {
            // That rank fails on its side; the others have their result.
            *peer = None;
        }
    }
    Ok(parts)
}

/// The listener of one root address in this process, shared by the groups this process
/// is rank 0 of, and the connections accepted for each group (by name and world) that
/// its rank 0 has not taken yet.
pub(crate) struct Acceptor {
    listener: TcpListener,
    waiting: HashMap<GroupKey, Vec<(u32, TcpStream)>>,
}

/// A group as a hello names it: (name, world).
type GroupKey = (Vec<u8>, u32);

/// The acceptors of this process by address; an address is listened on while a group
/// holds its acceptor.
static ACCEPTORS: Mutex<Vec<(SocketAddr, Weak<Mutex<Acceptor>>)>> = Mutex::new(Vec::new());

impl Acceptor {
    /// The acceptor of `addr`, bound now if no group of this process holds it.
    fn on(addr: SocketAddr) -> io::Result<Arc<Mutex<Acceptor>>> {
        let mut all = lock(&ACCEPTORS);
        all.retain(|(_, a)| a.strong_count() > 0);
        if let Some(a) = all
            .iter()
            .find(|(at, _)| *at == addr)
            .and_then(|(_, a)| a.upgrade())
        {
            return Ok(a);
        }
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let acceptor = Arc::new(Mutex::new(Acceptor {
            listener,
            waiting: HashMap::new(),
        }));
        all.push((addr, Arc::downgrade(&acceptor)));
        Ok(acceptor)
    }
}

/// Locks `m`; a panic while it was held leaves plain data (connections, queued
/// contributions, a group's members), so carry on.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Accepts every pending connection, filing it under the group its hello names, and
/// takes those of this group (a later one of a rank replaces an earlier one).
fn accept_pending(
    acceptor: &Mutex<Acceptor>,
    peers: &mut [Option<TcpStream>],
    at: &Place<'_>,
    deadline: Instant,
) {
    let mut a = lock(acceptor);
    while let Ok((mut s, _)) = a.listener.accept() {
        if let Ok((world, rank, name)) = read_hello(&mut s, deadline) {
            a.waiting.entry((name, world)).or_default().push((rank, s));
        }
    }
    if let Some(mine) = a.waiting.remove(&(at.name.as_bytes().to_vec(), at.world)) {
        for (rank, s) in mine {
            peers[rank as usize] = Some(s);
        }
    }
}

/// A connection's hello: `(world, rank, group name)` of a rank other than 0.
fn read_hello(s: &mut TcpStream, deadline: Instant) -> io::Result<(u32, u32, Vec<u8>)> {
    s.set_nonblocking(false)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(remaining(deadline)?.min(Duration::from_secs(1))))?;
    let magic = read_u32(s)?;
    let world = read_u32(s)?;
    let rank = read_u32(s)?;
    let len = read_u32(s)? as usize;
    if magic != MAGIC || rank == 0 || rank >= world || len > 4096 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a rank's hello",
        ));
    }
    let mut name = vec![0; len];
    s.read_exact(&mut name)?;
    Ok((world, rank, name))
}

fn peer_exchange(
    stream: &mut Option<TcpStream>,
    at: &Place<'_>,
    step: u32,
    bytes: &[u8],
    deadline: Instant,
) -> Result<Vec<Vec<u8>>, String> {
    if stream.is_none() {
        *stream = Some(connect(at, deadline)?);
    }
    let s = stream.as_mut().expect("connected above");
    let result = (|| {
        // Rank 0 asks for the contribution when it is ready for it.
        s.set_read_timeout(Some(remaining(deadline)?))?;
        expect_step(read_u32(s)?, step)?;
        s.set_write_timeout(Some(remaining(deadline)?))?;
        let mut msg = Vec::with_capacity(12 + bytes.len());
        msg.extend_from_slice(&step.to_le_bytes());
        msg.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        msg.extend_from_slice(bytes);
        s.write_all(&msg)?;
        read_reply(s, step, at.world, deadline)
    })();
    result.map_err(|e| {
        format!(
            "rank(s) [0] never arrived: the connection to rank 0 at {} failed ({e})",
            at.root
        )
    })
}

/// Connects to rank 0 and says hello, retrying until `deadline`.
fn connect(at: &Place<'_>, deadline: Instant) -> Result<TcpStream, String> {
    let mut last = String::from("no attempt");
    loop {
        let Ok(left) = remaining(deadline) else {
            return Err(format!(
                "rank(s) [0] never arrived: rank 0 at {} never accepted ({last})",
                at.root
            ));
        };
        let attempt =
            TcpStream::connect_timeout(&at.root, left.min(CONNECT_ATTEMPT)).and_then(|mut s| {
                s.set_nodelay(true)?;
                s.set_write_timeout(Some(remaining(deadline)?))?;
                let mut hello = Vec::new();
                for v in [MAGIC, at.world, at.rank, at.name.len() as u32] {
                    hello.extend_from_slice(&v.to_le_bytes());
                }
                hello.extend_from_slice(at.name.as_bytes());
                s.write_all(&hello)?;
                Ok(s)
            });
        match attempt {
            Ok(s) => return Ok(s),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(RETRY_PAUSE.min(deadline.saturating_duration_since(Instant::now())));
    }
}

fn read_u32(s: &mut TcpStream) -> io::Result<u32> {
    let mut b = [0; 4];
    s.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_u64(s: &mut TcpStream) -> io::Result<u64> {
    let mut b = [0; 8];
    s.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

fn read_bytes(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    let len = read_u64(s)?;
    if len > MAX_PART {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a part of {len} bytes"),
        ));
    }
    let mut part = vec![0; len as usize];
    s.read_exact(&mut part)?;
    Ok(part)
}

fn expect_step(got: u32, step: u32) -> io::Result<()> {
    if got == step {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("collective {got} arrived while in collective {step}"),
        ))
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// Asks a rank for its contribution to `step` and reads it. (A rank sends only when
/// asked, so a connection it gave up on never holds a stale contribution.)
fn read_part(s: &mut TcpStream, step: u32, deadline: Instant) -> io::Result<Vec<u8>> {
    s.set_write_timeout(Some(remaining(deadline)?))?;
    s.write_all(&step.to_le_bytes())?;
    s.set_read_timeout(Some(remaining(deadline)?))?;
    expect_step(read_u32(s)?, step)?;
    read_bytes(s)
}

fn write_reply(
    s: &mut TcpStream,
    step: u32,
    parts: &[Vec<u8>],
    deadline: Instant,
) -> io::Result<()> {
    s.set_write_timeout(Some(remaining(deadline)?))?;
    let mut msg = Vec::with_capacity(8 + parts.iter().map(|p| 8 + p.len()).sum::<usize>());
    msg.extend_from_slice(&step.to_le_bytes());
    msg.extend_from_slice(&(parts.len() as u32).to_le_bytes());
    for p in parts {
        msg.extend_from_slice(&(p.len() as u64).to_le_bytes());
        msg.extend_from_slice(p);
    }
    s.write_all(&msg)
}

fn read_reply(
    s: &mut TcpStream,
    step: u32,
    world: u32,
    deadline: Instant,
) -> io::Result<Vec<Vec<u8>>> {
    s.set_read_timeout(Some(remaining(deadline)?))?;
    expect_step(read_u32(s)?, step)?;
    let count = read_u32(s)?;
    if count != world {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a reply of {count} parts for a world of {world}"),
        ));
    }
    (0..count).map(|_| read_bytes(s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_with_a_port_are_accepted() {
        assert!(root_addr("127.0.0.1:5000").is_ok());
        assert!(root_addr("[::1]:5000").is_ok());
        for bad in [
            "10.0.0.1:5000",
            "0.0.0.0:5000",
            "127.0.0.1:0",
            "localhost",
            "x",
        ] {
            let e = root_addr(bad).unwrap_err();
            assert_eq!(e.status, NRT_INVALID, "{bad}");
            assert!(e.message.contains(bad), "{}", e.message);
        }
    }
}
