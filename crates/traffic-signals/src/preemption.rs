//! Emergency-vehicle preemption: clear and hold a green corridor ahead of an emergency vehicle
//! (EV), then hand the signals back to normal control.
//!
//! [`Preemption`] wraps any controller. It is driven every second (the episode runs with a
//! decision interval of 1 s) and passes the inner controller's decisions through on the inner
//! protocol's grid (every 15 s under P15), so with no EV in the network it decides exactly what
//! the inner controller alone decides. While the EV runs, for each signalised intersection on its
//! route (at most `max_ahead` of them) that lies within `lead_distance` metres ahead of it, or
//! whose queue needs longer to clear than the EV needs to get there (queue look-ahead: free-flow
//! arrival time <= switch time + `headway` x (vehicles on the EV's approach lane + `carry` x the
//! vehicles ahead of the EV on its movement's lanes at the signals before it, which reach it
//! first) + `clear_margin`, never more than `max_lead_time` ahead), it requests the phase that gives the EV's movement
//! green, every second, until the EV has entered the intersection. The request is refused while
//! the current green has not served its minimum green and the yellow is shown first, exactly as
//! for any controller: the safety timing is the simulator's. Requesting early lets the queue in
//! front of the EV discharge before it arrives ("clear"); requesting every second keeps the
//! green ("hold"). Once the EV has passed, the intersection keeps its phase until the inner
//! controller's next decision ("recover").
//!
//! Right turns are green in every phase of the benchmark networks, so a right-turn movement needs
//! no preemption.
//!
//! [`evaluate_preemption`] runs one EV trip twice in the same scenario (the EV is in both runs,
//! so the other vehicles see the same demand and random draws), without and with preemption,
//! and reports the EV's travel time and the other vehicles' ATT.

use std::sync::Arc;

use traffic_sim::control::{EpisodeDriver, SignalController, SignalView};
use traffic_sim::network::{LaneId, RoadId};
use traffic_sim::spec::{TurnKind, VehicleSpec};
use traffic_sim::{LoadError, Scenario, SignalTiming, Simulation, VehicleWhere};

use crate::protocol::ProtocolKind;

/// Parameters of [`Preemption`].
#[derive(Debug, Clone, PartialEq)]
pub struct PreemptionParams {
    /// An intersection is always preempted once the EV is this many metres (along its route)
    /// from its stop line.
    pub lead_distance: f64,
    /// At most this many intersections ahead are preempted at once.
    pub max_ahead: usize,
    /// Queue look-ahead: an intersection further away is preempted once the EV's free-flow
    /// arrival time is within the time its queue needs to clear: the switch to the EV's phase
    /// (rest of the minimum green, yellow, all-red) plus `headway` seconds per vehicle on the
    /// EV's approach lane(s) plus `clear_margin`. `headway = 0` turns the look-ahead off.
    pub headway: f64,
    /// See `headway`, seconds.
    pub clear_margin: f64,
    /// Fairness guard: no intersection is preempted while the EV is more than this many seconds
    /// (free flow) from it, however long its queue.
    pub max_lead_time: f64,
    /// Weight of the vehicles carried ahead of the EV: the look-ahead's queue at a signal also
    /// counts, times this, the vehicles ahead of the EV on its movement's lanes at the signals
    /// before it on the route. They cannot be overtaken and reach that signal before the EV, so
    /// its queue must be cleared early enough for them too (0: only the signal's own queue).
    pub carry: f64,
}

impl Default for PreemptionParams {
    fn default() -> Self {
        PreemptionParams {
            lead_distance: 600.0,
            max_ahead: 4,
            headway: 3.0,
            clear_margin: 10.0,
            max_lead_time: 150.0,
            carry: 1.0,
        }
    }
}

/// One stop on the EV's route: the signalised intersection at the end of route road `j`.
#[derive(Debug, Clone)]
struct Stop {
    /// Index in the driver's controlled-intersection list.
    slot: usize,
    /// Phase giving the movement `route[j] -> route[j + 1]` green.
    phase: u32,
    /// Lanes of road `j` from which that movement starts (the EV queues on one of them).
    lanes: Vec<LaneId>,
}

/// One road of the EV's route.
#[derive(Debug, Clone)]
struct Leg {
    /// Lane length, metres.
    length: f64,
    /// Lane speed limit, m/s.
    speed: f64,
    /// The signal at its end, if the EV's movement there needs a phase.
    stop: Option<Stop>,
}

