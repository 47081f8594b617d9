//! UDP fragmentation and reassembly.
//!
//! A message longer than 492 bytes (512 minus the envelope) is sent as several datagrams, each
//! with its own envelope carrying the same request id, an increasing `sequence_number` and the
//! length of the *whole* message. CNRI 7.3 does not set TC on such fragments, so reassembly keys
//! on `message_length` alone: a message is complete when the fragments cover that many bytes.
//!
//! The reassembler is pure: the caller passes the current time in milliseconds.

use std::collections::HashMap;

use crate::codec::{Codec, Reader};
use crate::constants::{ENVELOPE_SIZE, MAX_UDP_DATA_SIZE, MAX_UDP_PACKET_SIZE};
use crate::error::InvalidMessage;
use crate::message::{Envelope, check_envelope};

/// Splits an encoded message (envelope included) into datagrams of at most 512 bytes.
/// A message that fits is returned unchanged as a single datagram.
pub fn fragment(message: &[u8]) -> Result<Vec<Vec<u8>>, InvalidMessage> {
    if message.len() <= MAX_UDP_PACKET_SIZE {
        return Ok(vec![message.to_vec()]);
    }
    let envelope = Envelope::read(&mut Reader::new(message))?;
    let payload = message.get(ENVELOPE_SIZE..).unwrap_or_default();
    let mut out = Vec::with_capacity(payload.len().div_ceil(MAX_UDP_DATA_SIZE));
    for (seq, chunk) in payload.chunks(MAX_UDP_DATA_SIZE).enumerate() {
        let mut env = envelope;
        env.sequence_number = seq as u32;
        let mut datagram = Vec::with_capacity(ENVELOPE_SIZE + chunk.len());
        env.encode(&mut datagram);
        datagram.extend_from_slice(chunk);
        out.push(datagram);
    }
    Ok(out)
}

/// What [`Reassembler::push`] made of a datagram.
#[derive(Debug, PartialEq, Eq)]
pub enum Reassembly {
    /// The message is complete: envelope (sequence 0) followed by all payload bytes.
    Complete(Vec<u8>),
    /// More fragments are needed.
    Pending,
}

#[derive(Debug)]
struct Partial {
    envelope: Envelope,
    fragments: HashMap<u32, Vec<u8>>,
    received: usize,
    first_seen_ms: u64,
}

/// Joins fragments per (peer key, request id); drops partial messages older than a timeout and
/// caps the number in flight so a flood of first fragments cannot exhaust memory.
#[derive(Debug)]
pub struct Reassembler<K> {
    partial: HashMap<(K, u32), Partial>,
    timeout_ms: u64,
    max_in_flight: usize,
}

impl<K: std::hash::Hash + Eq + Clone> Reassembler<K> {
    /// A reassembler that forgets partial messages after `timeout_ms` and keeps at most
    /// `max_in_flight` of them.
    pub fn new(timeout_ms: u64, max_in_flight: usize) -> Self {
        Self {
            partial: HashMap::new(),
            timeout_ms,
            max_in_flight,
        }
    }

    /// Number of partial messages held.
    pub fn in_flight(&self) -> usize {
        self.partial.len()
    }

    /// Adds one datagram from `peer` received at `now_ms`.
    pub fn push(
        &mut self,
        peer: K,
        datagram: &[u8],
        now_ms: u64,
    ) -> Result<Reassembly, InvalidMessage> {
        let mut r = Reader::new(datagram);
        let envelope = Envelope::read(&mut r)?;
        check_envelope(&envelope)?;
        let total = envelope.message_length as usize;
        let chunk = r.rest();
        let max_seq = total.div_ceil(MAX_UDP_DATA_SIZE).max(1);
        if envelope.sequence_number == 0 && chunk.len() == total {
            return Ok(Reassembly::Complete(datagram.to_vec()));
        }
        if envelope.sequence_number as usize >= max_seq
            || chunk.len() > MAX_UDP_DATA_SIZE
            || chunk.len() > total
        {
            return Err(InvalidMessage::InvalidValue {
                field: "fragment",
                reason: "outside the announced message length",
            });
        }
        self.expire(now_ms);
        let key = (peer, envelope.request_id);
        if !self.partial.contains_key(&key) && self.partial.len() >= self.max_in_flight {
            return Err(InvalidMessage::InvalidValue {
                field: "fragment",
                reason: "too many partial messages",
            });
        }
        let partial = self.partial.entry(key.clone()).or_insert_with(|| Partial {
            envelope,
            fragments: HashMap::new(),
            received: 0,
            first_seen_ms: now_ms,
        });
        if partial.envelope.message_length != envelope.message_length {
            self.partial.remove(&key);
            return Err(InvalidMessage::LengthMismatch {
                field: "fragment message length",
                declared: total,
                actual: partial_len_hint(envelope.message_length),
            });
        }
        if partial
            .fragments
            .insert(envelope.sequence_number, chunk.to_vec())
            .is_none()
        {
            partial.received += chunk.len();
        }
        if partial.received < total {
            return Ok(Reassembly::Pending);
        }
        let Some(partial) = self.partial.remove(&key) else {
            return Ok(Reassembly::Pending);
        };
        let mut env = partial.envelope;
        env.sequence_number = 0;
        let mut out = Vec::with_capacity(ENVELOPE_SIZE + total);
        env.encode(&mut out);
        for seq in 0..max_seq as u32 {
            match partial.fragments.get(&seq) {
                Some(f) => out.extend_from_slice(f),
                None => {
                    return Err(InvalidMessage::InvalidValue {
                        field: "fragment",
                        reason: "sequence gap",
                    });
                }
            }
        }
        if out.len() != ENVELOPE_SIZE + total {
            return Err(InvalidMessage::LengthMismatch {
                field: "reassembled message",
                declared: total,
                actual: out.len() - ENVELOPE_SIZE,
            });
        }
        Ok(Reassembly::Complete(out))
    }

