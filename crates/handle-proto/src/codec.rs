//! Byte cursor and the `Codec` trait, in the style of rustls' `msgs::codec`.
//!
//! Every wire type implements [`Codec`]: `encode` appends to a `Vec<u8>` and cannot fail (length
//! bounds are the caller's invariant and are `debug_assert!`ed), `read` consumes from a
//! [`Reader`] and returns a typed [`InvalidMessage`] naming the field that was wrong.
//! [`Codec::read_bytes`] additionally rejects trailing data, so a value decoded from a
//! length-delimited field must use up exactly that field.

use crate::error::InvalidMessage;

/// Largest length prefix we accept for any byte string (the CNRI `MAX_MESSAGE_LENGTH`).
pub const MAX_FIELD_LENGTH: usize = 262_144;

/// A cursor over an untrusted byte slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    cursor: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, cursor: 0 }
    }

    /// Bytes not yet consumed.
    pub fn left(&self) -> usize {
        self.buf.len() - self.cursor
    }

    /// Whether any bytes remain.
    pub fn any_left(&self) -> bool {
        self.left() > 0
    }

    /// Bytes consumed so far.
    pub fn used(&self) -> usize {
        self.cursor
    }

    /// Consumes everything that is left.
    pub fn rest(&mut self) -> &'a [u8] {
        let rest = &self.buf[self.cursor..];
        self.cursor = self.buf.len();
        rest
    }

    /// Consumes exactly `len` bytes, or fails naming `field`.
    pub fn take(&mut self, len: usize, field: &'static str) -> Result<&'a [u8], InvalidMessage> {
        if self.left() < len {
            return Err(InvalidMessage::MissingData {
                field,
                needed: len,
                available: self.left(),
            });
        }
        let start = self.cursor;
        self.cursor += len;
        Ok(&self.buf[start..self.cursor])
    }

    /// A child reader over the next `len` bytes (for length-delimited sections).
    pub fn sub(&mut self, len: usize, field: &'static str) -> Result<Reader<'a>, InvalidMessage> {
        self.take(len, field).map(Reader::new)
    }

    /// Reads a `u8`.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, InvalidMessage> {
        Ok(self.take(1, field)?[0])
    }

    /// Reads a big-endian `u16`.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, InvalidMessage> {
        let b = self.take(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Reads a big-endian `u32`.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, InvalidMessage> {
        let b = self.take(4, field)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a `u32` length prefix and checks it against `max` and the bytes left.
    pub fn length(&mut self, field: &'static str, max: usize) -> Result<usize, InvalidMessage> {
        let len = self.u32(field)? as usize;
        if len > max {
            return Err(InvalidMessage::TooLong { field, len, max });
        }
        Ok(len)
    }

    /// Reads a `u32`-length-prefixed byte string.
    pub fn bytes(&mut self, field: &'static str) -> Result<&'a [u8], InvalidMessage> {
        let len = self.length(field, MAX_FIELD_LENGTH)?;
        self.take(len, field)
    }

    /// Reads a `u32`-length-prefixed UTF-8 string.
    pub fn utf8(&mut self, field: &'static str) -> Result<&'a str, InvalidMessage> {
        let raw = self.bytes(field)?;
        std::str::from_utf8(raw).map_err(|_| InvalidMessage::InvalidUtf8(field))
    }

    /// Reads a `u32` element count, bounded by what the remaining bytes could hold
    /// (`min_item_size` bytes per element), so a hostile count cannot make us allocate.
    pub fn count(
        &mut self,
        field: &'static str,
        min_item_size: usize,
    ) -> Result<usize, InvalidMessage> {
        let n = self.u32(field)? as usize;
        let possible = self.left() / min_item_size.max(1);
        if n > possible {
            return Err(InvalidMessage::TooLong {
                field,
                len: n,
                max: possible,
            });
        }
        Ok(n)
    }

    /// Fails with `TrailingData` unless everything was consumed.
    pub fn expect_empty(&self, what: &'static str) -> Result<(), InvalidMessage> {
        if self.any_left() {
            Err(InvalidMessage::TrailingData(what))
        } else {
            Ok(())
        }
    }

    /// Runs `read` and then requires the reader to be exhausted.
    pub fn all<T>(
        mut self,
        what: &'static str,
        read: impl FnOnce(&mut Self) -> Result<T, InvalidMessage>,
    ) -> Result<T, InvalidMessage> {
        let value = read(&mut self)?;
        self.expect_empty(what)?;
        Ok(value)
    }
}

/// A wire type: encode into a buffer, read from a cursor.
pub trait Codec: Sized {
    /// Appends the wire form of `self`.
    fn encode(&self, out: &mut Vec<u8>);

    /// Decodes one value from the cursor.
    fn read(r: &mut Reader<'_>) -> Result<Self, InvalidMessage>;

    /// Decodes one value that must use up all of `bytes`.
    fn read_bytes(bytes: &[u8]) -> Result<Self, InvalidMessage> {
        Reader::new(bytes).all(std::any::type_name::<Self>(), Self::read)
    }

    /// The wire form as a fresh vector.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// Appends a big-endian `u16`.
pub fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends a big-endian `u32`.
pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends a `u32`-length-prefixed byte string.
pub fn put_bytes(out: &mut Vec<u8>, v: &[u8]) {
    debug_assert!(v.len() <= u32::MAX as usize);
    put_u32(out, v.len() as u32);
    out.extend_from_slice(v);
}

/// Overwrites a big-endian `u32` previously reserved at `at` (used to back-patch lengths).
pub fn patch_u32(out: &mut [u8], at: usize, v: u32) {
    out[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_reports_missing_field() {
        let mut r = Reader::new(&[0, 0, 0]);
        let err = r.u32("op code").unwrap_err();
        assert_eq!(
            err,
            InvalidMessage::MissingData {
                field: "op code",
                needed: 4,
                available: 3
            }
        );
    }

    #[test]
    fn all_rejects_trailing_data() {
        let err = Reader::new(&[0, 1, 2])
            .all("thing", |r| r.u16("x"))
            .unwrap_err();
        assert_eq!(err, InvalidMessage::TrailingData("thing"));
    }

    #[test]
    fn count_cannot_exceed_remaining_bytes() {
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4]);
        assert!(matches!(
            r.count("values", 4),
            Err(InvalidMessage::TooLong {
                len: 0xffff_ffff,
                max: 1,
                ..
            })
        ));
    }

    #[test]
    fn bytes_round_trip_and_bad_utf8() {
        let mut out = Vec::new();
        put_bytes(&mut out, b"abc");
        put_bytes(&mut out, &[0xff, 0xfe]);
        let mut r = Reader::new(&out);
        assert_eq!(r.utf8("first").unwrap(), "abc");
        assert_eq!(
            r.utf8("second").unwrap_err(),
            InvalidMessage::InvalidUtf8("second")
        );
    }
}
