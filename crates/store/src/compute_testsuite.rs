//! The conformance suite of [`ComputeStore`]: every backend runs it with
//! [`compute_store_test_suite!`], in the same way as the identity suite:
//!
//! ```ignore
//! store::compute_store_test_suite!(fresh());
//! ```

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use crate::*;
use serde_json::json;

fn scope(id: &str) -> TenantScope {
    TenantScope::authorized(TenantId::new(id).unwrap())
}

fn site(id: &str, owner: &str) -> SiteRecord {
    SiteRecord {
        id: id.to_owned(),
        owner: TenantId::new(owner).unwrap(),
        engine: "local".to_owned(),
        config: json!({"id": id, "capacity": {"cpu_cores": 4.0}, "zone": "CN-SH"}),
        status: "up".to_owned(),
        last_heartbeat: None,
        registered_at: UnixMillis(1_000),
    }
}

fn job(id: &str, tenant: &str, at: i64) -> JobRecord {
    JobRecord {
        id: id.to_owned(),
        tenant: TenantId::new(tenant).unwrap(),
        spec: json!({"command": ["echo", id], "resources": {"cpu": 1.0}}),
        state: "pending".to_owned(),
        site: None,
        exec_id: None,
        attempts: 0,
        exit_code: None,
        detail: String::new(),
        submitted_at: UnixMillis(at),
        updated_at: UnixMillis(at),
    }
}

/// Sites: one catalogue, ids unique across tenants, only the owner removes a site.
pub async fn compute_sites<S: ComputeStore + ?Sized>(store: &S) {
    store
        .create_site(&scope("alpha"), site("east-1", "beta"))
        .await
        .unwrap();
    // The owner is the scope's tenant, whatever the record said.
    let got = store.site("east-1").await.unwrap().unwrap();
    assert_eq!(got.owner.as_str(), "alpha");
    assert_eq!(got.config["capacity"]["cpu_cores"], json!(4.0));
    let dup = store
        .create_site(&scope("beta"), site("east-1", "beta"))
        .await
        .unwrap_err();
    assert_eq!(dup.kind(), StoreErrorKind::AlreadyExists);
    store
        .create_site(&scope("beta"), site("west-1", "beta"))
        .await
        .unwrap();
    let ids: Vec<_> = store
        .sites()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, ["east-1", "west-1"]);

    store
        .set_site_status("west-1", "down", Some(UnixMillis(7_000)))
        .await
        .unwrap();
    let west = store.site("west-1").await.unwrap().unwrap();
    assert_eq!(
        (west.status.as_str(), west.last_heartbeat),
        ("down", Some(UnixMillis(7_000)))
    );
    assert_eq!(
        store
            .set_site_status("nowhere", "up", None)
            .await
            .unwrap_err()
            .kind(),
        StoreErrorKind::NotFound
    );

    // Another tenant cannot remove it: same as not found.
    let other = store
        .delete_site(&scope("beta"), "east-1")
        .await
        .unwrap_err();
    assert_eq!(other.kind(), StoreErrorKind::NotFound);
    store.delete_site(&scope("alpha"), "east-1").await.unwrap();
    assert!(store.site("east-1").await.unwrap().is_none());
}

