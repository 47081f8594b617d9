//! Who is calling, and what they may do where.

use crate::permissions::{Permission, PermissionSet};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use store::{TenantId, TenantScope};

/// The authenticated party behind a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Subject {
    /// A user who logged in.
    User {
        /// User id.
        id: String,
        /// Login name.
        username: String,
    },
    /// A device or service using an API key.
    ApiKey {
        /// Key id (not the secret).
        id: String,
        /// The key's label.
        name: String,
    },
    /// A user of an external OpenID Connect provider.
    External {
        /// Token issuer.
        issuer: String,
        /// Subject at that issuer.
        subject: String,
    },
    /// An unauthenticated caller, allowed only where the operator opted in.
    Anonymous,
    /// A trusted operator tool with direct access to the data directory (`citybrain admin`).
    System {
        /// Which tool.
        tool: String,
    },
}

/// A role and its permissions in one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Role name (built-in or custom).
    pub role: String,
    /// What the role allows.
    pub permissions: PermissionSet,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// Who.
    pub subject: Subject,
    /// Platform administrator: every permission in every tenant, plus platform operations.
    pub superuser: bool,
    /// Roles per tenant.
    pub grants: BTreeMap<TenantId, Grant>,
    /// A grant that applies in every tenant (only the operator's opt-in anonymous access
    /// uses this).
    pub any_tenant: Option<Grant>,
    /// The tenant used when a request names none.
    pub default_tenant: Option<TenantId>,
    /// When the credential expires (seconds since the epoch), if it does.
    pub expires_at: Option<i64>,
}

/// Why an authenticated caller may not do something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// Not a member of the tenant at all.
    #[error("not a member of tenant {0}")]
    NotAMember(TenantId),
    /// A member, but without the permission.
    #[error("permission {permission} is required in tenant {tenant}")]
    MissingPermission {
        /// The tenant.
        tenant: TenantId,
        /// What was needed.
        permission: Permission,
    },
    /// A platform operation by someone who is not a platform administrator.
    #[error("only platform administrators may do this")]
    NotSuperuser,
    /// No tenant named and no default tenant.
    #[error("no tenant given and the caller has no default tenant")]
    NoTenant,
}

impl Principal {
    /// The actor string written to the audit log.
    pub fn actor(&self) -> String {
        match &self.subject {
            Subject::User { id, .. } => format!("user:{id}"),
            Subject::ApiKey { id, .. } => format!("key:{id}"),
            Subject::External { issuer, subject } => format!("oidc:{issuer}#{subject}"),
            Subject::Anonymous => "anonymous".to_owned(),
            Subject::System { tool } => format!("system:{tool}"),
        }
    }

    /// The user id, for principals that are users of this platform.
    pub fn user_id(&self) -> Option<&str> {
        match &self.subject {
            Subject::User { id, .. } => Some(id),
            _ => None,
        }
    }

    /// Permissions in `tenant` (everything for superusers), if any.
    pub fn permissions_in(&self, tenant: &TenantId) -> Option<PermissionSet> {
        if self.superuser {
            return Some(PermissionSet::all());
        }
        self.grants
            .get(tenant)
            .or(self.any_tenant.as_ref())
            .map(|grant| grant.permissions)
    }

    /// A trusted operator tool: a superuser without a login.
    pub fn system(tool: &str) -> Self {
        Principal {
            subject: Subject::System {
                tool: tool.to_owned(),
            },
            superuser: true,
            grants: BTreeMap::new(),
            any_tenant: None,
            default_tenant: None,
            expires_at: None,
        }
    }

    /// Tenants the caller can name explicitly (superusers: none listed here, they see all).
    pub fn tenants(&self) -> impl Iterator<Item = &TenantId> {
        self.grants.keys()
    }

    /// Checks `permission` in `tenant` and returns the scope that lets the caller touch
    /// the tenant's data. This is the only way request handlers obtain a scope.
    pub fn authorize(
        &self,
        tenant: &TenantId,
        permission: Permission,
    ) -> Result<TenantScope, Denied> {
        match self.permissions_in(tenant) {
            None => Err(Denied::NotAMember(tenant.clone())),
            Some(set) if set.allows(permission) => Ok(TenantScope::authorized(tenant.clone())),
            Some(_) => Err(Denied::MissingPermission {
                tenant: tenant.clone(),
                permission,
            }),
        }
    }

    /// The tenant a request acts in: the one named, else the caller's default.
    pub fn resolve_tenant(&self, named: Option<&TenantId>) -> Result<TenantId, Denied> {
        named
            .or(self.default_tenant.as_ref())
            .cloned()
            .ok_or(Denied::NoTenant)
    }

    /// Checks a platform-level operation (tenant management, platform audit, metrics).
    pub fn authorize_platform(&self) -> Result<(), Denied> {
        if self.superuser {
            Ok(())
        } else {
            Err(Denied::NotSuperuser)
        }
    }
}