/// What the wrapper did during an episode.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PreemptionLog {
    /// Step at which the EV was first seen (created).
    pub seen_at: Option<u64>,
    /// Step at which it had left the network.
    pub finished_at: Option<u64>,
    /// (intersection index, route road index) pairs preempted, in order of first request.
    pub preempted: Vec<(u32, usize)>,
    /// Seconds during which at least one intersection was preempted.
    pub preempted_seconds: u64,
}

/// A controller wrapper giving an emergency vehicle a green corridor (module docs).
pub struct Preemption {
    inner: Box<dyn SignalController + Send>,
    /// The EV's flow (the vehicle is `flow_{flow}_0`).
    flow: u32,
    params: PreemptionParams,
    /// The inner controller decides on this grid (steps).
    inner_interval: u64,
    /// `false`: pass-through (the same driving without preemption, for comparison).
    enabled: bool,
    prepared: bool,
    route: Vec<RoadId>,
    /// Per route road: its length, speed limit and the stop at its end, if any.
    legs: Vec<Leg>,
    /// Safety timing the simulator enforces (for the look-ahead's switch time).
    timing: SignalTiming,
    log: PreemptionLog,
    name: String,
}

impl Preemption {
    /// Wraps `inner` (deciding every `inner_interval` steps) for the EV of flow `flow`;
    /// `enabled = false` only passes the inner decisions through.
    pub fn new(
        inner: Box<dyn SignalController + Send>,
        flow: u32,
        inner_interval: u64,
        params: PreemptionParams,
        enabled: bool,
    ) -> Self {
        let name = if enabled {
            format!("{}+preemption", inner.name())
        } else {
            inner.name().to_owned()
        };
        Preemption {
            inner,
            flow,
            params,
            inner_interval: inner_interval.max(1),
            enabled,
            prepared: false,
            route: Vec::new(),
            legs: Vec::new(),
            timing: SignalTiming::P15,
            log: PreemptionLog::default(),
            name,
        }
    }

    /// The safety timing the episode runs with (P15's by default); the queue look-ahead uses it
    /// to estimate how long a switch to the EV's phase takes.
    pub fn with_timing(mut self, timing: SignalTiming) -> Self {
        self.timing = timing;
        self
    }

    /// What happened so far.
    pub fn log(&self) -> &PreemptionLog {
        &self.log
    }

    /// The wrapped controller.
    pub fn inner(&self) -> &dyn SignalController {
        &*self.inner
    }

    fn prepare(&mut self, view: &SignalView<'_>) {
        self.prepared = true;
        let sim = view.sim;
        let net = sim.network();
        let Some(flow) = sim.scenario().flows.get(self.flow as usize) else {
            return;
        };
        self.route = flow.route.clone();
        self.legs = self
            .route
            .iter()
            .enumerate()
            .map(|(j, &road)| {
                let r = &net.roads[road as usize];
                let (length, speed) = r.lanes.clone().next().map_or((0.0, 1.0), |l| {
                    let lane = &net.lanes[l as usize];
                    (lane.length, lane.max_speed.max(0.1))
                });
                let stop = self.route.get(j + 1).and_then(|&next| {
                    let slot = view
                        .intersections
                        .iter()
                        .position(|c| c.intersection == r.end)?;
                    let x = &net.intersections[r.end as usize];
                    let rl = x.road_links.clone().find(|&k| {
                        let l = &net.road_links[k as usize];
                        l.start_road == road && l.end_road == next
                    })?;
                    let link = &net.road_links[rl as usize];
                    if link.kind == TurnKind::Right {
                        return None;
                    }
                    let phase = view.intersections[slot].phases.iter().find(|pm| {
                        x.phases
                            .get(pm.phase as usize)
                            .and_then(|p| p.green.get(link.index as usize))
                            .copied()
                            .unwrap_or(false)
                    })?;
                    let mut lanes: Vec<LaneId> = Vec::new();
                    for ll in link.lane_links.clone() {
                        let start = net.lane_links[ll as usize].start_lane;
                        if !lanes.contains(&start) {
                            lanes.push(start);
                        }
                    }
                    Some(Stop {
                        slot,
                        phase: phase.phase,
                        lanes,
                    })
                });
                Leg {
                    length,
                    speed,
                    stop,
                }
            })
            .collect();
    }

