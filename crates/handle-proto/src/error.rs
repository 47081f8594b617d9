//! The one error type of the decoder.

/// Why a byte sequence is not a valid Handle protocol element. Each variant names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidMessage {
    /// The input ended inside a field: truncated datagram or a length prefix that lies.
    #[error("{field}: needed {needed} bytes, {available} available")]
    MissingData {
        field: &'static str,
        needed: usize,
        available: usize,
    },
    /// Bytes were left after a complete element: a length field disagrees with the content.
    #[error("trailing data after {0}")]
    TrailingData(&'static str),
    /// A length or count is larger than allowed or than the input could hold.
    #[error("{field}: length {len} exceeds maximum {max}")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    /// A string field is not valid UTF-8.
    #[error("{0}: invalid UTF-8")]
    InvalidUtf8(&'static str),
    /// Two length fields that must agree do not (e.g. envelope length vs header body length).
    #[error("{field}: declared {declared}, actual {actual}")]
    LengthMismatch {
        field: &'static str,
        declared: usize,
        actual: usize,
    },
    /// The envelope announces a protocol major version we do not speak.
    #[error("unsupported protocol version {major}.{minor}")]
    UnsupportedVersion { major: u8, minor: u8 },
    /// The message is compressed or encrypted, which this implementation does not support.
    #[error("unsupported envelope flags {0:#04x}")]
    UnsupportedEnvelope(u8),
    /// A request digest uses an unknown hash algorithm code.
    #[error("unknown digest algorithm {0}")]
    UnknownDigestAlgorithm(u8),
    /// A field has a value outside its domain.
    #[error("{field}: {reason}")]
    InvalidValue {
        field: &'static str,
        reason: &'static str,
    },
    /// A text format line could not be parsed.
    #[error("line {line}: {reason}")]
    InvalidText { line: usize, reason: String },
}
