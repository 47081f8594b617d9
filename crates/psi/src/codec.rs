//! Length-checked byte codec shared by every message of this crate.
//!
//! Modelled on rustls' `Reader`: a cursor over an untrusted `&[u8]` whose every read names the
//! field it was reading, so a malformed message produces an error that says where it broke.
//! Decoders finish with [`Reader::finish`], which rejects trailing data: a message is either
//! consumed exactly or refused.

use thiserror::Error;

/// Why a byte string could not be decoded. Every variant names the field being read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended in the middle of a field (a truncated message).
    #[error("truncated message: `{field}` needs {needed} bytes but only {available} remain")]
    Truncated {
        /// Field being read.
        field: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left in the input.
        available: usize,
    },
    /// Bytes were left over after the last field (a padded or concatenated message).
    #[error("{extra} bytes of trailing data after `{what}`")]
    TrailingData {
        /// Message whose decoding finished early.
        what: &'static str,
        /// Number of unread bytes.
        extra: usize,
    },
    /// A field holds a value outside its domain.
    #[error("invalid `{field}`: {reason}")]
    InvalidField {
        /// Offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A count field exceeds the limit the protocol allows.
    #[error("`{field}` is {count}, above the limit of {max}")]
    TooMany {
        /// Count field.
        field: &'static str,
        /// Value received.
        count: u64,
        /// Largest value allowed.
        max: u64,
    },
}

/// A cursor over untrusted bytes. All integers are little-endian.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Takes the next `n` bytes.
    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let available = self.remaining();
        if n > available {
            return Err(DecodeError::Truncated {
                field,
                needed: n,
                available,
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Takes a fixed-size array.
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// Reads one byte.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }

    /// Reads a little-endian `u16`.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }

    /// Reads a little-endian `u32`.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    /// Reads a little-endian `u64`.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    /// Reads a `u32` element count and checks it against `max` and against the bytes left,
    /// given that every element takes at least `min_element_len` bytes. This keeps a forged
    /// count from triggering a large allocation before the data is known to be there.
    pub fn count(
        &mut self,
        field: &'static str,
        max: u64,
        min_element_len: usize,
    ) -> Result<usize, DecodeError> {
        let count = u64::from(self.u32(field)?);
        if count > max {
            return Err(DecodeError::TooMany { field, count, max });
        }
        let count = usize::try_from(count).map_err(|_| DecodeError::InvalidField {
            field,
            reason: "does not fit in memory",
        })?;
        let needed = count.saturating_mul(min_element_len);
        if needed > self.remaining() {
            return Err(DecodeError::Truncated {
                field,
                needed,
                available: self.remaining(),
            });
        }
        Ok(count)
    }

    /// Reads a `u32`-length-prefixed byte string of at most `max` bytes.
    pub fn bytes_u32(&mut self, field: &'static str, max: u64) -> Result<&'a [u8], DecodeError> {
        let len = self.count(field, max, 1)?;
        self.take(len, field)
    }

    /// Ends decoding; fails if any byte is left.
    pub fn finish(self, what: &'static str) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(DecodeError::TrailingData { what, extra }),
        }
    }
}

/// Appends a `u32`-length-prefixed byte string.
pub fn put_bytes_u32(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len_u32(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// Appends a length or count as `u32`. Callers keep counts below the protocol limits (all
/// far below `u32::MAX`); the saturation only guards against misuse and is then caught by the
/// peer's decoder as a count mismatch.
pub fn put_len_u32(out: &mut Vec<u8>, len: usize) {
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_truncated_fields_by_name() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(
            r.u32("set_size"),
            Err(DecodeError::Truncated {
                field: "set_size",
                needed: 4,
                available: 3
            })
        );
    }

    #[test]
    fn rejects_trailing_data() {
        let mut r = Reader::new(&[7, 0, 9]);
        assert_eq!(r.u16("x"), Ok(7));
        assert_eq!(
            r.finish("msg"),
            Err(DecodeError::TrailingData {
                what: "msg",
                extra: 1
            })
        );
    }

    #[test]
    fn count_is_checked_against_limit_and_remaining_bytes() {
        let mut buf = 5u32.to_le_bytes().to_vec();
        buf.extend_from_slice(&[0; 9]);
        assert!(matches!(
            Reader::new(&buf).count("n", 4, 1),
            Err(DecodeError::TooMany { .. })
        ));
        assert!(matches!(
            Reader::new(&buf).count("n", 10, 2),
            Err(DecodeError::Truncated { .. })
        ));
        assert_eq!(Reader::new(&buf).count("n", 10, 1), Ok(5));
    }
}
