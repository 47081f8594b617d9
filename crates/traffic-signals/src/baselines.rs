//! Classic baselines on the protocol's decision grid: a Webster-optimised fixed plan, actuated
//! control (gap-out / max-out) and SOTL (self-organising traffic lights).
//!
//! All three choose among the protocol's phases at its decision steps, like every controller
//! here; the simulator enforces the yellow and the minimum green.
//!
//! - [`Webster`]: one fixed plan per intersection, computed once from the scenario's demand (the
//!   routes of its flows give the hourly volume of every movement). A phase's critical flow
//!   ratio is `y = max over its movements of (volume / lanes) / s` with a saturation flow `s` of
//!   1800 vehicles per hour per lane; the cycle is Webster's `C0 = (1.5 L + 5) / (1 - Y)` with
//!   `Y = sum y` (capped at 0.9) and `L` the yellow lost per cycle, clamped to
//!   `[phases x slot, max_cycle]`; the effective green `C0 - L` is split in proportion to the
//!   `y`. On the decision grid a phase holds `max(1, round((g + yellow) / slot))` decision slots.
//!   Phases run in order 1, 2, 3, 4 like `fixed-time`.
//! - [`Actuated`]: keeps the green while vehicles still come to it (a waiting vehicle or one
//!   within the distance covered in one decision interval at the speed limit: no gap yet) and
//!   its green is shorter than `max_green` (max-out); otherwise (gap-out or max-out) it moves to
//!   the next phase in cycle order that has demand, skipping empty ones.
//! - [`Sotl`]: Gershenson's self-organising lights. Each red phase accumulates the vehicles on
//!   its incoming lanes within `omega` metres of the stop line, times the seconds between
//!   decisions (vehicle-seconds). When the largest count reaches `theta` and the green has been
//!   shown at least `min_green`, the light switches to that phase, unless a small platoon
//!   (between 1 and `mu` vehicles) is about to cross on the green within `platoon` metres. The
//!   switched-to phase's count restarts from 0.

use traffic_sim::Simulation;
use traffic_sim::control::{ControlledIntersection, SignalController, SignalView};
use traffic_sim::network::LaneId;
use traffic_sim::spec::TurnKind;

use crate::protocol::ProtocolKind;

/// Saturation flow, vehicles per second per lane (1800 per hour).
pub const SATURATION_FLOW: f64 = 0.5;

/// Webster-optimised fixed plan (module docs).
#[derive(Debug, Clone)]
pub struct Webster {
    slot: f64,
    yellow: f64,
    max_cycle: f64,
    /// Per intersection: its cycle and where it is in it.
    plans: Vec<CycleState>,
    prepared: bool,
}

/// A cycle of (phase, decision slots), the position in it and the slots left there.
type CycleState = (Vec<(u32, u32)>, usize, u32);

/// One intersection's Webster plan (for reports and tests).
#[derive(Debug, Clone, PartialEq)]
pub struct WebsterPlan {
    /// Critical flow ratio per phase (same order as the protocol's phases).
    pub y: Vec<f64>,
    /// Webster's optimal cycle before rounding to the grid, seconds.
    pub cycle: f64,
    /// Decision slots per phase.
    pub slots: Vec<u32>,
}

impl Webster {
    /// A Webster plan on `protocol`'s grid (cycle at most `max_cycle` seconds).
    pub fn new(protocol: ProtocolKind, max_cycle: f64) -> Webster {
        let p = protocol.protocol();
        Webster {
            slot: p.decision_interval as f64,
            yellow: p.timing.yellow + p.timing.all_red,
            max_cycle,
            plans: Vec::new(),
            prepared: false,
        }
    }

