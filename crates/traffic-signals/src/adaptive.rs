//! Our controller: queue- and approach-aware pressure that keeps a phase while its vehicles
//! still flow, with a downstream spillback guard and a maximum-red guard.
//!
//! At each decision, for every intersection and every candidate phase `p`:
//!
//! ```text
//! score(p) = sum over incoming lanes l of p:  (waiting_l + w_approach * approaching_l(reach)) * free(l, p)
//!            - w_out * sum over outgoing lanes o of p: waiting_o
//!            (+ switch_cost if p is green now)
//!            (+ w_age * seconds its vehicles have waited on red)
//! keep     = sum over incoming lanes l of the green phase:
//!                w_keep * approaching_l(reach) + w_keep_wait * waiting_l   (+ switch_cost)
//! choice   = the green phase if keep >= max score, else the phase of the max score
//! ```
//!
//! - `waiting_l`: vehicles slower than 0.1 m/s on the lane (the queue); `approaching_l(reach)`:
//!   moving vehicles within `reach` metres of the stop line (they pass during the next green).
//! - `w_out` < 1 is the "efficient pressure": a movement feeds all lanes of its outgoing road, so
//!   the downstream queue counts about once per lane it is spread over, not in full.
//! - `keep` extends Advanced-MaxPressure's rule: a phase whose vehicles still arrive at speed, or
//!   whose queue is still discharging, is not cut off (a change costs the yellow) unless another
//!   phase has more pressure than that.
//! - `free(l, p)`: 1 while the roads that `l`'s movements in `p` feed are less than `spill`
//!   full, falling linearly to 0 when full: a green into a blocked road serves nobody.
//! - **Maximum red**: vehicles waiting on a red phase never wait longer than `max_red` (default
//!   120 s) for a green. The scores' choice stands only if every phase with vehicles waiting on
//!   red can still be served in time, oldest first, one per later decision; otherwise the
//!   longest-waiting phase goes first. With `exact_wait` the controller records every second
//!   (through [`SignalController::observe`], which [`traffic_sim::control::EpisodeDriver`]
//!   calls after each step) when a red phase's wait began; otherwise (or when it is not
//!   observed every second, e.g. inside a wrapper that does not forward `observe`) it assumes
//!   the wait began at the decision before the one that first saw it.
//! - **Due phases** (`due`): when the choice changes the phase anyway, a red phase whose maximum
//!   red would force it within `due` seconds after the next decision goes now instead: the
//!   yellow is paid once instead of again for the forced change.
//!
//! - **Coordination** between neighbours (`w_pred`, `w_keep_pred`; off in the defaults, which it
//!   did not improve: docs/traffic-results.md): each incoming lane's predicted arrivals within `horizon`
//!   seconds that are not yet within `reach` — moving vehicles further up the lane, plus its share
//!   of what the upstream intersection releases into the lane's road in time under the phase it is
//!   expected to show (its current green, or with `two_pass` its choice in a first pass over all
//!   intersections): per feeding lane, min(queued + approaching, `pred_sat` x (horizon - the
//!   road's free-flow travel time)). They add `w_pred` x arrivals to the score and `w_keep_pred` x
//!   arrivals to the keep rule.
//!
//! The parameters are the same on every scenario ([`AdaptiveParams::for_protocol`] depends on
//! the protocol only).

use traffic_sim::control::{ControlledIntersection, SignalController, SignalView};
use traffic_sim::network::{LaneId, RoadId};
use traffic_sim::spec::TurnKind;
use traffic_sim::{Display, Simulation};

use crate::protocol::ProtocolKind;

/// The name of [`Adaptive::max_pressure_guarded`], the MaxPressure baseline under the
/// maximum-red guard.
pub const MAX_PRESSURE_GUARDED: &str = "max-pressure-guarded";

