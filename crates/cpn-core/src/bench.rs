//! Benchmarks, as functions returning report structs (the `citybrain bench cpn` command and the
//! `cpn_bench` example call these and print them).
//!
//! The core reads no clock, so the caller passes one in (`clock()` returns nanoseconds from any
//! fixed origin). Two benchmarks:
//! - [`placement_throughput`]: decisions per second of the cost-aware engine placing `jobs`
//!   synthetic jobs, one by one as they arrive, over a seeded `sites`-site world, plus per-decision
//!   latency percentiles;
//! - [`trace_benchmark`]: the Alibaba trace replayed over the east/west site set under every
//!   policy, the LP lower bound, and the goals checked.

use serde::Serialize;

use crate::engine::{Engine, Policy};
use crate::error::TraceError;
use crate::job::{Job, JobSpec};
use crate::sim::{Comparison, Goals, SimOptions, engine_config};
use crate::sites::{EAST_WEST_SITES, EastWestOptions, east_west, synthetic_world};
use crate::synth::{SynthOptions, synthetic_jobs};
use crate::trace::{Augment, MappingStats, parse_pods, pods_to_specs};
use crate::world::World;

/// Result of [`placement_throughput`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThroughputReport {
    /// Jobs placed.
    pub jobs: usize,
    /// Sites in the world.
    pub sites: usize,
    /// Jobs rejected at validation (not timed).
    pub rejected: usize,
    /// Decisions timed.
    pub decisions: usize,
    /// Wall time of all decisions, s.
    pub seconds: f64,
    /// Decisions per second.
    pub decisions_per_s: f64,
    /// Median decision latency, µs.
    pub p50_us: f64,
    /// 99th-percentile decision latency, µs.
    pub p99_us: f64,
    /// Slowest decision, µs.
    pub max_us: f64,
}

/// Places `jobs` synthetic jobs (offered GPU load 0.8) over a `sites`-site synthetic world.
pub fn placement_throughput(
    jobs: usize,
    sites: usize,
    seed: u64,
    clock: &mut dyn FnMut() -> u64,
) -> ThroughputReport {
    let opts = EastWestOptions {
        gpus: 100.0 * sites as f64 / 12.0 * 8.0,
        cpu_cores: 4000.0 * sites as f64,
        memory_gib: 16384.0 * sites as f64,
        ..EastWestOptions::default()
    };
    let world = synthetic_world(sites, &opts, seed);
    let total_gpus: f64 = world
        .sites
        .iter()
        .flat_map(|s| s.gpus.iter().map(|g| g.1 as f64 / 1000.0))
        .sum();
    let specs = synthetic_jobs(
        &SynthOptions {
            jobs,
            load: 0.8,
            total_gpus,
            seed,
        },
        &Augment {
            seed,
            ..Augment::default()
        },
    );
    let (valid, rejected) = validate_all(&world, &specs);
    let sim = SimOptions {
        horizon_margin_s: 7 * 86_400,
        ..SimOptions::default()
    };
    let cfg = engine_config(&valid, Policy::CostAware, &sim);
    let mut engine = Engine::new(&world, cfg);
    let mut lat = Vec::with_capacity(valid.len());
    let start = clock();
    for job in valid {
        let t0 = clock();
        let arrival = job.arrival_s;
        let _ = engine.place(job, arrival);
        lat.push(clock().saturating_sub(t0));
    }
    let total = clock().saturating_sub(start) as f64 / 1e9;
    lat.sort_unstable();
    let pct = |p: f64| {
        if lat.is_empty() {
            0.0
        } else {
            let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
            lat[i] as f64 / 1000.0
        }
    };
    ThroughputReport {
        jobs,
        sites: world.sites.len(),
        rejected,
        decisions: lat.len(),
        seconds: total,
        decisions_per_s: if total > 0.0 {
            lat.len() as f64 / total
        } else {
            0.0
        },
        p50_us: pct(0.5),
        p99_us: pct(0.99),
        max_us: lat.last().map_or(0.0, |v| *v as f64 / 1000.0),
    }
}

/// Validates every spec; returns the valid jobs and the number rejected.
pub fn validate_all(world: &World, specs: &[JobSpec]) -> (Vec<Job>, usize) {
    let mut valid = Vec::with_capacity(specs.len());
    let mut rejected = 0;
    for s in specs {
        match s.validate(world) {
            Ok(j) => valid.push(j),
            Err(_) => rejected += 1,
        }
    }
    (valid, rejected)
}

/// Options of the trace benchmark.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceBenchOptions {
    /// Augmentation (origin, data, deadlines, sovereignty).
    pub augment: Augment,
    /// Site-set capacity as a multiple of the trace's peak concurrent demand.
    pub capacity_factor: f64,
    /// Simulation options.
    pub sim: SimOptions,
    /// Compute the LP bound.
    pub with_lp: bool,
}

