//! The weighted cost of running a job at a site: money, carbon, data moved and lateness.
//!
//! ```text
//! hours    = duration / 3600
//! money    = hours × (cores·p_cpu + GiB·p_mem + GPUs·p_gpu[model])      + GB_moved · p_transfer
//! energy   = hours × (cores·W_cpu + GiB·W_mem + GPUs·W_gpu[model]) / 1000 × PUE        (kWh)
//! carbon   = energy × grid_factor × (1 − green_share)                                   (kg)
//! late     = max(0, start + duration − deadline)
//! penalty  = priority × (miss_penalty + late_hours × late_per_hour)   if late > 0
//! wait     = priority × wait_per_hour × (start − arrival) / 3600
//! cost     = money + carbon_price · carbon + data_price · GB_moved + penalty + wait
//! ```
//!
//! Every term except lateness and waiting is fixed once the (job, site, GPU model) is fixed; the
//! engine computes that static part once per option ([`StaticCost`]) and adds the start-dependent
//! terms per start time. Both are non-decreasing in the start time.

use crate::job::Job;
use crate::world::{GpuModelIdx, World};

/// Weights of the objective.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostWeights {
    /// CNY per kg CO2 (shadow carbon price; default 1.4 CNY/kg ≈ US EPA 2023 social cost of
    /// carbon, 190 USD/t).
    pub carbon_cny_per_kg: f64,
    /// Extra CNY per GB moved between regions, on top of the transfer price (0 by default).
    pub data_cny_per_gb: f64,
    /// Fixed CNY per priority unit when a deadline is missed.
    pub miss_penalty_cny: f64,
    /// CNY per priority unit and hour of lateness.
    pub late_cny_per_hour: f64,
    /// CNY per priority unit and hour between arrival and start: the value of finishing sooner,
    /// and the price of holding future capacity (without it, waiting is free until the deadline and
    /// an online policy queues work at the cheapest site until it clogs).
    pub wait_cny_per_hour: f64,
}

impl Default for CostWeights {
    fn default() -> Self {
        Self {
            carbon_cny_per_kg: 1.4,
            data_cny_per_gb: 0.0,
            miss_penalty_cny: 100.0,
            late_cny_per_hour: 20.0,
            wait_cny_per_hour: 2.0,
        }
    }
}

/// The lateness-independent part of an option's cost.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StaticCost {
    /// CNY for compute.
    pub compute_cny: f64,
    /// CNY for moving the input.
    pub transfer_cny: f64,
    /// kg CO2.
    pub carbon_kg: f64,
    /// kWh at the meter (PUE included).
    pub energy_kwh: f64,
    /// Bytes moved between regions.
    pub bytes_moved: u64,
    /// Seconds to move the input.
    pub transfer_s: f64,
    /// Weighted total without lateness.
    pub weighted: f64,
}

/// A complete cost breakdown of a placement.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CostBreakdown {
    /// Static part.
    pub fixed: StaticCost,
    /// Seconds late (0 if on time).
    pub late_s: i64,
    /// Lateness penalty, CNY.
    pub penalty_cny: f64,
    /// Waiting cost, CNY.
    pub wait_cny: f64,
    /// Weighted total.
    pub total: f64,
}

/// Computes the static cost of `job` at `site` on GPU `model` (ignored for CPU-only jobs).
pub fn static_cost(
    world: &World,
    weights: &CostWeights,
    job: &Job,
    site_idx: usize,
    model: Option<GpuModelIdx>,
) -> StaticCost {
    let Some(site) = world.sites.get(site_idx) else {
        return StaticCost {
            weighted: f64::INFINITY,
            ..StaticCost::default()
        };
    };
    let hours = job.duration_s as f64 / 3600.0;
    let cores = job.demand.cpu_milli as f64 / 1000.0;
    let gib = job.demand.mem_mib as f64 / 1024.0;
    let gpus = job.demand.gpu_milli as f64 / 1000.0;
    let (gpu_price, gpu_watts) = match model {
        Some(m) if gpus > 0.0 => {
            let price = site
                .gpus
                .iter()
                .position(|(gm, _)| *gm == m)
                .and_then(|i| site.price_gpu_hour.get(i).copied())
                .unwrap_or(f64::INFINITY);
            let watts = world
                .gpu_models
                .get(usize::from(m))
                .map_or(0.0, |g| g.watts);
            (price, watts)
        }
        _ => (0.0, 0.0),
    };
    let compute_cny = hours
        * (cores * site.price_cpu_core_hour + gib * site.price_mem_gib_hour + gpus * gpu_price);
    let watts = cores * world.cpu_core_watts + gib * world.memory_gib_watts + gpus * gpu_watts;
    let energy_kwh = hours * watts / 1000.0 * site.pue;
    let carbon_kg = energy_kwh * site.effective_kg_per_kwh();
    let cross_region = site.region != job.data_region;
    let bytes_moved = if cross_region { job.data_bytes } else { 0 };
    let gb = bytes_moved as f64 / 1e9;
    let link = world.link(job.data_region, site.region);
    let transfer_cny = gb * link.cny_per_gb;
    let transfer_s = world.transfer_seconds(job.data_region, site.region, job.data_bytes);
    let weighted = compute_cny
        + transfer_cny
        + weights.carbon_cny_per_kg * carbon_kg
        + weights.data_cny_per_gb * gb;
    StaticCost {
        compute_cny,
        transfer_cny,
        carbon_kg,
        energy_kwh,
        bytes_moved,
        transfer_s,
        weighted,
    }
}

