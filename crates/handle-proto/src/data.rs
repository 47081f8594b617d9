//! Typed value data: HS_ADMIN, HS_SITE, HS_VLIST, HS_SERV, HS_ALIAS, HS_SECKEY, HS_PUBKEY, URL.
//!
//! Layouts follow CNRI `Encoder.encodeAdminRecord`, `encodeSiteInfoRecord`,
//! `encodeValueReferenceList` and `Util.getBytesFromPublicKey`. Text-like types (HS_SERV,
//! HS_ALIAS, URL, EMAIL) carry their UTF-8 bytes with no length prefix.

use std::net::{IpAddr, Ipv6Addr};

use crate::codec::{Codec, Reader, put_bytes, put_u16, put_u32};
use crate::constants::types;
use crate::error::InvalidMessage;
use crate::value::ValueReference;

/// HS_ADMIN permission bits (CNRI `Encoder.PERM_*`; DO-IRP adds list-derived-prefixes 0x1000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AdminPermissions(pub u16);

impl AdminPermissions {
    /// Create handles under the prefix.
    pub const ADD_HANDLE: u16 = 0x0001;
    /// Delete the handle.
    pub const DELETE_HANDLE: u16 = 0x0002;
    /// Create derived prefixes.
    pub const ADD_NA: u16 = 0x0004;
    /// Delete derived prefixes.
    pub const DELETE_NA: u16 = 0x0008;
    /// Modify non-admin values.
    pub const MODIFY_VALUE: u16 = 0x0010;
    /// Remove non-admin values.
    pub const REMOVE_VALUE: u16 = 0x0020;
    /// Add non-admin values.
    pub const ADD_VALUE: u16 = 0x0040;
    /// Modify HS_ADMIN values.
    pub const MODIFY_ADMIN: u16 = 0x0080;
    /// Remove HS_ADMIN values.
    pub const REMOVE_ADMIN: u16 = 0x0100;
    /// Add HS_ADMIN values.
    pub const ADD_ADMIN: u16 = 0x0200;
    /// Read values without PUBLIC_READ.
    pub const READ_VALUE: u16 = 0x0400;
    /// List handles under the prefix.
    pub const LIST_HANDLES: u16 = 0x0800;

    /// CNRI's permission array order (`AdminRecord.ADD_HANDLE` = 0 … `LIST_HANDLES` = 11), used
    /// by the batch format (first character = element 0) and REST JSON (last character = element 0).
    pub const ORDER: [u16; 12] = [
        Self::ADD_HANDLE,
        Self::DELETE_HANDLE,
        Self::ADD_NA,
        Self::DELETE_NA,
        Self::MODIFY_VALUE,
        Self::REMOVE_VALUE,
        Self::ADD_VALUE,
        Self::READ_VALUE,
        Self::MODIFY_ADMIN,
        Self::REMOVE_ADMIN,
        Self::ADD_ADMIN,
        Self::LIST_HANDLES,
    ];

    /// Everything.
    pub const ALL: Self = Self(0x0fff);

    /// Whether all bits of `mask` are set.
    pub fn has(self, mask: u16) -> bool {
        self.0 & mask == mask
    }

    /// Batch-file form: 12 characters in [`Self::ORDER`].
    pub fn to_batch_string(self) -> String {
        Self::ORDER
            .iter()
            .map(|&b| if self.has(b) { '1' } else { '0' })
            .collect()
    }

    /// Parses the batch-file form (exactly 12 `0`/`1` characters).
    pub fn from_batch_string(s: &str) -> Option<Self> {
        if s.len() != 12 {
            return None;
        }
        let mut v = 0;
        for (c, bit) in s.bytes().zip(Self::ORDER) {
            match c {
                b'1' => v |= bit,
                b'0' => {}
                _ => return None,
            }
        }
        Some(Self(v))
    }

