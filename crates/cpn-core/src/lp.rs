//! An LP relaxation whose optimum is a lower bound on the cost of *any* plan, online or offline.
//!
//! **Variables.** For each job `j` and option `o` (allowed site × acceptable GPU model):
//! - `on[j,o]`, only if the job can finish by its deadline there when started as soon as its
//!   input arrives; cost = static cost (money, carbon, data) + the waiting cost of starting as soon
//!   as the input arrives, no penalty;
//! - `late[j,o]`, cost = the same + `priority × miss_penalty` (the least any late run pays).
//!
//! Each job's variables sum to 1, all in `[0, 1]`.
//!
//! **Capacity.** A job that meets its deadline runs entirely inside `[arrival, deadline]`. So for
//! every site `s`, resource `r` and time interval `I`, the on-time jobs whose whole window lies in
//! `I` need at most `cap[s,r] × |I|` resource-seconds there:
//! `Σ req[j,r] × duration[j] × on[j,o at s] ≤ cap[s,r] × |I|`. Intervals are dyadic (lengths
//! `base × 2^k`, aligned and half-shifted), so every window fits one of them within a factor of
//! about four. Any real plan maps to a feasible point of this LP with no higher cost (late jobs
//! pay at least the bound's penalty and are not constrained; reservations rounded to slots only
//! use more capacity), hence LP optimum ≤ any plan's cost.
//!
//! **Size reduction (exact).** An interval constraint that could not be violated even if every
//! candidate went there is dropped. A variable that appears in no kept constraint is dominated by
//! the job's cheapest such variable, so only that one is kept; a job left with no constrained
//! variable contributes its cheapest cost as a constant and leaves the LP. What remains is solved
//! with `microlp` (default) or HiGHS (`--features highs`). Coefficients below 1e-9 of a row's
//! right-hand side are dropped, which only relaxes the row.

use std::collections::BTreeMap;

use crate::cost::{CostWeights, lateness_penalty, static_cost, wait_cost};
use crate::job::{Job, fits_site};
use crate::world::World;

/// Result of the bound computation.
#[derive(Debug, Clone, PartialEq)]
pub struct LpBound {
    /// The LP optimum: a lower bound on any plan's total weighted cost.
    pub value: f64,
    /// The capacity-free bound (each job at its cheapest option), always <= `value`.
    pub capacity_free: f64,
    /// Jobs that stayed in the LP after reduction.
    pub lp_jobs: usize,
    /// LP columns.
    pub columns: usize,
    /// LP capacity rows kept.
    pub rows: usize,
    /// Solver used (`microlp`, `highs`, or `capacity-free` if the LP failed).
    pub solver: &'static str,
    /// Why the LP fell back, if it did.
    pub note: Option<String>,
}

/// Options of the relaxation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LpOptions {
    /// Shortest interval length, s.
    pub base_interval_s: i64,
    /// Objective weights (must match the plans being bounded).
    pub weights: CostWeights,
}

impl Default for LpOptions {
    fn default() -> Self {
        Self {
            base_interval_s: 3600,
            weights: CostWeights::default(),
        }
    }
}

/// A plain LP: minimise `costs · x`, `0 <= x <= 1`, equality rows `Σ x = 1` (assignments) and
/// `≤` rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lp {
    /// Objective coefficient per column.
    pub costs: Vec<f64>,
    /// Columns of each assignment row (each sums to 1).
    pub assign: Vec<Vec<usize>>,
    /// `Σ coef × x ≤ rhs` rows.
    pub capacity: Vec<(Vec<(usize, f64)>, f64)>,
}

/// Solves `lp` with microlp; returns the optimum.
pub fn solve_microlp(lp: &Lp) -> Result<f64, String> {
    use microlp::{ComparisonOp, OptimizationDirection, Problem};
    let mut problem = Problem::new(OptimizationDirection::Minimize);
    let vars: Vec<_> = lp
        .costs
        .iter()
        .map(|c| problem.add_var(*c, (0.0, 1.0)))
        .collect();
    for cols in &lp.assign {
        let expr: Vec<_> = cols
            .iter()
            .filter_map(|c| vars.get(*c).map(|v| (*v, 1.0)))
            .collect();
        problem.add_constraint(expr.as_slice(), ComparisonOp::Eq, 1.0);
    }
    for (coefs, rhs) in &lp.capacity {
        let expr: Vec<_> = coefs
            .iter()
            .filter_map(|(c, a)| vars.get(*c).map(|v| (*v, *a)))
            .collect();
        problem.add_constraint(expr.as_slice(), ComparisonOp::Le, *rhs);
    }
    let outcome = problem.solve().map_err(|e| e.to_string())?;
    let solution = outcome
        .into_solution()
        .map_err(|_| "interrupted".to_owned())?;
    Ok(solution.objective())
}