    /// The plan of every controlled intersection, from `sim`'s scenario demand.
    pub fn plans(
        &self,
        sim: &Simulation,
        intersections: &[ControlledIntersection],
    ) -> Vec<WebsterPlan> {
        let net = sim.network();
        let sc = sim.scenario();
        let horizon = 3600.0;
        // Volume (vehicles per second) of every road link.
        let mut volume = vec![0.0f64; net.road_links.len()];
        for f in &sc.flows {
            let s = &f.spec;
            let start = s.start_time as f64;
            let end = if s.end_time < 0 {
                horizon
            } else {
                (s.end_time as f64).min(horizon)
            };
            if end < start || s.interval <= 0.0 {
                continue;
            }
            let vehicles = ((end - start) / s.interval).floor() + 1.0;
            for w in f.route.windows(2) {
                let x = net.roads[w[0] as usize].end;
                if let Some(k) = net.intersections[x as usize].road_links.clone().find(|&k| {
                    let l = &net.road_links[k as usize];
                    l.start_road == w[0] && l.end_road == w[1]
                }) {
                    volume[k as usize] += vehicles / horizon;
                }
            }
        }
        intersections
            .iter()
            .map(|c| {
                let x = &net.intersections[c.intersection as usize];
                let y: Vec<f64> = c
                    .phases
                    .iter()
                    .map(|pm| {
                        let green = &x.phases[pm.phase as usize].green;
                        x.road_links
                            .clone()
                            .filter(|&k| {
                                let l = &net.road_links[k as usize];
                                l.kind != TurnKind::Right
                                    && green.get(l.index as usize).copied().unwrap_or(false)
                            })
                            .map(|k| {
                                let l = &net.road_links[k as usize];
                                let mut lanes: Vec<LaneId> = l
                                    .lane_links
                                    .clone()
                                    .map(|ll| net.lane_links[ll as usize].start_lane)
                                    .collect();
                                lanes.sort_unstable();
                                lanes.dedup();
                                volume[k as usize] / lanes.len().max(1) as f64 / SATURATION_FLOW
                            })
                            .fold(0.0, f64::max)
                    })
                    .collect();
                let n = y.len().max(1) as f64;
                let lost = n * self.yellow;
                let big_y: f64 = y.iter().sum::<f64>().min(0.9);
                let min_cycle = n * self.slot;
                let cycle = ((1.5 * lost + 5.0) / (1.0 - big_y)).clamp(min_cycle, self.max_cycle);
                let green = cycle - lost;
                let total: f64 = y.iter().sum();
                let slots = y
                    .iter()
                    .map(|&yi| {
                        let g = if total > 0.0 {
                            green * yi / total
                        } else {
                            green / n
                        };
                        (((g + self.yellow) / self.slot).round() as u32).max(1)
                    })
                    .collect();
                WebsterPlan { y, cycle, slots }
            })
            .collect()
    }
}

impl SignalController for Webster {
    fn name(&self) -> &str {
        "webster"
    }

    fn decide(&mut self, view: &SignalView<'_>, decisions: &mut [Option<u32>]) {
        if !self.prepared {
            self.prepared = true;
            self.plans = self
                .plans(view.sim, view.intersections)
                .into_iter()
                .zip(view.intersections)
                .map(|(p, c)| {
                    let order: Vec<(u32, u32)> =
                        c.phases.iter().map(|pm| pm.phase).zip(p.slots).collect();
                    // The first phase has been green since t = 0: its first slot is used.
                    let current = view.sim.green_phase(c.intersection);
                    let k = order.iter().position(|o| o.0 == current).unwrap_or(0);
                    let left = order.get(k).map_or(1, |o| o.1);
                    (order, k, left)
                })
                .collect();
        }
        for ((order, k, left), d) in self.plans.iter_mut().zip(decisions.iter_mut()) {
            if order.is_empty() {
                continue;
            }
            *left = left.saturating_sub(1);
            if *left == 0 {
                *k = (*k + 1) % order.len();
                *left = order[*k].1;
            }
            *d = Some(order[*k].0);
        }
    }
}

/// Actuated control (module docs).
#[derive(Debug, Clone)]
pub struct Actuated {
    /// Longest green before max-out, seconds.
    pub max_green: f64,
    /// Detector reach: a moving vehicle this close to the stop line still extends the green.
    pub reach: f64,
}

impl Actuated {
    /// Max green 60 s; the reach is one decision interval at 11.1 m/s (40 km/h).
    pub fn new(protocol: ProtocolKind) -> Actuated {
        let p = protocol.protocol();
        Actuated {
            max_green: 60.0,
            reach: p.decision_interval as f64 * 11.11,
        }
    }