    /// REST JSON form: [`Self::ORDER`] reversed (CNRI `GsonUtility.permsArrayToString`).
    pub fn to_json_string(self) -> String {
        Self::ORDER
            .iter()
            .rev()
            .map(|&b| if self.has(b) { '1' } else { '0' })
            .collect()
    }

    /// Parses the REST JSON form: the last character is element 0; shorter strings leave the
    /// high elements unset, `*` means all (CNRI `permsStringToArray`).
    pub fn from_json_string(s: &str) -> Option<Self> {
        if s == "*" {
            return Some(Self::ALL);
        }
        if s.len() > 12 || !s.bytes().all(|c| c == b'0' || c == b'1') {
            return None;
        }
        let mut v = 0;
        for (c, bit) in s.bytes().rev().zip(Self::ORDER) {
            if c == b'1' {
                v |= bit;
            }
        }
        Some(Self(v))
    }
}

/// HS_ADMIN data: who administers the handle, with which permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminRecord {
    /// Permission bits.
    pub permissions: AdminPermissions,
    /// The administrator: a value holding a key (HS_SECKEY/HS_PUBKEY) or an HS_VLIST group.
    pub admin: ValueReference,
}

impl Codec for AdminRecord {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u16(out, self.permissions.0);
        put_bytes(out, self.admin.handle.as_bytes());
        put_u32(out, self.admin.index);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, InvalidMessage> {
        let permissions = AdminPermissions(r.u16("admin permissions")?);
        let handle = r.utf8("admin handle")?.to_owned();
        let index = r.u32("admin index")?;
        Ok(Self {
            permissions,
            admin: ValueReference { handle, index },
        })
    }
}

/// HS_VLIST data: an administrator group, a list of value references.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValueList(pub Vec<ValueReference>);

impl Codec for ValueList {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u32(out, self.0.len() as u32);
        for r in &self.0 {
            r.encode(out);
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, InvalidMessage> {
        let n = r.count("vlist count", 8)?;
        let mut refs = Vec::with_capacity(n);
        for _ in 0..n {
            refs.push(ValueReference::read(r)?);
        }
        Ok(Self(refs))
    }
}

/// Interface type bits (CNRI `Interface.ST_*`).
pub mod interface_type {
    /// Out of service.
    pub const OUT_OF_SERVICE: u8 = 0x00;
    /// Administration.
    pub const ADMIN: u8 = 0x01;
    /// Resolution (query).
    pub const QUERY: u8 = 0x02;
    /// Both.
    pub const ADMIN_AND_QUERY: u8 = 0x03;
}

/// Interface transport codes (CNRI `Interface.SP_*`; DO-IRP adds HTTPS).
pub mod interface_protocol {
    /// UDP.
    pub const UDP: u8 = 0;
    /// TCP.
    pub const TCP: u8 = 1;
    /// HTTP.
    pub const HTTP: u8 = 2;
    /// HTTPS (DO-IRP).
    pub const HTTPS: u8 = 3;
}

/// One service interface of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interface {
    /// [`interface_type`] bits.
    pub kind: u8,
    /// [`interface_protocol`] code.
    pub protocol: u8,
    /// Port number (u32 on the wire).
    pub port: u32,
}

/// One server of a site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// Server number within the site.
    pub server_id: u32,
    /// IPv6 address (IPv4 is IPv4-mapped, as CNRI writes it right-aligned in 16 bytes).
    pub address: [u8; 16],
    /// Encoded public key (an HS_PUBKEY blob), possibly empty.
    pub public_key: Vec<u8>,
    /// Interfaces.
    pub interfaces: Vec<Interface>,
}

impl ServerInfo {
    /// The address as an `IpAddr` (IPv4 when the first 12 bytes are zero or an IPv4 mapping).
    pub fn ip(&self) -> IpAddr {
        let v6 = Ipv6Addr::from(self.address);
        if self.address[..12].iter().all(|&b| b == 0) {
            IpAddr::V4(std::net::Ipv4Addr::new(
                self.address[12],
                self.address[13],
                self.address[14],
                self.address[15],
            ))
        } else if let Some(v4) = v6.to_ipv4_mapped() {
            IpAddr::V4(v4)
        } else {
            IpAddr::V6(v6)
        }
    }

