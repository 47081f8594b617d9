//! The conformance suite every store backend runs.
//!
//! Each check is a plain async function over the traits, so it knows nothing about the
//! backend. A backend instantiates all of them with [`identity_store_test_suite!`]:
//!
//! ```ignore
//! store::identity_store_test_suite!(async {
//!     let dir = tempfile::tempdir().unwrap();
//!     let store = SqliteStore::open(dir.path()).unwrap();
//!     (dir, store)
//! });
//! ```
//!
//! The expression yields `(guard, store)`; the guard (e.g. a temporary directory or a
//! database name to drop) lives until the check finishes.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use crate::*;
use serde_json::json;

fn tenant(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

fn scope(id: &str) -> TenantScope {
    TenantScope::authorized(tenant(id))
}

fn tenant_record(id: &str) -> TenantRecord {
    TenantRecord {
        id: tenant(id),
        display_name: format!("Tenant {id}"),
        created_at: UnixMillis(1_000),
    }
}

fn user_record(id: &str, username: &str) -> UserRecord {
    UserRecord {
        id: id.to_owned(),
        username: username.to_owned(),
        password_hash: format!("$argon2id$v=19$fake${id}"),
        superuser: false,
        disabled: false,
        created_at: UnixMillis(2_000),
    }
}

fn key_record(id: &str, tenant_id: &str) -> ApiKeyRecord {
    ApiKeyRecord {
        id: id.to_owned(),
        tenant: tenant(tenant_id),
        name: format!("sensor {id}"),
        role: "device".to_owned(),
        secret_hash: "ab".repeat(32),
        created_by: "usr_1".to_owned(),
        created_at: UnixMillis(3_000),
        expires_at: Some(UnixMillis(9_000)),
        revoked_at: None,
    }
}

fn event(at: i64, tenant_id: Option<&str>, action: &str) -> AuditEvent {
    AuditEvent {
        at: UnixMillis(at),
        tenant: tenant_id.map(tenant),
        actor: "user:usr_1".to_owned(),
        action: action.to_owned(),
        outcome: AuditOutcome::Success,
        target: Some("t".to_owned()),
        detail: json!({"b": 1, "a": [true, null]}),
    }
}

async fn two_tenants_one_user<S: IdentityStore + ?Sized>(store: &S) {
    store.create_tenant(tenant_record("alpha")).await.unwrap();
    store.create_tenant(tenant_record("beta")).await.unwrap();
    store
        .create_user(user_record("usr_1", "ada"))
        .await
        .unwrap();
    store
        .create_user(user_record("usr_2", "bob"))
        .await
        .unwrap();
}

/// Tenants: create, read, list in id order, duplicates refused without change.
pub async fn tenants<S: IdentityStore + ?Sized>(store: &S) {
    assert_eq!(store.tenants().await.unwrap(), vec![]);
    store.create_tenant(tenant_record("zeta")).await.unwrap();
    store.create_tenant(tenant_record("alpha")).await.unwrap();
    let mut dup = tenant_record("alpha");
    dup.display_name = "changed".into();
    let err = store.create_tenant(dup).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::AlreadyExists);
    assert_eq!(
        store.tenant(&tenant("alpha")).await.unwrap(),
        Some(tenant_record("alpha"))
    );
    assert_eq!(store.tenant(&tenant("nope")).await.unwrap(), None);
    let ids: Vec<_> = store
        .tenants()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id.to_string())
        .collect();
    assert_eq!(ids, ["alpha", "zeta"]);
}

/// Users: create, lookups by id and name, unique id and username, updates.
pub async fn users<S: IdentityStore + ?Sized>(store: &S) {
    assert_eq!(store.user_count().await.unwrap(), 0);
    store
        .create_user(user_record("usr_1", "ada"))
        .await
        .unwrap();
    assert_eq!(store.user_count().await.unwrap(), 1);
    let same_name = store
        .create_user(user_record("usr_2", "ada"))
        .await
        .unwrap_err();
    assert_eq!(same_name.kind(), StoreErrorKind::AlreadyExists);
    let same_id = store
        .create_user(user_record("usr_1", "eve"))
        .await
        .unwrap_err();
    assert_eq!(same_id.kind(), StoreErrorKind::AlreadyExists);
    assert_eq!(store.user_count().await.unwrap(), 1);
    assert_eq!(
        store.user("usr_1").await.unwrap(),
        Some(user_record("usr_1", "ada"))
    );
    assert_eq!(
        store.user_by_username("ada").await.unwrap().unwrap().id,
        "usr_1"
    );
    assert_eq!(store.user_by_username("eve").await.unwrap(), None);
    store
        .set_password_hash("usr_1", "$argon2id$new")
        .await
        .unwrap();
    store.set_disabled("usr_1", true).await.unwrap();
    let updated = store.user("usr_1").await.unwrap().unwrap();
    assert_eq!(updated.password_hash, "$argon2id$new");
    assert!(updated.disabled);
    assert_eq!(
        store
            .set_password_hash("usr_9", "x")
            .await
            .unwrap_err()
            .kind(),
        StoreErrorKind::NotFound
    );
    assert_eq!(
        store.set_disabled("usr_9", true).await.unwrap_err().kind(),
        StoreErrorKind::NotFound
    );
}

