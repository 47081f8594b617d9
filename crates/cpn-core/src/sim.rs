//! Trace-driven simulator: replays jobs in arrival order through the engine under one policy and
//! measures the resulting plan.
//!
//! The simulation is discrete-event over arrivals: jobs run exactly for their duration, so the
//! plan *is* the execution, and metrics are read from the final placements. With the cost-aware
//! policy, the engine re-optimises every `reopt_interval_s` of simulated time (jobs not yet
//! started may move). Every metric that checks a hard constraint is recomputed here from the
//! placements, independently of the engine's own bookkeeping: sovereignty from each job's zone
//! mask, over-commitment from a fresh per-slot recount of every reservation.

use serde::Serialize;

use crate::cost::CostWeights;
use crate::engine::{Engine, EngineConfig, Placement, Policy};
use crate::job::Job;
use crate::lp::{LpBound, LpOptions, lower_bound};
use crate::world::World;

/// Simulation options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimOptions {
    /// Objective weights.
    pub weights: CostWeights,
    /// Re-optimisation period for the cost-aware policy (None: never).
    pub reopt_interval_s: Option<i64>,
    /// Slot length, s.
    pub slot_s: i64,
    /// Extra horizon after the last job could finish, s.
    pub horizon_margin_s: i64,
    /// Recount every slot to check for over-commitment.
    pub check_overcommit: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            weights: CostWeights::default(),
            reopt_interval_s: Some(3600),
            slot_s: 600,
            horizon_margin_s: 14 * 86_400,
            check_overcommit: true,
        }
    }
}

/// Metrics of one policy's plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimReport {
    /// Policy name.
    pub policy: &'static str,
    /// Jobs submitted.
    pub jobs: usize,
    /// Jobs placed.
    pub placed: usize,
    /// Jobs that found no capacity within the horizon.
    pub unplaced: usize,
    /// Total weighted cost (the objective), CNY.
    pub total_cost: f64,
    /// Money: compute + transfer, CNY.
    pub money_cny: f64,
    /// Carbon, kg CO2.
    pub carbon_kg: f64,
    /// Energy at the meter, kWh.
    pub energy_kwh: f64,
    /// Bytes moved between regions.
    pub bytes_moved: u64,
    /// Jobs that finished after their deadline (unplaced jobs count as misses).
    pub deadline_misses: usize,
    /// Mean wait from arrival to start, s.
    pub mean_wait_s: f64,
    /// 95th-percentile wait, s.
    pub p95_wait_s: f64,
    /// GPU-time used over GPU-time offered between the first arrival and the last finish.
    pub gpu_utilisation: f64,
    /// Same for cores.
    pub cpu_utilisation: f64,
    /// Placements outside the job's allowed zones.
    pub sovereignty_violations: usize,
    /// (site, resource, slot) triples over capacity (None if not checked).
    pub overcommitted_slots: Option<usize>,
    /// Jobs moved by re-optimisation.
    pub reopt_moves: usize,
    /// Placement decisions made.
    pub decisions: u64,
}

/// Engine configuration that covers `jobs` with slots of `opts.slot_s`.
pub fn engine_config(jobs: &[Job], policy: Policy, opts: &SimOptions) -> EngineConfig {
    let origin = jobs.iter().map(|j| j.arrival_s).min().unwrap_or(0);
    let end = jobs
        .iter()
        .map(|j| j.arrival_s.saturating_add(j.duration_s))
        .max()
        .unwrap_or(origin);
    let slot_s = opts.slot_s.max(1);
    let span = (end - origin)
        .saturating_add(opts.horizon_margin_s)
        .max(slot_s);
    let slots = ((span + slot_s - 1) / slot_s) as usize;
    EngineConfig {
        slot_s,
        slots,
        origin_s: origin,
        weights: opts.weights,
        policy,
    }
}

