//! Signal controllers and the episode driver.
//!
//! This module holds only what the fidelity protocol needs: the [`SignalController`] trait,
//! the P15 driver ([`Protocol::p15`], [`run_episode`]) and two reference controllers
//! ([`FixedTime`], [`MaxPressure`]). It depends on the simulator only through the public API, so
//! it can move to the `traffic-signals` crate unchanged.
//!
//! A controller never sets a light directly: it returns the phase it wants per intersection and
//! the simulator enforces minimum green, yellow and all-red ([`crate::SignalTiming`]).

use crate::network::{IntersectionId, LaneId};
use crate::signal::SignalTiming;
use crate::spec::TurnKind;
use crate::{MetricsReport, Simulation};

/// A signalised intersection as a controller sees it.
#[derive(Debug, Clone)]
pub struct ControlledIntersection {
    /// Index in the network.
    pub intersection: IntersectionId,
    /// Id from the roadnet.
    pub id: String,
    /// The phases a controller may choose, with their movements.
    pub phases: Vec<PhaseMovements>,
}

/// The lanes served by one phase, right turns excluded (they are green in every benchmark
/// phase).
#[derive(Debug, Clone)]
pub struct PhaseMovements {
    /// Light phase index.
    pub phase: u32,
    /// Distinct lanes on which the phase's movements start.
    pub incoming: Vec<LaneId>,
    /// Distinct lanes on which they end.
    pub outgoing: Vec<LaneId>,
}

/// Per-lane figures taken once per decision.
#[derive(Debug, Clone, Default)]
pub struct LaneStats {
    /// Vehicles on the lane (CityFlow's `get_lane_vehicle_count`).
    pub vehicles: Vec<u32>,
    /// Vehicles slower than 0.1 m/s (CityFlow's `get_lane_waiting_vehicle_count`).
    pub waiting: Vec<u32>,
    /// Length of the standing queue from the stop line, metres (0 if the front vehicle moves).
    pub queue_length: Vec<f64>,
}

impl LaneStats {
    /// Recomputes for the simulation's current state (reuses the vectors).
    pub fn refresh(&mut self, sim: &Simulation) {
        let net = sim.network();
        let n = net.lanes.len();
        self.vehicles.resize(n, 0);
        self.waiting.resize(n, 0);
        self.queue_length.resize(n, 0.0);
        for lane in 0..n as u32 {
            let (count, waiting, queue) = sim.lane_figures(lane);
            self.vehicles[lane as usize] = count;
            self.waiting[lane as usize] = waiting;
            self.queue_length[lane as usize] = queue;
        }
    }
}

/// What a controller sees at a decision point.
pub struct SignalView<'a> {
    /// The simulation (read-only): time, phases, vehicles.
    pub sim: &'a Simulation,
    /// Per-lane counts, refreshed for this decision.
    pub lanes: &'a LaneStats,
    /// The intersections under control, in the order of the decision slice.
    pub intersections: &'a [ControlledIntersection],
}

impl SignalView<'_> {
    /// Moving vehicles (0.1 m/s or faster) within `within` metres of the lane's stop line.
    pub fn approaching(&self, lane: LaneId, within: f64) -> u32 {
        self.sim.lane_approaching(lane, within)
    }
}

/// A signal control policy.
pub trait SignalController {
    /// Short name for reports.
    fn name(&self) -> &str;

    /// Writes, per controlled intersection, the phase it wants (`None`: keep the current one).
    fn decide(&mut self, view: &SignalView<'_>, decisions: &mut [Option<u32>]);

    /// Called by [`EpisodeDriver`] after every simulation step, for controllers that keep
    /// per-second bookkeeping between decisions (read-only: it cannot change the run). Default:
    /// nothing.
    fn observe(&mut self, _sim: &Simulation) {}
}

/// How an episode is driven.
#[derive(Debug, Clone, PartialEq)]
pub struct Protocol {
    /// Steps to run.
    pub steps: u64,
    /// Steps between decisions (the first decision is at this step, not at 0).
    pub decision_interval: u64,
    /// Safety timing enforced by the simulator.
    pub timing: SignalTiming,
    /// Phase shown from t = 0.
    pub initial_phase: u32,
    /// Phases a controller may choose.
    pub phases: Vec<u32>,
}

impl Protocol {
    /// Issue 4's P15: 3600 steps, phases 1..4, phase 1 from t = 0, a decision every 15 s, a
    /// change shows phase 0 for 5 s first.
    pub fn p15() -> Protocol {
        Protocol {
            steps: 3600,
            decision_interval: 15,
            timing: SignalTiming::P15,
            initial_phase: 1,
            phases: vec![1, 2, 3, 4],
        }
    }
}

/// The signalised intersections of `sim` with the movements of `phases`.
pub fn controlled_intersections(sim: &Simulation, phases: &[u32]) -> Vec<ControlledIntersection> {
    let net = sim.network();
    let mut out = Vec::new();
    for (i, x) in net.intersections.iter().enumerate() {
        if x.is_virtual || x.phases.is_empty() {
            continue;
        }
        let mut ph = Vec::new();
        for &p in phases {
            let Some(phase) = x.phases.get(p as usize) else {
                continue;
            };
            let mut incoming = Vec::new();
            let mut outgoing = Vec::new();
            for rl in x.road_links.clone() {
                let road_link = &net.road_links[rl as usize];
                if road_link.kind == TurnKind::Right
                    || !phase
                        .green
                        .get(road_link.index as usize)
                        .copied()
                        .unwrap_or(false)
                {
                    continue;
                }
                for ll in road_link.lane_links.clone() {
                    let link = &net.lane_links[ll as usize];
                    if !incoming.contains(&link.start_lane) {
                        incoming.push(link.start_lane);
                    }
                    if !outgoing.contains(&link.end_lane) {
                        outgoing.push(link.end_lane);
                    }
                }
            }
            ph.push(PhaseMovements {
                phase: p,
                incoming,
                outgoing,
            });
        }
        out.push(ControlledIntersection {
            intersection: i as u32,
            id: x.id.clone(),
            phases: ph,
        });
    }
    out
}

/// Runs `protocol.steps` steps. With a controller, every signalised intersection starts on
/// `protocol.initial_phase` and the controller is asked every `decision_interval` steps; with
/// `None` the signals do whatever the simulation was configured for (the roadnet's plan when
/// `rl_traffic_light` is false). Returns the metrics at the end.
pub fn run_episode(
    sim: &mut Simulation,
    controller: Option<&mut dyn SignalController>,
    protocol: &Protocol,
) -> MetricsReport {
    let mut driver = EpisodeDriver::new(sim, controller.is_some(), protocol);
    driver.run_until(sim, controller, protocol.steps);
    sim.metrics()
}

/// [`run_episode`] in pieces (for progress reporting or interleaved observation): the same
/// decisions at the same steps, whatever the piece boundaries.
pub struct EpisodeDriver {
    protocol: Protocol,
    controlled: Vec<ControlledIntersection>,
    stats: LaneStats,
    decisions: Vec<Option<u32>>,
}

impl EpisodeDriver {
    /// Prepares `sim` (at its current time) for `protocol`; with `controlled`, sets every
    /// signalised intersection to the initial phase.
    pub fn new(sim: &mut Simulation, controlled: bool, protocol: &Protocol) -> EpisodeDriver {
        let list = controlled_intersections(sim, &protocol.phases);
        if controlled {
            for c in &list {
                // Intersections without that phase keep their initial display.
                let _ = sim.set_phase(c.intersection, protocol.initial_phase);
            }
        }
        let n = list.len();
        EpisodeDriver {
            protocol: protocol.clone(),
            controlled: list,
            stats: LaneStats::default(),
            decisions: vec![None; n],
        }
    }

