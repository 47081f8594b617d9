//! Handle values (RFC 3651 §3.1 as CNRI encodes them: 4-byte second timestamps).
//!
//! ```text
//! Index u32 | Timestamp u32 | TTLType u8 | TTL u32 | Permissions u8
//! | Type (u32 len + UTF-8) | Data (u32 len + bytes) | References u32 n + n × (UTF-8 handle, u32 index)
//! ```

use crate::codec::{Codec, Reader, put_bytes, put_u32};
use crate::error::InvalidMessage;

/// Value permission bits (CNRI `Encoder.PERM_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ValuePermissions(pub u8);

impl ValuePermissions {
    /// Administrators may read.
    pub const ADMIN_READ: u8 = 0x08;
    /// Administrators may write.
    pub const ADMIN_WRITE: u8 = 0x04;
    /// Anyone may read.
    pub const PUBLIC_READ: u8 = 0x02;
    /// Anyone may write.
    pub const PUBLIC_WRITE: u8 = 0x01;
    /// The default for new values: admin read/write, public read (`1110`).
    pub const DEFAULT: Self = Self(0x0e);

    /// Whether all bits of `mask` are set.
    pub fn has(self, mask: u8) -> bool {
        self.0 & mask == mask
    }

    /// The four-character `adminRead adminWrite publicRead publicWrite` form used by the batch
    /// format and the REST JSON (`"1110"`).
    pub fn to_bit_string(self) -> String {
        [
            Self::ADMIN_READ,
            Self::ADMIN_WRITE,
            Self::PUBLIC_READ,
            Self::PUBLIC_WRITE,
        ]
        .iter()
        .map(|&b| if self.has(b) { '1' } else { '0' })
        .collect()
    }

    /// Parses the bit-string form; like CNRI, the last four characters count and `*` means all.
    pub fn from_bit_string(s: &str) -> Option<Self> {
        if s == "*" {
            return Some(Self(0x0f));
        }
        if s.is_empty() || !s.bytes().all(|c| c == b'0' || c == b'1') {
            return None;
        }
        let bits: Vec<bool> = s.bytes().rev().take(4).map(|c| c == b'1').collect();
        let mut v = 0u8;
        for (i, on) in bits.iter().enumerate() {
            if *on {
                v |= 1 << i;
            }
        }
        Some(Self(v))
    }
}

/// Whether the TTL is relative (seconds) or an absolute expiry time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TtlType {
    /// TTL is a number of seconds (type 0).
    Relative,
    /// TTL is a unix time at which the value expires (type 1).
    Absolute,
}

impl TtlType {
    fn code(self) -> u8 {
        match self {
            Self::Relative => 0,
            Self::Absolute => 1,
        }
    }
}

/// A reference to one value of a handle: `index:handle`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueReference {
    /// The referenced handle.
    pub handle: String,
    /// The referenced index; 0 means "any index" in admin checks.
    pub index: u32,
}

impl ValueReference {
    /// Builds a reference.
    pub fn new(handle: impl Into<String>, index: u32) -> Self {
        Self {
            handle: handle.into(),
            index,
        }
    }

    /// Parses the `index:handle` text form (`300:21.T999/ADMIN`).
    pub fn parse(s: &str) -> Option<Self> {
        let (index, handle) = s.split_once(':')?;
        let index = index.trim().parse().ok()?;
        let handle = handle.trim();
        if handle.is_empty() {
            return None;
        }
        Some(Self::new(handle, index))
    }

    /// Handle names compare case-insensitively (ASCII), as CNRI's `case_sensitive = "no"`.
    pub fn same_handle(&self, other: &str) -> bool {
        self.handle.eq_ignore_ascii_case(other)
    }
}

impl std::fmt::Display for ValueReference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.index, self.handle)
    }
}

