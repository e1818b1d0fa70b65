//! Send/recv between logical cores of different runtimes (`nrt_async_sendrecv_*`), over
//! TCP on the loopback: core `lnc`, once initialised, listens on `127.0.0.1:(base +
//! lnc)` (`base` = `NRT_SIM_SENDRECV_PORT`, default 47300). A sender connects to the
//! receiver core's port and says which core it is; the receiver's communicator for that
//! peer core picks the connection up. Each communicator runs its requests in order on
//! one worker thread; a message is its length (8 bytes, little endian) and its bytes.
//! Requests are polled (`test_request`), as the API has it.

use crate::error::{Fail, Res, fail};
use crate::log::Level;
use nrt_sys::*;
use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Communicators per core and pending requests per communicator.
pub(crate) const MAX_COMMUNICATORS_PER_LNC: usize = 16;
pub(crate) const MAX_PENDING_REQUESTS: usize = 64;
/// How long a communicator tries to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update is one insert, remove or assignment.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn base_port() -> Res<u16> {
    match std::env::var("NRT_SIM_SENDRECV_PORT") {
        Err(_) => Ok(47300),
        Ok(v) => v.trim().parse().or_else(|_| {
            fail(
                NRT_INVALID,
                format!("NRT_SIM_SENDRECV_PORT '{v}' is not a port number"),
            )
        }),
    }
}

fn port_of(lnc: i32) -> Res<u16> {
    let base = base_port()?;
    u16::try_from(lnc)
        .ok()
        .and_then(|l| base.checked_add(l))
        .ok_or_else(|| Fail {
            status: NRT_INVALID,
            message: format!("core {lnc} has no port above NRT_SIM_SENDRECV_PORT {base}"),
            level: Level::Error,
        })
}

/// Connections accepted by a core, by the peer core that made them.
type Arrivals = Arc<Mutex<HashMap<i32, VecDeque<TcpStream>>>>;

struct Lnc {
    arrivals: Arrivals,
    stop: Arc<AtomicBool>,
    port: u16,
    comms: Vec<Arc<Comm>>,
}

static LNCS: Mutex<Option<HashMap<i32, Lnc>>> = Mutex::new(None);

/// A send or receive communicator.
pub(crate) struct Comm {
    lnc: i32,
    peer_lnc: i32,
    send: bool,
    state: Mutex<Link>,
    pending: Mutex<usize>,
}

enum Link {
    Connecting(Instant),
    Failed(NRT_STATUS, String),
    Up(Sender<Job>),
}

/// A request's final state: status and bytes moved, once done, and why it failed.
#[derive(Default)]
pub(crate) struct Request {
    done: Mutex<Option<(NRT_STATUS, usize)>>,
    reason: Mutex<Option<String>>,
}

impl Request {
    /// `Some((status, bytes))` once the request completed.
    pub(crate) fn poll(&self) -> Option<(NRT_STATUS, usize)> {
        *lock(&self.done)
    }

    /// Why the request failed (set before it is done), if it did.
    pub(crate) fn reason(&self) -> Option<String> {
        lock(&self.reason).clone()
    }
}

/// What a request does with the bytes: a send's bytes to go, or where a receive's land.
pub(crate) enum Payload {
    Send(Vec<u8>),
    /// Room for at most this many bytes, and the function that stores them.
    Recv(usize, Store),
}

/// Stores a receive's bytes into its tensor.
pub(crate) type Store = Box<dyn FnOnce(&[u8]) -> Res<()> + Send>;

struct Job {
    payload: Payload,
    request: Arc<Request>,
    comm: Arc<Comm>,
}

/// `nrt_async_sendrecv_init`: starts core `lnc`'s listener.
pub(crate) fn init(lnc: i32) -> Res<()> {
    let port = port_of(lnc)?;
    let mut guard = lock(&LNCS);
    let map = guard.get_or_insert_with(HashMap::new);
    if map.contains_key(&lnc) {
        return fail(
            NRT_FAILURE,
            format!("send/recv of core {lnc} is already initialised"),
        );
    }
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).or_else(|e| {
        fail(
            NRT_FAILURE,
            format!("core {lnc}: cannot listen on 127.0.0.1:{port}: {e}"),
        )
    })?;
    let arrivals: Arrivals = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let (a, s) = (arrivals.clone(), stop.clone());
    std::thread::Builder::new()
        .name(format!("nrt-sim-sr-{lnc}"))
        .spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::Acquire) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                let mut hello = [0u8; 4];
                if stream.read_exact(&mut hello).is_ok() {
                    let peer = i32::from_le_bytes(hello);
                    lock(&a).entry(peer).or_default().push_back(stream);
                }
            }
        })
        .or_else(|e| {
            fail(
                NRT_RESOURCE,
                format!("cannot start the listener thread: {e}"),
            )
        })?;
    map.insert(
        lnc,
        Lnc {
            arrivals,
            stop,
            port,
            comms: Vec::new(),
        },
    );
    Ok(())
}

