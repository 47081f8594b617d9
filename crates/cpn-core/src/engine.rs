//! The placement engine: decides where (site, GPU model) and when (start time) each job runs.
//!
//! **Online.** [`Engine::place`] handles one job as it arrives. For the cost-aware policy it
//! enumerates the job's options (allowed site × acceptable GPU model), computes each option's
//! static cost plus the lateness it would incur if it started as soon as its input arrived (a
//! lower bound for that option, since lateness only grows with a later start), and walks the
//! options in increasing bound, asking the site's capacity timeline for the earliest feasible
//! start. It stops as soon as the next bound cannot beat the best complete cost found, so a
//! typical decision probes one or two timelines.
//!
//! **Hard constraints.** Sovereignty (a job only ever sees sites in its allowed zones) and
//! capacity over time (a reservation is committed only where every slot it covers has room) are
//! never traded against cost. Deadlines are soft with a steep penalty: a job whose deadline cannot
//! be met given the current load is still placed, at its least-bad option, and counted as a miss.
//!
//! **Re-optimisation.** [`Engine::reoptimise`] revisits every job that has not started yet, in
//! priority order, releasing its reservation and placing it again. The old option is always still
//! available at the same cost, so each job's cost never rises and the plan's total cost is
//! non-increasing.
//!
//! **Baselines.** The same engine runs the baselines, so every policy sees the same capacity
//! model: [`Policy::KarmadaGreedy`] (filter by sovereignty and free capacity, pick the site with
//! the most available replicas, as Karmada's `dynamicWeight: AvailableReplicas` does),
//! [`Policy::CheapestPrice`] and [`Policy::LowestCarbon`]. When no site has free capacity now, a
//! baseline queues the job at the site where it can start earliest.

use crate::cost::{CostBreakdown, CostWeights, StaticCost, breakdown, lateness_penalty, wait_cost};
use crate::error::PlaceError;
use crate::job::Job;
use crate::timeline::{DimRequest, SiteTimeline};
use crate::world::{GpuModelIdx, World};

/// Placement policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Policy {
    /// Ours: minimise the weighted cost (money, carbon, data, lateness).
    CostAware,
    /// Karmada-style greedy: first cluster with free capacity, weighted by available replicas.
    KarmadaGreedy,
    /// Cheapest compute price among sites with free capacity.
    CheapestPrice,
    /// Lowest carbon among sites with free capacity.
    LowestCarbon,
}

impl Policy {
    /// Every policy, ours first.
    pub const ALL: [Policy; 4] = [
        Policy::CostAware,
        Policy::KarmadaGreedy,
        Policy::CheapestPrice,
        Policy::LowestCarbon,
    ];

    /// Short name used in tables and charts.
    pub fn name(self) -> &'static str {
        match self {
            Policy::CostAware => "cost-aware (ours)",
            Policy::KarmadaGreedy => "karmada-greedy",
            Policy::CheapestPrice => "cheapest-price",
            Policy::LowestCarbon => "lowest-carbon",
        }
    }
}

/// Engine configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineConfig {
    /// Slot length in seconds.
    pub slot_s: i64,
    /// Number of slots in the planning horizon.
    pub slots: usize,
    /// Time of slot 0.
    pub origin_s: i64,
    /// Objective weights.
    pub weights: CostWeights,
    /// Policy.
    pub policy: Policy,
}

impl EngineConfig {
    /// A configuration covering `[origin_s, end_s)` with at most `max_slots` slots.
    pub fn covering(origin_s: i64, end_s: i64, max_slots: usize, policy: Policy) -> Self {
        let span = (end_s - origin_s).max(1);
        let max_slots = max_slots.max(1);
        let slot_s = ((span + max_slots as i64 - 1) / max_slots as i64).max(1);
        let slots = ((span + slot_s - 1) / slot_s) as usize;
        Self {
            slot_s,
            slots,
            origin_s,
            weights: CostWeights::default(),
            policy,
        }
    }
}

/// A decided placement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    /// Site index.
    pub site: usize,
    /// GPU model used (None for CPU-only jobs).
    pub gpu_model: Option<GpuModelIdx>,
    /// When the input is at the site.
    pub ready_s: i64,
    /// Start time.
    pub start_s: i64,
    /// End time (`start + duration`).
    pub end_s: i64,
    /// First reserved slot.
    pub lo_slot: usize,
    /// One past the last reserved slot.
    pub hi_slot: usize,
    /// Cost breakdown.
    pub cost: CostBreakdown,
}

