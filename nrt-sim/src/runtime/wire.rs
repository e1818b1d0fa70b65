//! The rendezvous wire format of collectives across processes ([`super::net`]), and its
//! authentication. Everything a peer sends is untrusted: every length is checked against
//! what this side expects before anything is allocated or copied.
//!
//! Integers are little-endian. A rank other than 0 opens a connection to rank 0 and
//! says hello: `magic world rank name_len name nonce_p` (`nonce_p`: 16 random bytes).
//! Rank 0 answers `nonce_r proof_r`, the rank checks `proof_r` and answers `proof_p`,
//! which rank 0 checks; only then is the connection a rank's. A proof is the SHA-256 of
//! a role label, the job's [`Key`], the hello and `nonce_r`: each side shows it knows
//! the key without sending it, and a recorded handshake cannot be replayed (fresh nonces
//! on both sides). Then, per collective step: rank 0 asks `step`, the rank answers
//! `step len bytes`, rank 0 sends `step count (len bytes)*` with every rank's part.

use hmac_sha256::Hash as Sha256;
use std::io::{self, Read};

/// The largest world the simulator sets up (a rank of a bigger one is refused with
/// `NRT_INVALID` naming both, and a hello naming one is refused). The simulator's own
/// limit, not libnrt's (no document gives one): its ranks are cores of this machine
/// meeting over one loopback listener, and per-rank state is allocated for the whole
/// world when a group is created.
pub(crate) const MAX_WORLD: u32 = 4096;

pub(crate) const MAGIC: u32 = 0x4e52_5443; // "NRTC"
/// The longest group name a hello may carry.
pub(crate) const MAX_NAME: usize = 4096;
pub(crate) const NONCE: usize = 16;
pub(crate) const PROOF: usize = 32;
/// Rank 0's answer to a hello: `nonce_r proof_r`.
pub(crate) const CHALLENGE: usize = NONCE + PROOF;

/// The secret every rank of one job shares: derived from `NEURON_RT_ROOT_COMM_ID` and
/// `NRT_SIM_COMM_TOKEN` (empty when unset), which every rank of a job is given alike.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key([u8; 32]);

impl Key {
    pub(crate) fn derive(root_comm_id: &str, token: Option<&str>) -> Key {
        let mut h = Sha256::new();
        h.update(b"nrt-sim rendezvous key v1\0");
        h.update((root_comm_id.len() as u64).to_le_bytes());
        h.update(root_comm_id.as_bytes());
        h.update(token.unwrap_or("").as_bytes());
        Key(h.finalize())
    }
}

/// Which side a proof is from (so one side's proof is never the other's).
#[derive(Clone, Copy)]
pub(crate) enum Role {
    Root,
    Peer,
}

/// The proof of `role` for the handshake of `hello` (its bytes as sent) and `nonce_r`.
pub(crate) fn proof(key: &Key, role: Role, hello: &[u8], nonce_r: &[u8]) -> [u8; PROOF] {
    let mut h = Sha256::new();
    h.update(match role {
        Role::Root => b"nrt-sim rank 0 proof\0",
        Role::Peer => b"nrt-sim rank n proof\0",
    });
    h.update(key.0);
    h.update((hello.len() as u64).to_le_bytes());
    h.update(hello);
    h.update(nonce_r);
    h.finalize()
}

/// Compares two proofs in time independent of where they differ.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 16 bytes from the kernel's random source (`getrandom`); if that fails, a hash of
/// the time, the process and a counter (unique, which is what a nonce needs).
pub(crate) fn nonce() -> [u8; NONCE] {
    let mut n = [0u8; NONCE];
    // SAFETY: `n` is writable for its length; flags 0 (block until seeded, which it is
    // long before any process runs collectives).
    let got = unsafe { libc::getrandom(n.as_mut_ptr().cast(), n.len(), 0) };
    if got != n.len() as isize {
        static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let mut h = Sha256::new();
        h.update(format!("{:?}", std::time::SystemTime::now()).as_bytes());
        h.update(std::process::id().to_le_bytes());
        h.update(
            COUNT
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                .to_le_bytes(),
        );
        n.copy_from_slice(&h.finalize()[..NONCE]);
    }
    n
}

/// A rank's hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hello {
    pub(crate) world: u32,
    pub(crate) rank: u32,
    pub(crate) name: Vec<u8>,
    pub(crate) nonce: [u8; NONCE],
}