    /// Steps until `sim.steps() == until`, asking `controller` at every decision step.
    pub fn run_until<'c>(
        &mut self,
        sim: &mut Simulation,
        mut controller: Option<&mut (dyn SignalController + 'c)>,
        until: u64,
    ) {
        let interval = self.protocol.decision_interval;
        while sim.steps() < until {
            let t = sim.steps();
            if let Some(ctrl) = controller.as_deref_mut()
                && t > 0
                && interval > 0
                && t.is_multiple_of(interval)
            {
                self.stats.refresh(sim);
                self.decisions.iter_mut().for_each(|d| *d = None);
                let view = SignalView {
                    sim,
                    lanes: &self.stats,
                    intersections: &self.controlled,
                };
                ctrl.decide(&view, &mut self.decisions);
                for (c, d) in self.controlled.iter().zip(&self.decisions) {
                    if let Some(p) = *d {
                        // A refused request (min green, transition) keeps the current phase.
                        let _ = sim.request_phase(c.intersection, p, &self.protocol.timing);
                    }
                }
            }
            sim.step();
            if let Some(ctrl) = controller.as_deref_mut() {
                ctrl.observe(sim);
            }
        }
    }
}

/// Cycles through a fixed list of phases, one per decision.
#[derive(Debug, Clone)]
pub struct FixedTime {
    cycle: Vec<u32>,
}

impl FixedTime {
    /// A controller cycling through `cycle` (e.g. `[1, 2, 3, 4]`).
    pub fn new(cycle: Vec<u32>) -> Self {
        FixedTime { cycle }
    }
}

impl SignalController for FixedTime {
    fn name(&self) -> &str {
        "fixed-time"
    }

    fn decide(&mut self, view: &SignalView<'_>, decisions: &mut [Option<u32>]) {
        if self.cycle.is_empty() {
            return;
        }
        for (c, d) in view.intersections.iter().zip(decisions.iter_mut()) {
            let current = view.sim.green_phase(c.intersection);
            let next = match self.cycle.iter().position(|&p| p == current) {
                Some(k) => self.cycle[(k + 1) % self.cycle.len()],
                None => self.cycle[0],
            };
            *d = Some(next);
        }
    }
}

/// Picks the phase with the largest pressure: waiting vehicles on its incoming lanes minus
/// waiting vehicles on its outgoing lanes (first maximum wins).
#[derive(Debug, Clone, Default)]
pub struct MaxPressure;

impl SignalController for MaxPressure {
    fn name(&self) -> &str {
        "max-pressure"
    }

    fn decide(&mut self, view: &SignalView<'_>, decisions: &mut [Option<u32>]) {
        let waiting = &view.lanes.waiting;
        for (c, d) in view.intersections.iter().zip(decisions.iter_mut()) {
            let mut best: Option<(i64, u32)> = None;
            for ph in &c.phases {
                let inflow: i64 = ph
                    .incoming
                    .iter()
                    .map(|&l| i64::from(waiting[l as usize]))
                    .sum();
                let outflow: i64 = ph
                    .outgoing
                    .iter()
                    .map(|&l| i64::from(waiting[l as usize]))
                    .sum();
                let pressure = inflow - outflow;
                if best.is_none_or(|(b, _)| pressure > b) {
                    best = Some((pressure, ph.phase));
                }
            }
            *d = best.map(|(_, p)| p);
        }
    }
}