    /// CNRI's 16-byte form: IPv4 right-aligned after 12 zero bytes.
    pub fn address_bytes(ip: IpAddr) -> [u8; 16] {
        match ip {
            IpAddr::V4(v4) => {
                let mut a = [0u8; 16];
                a[12..].copy_from_slice(&v4.octets());
                a
            }
            IpAddr::V6(v6) => v6.octets(),
        }
    }
}

/// Hash option: how a client picks a server within a site.
pub mod hash_option {
    /// By prefix.
    pub const BY_NA: u8 = 0;
    /// By local name.
    pub const BY_LOCAL: u8 = 1;
    /// By whole handle.
    pub const BY_HANDLE: u8 = 2;
}

/// HS_SITE data: a site (set of servers) and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteInfo {
    /// Data format version (1).
    pub version: u16,
    /// Protocol version the site speaks.
    pub protocol_major: u8,
    /// Protocol minor version.
    pub protocol_minor: u8,
    /// Serial number, bumped on every change.
    pub serial: u16,
    /// Primary mask: 0x80 primary, 0x40 multi-primary (CNRI `SiteInfo.PRIMARY_SITE`/`MULTI_PRIMARY`).
    pub primary_mask: u8,
    /// [`hash_option`].
    pub hash_option: u8,
    /// Hash filter.
    pub hash_filter: Vec<u8>,
    /// Attributes (`desc`, `org`, ...), raw bytes as on the wire.
    pub attributes: Vec<(Vec<u8>, Vec<u8>)>,
    /// Servers.
    pub servers: Vec<ServerInfo>,
}

impl SiteInfo {
    /// Primary-site bit of `primary_mask`.
    pub const PRIMARY: u8 = 0x80;
    /// Multi-primary bit of `primary_mask`.
    pub const MULTI_PRIMARY: u8 = 0x40;
}

impl Codec for SiteInfo {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u16(out, self.version);
        out.push(self.protocol_major);
        out.push(self.protocol_minor);
        put_u16(out, self.serial);
        out.push(self.primary_mask);
        out.push(self.hash_option);
        put_bytes(out, &self.hash_filter);
        put_u32(out, self.attributes.len() as u32);
        for (k, v) in &self.attributes {
            put_bytes(out, k);
            put_bytes(out, v);
        }
        put_u32(out, self.servers.len() as u32);
        for s in &self.servers {
            put_u32(out, s.server_id);
            out.extend_from_slice(&s.address);
            put_bytes(out, &s.public_key);
            put_u32(out, s.interfaces.len() as u32);
            for i in &s.interfaces {
                out.push(i.kind);
                out.push(i.protocol);
                put_u32(out, i.port);
            }
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, InvalidMessage> {
        let version = r.u16("site version")?;
        let protocol_major = r.u8("site protocol major")?;
        let protocol_minor = r.u8("site protocol minor")?;
        let serial = r.u16("site serial")?;
        let primary_mask = r.u8("site primary mask")?;
        let hash_option = r.u8("site hash option")?;
        let hash_filter = r.bytes("site hash filter")?.to_vec();
        let n = r.count("site attribute count", 8)?;
        let mut attributes = Vec::with_capacity(n);
        for _ in 0..n {
            let k = r.bytes("site attribute name")?.to_vec();
            let v = r.bytes("site attribute value")?.to_vec();
            attributes.push((k, v));
        }
        let n = r.count("site server count", 28)?;
        let mut servers = Vec::with_capacity(n);
        for _ in 0..n {
            let server_id = r.u32("server id")?;
            let mut address = [0u8; 16];
            address.copy_from_slice(r.take(16, "server address")?);
            let public_key = r.bytes("server public key")?.to_vec();
            let m = r.count("server interface count", 6)?;
            let mut interfaces = Vec::with_capacity(m);
            for _ in 0..m {
                let kind = r.u8("interface type")?;
                let protocol = r.u8("interface protocol")?;
                let port = r.u32("interface port")?;
                interfaces.push(Interface {
                    kind,
                    protocol,
                    port,
                });
            }
            servers.push(ServerInfo {
                server_id,
                address,
                public_key,
                interfaces,
            });
        }
        Ok(Self {
            version,
            protocol_major,
            protocol_minor,
            serial,
            primary_mask,
            hash_option,
            hash_filter,
            attributes,
            servers,
        })
    }
}

/// HS_PUBKEY data: `UTF-8 key type, u16 flags, key components`.
///
/// CNRI 7.3 knows `DSA_PUB_KEY` (q, p, g, y), `RSA_PUB_KEY` (exponent, modulus) and `DH_PUB_KEY`;
/// we add `ED25519_PUB_KEY` with one 32-byte component (our extension; CNRI 7.3 has no Ed25519).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// Key type name.
    pub key_type: String,
    /// Reserved flags (0).
    pub flags: u16,
    /// Length-prefixed components in order.
    pub components: Vec<Vec<u8>>,
}