/// `nrt_async_sendrecv_close`: refuses while a communicator is not connected or has
/// requests in flight; else ends them all and the listener.
pub(crate) fn close(lnc: i32) -> Res<()> {
    let mut guard = lock(&LNCS);
    let Some(l) = guard.as_mut().and_then(|m| m.get(&lnc)) else {
        return fail(
            NRT_FAILURE,
            format!("send/recv of core {lnc} is not initialised"),
        );
    };
    for c in &l.comms {
        if !matches!(*lock(&c.state), Link::Up(_)) {
            return fail(
                NRT_FAILURE,
                format!(
                    "core {lnc}: a communicator with core {} is not connected",
                    c.peer_lnc
                ),
            );
        }
        if *lock(&c.pending) > 0 {
            return fail(
                NRT_FAILURE,
                format!(
                    "core {lnc}: requests with core {} are in flight",
                    c.peer_lnc
                ),
            );
        }
    }
    let l = guard
        .as_mut()
        .and_then(|m| m.remove(&lnc))
        .expect("checked above");
    for c in &l.comms {
        *lock(&c.state) = Link::Failed(NRT_INVALID_HANDLE, "closed".into());
    }
    l.stop.store(true, Ordering::Release);
    // Wakes the listener so that it sees `stop`.
    let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, l.port));
    Ok(())
}

/// Whether core `lnc` is initialised.
pub(crate) fn initialised(lnc: i32) -> bool {
    lock(&LNCS).as_ref().is_some_and(|m| m.contains_key(&lnc))
}

fn peer_addr(peer_ip: &str, peer_lnc: i32) -> Res<SocketAddr> {
    let ip: std::net::IpAddr = peer_ip.parse().or_else(|_| {
        fail(
            NRT_INVALID,
            format!("peer_ip '{peer_ip}' is not an IP address"),
        )
    })?;
    if !ip.is_loopback() {
        return fail(
            NRT_FAILURE,
            format!("peer {peer_ip}: nrt-sim reaches peers on this machine only (127.0.0.1)"),
        );
    }
    Ok(SocketAddr::new(ip, port_of(peer_lnc)?))
}

/// `nrt_async_sendrecv_connect` (`send`) / `_accept`: a communicator of core `lnc` with
/// `peer_lnc` at `peer_ip`, connecting in the background.
pub(crate) fn communicator(peer_ip: &str, peer_lnc: i32, lnc: i32, send: bool) -> Res<Arc<Comm>> {
    let addr = peer_addr(peer_ip, peer_lnc)?;
    let mut guard = lock(&LNCS);
    let Some(l) = guard.as_mut().and_then(|m| m.get_mut(&lnc)) else {
        return fail(
            NRT_INVALID,
            format!("send/recv of core {lnc} is not initialised (nrt_async_sendrecv_init first)"),
        );
    };
    if l.comms.len() >= MAX_COMMUNICATORS_PER_LNC {
        return fail(
            NRT_RESOURCE,
            format!("core {lnc} has {MAX_COMMUNICATORS_PER_LNC} communicators already"),
        );
    }
    let comm = Arc::new(Comm {
        lnc,
        peer_lnc,
        send,
        state: Mutex::new(Link::Connecting(Instant::now())),
        pending: Mutex::new(0),
    });
    l.comms.push(comm.clone());
    if send {
        let c = comm.clone();
        std::thread::Builder::new()
            .name(format!("nrt-sim-sr-connect-{lnc}"))
            .spawn(move || {
                let start = Instant::now();
                let link = loop {
                    match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                        Ok(mut s) => {
                            if s.write_all(&c.lnc.to_le_bytes()).is_ok() {
                                break start_worker(s);
                            }
                        }
                        Err(_) if start.elapsed() < CONNECT_TIMEOUT => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(e) => {
                            break Link::Failed(NRT_TIMEOUT, format!("connecting to {addr}: {e}"));
                        }
                    }
                };
                *lock(&c.state) = link;
            })
            .or_else(|e| fail(NRT_RESOURCE, format!("cannot start a connect thread: {e}")))?;
    }
    Ok(comm)
}

fn start_worker(mut stream: TcpStream) -> Link {
    let (tx, rx) = channel::<Job>();
    let spawned = std::thread::Builder::new()
        .name("nrt-sim-sr-worker".into())
        .spawn(move || {
            let _ = stream.set_nodelay(true);
            for job in rx {
                let result = run(&mut stream, job.payload);
                let outcome = match result {
                    Ok(n) => (NRT_SUCCESS, n),
                    Err(f) => {
                        crate::log::log(Level::Error, "nrt_async_sendrecv", &f.message);
                        *lock(&job.request.reason) = Some(f.message);
                        (f.status, 0)
                    }
                };
                finish(&job.request, &job.comm, outcome);
            }
        });
    match spawned {
        Ok(_) => Link::Up(tx),
        Err(e) => Link::Failed(NRT_RESOURCE, format!("cannot start a worker thread: {e}")),
    }
}