    /// The EV's position: index of the route road whose end intersection is next, and the
    /// metres to that intersection's stop line.
    fn position(&self, at: VehicleWhere) -> Option<(usize, f64)> {
        let find = |road: RoadId| self.route.iter().position(|&r| r == road);
        match at {
            VehicleWhere::WaitingToEnter => self.legs.first().map(|l| (0, l.length)),
            VehicleWhere::Lane { road, distance, .. } => {
                let j = find(road)?;
                Some((j, (self.legs[j].length - distance).max(0.0)))
            }
            VehicleWhere::Link { to, .. } => {
                let j = find(to)?;
                Some((j, self.legs[j].length))
            }
        }
    }

    /// Seconds the queue at `stop` needs before the EV can pass: the switch to its phase (if
    /// another one is green) plus `headway` per vehicle on its busiest approach lane plus the
    /// margin.
    fn clearance_time(&self, view: &SignalView<'_>, stop: &Stop, carried: f64) -> f64 {
        let x = view.intersections[stop.slot].intersection;
        let sim = view.sim;
        let t = &self.timing;
        let switch = if sim.green_phase(x) == stop.phase {
            0.0
        } else if sim.in_transition(x) {
            // Another phase is coming: its yellow, its minimum green, then ours.
            t.yellow + t.all_red + t.min_green + t.yellow + t.all_red
        } else {
            (t.min_green - sim.phase_elapsed(x)).max(0.0) + t.yellow + t.all_red
        };
        let queued = stop
            .lanes
            .iter()
            .map(|&l| view.lanes.vehicles.get(l as usize).copied().unwrap_or(0))
            .max()
            .unwrap_or(0);
        switch
            + (f64::from(queued) + self.params.carry * carried) * self.params.headway
            + self.params.clear_margin
    }

    /// Vehicles on `stop`'s lanes (the busiest one) that are ahead of the EV, which is at `at`
    /// on the stop's road, `d` metres from its stop line (all of them if it is not on one of
    /// those lanes yet).
    fn ahead_of_ev(&self, view: &SignalView<'_>, stop: &Stop, at: VehicleWhere, d: f64) -> u32 {
        let sim = view.sim;
        match at {
            VehicleWhere::Lane { lane, .. } if stop.lanes.contains(&lane) => {
                let (_, waiting, _) = sim.lane_figures(lane);
                let moving = sim.lane_approaching(lane, (d - 0.5).max(0.0));
                // A waiting EV is one of the waiting vehicles.
                let ev_waiting = sim.flow_vehicle(self.flow, 0).is_some_and(|(_, v)| v < 0.1);
                (moving + waiting).saturating_sub(u32::from(ev_waiting))
            }
            _ => stop
                .lanes
                .iter()
                .map(|&l| view.lanes.vehicles.get(l as usize).copied().unwrap_or(0))
                .max()
                .unwrap_or(0),
        }
    }
}

impl SignalController for Preemption {
    fn name(&self) -> &str {
        &self.name
    }

    /// Passed through, so an inner controller's per-second bookkeeping (e.g. `adaptive`'s
    /// exact red waits) is the same with and without the wrapper.
    fn observe(&mut self, sim: &Simulation) {
        self.inner.observe(sim);
    }

    fn decide(&mut self, view: &SignalView<'_>, decisions: &mut [Option<u32>]) {
        let t = view.sim.steps();
        if t.is_multiple_of(self.inner_interval) {
            self.inner.decide(view, decisions);
        }
        if !self.prepared {
            self.prepare(view);
        }
        let Some((at, _speed)) = view.sim.flow_vehicle(self.flow, 0) else {
            if self.log.seen_at.is_some() && self.log.finished_at.is_none() {
                self.log.finished_at = Some(t);
            }
            return;
        };
        self.log.seen_at.get_or_insert(t);
        if !self.enabled {
            return;
        }
        let Some((mut j, mut d)) = self.position(at) else {
            return;
        };
        // Free-flow time to the next stop line.
        let mut eta = d / self.legs[j].speed;
        let mut count = 0;
        let mut any = false;
        let look_ahead = self.params.headway > 0.0;
        let first = j;
        // Vehicles ahead of the EV that pass the signals before the next one on its movement.
        let mut carried = 0.0;
        while j < self.legs.len()
            && count < self.params.max_ahead
            && (d <= self.params.lead_distance || (look_ahead && eta <= self.params.max_lead_time))
        {
            if let Some(stop) = &self.legs[j].stop {
                let due = d <= self.params.lead_distance
                    || (look_ahead && eta <= self.clearance_time(view, stop, carried));
                if due {
                    decisions[stop.slot] = Some(stop.phase);
                    count += 1;
                    any = true;
                    let x = view.intersections[stop.slot].intersection;
                    if !self.log.preempted.contains(&(x, j)) {
                        self.log.preempted.push((x, j));
                    }
                }
                if self.params.carry > 0.0 {
                    let here = if j == first {
                        self.ahead_of_ev(view, stop, at, d)
                    } else {
                        self.ahead_of_ev(view, stop, VehicleWhere::WaitingToEnter, 0.0)
                    };
                    carried += f64::from(here);
                }
            }
            j += 1;
            if let Some(leg) = self.legs.get(j) {
                d += leg.length;
                eta += leg.length / leg.speed;
            }
        }
        if any {
            self.log.preempted_seconds += 1;
        }
    }
}

