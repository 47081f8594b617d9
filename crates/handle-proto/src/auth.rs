//! Authentication arithmetic and HS_ADMIN authorization, as CNRI HANDLE.NET 7.3 does them.
//!
//! **Secret keys** (`SecretKeyAuthenticationInfo.authenticate` and
//! `HandleServer.verifyChallenge` in CNRI's hdllib): the client answers a 402 challenge with
//! `alg ‖ H(secret ‖ nonce ‖ request_digest ‖ secret)` where `H` is SHA-1 (alg 2, the default)
//! or MD5 (alg 1); a protocol 2.0 peer sends the bare MD5 digest with no algorithm byte. The
//! request digest is the hash (algorithm chosen by the server in the challenge) of the original
//! request's header and body. "Shadowed" secrets are stored as the lower-case hex SHA-1 of the
//! password (`Encoder.encodeSecretKey`).
//!
//! **Authorization** (`HandleServer` admin checks): an operation on handle `H` needs an HS_ADMIN
//! value of `H` (for creation: of the prefix handle `0.NA/<prefix>`) whose permission bits
//! include the operation's bit and whose administrator is the authenticated identity, or an
//! HS_VLIST group that (transitively) contains it. Server administrators from the configuration
//! may do everything. The function is pure: group values are looked up through a callback.

use std::collections::HashSet;

use crate::constants::{DigestAlgorithm, ResponseCode};
use crate::data::{AdminPermissions, AdminRecord, ValueList};
use crate::value::ValueReference;

/// The answer a client holding `secret` sends for `nonce` and `request_digest`, in the format
/// of a protocol ≥ 2.1 peer (`alg` byte then digest). `alg` must be MD5 or SHA-1, as in CNRI.
pub fn secret_key_answer(
    secret: &[u8],
    nonce: &[u8],
    request_digest: &[u8],
    alg: DigestAlgorithm,
) -> Vec<u8> {
    let digest = alg.hash(&[secret, nonce, request_digest, secret]);
    if alg == DigestAlgorithm::Md5OldFormat {
        return digest;
    }
    let mut out = Vec::with_capacity(1 + digest.len());
    out.push(alg.code());
    out.extend_from_slice(&digest);
    out
}

/// Checks a secret-key answer exactly as CNRI's `verifyChallenge`: the first byte names MD5 or
/// SHA-1; any other first byte, or a pre-2.1 peer, means a bare 16-byte MD5 digest.
pub fn verify_secret_key_answer(
    secret: &[u8],
    nonce: &[u8],
    request_digest: &[u8],
    answer: &[u8],
    peer_at_least_2_1: bool,
) -> bool {
    let (alg, signature) = match (peer_at_least_2_1, answer.first().copied()) {
        (true, Some(1)) if answer.len() > 16 => (DigestAlgorithm::Md5, &answer[1..17]),
        (true, Some(2)) if answer.len() > 20 => (DigestAlgorithm::Sha1, &answer[1..21]),
        _ => (DigestAlgorithm::Md5, answer),
    };
    let expected = alg.hash(&[secret, nonce, request_digest, secret]);
    constant_time_eq(&expected, signature)
}

/// The "shadowed" secret CNRI stores when asked to hash a password: lower-case hex SHA-1.
pub fn shadow_secret(password: &[u8]) -> Vec<u8> {
    DigestAlgorithm::Sha1
        .hash(&[password])
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .into_bytes()
}

/// The bytes an HS_PUBKEY challenge answer signs: `nonce ‖ request_digest` (CNRI `verifyIdentity`).
pub fn public_key_signed_bytes(nonce: &[u8], request_digest: &[u8]) -> Vec<u8> {
    [nonce, request_digest].concat()
}

