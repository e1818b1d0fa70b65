//! The HTTP/1 server loop: hyper's connection builder under the axum router, with what
//! `axum::serve` leaves out and a server facing the network needs (`axum::serve` sets no
//! timer and caps nothing, so a client that stalls holds its connection, task and fd
//! for ever, and enough of them exhaust the process's fds):
//!
//! * a header timeout: a connection's first request head must be complete within it
//!   from the accept, and any later one within it from its first byte;
//! * an idle timeout: a keep-alive connection with no request in service and nothing
//!   received for that long is closed;
//! * a connection limit: at most that many connections are served at once; the next
//!   ones wait in the listen backlog (no fd, no task) until one closes. The default
//!   keeps below the process's open-file limit, so accepting never fails for fds.
//!
//! hyper's own `header_read_timeout` also counts the idle wait between requests as
//! header time (hyper 1.x has no separate idle timeout: hyperium/hyper#1628, #3743), and
//! tower's limits count requests, not connections (a stalled head never becomes a
//! request): hence one watchdog per connection over both phases, and a semaphore.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// The server's connection limits (flags `--header-timeout-ms`, `--idle-timeout-ms`,
/// `--max-connections`).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: default_max_connections(),
        }
    }
}

/// Fds the service keeps for itself besides its connections (runtime, simulator,
/// model files, event fds).
const RESERVED_FDS: usize = 64;

/// 1024, or fewer when the open-file limit (`ulimit -n`) leaves less room.
fn default_max_connections() -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse::<usize>().ok());
    let room = soft.map_or(usize::MAX, |n| n.saturating_sub(RESERVED_FDS));
    room.clamp(1, 1024)
}

/// Serves `router` on `listener` for ever, within `limits`.
pub async fn serve(listener: TcpListener, router: Router, limits: Limits) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        // Accept only with a free place: the others wait in the backlog.
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return Ok(()); // never closed
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of fds or a connection reset before it was accepted: go on.
                eprintln!("serve: accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let router = router.clone();
        tokio::spawn(async move {
            connection(stream, router, limits).await;
            drop(permit);
        });
    }
}

/// Where a connection is: what its watchdog allows, and since when.
#[derive(Clone, Copy, PartialEq)]
enum Phase {
    /// Waiting for a request (after a response): the idle timeout.
    Idle,
    /// Receiving a request head: the header timeout.
    Head,
    /// A request in service: no timeout here.
    Busy,
}

struct Activity(Mutex<(Phase, Instant)>);

impl Activity {
    fn get(&self) -> (Phase, Instant) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, phase: Phase) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = (phase, Instant::now());
    }

    /// Bytes came in: an idle connection starts a request head.
    fn received(&self) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if state.0 == Phase::Idle {
            *state = (Phase::Head, Instant::now());
        }
    }
}

async fn connection(stream: TcpStream, router: Router, limits: Limits) {
    let _ = stream.set_nodelay(true);
    // The first request's head is due from the accept on.
    let activity = Arc::new(Activity(Mutex::new((Phase::Head, Instant::now()))));
    let io = TokioIo::new(Watched {
        stream,
        activity: Arc::clone(&activity),
    });
    let tower = TowerToHyperService::new(router);
    let seen = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        seen.set(Phase::Busy);
        let answer = hyper::service::Service::call(&tower, request);
        let seen = Arc::clone(&seen);
        async move {
            let answer = answer.await;
            seen.set(Phase::Idle);
            answer
        }
    });
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    loop {
        let (phase, since) = activity.get();
        let deadline = match phase {
            Phase::Idle => since + limits.idle_timeout,
            Phase::Head => since + limits.header_timeout,
            // Looked at again later (the request may end any time).
            Phase::Busy => Instant::now() + limits.header_timeout.min(limits.idle_timeout),
        };
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = tokio::time::sleep_until(deadline) => {
                if activity.get() == (phase, since) && phase != Phase::Busy {
                    return; // dropping the connection closes it
                }
            }
        }
    }
}

/// The connection's socket, telling its [`Activity`] when bytes come in.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.received();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
