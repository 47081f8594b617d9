//! Modules, access levels, permissions and the built-in roles.
//!
//! A permission is `<module>:<access>`, e.g. `data:write`. Access levels are ordered:
//! `admin` implies `write` implies `read`. Built-in roles map to fixed permission sets;
//! tenants may define custom roles as lists of permission strings.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A part of the platform that permissions are granted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Module {
    /// Users, memberships, roles and API keys of a tenant.
    Identity,
    /// The audit log.
    Audit,
    /// City data: the NGSI-LD context broker.
    Data,
    /// Persistent identifiers: the Handle node.
    Identifiers,
    /// Traffic simulation and signal control.
    Traffic,
    /// The computing-power network.
    Compute,
    /// Secure computation between data owners.
    SecureComputation,
    /// Platform operations: metrics, health details.
    System,
}

impl Module {
    /// Every module, in declaration order.
    pub const ALL: [Module; 8] = [
        Module::Identity,
        Module::Audit,
        Module::Data,
        Module::Identifiers,
        Module::Traffic,
        Module::Compute,
        Module::SecureComputation,
        Module::System,
    ];

    /// The name used in permission strings.
    pub fn as_str(self) -> &'static str {
        match self {
            Module::Identity => "identity",
            Module::Audit => "audit",
            Module::Data => "data",
            Module::Identifiers => "identifiers",
            Module::Traffic => "traffic",
            Module::Compute => "compute",
            Module::SecureComputation => "secure_computation",
            Module::System => "system",
        }
    }

    fn index(self) -> u32 {
        self as u32
    }
}

/// How much a permission allows; each level implies the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Look.
    Read,
    /// Change data, run jobs.
    Write,
    /// Manage the module's configuration and other people's access.
    Admin,
}

impl Access {
    /// The name used in permission strings.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Admin => "admin",
        }
    }
}

/// One permission: an access level on a module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission {
    /// The module.
    pub module: Module,
    /// The level.
    pub access: Access,
}

impl Permission {
    /// Shorthand constructor.
    pub const fn new(module: Module, access: Access) -> Self {
        Self { module, access }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.module.as_str(), self.access.as_str())
    }
}

/// A permission string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid permission {0:?}: expected <module>:<read|write|admin> with module one of identity, audit, data, identifiers, traffic, compute, secure_computation, system"
)]
pub struct PermissionParseError(String);

impl FromStr for Permission {
    type Err = PermissionParseError;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let error = || PermissionParseError(value.to_owned());
        let (module, access) = value.split_once(':').ok_or_else(error)?;
        let module = Module::ALL
            .into_iter()
            .find(|m| m.as_str() == module)
            .ok_or_else(error)?;
        let access = match access {
            "read" => Access::Read,
            "write" => Access::Write,
            "admin" => Access::Admin,
            _ => return Err(error()),
        };
        Ok(Permission { module, access })
    }
}

/// A set of permissions, as bits: three per module (read, write, admin).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PermissionSet(u32);

impl PermissionSet {
    /// No permissions.
    pub const EMPTY: PermissionSet = PermissionSet(0);

    fn bit(permission: Permission) -> u32 {
        1 << (permission.module.index() * 3 + permission.access as u32)
    }

    /// Every permission on every module.
    pub fn all() -> Self {
        Module::ALL.into_iter().fold(Self::EMPTY, |set, module| {
            set.with(Permission::new(module, Access::Admin))
        })
    }

    /// This set plus `permission` and every level it implies.
    pub fn with(self, permission: Permission) -> Self {
        let mut bits = self.0;
        for access in [Access::Read, Access::Write, Access::Admin] {
            if access <= permission.access {
                bits |= Self::bit(Permission::new(permission.module, access));
            }
        }
        Self(bits)
    }

    /// Whether the set allows `permission`.
    pub fn allows(self, permission: Permission) -> bool {
        self.0 & Self::bit(permission) != 0
    }

    /// Builds a set from permission strings.
    pub fn parse<'a>(
        permissions: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, PermissionParseError> {
        permissions
            .into_iter()
            .try_fold(Self::EMPTY, |set, p| Ok(set.with(p.parse()?)))
    }

    /// The highest level per module, as strings (e.g. `["data:write", "traffic:read"]`).
    pub fn to_strings(self) -> Vec<String> {
        Module::ALL
            .into_iter()
            .filter_map(|module| {
                [Access::Admin, Access::Write, Access::Read]
                    .into_iter()
                    .map(|access| Permission::new(module, access))
                    .find(|p| self.allows(*p))
                    .map(|p| p.to_string())
            })
            .collect()
    }
}