/// Memberships: set, replace, remove, and never visible from another tenant's scope.
pub async fn memberships<S: IdentityStore + ?Sized>(store: &S) {
    two_tenants_one_user(store).await;
    let (alpha, beta) = (scope("alpha"), scope("beta"));
    store
        .set_membership(&alpha, "usr_1", "viewer")
        .await
        .unwrap();
    store
        .set_membership(&alpha, "usr_1", "operator")
        .await
        .unwrap();
    store.set_membership(&beta, "usr_2", "admin").await.unwrap();
    assert_eq!(
        store.membership(&alpha, "usr_1").await.unwrap().as_deref(),
        Some("operator")
    );
    assert_eq!(store.membership(&beta, "usr_1").await.unwrap(), None);
    assert_eq!(store.membership(&alpha, "usr_2").await.unwrap(), None);
    let members: Vec<_> = store
        .members(&alpha)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.user.username, m.role))
        .collect();
    assert_eq!(members, [("ada".to_owned(), "operator".to_owned())]);
    let of_user = store.memberships_of_user("usr_2").await.unwrap();
    assert_eq!(
        of_user,
        [MembershipRecord {
            tenant: tenant("beta"),
            user_id: "usr_2".into(),
            role: "admin".into()
        }]
    );
    // Removing a member of another tenant through this scope behaves as "not found".
    let err = store.remove_membership(&alpha, "usr_2").await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::NotFound);
    assert_eq!(
        store.membership(&beta, "usr_2").await.unwrap().as_deref(),
        Some("admin")
    );
    store.remove_membership(&alpha, "usr_1").await.unwrap();
    assert_eq!(store.members(&alpha).await.unwrap(), vec![]);
    // Unknown users and tenants are refused.
    assert_eq!(
        store
            .set_membership(&alpha, "usr_9", "viewer")
            .await
            .unwrap_err()
            .kind(),
        StoreErrorKind::NotFound
    );
    assert_eq!(
        store
            .set_membership(&scope("gamma"), "usr_1", "viewer")
            .await
            .unwrap_err()
            .kind(),
        StoreErrorKind::NotFound
    );
}

/// Custom roles are per tenant.
pub async fn custom_roles<S: IdentityStore + ?Sized>(store: &S) {
    two_tenants_one_user(store).await;
    let (alpha, beta) = (scope("alpha"), scope("beta"));
    let role = CustomRoleRecord {
        name: "signal-engineer".into(),
        permissions: vec!["traffic:write".into(), "data:read".into()],
    };
    store.put_role(&alpha, role.clone()).await.unwrap();
    assert_eq!(store.roles(&alpha).await.unwrap(), vec![role.clone()]);
    assert_eq!(store.roles(&beta).await.unwrap(), vec![]);
    assert_eq!(
        store
            .delete_role(&beta, "signal-engineer")
            .await
            .unwrap_err()
            .kind(),
        StoreErrorKind::NotFound
    );
    let replaced = CustomRoleRecord {
        permissions: vec!["traffic:read".into()],
        ..role
    };
    store.put_role(&alpha, replaced.clone()).await.unwrap();
    assert_eq!(store.roles(&alpha).await.unwrap(), vec![replaced]);
    store.delete_role(&alpha, "signal-engineer").await.unwrap();
    assert_eq!(store.roles(&alpha).await.unwrap(), vec![]);
}

/// API keys: global lookup by id, scoped listing and revocation.
pub async fn api_keys<S: IdentityStore + ?Sized>(store: &S) {
    two_tenants_one_user(store).await;
    let (alpha, beta) = (scope("alpha"), scope("beta"));
    store
        .create_api_key(&alpha, key_record("k1", "alpha"))
        .await
        .unwrap();
    store
        .create_api_key(&beta, key_record("k2", "beta"))
        .await
        .unwrap();
    assert_eq!(
        store
            .create_api_key(&alpha, key_record("k1", "alpha"))
            .await
            .unwrap_err()
            .kind(),
        StoreErrorKind::AlreadyExists
    );
    assert_eq!(
        store
            .create_api_key(&alpha, key_record("k3", "beta"))
            .await
            .unwrap_err()
            .kind(),
        StoreErrorKind::InvalidInput
    );
    assert_eq!(
        store.api_key("k1").await.unwrap(),
        Some(key_record("k1", "alpha"))
    );
    assert_eq!(store.api_key("k9").await.unwrap(), None);
    let listed: Vec<_> = store
        .api_keys(&alpha)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(listed, ["k1"]);
    // Revoking another tenant's key through this scope is "not found" and changes nothing.
    assert_eq!(
        store
            .revoke_api_key(&alpha, "k2", UnixMillis(5_000))
            .await
            .unwrap_err()
            .kind(),
        StoreErrorKind::NotFound
    );
    assert_eq!(store.api_key("k2").await.unwrap().unwrap().revoked_at, None);
    store
        .revoke_api_key(&alpha, "k1", UnixMillis(5_000))
        .await
        .unwrap();
    store
        .revoke_api_key(&alpha, "k1", UnixMillis(6_000))
        .await
        .unwrap();
    assert_eq!(
        store.api_key("k1").await.unwrap().unwrap().revoked_at,
        Some(UnixMillis(5_000))
    );
}