/// An emergency-vehicle trip: route (road ids: origin, optional anchors, destination) and
/// departure time (seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct EvTrip {
    /// Road ids, joined by shortest paths.
    pub route: Vec<String>,
    /// Departure (seconds from the start of the episode).
    pub depart: i64,
}

/// One run of an EV trip.
#[derive(Debug, Clone, PartialEq)]
pub struct EvRun {
    /// EV travel time, seconds (from departure to leaving the network), or `None` if it had not
    /// left by the end of the extended run.
    pub ev_travel_time: Option<f64>,
    /// ATT at the end of the episode of every vehicle except the EV (CityFlow's definition).
    pub others_att: f64,
    /// ATT of every vehicle (the EV included).
    pub att: f64,
    /// Trips finished at the end of the episode.
    pub trips_finished: u64,
    /// Signalised intersections preempted.
    pub intersections_preempted: usize,
    /// Seconds with a preemption active.
    pub preempted_seconds: u64,
}

/// An EV trip without and with preemption.
#[derive(Debug, Clone, PartialEq)]
pub struct PreemptionResult {
    /// The trip.
    pub trip: EvTrip,
    /// Signalised intersections on its route whose movement needs a phase (not a right turn).
    pub signals_on_route: usize,
    /// Without preemption (the inner controller only).
    pub without: EvRun,
    /// With preemption.
    pub with: EvRun,
}

/// Runs `trip` in `scenario` (controllable; see [`crate::protocol::controllable`]) under
/// `protocol` with the controller `make_inner()` builds, once without and once with
/// [`Preemption`]. The episode lasts the protocol's steps (the ATT is taken there) and then goes
/// on, up to as long again, until the EV has left.
pub fn evaluate_preemption(
    scenario: &Scenario,
    trip: &EvTrip,
    protocol: ProtocolKind,
    params: &PreemptionParams,
    mut make_inner: impl FnMut() -> Box<dyn SignalController + Send>,
) -> Result<PreemptionResult, LoadError> {
    let (with_ev, flow) =
        scenario.with_vehicle(VehicleSpec::BENCHMARK, trip.route.clone(), trip.depart)?;
    let with_ev = Arc::new(with_ev);
    let p = protocol.protocol();
    let mut runs = Vec::with_capacity(2);
    let mut signals_on_route = 0;
    for enabled in [false, true] {
        let mut ctrl = Preemption::new(
            make_inner(),
            flow,
            p.decision_interval,
            params.clone(),
            enabled,
        )
        .with_timing(p.timing);
        let (run, signals) = run_ev_episode(with_ev.clone(), &mut ctrl, protocol, trip.depart);
        signals_on_route = signals;
        runs.push(run);
    }
    let with = runs.pop().unwrap_or_else(empty_run);
    let without = runs.pop().unwrap_or_else(empty_run);
    Ok(PreemptionResult {
        trip: trip.clone(),
        signals_on_route,
        without,
        with,
    })
}

fn empty_run() -> EvRun {
    EvRun {
        ev_travel_time: None,
        others_att: 0.0,
        att: 0.0,
        trips_finished: 0,
        intersections_preempted: 0,
        preempted_seconds: 0,
    }
}