#[derive(Debug, Clone, Copy)]
struct Option_ {
    site: usize,
    model: Option<GpuModelIdx>,
    fixed: StaticCost,
    ready_s: i64,
    bound: f64,
}

/// Per-site figures the hot path needs, flattened from [`World`] once.
#[derive(Debug, Clone)]
struct SiteRates {
    region: usize,
    zone: usize,
    cpu_milli: u64,
    mem_mib: u64,
    cpu_price: f64,
    mem_price: f64,
    pue: f64,
    kg_per_kwh: f64,
    gpus: Vec<GpuRate>,
}

#[derive(Debug, Clone, Copy)]
struct GpuRate {
    model: GpuModelIdx,
    capacity: u64,
    price: f64,
    watts: f64,
}

/// Handle of a job inside the engine.
pub type JobHandle = usize;

/// The engine. Borrows the world; owns timelines, jobs and placements.
#[derive(Debug, Clone)]
pub struct Engine<'w> {
    world: &'w World,
    cfg: EngineConfig,
    timelines: Vec<SiteTimeline>,
    /// Per site: dimension of each GPU model (`u8::MAX` = not offered).
    gpu_dim: Vec<[u8; 32]>,
    site_up: Vec<bool>,
    jobs: Vec<Job>,
    placements: Vec<Option<Placement>>,
    scratch: Vec<Option_>,
    xfer_scratch: Vec<(f64, f64)>,
    rates: Vec<SiteRates>,
    decisions: u64,
    /// Per site and dimension: decaying sum of resource-seconds submitted by jobs confined to
    /// zones this site serves (see [`Engine::note_confined`]).
    confined: Vec<Vec<f64>>,
    confined_at: i64,
}

/// Time constant of the confined-demand estimate, s.
const CONFINED_TAU_S: f64 = 24.0 * 3600.0;
/// Capacity held back for confined work, as a multiple of its estimated load.
const CONFINED_HEADROOM: f64 = 1.5;

const CPU_DIM: usize = 0;
const MEM_DIM: usize = 1;