/// Parameters of [`Adaptive`].
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveParams {
    /// Metres before the stop line in which moving vehicles count as approaching.
    pub reach: f64,
    /// Weight of an approaching vehicle relative to a waiting one.
    pub w_approach: f64,
    /// Weight of waiting vehicles on outgoing lanes.
    pub w_out: f64,
    /// Bonus of the current phase, in vehicles.
    pub switch_cost: f64,
    /// Weight of the vehicles still arriving on the current phase's lanes when deciding to
    /// keep it (Advanced-MaxPressure's "effective running vehicles").
    pub w_keep: f64,
    /// Weight of the current phase's queued (still standing) vehicles in the keep rule: a queue
    /// that has just got its green is still discharging.
    pub w_keep_wait: f64,
    /// Score bonus per second a red phase's vehicles have waited (ages the longest-waiting
    /// phase ahead of the max-red guard).
    pub w_age: f64,
    /// Weight of vehicles waiting in a lane's entry buffer (boundary roads: demand that cannot
    /// even enter yet).
    pub w_entry: f64,
    /// Occupancy (0..1) of a downstream road above which its movements count less.
    pub spill: f64,
    /// Metres of road a standing vehicle takes (length + gap).
    pub vehicle_space: f64,
    /// Vehicles per second a lane discharges on green: a lane's demand counts at most what the
    /// next slot's green can serve (0: no cap).
    pub sat: f64,
    /// Track red phases' waiting every second (via [`SignalController::observe`]) so the
    /// maximum-red guard knows when a wait began, instead of assuming the decision before.
    pub exact_wait: bool,
    /// When the choice changes the phase anyway, serve instead a red phase whose maximum red
    /// falls due within this many seconds after the next decision (saves the yellow of a
    /// forced change later; 0: off).
    pub due: f64,
    /// Longest red, seconds, for a phase with waiting vehicles.
    pub max_red: f64,
    /// Seconds between decisions (to guard max red one decision ahead).
    pub decision_interval: f64,
    /// Yellow seconds of a change.
    pub yellow: f64,
    /// Neighbour coordination: weight, in the score, of the vehicles predicted to reach a lane's
    /// stop line within `horizon` seconds that the controller cannot see yet at the stop line
    /// (0: off). See the module documentation, "Coordination".
    pub w_pred: f64,
    /// Weight of the same predicted arrivals in the keep rule (the green phase's platoon).
    pub w_keep_pred: f64,
    /// Seconds ahead over which arrivals are predicted.
    pub horizon: f64,
    /// Vehicles per second an upstream lane discharges on green (for the predicted release).
    pub pred_sat: f64,
    /// Weight, within the prediction, of the moving vehicles further up the lane (1; 0 keeps
    /// only the upstream neighbour's release).
    pub pred_lane: f64,
    /// Decide twice: the second pass predicts upstream releases from the neighbours' choices of
    /// the first pass (what they will show next), instead of their current greens.
    pub two_pass: bool,
}

impl AdaptiveParams {
    /// The parameters used on every scenario under `protocol`.
    pub fn for_protocol(protocol: ProtocolKind) -> AdaptiveParams {
        let p = protocol.protocol();
        // Swept on the sum of ATT over the six benchmark files (docs/traffic-results.md). P5's short
        // slots want a shorter approach reach, no entry-buffer term, a stronger keep rule and
        // changes steered to phases whose maximum red falls due soon; under P15 the per-second
        // wait bookkeeping lets the maximum-red guard act later (P5 gains nothing from it).
        let (reach, w_approach, w_entry, w_keep, w_keep_wait, due, exact_wait) = match protocol {
            ProtocolKind::P15 => (120.0, 0.7, 0.3, 1.0, 2.0, 0.0, true),
            ProtocolKind::P5 => (60.0, 0.3, 0.0, 1.5, 3.0, 20.0, false),
        };
        AdaptiveParams {
            reach,
            w_approach,
            w_out: 0.2,
            switch_cost: 0.0,
            w_keep,
            w_keep_wait,
            w_age: 0.0,
            w_entry,
            spill: 0.7,
            vehicle_space: 7.5,
            sat: 0.0,
            exact_wait,
            due,
            max_red: 120.0,
            decision_interval: p.decision_interval as f64,
            yellow: p.timing.yellow + p.timing.all_red,
            w_pred: 0.0,
            w_keep_pred: 0.0,
            horizon: 0.0,
            pred_sat: 0.5,
            pred_lane: 1.0,
            two_pass: false,
        }
    }
}

#[derive(Debug, Clone)]
struct InLane {
    lane: LaneId,
    /// Roads this lane's movements in the phase lead to.
    to_roads: Vec<RoadId>,
}

/// Where a lane's future arrivals come from: its own road beyond `reach`, and the upstream
/// intersection's lanes that feed its road.
#[derive(Debug, Clone, Default)]
struct Feed {
    /// Free-flow seconds from the road's entry to its stop line.
    travel: f64,
    /// Lane speed limit, m/s.
    speed: f64,
    /// Share of the road's inflow that takes this lane (1 / lanes of the road).
    share: f64,
    /// Plan index of the upstream controlled intersection (None: boundary or uncontrolled).
    upstream: Option<usize>,
    /// Upstream lanes feeding the road, each with the phases (bit mask of phase ids; all ones for
    /// right turns, which are always green) in which their movement into the road is green.
    feeders: Vec<(LaneId, u64)>,
}