/// The roles every tenant has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuiltinRole {
    /// Everything inside the tenant, including its members, keys and audit log.
    Admin,
    /// Runs the city: writes data, controls signals, submits jobs, mints identifiers.
    Operator,
    /// Reads everything, runs simulations and analyses, submits compute and secure-computation jobs.
    Analyst,
    /// Reads data, identifiers, traffic state and jobs.
    Viewer,
    /// A sensor or service: writes data, reads identifiers.
    Device,
}

impl BuiltinRole {
    /// Every built-in role.
    pub const ALL: [BuiltinRole; 5] = [
        BuiltinRole::Admin,
        BuiltinRole::Operator,
        BuiltinRole::Analyst,
        BuiltinRole::Viewer,
        BuiltinRole::Device,
    ];

    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            BuiltinRole::Admin => "admin",
            BuiltinRole::Operator => "operator",
            BuiltinRole::Analyst => "analyst",
            BuiltinRole::Viewer => "viewer",
            BuiltinRole::Device => "device",
        }
    }

    /// Looks a built-in role up by name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// What the role may do inside its tenant.
    pub fn permissions(self) -> PermissionSet {
        use Access::*;
        use Module::*;
        let grants: &[(Module, Access)] = match self {
            BuiltinRole::Admin => &[
                (Identity, Admin),
                (Audit, Read),
                (Data, Admin),
                (Identifiers, Admin),
                (Traffic, Admin),
                (Compute, Admin),
                (SecureComputation, Admin),
            ],
            BuiltinRole::Operator => &[
                (Identity, Read),
                (Data, Write),
                (Identifiers, Write),
                (Traffic, Write),
                (Compute, Write),
                (SecureComputation, Write),
            ],
            BuiltinRole::Analyst => &[
                (Data, Read),
                (Identifiers, Read),
                (Traffic, Read),
                (Compute, Write),
                (SecureComputation, Write),
            ],
            BuiltinRole::Viewer => &[
                (Data, Read),
                (Identifiers, Read),
                (Traffic, Read),
                (Compute, Read),
                (SecureComputation, Read),
            ],
            BuiltinRole::Device => &[(Data, Write), (Identifiers, Read)],
        };
        grants.iter().fold(PermissionSet::EMPTY, |set, (m, a)| {
            set.with(Permission::new(*m, *a))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_levels_imply_lower_levels_only() {
        let set = PermissionSet::EMPTY.with(Permission::new(Module::Data, Access::Write));
        assert!(set.allows(Permission::new(Module::Data, Access::Read)));
        assert!(set.allows(Permission::new(Module::Data, Access::Write)));
        assert!(!set.allows(Permission::new(Module::Data, Access::Admin)));
        assert!(!set.allows(Permission::new(Module::Traffic, Access::Read)));
    }

    #[test]
    fn permission_strings_round_trip_and_bad_ones_are_rejected() {
        let set = PermissionSet::parse(["data:write", "traffic:admin", "secure_computation:read"])
            .unwrap();
        assert_eq!(
            set.to_strings(),
            ["data:write", "traffic:admin", "secure_computation:read"]
        );
        for bad in ["data", "data:delete", "nosuch:read", ":read", "data:"] {
            assert!(bad.parse::<Permission>().is_err(), "{bad}");
        }
    }

    #[test]
    fn builtin_roles_are_ordered_by_power_where_they_overlap() {
        let data_write = Permission::new(Module::Data, Access::Write);
        let identity_admin = Permission::new(Module::Identity, Access::Admin);
        assert!(BuiltinRole::Admin.permissions().allows(identity_admin));
        assert!(!BuiltinRole::Operator.permissions().allows(identity_admin));
        assert!(BuiltinRole::Operator.permissions().allows(data_write));
        assert!(BuiltinRole::Device.permissions().allows(data_write));
        assert!(!BuiltinRole::Viewer.permissions().allows(data_write));
        assert!(
            !BuiltinRole::Device
                .permissions()
                .allows(Permission::new(Module::Traffic, Access::Read))
        );
        assert!(
            !BuiltinRole::Admin
                .permissions()
                .allows(Permission::new(Module::System, Access::Read))
        );
    }
}