impl<'w> Engine<'w> {
    /// An empty plan over `world`.
    pub fn new(world: &'w World, cfg: EngineConfig) -> Self {
        let mut timelines = Vec::with_capacity(world.sites.len());
        let mut gpu_dim = Vec::with_capacity(world.sites.len());
        for site in &world.sites {
            let mut caps = vec![site.cpu_milli as i64, site.mem_mib as i64];
            let mut dims = [u8::MAX; 32];
            for (model, cap) in &site.gpus {
                if let Some(d) = dims.get_mut(usize::from(*model)) {
                    *d = caps.len() as u8;
                }
                caps.push(*cap as i64);
            }
            timelines.push(SiteTimeline::new(caps, cfg.slots));
            gpu_dim.push(dims);
        }
        let rates = world
            .sites
            .iter()
            .map(|site| SiteRates {
                region: site.region,
                zone: site.zone,
                cpu_milli: site.cpu_milli,
                mem_mib: site.mem_mib,
                cpu_price: site.price_cpu_core_hour,
                mem_price: site.price_mem_gib_hour,
                pue: site.pue,
                kg_per_kwh: site.effective_kg_per_kwh(),
                gpus: site
                    .gpus
                    .iter()
                    .zip(&site.price_gpu_hour)
                    .map(|((model, capacity), price)| GpuRate {
                        model: *model,
                        capacity: *capacity,
                        price: *price,
                        watts: world
                            .gpu_models
                            .get(usize::from(*model))
                            .map_or(0.0, |g| g.watts),
                    })
                    .collect(),
            })
            .collect();
        Self {
            world,
            cfg,
            timelines,
            gpu_dim,
            site_up: vec![true; world.sites.len()],
            jobs: Vec::new(),
            placements: Vec::new(),
            scratch: Vec::new(),
            xfer_scratch: Vec::new(),
            confined: world
                .sites
                .iter()
                .map(|s| vec![0.0; 2 + s.gpus.len()])
                .collect(),
            confined_at: cfg.origin_s,
            rates,
            decisions: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// The world.
    pub fn world(&self) -> &'w World {
        self.world
    }

    /// Jobs submitted so far, by handle.
    pub fn jobs(&self) -> &[Job] {
        &self.jobs
    }

    /// Placements by handle (`None`: not placed).
    pub fn placements(&self) -> &[Option<Placement>] {
        &self.placements
    }

    /// Number of placement decisions made (initial and re-optimisation).
    pub fn decisions(&self) -> u64 {
        self.decisions
    }

    /// The capacity timeline of site `site`.
    pub fn timeline(&self, site: usize) -> Option<&SiteTimeline> {
        self.timelines.get(site)
    }

    fn slot_floor(&self, t: i64) -> usize {
        ((t - self.cfg.origin_s).max(0) / self.cfg.slot_s) as usize
    }

    fn slot_ceil(&self, t: i64) -> usize {
        let rel = (t - self.cfg.origin_s).max(0);
        ((rel + self.cfg.slot_s - 1) / self.cfg.slot_s) as usize
    }

    fn requests(
        &self,
        job: &Job,
        site: usize,
        model: Option<GpuModelIdx>,
        out: &mut [DimRequest; 3],
    ) -> usize {
        out[0] = (CPU_DIM, job.demand.cpu_milli as i64);
        out[1] = (MEM_DIM, job.demand.mem_mib as i64);
        let mut n = 2;
        if let Some(m) = model {
            let dim = self
                .gpu_dim
                .get(site)
                .and_then(|d| d.get(usize::from(m)))
                .copied()
                .unwrap_or(u8::MAX);
            out[2] = (usize::from(dim), job.demand.gpu_milli as i64);
            n = 3;
        }
        n
    }

    /// Earliest feasible start at (site, model) no earlier than `ready_s`:
    /// `(start, lo_slot, hi_slot)`.
    fn earliest_start(
        &self,
        job: &Job,
        site: usize,
        model: Option<GpuModelIdx>,
        ready_s: i64,
        latest_start_s: i64,
    ) -> Option<(i64, usize, usize)> {
        let tl = self.timelines.get(site)?;
        let mut reqs = [(0, 0); 3];
        let n = self.requests(job, site, model, &mut reqs);
        // Cost-aware placement of a job that may run anywhere keeps the capacity that jobs confined
        // to this site's zone are expected to need: it checks for room as if it asked for that
        // much more (the commit uses the real amounts).
        if self.cfg.policy == Policy::CostAware && job.zones == u64::MAX {
            for r in reqs[..n].iter_mut() {
                r.1 += self.reserve(site, r.0);
            }
        }
        let reqs = &reqs[..n];
        let ready_s = ready_s.max(self.cfg.origin_s);
        if ready_s > latest_start_s {
            return None;
        }
        let r = self.slot_floor(ready_s);
        let hi_r = self.slot_ceil(ready_s + job.duration_s);
        if hi_r <= tl.slots() && tl.blocking_slot(r, hi_r, reqs).is_none() {
            return Some((ready_s, r, hi_r));
        }
        let len = ((job.duration_s + self.cfg.slot_s - 1) / self.cfg.slot_s) as usize;
        let max_slot = if latest_start_s == i64::MAX {
            usize::MAX
        } else {
            ((latest_start_s - self.cfg.origin_s).max(0) / self.cfg.slot_s) as usize
        };
        let t = tl.earliest_fit(r + 1, len, max_slot, reqs)?;
        Some((self.cfg.origin_s + t as i64 * self.cfg.slot_s, t, t + len))
    }

    /// Capacity of `dim` at `site` held back for confined jobs: 1.5 × their estimated load.
    fn reserve(&self, site: usize, dim: usize) -> i64 {
        let acc = self
            .confined
            .get(site)
            .and_then(|d| d.get(dim))
            .copied()
            .unwrap_or(0.0);
        (CONFINED_HEADROOM * acc / CONFINED_TAU_S).round() as i64
    }

    /// Updates the decaying estimate of demand confined to each site's zone with `job` (no-op for
    /// jobs that may run anywhere). The estimate is spread over the job's allowed sites.
    fn note_confined(&mut self, job: &Job, now_s: i64) {
        let dt = (now_s - self.confined_at).max(0) as f64;
        if dt > 0.0 {
            let decay = (-dt / CONFINED_TAU_S).exp();
            self.confined.iter_mut().flatten().for_each(|v| *v *= decay);
            self.confined_at = now_s;
        }
        if job.zones == u64::MAX {
            return;
        }
        let sites: Vec<usize> = (0..self.rates.len())
            .filter(|s| self.rates.get(*s).is_some_and(|r| job.allows_zone(r.zone)))
            .collect();
        if sites.is_empty() {
            return;
        }
        let share = job.duration_s as f64 / sites.len() as f64;
        for s in sites {
            let Some(acc) = self.confined.get_mut(s) else {
                continue;
            };
            acc[CPU_DIM] += job.demand.cpu_milli as f64 * share;
            acc[MEM_DIM] += job.demand.mem_mib as f64 * share;
            if job.demand.gpu_milli > 0 {
                // Spread over the models the job accepts at this site.
                let dims: Vec<usize> = self.gpu_dim[s]
                    .iter()
                    .enumerate()
                    .filter(|(m, d)| **d != u8::MAX && job.demand.accepts_model(*m as u8))
                    .map(|(_, d)| usize::from(*d))
                    .collect();
                for d in &dims {
                    if let Some(v) = acc.get_mut(*d) {
                        *v += job.demand.gpu_milli as f64 * share / dims.len() as f64;
                    }
                }
            }
        }
    }

    /// Available replicas of the job at (site, model) in `slot` (Karmada's estimator view).
    fn available_replicas(
        &self,
        job: &Job,
        site: usize,
        model: Option<GpuModelIdx>,
        slot: usize,
    ) -> f64 {
        let Some(tl) = self.timelines.get(site) else {
            return 0.0;
        };
        let mut reqs = [(0, 0); 3];
        let n = self.requests(job, site, model, &mut reqs);
        reqs[..n]
            .iter()
            .filter(|(_, amount)| *amount > 0)
            .map(|&(dim, amount)| {
                let free = tl.capacity.get(dim).copied().unwrap_or(0) - tl.used(dim, slot);
                free as f64 / amount as f64
            })
            .fold(f64::INFINITY, f64::min)
    }

    fn collect_options(&mut self, job: &Job, now_s: i64, keep: Option<Placement>) {
        let mut options = std::mem::take(&mut self.scratch);
        options.clear();
        let world = self.world;
        let w = self.cfg.weights;
        // Per-job constants, computed once instead of once per option.
        let hours = job.duration_s as f64 / 3600.0;
        let cores = job.demand.cpu_milli as f64 / 1000.0;
        let gib = job.demand.mem_mib as f64 / 1024.0;
        let gpus = job.demand.gpu_milli as f64 / 1000.0;
        let base_watts = cores * world.cpu_core_watts + gib * world.memory_gib_watts;
        let gb = job.data_bytes as f64 / 1e9;
        let mut xfer = std::mem::take(&mut self.xfer_scratch);
        xfer.clear();
        xfer.extend((0..world.regions.len()).map(|r| {
            let link = world.link(job.data_region, r);
            (
                world.transfer_seconds(job.data_region, r, job.data_bytes),
                gb * link.cny_per_gb,
            )
        }));
        let start = job.arrival_s.max(now_s);
        for (s, rates) in self.rates.iter().enumerate() {
            if !self.site_up.get(s).copied().unwrap_or(false)
                || !job.allows_zone(rates.zone)
                || job.demand.cpu_milli > rates.cpu_milli
                || job.demand.mem_mib > rates.mem_mib
            {
                continue;
            }
            let (transfer_s, transfer_cny) = xfer.get(rates.region).copied().unwrap_or((0.0, 0.0));
            let cross = rates.region != job.data_region;
            let bytes_moved = if cross { job.data_bytes } else { 0 };
            let moved_gb = if cross { gb } else { 0.0 };
            let base_cny = hours * (cores * rates.cpu_price + gib * rates.mem_price);
            let mut push = |model: Option<GpuModelIdx>, gpu_price: f64, gpu_watts: f64| {
                let compute_cny = base_cny + hours * gpus * gpu_price;
                let energy_kwh = hours * (base_watts + gpus * gpu_watts) / 1000.0 * rates.pue;
                let carbon_kg = energy_kwh * rates.kg_per_kwh;
                let weighted = compute_cny
                    + transfer_cny
                    + w.carbon_cny_per_kg * carbon_kg
                    + w.data_cny_per_gb * moved_gb;
                let fixed = StaticCost {
                    compute_cny,
                    transfer_cny,
                    carbon_kg,
                    energy_kwh,
                    bytes_moved,
                    transfer_s,
                    weighted,
                };
                let ready_s = match keep {
                    Some(p) if p.site == s && p.gpu_model == model => p.ready_s,
                    _ => start + transfer_s.ceil() as i64,
                };
                let (_, pen) = lateness_penalty(&w, job, ready_s + job.duration_s);
                options.push(Option_ {
                    site: s,
                    model,
                    fixed,
                    ready_s,
                    bound: weighted + pen + wait_cost(&w, job, ready_s),
                });
            };
            if job.demand.gpu_milli == 0 {
                push(None, 0.0, 0.0);
            } else {
                for g in &rates.gpus {
                    if job.demand.accepts_model(g.model) && job.demand.gpu_milli <= g.capacity {
                        push(Some(g.model), g.price, g.watts);
                    }
                }
            }
        }
        self.xfer_scratch = xfer;
        self.scratch = options;
    }

    fn choose(&mut self, job: &Job) -> Option<Placement> {
        let mut options = std::mem::take(&mut self.scratch);
        let result = match self.cfg.policy {
            Policy::CostAware => self.choose_cost_aware(job, &mut options),
            Policy::KarmadaGreedy => self.choose_greedy(job, &options, |e, o| {
                -e.available_replicas(job, o.site, o.model, e.slot_floor(o.ready_s))
            }),
            Policy::CheapestPrice => self.choose_greedy(job, &options, |_, o| o.fixed.compute_cny),
            Policy::LowestCarbon => self.choose_greedy(job, &options, |_, o| o.fixed.carbon_kg),
        };
        self.scratch = options;
        result
    }

    /// Latest start at which an option with static cost `fixed` can still beat `best`
    /// (`i64::MAX`: no limit). Without a best yet, the limit is the on-time start (`on_time`).
    /// The start-dependent cost is piecewise linear and non-decreasing: `a × wait` before the
    /// on-time start, plus `miss + b × lateness` after it.
    fn latest_useful_start(&self, job: &Job, fixed: f64, best: Option<f64>, on_time: bool) -> i64 {
        let on_time_start = job.deadline_s.saturating_sub(job.duration_s);
        let Some(best) = best else {
            return if on_time { on_time_start } else { i64::MAX };
        };
        if fixed >= best {
            return i64::MIN;
        }
        let w = &self.cfg.weights;
        let priority = f64::from(job.priority);
        let a = priority * w.wait_cny_per_hour / 3600.0;
        let b = priority * w.late_cny_per_hour / 3600.0;
        let miss = priority * w.miss_penalty_cny;
        let clamp = |t: f64| {
            if t >= 9.0e15 {
                i64::MAX
            } else {
                t.floor() as i64
            }
        };
        if a > 0.0 {
            let t = job.arrival_s as f64 + (best - fixed) / a;
            if t <= on_time_start as f64 {
                return clamp(t);
            }
        }
        let at_deadline = fixed + a * (on_time_start - job.arrival_s).max(0) as f64 + miss;
        if at_deadline >= best {
            return on_time_start;
        }
        if a + b <= 0.0 {
            return i64::MAX;
        }
        clamp(on_time_start as f64 + (best - at_deadline) / (a + b))
    }

    /// Probes options in increasing lower bound (by repeated minimum selection: usually the first
    /// probe starts on time and ends the search, so a full sort would be wasted work). Each probe's
    /// timeline search stops at the latest start that could still beat the best so far; while no
    /// best exists, only on-time starts are searched, and the options that had none are searched
    /// again without that limit at the end, so the result is the exact minimum over all options.
    fn choose_cost_aware(&self, job: &Job, options: &mut [Option_]) -> Option<Placement> {
        let mut best: Option<Placement> = None;
        let mut deferred: Vec<usize> = Vec::new();
        loop {
            let mut next: Option<usize> = None;
            for (i, o) in options.iter().enumerate() {
                if o.bound.is_nan() {
                    continue; // already probed
                }
                if next.is_none_or(|n| o.bound < options[n].bound) {
                    next = Some(i);
                }
            }
            let Some(i) = next else { break };
            let o = options[i];
            options[i].bound = f64::NAN;
            if best.as_ref().is_some_and(|b| o.bound >= b.cost.total) {
                break;
            }
            let limit =
                self.latest_useful_start(job, o.fixed.weighted, best.map(|b| b.cost.total), true);
            if best.is_none() {
                deferred.push(i);
            }
            self.probe(job, &o, limit, &mut best);
        }
        // Options first probed on-time-only, before any best existed, may still win with a late
        // start.
        for i in deferred {
            let o = options[i];
            if best
                .as_ref()
                .is_some_and(|b| o.fixed.weighted >= b.cost.total)
            {
                continue;
            }
            let limit =
                self.latest_useful_start(job, o.fixed.weighted, best.map(|b| b.cost.total), false);
            let on_time_start = job.deadline_s.saturating_sub(job.duration_s);
            if limit <= on_time_start && best.is_some() {
                continue; // already searched up to here
            }
            self.probe(job, &o, limit, &mut best);
        }
        best
    }

    fn probe(&self, job: &Job, o: &Option_, limit: i64, best: &mut Option<Placement>) {
        let Some((start, lo, hi)) = self.earliest_start(job, o.site, o.model, o.ready_s, limit)
        else {
            return;
        };
        let cost = breakdown(&self.cfg.weights, job, o.fixed, start);
        if best.as_ref().is_none_or(|b| cost.total < b.cost.total) {
            *best = Some(Placement {
                site: o.site,
                gpu_model: o.model,
                ready_s: o.ready_s,
                start_s: start,
                end_s: start + job.duration_s,
                lo_slot: lo,
                hi_slot: hi,
                cost,
            });
        }
    }

    /// Baselines: among options that can start as soon as their input arrives, the one with the
    /// lowest `score`; otherwise the option that can start earliest.
    fn choose_greedy(
        &self,
        job: &Job,
        options: &[Option_],
        score: impl Fn(&Self, &Option_) -> f64,
    ) -> Option<Placement> {
        let mut best_free: Option<(f64, Placement)> = None;
        let mut best_queued: Option<Placement> = None;
        for o in options {
            let Some((start, lo, hi)) =
                self.earliest_start(job, o.site, o.model, o.ready_s, i64::MAX)
            else {
                continue;
            };
            let placement = Placement {
                site: o.site,
                gpu_model: o.model,
                ready_s: o.ready_s,
                start_s: start,
                end_s: start + job.duration_s,
                lo_slot: lo,
                hi_slot: hi,
                cost: breakdown(&self.cfg.weights, job, o.fixed, start),
            };
            if start == o.ready_s {
                let s = score(self, o);
                if best_free.as_ref().is_none_or(|(bs, _)| s < *bs) {
                    best_free = Some((s, placement));
                }
            } else if best_queued.as_ref().is_none_or(|b| start < b.start_s) {
                best_queued = Some(placement);
            }
        }
        best_free.map(|(_, p)| p).or(best_queued)
    }

    fn commit(&mut self, job: &Job, p: &Placement, sign: i64) {
        let mut reqs = [(0, 0); 3];
        let n = self.requests(job, p.site, p.gpu_model, &mut reqs);
        if let Some(tl) = self.timelines.get_mut(p.site) {
            tl.apply(p.lo_slot, p.hi_slot, &reqs[..n], sign);
        }
    }

    /// Places a newly arrived job (online decision at time `now_s`, normally its arrival).
    pub fn place(&mut self, job: Job, now_s: i64) -> Result<(JobHandle, Placement), PlaceError> {
        self.note_confined(&job, now_s);
        self.collect_options(&job, now_s, None);
        self.decisions += 1;
        let chosen = self.choose(&job);
        let handle = self.jobs.len();
        match chosen {
            Some(p) => {
                self.commit(&job, &p, 1);
                self.jobs.push(job);
                self.placements.push(Some(p));
                Ok((handle, p))
            }
            None => {
                let id = job.id.clone();
                self.jobs.push(job);
                self.placements.push(None);
                Err(PlaceError::NoCapacity { job: id })
            }
        }
    }

    /// Releases a job's reservation (cancellation). Returns the placement it had.
    pub fn cancel(&mut self, handle: JobHandle) -> Option<Placement> {
        let p = self.placements.get_mut(handle)?.take()?;
        let job = self.jobs.get(handle)?.clone();
        self.commit(&job, &p, -1);
        Some(p)
    }

    /// Revisits every job not yet started at `now_s` (priority first, then arrival) and moves it
    /// where its cost is lower. Returns how many jobs moved.
    pub fn reoptimise(&mut self, now_s: i64) -> usize {
        let mut pending: Vec<JobHandle> = self
            .placements
            .iter()
            .enumerate()
            .filter_map(|(h, p)| p.filter(|p| p.start_s > now_s).map(|_| h))
            .collect();
        pending.sort_by_key(|&h| {
            let j = &self.jobs[h];
            (std::cmp::Reverse(j.priority), j.arrival_s, h)
        });
        let mut moved = 0;
        for h in pending {
            let (Some(job), Some(Some(old))) =
                (self.jobs.get(h).cloned(), self.placements.get(h).copied())
            else {
                continue;
            };
            self.commit(&job, &old, -1);
            self.collect_options(&job, now_s, Some(old));
            self.decisions += 1;
            let candidate = self.choose(&job);
            let new = match candidate {
                Some(p) if p.cost.total < old.cost.total - 1e-9 => {
                    moved += 1;
                    p
                }
                _ => old,
            };
            self.commit(&job, &new, 1);
            self.placements[h] = Some(new);
        }
        moved
    }

    /// Marks a site down (its agent disappeared) at `now_s`: every job there that has not
    /// finished is released and placed again elsewhere, restarting from scratch. Returns the
    /// handles of the jobs that could not be placed anywhere.
    pub fn site_down(&mut self, site: usize, now_s: i64) -> Vec<JobHandle> {
        if let Some(up) = self.site_up.get_mut(site) {
            *up = false;
        }
        let affected: Vec<JobHandle> = self
            .placements
            .iter()
            .enumerate()
            .filter_map(|(h, p)| p.filter(|p| p.site == site && p.end_s > now_s).map(|_| h))
            .collect();
        let mut lost = Vec::new();
        for h in affected {
            let (Some(job), Some(Some(old))) =
                (self.jobs.get(h).cloned(), self.placements.get(h).copied())
            else {
                continue;
            };
            self.commit(&job, &old, -1);
            self.collect_options(&job, now_s, None);
            self.decisions += 1;
            match self.choose(&job) {
                Some(p) => {
                    self.commit(&job, &p, 1);
                    self.placements[h] = Some(p);
                }
                None => {
                    self.placements[h] = None;
                    lost.push(h);
                }
            }
        }
        lost
    }

    /// Marks a site up again (new placements may use it).
    pub fn site_up(&mut self, site: usize) {
        if let Some(up) = self.site_up.get_mut(site) {
            *up = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{DataRef, JobSpec};
    use crate::sites::{EastWestOptions, east_west};

    fn job(world: &World, id: &str, t: i64, hours: f64, gb: f64, zones: &[&str]) -> Job {
        JobSpec {
            id: id.into(),
            tenant: String::new(),
            submit_s: t,
            duration_s: hours * 3600.0,
            deadline_s: Some(t + (hours * 3600.0 * 3.0) as i64 + 3600),
            priority: 1,
            resources: [("cpu".to_owned(), 4.0), ("gpu".to_owned(), 1.0)]
                .into_iter()
                .collect(),
            gpu_models: vec![],
            input: Some(DataRef {
                region: "jingjinji".into(),
                size_gb: gb,
            }),
            allowed_zones: zones.iter().map(|z| (*z).to_owned()).collect(),
        }
        .validate(world)
        .unwrap()
    }

    fn cfg(policy: Policy) -> EngineConfig {
        EngineConfig::covering(0, 30 * 86_400, 4096, policy)
    }

    #[test]
    fn long_job_with_small_data_goes_west_short_job_with_big_data_stays() {
        let world = east_west(&EastWestOptions::default());
        let mut e = Engine::new(&world, cfg(Policy::CostAware));
        let (_, p) = e.place(job(&world, "long", 0, 48.0, 1.0, &[]), 0).unwrap();
        assert!(
            !crate::sites::EAST_WEST_SITES[p.site].east,
            "{}",
            world.sites[p.site].id
        );
        let (_, p) = e
            .place(job(&world, "short", 0, 0.2, 500.0, &[]), 0)
            .unwrap();
        assert_eq!(
            world.sites[p.site].region,
            world.region_index("jingjinji").unwrap()
        );
    }

    #[test]
    fn sovereignty_is_never_violated_even_when_the_zone_is_full() {
        let world = east_west(&EastWestOptions::default());
        let bj = world.site_index("bj-city").unwrap();
        for policy in Policy::ALL {
            let mut e = Engine::new(&world, cfg(policy));
            for i in 0..40 {
                let (_, p) = e
                    .place(job(&world, &format!("j{i}"), 0, 2.0, 1.0, &["CN-BJ"]), 0)
                    .unwrap();
                assert_eq!(p.site, bj, "{policy:?}");
            }
        }
    }

    #[test]
    fn capacity_is_respected_jobs_queue_when_full() {
        let world = east_west(&EastWestOptions::default());
        let mut e = Engine::new(&world, cfg(Policy::CostAware));
        let bj = world.site_index("bj-city").unwrap();
        // bj-city has 6 GPUs (100 × 0.06); place 20 one-GPU jobs pinned there.
        let mut starts = Vec::new();
        for i in 0..20 {
            let (_, p) = e
                .place(job(&world, &format!("j{i}"), 0, 1.0, 0.0, &["CN-BJ"]), 0)
                .unwrap();
            starts.push(p.start_s);
        }
        let at_zero = starts.iter().filter(|s| **s == 0).count();
        assert!(at_zero <= 6, "{at_zero} started at once on 6 GPUs");
        let tl = e.timeline(bj).unwrap();
        for dim in 0..tl.capacity.len() {
            assert!(tl.peak(dim, 0, tl.slots()) <= tl.capacity[dim]);
        }
    }

    #[test]
    fn reoptimise_never_raises_cost_and_uses_freed_capacity() {
        let world = east_west(&EastWestOptions::default());
        let mut e = Engine::new(&world, cfg(Policy::CostAware));
        let mut handles = Vec::new();
        for i in 0..30 {
            let (h, _) = e
                .place(job(&world, &format!("j{i}"), 0, 3.0, 0.0, &["CN-BJ"]), 0)
                .unwrap();
            handles.push(h);
        }
        let before: f64 = e.placements().iter().flatten().map(|p| p.cost.total).sum();
        // Cancel the first five (they were running/queued first); re-optimise the rest.
        for h in &handles[..5] {
            e.cancel(*h);
        }
        let remaining_before: f64 = e.placements().iter().flatten().map(|p| p.cost.total).sum();
        let moved = e.reoptimise(0);
        let after: f64 = e.placements().iter().flatten().map(|p| p.cost.total).sum();
        assert!(after <= remaining_before + 1e-6);
        assert!(remaining_before < before);
        assert!(
            moved > 0,
            "freed capacity should let queued jobs start earlier"
        );
    }

    #[test]
    fn fast_option_costs_equal_the_reference_cost_function() {
        let world = east_west(&EastWestOptions::default());
        let mut e = Engine::new(&world, cfg(Policy::CostAware));
        let j = job(&world, "x", 100, 5.0, 80.0, &[]);
        e.collect_options(&j, 100, None);
        assert!(e.scratch.len() > world.sites.len());
        for o in &e.scratch {
            let reference =
                crate::cost::static_cost(&world, &CostWeights::default(), &j, o.site, o.model);
            assert!((o.fixed.weighted - reference.weighted).abs() < 1e-9);
            assert!((o.fixed.carbon_kg - reference.carbon_kg).abs() < 1e-12);
            assert_eq!(o.fixed.bytes_moved, reference.bytes_moved);
            assert!((o.fixed.transfer_s - reference.transfer_s).abs() < 1e-9);
        }
    }

    #[test]
    fn site_down_moves_jobs_elsewhere() {
        let world = east_west(&EastWestOptions::default());
        let mut e = Engine::new(&world, cfg(Policy::CostAware));
        let (h, p) = e.place(job(&world, "x", 0, 10.0, 1.0, &[]), 0).unwrap();
        let lost = e.site_down(p.site, 3600);
        assert!(lost.is_empty());
        let q = e.placements()[h].unwrap();
        assert_ne!(q.site, p.site);
        assert!(q.start_s >= 3600);
    }
}
