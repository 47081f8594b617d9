//! A rollout (model-predictive) controller that uses the simulator as a digital twin.
//!
//! At each decision [`Adaptive`] (the base policy, its own defaults) first decides for every
//! intersection. Then, by coordinate descent over the intersections (`rounds` passes), each
//! intersection's other candidate phases are tried: the joint decision with that one phase
//! changed is applied to a copy of the simulation (the twin), which runs `horizon` seconds
//! ahead with the base policy taking every later decision inside the horizon (for the tried
//! intersection too, after `hold` seconds). The candidate with the lowest predicted cost
//! replaces the current one if it is lower by more than `margin`:
//!
//! ```text
//! cost = total delay of the vehicles at the end of the horizon (vehicle-seconds; time since
//!        scheduled start minus distance travelled over top speed, summed, finished trips too)
//!      + w_term * vehicles queued at the end (slower than 0.1 m/s on a lane, or in an entry buffer)
//!      + w_entry * vehicles in an entry buffer at the end
//!      + w_backlog * vehicles at the end on the lanes whose entry buffer is not empty
//! ```
//!
//! **Honesty of the twin.** It is a clone of the simulation at the decision time with every
//! future arrival removed ([`Simulation::stop_arrivals`]): it knows the vehicles already in the
//! network or waiting at its boundary since their scheduled start (their positions, lanes and
//! routes, as connected-vehicle data would give), never a vehicle the flow file schedules
//! later. It does use the simulator's own driver model (and its random state, which only
//! draws for new vehicles and lane choices), i.e. a perfect model of the present vehicles.
//!
//! **Safety.** Candidates are only the phases the base policy's maximum-red guard permits at
//! this decision ([`Adaptive::permitted`]), so the 120 s bound holds as it does for
//! [`Adaptive`]; minimum green and yellow are the simulator's. Intersections in a transition
//! are left alone. Deterministic: no randomness; ties keep the base policy's choice.
//!
//! **Cost.** Each decision runs `1 + rounds × Σ(candidates − 1)` rollouts of `horizon` steps over
//! the whole network: far from [`Adaptive`]'s sub-millisecond decisions (docs/traffic-results.md gives
//! the run time per episode).

use traffic_sim::control::{ControlledIntersection, LaneStats, SignalController, SignalView};
use traffic_sim::{SignalTiming, Simulation};

use crate::adaptive::{Adaptive, AdaptiveParams};
use crate::protocol::ProtocolKind;

/// Parameters of [`Rollout`].
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutParams {
    /// The base policy (also the guard).
    pub base: AdaptiveParams,
    /// Look-ahead, seconds (whole steps).
    pub horizon: u64,
    /// Coordinate-descent passes over the intersections.
    pub rounds: u32,
    /// Seconds for which a tried candidate is held in the twin before the base policy decides
    /// for that intersection again (0: only the first decision).
    pub hold: u64,
    /// Weight of the vehicles queued at the end of the horizon (vehicle-seconds each).
    pub w_term: f64,
    /// Weight of the vehicles still in an entry buffer at the end of the horizon
    /// (vehicle-seconds each, on top of `w_term`).
    pub w_entry: f64,
    /// Weight of the vehicles at the end of the horizon on lanes whose entry buffer is not
    /// empty (each one keeps a waiting vehicle out of the network; vehicle-seconds each).
    pub w_backlog: f64,
    /// Only try phases with vehicles on their incoming lanes (besides the base choice): a
    /// cheaper search, e.g. for a large city.
    pub demand_only: bool,
    /// A candidate must lower the predicted cost by more than this (vehicle-seconds).
    pub margin: f64,
    /// Seconds between decisions (the protocol's).
    pub decision_interval: u64,
    /// The protocol's safety timing (the twin requests phases as the episode does).
    pub timing: SignalTiming,
    /// Last step of the episode: the twin does not look beyond it.
    pub end: u64,
}

impl RolloutParams {
    /// The parameters for a protocol (the same on every scenario).
    pub fn for_protocol(protocol: ProtocolKind) -> RolloutParams {
        let p = protocol.protocol();
        let (horizon, hold) = match protocol {
            ProtocolKind::P15 => (60, 0),
            ProtocolKind::P5 => (30, 0),
        };
        RolloutParams {
            base: AdaptiveParams::for_protocol(protocol),
            horizon,
            rounds: 1,
            hold,
            w_term: 0.0,
            w_entry: 0.0,
            w_backlog: 0.0,
            demand_only: true,
            margin: 0.0,
            decision_interval: p.decision_interval,
            timing: p.timing,
            end: p.steps,
        }
    }
}

/// The rollout controller (see the module docs).
#[derive(Debug, Clone)]
pub struct Rollout {
    params: RolloutParams,
    base: Adaptive,
    stats: LaneStats,
    /// Rollouts run so far (for reports).
    rollouts: u64,
}

impl Rollout {
    /// A controller with `params`.
    pub fn new(params: RolloutParams) -> Rollout {
        Rollout {
            base: Adaptive::new(params.base.clone()),
            params,
            stats: LaneStats::default(),
            rollouts: 0,
        }
    }

    /// The parameters.
    pub fn params(&self) -> &RolloutParams {
        &self.params
    }

    /// Rollouts (twin runs of `horizon` steps) so far.
    pub fn rollouts(&self) -> u64 {
        self.rollouts
    }