/// Runs one episode with a [`Preemption`] wrapper driven every second; returns the run and the
/// number of preemptable signals on the route.
pub fn run_ev_episode(
    scenario: Arc<Scenario>,
    ctrl: &mut Preemption,
    protocol: ProtocolKind,
    depart: i64,
) -> (EvRun, usize) {
    let mut p = protocol.protocol();
    let steps = p.steps;
    p.decision_interval = 1;
    let mut sim = Simulation::new(scenario);
    let mut driver = EpisodeDriver::new(&mut sim, true, &p);
    driver.run_until(&mut sim, Some(&mut *ctrl), steps);
    let m = sim.metrics();
    // The EV's share of the ATT: its travel time so far, or (if not created) nothing.
    let mut seen = ctrl.log().seen_at.is_some() || sim.flow_vehicle(ctrl.flow, 0).is_some();
    let finished_by_end = ctrl.log().finished_at;
    // Go on until the EV has left (the decisions go on too, so the tail is driven the same way).
    let mut finished = finished_by_end;
    while finished.is_none() && sim.steps() < 2 * steps {
        let next = sim.steps() + 1;
        driver.run_until(&mut sim, Some(&mut *ctrl), next);
        finished = ctrl.log().finished_at;
        if !seen && sim.flow_vehicle(ctrl.flow, 0).is_some() {
            seen = true;
        }
    }
    if finished.is_none() && seen && sim.flow_vehicle(ctrl.flow, 0).is_none() {
        finished = Some(sim.steps());
    }
    // The wrapper notices the EV has gone at the decision after it left: that decision's step.
    let ev_travel_time = finished.map(|f| f as f64 - depart as f64);
    let n = (m.trips_finished + m.running + m.waiting_to_enter) as f64;
    let ev_share = if depart as f64 >= m.time {
        0.0
    } else {
        match finished_by_end {
            Some(f) => f as f64 - depart as f64,
            None => m.time - depart as f64,
        }
    };
    let others_att = if n > 1.0 && depart < steps as i64 {
        (m.average_travel_time * n - ev_share) / (n - 1.0)
    } else {
        m.average_travel_time
    };
    let signals = ctrl.legs.iter().filter(|l| l.stop.is_some()).count();
    (
        EvRun {
            ev_travel_time,
            others_att,
            att: m.average_travel_time,
            trips_finished: m.trips_finished,
            intersections_preempted: ctrl.log().preempted.len(),
            preempted_seconds: ctrl.log().preempted_seconds,
        },
        signals,
    )
}

/// Four straight corridors of the Jinan 3 x 4 network (name, origin road, destination road):
/// two east-west ones crossing 4 signals and two north-south ones crossing 3.
pub const JINAN_CORRIDORS: [(&str, &str, &str); 4] = [
    ("W-E row 2", "road_0_2_0", "road_4_2_0"),
    ("E-W row 1", "road_5_1_2", "road_1_1_2"),
    ("S-N col 2", "road_2_0_1", "road_2_3_1"),
    ("N-S col 3", "road_3_4_3", "road_3_1_3"),
];

/// EV departure times used with [`JINAN_CORRIDORS`], seconds.
pub const JINAN_DEPARTURES: [i64; 5] = [600, 1200, 1800, 2400, 3000];

/// Summary over several trips.
#[derive(Debug, Clone, PartialEq)]
pub struct PreemptionSummary {
    /// Trips evaluated (those whose EV finished in both runs count in the means).
    pub trips: usize,
    /// Mean EV travel time without / with preemption, seconds.
    pub ev_mean_without: f64,
    /// See `ev_mean_without`.
    pub ev_mean_with: f64,
    /// Mean of the other vehicles' ATT without / with, seconds.
    pub others_att_without: f64,
    /// See `others_att_without`.
    pub others_att_with: f64,
}

impl PreemptionSummary {
    /// Summarises `results`.
    pub fn of(results: &[PreemptionResult]) -> PreemptionSummary {
        let both: Vec<(f64, f64)> = results
            .iter()
            .filter_map(|r| Some((r.without.ev_travel_time?, r.with.ev_travel_time?)))
            .collect();
        let n = both.len().max(1) as f64;
        let m = results.len().max(1) as f64;
        PreemptionSummary {
            trips: both.len(),
            ev_mean_without: both.iter().map(|b| b.0).sum::<f64>() / n,
            ev_mean_with: both.iter().map(|b| b.1).sum::<f64>() / n,
            others_att_without: results.iter().map(|r| r.without.others_att).sum::<f64>() / m,
            others_att_with: results.iter().map(|r| r.with.others_att).sum::<f64>() / m,
        }
    }

    /// Relative change of the mean EV travel time (negative: faster with preemption).
    pub fn ev_change(&self) -> f64 {
        self.ev_mean_with / self.ev_mean_without - 1.0
    }
}
