//! The server facing slow clients (the `serve` binary in its own process, on nrt-sim):
//! a few hundred connections that send part of a request head and stall neither keep
//! normal requests from being served nor keep their connections, fds and tasks for
//! ever; the server holds no more connections than its limit; an idle keep-alive
//! connection is closed. Every wait is bounded (a hang fails the test); no timing is
//! asserted (the figures are printed).

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Generous bound for anything that must happen (a loaded machine is slow).
const PATIENCE: Duration = Duration::from_secs(30);
/// The server's open-file limit here: without a connection limit, 300 stalled
/// connections exhaust it and nothing more can be accepted.
const SERVER_FDS: usize = 256;

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `serve` with `args`, at most [`SERVER_FDS`] open files, on 2 simulated cores.
fn server(args: &[&str]) -> Server {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {SERVER_FDS} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_serve"))
        .args(["--listen", "127.0.0.1:0", "--device-ms", "0.1"])
        .args(args)
        .env("NRT_SIM_VNC_COUNT", "2")
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    // "serving on http://ADDR (cores ...)"
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let addr = loop {
        let line = lines.next().expect("serve exited").expect("stderr");
        if let Some(rest) = line.strip_prefix("serving on http://") {
            break rest.split(' ').next().unwrap().parse().expect("address");
        }
    };
    // Keep draining its stderr so that it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Server { child, addr }
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

const BODY: &str = r#"{"inputs": {"x": [0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]}}"#;

/// One `POST /infer` on a new connection: its status line, and how long it took.
fn normal_request(addr: SocketAddr) -> (String, Duration) {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let request = format!(
        "POST /infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    s.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    match s.read_to_string(&mut answer) {
        Ok(_) => {}
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            panic!("a normal request was not answered within {PATIENCE:?}")
        }
        Err(e) => panic!("a normal request failed: {e}"),
    }
    let status = answer.lines().next().unwrap_or("").to_owned();
    (status, started.elapsed())
}

/// Waits until the server closes `s` (EOF or reset); panics after [`PATIENCE`].
fn closed_by_server(s: &mut TcpStream, what: &str) {
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {} // e.g. an error answer before the close
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("{what} still open after {PATIENCE:?}")
            }
            Err(_) => return, // reset
        }
    }
}

#[test]
fn stalled_request_heads_neither_block_normal_requests_nor_stay_open() {
    const SLOW: usize = 300;
    const LIMIT: usize = 100;
    let server = server(&["--header-timeout-ms", "1000", "--max-connections", "100"]);
    let (status, _) = normal_request(server.addr);
    assert!(status.ends_with("200 OK"), "{status}");
    let baseline = open_fds(server.child.id());
    let mut slow: Vec<TcpStream> = (0..SLOW)
        .map(|_| {
            let mut s = TcpStream::connect(server.addr).expect("connect");
            s.write_all(b"POST /infer HTTP/1.1\r\nHost: x\r\nContent-Le")
                .expect("send");
            s
        })
        .collect();
    // The server accepts no more than its limit, whatever waits in the backlog.
    let mut most = 0;
    for _ in 0..20 {
        most = most.max(open_fds(server.child.id()));
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("server fds: {baseline} before {SLOW} stalled clients, at most {most} with them");
    assert!(
        most <= baseline + LIMIT,
        "{} connections held with a limit of {LIMIT}",
        most - baseline
    );
    // Normal requests are served while the stalled clients are connected.
    let mut took = Vec::new();
    for _ in 0..10 {
        let (status, elapsed) = normal_request(server.addr);
        assert!(status.ends_with("200 OK"), "{status}");
        took.push(elapsed);
    }
    println!("10 normal requests with {SLOW} stalled clients: {took:?}");
    // Every stalled connection is closed (header timeout 1 s).
    let started = Instant::now();
    for s in &mut slow {
        closed_by_server(s, "a connection with a stalled request head");
    }
    println!(
        "all {SLOW} stalled connections closed {:?} after the last normal request",
        started.elapsed()
    );
}

#[test]
fn an_idle_keep_alive_connection_is_closed() {
    let server = server(&["--idle-timeout-ms", "300"]);
    let mut s = TcpStream::connect(server.addr).expect("connect");
    let request = format!(
        "POST /infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    s.write_all(request.as_bytes()).expect("send");
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut first = [0u8; 15];
    s.read_exact(&mut first).expect("an answer");
    assert_eq!(&first, b"HTTP/1.1 200 OK");
    // Kept alive after the answer, then closed once idle for 300 ms.
    closed_by_server(&mut s, "an idle keep-alive connection");
}