#[derive(Debug, Clone)]
struct PhasePlan {
    phase: u32,
    incoming: Vec<InLane>,
    outgoing: Vec<LaneId>,
}

#[derive(Debug, Clone)]
struct Plan {
    intersection: u32,
    phases: Vec<PhasePlan>,
    /// Per phase (same order): since when vehicles may have been waiting while it was red
    /// (seen at decisions only: the decision before the first one that saw them).
    waiting_since: Vec<Option<f64>>,
    /// Per phase: since when vehicles have been waiting on red, seen every second (exact when
    /// later than `Adaptive::observed_from`).
    observed_since: Vec<Option<f64>>,
}

/// Our adaptive controller (see the module documentation).
#[derive(Debug, Clone)]
pub struct Adaptive {
    /// What it reports as its name: `adaptive`, or [`MAX_PRESSURE_GUARDED`].
    name: &'static str,
    params: AdaptiveParams,
    plans: Vec<Plan>,
    /// Per road: total lane length (metres) and its lanes.
    road_capacity: Vec<(f64, std::ops::Range<u32>)>,
    /// Per lane, approaching vehicles (cached per decision).
    approaching: Vec<u32>,
    stamp: Vec<u64>,
    decision: u64,
    /// Time of the last per-second observation, and since when they have been unbroken.
    last_observed: Option<f64>,
    observed_from: f64,
    /// Per lane: where its arrivals come from (coordination; empty when `w_pred` and
    /// `w_keep_pred` are 0).
    feeds: Vec<Feed>,
    /// Per lane, predicted arrivals (cached per decision pass).
    predicted: Vec<f64>,
    pred_stamp: Vec<u64>,
    pass: u64,
    /// Per plan: the phase each intersection is expected to show next (current green, or the
    /// first pass's choice).
    expected: Vec<u32>,
}

impl Adaptive {
    /// A controller with `params`.
    pub fn new(params: AdaptiveParams) -> Adaptive {
        Adaptive {
            name: "adaptive",
            params,
            plans: Vec::new(),
            road_capacity: Vec::new(),
            approaching: Vec::new(),
            stamp: Vec::new(),
            decision: 0,
            last_observed: None,
            observed_from: f64::INFINITY,
            feeds: Vec::new(),
            predicted: Vec::new(),
            pred_stamp: Vec::new(),
            pass: 0,
            expected: Vec::new(),
        }
    }

    /// MaxPressure under the same maximum-red guard as `adaptive` (a baseline, reported as
    /// [`MAX_PRESSURE_GUARDED`]): the score of a phase is its waiting vehicles in minus its
    /// waiting vehicles out, with no approach, keep, entry-buffer or spillback term. It shows
    /// what the guard alone costs a pressure controller, since MaxPressure itself lets a
    /// red phase wait without bound.
    pub fn max_pressure_guarded(protocol: ProtocolKind) -> Adaptive {
        let params = AdaptiveParams {
            w_approach: 0.0,
            w_out: 1.0,
            w_keep: 0.0,
            w_keep_wait: 0.0,
            w_entry: 0.0,
            spill: 1.0,
            due: 0.0,
            ..AdaptiveParams::for_protocol(protocol)
        };
        Adaptive {
            name: MAX_PRESSURE_GUARDED,
            ..Adaptive::new(params)
        }
    }

    /// Its parameters.
    pub fn params(&self) -> &AdaptiveParams {
        &self.params
    }