/// Replays `jobs` (any order; sorted by arrival here) under `policy`.
pub fn simulate(
    world: &World,
    jobs: &[Job],
    policy: Policy,
    opts: &SimOptions,
) -> (SimReport, Vec<Option<Placement>>) {
    let cfg = engine_config(jobs, policy, opts);
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&i| (jobs[i].arrival_s, i));
    let mut engine = Engine::new(world, cfg);
    let mut reopt_moves = 0;
    let reopt = if policy == Policy::CostAware {
        opts.reopt_interval_s.filter(|i| *i > 0)
    } else {
        None
    };
    let mut next_reopt = reopt.map(|i| cfg.origin_s + i);
    // Engine handles are assigned in placement order; map them back to input order.
    let mut placements: Vec<Option<Placement>> = vec![None; jobs.len()];
    let mut handle_of = vec![usize::MAX; jobs.len()];
    for &i in &order {
        let job = &jobs[i];
        if let (Some(interval), Some(at)) = (reopt, next_reopt.as_mut()) {
            while *at <= job.arrival_s {
                reopt_moves += engine.reoptimise(*at);
                *at += interval;
            }
        }
        let handle = engine.jobs().len();
        let _ = engine.place(job.clone(), job.arrival_s);
        handle_of[i] = handle;
    }
    for (i, h) in handle_of.iter().enumerate() {
        placements[i] = engine.placements().get(*h).copied().flatten();
    }
    let mut report = measure(
        world,
        jobs,
        &placements,
        policy,
        opts.check_overcommit.then_some(&cfg),
    );
    report.reopt_moves = reopt_moves;
    report.decisions = engine.decisions();
    (report, placements)
}

/// Measures a plan. `slots` (if given) enables the over-commitment recount on that slot grid.
pub fn measure(
    world: &World,
    jobs: &[Job],
    placements: &[Option<Placement>],
    policy: Policy,
    slots: Option<&EngineConfig>,
) -> SimReport {
    let mut r = SimReport {
        policy: policy.name(),
        jobs: jobs.len(),
        placed: 0,
        unplaced: 0,
        total_cost: 0.0,
        money_cny: 0.0,
        carbon_kg: 0.0,
        energy_kwh: 0.0,
        bytes_moved: 0,
        deadline_misses: 0,
        mean_wait_s: 0.0,
        p95_wait_s: 0.0,
        gpu_utilisation: 0.0,
        cpu_utilisation: 0.0,
        sovereignty_violations: 0,
        overcommitted_slots: None,
        reopt_moves: 0,
        decisions: 0,
    };
    let mut waits = Vec::with_capacity(jobs.len());
    let (mut gpu_used, mut cpu_used) = (0.0, 0.0);
    let first = jobs.iter().map(|j| j.arrival_s).min().unwrap_or(0);
    let mut last = first;
    for (job, p) in jobs.iter().zip(placements) {
        let Some(p) = p else {
            r.unplaced += 1;
            r.deadline_misses += 1;
            continue;
        };
        r.placed += 1;
        r.total_cost += p.cost.total;
        r.money_cny += p.cost.fixed.compute_cny + p.cost.fixed.transfer_cny;
        r.carbon_kg += p.cost.fixed.carbon_kg;
        r.energy_kwh += p.cost.fixed.energy_kwh;
        r.bytes_moved += p.cost.fixed.bytes_moved;
        if p.end_s > job.deadline_s {
            r.deadline_misses += 1;
        }
        waits.push((p.start_s - job.arrival_s) as f64);
        gpu_used += job.demand.gpu_milli as f64 * job.duration_s as f64;
        cpu_used += job.demand.cpu_milli as f64 * job.duration_s as f64;
        last = last.max(p.end_s);
        let zone = world.sites.get(p.site).map_or(usize::MAX, |s| s.zone);
        if !job.allows_zone(zone) {
            r.sovereignty_violations += 1;
        }
    }
    if !waits.is_empty() {
        r.mean_wait_s = waits.iter().sum::<f64>() / waits.len() as f64;
        waits.sort_by(f64::total_cmp);
        let idx = ((waits.len() as f64 * 0.95).ceil() as usize).clamp(1, waits.len()) - 1;
        r.p95_wait_s = waits[idx];
    }
    let span = (last - first).max(1) as f64;
    let gpu_cap: u64 = world
        .sites
        .iter()
        .flat_map(|s| s.gpus.iter().map(|g| g.1))
        .sum();
    let cpu_cap: u64 = world.sites.iter().map(|s| s.cpu_milli).sum();
    if gpu_cap > 0 {
        r.gpu_utilisation = gpu_used / (gpu_cap as f64 * span);
    }
    if cpu_cap > 0 {
        r.cpu_utilisation = cpu_used / (cpu_cap as f64 * span);
    }
    r.overcommitted_slots = slots.map(|cfg| overcommitted_slots(world, jobs, placements, cfg));
    r
}