impl Hello {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(16 + self.name.len() + NONCE);
        for v in [MAGIC, self.world, self.rank, self.name.len() as u32] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&self.name);
        b.extend_from_slice(&self.nonce);
        b
    }

    /// The hello at the start of `buf` and its length in bytes; `Ok(None)` while more
    /// bytes are needed; `Err` saying why it is not a rank's hello (a wrong magic, rank
    /// 0 or a rank not below the world, a world above `max_world`, a name too long).
    /// Never allocates more than the name's checked length.
    pub(crate) fn parse(buf: &[u8], max_world: u32) -> Result<Option<(Hello, usize)>, String> {
        let word = |i: usize| -> Option<u32> {
            let b = buf.get(4 * i..4 * i + 4)?;
            Some(u32::from_le_bytes(b.try_into().expect("4 bytes")))
        };
        let (Some(magic), Some(world), Some(rank), Some(len)) =
            (word(0), word(1), word(2), word(3))
        else {
            // Refuse a wrong magic as soon as its 4 bytes are in.
            return match word(0) {
                Some(m) if m != MAGIC => Err(format!("not a rank's hello (magic {m:#010x})")),
                _ => Ok(None),
            };
        };
        if magic != MAGIC {
            return Err(format!("not a rank's hello (magic {magic:#010x})"));
        }
        if rank == 0 || rank >= world || world > max_world {
            return Err(format!(
                "a hello of rank {rank} of a world of {world} (ranks 1.. below the world, worlds up to {max_world})"
            ));
        }
        let len = len as usize;
        if len > MAX_NAME {
            return Err(format!(
                "a hello with a group name of {len} bytes (at most {MAX_NAME})"
            ));
        }
        let end = 16 + len + NONCE;
        if buf.len() < end {
            return Ok(None);
        }
        let hello = Hello {
            world,
            rank,
            name: buf[16..16 + len].to_vec(),
            nonce: buf[16 + len..end].try_into().expect("NONCE bytes"),
        };
        Ok(Some((hello, end)))
    }
}

/// A part whose length is not the one every rank of the round contributes.
#[derive(Debug)]
pub(crate) struct WrongSize {
    pub(crate) got: u64,
    pub(crate) expected: usize,
}

impl std::fmt::Display for WrongSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a part of {} bytes where every rank contributes {} (this rank's size)",
            self.got, self.expected
        )
    }
}

impl std::error::Error for WrongSize {}

/// The [`WrongSize`] inside `e`, if that is what `e` is.
pub(crate) fn wrong_size(e: &io::Error) -> Option<&WrongSize> {
    e.get_ref().and_then(|x| x.downcast_ref::<WrongSize>())
}

