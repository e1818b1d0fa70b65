//! Rank 0's listener on a root address, shared by the groups this process is rank 0 of
//! (a model's ranks and the global communicator, as libnrt bootstraps every
//! communicator from the one `NEURON_RT_ROOT_COMM_ID`).
//!
//! Connections go through the handshake of [`super::wire`] without blocking: sockets are
//! non-blocking, and each look ([`Acceptor::take`]) accepts what is pending and advances
//! every handshake by what has arrived, so an idle or slow connection never holds the
//! acceptor (or another group's rank 0) for longer than a non-blocking read. At most
//! [`MAX_PENDING`] handshakes are in progress (the oldest goes first) and each has
//! [`HANDSHAKE_TIME`]; at most [`MAX_WAITING`] authenticated connections wait for their
//! group's rank 0, for at most [`WAITING_TIME`], and one whose peer closed it is dropped.
//! A connection that fails is closed at once; the last reason is kept for the error of a
//! rank 0 whose ranks never came.

use super::wire::{self, CHALLENGE, Hello, Key, PROOF, Role};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// Handshakes in progress at most.
pub(crate) const MAX_PENDING: usize = 64;
/// How long a connection has to complete its handshake once accepted.
pub(crate) const HANDSHAKE_TIME: Duration = Duration::from_secs(2);
/// Authenticated connections waiting for their group's rank 0, at most.
pub(crate) const MAX_WAITING: usize = 256;
/// How long an authenticated connection waits for its group's rank 0.
pub(crate) const WAITING_TIME: Duration = Duration::from_secs(120);

/// Locks `m`; a panic while it was held leaves plain data (connections, queued
/// contributions, a group's members), so carry on.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Pending {
    stream: TcpStream,
    since: Instant,
    buf: Vec<u8>,
    /// After the hello: the hello and the proof expected from the rank.
    greeted: Option<(Hello, [u8; PROOF])>,
}

struct Waiting {
    name: Vec<u8>,
    world: u32,
    rank: u32,
    stream: TcpStream,
    since: Instant,
}

/// The listener of one root address and the connections not taken by a rank 0 yet.
pub(crate) struct Acceptor {
    listener: TcpListener,
    key: Key,
    max_world: u32,
    pending: Vec<Pending>,
    waiting: Vec<Waiting>,
    refused: u64,
    last_refusal: Option<String>,
}

/// The acceptors of this process by address; an address is listened on while a group
/// holds its acceptor.
static ACCEPTORS: Mutex<Vec<(SocketAddr, Weak<Mutex<Acceptor>>)>> = Mutex::new(Vec::new());