/// Compares without an early exit, so timing does not reveal how much of a secret matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An administrative operation, mapped to the HS_ADMIN bit it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Create a handle (checked against the prefix handle).
    CreateHandle,
    /// Delete a handle.
    DeleteHandle,
    /// Add a value; `admin` when the value is an HS_ADMIN.
    AddValue {
        /// The value is an HS_ADMIN.
        admin: bool,
    },
    /// Modify a value.
    ModifyValue {
        /// The value is an HS_ADMIN.
        admin: bool,
    },
    /// Remove a value.
    RemoveValue {
        /// The value is an HS_ADMIN.
        admin: bool,
    },
    /// Read values without PUBLIC_READ.
    ReadValue,
    /// List the handles of a prefix (checked against the prefix handle).
    ListHandles,
    /// Create a derived prefix.
    AddPrefix,
    /// Delete a derived prefix.
    DeletePrefix,
}

impl Operation {
    /// The HS_ADMIN permission bit required.
    pub fn required_permission(self) -> u16 {
        match self {
            Self::CreateHandle => AdminPermissions::ADD_HANDLE,
            Self::DeleteHandle => AdminPermissions::DELETE_HANDLE,
            Self::AddValue { admin: false } => AdminPermissions::ADD_VALUE,
            Self::AddValue { admin: true } => AdminPermissions::ADD_ADMIN,
            Self::ModifyValue { admin: false } => AdminPermissions::MODIFY_VALUE,
            Self::ModifyValue { admin: true } => AdminPermissions::MODIFY_ADMIN,
            Self::RemoveValue { admin: false } => AdminPermissions::REMOVE_VALUE,
            Self::RemoveValue { admin: true } => AdminPermissions::REMOVE_ADMIN,
            Self::ReadValue => AdminPermissions::READ_VALUE,
            Self::ListHandles => AdminPermissions::LIST_HANDLES,
            Self::AddPrefix => AdminPermissions::ADD_NA,
            Self::DeletePrefix => AdminPermissions::DELETE_NA,
        }
    }
}

/// Why an operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The identity is not an administrator of the handle at all (RC 400).
    #[error("not an administrator of this handle")]
    NotAdmin,
    /// The identity is an administrator but lacks this permission (RC 401).
    #[error("administrator lacks the permission")]
    InsufficientPermissions,
}

impl Denied {
    /// The protocol response code.
    pub fn response_code(self) -> ResponseCode {
        match self {
            Self::NotAdmin => ResponseCode::INVALID_ADMIN,
            Self::InsufficientPermissions => ResponseCode::INSUFFICIENT_PERMISSIONS,
        }
    }
}

/// Largest group nesting we follow (CNRI follows without a limit but with a visited set; we cap
/// the total number of groups visited to bound work on hostile data).
pub const MAX_GROUPS_VISITED: usize = 64;

fn reference_matches(admin: &ValueReference, identity: &ValueReference) -> bool {
    admin.same_handle(&identity.handle) && (admin.index == identity.index || admin.index == 0)
}

/// Decides whether `identity` may perform `op` given the HS_ADMIN records of the governing
/// handle. `lookup_group` returns the HS_VLIST stored at a reference, if there is one.
pub fn authorize<'a>(
    op: Operation,
    admin_records: impl IntoIterator<Item = &'a AdminRecord>,
    identity: &ValueReference,
    server_admins: &[ValueReference],
    mut lookup_group: impl FnMut(&ValueReference) -> Option<ValueList>,
) -> Result<(), Denied> {
    if server_admins.iter().any(|a| reference_matches(a, identity)) {
        return Ok(());
    }
    let needed = op.required_permission();
    let mut is_some_admin = false;
    let mut visited: HashSet<ValueReference> = HashSet::new();
    for record in admin_records {
        let holds = record.permissions.has(needed);
        if is_member(&record.admin, identity, &mut visited, &mut lookup_group) {
            if holds {
                return Ok(());
            }
            is_some_admin = true;
        }
    }
    Err(if is_some_admin {
        Denied::InsufficientPermissions
    } else {
        Denied::NotAdmin
    })
}

fn is_member(
    admin: &ValueReference,
    identity: &ValueReference,
    visited: &mut HashSet<ValueReference>,
    lookup_group: &mut impl FnMut(&ValueReference) -> Option<ValueList>,
) -> bool {
    if reference_matches(admin, identity) {
        return true;
    }
    let mut queue = vec![admin.clone()];
    while let Some(group_ref) = queue.pop() {
        if visited.len() >= MAX_GROUPS_VISITED || !visited.insert(normalized(&group_ref)) {
            continue;
        }
        let Some(group) = lookup_group(&group_ref) else {
            continue;
        };
        for member in group.0 {
            if reference_matches(&member, identity) {
                return true;
            }
            queue.push(member);
        }
    }
    false
}

