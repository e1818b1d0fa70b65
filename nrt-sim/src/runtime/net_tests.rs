//! Tests of the rendezvous across processes: hand-made peers and rank 0s on loopback.

use super::super::acceptor::{MAX_PENDING, MAX_WAITING};
use super::*;
use std::net::TcpListener;

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

fn free_rendezvous() -> Rendezvous {
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    rendezvous(&addr.to_string(), Some("test job")).unwrap()
}

fn place(rv: Rendezvous, rank: u32) -> Place<'static> {
    Place {
        name: "g",
        world: 2,
        rank,
        at: rv,
    }
}

fn soon(ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(ms)
}

/// A hand-made rank `rank` of group `name`: connects (retrying) and runs the
/// handshake with `key`, sending `proof` instead of the right one if given.
fn fake_peer(rv: Rendezvous, name: &str, rank: u32, bad_proof: bool) -> TcpStream {
    let mut s = loop {
        match TcpStream::connect(rv.addr) {
            Ok(s) => break s,
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    let hello = Hello {
        world: 2,
        rank,
        name: name.as_bytes().to_vec(),
        nonce: wire::nonce(),
    }
    .encode();
    s.write_all(&hello).unwrap();
    let mut answer = [0u8; CHALLENGE];
    s.read_exact(&mut answer).unwrap();
    let proof = if bad_proof {
        [0; wire::PROOF]
    } else {
        wire::proof(&rv.key, Role::Peer, &hello, &answer[..wire::NONCE])
    };
    s.write_all(&proof).unwrap();
    s
}

#[test]
fn rank_0_refuses_a_part_larger_than_its_slot() {
    let rv = free_rendezvous();
    let peer = std::thread::spawn(move || {
        let mut s = fake_peer(rv, "g", 1, false);
        let _ = wire::read_u32(&mut s);
        let _ = s.write_all(&wire::encode_part(0, &[7; 64]));
        std::thread::sleep(Duration::from_millis(300));
    });
    let r = Link::new(0, 2).exchange(&place(rv, 0), 0, vec![1; 16], soon(5000));
    peer.join().unwrap();
    let (status, why) = r.expect_err("an oversized part must be refused");
    assert_eq!(status, NRT_INVALID, "{why}");
    assert!(
        why.contains("rank 1") && why.contains("64") && why.contains("16"),
        "{why}"
    );
}

/// A hand-made rank 0 of a world of 2 on `rv`: takes one connection, answers its
/// hello (with a wrong proof if `impostor`), then runs `then` on it.
fn fake_root(
    rv: Rendezvous,
    impostor: bool,
    then: impl FnOnce(TcpStream) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    let l = TcpListener::bind(rv.addr).unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = vec![0u8; 16 + 1 + wire::NONCE];
        s.read_exact(&mut buf).unwrap();
        let nonce_r = wire::nonce();
        let key = if impostor {
            Key::derive("guess", None)
        } else {
            rv.key
        };
        s.write_all(&nonce_r).unwrap();
        s.write_all(&wire::proof(&key, Role::Root, &buf, &nonce_r))
            .unwrap();
        let mut proof = [0u8; wire::PROOF];
        if s.read_exact(&mut proof).is_ok() {
            then(s);
        }
    })
}

#[test]
fn a_rank_refuses_reply_parts_of_another_size_than_its_own() {
    let rv = free_rendezvous();
    let root = fake_root(rv, false, |mut s| {
        s.write_all(&0u32.to_le_bytes()).unwrap();
        let _ = wire::read_part(&mut s, 0, 16).unwrap();
        // Rank 1's slot of a 2 x 16-byte output gets 4096 bytes.
        let _ = s.write_all(&wire::encode_reply(0, &[vec![1; 16], vec![2; 4096]]));
        std::thread::sleep(Duration::from_millis(200));
    });
    let r = Link::new(1, 2).exchange(&place(rv, 1), 0, vec![3; 16], soon(5000));
    root.join().unwrap();
    let (status, why) = r.expect_err("an oversized reply part must be refused");
    assert_eq!(status, NRT_INVALID, "{why}");
    assert!(why.contains("4096") && why.contains("16"), "{why}");
}

#[test]
fn a_process_that_cannot_prove_it_is_rank_0_is_refused() {
    let rv = free_rendezvous();
    let root = fake_root(rv, true, |_| {
        panic!("the rank sent its proof to an impostor")
    });
    let r = Link::new(1, 2).exchange(&place(rv, 1), 0, vec![3; 16], soon(500));
    let (status, why) = r.expect_err("an impostor rank 0");
    assert_eq!(status, NRT_EXEC_HW_ERR_COLLECTIVES);
    assert!(why.contains("failed to prove it is rank 0"), "{why}");
    root.join().unwrap();
}