    /// Runs the twin from `twin` with `first` applied now and the base policy `base` (already
    /// past this decision) afterwards; `held` is the intersection whose first decision stays
    /// for `hold` seconds. Returns the predicted cost.
    fn rollout(
        &mut self,
        twin: &Simulation,
        base: &Adaptive,
        intersections: &[ControlledIntersection],
        first: &[Option<u32>],
        held: Option<usize>,
    ) -> f64 {
        self.rollouts += 1;
        let p = &self.params;
        let mut sim = twin.clone();
        let mut ctrl = base.clone();
        let t0 = sim.steps();
        let end = (t0 + p.horizon).min(p.end.max(t0 + 1));
        let apply = |sim: &mut Simulation, d: &[Option<u32>]| {
            for (c, d) in intersections.iter().zip(d) {
                if let Some(ph) = *d {
                    let _ = sim.request_phase(c.intersection, ph, &p.timing);
                }
            }
        };
        apply(&mut sim, first);
        let mut decisions = vec![None; intersections.len()];
        while sim.steps() < end {
            let t = sim.steps();
            if t > t0 && p.decision_interval > 0 && t.is_multiple_of(p.decision_interval) {
                self.stats.refresh(&sim);
                decisions.iter_mut().for_each(|d| *d = None);
                let view = SignalView {
                    sim: &sim,
                    lanes: &self.stats,
                    intersections,
                };
                ctrl.decide(&view, &mut decisions);
                if let Some(k) = held
                    && t < t0 + p.hold
                {
                    decisions[k] = first[k];
                }
                apply(&mut sim, &decisions);
            }
            sim.step();
            ctrl.observe(&sim);
        }
        let mut cost = sim.total_delay();
        if p.w_term != 0.0 || p.w_entry != 0.0 || p.w_backlog != 0.0 {
            let lanes = sim.network().lanes.len() as u32;
            let (mut queued, mut entry, mut backlog) = (0u32, 0u32, 0u32);
            for l in 0..lanes {
                let e = sim.lane_entry_queue(l);
                entry += e;
                queued += e;
                if p.w_term != 0.0 {
                    queued += sim.lane_waiting_count(l);
                }
                if e > 0 {
                    backlog += sim.lane_vehicle_count(l);
                }
            }
            cost += p.w_term * f64::from(queued)
                + p.w_entry * f64::from(entry)
                + p.w_backlog * f64::from(backlog);
        }
        cost
    }
}

impl SignalController for Rollout {
    fn name(&self) -> &str {
        "rollout"
    }

    fn observe(&mut self, sim: &Simulation) {
        self.base.observe(sim);
    }

    fn decide(&mut self, view: &SignalView<'_>, decisions: &mut [Option<u32>]) {
        // The base policy's decision (and its wait bookkeeping for the guard).
        self.base.decide(view, decisions);
        if self.params.horizon == 0 || view.intersections.is_empty() {
            return;
        }
        let now = view.sim.time();
        let candidates: Vec<Vec<u32>> = view
            .intersections
            .iter()
            .enumerate()
            .map(|(k, c)| {
                if view.sim.in_transition(c.intersection) {
                    Vec::new()
                } else {
                    let mut permitted = self.base.permitted(k, now);
                    if self.params.demand_only {
                        let chosen = decisions[k].unwrap_or(view.sim.green_phase(c.intersection));
                        permitted.retain(|&ph| {
                            ph == chosen
                                || c.phases.iter().any(|pm| {
                                    pm.phase == ph
                                        && pm
                                            .incoming
                                            .iter()
                                            .any(|&l| view.lanes.vehicles[l as usize] > 0)
                                })
                        });
                    }
                    permitted
                }
            })
            .collect();
        if candidates.iter().all(|c| c.len() < 2) {
            return;
        }
        let mut twin = view.sim.clone();
        twin.stop_arrivals();
        let base = self.base.clone();
        let current: Vec<u32> = view
            .intersections
            .iter()
            .map(|c| view.sim.green_phase(c.intersection))
            .collect();
        // The joint decision, as phases (None: in a transition).
        let mut joint: Vec<Option<u32>> = decisions
            .iter()
            .zip(&current)
            .zip(view.intersections)
            .map(|((d, &cur), c)| {
                if view.sim.in_transition(c.intersection) {
                    None
                } else {
                    Some(d.unwrap_or(cur))
                }
            })
            .collect();
        let mut best = self.rollout(&twin, &base, view.intersections, &joint, None);
        for _ in 0..self.params.rounds {
            let mut changed = false;
            for k in 0..joint.len() {
                let Some(chosen) = joint[k] else { continue };
                let mut pick = None;
                for &ph in &candidates[k] {
                    if ph == chosen {
                        continue;
                    }
                    let mut trial = joint.clone();
                    trial[k] = Some(ph);
                    let cost = self.rollout(&twin, &base, view.intersections, &trial, Some(k));
                    if cost < best - self.params.margin
                        && pick.is_none_or(|(c, _): (f64, u32)| cost < c)
                    {
                        pick = Some((cost, ph));
                    }
                }
                if let Some((cost, ph)) = pick {
                    joint[k] = Some(ph);
                    best = cost;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        for (d, j) in decisions.iter_mut().zip(joint) {
            *d = j;
        }
    }
}