/// Solves `lp` with HiGHS; returns the optimum.
#[cfg(feature = "highs")]
pub fn solve_highs(lp: &Lp) -> Result<f64, String> {
    use highs::{HighsModelStatus, RowProblem, Sense};
    let mut pb = RowProblem::default();
    let cols: Vec<_> = lp
        .costs
        .iter()
        .map(|c| pb.add_column(*c, 0.0..=1.0))
        .collect();
    for assign in &lp.assign {
        let row: Vec<_> = assign
            .iter()
            .filter_map(|c| cols.get(*c).map(|v| (*v, 1.0)))
            .collect();
        pb.add_row(1.0..=1.0, &row);
    }
    for (coefs, rhs) in &lp.capacity {
        let row: Vec<_> = coefs
            .iter()
            .filter_map(|(c, a)| cols.get(*c).map(|v| (*v, *a)))
            .collect();
        pb.add_row(..=*rhs, &row);
    }
    let solved = pb.optimise(Sense::Minimise).solve();
    if solved.status() != HighsModelStatus::Optimal {
        return Err(format!("highs status {:?}", solved.status()));
    }
    let x = solved.get_solution().columns().to_vec();
    Ok(x.iter().zip(&lp.costs).map(|(v, c)| v * c).sum())
}

/// (site, dimension, level, shifted, index) of one capacity interval.
type IntervalKey = (usize, u16, u8, u8, i64);

struct Candidate {
    job: usize,
    /// Option number, unique per (job, site, model).
    option: usize,
    cost: f64,
    /// (site, dimension key, area in resource-seconds) when this is an on-time variable.
    on_time: Option<(usize, u16, f64)>,
}

/// Dimension key: 0 = cpu, 1 = memory, 2 + m = GPU model m.
fn dims(job: &Job, model: Option<u8>) -> [(u16, f64); 3] {
    let d = job.duration_s as f64;
    [
        (0, job.demand.cpu_milli as f64 * d),
        (1, job.demand.mem_mib as f64 * d),
        (
            model.map_or(u16::MAX, |m| 2 + u16::from(m)),
            job.demand.gpu_milli as f64 * d,
        ),
    ]
}

fn capacity_of(world: &World, site: usize, dim: u16) -> f64 {
    let Some(s) = world.sites.get(site) else {
        return 0.0;
    };
    match dim {
        0 => s.cpu_milli as f64,
        1 => s.mem_mib as f64,
        d => s.gpu_capacity((d - 2) as u8) as f64,
    }
}

/// Builds and solves the relaxation for `jobs` on `world`.
pub fn lower_bound(world: &World, jobs: &[Job], opts: &LpOptions) -> LpBound {
    let (lp, constant, capacity_free, lp_jobs) = build(world, jobs, opts);
    let rows = lp.capacity.len();
    let columns = lp.costs.len();
    if lp.assign.is_empty() {
        return LpBound {
            value: constant,
            capacity_free,
            lp_jobs,
            columns,
            rows,
            solver: "none-needed",
            note: None,
        };
    }
    #[cfg(feature = "highs")]
    let (result, solver) = (solve_highs(&lp), "highs");
    #[cfg(not(feature = "highs"))]
    let (result, solver) = (solve_microlp(&lp), "microlp");
    match result {
        Ok(v) => LpBound {
            value: (constant + v).max(capacity_free),
            capacity_free,
            lp_jobs,
            columns,
            rows,
            solver,
            note: None,
        },
        Err(e) => LpBound {
            value: capacity_free,
            capacity_free,
            lp_jobs,
            columns,
            rows,
            solver: "capacity-free",
            note: Some(e),
        },
    }
}