/// Lateness penalty for finishing at `finish_s`.
pub fn lateness_penalty(weights: &CostWeights, job: &Job, finish_s: i64) -> (i64, f64) {
    let late = finish_s.saturating_sub(job.deadline_s).max(0);
    if late == 0 {
        return (0, 0.0);
    }
    let pen = f64::from(job.priority)
        * (weights.miss_penalty_cny + late as f64 / 3600.0 * weights.late_cny_per_hour);
    (late, pen)
}

/// Full breakdown for a start time.
pub fn breakdown(
    weights: &CostWeights,
    job: &Job,
    fixed: StaticCost,
    start_s: i64,
) -> CostBreakdown {
    let (late_s, penalty_cny) =
        lateness_penalty(weights, job, start_s.saturating_add(job.duration_s));
    let wait_cny = wait_cost(weights, job, start_s);
    CostBreakdown {
        fixed,
        late_s,
        penalty_cny,
        wait_cny,
        total: fixed.weighted + penalty_cny + wait_cny,
    }
}

/// Waiting cost of starting at `start_s`.
pub fn wait_cost(weights: &CostWeights, job: &Job, start_s: i64) -> f64 {
    let wait = start_s.saturating_sub(job.arrival_s).max(0) as f64;
    f64::from(job.priority) * weights.wait_cny_per_hour * wait / 3600.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{DataRef, JobSpec};
    use crate::sites::{EastWestOptions, east_west};

    #[test]
    fn cost_terms_follow_the_formula() {
        let world = east_west(&EastWestOptions::default());
        let spec = JobSpec {
            id: "a".into(),
            tenant: String::new(),
            submit_s: 0,
            duration_s: 7200.0,
            deadline_s: Some(10_000),
            priority: 3,
            resources: [("cpu".to_owned(), 2.0)].into_iter().collect(),
            gpu_models: vec![],
            input: Some(DataRef {
                region: "jingjinji".into(),
                size_gb: 10.0,
            }),
            allowed_zones: vec![],
        };
        let job = spec.validate(&world).unwrap();
        let w = CostWeights::default();
        let zw = world.site_index("zhongwei").unwrap();
        let bj = world.site_index("bj-city").unwrap();
        let c = static_cost(&world, &w, &job, zw, None);
        let site = &world.sites[zw];
        // Independent recomputation from the site's published figures.
        let expected_compute = 2.0 * 2.0 * site.price_cpu_core_hour;
        let expected_kwh = 2.0 * 2.0 * 8.0 / 1000.0 * site.pue;
        assert!((c.compute_cny - expected_compute).abs() < 1e-9);
        assert!((c.energy_kwh - expected_kwh).abs() < 1e-9);
        assert!((c.carbon_kg - expected_kwh * 0.5857 * 0.4).abs() < 1e-9);
        assert_eq!(c.bytes_moved, 10_000_000_000);
        assert!((c.transfer_cny - 10.0 * 0.2).abs() < 1e-9);
        let local = static_cost(&world, &w, &job, bj, None);
        assert_eq!(local.bytes_moved, 0);
        assert_eq!(local.transfer_cny, 0.0);

        let on_time = breakdown(&w, &job, c, 0);
        assert_eq!(on_time.late_s, 0);
        assert_eq!(on_time.wait_cny, 0.0);
        let start = 10_000 - 7200 + 3600;
        let late = breakdown(&w, &job, c, start);
        assert_eq!(late.late_s, 3600);
        assert!((late.penalty_cny - 3.0 * (100.0 + 20.0)).abs() < 1e-9);
        assert!((late.wait_cny - 3.0 * 2.0 * start as f64 / 3600.0).abs() < 1e-9);
        assert!((late.total - (c.weighted + late.penalty_cny + late.wait_cny)).abs() < 1e-9);
    }
}
