//! Wires the computing-power network coordinator (issue 7) into the running platform: the
//! coordinator over the platform's store, its monitor loop, the `/cpn/v1` routes, and (by
//! default) this machine registered as a `local` site.

use super::Started;
use crate::platform::Platform;
use anyhow::{Context, bail};
use cpn_server::coordinator::{ensure_site, local_site};
use cpn_server::{Coordinator, CoordinatorConfig};
use std::sync::Arc;
use std::time::Duration;
use store::{QuotaRecord, TenantId};

/// The executor for `kubernetes` sites, if `compute.kube_url` is set.
#[cfg(feature = "kubernetes")]
pub(crate) fn kubernetes(
    c: &settings::ComputeConfig,
) -> anyhow::Result<Option<Arc<dyn cpn_exec::Executor + Send + Sync>>> {
    let Some(url) = &c.kube_url else {
        return Ok(None);
    };
    let token = c
        .kube_token_file
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned());
    let ex = cpn_exec::kubernetes::KubeExecutor::new(
        url,
        &c.kube_namespace,
        &c.kube_image,
        token.as_deref(),
    )
    .context("compute.kube_url")?;
    Ok(Some(Arc::new(ex)))
}

/// Without the `kubernetes` feature a configured cluster is an error, not silently ignored.
#[cfg(not(feature = "kubernetes"))]
pub(crate) fn kubernetes(
    c: &settings::ComputeConfig,
) -> anyhow::Result<Option<Arc<dyn cpn_exec::Executor + Send + Sync>>> {
    if c.kube_url.is_some() {
        bail!("compute.kube_url is set, but this binary was built without --features kubernetes");
    }
    Ok(None)
}

/// The tenant that owns the sites the platform registers itself.
const PLATFORM_OWNER: &str = "platform";

fn slurm(c: &settings::ComputeConfig) -> anyhow::Result<Option<cpn_exec::slurm::SlurmExecutor>> {
    let Some(url) = &c.slurm_url else {
        return Ok(None);
    };
    let (Some(user), Some(token_file), Some(workdir)) =
        (&c.slurm_user, &c.slurm_token_file, &c.slurm_workdir)
    else {
        bail!(
            "compute.slurm_url needs compute.slurm_user, compute.slurm_token_file and compute.slurm_workdir"
        );
    };
    let token = std::fs::read_to_string(token_file)
        .with_context(|| format!("reading compute.slurm_token_file {}", token_file.display()))?;
    Ok(Some(cpn_exec::slurm::SlurmExecutor {
        authority: url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned(),
        user: user.clone(),
        token: token.trim().to_owned(),
        workdir: workdir.clone(),
        partition: c.slurm_partition.clone(),
        timeout: Duration::from_secs(10),
    }))
}

/// Starts the coordinator and returns its routes.
pub(crate) async fn start(platform: &Platform) -> anyhow::Result<Started> {
    let c = &platform.config.compute;
    if !c.enabled {
        return Ok(Started::default());
    }
    if c.heartbeat_interval_ms == 0 || c.heartbeat_timeout_ms <= c.heartbeat_interval_ms {
        bail!(
            "compute.heartbeat_timeout_ms must be larger than compute.heartbeat_interval_ms (> 0)"
        );
    }
    let mut config =
        CoordinatorConfig::new(platform.config.data_dir().join("compute").join("jobs"));
    config.heartbeat_interval = Duration::from_millis(c.heartbeat_interval_ms);
    config.heartbeat_timeout = Duration::from_millis(c.heartbeat_timeout_ms);
    config.max_attempts = c.max_attempts.max(1);
    config.default_quota = QuotaRecord {
        max_active_jobs: c.default_max_active_jobs,
        max_cpu_cores: c.default_max_cpu_cores,
        max_gpus: c.default_max_gpus,
    };
    config.slurm = slurm(c)?;
    if let Some(kube) = kubernetes(c)? {
        config.engines.insert("kubernetes".into(), kube);
    }
    let coordinator = Coordinator::open(Arc::new(platform.store.clone()), config)
        .await
        .context("opening the computing-power network coordinator")?;
    let mut listening = Vec::new();
    if c.local_site {
        let cores = c.local_cpu_cores.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
        });
        let site = local_site(
            &c.local_site_id,
            &c.local_region,
            &c.local_zone,
            cores,
            c.local_memory_gib,
        );
        ensure_site(&coordinator, &TenantId::new(PLATFORM_OWNER)?, "local", site)
            .await
            .context("registering the local compute site ([compute] local_*)")?;
        listening.push(format!(
            "compute: local site '{}' ({cores} cores, region {}, zone {}) at /cpn/v1",
            c.local_site_id, c.local_region, c.local_zone
        ));
    }
    coordinator.spawn_monitor();
    let module = cpn_server::api::module(coordinator.clone(), Arc::clone(&platform.identity));
    let _ = platform.compute.set(coordinator);
    Ok(Started {
        modules: vec![module],
        listening,
    })
}