impl PublicKey {
    /// Type name of our Ed25519 key blob.
    pub const ED25519: &'static str = "ED25519_PUB_KEY";

    /// An Ed25519 key blob.
    pub fn ed25519(key: [u8; 32]) -> Self {
        Self {
            key_type: Self::ED25519.to_owned(),
            flags: 0,
            components: vec![key.to_vec()],
        }
    }

    /// The raw Ed25519 key when this is an Ed25519 blob.
    pub fn as_ed25519(&self) -> Option<[u8; 32]> {
        if self.key_type != Self::ED25519 {
            return None;
        }
        self.components.first()?.as_slice().try_into().ok()
    }
}

impl Codec for PublicKey {
    fn encode(&self, out: &mut Vec<u8>) {
        put_bytes(out, self.key_type.as_bytes());
        put_u16(out, self.flags);
        for c in &self.components {
            put_bytes(out, c);
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, InvalidMessage> {
        let key_type = r.utf8("public key type")?.to_owned();
        let flags = r.u16("public key flags")?;
        let mut components = Vec::new();
        while r.any_left() {
            components.push(r.bytes("public key component")?.to_vec());
        }
        Ok(Self {
            key_type,
            flags,
            components,
        })
    }
}

/// A value's data interpreted by its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypedData {
    /// HS_ADMIN.
    Admin(AdminRecord),
    /// HS_SITE or HS_NA_DELEGATE.
    Site(SiteInfo),
    /// HS_VLIST.
    ValueList(ValueList),
    /// HS_SERV: a service handle.
    Service(String),
    /// HS_ALIAS: another handle.
    Alias(String),
    /// HS_SECKEY: a secret (shown only to administrators).
    SecretKey(Vec<u8>),
    /// HS_PUBKEY.
    PublicKey(PublicKey),
    /// URL.
    Url(String),
    /// Any other type: raw bytes.
    Other(Vec<u8>),
}

impl TypedData {
    /// Decodes `data` according to `value_type` (case-insensitive).
    pub fn decode(value_type: &str, data: &[u8]) -> Result<Self, InvalidMessage> {
        let t = value_type.to_ascii_uppercase();
        let text = |field| {
            std::str::from_utf8(data)
                .map(str::to_owned)
                .map_err(|_| InvalidMessage::InvalidUtf8(field))
        };
        Ok(match t.as_str() {
            types::HS_ADMIN => Self::Admin(AdminRecord::read_bytes(data)?),
            types::HS_SITE | types::HS_NA_DELEGATE => Self::Site(SiteInfo::read_bytes(data)?),
            types::HS_VLIST => Self::ValueList(ValueList::read_bytes(data)?),
            types::HS_SERV => Self::Service(text("HS_SERV data")?),
            types::HS_ALIAS => Self::Alias(text("HS_ALIAS data")?),
            types::HS_SECKEY => Self::SecretKey(data.to_vec()),
            types::HS_PUBKEY => Self::PublicKey(PublicKey::read_bytes(data)?),
            types::URL => Self::Url(text("URL data")?),
            _ => Self::Other(data.to_vec()),
        })
    }