impl Default for TraceBenchOptions {
    fn default() -> Self {
        Self {
            augment: Augment::default(),
            capacity_factor: 2.5,
            sim: SimOptions::default(),
            with_lp: true,
        }
    }
}

/// Result of [`trace_benchmark`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceBenchReport {
    /// Pods read, jobs made, pods dropped.
    pub mapping: MappingStatsReport,
    /// Jobs rejected at validation.
    pub rejected: usize,
    /// Total capacity of the site set: (GPUs, cores, GiB).
    pub capacity: (f64, f64, f64),
    /// Per-policy metrics and the LP bound.
    pub comparison: Comparison,
    /// Goals checked.
    pub goals: Option<Goals>,
}

/// Serialisable copy of [`MappingStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MappingStatsReport {
    /// Pods in the trace.
    pub pods: usize,
    /// Jobs produced.
    pub jobs: usize,
    /// Pods dropped because they never ran.
    pub never_scheduled: usize,
}

impl From<MappingStats> for MappingStatsReport {
    fn from(s: MappingStats) -> Self {
        Self {
            pods: s.pods,
            jobs: s.jobs,
            never_scheduled: s.never_scheduled,
        }
    }
}

/// Peak concurrent demand (GPUs, cores, GiB) if every job ran at arrival, and the largest single
/// request of each.
pub fn demand_profile(specs: &[JobSpec]) -> ([f64; 3], [f64; 3]) {
    let keys = ["gpu", "cpu", "memory_gib"];
    let mut peaks = [0.0; 3];
    let mut largest = [0.0f64; 3];
    for (k, key) in keys.iter().enumerate() {
        let mut events: Vec<(i64, f64)> = Vec::with_capacity(2 * specs.len());
        for s in specs {
            let v = s
                .resources
                .iter()
                .filter(|(n, _)| n.as_str() == *key || (k == 0 && n.starts_with("gpu:")))
                .map(|(_, v)| *v)
                .sum::<f64>();
            if v > 0.0 {
                largest[k] = largest[k].max(v);
                events.push((s.submit_s, v));
                events.push((s.submit_s.saturating_add(s.duration_s.max(1.0) as i64), -v));
            }
        }
        events.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let mut level = 0.0;
        for (_, d) in events {
            level += d;
            peaks[k] = f64::max(peaks[k], level);
        }
    }
    (peaks, largest)
}

/// Sizes the east/west set for a workload: each total is `factor × peak concurrent demand`, but at
/// least enough that the smallest site can hold the largest single request; and each zone that
/// sovereignty-restricted jobs are confined to gets at least `factor ×` the peak of that
/// restricted demand (otherwise no policy could run it on time).
pub fn size_east_west(specs: &[JobSpec], factor: f64) -> EastWestOptions {
    let (peaks, largest) = demand_profile(specs);
    let min_share = EAST_WEST_SITES
        .iter()
        .map(|r| r.share)
        .fold(f64::INFINITY, f64::min);
    let total = |k: usize| {
        (factor * peaks[k])
            .max(largest[k] / min_share)
            .max(1.0)
            .ceil()
    };
    let mut zone_floor = std::collections::BTreeMap::new();
    let mut zones: Vec<&String> = specs
        .iter()
        .filter(|s| s.allowed_zones.len() == 1)
        .map(|s| &s.allowed_zones[0])
        .collect();
    zones.sort();
    zones.dedup();
    for zone in zones {
        let confined: Vec<JobSpec> = specs
            .iter()
            .filter(|s| s.allowed_zones.len() == 1 && s.allowed_zones[0] == *zone)
            .cloned()
            .collect();
        let (zone_peaks, _) = demand_profile(&confined);
        zone_floor.insert(zone.clone(), zone_peaks.map(|p| (factor * p).ceil()));
    }
    EastWestOptions {
        gpus: total(0),
        cpu_cores: total(1),
        memory_gib: total(2),
        zone_floor,
        ..EastWestOptions::default()
    }
}

/// Replays the trace CSV over the east/west site set under every policy.
pub fn trace_benchmark(
    trace_csv: &str,
    opts: &TraceBenchOptions,
) -> Result<TraceBenchReport, TraceError> {
    let pods = parse_pods(trace_csv)?;
    let (specs, stats) = pods_to_specs(&pods, &opts.augment);
    let sizing = size_east_west(&specs, opts.capacity_factor);
    let world = east_west(&sizing);
    let (jobs, rejected) = validate_all(&world, &specs);
    let comparison = Comparison::run(&world, &jobs, &opts.sim, opts.with_lp);
    let goals = comparison.goals();
    Ok(TraceBenchReport {
        mapping: stats.into(),
        rejected,
        capacity: (sizing.gpus, sizing.cpu_cores, sizing.memory_gib),
        comparison,
        goals,
    })
}