/// Completes `request` of `comm` with `outcome`: it leaves the communicator's count of
/// requests in flight in the same step as it becomes done (under the count's lock), so
/// that once `test_request` reports it done, `close` never finds it in flight (the
/// header: a request is in flight until completed, and `close` with requests in flight
/// is an error). Publishing `done` first let a caller see its request done and have its
/// `close` refused, "requests with core N are in flight".
fn finish(request: &Request, comm: &Comm, outcome: (NRT_STATUS, usize)) {
    let mut pending = lock(&comm.pending);
    *lock(&request.done) = Some(outcome);
    *pending -= 1;
}

fn run(stream: &mut TcpStream, payload: Payload) -> Res<usize> {
    let io = |e: std::io::Error| Fail {
        status: NRT_FAILURE,
        message: format!("send/recv connection: {e}"),
        level: Level::Error,
    };
    match payload {
        Payload::Send(bytes) => {
            stream
                .write_all(&(bytes.len() as u64).to_le_bytes())
                .map_err(io)?;
            stream.write_all(&bytes).map_err(io)?;
            Ok(bytes.len())
        }
        Payload::Recv(room, store) => {
            let mut len = [0u8; 8];
            stream.read_exact(&mut len).map_err(io)?;
            let len = u64::from_le_bytes(len) as usize;
            let mut bytes = vec![0u8; len];
            stream.read_exact(&mut bytes).map_err(io)?;
            if len > room {
                return fail(
                    NRT_FAILURE,
                    format!("received {len} bytes into a receive of {room} bytes"),
                );
            }
            store(&bytes)?;
            Ok(len)
        }
    }
}

/// `nrt_async_sendrecv_test_comm`: whether the communicator is connected.
pub(crate) fn test_comm(comm: &Arc<Comm>) -> Res<bool> {
    // Lock order: the registry, then a communicator's state (as `close` takes them).
    let since = match &*lock(&comm.state) {
        Link::Up(_) => return Ok(true),
        Link::Failed(status, why) => return fail(*status, why.clone()),
        Link::Connecting(_) if comm.send => return Ok(false),
        Link::Connecting(since) => *since,
    };
    let arrivals = lock(&LNCS)
        .as_ref()
        .and_then(|m| m.get(&comm.lnc))
        .map(|l| l.arrivals.clone());
    let arrived =
        arrivals.and_then(|a| lock(&a).get_mut(&comm.peer_lnc).and_then(|q| q.pop_front()));
    let mut state = lock(&comm.state);
    if !matches!(*state, Link::Connecting(_)) {
        drop(state);
        return test_comm(comm);
    }
    match arrived {
        Some(stream) => {
            *state = start_worker(stream);
            Ok(matches!(*state, Link::Up(_)))
        }
        None if since.elapsed() > CONNECT_TIMEOUT => {
            *state = Link::Failed(NRT_TIMEOUT, "no connection from the peer".into());
            fail(
                NRT_TIMEOUT,
                format!("core {} never connected", comm.peer_lnc),
            )
        }
        None => Ok(false),
    }
}

/// `nrt_async_sendrecv_send_tensor` / `_recv_tensor`: queues a request on a connected
/// communicator of the right direction.
pub(crate) fn submit(comm: &Arc<Comm>, payload: Payload) -> Res<Arc<Request>> {
    let is_send = matches!(payload, Payload::Send(_));
    if is_send != comm.send {
        return fail(
            NRT_INVALID,
            format!(
                "a {} on a {} communicator",
                if is_send { "send" } else { "receive" },
                if comm.send { "send" } else { "receive" }
            ),
        );
    }
    let state = lock(&comm.state);
    let Link::Up(tx) = &*state else {
        return fail(
            NRT_INVALID,
            "the communicator is not connected (test_comm until it is)",
        );
    };
    let mut pending = lock(&comm.pending);
    if *pending >= MAX_PENDING_REQUESTS {
        return fail(
            NRT_RESOURCE,
            format!("{MAX_PENDING_REQUESTS} requests are pending on this communicator"),
        );
    }
    let request = Arc::new(Request::default());
    let job = Job {
        payload,
        request: request.clone(),
        comm: comm.clone(),
    };
    *pending += 1;
    if tx.send(job).is_err() {
        *pending -= 1;
        return fail(NRT_FAILURE, "the communicator's worker has stopped");
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_never_done_while_still_counted_in_flight() {
        let comm = Arc::new(Comm {
            lnc: 0,
            peer_lnc: 1,
            send: true,
            state: Mutex::new(Link::Connecting(Instant::now())),
            pending: Mutex::new(1),
        });
        let request = Arc::new(Request::default());
        // Hold the count as `close` does while it looks; the request completes meanwhile.
        let counted = lock(&comm.pending);
        let (r, c) = (request.clone(), comm.clone());
        let worker = std::thread::spawn(move || finish(&r, &c, (NRT_SUCCESS, 0)));
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(200) {
            assert_eq!(
                request.poll(),
                None,
                "done while counted in flight ({})",
                *counted
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(counted);
        worker.join().unwrap();
        assert_eq!(request.poll(), Some((NRT_SUCCESS, 0)));
        assert_eq!(*lock(&comm.pending), 0);
    }
}
