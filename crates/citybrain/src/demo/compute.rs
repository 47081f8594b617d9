//! Demo component: member sites and jobs flowing through the computing-power network.
//!
//! Registers three simulated member sites next to the local machine (a Beijing city data centre
//! in the east, the Ningxia and Guizhou computing parks in the west, with the documented
//! east/west prices and carbon figures and two cores each; "simulated" sites run their jobs on
//! this machine too), then submits a small job every few seconds with input data in an eastern
//! hub, a share of them confined to their province, so the placement engine's choices (west
//! when it is cheaper and greener, east when data must stay) show in `/cpn/v1/jobs`.

use super::{DEMO_TENANT, DemoContext, DemoPart};
use anyhow::Context;
use cpn_server::JobRequest;
use cpn_server::coordinator::ensure_site;
use std::collections::BTreeMap;
use std::time::Duration;
use store::{TenantId, TenantScope};

/// The simulated remote sites, by id in the documented east/west table.
const SITES: [&str; 3] = ["bj-city", "zhongwei", "guian"];

/// Starts this component; returns its part of the banner, if any.
pub(crate) async fn start(context: &DemoContext<'_>) -> anyhow::Result<Option<DemoPart>> {
    let Some(coordinator) = context.platform.compute.get().cloned() else {
        return Ok(None);
    };
    let tenant = TenantId::new(DEMO_TENANT).context("demo tenant id")?;
    let table = cpn_core::sites::east_west_config(&Default::default());
    for id in SITES {
        let Some(mut site) = table.sites.iter().find(|s| s.id == id).cloned() else {
            continue;
        };
        site.id = format!("{id}-sim");
        site.capacity.cpu_cores = 2.0;
        site.capacity.memory_gib = 4.0;
        site.capacity.gpus.clear();
        site.price.gpu_hour.clear();
        ensure_site(&coordinator, &tenant, "simulated", site)
            .await
            .with_context(|| format!("registering the demo site {id}"))?;
    }
    let scope = TenantScope::authorized(tenant);
    let stream = coordinator.clone();
    tokio::spawn(async move {
        let origins = ["jingjinji", "yrd", "gba"];
        let mut n: u64 = 0;
        let mut every = tokio::time::interval(Duration::from_secs(3));
        loop {
            every.tick().await;
            n += 1;
            let active = stream
                .jobs(&scope, 50)
                .await
                .map(|jobs| {
                    jobs.iter()
                        .filter(|j| j.state == "pending" || j.state == "running")
                        .count()
                })
                .unwrap_or(0);
            if active >= 8 {
                continue;
            }
            let origin = origins[(n % 3) as usize];
            let confined = n.is_multiple_of(2) && origin == "jingjinji";
            let seconds = 3 + n % 5;
            let request = JobRequest {
                name: format!("demo batch {n}"),
                command: vec![
                    "/bin/sh".into(),
                    "-c".into(),
                    format!(
                        "echo batch {n} from {origin} on $(hostname); sleep {seconds}; echo done"
                    ),
                ],
                env: BTreeMap::new(),
                resources: BTreeMap::from([
                    ("cpu".to_owned(), 1.0),
                    ("memory_gib".to_owned(), 0.25),
                ]),
                gpu_models: Vec::new(),
                duration_s: seconds as f64,
                deadline_s: Some(3600.0),
                priority: Some(1 + (n % 3) as u32),
                input: Some(cpn_core::job::DataRef {
                    region: origin.to_owned(),
                    size_gb: (n % 7) as f64 * 5.0,
                }),
                allowed_zones: if confined {
                    vec!["CN-BJ".to_owned()]
                } else {
                    Vec::new()
                },
                timeout_s: Some(120.0),
            };
            if let Err(error) = stream.submit(&scope, request).await {
                tracing::debug!(%error, "demo job not submitted");
            }
        }
    });
    let base = &context.base_url;
    let sites = coordinator.sites();
    let mut lines = vec![format!(
        "{} sites: {}",
        sites.len(),
        sites
            .iter()
            .map(|s| format!(
                "{} ({}, {})",
                s.id,
                s.engine,
                s.site["region"].as_str().unwrap_or("?")
            ))
            .collect::<Vec<_>>()
            .join(", ")
    )];
    lines.push("a demo job stream submits a batch every 3 s (data in the east; cost- and carbon-aware placement)".into());
    lines.push(format!(
        "sites:   curl -s {base}/cpn/v1/sites -H 'authorization: Bearer <access_token>'"
    ));
    lines.push(format!(
        "jobs:    curl -s {base}/cpn/v1/jobs -H 'authorization: Bearer <access_token>'"
    ));
    lines.push(format!(
        "submit:  curl -s -X POST {base}/cpn/v1/jobs -H 'authorization: Bearer <access_token>' \\"
    ));
    lines.push("           -H 'content-type: application/json' -d '{\"command\":[\"echo\",\"hi\"],\"resources\":{\"cpu\":1},\"duration_s\":5}'".into());
    Ok(Some(DemoPart {
        title: "computing-power network",
        lines,
    }))
}