/// Builds the reduced LP. Returns `(lp, constant, capacity_free_bound, jobs_in_lp)`.
pub fn build(world: &World, jobs: &[Job], opts: &LpOptions) -> (Lp, f64, f64, usize) {
    let w = &opts.weights;
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut option_id = 0usize;
    for (j, job) in jobs.iter().enumerate() {
        for (s, site) in world.sites.iter().enumerate() {
            if !job.allows_zone(site.zone) || !fits_site(&job.demand, site) {
                continue;
            }
            let models: Vec<Option<u8>> = if job.demand.gpu_milli == 0 {
                vec![None]
            } else {
                site.gpus
                    .iter()
                    .filter(|(m, cap)| job.demand.accepts_model(*m) && job.demand.gpu_milli <= *cap)
                    .map(|(m, _)| Some(*m))
                    .collect()
            };
            for model in models {
                option_id += 1;
                let fixed = static_cost(world, w, job, s, model);
                let ready = job.arrival_s + fixed.transfer_s.ceil() as i64;
                let (late, _) = lateness_penalty(w, job, ready + job.duration_s);
                // Any plan starts no earlier than `ready`, so it waits at least this long.
                let min_wait = wait_cost(w, job, ready);
                let late_cost =
                    fixed.weighted + min_wait + f64::from(job.priority) * w.miss_penalty_cny;
                candidates.push(Candidate {
                    job: j,
                    option: option_id,
                    cost: late_cost,
                    on_time: None,
                });
                if late == 0 {
                    for (dim, area) in dims(job, model) {
                        if dim != u16::MAX && area > 0.0 {
                            candidates.push(Candidate {
                                job: j,
                                option: option_id,
                                cost: fixed.weighted + min_wait,
                                on_time: Some((s, dim, area)),
                            });
                        }
                    }
                    // A job with no positive area on any dimension still has an on-time option.
                    if dims(job, model)
                        .iter()
                        .all(|(d, a)| *d == u16::MAX || *a <= 0.0)
                    {
                        candidates.push(Candidate {
                            job: j,
                            option: option_id,
                            cost: fixed.weighted + min_wait,
                            on_time: None,
                        });
                    }
                }
            }
        }
    }
    // Candidates for the same (job, site, model) on-time option were split per dimension above
    // only to find interval memberships; regroup them as one column per option below.
    let t0 = jobs.iter().map(|j| j.arrival_s).min().unwrap_or(0);
    let base = opts.base_interval_s.max(1);
    // Interval key: (level, shifted, index). Membership of a window [a, d] at a level: the aligned
    // or half-shifted interval that contains it, if any.
    let mut interval_load: BTreeMap<IntervalKey, f64> = BTreeMap::new();
    let mut memberships: Vec<Vec<IntervalKey>> = vec![Vec::new(); candidates.len()];
    for (ci, c) in candidates.iter().enumerate() {
        let Some((site, dim, area)) = c.on_time else {
            continue;
        };
        let Some(job) = jobs.get(c.job) else { continue };
        let Some(deadline) = job.deadline() else {
            continue;
        };
        let (a, d) = (job.arrival_s - t0, deadline - t0);
        for level in 0u8..40 {
            let len = base.saturating_mul(1i64 << level);
            if len >= (1i64 << 50) {
                break;
            }
            if d - a > len {
                continue;
            }
            for shifted in 0u8..2 {
                let off = if shifted == 1 { len / 2 } else { 0 };
                let k = (a + off).div_euclid(len);
                if d + off <= (k + 1) * len {
                    let key = (site, dim, level, shifted, k);
                    *interval_load.entry(key).or_insert(0.0) += area;
                    memberships[ci].push(key);
                }
            }
            // Once the window fits an aligned interval at this level, larger levels' intervals
            // are implied only loosely; keep two levels above the first fit.
            if memberships[ci].len() >= 6 {
                break;
            }
        }
    }
    // Keep intervals whose potential load exceeds capacity.
    let mut kept_rows: BTreeMap<IntervalKey, usize> = BTreeMap::new();
    let mut row_rhs: Vec<f64> = Vec::new();
    for (key, load) in &interval_load {
        let (site, dim, level, _, _) = *key;
        let len = base.saturating_mul(1i64 << level) as f64;
        let rhs = capacity_of(world, site, dim) * len;
        if *load > rhs * (1.0 + 1e-9) {
            kept_rows.insert(*key, row_rhs.len());
            row_rhs.push(rhs);
        }
    }
    // Group on-time candidates into one column per option (they are consecutive).
    let mut per_job_min_free = vec![f64::INFINITY; jobs.len()];
    let mut per_job_min_any = vec![f64::INFINITY; jobs.len()];
    struct Column {
        job: usize,
        cost: f64,
        rows: Vec<(usize, f64)>,
    }
    let mut columns: Vec<Column> = Vec::new();
    let mut i = 0;
    while i < candidates.len() {
        let c = &candidates[i];
        per_job_min_any[c.job] = per_job_min_any[c.job].min(c.cost);
        match c.on_time {
            None => {
                per_job_min_free[c.job] = per_job_min_free[c.job].min(c.cost);
                i += 1;
            }
            Some(_) => {
                let mut rows = Vec::new();
                let mut k = i;
                while k < candidates.len() {
                    let ck = &candidates[k];
                    if ck.option != c.option || ck.on_time.is_none() {
                        break;
                    }
                    if let Some((_, _, area)) = ck.on_time {
                        for key in &memberships[k] {
                            if let Some(&r) = kept_rows.get(key) {
                                rows.push((r, area));
                            }
                        }
                    }
                    k += 1;
                }
                if rows.is_empty() {
                    per_job_min_free[c.job] = per_job_min_free[c.job].min(c.cost);
                } else {
                    columns.push(Column {
                        job: c.job,
                        cost: c.cost,
                        rows,
                    });
                }
                i = k;
            }
        }
    }
    let capacity_free: f64 = per_job_min_any.iter().filter(|v| v.is_finite()).sum();
    // Assemble: jobs with a constrained column cheaper than their best free one enter the LP.
    let mut lp = Lp::default();
    let mut constant = 0.0;
    let mut job_cols: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut used_rows: BTreeMap<usize, usize> = BTreeMap::new();
    let mut row_coefs: Vec<Vec<(usize, f64)>> = Vec::new();
    for col in &columns {
        if col.cost >= per_job_min_free[col.job] {
            continue;
        }
        let idx = lp.costs.len();
        lp.costs.push(col.cost);
        job_cols.entry(col.job).or_default().push(idx);
        for (r, area) in &col.rows {
            let rr = *used_rows.entry(*r).or_insert_with(|| {
                row_coefs.push(Vec::new());
                row_coefs.len() - 1
            });
            let rhs = row_rhs[*r];
            if rhs > 0.0 && *area / rhs >= 1e-9 {
                row_coefs[rr].push((idx, *area / rhs));
            } else if rhs <= 0.0 {
                row_coefs[rr].push((idx, 1.0));
            }
        }
    }
    for (job, free) in per_job_min_free.iter().enumerate() {
        match job_cols.get_mut(&job) {
            Some(cols) => {
                if free.is_finite() {
                    let idx = lp.costs.len();
                    lp.costs.push(*free);
                    cols.push(idx);
                }
            }
            None => {
                if free.is_finite() {
                    constant += free;
                }
            }
        }
    }
    let lp_jobs = job_cols.len();
    lp.assign = job_cols.into_values().collect();
    let rhs_of: BTreeMap<usize, usize> = used_rows.iter().map(|(orig, rr)| (*rr, *orig)).collect();
    for (rr, coefs) in row_coefs.into_iter().enumerate() {
        let rhs = rhs_of
            .get(&rr)
            .and_then(|o| row_rhs.get(*o))
            .copied()
            .unwrap_or(0.0);
        lp.capacity.push((coefs, if rhs > 0.0 { 1.0 } else { 0.0 }));
    }
    (lp, constant, capacity_free, lp_jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microlp_solves_a_small_assignment() {
        // Two jobs, two sites; the cheap site fits only one job.
        let lp = Lp {
            costs: vec![1.0, 3.0, 1.0, 2.0],
            assign: vec![vec![0, 1], vec![2, 3]],
            capacity: vec![(vec![(0, 1.0), (2, 1.0)], 1.0)],
        };
        let v = solve_microlp(&lp).unwrap();
        // Best: job 0 cheap (1) + job 1 expensive (2) = 3.
        assert!((v - 3.0).abs() < 1e-6, "{v}");
    }
}