/// Refresh tokens are single use; families can be revoked.
pub async fn refresh_tokens<S: IdentityStore + ?Sized>(store: &S) {
    two_tenants_one_user(store).await;
    let token = |id: &str, family: &str| RefreshTokenRecord {
        id: id.into(),
        family: family.into(),
        user_id: "usr_1".into(),
        secret_hash: "cd".repeat(32),
        issued_at: UnixMillis(1_000),
        expires_at: UnixMillis(10_000),
        used_at: None,
    };
    store.insert_refresh_token(token("r1", "f1")).await.unwrap();
    store.insert_refresh_token(token("r2", "f1")).await.unwrap();
    store.insert_refresh_token(token("r3", "f2")).await.unwrap();
    assert_eq!(
        store
            .insert_refresh_token(token("r1", "f1"))
            .await
            .unwrap_err()
            .kind(),
        StoreErrorKind::AlreadyExists
    );
    let first = store
        .take_refresh_token("r1", UnixMillis(2_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.used_at, None);
    let second = store
        .take_refresh_token("r1", UnixMillis(3_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.used_at, Some(UnixMillis(2_000)));
    assert_eq!(
        store
            .take_refresh_token("nope", UnixMillis(3_000))
            .await
            .unwrap(),
        None
    );
    store
        .revoke_refresh_family("f1", UnixMillis(4_000))
        .await
        .unwrap();
    assert_eq!(
        store
            .take_refresh_token("r2", UnixMillis(5_000))
            .await
            .unwrap()
            .unwrap()
            .used_at,
        Some(UnixMillis(4_000))
    );
    assert_eq!(
        store
            .take_refresh_token("r3", UnixMillis(5_000))
            .await
            .unwrap()
            .unwrap()
            .used_at,
        None
    );
}

/// Audit log: numbering, hash chain, scoped reads, filters.
pub async fn audit_log<S: AuditLog + ?Sized>(store: &S) {
    assert_eq!(
        store.verify_chain().await.unwrap(),
        ChainVerification::Intact { entries: 0 }
    );
    let first = store
        .append_audit(event(1, Some("alpha"), "auth.login"))
        .await
        .unwrap();
    assert_eq!(first.seq, 1);
    assert_eq!(first.prev_hash, AUDIT_GENESIS_HASH);
    assert_eq!(
        first.hash,
        audit_entry_hash(1, &first.event, AUDIT_GENESIS_HASH)
    );
    let second = store
        .append_audit(event(2, Some("beta"), "auth.login"))
        .await
        .unwrap();
    assert_eq!(second.prev_hash, first.hash);
    store
        .append_audit(event(3, None, "tenant.create"))
        .await
        .unwrap();
    store
        .append_audit(event(4, Some("alpha"), "apikey.create"))
        .await
        .unwrap();
    assert_eq!(
        store.verify_chain().await.unwrap(),
        ChainVerification::Intact { entries: 4 }
    );

    let seqs = |entries: Vec<AuditEntry>| entries.into_iter().map(|e| e.seq).collect::<Vec<_>>();
    let alpha = AuditScope::Tenant(scope("alpha"));
    assert_eq!(
        seqs(
            store
                .audit_entries(&alpha, &AuditFilter::default())
                .await
                .unwrap()
        ),
        [4, 1]
    );
    assert_eq!(
        seqs(
            store
                .audit_entries(&AuditScope::Platform, &AuditFilter::default())
                .await
                .unwrap()
        ),
        [4, 3, 2, 1]
    );
    let logins = AuditFilter {
        action: Some("auth.login".into()),
        ..Default::default()
    };
    assert_eq!(
        seqs(
            store
                .audit_entries(&AuditScope::Platform, &logins)
                .await
                .unwrap()
        ),
        [2, 1]
    );
    let page = AuditFilter {
        before_seq: Some(4),
        limit: Some(2),
        ..Default::default()
    };
    assert_eq!(
        seqs(
            store
                .audit_entries(&AuditScope::Platform, &page)
                .await
                .unwrap()
        ),
        [3, 2]
    );
    let stored = store
        .audit_entries(&alpha, &AuditFilter::default())
        .await
        .unwrap();
    assert_eq!(stored[1], first, "entries read back exactly as appended");
}

/// Instantiates every check of the suite for a backend. See the module docs.
#[macro_export]
macro_rules! identity_store_test_suite {
    ($make:expr) => {
        mod identity_store_suite {
            #[allow(unused_imports)]
            use super::*;
            $crate::identity_store_test_suite!(@tests $make;
                tenants, users, memberships, custom_roles, api_keys, refresh_tokens, audit_log);
        }
    };
    (@tests $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (_guard, store) = $make.await;
                $crate::testsuite::$name(&store).await;
            }
        )*
    };
}