    fn prepare(&mut self, sim: &Simulation, intersections: &[ControlledIntersection]) {
        let net = sim.network();
        self.road_capacity = net
            .roads
            .iter()
            .map(|r| {
                let len: f64 = r.lanes.clone().map(|l| net.lanes[l as usize].length).sum();
                (len, r.lanes.clone())
            })
            .collect();
        self.approaching = vec![0; net.lanes.len()];
        self.stamp = vec![u64::MAX; net.lanes.len()];
        self.plans = intersections
            .iter()
            .map(|c| {
                let x = &net.intersections[c.intersection as usize];
                let phases = c
                    .phases
                    .iter()
                    .map(|pm| {
                        let green = &x.phases[pm.phase as usize].green;
                        let incoming = pm
                            .incoming
                            .iter()
                            .map(|&lane| {
                                let mut to_roads = Vec::new();
                                for &k in net.out_links(lane) {
                                    let link = &net.lane_links[k as usize];
                                    let rl = &net.road_links[link.road_link as usize];
                                    if rl.kind == TurnKind::Right
                                        || !green.get(rl.index as usize).copied().unwrap_or(false)
                                    {
                                        continue;
                                    }
                                    if !to_roads.contains(&rl.end_road) {
                                        to_roads.push(rl.end_road);
                                    }
                                }
                                InLane { lane, to_roads }
                            })
                            .collect();
                        PhasePlan {
                            phase: pm.phase,
                            incoming,
                            outgoing: pm.outgoing.clone(),
                        }
                    })
                    .collect::<Vec<_>>();
                let n = phases.len();
                Plan {
                    intersection: c.intersection,
                    phases,
                    waiting_since: vec![None; n],
                    observed_since: vec![None; n],
                }
            })
            .collect();
        self.predicted = vec![0.0; net.lanes.len()];
        self.pred_stamp = vec![u64::MAX; net.lanes.len()];
        self.feeds = net
            .lanes
            .iter()
            .map(|lane| {
                let road = &net.roads[lane.road as usize];
                let upstream = intersections
                    .iter()
                    .position(|c| c.intersection == road.start);
                let mut feeders: Vec<(LaneId, u64)> = Vec::new();
                if let Some(u) = upstream {
                    let c = &intersections[u];
                    let x = &net.intersections[road.start as usize];
                    for k in x.road_links.clone() {
                        let rl = &net.road_links[k as usize];
                        if rl.end_road != lane.road {
                            continue;
                        }
                        let mask = if rl.kind == TurnKind::Right {
                            u64::MAX
                        } else {
                            c.phases
                                .iter()
                                .filter(|pm| {
                                    pm.phase < 64
                                        && x.phases.get(pm.phase as usize).is_some_and(|ph| {
                                            ph.green
                                                .get(rl.index as usize)
                                                .copied()
                                                .unwrap_or(false)
                                        })
                                })
                                .fold(0u64, |m, pm| m | (1u64 << pm.phase))
                        };
                        if mask == 0 {
                            continue;
                        }
                        for ll in rl.lane_links.clone() {
                            let start = net.lane_links[ll as usize].start_lane;
                            match feeders.iter_mut().find(|f| f.0 == start) {
                                Some(f) => f.1 |= mask,
                                None => feeders.push((start, mask)),
                            }
                        }
                    }
                }
                Feed {
                    travel: lane.length / lane.max_speed.max(0.1),
                    speed: lane.max_speed,
                    share: 1.0 / road.lanes.len().max(1) as f64,
                    upstream,
                    feeders,
                }
            })
            .collect();
    }

    fn approaching(&mut self, view: &SignalView<'_>, lane: LaneId) -> u32 {
        let i = lane as usize;
        if self.stamp[i] != self.decision {
            self.stamp[i] = self.decision;
            self.approaching[i] = view.approaching(lane, self.params.reach);
        }
        self.approaching[i]
    }

    fn occupancy(&self, view: &SignalView<'_>, road: RoadId) -> f64 {
        let (len, lanes) = &self.road_capacity[road as usize];
        if *len <= 0.0 {
            return 1.0;
        }
        let vehicles: u32 = lanes.clone().map(|l| view.lanes.vehicles[l as usize]).sum();
        f64::from(vehicles) * self.params.vehicle_space / len
    }

    fn coordinated(&self) -> bool {
        self.params.w_pred != 0.0 || self.params.w_keep_pred != 0.0
    }