#[test]
fn a_peer_without_the_jobs_key_is_refused_and_named_in_the_timeout() {
    let rv = free_rendezvous();
    let peer = std::thread::spawn(move || {
        let mut s = fake_peer(rv, "g", 1, true);
        // Rank 0 closes it instead of asking for a contribution.
        let mut b = [0u8; 4];
        assert_eq!(s.read(&mut b).unwrap(), 0);
    });
    let r = Link::new(0, 2).exchange(&place(rv, 0), 0, vec![1; 16], soon(500));
    peer.join().unwrap();
    let (_, why) = r.expect_err("nobody proved to be rank 1");
    assert!(
        why.contains("rank(s) [1] never connected") && why.contains("proof did not match"),
        "{why}"
    );
}

#[test]
fn a_second_connection_for_a_connected_rank_is_refused() {
    let rv = free_rendezvous();
    const STEPS: usize = 20;
    let honest = std::thread::spawn(move || {
        let mut link = Link::new(1, 2);
        (0..STEPS)
            .map(|step| link.exchange(&place(rv, 1), step, vec![step as u8; 4], soon(5000)))
            .collect::<Vec<_>>()
    });
    let mut root = Link::new(0, 2);
    assert!(
        root.exchange(&place(rv, 0), 0, vec![0; 4], soon(5000))
            .is_ok()
    );
    // Another process claims rank 1 while rank 1's connection is open.
    let intruder = std::thread::spawn(move || {
        let mut s = fake_peer(rv, "g", 1, false);
        let mut b = [0u8; 4];
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.read(&mut b).unwrap()
    });
    for step in 1..STEPS {
        std::thread::sleep(Duration::from_millis(20));
        let parts = root
            .exchange(&place(rv, 0), step, vec![0; 4], soon(5000))
            .unwrap();
        // Rank 1's part always comes from rank 1.
        assert_eq!(parts, [vec![0; 4], vec![step as u8; 4]]);
    }
    assert!(honest.join().unwrap().iter().all(Result::is_ok));
    // The intruder's connection was closed without a request.
    assert_eq!(intruder.join().unwrap(), 0);
}

#[test]
fn idle_connections_do_not_fail_a_healthy_collective() {
    let rv = free_rendezvous();
    let idlers = std::thread::spawn(move || {
        let mut idle = Vec::new();
        while idle.len() < 5 {
            match TcpStream::connect(rv.addr) {
                Ok(s) => idle.push(s),
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
        std::thread::sleep(Duration::from_secs(4));
    });
    let honest = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        Link::new(1, 2).exchange(&place(rv, 1), 0, vec![2; 16], soon(3000))
    });
    let started = Instant::now();
    let r = Link::new(0, 2).exchange(&place(rv, 0), 0, vec![1; 16], soon(3000));
    assert!(r.is_ok(), "{r:?}");
    assert!(honest.join().unwrap().is_ok());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    idlers.join().unwrap();
}

#[test]
fn handshakes_and_waiting_connections_are_bounded_and_pruned() {
    let rv = free_rendezvous();
    let acceptor = Acceptor::on(rv.addr, rv.key, 4096).unwrap();
    // Idle connections that never say hello.
    let idle: Vec<TcpStream> = (0..MAX_PENDING + 8)
        .map(|_| TcpStream::connect(rv.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    assert!(lock(&acceptor).take(b"g", 2).is_empty());
    assert_eq!(lock(&acceptor).pending_count(), MAX_PENDING);
    drop(idle);
    // Authenticated connections of groups nobody here takes.
    let peers = std::thread::spawn(move || {
        (0..MAX_WAITING + 4)
            .map(|i| fake_peer(rv, &format!("other {i}"), 1, false))
            .collect::<Vec<_>>()
    });
    let deadline = soon(20_000);
    while !peers.is_finished() && Instant::now() < deadline {
        lock(&acceptor).take(b"g", 2);
        std::thread::sleep(Duration::from_millis(1));
    }
    let peers = peers.join().unwrap();
    lock(&acceptor).take(b"g", 2);
    assert_eq!(lock(&acceptor).waiting_count(), MAX_WAITING);
    // Closed by their peers: pruned at the next look.
    drop(peers);
    std::thread::sleep(Duration::from_millis(50));
    lock(&acceptor).take(b"g", 2);
    assert_eq!(lock(&acceptor).waiting_count(), 0);
    assert_eq!(lock(&acceptor).pending_count(), 0);
}
