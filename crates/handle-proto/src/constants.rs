//! Protocol constants: op codes, response codes, flag bits (RFC 3652 §2.2, CNRI `AbstractMessage`/`Encoder`).

macro_rules! code_newtype {
    ($(#[$doc:meta])* $name:ident { $($(#[$cdoc:meta])* $konst:ident = $val:expr),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u32);
        impl $name {
            $( $(#[$cdoc])* pub const $konst: Self = Self($val); )*
            /// The symbolic name of a known code.
            pub fn name(self) -> Option<&'static str> {
                match self.0 { $( $val => Some(stringify!($konst)), )* _ => None }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self.name() { Some(n) => write!(f, "{n}({})", self.0), None => write!(f, "{}", self.0) }
            }
        }
    };
}

code_newtype! {
    /// Operation code (header field 1).
    OpCode {
        RESERVED = 0, RESOLUTION = 1, GET_SITE_INFO = 2,
        CREATE_HANDLE = 100, DELETE_HANDLE = 101, ADD_VALUE = 102, REMOVE_VALUE = 103,
        MODIFY_VALUE = 104, LIST_HANDLES = 105, LIST_NAS = 106,
        CHALLENGE_RESPONSE = 200, VERIFY_RESPONSE = 201,
        HOME_NA = 300, UNHOME_NA = 301, LIST_HOMED_NAS = 302,
        SESSION_SETUP = 400, SESSION_TERMINATE = 401, SESSION_EXCHANGEKEY = 402,
    }
}

code_newtype! {
    /// Response code (header field 2); `RESERVED` (0) in every request.
    ResponseCode {
        RESERVED = 0, SUCCESS = 1, ERROR = 2, SERVER_TOO_BUSY = 3, PROTOCOL_ERROR = 4,
        OPERATION_NOT_SUPPORTED = 5, RECURSION_COUNT_TOO_HIGH = 6, SERVER_BACKUP = 7,
        HANDLE_NOT_FOUND = 100, HANDLE_ALREADY_EXISTS = 101, INVALID_HANDLE = 102,
        VALUES_NOT_FOUND = 200, VALUE_ALREADY_EXISTS = 201, INVALID_VALUE = 202,
        OUT_OF_DATE_SITE_INFO = 300, SERVER_NOT_RESP = 301, SERVICE_REFERRAL = 302, NA_DELEGATE = 303,
        INVALID_ADMIN = 400, INSUFFICIENT_PERMISSIONS = 401, AUTHENTICATION_NEEDED = 402,
        AUTHENTICATION_FAILED = 403, INVALID_CREDENTIAL = 404, AUTHEN_TIMEOUT = 405, AUTHEN_ERROR = 406,
        SESSION_TIMEOUT = 500, SESSION_FAILED = 501, INVALID_SESSION_KEY = 502,
        NEED_RSAKEY_FOR_SESSIONEXCHANGE = 503, INVALID_SESSIONSETUP_REQUEST = 504,
        SESSION_MESSAGE_REJECTED = 505,
    }
}

/// OpFlag bits (header field 3), MSB first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct OpFlags(pub u32);

impl OpFlags {
    /// AT: authoritative, primary only, no cache.
    pub const AUTHORITATIVE: u32 = 0x8000_0000;
    /// CT: the server must sign the response.
    pub const CERTIFY: u32 = 0x4000_0000;
    /// ENC: encrypt the response with the session key.
    pub const ENCRYPT: u32 = 0x2000_0000;
    /// REC: recursive resolution.
    pub const RECURSIVE: u32 = 0x1000_0000;
    /// CA: a cache must authenticate its answer.
    pub const CACHE_CERTIFY: u32 = 0x0800_0000;
    /// CN: continuous, more parts follow.
    pub const CONTINUOUS: u32 = 0x0400_0000;
    /// KC: keep the TCP connection open.
    pub const KEEP_ALIVE: u32 = 0x0200_0000;
    /// PO: return only PUBLIC_READ values.
    pub const PUBLIC_ONLY: u32 = 0x0100_0000;
    /// RD: the response starts with a digest of the request.
    pub const REQUEST_DIGEST: u32 = 0x0080_0000;
    /// OWE (CNRI `FLAG_10TH_MSG_OVRW`): overwrite when the handle exists.
    pub const OVERWRITE: u32 = 0x0040_0000;
    /// MNS (CNRI `FLAG_11TH_MSG_MINT`): mint a new suffix.
    pub const MINT_NEW_SUFFIX: u32 = 0x0020_0000;
    /// DNR (CNRI `FLAG_12TH_MSG_DNRF`): do not refer.
    pub const DO_NOT_REFER: u32 = 0x0010_0000;

    /// Whether all bits of `mask` are set.
    pub fn has(self, mask: u32) -> bool {
        self.0 & mask == mask
    }

    /// `self` with `mask` set or cleared.
    #[must_use]
    pub fn with(self, mask: u32, on: bool) -> Self {
        if on {
            Self(self.0 | mask)
        } else {
            Self(self.0 & !mask)
        }
    }
}

/// Envelope MessageFlag byte (octet 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EnvelopeFlags(pub u8);

impl EnvelopeFlags {
    /// CP: body compressed.
    pub const COMPRESSED: u8 = 0x80;
    /// EC: body encrypted.
    pub const ENCRYPTED: u8 = 0x40;
    /// TC: truncated (often left unset by CNRI even when a message is fragmented).
    pub const TRUNCATED: u8 = 0x20;

    /// Whether all bits of `mask` are set.
    pub fn has(self, mask: u8) -> bool {
        self.0 & mask == mask
    }
}

/// Request digest hash algorithm codes (CNRI `Common.HASH_CODE_*`; DO-IRP adds SHA-256 = 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    /// Protocol 2.0 "old format": a length-prefixed MD5 digest.
    Md5OldFormat,
    /// MD5, 16 bytes.
    Md5,
    /// SHA-1, 20 bytes (CNRI's default).
    Sha1,
    /// SHA-256, 32 bytes (DO-IRP).
    Sha256,
}

impl DigestAlgorithm {
    /// The wire code.
    pub fn code(self) -> u8 {
        match self {
            Self::Md5OldFormat => 0,
            Self::Md5 => 1,
            Self::Sha1 => 2,
            Self::Sha256 => 3,
        }
    }

    /// Parses a wire code.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Md5OldFormat),
            1 => Some(Self::Md5),
            2 => Some(Self::Sha1),
            3 => Some(Self::Sha256),
            _ => None,
        }
    }

    /// Digest length in bytes.
    #[allow(
        clippy::len_without_is_empty,
        reason = "a digest length, not a collection"
    )]
    pub fn len(self) -> usize {
        match self {
            Self::Md5OldFormat | Self::Md5 => 16,
            Self::Sha1 => 20,
            Self::Sha256 => 32,
        }
    }

    /// Hashes the concatenation of `parts`.
    pub fn hash(self, parts: &[&[u8]]) -> Vec<u8> {
        use sha2::Digest as _;
        fn run<D: sha2::Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            Self::Md5OldFormat | Self::Md5 => run::<md5::Md5>(parts),
            Self::Sha1 => run::<sha1::Sha1>(parts),
            Self::Sha256 => {
                let mut d = sha2::Sha256::new();
                for p in parts {
                    d.update(p);
                }
                d.finalize().to_vec()
            }
        }
    }
}