impl Acceptor {
    /// The acceptor of `addr`, bound now if no group of this process holds it.
    pub(crate) fn on(
        addr: SocketAddr,
        key: Key,
        max_world: u32,
    ) -> io::Result<Arc<Mutex<Acceptor>>> {
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
            key,
            max_world,
            pending: Vec::new(),
            waiting: Vec::new(),
            refused: 0,
            last_refusal: None,
        }));
        all.push((addr, Arc::downgrade(&acceptor)));
        Ok(acceptor)
    }

    /// Accepts what is pending, advances the handshakes, prunes, and returns the
    /// authenticated connections of group (`name`, `world`) with their ranks (blocking
    /// sockets, ready for the exchange). Never blocks.
    pub(crate) fn take(&mut self, name: &[u8], world: u32) -> Vec<(u32, TcpStream)> {
        let now = Instant::now();
        while let Ok((stream, _)) = self.listener.accept() {
            if stream.set_nonblocking(true).is_err() || stream.set_nodelay(true).is_err() {
                continue;
            }
            if self.pending.len() >= MAX_PENDING {
                self.pending.remove(0);
                self.refuse(format!(
                    "more than {MAX_PENDING} connections in their handshake at once (the oldest was closed)"
                ));
            }
            self.pending.push(Pending {
                stream,
                since: now,
                buf: Vec::new(),
                greeted: None,
            });
        }
        let pending = std::mem::take(&mut self.pending);
        for mut p in pending {
            match self.advance(&mut p) {
                Ok(true) => {
                    let (hello, _) = p.greeted.take().expect("greeted");
                    self.admit(hello, p.stream, now);
                }
                Ok(false) if now.duration_since(p.since) > HANDSHAKE_TIME => self.refuse(format!(
                    "a connection did not complete its handshake within {HANDSHAKE_TIME:?}"
                )),
                Ok(false) => self.pending.push(p),
                Err(why) => self.refuse(why),
            }
        }
        self.waiting
            .retain(|w| now.duration_since(w.since) <= WAITING_TIME && still_open(&w.stream));
        let (mine, rest) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|w| w.name == name && w.world == world);
        self.waiting = rest;
        mine.into_iter()
            .filter(|w| w.stream.set_nonblocking(false).is_ok())
            .map(|w| (w.rank, w.stream))
            .collect()
    }

    /// Handshakes in progress (for tests).
    #[cfg(test)]
    pub(crate) fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// Authenticated connections waiting for their group's rank 0 (for tests).
    #[cfg(test)]
    pub(crate) fn waiting_count(&self) -> usize {
        self.waiting.len()
    }

    /// How many connections were refused, and the last reason, for error messages.
    pub(crate) fn refusals(&self) -> Option<String> {
        self.last_refusal.as_ref().map(|why| {
            format!(
                "{} connection(s) refused, the last because of {why}",
                self.refused
            )
        })
    }

    fn refuse(&mut self, why: String) {
        self.refused += 1;
        self.last_refusal = Some(why);
    }

    fn admit(&mut self, hello: Hello, stream: TcpStream, now: Instant) {
        if self.waiting.len() >= MAX_WAITING {
            self.waiting.remove(0);
            self.refuse(format!(
                "more than {MAX_WAITING} connections waiting for their group's rank 0 (the oldest was closed)"
            ));
        }
        self.waiting.push(Waiting {
            name: hello.name,
            world: hello.world,
            rank: hello.rank,
            stream,
            since: now,
        });
    }

    /// Reads what has arrived and moves the handshake on: `Ok(true)` once the rank
    /// proved it holds the key, `Ok(false)` while waiting, `Err` for a connection to
    /// close.
    fn advance(&self, p: &mut Pending) -> Result<bool, String> {
        let mut chunk = [0u8; 512];
        loop {
            // At most a hello (or a proof) is ever expected: never buffer more.
            let want = match &p.greeted {
                None => 16 + wire::MAX_NAME + wire::NONCE,
                Some(_) => PROOF,
            };
            let room = want.saturating_sub(p.buf.len()).min(chunk.len());
            if room == 0 {
                break;
            }
            match p.stream.read(&mut chunk[..room]) {
                Ok(0) => return Err("a connection closed during its handshake".into()),
                Ok(n) => p.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("a connection failed during its handshake ({e})")),
            }
        }
        if p.greeted.is_none() {
            let Some((hello, used)) = Hello::parse(&p.buf, self.max_world)? else {
                return Ok(false);
            };
            if p.buf.len() > used {
                return Err("a peer sent more than its hello before rank 0 answered".into());
            }
            let nonce_r = wire::nonce();
            let mut answer = Vec::with_capacity(CHALLENGE);
            answer.extend_from_slice(&nonce_r);
            answer.extend_from_slice(&wire::proof(&self.key, Role::Root, &p.buf, &nonce_r));
            // 48 bytes to a fresh socket fit its send buffer: a short write is a failure.
            match p.stream.write(&answer) {
                Ok(n) if n == answer.len() => {}
                _ => return Err("a connection could not take rank 0's answer".into()),
            }
            let expected = wire::proof(&self.key, Role::Peer, &p.buf, &nonce_r);
            p.buf.clear();
            p.greeted = Some((hello, expected));
            return self.advance(p);
        }
        let (_, expected) = p.greeted.as_ref().expect("greeted");
        if p.buf.len() < PROOF {
            return Ok(false);
        }
        if wire::same(&p.buf, expected) {
            Ok(true)
        } else {
            Err(
                "a peer's proof did not match: it has another NRT_SIM_COMM_TOKEN or \
                 NEURON_RT_ROOT_COMM_ID, or is not a rank of this job"
                    .into(),
            )
        }
    }
}

/// Whether the peer of an idle connection has not closed it (nor sent anything: a rank
/// speaks only when asked). The socket must be non-blocking.
pub(crate) fn still_open(s: &TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.peek(&mut b), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}