/// Recounts committed usage per (site, resource, slot) from the placements' start and end times
/// with difference arrays, and returns how many triples exceed capacity.
pub fn overcommitted_slots(
    world: &World,
    jobs: &[Job],
    placements: &[Option<Placement>],
    cfg: &EngineConfig,
) -> usize {
    let slot_s = cfg.slot_s.max(1);
    let n = cfg.slots + 2;
    let mut bad = 0;
    for (s, site) in world.sites.iter().enumerate() {
        // Dimensions: cpu, memory, then each GPU model offered.
        let mut caps: Vec<(Option<u8>, i64)> =
            vec![(None, site.cpu_milli as i64), (None, site.mem_mib as i64)];
        caps.extend(site.gpus.iter().map(|(m, c)| (Some(*m), *c as i64)));
        let mut diffs = vec![vec![0i64; n]; caps.len()];
        for (job, p) in jobs.iter().zip(placements) {
            let Some(p) = p.filter(|p| p.site == s) else {
                continue;
            };
            let lo = ((p.start_s - cfg.origin_s).max(0) / slot_s) as usize;
            let hi = ((p.end_s - cfg.origin_s).max(0) + slot_s - 1) as usize / slot_s as usize;
            let (lo, hi) = (lo.min(n - 1), hi.min(n - 1));
            let amounts = [job.demand.cpu_milli as i64, job.demand.mem_mib as i64];
            for (d, (model, _)) in caps.iter().enumerate() {
                let amount = match model {
                    None => amounts[d.min(1)],
                    Some(m) if p.gpu_model == Some(*m) => job.demand.gpu_milli as i64,
                    Some(_) => 0,
                };
                diffs[d][lo] += amount;
                diffs[d][hi] -= amount;
            }
        }
        for (d, (_, cap)) in caps.iter().enumerate() {
            let mut level = 0;
            for delta in &diffs[d] {
                level += delta;
                if level > *cap {
                    bad += 1;
                }
            }
        }
    }
    bad
}

/// The comparison of every policy on one workload, with the LP bound.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// One row per policy, ours first.
    pub rows: Vec<SimReport>,
    /// LP lower bound on total cost.
    pub lp_bound: Option<f64>,
    /// Capacity-free bound.
    pub capacity_free_bound: Option<f64>,
    /// LP details (solver, size).
    pub lp_solver: Option<&'static str>,
    /// LP columns and rows.
    pub lp_size: Option<(usize, usize)>,
}

/// Goals of issue 7 checked against a comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Goals {
    /// (ours − LP) / LP.
    pub cost_gap_vs_lp: Option<f64>,
    /// Greedy's gap, for context.
    pub greedy_cost_gap_vs_lp: Option<f64>,
    /// Our misses / greedy's misses.
    pub miss_ratio_vs_greedy: f64,
    /// 1 − our CO2 / greedy's CO2.
    pub co2_reduction_vs_greedy: f64,
    /// 1 − our bytes / greedy's bytes.
    pub bytes_reduction_vs_greedy: f64,
    /// 1 − our bytes / cheapest-price's bytes ("ship all data to the cheapest site").
    pub bytes_reduction_vs_cheapest: f64,
    /// Our cost relative to cheapest-price's (compute.md goal 5 asks for ≤ +3 %).
    pub cost_vs_cheapest: f64,
    /// Sovereignty violations over all policies.
    pub sovereignty_violations: usize,
    /// Over-committed slots over all policies.
    pub overcommitted_slots: usize,
    /// All issue-7 thresholds met.
    pub all_met: bool,
}