    /// Drops partial messages first seen more than the timeout before `now_ms`.
    pub fn expire(&mut self, now_ms: u64) {
        let timeout = self.timeout_ms;
        self.partial
            .retain(|_, p| now_ms.saturating_sub(p.first_seen_ms) <= timeout);
    }
}

fn partial_len_hint(len: u32) -> usize {
    len as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message_of(len: usize, request_id: u32) -> Vec<u8> {
        let mut env = Envelope::new(request_id);
        env.message_length = len as u32;
        let mut out = env.to_bytes();
        out.extend((0..len).map(|i| (i % 251) as u8));
        out
    }

    #[test]
    fn small_message_is_one_datagram() {
        let m = message_of(100, 1);
        assert_eq!(fragment(&m).unwrap(), vec![m]);
    }

    #[test]
    fn fragments_like_cnri_and_reassembles_in_any_order() {
        // CNRI answered a 570-byte message (550 after the envelope) as 512 + 78 bytes.
        let m = message_of(550, 9);
        let parts = fragment(&m).unwrap();
        assert_eq!(
            parts.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![512, 78]
        );
        assert_eq!(u32::from_be_bytes(parts[1][12..16].try_into().unwrap()), 1);
        let mut r = Reassembler::new(1000, 16);
        assert_eq!(r.push("peer", &parts[1], 0).unwrap(), Reassembly::Pending);
        assert_eq!(
            r.push("peer", &parts[0], 1).unwrap(),
            Reassembly::Complete(m)
        );
        assert_eq!(r.in_flight(), 0);
    }

    #[test]
    fn big_message_many_fragments_with_duplicates() {
        let m = message_of(5000, 3);
        let parts = fragment(&m).unwrap();
        assert_eq!(parts.len(), 5000usize.div_ceil(MAX_UDP_DATA_SIZE));
        let mut r = Reassembler::new(1000, 16);
        for p in parts.iter().rev().take(parts.len() - 1) {
            assert_eq!(r.push(1u8, p, 0).unwrap(), Reassembly::Pending);
            assert_eq!(r.push(1u8, p, 0).unwrap(), Reassembly::Pending);
        }
        assert_eq!(r.push(1u8, &parts[0], 0).unwrap(), Reassembly::Complete(m));
    }

    #[test]
    fn stale_and_hostile_fragments() {
        let parts = fragment(&message_of(600, 4)).unwrap();
        let mut r = Reassembler::new(100, 1);
        assert_eq!(r.push(1u8, &parts[0], 0).unwrap(), Reassembly::Pending);
        // A second partial message exceeds the in-flight cap.
        let other = fragment(&message_of(600, 5)).unwrap();
        assert!(r.push(1u8, &other[0], 10).is_err());
        // After the timeout the first one is gone and the rest of it starts afresh.
        assert_eq!(r.push(1u8, &parts[1], 500).unwrap(), Reassembly::Pending);
        assert_eq!(r.in_flight(), 1);
        // A sequence number beyond the announced length is rejected.
        let mut bad = parts[1].clone();
        bad[12..16].copy_from_slice(&9u32.to_be_bytes());
        assert!(r.push(2u8, &bad, 500).is_err());
    }
}