/// Jobs: tenant-scoped reads and updates; active jobs across tenants for the coordinator.
pub async fn compute_jobs<S: ComputeStore + ?Sized>(store: &S) {
    let (a, b) = (scope("alpha"), scope("beta"));
    store.create_job(&a, job("j1", "beta", 10)).await.unwrap();
    store.create_job(&a, job("j2", "alpha", 20)).await.unwrap();
    store.create_job(&b, job("j3", "beta", 30)).await.unwrap();
    assert_eq!(
        store
            .create_job(&b, job("j1", "beta", 40))
            .await
            .unwrap_err()
            .kind(),
        StoreErrorKind::AlreadyExists
    );
    let j1 = store.job(&a, "j1").await.unwrap().unwrap();
    assert_eq!(j1.tenant.as_str(), "alpha");
    assert_eq!(j1.spec["command"], json!(["echo", "j1"]));
    assert!(store.job(&b, "j1").await.unwrap().is_none());

    let listed: Vec<_> = store
        .jobs(&a, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(listed, ["j2", "j1"], "newest first, own tenant only");
    assert_eq!(store.jobs(&a, 1).await.unwrap().len(), 1);

    let mut updated = j1.clone();
    updated.state = "running".into();
    updated.site = Some("west-1".into());
    updated.exec_id = Some("local-7".into());
    updated.attempts = 2;
    updated.detail = "running".into();
    updated.updated_at = UnixMillis(50);
    store.update_job(&a, &updated).await.unwrap();
    assert_eq!(store.job(&a, "j1").await.unwrap().unwrap(), updated);
    // Another tenant's scope cannot change it.
    let mut hijack = updated.clone();
    hijack.state = "cancelled".into();
    assert_eq!(
        store.update_job(&b, &hijack).await.unwrap_err().kind(),
        StoreErrorKind::NotFound
    );
    assert_eq!(store.job(&a, "j1").await.unwrap().unwrap().state, "running");

    let mut done = store.job(&b, "j3").await.unwrap().unwrap();
    done.state = "succeeded".into();
    done.exit_code = Some(0);
    store.update_job(&b, &done).await.unwrap();
    let active: Vec<_> = store
        .active_jobs()
        .await
        .unwrap()
        .into_iter()
        .map(|j| (j.id, j.tenant.to_string()))
        .collect();
    assert_eq!(
        active,
        [
            ("j1".to_owned(), "alpha".to_owned()),
            ("j2".to_owned(), "alpha".to_owned())
        ]
    );
}

/// Events and logs: in order, per job, never through another tenant.
pub async fn compute_events_and_logs<S: ComputeStore + ?Sized>(store: &S) {
    let (a, b) = (scope("alpha"), scope("beta"));
    store.create_job(&a, job("j1", "alpha", 1)).await.unwrap();
    store.create_job(&a, job("j2", "alpha", 1)).await.unwrap();
    let s1 = store
        .append_job_event(&a, "j1", UnixMillis(1), "submitted", json!({}))
        .await
        .unwrap();
    store
        .append_job_event(&a, "j2", UnixMillis(2), "submitted", json!({}))
        .await
        .unwrap();
    let s2 = store
        .append_job_event(&a, "j1", UnixMillis(3), "placed", json!({"site": "west-1"}))
        .await
        .unwrap();
    assert_eq!((s1, s2), (1, 2), "seq counts per job");
    let events = store.job_events(&a, "j1").await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].kind, "placed");
    assert_eq!(events[1].detail["site"], json!("west-1"));
    assert_eq!(events[1].at, UnixMillis(3));
    assert_eq!(
        store.job_events(&b, "j1").await.unwrap_err().kind(),
        StoreErrorKind::NotFound
    );
    assert_eq!(
        store
            .append_job_event(&b, "j1", UnixMillis(4), "cancelled", json!({}))
            .await
            .unwrap_err()
            .kind(),
        StoreErrorKind::NotFound
    );
    assert_eq!(
        store
            .append_job_event(&a, "nope", UnixMillis(4), "x", json!({}))
            .await
            .unwrap_err()
            .kind(),
        StoreErrorKind::NotFound
    );

    assert_eq!(store.job_log(&a, "j1").await.unwrap(), "");
    store.set_job_log(&a, "j1", "hello\n").await.unwrap();
    store.set_job_log(&a, "j1", "hello\nworld\n").await.unwrap();
    assert_eq!(store.job_log(&a, "j1").await.unwrap(), "hello\nworld\n");
    assert_eq!(
        store.job_log(&b, "j1").await.unwrap_err().kind(),
        StoreErrorKind::NotFound
    );
    assert_eq!(
        store.set_job_log(&b, "j1", "x").await.unwrap_err().kind(),
        StoreErrorKind::NotFound
    );
    assert_eq!(store.job_log(&a, "j1").await.unwrap(), "hello\nworld\n");
}

/// Quotas: per tenant, replaced on set.
pub async fn compute_quotas<S: ComputeStore + ?Sized>(store: &S) {
    let (a, b) = (scope("alpha"), scope("beta"));
    assert!(store.quota(&a).await.unwrap().is_none());
    let q = QuotaRecord {
        max_active_jobs: 3,
        max_cpu_cores: 8.5,
        max_gpus: 0.0,
    };
    store.set_quota(&a, q).await.unwrap();
    assert_eq!(store.quota(&a).await.unwrap(), Some(q));
    assert!(store.quota(&b).await.unwrap().is_none());
    let q2 = QuotaRecord {
        max_active_jobs: 5,
        ..q
    };
    store.set_quota(&a, q2).await.unwrap();
    assert_eq!(store.quota(&a).await.unwrap(), Some(q2));
}

/// Instantiates every [`ComputeStore`] check for a backend; see the module docs.
#[macro_export]
macro_rules! compute_store_test_suite {
    ($make:expr) => {
        mod compute_store_suite {
            #[allow(unused_imports)]
            use super::*;
            $crate::compute_store_test_suite!(@tests $make;
                compute_sites, compute_jobs, compute_events_and_logs, compute_quotas);
        }
    };
    (@tests $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (_guard, store) = $make.await;
                $crate::compute_testsuite::$name(&store).await;
            }
        )*
    };
}