impl Comparison {
    /// Runs every policy and the LP bound.
    pub fn run(world: &World, jobs: &[Job], opts: &SimOptions, with_lp: bool) -> Self {
        let rows = Policy::ALL
            .iter()
            .map(|p| simulate(world, jobs, *p, opts).0)
            .collect();
        let lp: Option<LpBound> = with_lp.then(|| {
            lower_bound(
                world,
                jobs,
                &LpOptions {
                    weights: opts.weights,
                    ..LpOptions::default()
                },
            )
        });
        Self {
            rows,
            lp_bound: lp.as_ref().map(|l| l.value),
            capacity_free_bound: lp.as_ref().map(|l| l.capacity_free),
            lp_solver: lp.as_ref().map(|l| l.solver),
            lp_size: lp.as_ref().map(|l| (l.columns, l.rows)),
        }
    }

    /// The row of `policy`.
    pub fn row(&self, policy: Policy) -> Option<&SimReport> {
        self.rows.iter().find(|r| r.policy == policy.name())
    }

    /// Checks the issue-7 goals.
    pub fn goals(&self) -> Option<Goals> {
        let ours = self.row(Policy::CostAware)?;
        let greedy = self.row(Policy::KarmadaGreedy)?;
        let cheapest = self.row(Policy::CheapestPrice)?;
        let ratio = |a: f64, b: f64| {
            if b > 0.0 {
                a / b
            } else if a > 0.0 {
                f64::INFINITY
            } else {
                0.0
            }
        };
        let gap = |c: f64| self.lp_bound.filter(|b| *b > 0.0).map(|b| (c - b) / b);
        let cost_gap_vs_lp = gap(ours.total_cost);
        let miss_ratio = ratio(ours.deadline_misses as f64, greedy.deadline_misses as f64);
        let co2 = 1.0 - ratio(ours.carbon_kg, greedy.carbon_kg);
        let bytes = 1.0 - ratio(ours.bytes_moved as f64, greedy.bytes_moved as f64);
        let sov: usize = self.rows.iter().map(|r| r.sovereignty_violations).sum();
        let over: usize = self.rows.iter().filter_map(|r| r.overcommitted_slots).sum();
        let all_met = cost_gap_vs_lp.is_some_and(|g| g <= 0.05)
            && (ours.deadline_misses as f64) <= 0.5 * greedy.deadline_misses as f64
            && co2 >= 0.25
            && bytes >= 0.5
            && sov == 0
            && over == 0;
        Some(Goals {
            cost_gap_vs_lp,
            greedy_cost_gap_vs_lp: gap(greedy.total_cost),
            miss_ratio_vs_greedy: miss_ratio,
            co2_reduction_vs_greedy: co2,
            bytes_reduction_vs_greedy: bytes,
            bytes_reduction_vs_cheapest: 1.0
                - ratio(ours.bytes_moved as f64, cheapest.bytes_moved as f64),
            cost_vs_cheapest: ratio(ours.total_cost, cheapest.total_cost) - 1.0,
            sovereignty_violations: sov,
            overcommitted_slots: over,
            all_met,
        })
    }

    /// The comparison as a Markdown table.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| policy | total cost (CNY) | money (CNY) | CO2 (t) | cross-region TB | deadline misses | mean wait (min) | p95 wait (min) | GPU util | sovereignty violations |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for r in &self.rows {
            out.push_str(&format!(
                "| {} | {:.0} | {:.0} | {:.2} | {:.2} | {} | {:.1} | {:.1} | {:.1} % | {} |\n",
                r.policy,
                r.total_cost,
                r.money_cny,
                r.carbon_kg / 1000.0,
                r.bytes_moved as f64 / 1e12,
                r.deadline_misses,
                r.mean_wait_s / 60.0,
                r.p95_wait_s / 60.0,
                r.gpu_utilisation * 100.0,
                r.sovereignty_violations,
            ));
        }
        if let Some(lp) = self.lp_bound {
            out.push_str(&format!(
                "| LP lower bound ({}) | {:.0} | | | | | | | | |\n",
                self.lp_solver.unwrap_or("?"),
                lp
            ));
        }
        out
    }

    /// The comparison as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}