    fn demand(&self, view: &SignalView<'_>, lanes: &[LaneId]) -> u32 {
        lanes
            .iter()
            .map(|&l| view.lanes.waiting[l as usize] + view.approaching(l, self.reach))
            .sum()
    }
}

impl SignalController for Actuated {
    fn name(&self) -> &str {
        "actuated"
    }

    fn decide(&mut self, view: &SignalView<'_>, decisions: &mut [Option<u32>]) {
        for (c, d) in view.intersections.iter().zip(decisions.iter_mut()) {
            if c.phases.is_empty() || view.sim.in_transition(c.intersection) {
                continue;
            }
            let current = view.sim.green_phase(c.intersection);
            let k = c.phases.iter().position(|p| p.phase == current);
            let green_for = view.sim.phase_elapsed(c.intersection);
            if let Some(k) = k
                && green_for < self.max_green
                && self.demand(view, &c.phases[k].incoming) > 0
            {
                continue; // no gap yet: extend
            }
            let start = k.map_or(0, |k| k + 1);
            let n = c.phases.len();
            let next = (0..n)
                .map(|i| (start + i) % n)
                .filter(|&i| Some(i) != k)
                .find(|&i| self.demand(view, &c.phases[i].incoming) > 0);
            if let Some(i) = next {
                *d = Some(c.phases[i].phase);
            }
        }
    }
}

/// SOTL, self-organising traffic lights (module docs).
#[derive(Debug, Clone)]
pub struct Sotl {
    /// Threshold, vehicle-seconds.
    pub theta: f64,
    /// Counting distance, metres.
    pub omega: f64,
    /// A platoon of 1..=mu vehicles close to the green keeps it.
    pub mu: u32,
    /// "Close", metres.
    pub platoon: f64,
    /// Minimum green before a switch, seconds.
    pub min_green: f64,
    interval: f64,
    /// Per intersection, per phase: accumulated vehicle-seconds.
    kappa: Vec<Vec<f64>>,
}

impl Sotl {
    /// The parameters used on every scenario under `protocol`.
    pub fn new(protocol: ProtocolKind) -> Sotl {
        let p = protocol.protocol();
        Sotl {
            theta: 150.0,
            omega: 200.0,
            mu: 3,
            platoon: 50.0,
            min_green: p.timing.min_green,
            interval: p.decision_interval as f64,
            kappa: Vec::new(),
        }
    }
}

impl SignalController for Sotl {
    fn name(&self) -> &str {
        "sotl"
    }

    fn decide(&mut self, view: &SignalView<'_>, decisions: &mut [Option<u32>]) {
        if self.kappa.len() != view.intersections.len() {
            self.kappa = view
                .intersections
                .iter()
                .map(|c| vec![0.0; c.phases.len()])
                .collect();
        }
        for ((c, kappa), d) in view
            .intersections
            .iter()
            .zip(self.kappa.iter_mut())
            .zip(decisions.iter_mut())
        {
            let current = view.sim.green_phase(c.intersection);
            let count = |lanes: &[LaneId], within: f64| -> u32 {
                lanes
                    .iter()
                    .map(|&l| view.lanes.waiting[l as usize] + view.approaching(l, within))
                    .sum()
            };
            let mut best: Option<(f64, usize)> = None;
            for (i, pm) in c.phases.iter().enumerate() {
                if pm.phase == current {
                    kappa[i] = 0.0;
                    continue;
                }
                kappa[i] += f64::from(count(&pm.incoming, self.omega)) * self.interval;
                if best.is_none_or(|(b, _)| kappa[i] > b) {
                    best = Some((kappa[i], i));
                }
            }
            if view.sim.in_transition(c.intersection)
                || view.sim.phase_elapsed(c.intersection) < self.min_green
            {
                continue;
            }
            let Some((k, i)) = best else { continue };
            if k < self.theta {
                continue;
            }
            if let Some(g) = c.phases.iter().find(|p| p.phase == current) {
                let close: u32 = g
                    .incoming
                    .iter()
                    .map(|&l| view.approaching(l, self.platoon))
                    .sum();
                if close > 0 && close <= self.mu {
                    continue;
                }
            }
            *d = Some(c.phases[i].phase);
            kappa[i] = 0.0;
        }
    }
}