/// Envelope size in bytes.
pub const ENVELOPE_SIZE: usize = 20;
/// Header size in bytes.
pub const HEADER_SIZE: usize = 24;
/// Largest UDP datagram a Handle peer sends (CNRI `MAX_UDP_PACKET_SIZE`).
pub const MAX_UDP_PACKET_SIZE: usize = 512;
/// Payload bytes per UDP datagram after the envelope.
pub const MAX_UDP_DATA_SIZE: usize = MAX_UDP_PACKET_SIZE - ENVELOPE_SIZE;
/// Largest message (header + body + credential) we accept (CNRI `MAX_MESSAGE_LENGTH`).
pub const MAX_MESSAGE_LENGTH: usize = 262_144;
/// Largest handle name in bytes (CNRI `MAX_HANDLE_LENGTH`).
pub const MAX_HANDLE_LENGTH: usize = 2048;
/// Default port for UDP and TCP.
pub const DEFAULT_PORT: u16 = 2641;

/// Conventional value types.
pub mod types {
    /// Administrator record.
    pub const HS_ADMIN: &str = "HS_ADMIN";
    /// Site information.
    pub const HS_SITE: &str = "HS_SITE";
    /// Prefix delegation site (`HS_NA_DELEGATE`).
    pub const HS_NA_DELEGATE: &str = "HS_NA_DELEGATE";
    /// Service handle reference.
    pub const HS_SERV: &str = "HS_SERV";
    /// Admin group (value reference list).
    pub const HS_VLIST: &str = "HS_VLIST";
    /// Secret key.
    pub const HS_SECKEY: &str = "HS_SECKEY";
    /// Public key.
    pub const HS_PUBKEY: &str = "HS_PUBKEY";
    /// Alias to another handle.
    pub const HS_ALIAS: &str = "HS_ALIAS";
    /// URL.
    pub const URL: &str = "URL";
    /// E-mail address.
    pub const EMAIL: &str = "EMAIL";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_flags() {
        assert_eq!(OpCode(1), OpCode::RESOLUTION);
        assert_eq!(ResponseCode(301).name(), Some("SERVER_NOT_RESP"));
        assert_eq!(ResponseCode(9999).to_string(), "9999");
        let f = OpFlags::default()
            .with(OpFlags::KEEP_ALIVE, true)
            .with(OpFlags::REQUEST_DIGEST, true);
        assert_eq!(f.0, 0x0280_0000);
        assert!(f.has(OpFlags::KEEP_ALIVE) && !f.has(OpFlags::PUBLIC_ONLY));
    }

    #[test]
    fn digests_have_declared_lengths() {
        for code in 0..=3 {
            let alg = DigestAlgorithm::from_code(code).unwrap();
            assert_eq!(alg.code(), code);
            assert_eq!(alg.hash(&[b"abc"]).len(), alg.len());
        }
        // FIPS 180 "abc" test vector for SHA-1.
        assert_eq!(
            DigestAlgorithm::Sha1.hash(&[b"a", b"bc"])[..4],
            [0xa9, 0x99, 0x3e, 0x36]
        );
        assert_eq!(DigestAlgorithm::from_code(4), None);
    }
}