    /// The wire bytes of the data.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Admin(a) => a.to_bytes(),
            Self::Site(s) => s.to_bytes(),
            Self::ValueList(l) => l.to_bytes(),
            Self::Service(s) | Self::Alias(s) | Self::Url(s) => s.as_bytes().to_vec(),
            Self::SecretKey(b) | Self::Other(b) => b.clone(),
            Self::PublicKey(k) => k.to_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_record_layout() {
        let a = AdminRecord {
            permissions: AdminPermissions(0x0ff3),
            admin: ValueReference::new("0.NA/1", 300),
        };
        let bytes = a.to_bytes();
        assert_eq!(
            bytes,
            [&[0x0f, 0xf3, 0, 0, 0, 6][..], b"0.NA/1", &[0, 0, 1, 44]].concat()
        );
        assert_eq!(AdminRecord::read_bytes(&bytes).unwrap(), a);
        assert!(AdminRecord::read_bytes(&[bytes.clone(), vec![0]].concat()).is_err());
    }

    #[test]
    fn admin_permission_strings() {
        // pyhandle's default "011111110011" in REST JSON is everything but ADD_NA, DELETE_NA and
        // LIST_HANDLES: element 0 (add handle) is the last character.
        let p = AdminPermissions::from_json_string("011111110011").unwrap();
        assert_eq!(
            p.0,
            0x0fff
                & !(AdminPermissions::ADD_NA
                    | AdminPermissions::DELETE_NA
                    | AdminPermissions::LIST_HANDLES)
        );
        assert_eq!(p.to_json_string(), "011111110011");
        assert_eq!(p.to_batch_string(), "110011111110");
        assert_eq!(AdminPermissions::from_batch_string("110011111110"), Some(p));
        assert_eq!(
            AdminPermissions::from_json_string("1").unwrap().0,
            AdminPermissions::ADD_HANDLE
        );
        assert_eq!(AdminPermissions::from_batch_string("11"), None);
    }

    #[test]
    fn site_info_round_trip() {
        let site = SiteInfo {
            version: 1,
            protocol_major: 2,
            protocol_minor: 1,
            serial: 3,
            primary_mask: SiteInfo::PRIMARY,
            hash_option: hash_option::BY_HANDLE,
            hash_filter: vec![],
            attributes: vec![(b"desc".to_vec(), b"test".to_vec())],
            servers: vec![ServerInfo {
                server_id: 1,
                address: ServerInfo::address_bytes("127.0.0.1".parse().unwrap()),
                public_key: vec![],
                interfaces: vec![Interface {
                    kind: interface_type::ADMIN_AND_QUERY,
                    protocol: interface_protocol::TCP,
                    port: 2641,
                }],
            }],
        };
        let bytes = site.to_bytes();
        assert_eq!(SiteInfo::read_bytes(&bytes).unwrap(), site);
        assert_eq!(site.servers[0].ip().to_string(), "127.0.0.1");
        assert!(SiteInfo::read_bytes(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn typed_dispatch() {
        let vl = ValueList(vec![ValueReference::new("21.T999/ADMIN", 300)]);
        assert_eq!(
            TypedData::decode("hs_vlist", &vl.to_bytes()).unwrap(),
            TypedData::ValueList(vl.clone())
        );
        assert_eq!(
            TypedData::decode("URL", b"http://x").unwrap().encode(),
            b"http://x"
        );
        assert!(TypedData::decode("URL", &[0xff]).is_err());
        let k = PublicKey::ed25519([7; 32]);
        let TypedData::PublicKey(back) = TypedData::decode("HS_PUBKEY", &k.to_bytes()).unwrap()
        else {
            panic!()
        };
        assert_eq!(back.as_ed25519(), Some([7; 32]));
    }
}