    /// Vehicles predicted to reach `lane`'s stop line within `horizon` seconds that are not yet
    /// within `reach` of it: moving vehicles further up the lane, and the share of the road's
    /// inflow that the upstream intersection releases in time from the lanes its expected phase
    /// (current green, or its first-pass choice) serves.
    fn predicted(&mut self, view: &SignalView<'_>, lane: LaneId) -> f64 {
        let i = lane as usize;
        if self.pred_stamp[i] == self.pass {
            return self.predicted[i];
        }
        let p = &self.params;
        let f = &self.feeds[i];
        let mut arrivals = 0.0;
        let far = f.speed * p.horizon;
        if far > p.reach && p.pred_lane != 0.0 {
            arrivals += p.pred_lane
                * f64::from(
                    view.approaching(lane, far)
                        .saturating_sub(view.approaching(lane, p.reach)),
                );
        }
        let window = p.horizon - f.travel;
        if let Some(u) = f.upstream
            && window > 0.0
        {
            let phase = self.expected[u];
            let bit = if phase < 64 { 1u64 << phase } else { 0 };
            let cap = p.pred_sat * window;
            let released: f64 = f
                .feeders
                .iter()
                .filter(|&&(_, mask)| mask & bit != 0 || mask == u64::MAX)
                .map(|&(l, _)| {
                    let q = view.lanes.waiting[l as usize] + view.approaching(l, p.reach);
                    f64::from(q).min(cap)
                })
                .sum();
            arrivals += f.share * released;
        }
        self.pred_stamp[i] = self.pass;
        self.predicted[i] = arrivals;
        arrivals
    }

    /// The phase `plan`'s intersection should show (None: in a transition).
    fn choose(&mut self, view: &SignalView<'_>, plan: &Plan, now: f64) -> Option<u32> {
        let p = self.params.clone();
        let coordinated = self.coordinated();
        let current = view.sim.green_phase(plan.intersection);
        if view.sim.in_transition(plan.intersection) {
            return None;
        }
        let mut best: Option<(f64, u32)> = None;
        let mut keep = f64::NEG_INFINITY;
        for (ph, since) in plan.phases.iter().zip(&plan.waiting_since) {
            let mut score = since.map_or(0.0, |t0| p.w_age * (now - t0));
            let mut kept = 0.0;
            let green = if ph.phase == current {
                p.decision_interval
            } else {
                p.decision_interval - p.yellow
            };
            let cap = if p.sat > 0.0 {
                p.sat * green
            } else {
                f64::INFINITY
            };
            for l in &ph.incoming {
                let approaching = self.approaching(view, l.lane);
                let queued = view.lanes.waiting[l.lane as usize];
                let predicted = if coordinated {
                    self.predicted(view, l.lane)
                } else {
                    0.0
                };
                kept += (p.w_keep * f64::from(approaching) + p.w_keep_wait * f64::from(queued))
                    .min(cap)
                    + p.w_keep_pred * predicted;
                let demand = (f64::from(queued) + p.w_approach * f64::from(approaching)).min(cap)
                    + p.w_pred * predicted
                    + if p.w_entry > 0.0 {
                        p.w_entry * f64::from(view.sim.lane_entry_queue(l.lane))
                    } else {
                        0.0
                    };
                let mut free: f64 = 1.0;
                for &r in &l.to_roads {
                    let occ = self.occupancy(view, r);
                    if occ > p.spill {
                        free = free.min(((1.0 - occ) / (1.0 - p.spill)).max(0.0));
                    }
                }
                score += demand * free;
            }
            let out: f64 = ph
                .outgoing
                .iter()
                .map(|&o| f64::from(view.lanes.waiting[o as usize]))
                .sum();
            score -= p.w_out * out;
            if ph.phase == current {
                score += p.switch_cost;
                keep = kept + p.switch_cost;
            }
            if best.is_none_or(|(b, _)| score > b) {
                best = Some((score, ph.phase));
            }
        }
        let mut choice = match best {
            Some((b, _)) if keep >= b => current,
            Some((_, ph)) => ph,
            None => return None,
        };
        // Maximum red: phases with waiting vehicles on red are served oldest first, one per
        // decision. The choice stands if, after it, every such phase can still get its green
        // within `max_red` when served in that order from the next decision on (a choice that
        // is itself one of them serves it now). Otherwise the oldest one goes first.
        let pending = self.pending(plan, now);
        let slot = p.decision_interval;
        if p.due > 0.0
            && choice != current
            && let Some(&(_, ph)) = pending.iter().find(|&&(t0, ph)| {
                ph != choice && ph != current && now + slot + p.yellow - t0 >= p.max_red - p.due
            })
        {
            choice = ph;
        }
        Some(if self.feasible(&pending, choice, now) {
            choice
        } else {
            pending[0].1
        })
    }

    /// The red phases of `plan` with vehicles waiting, with the time their wait began, oldest
    /// first.
    fn pending(&self, plan: &Plan, now: f64) -> Vec<(f64, u32)> {
        let exact = self.last_observed == Some(now);
        let observed_from = self.observed_from;
        let mut pending: Vec<(f64, u32)> = plan
            .phases
            .iter()
            .zip(plan.waiting_since.iter().zip(&plan.observed_since))
            .filter_map(|(ph, (since, seen))| {
                since.map(|t0| match seen {
                    // Seen every second since the wait began: the exact start.
                    Some(t) if exact && *t > observed_from => (t.max(t0), ph.phase),
                    _ => (t0, ph.phase),
                })
            })
            .collect();
        pending.sort_by(|a, b| a.0.total_cmp(&b.0));
        pending
    }