impl Codec for ValueReference {
    fn encode(&self, out: &mut Vec<u8>) {
        put_bytes(out, self.handle.as_bytes());
        put_u32(out, self.index);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, InvalidMessage> {
        let handle = r.utf8("reference handle")?.to_owned();
        let index = r.u32("reference index")?;
        Ok(Self { handle, index })
    }
}

/// One handle value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandleValue {
    /// Value index, unique within the handle.
    pub index: u32,
    /// Last-modified time, unix seconds.
    pub timestamp: u32,
    /// Interpretation of `ttl`.
    pub ttl_type: TtlType,
    /// Time to live (seconds, or an absolute unix time); signed as in CNRI.
    pub ttl: i32,
    /// Read/write permission bits.
    pub permissions: ValuePermissions,
    /// Value type (`URL`, `HS_ADMIN`, ...).
    pub value_type: String,
    /// Raw data; typed data is decoded with [`crate::data::TypedData`].
    pub data: Vec<u8>,
    /// References to other values.
    pub references: Vec<ValueReference>,
}

/// Smallest encoded handle value (empty type and data, no references).
pub const MIN_VALUE_SIZE: usize = 4 + 4 + 1 + 4 + 1 + 4 + 4 + 4;

impl HandleValue {
    /// A value with the default TTL (86400 s relative), permissions `1110` and timestamp 0.
    pub fn new(index: u32, value_type: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        Self {
            index,
            timestamp: 0,
            ttl_type: TtlType::Relative,
            ttl: 86_400,
            permissions: ValuePermissions::DEFAULT,
            value_type: value_type.into(),
            data: data.into(),
            references: Vec::new(),
        }
    }

    /// Whether the value type equals `t` (ASCII case-insensitive), or, when `t` ends in `.`,
    /// whether it is in that type hierarchy (`10320.` matches `10320.loc`), as RFC 3652 §3.2.
    pub fn type_matches(value_type: &[u8], t: &[u8]) -> bool {
        if t.last() == Some(&b'.') {
            value_type.len() >= t.len() && value_type[..t.len()].eq_ignore_ascii_case(t)
                || value_type.eq_ignore_ascii_case(&t[..t.len() - 1])
        } else {
            value_type.eq_ignore_ascii_case(t)
        }
    }

    /// Whether the value is readable by anyone.
    pub fn is_public(&self) -> bool {
        self.permissions.has(ValuePermissions::PUBLIC_READ)
    }

    /// Encoded size in bytes.
    pub fn encoded_len(&self) -> usize {
        MIN_VALUE_SIZE
            + self.value_type.len()
            + self.data.len()
            + self
                .references
                .iter()
                .map(|r| 8 + r.handle.len())
                .sum::<usize>()
    }
}

impl Codec for HandleValue {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u32(out, self.index);
        put_u32(out, self.timestamp);
        out.push(self.ttl_type.code());
        out.extend_from_slice(&self.ttl.to_be_bytes());
        out.push(self.permissions.0);
        put_bytes(out, self.value_type.as_bytes());
        put_bytes(out, &self.data);
        put_u32(out, self.references.len() as u32);
        for r in &self.references {
            r.encode(out);
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, InvalidMessage> {
        let index = r.u32("value index")?;
        let timestamp = r.u32("value timestamp")?;
        let ttl_type = match r.u8("value ttl type")? {
            0 => TtlType::Relative,
            1 => TtlType::Absolute,
            _ => {
                return Err(InvalidMessage::InvalidValue {
                    field: "value ttl type",
                    reason: "must be 0 or 1",
                });
            }
        };
        let ttl = r.u32("value ttl")? as i32;
        let permissions = ValuePermissions(r.u8("value permissions")?);
        if permissions.0 & 0xf0 != 0 {
            return Err(InvalidMessage::InvalidValue {
                field: "value permissions",
                reason: "unknown bits set",
            });
        }
        let value_type = r.utf8("value type")?.to_owned();
        let data = r.bytes("value data")?.to_vec();
        let n = r.count("value references", 8)?;
        let mut references = Vec::with_capacity(n);
        for _ in 0..n {
            references.push(ValueReference::read(r)?);
        }
        Ok(Self {
            index,
            timestamp,
            ttl_type,
            ttl,
            permissions,
            value_type,
            data,
            references,
        })
    }
}

/// Borrowed view of the fixed fields of an encoded value, for filtering stored wire bytes
/// without decoding them (the server's resolution fast path).
#[derive(Debug, Clone, Copy)]
pub struct RawValue<'a> {
    /// The whole encoded value.
    pub bytes: &'a [u8],
    /// Value index.
    pub index: u32,
    /// Permission bits.
    pub permissions: ValuePermissions,
    /// Value type bytes.
    pub value_type: &'a [u8],
}

