//! [`SeqId`]: the id libnrt gives every accepted async request.

use std::fmt;

use nrt_sys as sys;

/// The id of a request scheduled on an execution-unit queue (`nrta_seq_t`).
///
/// The top 16 bits identify the queue (its *XU id*), the low 48 bits are the request's
/// number on that queue: numbers grow by one per accepted request, starting at 1, so
/// "every request up to number `n` is done" is a single comparison. A queue that has
/// completed nothing yet reports number 0.
///
/// Ids of different queues are not ordered with respect to each other; [`SeqId`]
/// therefore implements `PartialOrd` only between ids of the same queue
/// (`partial_cmp` is `None` across queues).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeqId(u64);

impl SeqId {
    /// Mask of the number bits (the low 48).
    pub const NUMBER_MASK: u64 = sys::NRTA_SEQ_NUM_MASK;

    /// The id with the given raw value, as libnrt writes it.
    pub const fn from_raw(raw: u64) -> SeqId {
        SeqId(raw)
    }

    /// The id made of an XU id and a number; bits of `number` above the 48th are dropped.
    pub const fn new(xu_id: u16, number: u64) -> SeqId {
        SeqId(((xu_id as u64) << 48) | (number & Self::NUMBER_MASK))
    }

    /// The raw value, as passed to libnrt.
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// The id of the queue that issued this request (top 16 bits).
    pub const fn xu_id(self) -> u16 {
        (self.0 >> 48) as u16
    }

    /// The request's number on its queue (low 48 bits).
    pub const fn number(self) -> u64 {
        self.0 & Self::NUMBER_MASK
    }
}

impl PartialOrd for SeqId {
    fn partial_cmp(&self, other: &SeqId) -> Option<std::cmp::Ordering> {
        (self.xu_id() == other.xu_id()).then(|| self.number().cmp(&other.number()))
    }
}

impl fmt::Debug for SeqId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SeqId({:#06x}:{})", self.xu_id(), self.number())
    }
}

impl fmt::Display for SeqId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#06x}:{}", self.xu_id(), self.number())
    }
}

impl From<SeqId> for u64 {
    fn from(seq: SeqId) -> u64 {
        seq.raw()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_round_trip() {
        let s = SeqId::new(0x0123, 42);
        assert_eq!(s.xu_id(), 0x0123);
        assert_eq!(s.number(), 42);
        assert_eq!(s.raw(), (0x0123u64 << 48) | 42);
        assert_eq!(SeqId::from_raw(s.raw()), s);
        let max = SeqId::new(u16::MAX, u64::MAX);
        assert_eq!(max.xu_id(), u16::MAX);
        assert_eq!(max.number(), SeqId::NUMBER_MASK);
    }

    #[test]
    fn ordered_only_within_one_queue() {
        let a = SeqId::new(1, 5);
        let b = SeqId::new(1, 6);
        let other = SeqId::new(2, 7);
        assert!(a < b);
        assert!(b > a);
        assert_eq!(a.partial_cmp(&other), None);
        assert_eq!(other.partial_cmp(&a), None);
    }

    #[test]
    fn display_and_debug_show_both_parts() {
        let s = SeqId::new(0x0101, 9);
        assert_eq!(s.to_string(), "0x0101:9");
        assert_eq!(format!("{s:?}"), "SeqId(0x0101:9)");
    }
}