    /// After `choice`, can every other pending phase still be served within `max_red`, oldest
    /// first, one per later decision?
    fn feasible(&self, pending: &[(f64, u32)], choice: u32, now: f64) -> bool {
        let p = &self.params;
        pending
            .iter()
            .filter(|&&(_, ph)| ph != choice)
            .enumerate()
            .all(|(k, &(t0, _))| {
                now + (k as f64 + 1.0) * p.decision_interval + p.yellow - t0 < p.max_red
            })
    }

    /// The phases the maximum-red guard lets intersection `k` (its index in the decision
    /// slice) be given at this decision: those after which the schedule stays feasible, and
    /// the longest-waiting red phase (which the guard itself would force). Valid right after
    /// [`SignalController::decide`] for the decision at `now` (it reads that decision's wait
    /// bookkeeping); empty for an unknown `k`. Another controller may choose among them and
    /// keep the guard's bound (`rollout::Rollout` does).
    pub fn permitted(&self, k: usize, now: f64) -> Vec<u32> {
        let Some(plan) = self.plans.get(k) else {
            return Vec::new();
        };
        let pending = self.pending(plan, now);
        let mut out: Vec<u32> = plan
            .phases
            .iter()
            .map(|ph| ph.phase)
            .filter(|&ph| self.feasible(&pending, ph, now))
            .collect();
        if let Some(&(_, oldest)) = pending.first()
            && !out.contains(&oldest)
        {
            out.push(oldest);
        }
        out
    }
}

impl SignalController for Adaptive {
    fn name(&self) -> &str {
        self.name
    }

    fn observe(&mut self, sim: &Simulation) {
        if self.plans.is_empty() || !self.params.exact_wait {
            return;
        }
        let now = sim.time();
        // A gap in the observations: what happened in it is unknown, so start afresh.
        if self.last_observed.is_none_or(|t| now - t > 1.0 + 1e-9) {
            self.observed_from = now;
        }
        self.last_observed = Some(now);
        for plan in &mut self.plans {
            let display = sim.display(plan.intersection);
            for (ph, since) in plan.phases.iter().zip(plan.observed_since.iter_mut()) {
                let waiting = display != Display::Phase(ph.phase)
                    && ph
                        .incoming
                        .iter()
                        .any(|l| sim.lane_waiting_count(l.lane) > 0);
                if !waiting {
                    *since = None;
                } else if since.is_none() {
                    *since = Some(now);
                }
            }
        }
    }

    fn decide(&mut self, view: &SignalView<'_>, decisions: &mut [Option<u32>]) {
        if self.plans.len() != view.intersections.len() {
            self.prepare(view.sim, view.intersections);
        }
        self.decision = self.decision.wrapping_add(1);
        let now = view.sim.time();
        let interval = self.params.decision_interval;
        // Starvation bookkeeping: since when may vehicles have waited on a red phase?
        // (They may have started waiting just after the previous decision.)
        for plan in &mut self.plans {
            let current = view.sim.green_phase(plan.intersection);
            for (ph, since) in plan.phases.iter().zip(plan.waiting_since.iter_mut()) {
                let waiting = ph
                    .incoming
                    .iter()
                    .any(|l| view.lanes.waiting[l.lane as usize] > 0);
                if ph.phase == current || !waiting {
                    *since = None;
                } else if since.is_none() {
                    *since = Some(now - interval);
                }
            }
        }
        let plans = std::mem::take(&mut self.plans);
        self.expected.clear();
        self.expected
            .extend(plans.iter().map(|pl| view.sim.green_phase(pl.intersection)));
        let passes = if self.coordinated() && self.params.two_pass {
            2
        } else {
            1
        };
        for pass in 0..passes {
            self.pass = self.pass.wrapping_add(1);
            for ((plan, d), k) in plans.iter().zip(decisions.iter_mut()).zip(0..) {
                *d = self.choose(view, plan, now);
                if pass + 1 < passes {
                    self.expected[k] = d.unwrap_or(self.expected[k]);
                }
            }
        }
        self.plans = plans;
    }
}