fn invalid(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

pub(crate) fn read_u32(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_u64(r: &mut impl Read) -> io::Result<u64> {
    let mut b = [0; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Checks that a message is of collective `step`.
pub(crate) fn expect_step(got: u32, step: u32) -> io::Result<()> {
    if got == step {
        Ok(())
    } else {
        Err(invalid(format!(
            "collective {got} arrived while in collective {step}"
        )))
    }
}

/// `len bytes` of exactly `expected` bytes; any other length is refused before
/// anything is allocated.
fn read_sized(r: &mut impl Read, expected: usize) -> io::Result<Vec<u8>> {
    let got = read_u64(r)?;
    if got != expected as u64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            WrongSize { got, expected },
        ));
    }
    let mut part = vec![0; expected];
    r.read_exact(&mut part)?;
    Ok(part)
}

/// A rank's contribution `step len bytes` to collective `step`, of `expected` bytes.
pub(crate) fn read_part(r: &mut impl Read, step: u32, expected: usize) -> io::Result<Vec<u8>> {
    expect_step(read_u32(r)?, step)?;
    read_sized(r, expected)
}

pub(crate) fn encode_part(step: u32, bytes: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(12 + bytes.len());
    msg.extend_from_slice(&step.to_le_bytes());
    msg.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    msg.extend_from_slice(bytes);
    msg
}

pub(crate) fn encode_reply(step: u32, parts: &[Vec<u8>]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(8 + parts.iter().map(|p| 8 + p.len()).sum::<usize>());
    msg.extend_from_slice(&step.to_le_bytes());
    msg.extend_from_slice(&(parts.len() as u32).to_le_bytes());
    for p in parts {
        msg.extend_from_slice(&(p.len() as u64).to_le_bytes());
        msg.extend_from_slice(p);
    }
    msg
}

/// Rank 0's reply to collective `step`: `world` parts of `expected` bytes each.
pub(crate) fn read_reply(
    r: &mut impl Read,
    step: u32,
    world: u32,
    expected: usize,
) -> io::Result<Vec<Vec<u8>>> {
    expect_step(read_u32(r)?, step)?;
    let count = read_u32(r)?;
    if count != world {
        return Err(invalid(format!(
            "a reply of {count} parts for a world of {world}"
        )));
    }
    (0..count).map(|_| read_sized(r, expected)).collect()
}

/// Feeds untrusted bytes to every parser of this format (the fuzz target's entry):
/// a hello, a contribution and a reply of the sizes the first bytes choose.
pub(crate) fn parse_untrusted(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let world = u32::from(sel & 0x0f) + 1;
    let expected = usize::from(sel >> 4) * 8;
    if let Ok(Some((hello, used))) = Hello::parse(rest, 4096) {
        // A parsed hello encodes back to the same bytes.
        assert_eq!(hello.encode(), rest[..used]);
    }
    let mut r = rest;
    if let Ok(part) = read_part(&mut r, 0, expected) {
        assert_eq!(part.len(), expected);
    }
    let mut r = rest;
    if let Ok(parts) = read_reply(&mut r, 0, world, expected) {
        assert!(parts.len() == world as usize && parts.iter().all(|p| p.len() == expected));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> Hello {
        Hello {
            world: 4,
            rank: 2,
            name: b"g".to_vec(),
            nonce: [9; NONCE],
        }
    }

    #[test]
    fn a_hello_parses_back_and_waits_for_its_last_byte() {
        let b = hello().encode();
        assert_eq!(Hello::parse(&b, 4096), Ok(Some((hello(), b.len()))));
        for cut in 0..b.len() {
            assert_eq!(Hello::parse(&b[..cut], 4096), Ok(None), "{cut}");
        }
    }

    #[test]
    fn bad_hellos_are_refused_before_their_name_is_read() {
        let mut h = hello();
        h.rank = 0;
        assert!(Hello::parse(&h.encode(), 4096).is_err());
        h.rank = 4;
        assert!(Hello::parse(&h.encode(), 4096).is_err());
        let mut b = hello().encode();
        b[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(
            Hello::parse(&b[..16], 4096)
                .unwrap_err()
                .contains("4294967295")
        );
        assert!(Hello::parse(b"GET / HTTP/1.1", 4096).is_err());
        let mut h = hello();
        h.world = 1 << 26;
        assert!(
            Hello::parse(&h.encode(), 4096)
                .unwrap_err()
                .contains("67108864")
        );
    }

    #[test]
    fn parts_and_replies_of_another_size_are_refused_before_allocating() {
        let msg = encode_part(3, &[1; 64]);
        let e = read_part(&mut &msg[..], 3, 16).unwrap_err();
        let w = wrong_size(&e).expect("a size error");
        assert_eq!((w.got, w.expected), (64, 16));
        // A 2^63-byte length is refused from its header alone.
        let mut huge = 3u32.to_le_bytes().to_vec();
        huge.extend_from_slice(&(1u64 << 63).to_le_bytes());
        assert!(wrong_size(&read_part(&mut &huge[..], 3, 16).unwrap_err()).is_some());
        let reply = encode_reply(3, &[vec![1; 16], vec![2; 64]]);
        let e = read_reply(&mut &reply[..], 3, 2, 16).unwrap_err();
        assert_eq!(wrong_size(&e).map(|w| w.got), Some(64));
        let reply = encode_reply(3, &[vec![1; 16], vec![2; 16]]);
        assert_eq!(read_reply(&mut &reply[..], 3, 2, 16).unwrap().len(), 2);
        assert!(read_reply(&mut &reply[..], 3, 3, 16).is_err());
        assert!(read_reply(&mut &reply[..], 4, 2, 16).is_err());
    }

    #[test]
    fn untrusted_bytes_are_parsed_without_panicking() {
        wire_inputs().iter().for_each(|d| parse_untrusted(d));
    }

    /// A few well-formed and malformed messages (also the fuzz corpus's seeds).
    fn wire_inputs() -> Vec<Vec<u8>> {
        let mut v = vec![Vec::new(), vec![0x21]];
        let mut h = vec![0x21];
        h.extend(hello().encode());
        v.push(h);
        let mut p = vec![0x21];
        p.extend(encode_part(0, &[5; 16]));
        v.push(p);
        let mut r = vec![0x21];
        r.extend(encode_reply(0, &[vec![1; 16], vec![2; 16]]));
        v.push(r);
        v
    }

    #[test]
    fn proofs_depend_on_role_key_hello_and_nonce() {
        let k = Key::derive("127.0.0.1:5000", None);
        let h = hello().encode();
        let p = proof(&k, Role::Root, &h, &[1; NONCE]);
        assert!(same(&p, &proof(&k, Role::Root, &h, &[1; NONCE])));
        assert!(!same(&p, &proof(&k, Role::Peer, &h, &[1; NONCE])));
        assert!(!same(&p, &proof(&k, Role::Root, &h, &[2; NONCE])));
        let other = Key::derive("127.0.0.1:5000", Some("secret"));
        assert!(!same(&p, &proof(&other, Role::Root, &h, &[1; NONCE])));
        assert!(Key::derive("127.0.0.1:5001", None) != k);
        assert_ne!(nonce(), nonce());
    }
}