fn normalized(r: &ValueReference) -> ValueReference {
    ValueReference {
        handle: r.handle.to_ascii_uppercase(),
        index: r.index,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_key_answer_is_sha1_of_secret_nonce_digest_secret() {
        let answer = secret_key_answer(b"secret", b"nonce", b"digest", DigestAlgorithm::Sha1);
        assert_eq!(answer[0], 2);
        assert_eq!(
            &answer[1..],
            DigestAlgorithm::Sha1
                .hash(&[b"secretnoncedigestsecret"])
                .as_slice()
        );
        assert!(verify_secret_key_answer(
            b"secret", b"nonce", b"digest", &answer, true
        ));
        assert!(!verify_secret_key_answer(
            b"Secret", b"nonce", b"digest", &answer, true
        ));
        let md5 = secret_key_answer(b"secret", b"nonce", b"digest", DigestAlgorithm::Md5);
        assert!(verify_secret_key_answer(
            b"secret", b"nonce", b"digest", &md5, true
        ));
        // Old peers send the bare MD5 digest.
        let bare = DigestAlgorithm::Md5.hash(&[b"secretnoncedigestsecret"]);
        assert!(verify_secret_key_answer(
            b"secret", b"nonce", b"digest", &bare, false
        ));
    }

    #[test]
    fn shadow_is_lower_hex_sha1() {
        assert_eq!(
            shadow_secret(b"abc"),
            b"a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    fn rec(perms: u16, handle: &str, index: u32) -> AdminRecord {
        AdminRecord {
            permissions: AdminPermissions(perms),
            admin: ValueReference::new(handle, index),
        }
    }

    #[test]
    fn direct_group_and_nested_group_admins() {
        let me = ValueReference::new("21.T999/ADMIN", 300);
        let no_groups = |_: &ValueReference| None;
        let direct = [rec(AdminPermissions::ADD_VALUE, "21.t999/admin", 300)];
        assert_eq!(
            authorize(
                Operation::AddValue { admin: false },
                &direct,
                &me,
                &[],
                no_groups
            ),
            Ok(())
        );
        assert_eq!(
            authorize(
                Operation::AddValue { admin: true },
                &direct,
                &me,
                &[],
                no_groups
            ),
            Err(Denied::InsufficientPermissions)
        );
        let via_group = [rec(AdminPermissions::ALL.0, "0.NA/21.T999", 200)];
        let groups = |r: &ValueReference| match (r.handle.as_str(), r.index) {
            ("0.NA/21.T999", 200) => {
                Some(ValueList(vec![ValueReference::new("0.NA/21.T999", 201)]))
            }
            ("0.NA/21.T999", 201) => Some(ValueList(vec![me.clone()])),
            _ => None,
        };
        assert_eq!(
            authorize(Operation::DeleteHandle, &via_group, &me, &[], groups),
            Ok(())
        );
        let stranger = ValueReference::new("21.T999/OTHER", 300);
        assert_eq!(
            authorize(Operation::DeleteHandle, &via_group, &stranger, &[], groups),
            Err(Denied::NotAdmin)
        );
        assert_eq!(
            authorize(
                Operation::DeleteHandle,
                &[],
                &stranger,
                std::slice::from_ref(&stranger),
                no_groups
            ),
            Ok(())
        );
    }

    #[test]
    fn cyclic_groups_terminate() {
        let me = ValueReference::new("X/ME", 300);
        let records = [rec(AdminPermissions::ALL.0, "G/1", 200)];
        let groups =
            |r: &ValueReference| Some(ValueList(vec![ValueReference::new(r.handle.clone(), 200)]));
        assert_eq!(
            authorize(Operation::DeleteHandle, &records, &me, &[], groups),
            Err(Denied::NotAdmin)
        );
    }
}