impl<'a> RawValue<'a> {
    /// Splits one encoded value off the front of `r`, checking every length.
    pub fn read(r: &mut Reader<'a>) -> Result<Self, InvalidMessage> {
        let start = r.clone();
        let index = r.u32("value index")?;
        r.take(9, "value timestamp/ttl")?;
        let permissions = ValuePermissions(r.u8("value permissions")?);
        let value_type = r.bytes("value type")?;
        r.bytes("value data")?;
        let n = r.count("value references", 8)?;
        for _ in 0..n {
            r.bytes("reference handle")?;
            r.u32("reference index")?;
        }
        let len = r.used() - start.used();
        let bytes = start.clone().take(len, "value")?;
        Ok(Self {
            bytes,
            index,
            permissions,
            value_type,
        })
    }
}

/// Iterates over a concatenation of encoded values.
pub fn raw_values(bytes: &[u8]) -> impl Iterator<Item = Result<RawValue<'_>, InvalidMessage>> {
    let mut r = Reader::new(bytes);
    std::iter::from_fn(move || {
        if !r.any_left() {
            return None;
        }
        let item = RawValue::read(&mut r);
        if item.is_err() {
            // Stop after the first error: the cursor may not have moved.
            r.rest();
        }
        Some(item)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_round_trip_and_layout() {
        let mut v = HandleValue::new(1, "URL", b"http://a".to_vec());
        v.timestamp = 0x0102_0304;
        v.references.push(ValueReference::new("0.NA/1", 7));
        let bytes = v.to_bytes();
        assert_eq!(bytes.len(), v.encoded_len());
        assert_eq!(&bytes[..4], &[0, 0, 0, 1]);
        assert_eq!(&bytes[4..8], &[1, 2, 3, 4]);
        assert_eq!(bytes[13], 0x0e);
        assert_eq!(&bytes[14..21], &[0, 0, 0, 3, b'U', b'R', b'L']);
        assert_eq!(HandleValue::read_bytes(&bytes).unwrap(), v);
        let raw = raw_values(&bytes).next().unwrap().unwrap();
        assert_eq!(
            (raw.index, raw.value_type, raw.bytes.len()),
            (1, &b"URL"[..], bytes.len())
        );
        for cut in 0..bytes.len() {
            assert!(
                HandleValue::read_bytes(&bytes[..cut]).is_err(),
                "prefix {cut} must fail"
            );
            let raw: Vec<_> = raw_values(&bytes[..cut]).collect();
            assert!(
                cut == 0 && raw.is_empty() || raw.len() == 1 && raw[0].is_err(),
                "prefix {cut}"
            );
        }
    }

    #[test]
    fn permission_strings_follow_cnri() {
        assert_eq!(ValuePermissions::DEFAULT.to_bit_string(), "1110");
        assert_eq!(
            ValuePermissions::from_bit_string("1010"),
            Some(ValuePermissions(0x0a))
        );
        assert_eq!(
            ValuePermissions::from_bit_string("11"),
            Some(ValuePermissions(0x03))
        );
        assert_eq!(
            ValuePermissions::from_bit_string("*"),
            Some(ValuePermissions(0x0f))
        );
        assert_eq!(ValuePermissions::from_bit_string("1x10"), None);
    }

    #[test]
    fn type_hierarchy_matching() {
        assert!(HandleValue::type_matches(b"url", b"URL"));
        assert!(HandleValue::type_matches(b"10320.loc", b"10320."));
        assert!(HandleValue::type_matches(b"10320", b"10320."));
        assert!(!HandleValue::type_matches(b"10321", b"10320."));
        assert!(!HandleValue::type_matches(b"URLX", b"URL"));
    }

    #[test]
    fn value_reference_text() {
        let r = ValueReference::parse("300:21.T999/ADMIN").unwrap();
        assert_eq!((r.index, r.handle.as_str()), (300, "21.T999/ADMIN"));
        assert_eq!(r.to_string(), "300:21.T999/ADMIN");
        assert!(ValueReference::parse("x:21.T999/ADMIN").is_none());
        assert!(ValueReference::parse("300:").is_none());
    }
}
