//! Arterial coordination: green waves along a corridor.
//!
//! A corridor is a row of signals with their positions; every signal runs the same fixed-time
//! cycle (arterial through, arterial left, cross through, cross left) shifted by its own
//! offset. [`optimise`] chooses the common cycle and the offsets that maximise the two-way
//! progression bandwidth, MAXBAND's objective (Little, Kelson and Gartner 1981): the widest
//! time band in which a vehicle travelling at the progression speed meets green at every signal,
//! outbound plus inbound. For a given cycle the search is exact over a start set that contains
//! MAXBAND's classic solutions (every signal aligned with the outbound band, with the inbound
//! band, or half a cycle apart) and then improves by coordinate descent on a one-second grid;
//! seeded random starts add robustness. Deterministic for a seed.
//!
//! [`time_space_svg`] draws the time-space diagram (signals' green windows, both bands), and
//! [`evaluate_corridor`] measures a plan in the simulator: stops per arterial vehicle, its
//! travel time and the whole corridor's ATT, against the same cycle with uncoordinated offsets.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use traffic_sim::control::{EpisodeDriver, Protocol, SignalController, SignalView};
use traffic_sim::generate::{GenerateError, GridSpec, generate_grid};
use traffic_sim::rng::Mt19937;
use traffic_sim::spec::{FlowSpec, VehicleSpec};
use traffic_sim::units::{Meters, MetersPerSecond, Seconds};
use traffic_sim::{EngineSettings, LoadError, Scenario, Simulation};

use crate::protocol::P5_TIMING;

/// A signal on the corridor.
#[derive(Debug, Clone, PartialEq)]
pub struct CorridorSignal {
    /// Intersection id in the roadnet.
    pub id: String,
    /// Distance from the first signal along the arterial, metres (increasing).
    pub position: f64,
}

/// The corridor to coordinate.
#[derive(Debug, Clone, PartialEq)]
pub struct Corridor {
    /// Signals in outbound order.
    pub signals: Vec<CorridorSignal>,
    /// Progression speed, m/s.
    pub speed: f64,
}

/// The fixed-time split every signal runs; times in seconds. A phase change shows `yellow`
/// seconds of phase 0 first (the simulator enforces it), so the arterial's effective green is
/// `arterial_green - yellow`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Split {
    /// Arterial through (phase 1), including the yellow that starts it.
    pub arterial_green: f64,
    /// Arterial left turns (phase 3); 0 skips the phase.
    pub arterial_left: f64,
    /// Cross street through (phase 2).
    pub cross_green: f64,
    /// Cross street left turns (phase 4); 0 skips the phase.
    pub cross_left: f64,
    /// Phase-0 time at every change.
    pub yellow: f64,
}

impl Split {
    /// The cycle length.
    pub fn cycle(&self) -> f64 {
        self.arterial_green + self.arterial_left + self.cross_green + self.cross_left
    }

    /// This split scaled to `cycle`, keeping the shares (each phase at least yellow + 3 s).
    pub fn scaled(&self, cycle: f64) -> Split {
        let k = cycle / self.cycle();
        let floor = |g: f64| {
            if g > 0.0 {
                (g * k).max(self.yellow + 3.0)
            } else {
                0.0
            }
        };
        let arterial_left = floor(self.arterial_left);
        let cross_green = floor(self.cross_green);
        let cross_left = floor(self.cross_left);
        Split {
            arterial_green: cycle - arterial_left - cross_green - cross_left,
            arterial_left,
            cross_green,
            cross_left,
            yellow: self.yellow,
        }
    }

    /// The phase shown `t` seconds into the cycle.
    fn phase_at(&self, t: f64) -> u32 {
        let mut edge = self.arterial_green;
        if t < edge {
            return 1;
        }
        edge += self.arterial_left;
        if t < edge {
            return 3;
        }
        edge += self.cross_green;
        if t < edge {
            return 2;
        }
        4
    }
}

/// A coordinated plan: the common cycle, the split, each signal's offset and the bands.
#[derive(Debug, Clone, PartialEq)]
pub struct GreenWave {
    /// Common cycle, seconds.
    pub cycle: f64,
    /// The split, scaled to the cycle.
    pub split: Split,
    /// Offset of each corridor signal (start of its arterial phase), seconds in `[0, cycle)`.
    pub offsets: Vec<f64>,
    /// Outbound bandwidth, seconds.
    pub outbound_band: f64,
    /// Start of the outbound band at the first signal, seconds.
    pub outbound_start: f64,
    /// Inbound bandwidth, seconds.
    pub inbound_band: f64,
    /// Start of the inbound band at the last signal, seconds.
    pub inbound_start: f64,
}

impl GreenWave {
    /// Two-way bandwidth as a share of the cycle (MAXBAND's efficiency), 0..1.
    pub fn efficiency(&self) -> f64 {
        (self.outbound_band + self.inbound_band) / (2.0 * self.cycle)
    }
}

/// Why a corridor cannot be coordinated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum GreenWaveError {
    /// Bad input.
    #[error("invalid green wave input `{field}`: {message}")]
    Invalid {
        /// Which input.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The corridor scenario could not be generated.
    #[error(transparent)]
    Generate(#[from] GenerateError),
    /// The corridor scenario could not be built.
    #[error(transparent)]
    Load(#[from] LoadError),
}

fn invalid(field: &'static str, message: impl Into<String>) -> GreenWaveError {
    GreenWaveError::Invalid {
        field,
        message: message.into(),
    }
}

fn check(corridor: &Corridor, split: &Split) -> Result<(), GreenWaveError> {
    if corridor.signals.len() < 2 {
        return Err(invalid("signals", "a corridor needs at least two signals"));
    }
    if !(corridor.speed.is_finite() && corridor.speed > 0.5) {
        return Err(invalid("speed", "must be a finite speed above 0.5 m/s"));
    }
    if corridor
        .signals
        .windows(2)
        .any(|w| !(w[1].position.is_finite() && w[1].position > w[0].position))
    {
        return Err(invalid("position", "signals must be in increasing order"));
    }
    let parts = [
        split.arterial_green,
        split.arterial_left,
        split.cross_green,
        split.cross_left,
        split.yellow,
    ];
    if parts.iter().any(|g| !(g.is_finite() && *g >= 0.0)) || split.arterial_green <= split.yellow {
        return Err(invalid(
            "split",
            "times must be finite and non-negative, with arterial green longer than the yellow",
        ));
    }
    Ok(())
}

/// Intervals (sorted, disjoint, within `[0, c)`) of a circular arc `[start, start + len)`.
fn arc(start: f64, len: f64, c: f64) -> Vec<(f64, f64)> {
    if len >= c {
        return vec![(0.0, c)];
    }
    let s = start.rem_euclid(c);
    if s + len <= c {
        vec![(s, s + len)]
    } else {
        vec![(0.0, s + len - c), (s, c)]
    }
}

fn intersect(a: &[(f64, f64)], b: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for &(a0, a1) in a {
        for &(b0, b1) in b {
            let (lo, hi) = (a0.max(b0), a1.min(b1));
            if hi > lo + 1e-9 {
                out.push((lo, hi));
            }
        }
    }
    out.sort_by(|x, y| x.0.total_cmp(&y.0));
    out
}

/// The longest contiguous piece of a circular interval set: (start, length).
fn longest(pieces: &[(f64, f64)], c: f64) -> (f64, f64) {
    let mut best = (0.0, 0.0);
    for &(lo, hi) in pieces {
        if hi - lo > best.1 {
            best = (lo, hi - lo);
        }
    }
    // A piece ending at the cycle's end continues with one starting at 0.
    if let (Some(&(first_lo, first_hi)), Some(&(last_lo, last_hi))) =
        (pieces.first(), pieces.last())
        && pieces.len() > 1
        && first_lo <= 1e-9
        && last_hi >= c - 1e-9
    {
        let len = (first_hi - first_lo) + (last_hi - last_lo);
        if len > best.1 {
            best = (last_lo, len);
        }
    }
    best
}

/// Outbound and inbound bands (start, width) for `offsets`.
fn bands(corridor: &Corridor, split: &Split, offsets: &[f64]) -> ((f64, f64), (f64, f64)) {
    let c = split.cycle();
    let green = split.arterial_green - split.yellow;
    let first = corridor.signals[0].position;
    let last = corridor.signals[corridor.signals.len() - 1].position;
    let mut out: Vec<(f64, f64)> = vec![(0.0, c)];
    let mut inb: Vec<(f64, f64)> = vec![(0.0, c)];
    for (s, o) in corridor.signals.iter().zip(offsets) {
        let to = (s.position - first) / corridor.speed;
        let ti = (last - s.position) / corridor.speed;
        out = intersect(&out, &arc(o + split.yellow - to, green, c));
        inb = intersect(&inb, &arc(o + split.yellow - ti, green, c));
        if out.is_empty() && inb.is_empty() {
            break;
        }
    }
    (longest(&out, c), longest(&inb, c))
}

fn score(corridor: &Corridor, split: &Split, offsets: &[f64]) -> f64 {
    let ((_, b_out), (_, b_in)) = bands(corridor, split, offsets);
    b_out + b_in
}

/// The best offsets for one cycle (whole seconds, first signal at 0).
fn offsets_for(corridor: &Corridor, split: &Split, seed: u32, restarts: u32) -> Vec<f64> {
    let c = split.cycle();
    let n = corridor.signals.len();
    let first = corridor.signals[0].position;
    let last = corridor.signals[n - 1].position;
    let slots = c.floor() as u32;
    let snap = |x: f64| x.rem_euclid(c).round().rem_euclid(f64::from(slots.max(1)));
    let to: Vec<f64> = corridor
        .signals
        .iter()
        .map(|s| (s.position - first) / corridor.speed)
        .collect();
    let ti: Vec<f64> = corridor
        .signals
        .iter()
        .map(|s| (last - s.position) / corridor.speed)
        .collect();
    // MAXBAND's classic candidates: each signal aligned with the outbound band or with the
    // inbound one (relative to the first signal), every combination for short corridors.
    let aligned_out = |i: usize| snap(to[i]);
    let aligned_in = |i: usize| snap(ti[0] - ti[i]);
    let mut starts: Vec<Vec<f64>> = Vec::new();
    if n <= 14 {
        for mask in 0u32..(1 << (n - 1)) {
            starts.push(
                (0..n)
                    .map(|i| {
                        if i == 0 {
                            0.0
                        } else if mask & (1 << (i - 1)) == 0 {
                            aligned_out(i)
                        } else {
                            aligned_in(i)
                        }
                    })
                    .collect(),
            );
        }
    } else {
        starts.push((0..n).map(aligned_out).collect());
        starts.push((0..n).map(aligned_in).collect());
    }
    starts.push(vec![0.0; n]);
    starts.push((0..n).map(|i| snap(i as f64 * c / 2.0)).collect());
    let mut rng = Mt19937::new(seed);
    for _ in 0..restarts {
        let mut o: Vec<f64> = (0..n)
            .map(|_| f64::from(rng.next_u32() % slots.max(1)))
            .collect();
        o[0] = 0.0;
        starts.push(o);
    }
    // Keep the few best starts and improve them by coordinate descent on whole seconds.
    let mut scored: Vec<(f64, Vec<f64>)> = starts
        .into_iter()
        .map(|o| (score(corridor, split, &o), o))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.truncate(8);
    let mut best: Option<(f64, Vec<f64>)> = None;
    for (mut value, mut o) in scored {
        for _sweep in 0..30 {
            let mut improved = false;
            for i in 1..n {
                let keep = o[i];
                let mut best_here = (value, keep);
                for t in 0..slots {
                    o[i] = f64::from(t);
                    let v = score(corridor, split, &o);
                    if v > best_here.0 + 1e-9 {
                        best_here = (v, o[i]);
                    }
                }
                o[i] = best_here.1;
                if best_here.0 > value + 1e-9 {
                    value = best_here.0;
                    improved = true;
                }
            }
            if !improved {
                break;
            }
        }
        if best.as_ref().is_none_or(|(v, _)| value > *v + 1e-9) {
            best = Some((value, o));
        }
    }
    best.map(|(_, o)| o).unwrap_or_else(|| vec![0.0; n])
}

/// Chooses the common cycle (whole seconds in `cycles`, the split scaled to each) and the
/// offsets that maximise the two-way bandwidth efficiency; ties go to the shorter cycle.
pub fn optimise(
    corridor: &Corridor,
    split: &Split,
    cycles: std::ops::RangeInclusive<u32>,
    seed: u32,
) -> Result<GreenWave, GreenWaveError> {
    check(corridor, split)?;
    let (lo, hi) = (*cycles.start(), *cycles.end());
    if lo < 20 || hi > 300 || lo > hi {
        return Err(invalid(
            "cycles",
            "a range of whole seconds within 20..=300",
        ));
    }
    let mut best: Option<GreenWave> = None;
    for cycle in lo..=hi {
        let s = split.scaled(f64::from(cycle));
        if s.arterial_green <= s.yellow + 3.0 {
            continue;
        }
        let offsets = offsets_for(corridor, &s, seed.wrapping_add(cycle), 4);
        let plan = plan_with(corridor, s, offsets);
        if best
            .as_ref()
            .is_none_or(|b| plan.efficiency() > b.efficiency() + 1e-9)
        {
            best = Some(plan);
        }
    }
    best.ok_or_else(|| {
        invalid(
            "cycles",
            "no cycle in the range leaves room for every phase",
        )
    })
}

/// The plan with given offsets (e.g. uncoordinated ones), its bands computed.
pub fn plan_with(corridor: &Corridor, split: Split, offsets: Vec<f64>) -> GreenWave {
    let ((outbound_start, outbound_band), (inbound_start, inbound_band)) =
        bands(corridor, &split, &offsets);
    GreenWave {
        cycle: split.cycle(),
        split,
        offsets,
        outbound_band,
        outbound_start,
        inbound_band,
        inbound_start,
    }
}

/// Seeded uniformly random offsets: the uncoordinated baseline.
pub fn random_offsets(n: usize, cycle: f64, seed: u32) -> Vec<f64> {
    let mut rng = Mt19937::new(seed);
    let slots = (cycle.floor() as u32).max(1);
    (0..n).map(|_| f64::from(rng.next_u32() % slots)).collect()
}

// ---------------------------------------------------------------------------------------------
// The controller.

/// Runs a [`GreenWave`] plan: each corridor signal shows the split's phase for its own time in
/// the cycle; signals not on the corridor run the split with offset 0.
#[derive(Debug, Clone)]
pub struct CoordinatedFixedTime {
    name: String,
    split: Split,
    offsets: HashMap<String, f64>,
}

impl CoordinatedFixedTime {
    /// The controller for `plan` on `corridor`.
    pub fn new(name: impl Into<String>, corridor: &Corridor, plan: &GreenWave) -> Self {
        Self {
            name: name.into(),
            split: plan.split,
            offsets: corridor
                .signals
                .iter()
                .zip(&plan.offsets)
                .map(|(s, o)| (s.id.clone(), *o))
                .collect(),
        }
    }
}

impl SignalController for CoordinatedFixedTime {
    fn name(&self) -> &str {
        &self.name
    }

    fn decide(&mut self, view: &SignalView<'_>, decisions: &mut [Option<u32>]) {
        let t = view.sim.time();
        let c = self.split.cycle();
        for (slot, i) in decisions.iter_mut().zip(view.intersections) {
            let offset = self.offsets.get(&i.id).copied().unwrap_or(0.0);
            let phase = self.split.phase_at((t - offset).rem_euclid(c));
            *slot = i.phases.iter().any(|p| p.phase == phase).then_some(phase);
        }
    }
}

/// The protocol corridor runs use: a decision every second, P5's 2 s yellow.
pub fn corridor_protocol(steps: u64) -> Protocol {
    Protocol {
        steps,
        decision_interval: 1,
        timing: P5_TIMING,
        ..Protocol::p15()
    }
}

// ---------------------------------------------------------------------------------------------
// A corridor in the simulator.

/// A generated arterial: one row of signals with through traffic both ways and lighter cross
/// traffic on every side street.
#[derive(Debug, Clone, PartialEq)]
pub struct CorridorSpec {
    /// Signals along the arterial.
    pub signals: u32,
    /// Distance between neighbouring signals, metres.
    pub spacing: f64,
    /// Speed limit, vehicles' top speed and progression speed, m/s.
    pub speed: f64,
    /// Arterial vehicles per hour in each direction.
    pub arterial_per_hour: f64,
    /// Vehicles per hour on each side-street approach.
    pub cross_per_hour: f64,
    /// Demand horizon and episode length, seconds.
    pub duration: u32,
}

impl Default for CorridorSpec {
    /// Eight signals 300 m apart at 40 km/h (the benchmark vehicles' top speed), 600
    /// vehicles/h each way, 60/h per side street.
    fn default() -> Self {
        Self {
            signals: 8,
            spacing: 300.0,
            speed: 11.111,
            arterial_per_hour: 600.0,
            cross_per_hour: 60.0,
            duration: 3600,
        }
    }
}

/// A corridor ready to simulate.
#[derive(Debug, Clone)]
pub struct CorridorScenario {
    /// The scenario (controllable).
    pub scenario: Arc<Scenario>,
    /// The corridor's signals.
    pub corridor: Corridor,
    /// Flow indices `0..arterial_flows` are the arterial's through trips.
    pub arterial_flows: usize,
    /// Episode length in steps.
    pub steps: u64,
}

/// Builds the corridor of `spec` with the grid generator's geometry (roads `road_<x>_1_<dir>`).
pub fn corridor_scenario(spec: &CorridorSpec) -> Result<CorridorScenario, GreenWaveError> {
    if !(2..=30).contains(&spec.signals) {
        return Err(invalid("signals", "between 2 and 30"));
    }
    if !(spec.spacing.is_finite() && (50.0..=5000.0).contains(&spec.spacing)) {
        return Err(invalid("spacing", "between 50 and 5000 m"));
    }
    let rates = [spec.arterial_per_hour, spec.cross_per_hour];
    if rates
        .iter()
        .any(|r| !(r.is_finite() && (0.0..=3000.0).contains(r)))
    {
        return Err(invalid(
            "per_hour",
            "vehicle rates between 0 and 3000 per hour",
        ));
    }
    if !(60..=86_400).contains(&spec.duration) {
        return Err(invalid("duration", "between 60 s and one day"));
    }
    let n = spec.signals as i32;
    let grid = GridSpec {
        rows: 1,
        cols: spec.signals,
        road_length: Meters(spec.spacing),
        boundary_length: Meters(spec.spacing),
        max_speed: MetersPerSecond(spec.speed),
        vehicles_per_hour: 0.0,
        duration: Seconds(f64::from(spec.duration)),
        turn_left: 0.0,
        ..GridSpec::city_240()
    };
    let generated = generate_grid(&grid)?;
    let flow = |route: Vec<String>, per_hour: f64, start: i64| FlowSpec {
        vehicle: VehicleSpec {
            max_speed: spec.speed,
            ..VehicleSpec::BENCHMARK
        },
        route,
        interval: 3600.0 / per_hour,
        start_time: start,
        end_time: i64::from(spec.duration),
    };
    let mut flows = Vec::new();
    if spec.arterial_per_hour > 0.0 {
        flows.push(flow(
            (0..=n).map(|x| format!("road_{x}_1_0")).collect(),
            spec.arterial_per_hour,
            0,
        ));
        flows.push(flow(
            (1..=n + 1).rev().map(|x| format!("road_{x}_1_2")).collect(),
            spec.arterial_per_hour,
            1,
        ));
    }
    let arterial_flows = flows.len();
    if spec.cross_per_hour > 0.0 {
        for x in 1..=n {
            let stagger = i64::from(x) * 7;
            flows.push(flow(
                vec![format!("road_{x}_0_1"), format!("road_{x}_1_1")],
                spec.cross_per_hour,
                stagger,
            ));
            flows.push(flow(
                vec![format!("road_{x}_2_3"), format!("road_{x}_1_3")],
                spec.cross_per_hour,
                stagger + 3,
            ));
        }
    }
    let settings = EngineSettings {
        interval: 1.0,
        seed: 0,
        lane_change: false,
        rl_traffic_light: true,
    };
    let scenario = Scenario::from_specs(
        settings,
        "corridor.roadnet",
        &generated.roadnet,
        "corridor.flow",
        flows,
    )?;
    let corridor = Corridor {
        signals: (1..=n)
            .map(|x| CorridorSignal {
                id: format!("intersection_{x}_1"),
                position: f64::from(x - 1) * spec.spacing,
            })
            .collect(),
        speed: spec.speed,
    };
    Ok(CorridorScenario {
        scenario: Arc::new(scenario),
        corridor,
        arterial_flows,
        steps: u64::from(spec.duration),
    })
}

/// What one corridor run gave.
#[derive(Debug, Clone, PartialEq)]
pub struct CorridorResult {
    /// Controller name.
    pub controller: String,
    /// Mean stops per arterial vehicle (a stop: slowing below 0.1 m/s after moving faster than
    /// 2 m/s), over every arterial vehicle that entered.
    pub arterial_stops: f64,
    /// Arterial vehicles that entered.
    pub arterial_vehicles: u64,
    /// Mean travel time of the arterial vehicles that finished, seconds.
    pub arterial_travel_time: f64,
    /// ATT of every vehicle (CityFlow's definition), seconds.
    pub average_travel_time: f64,
    /// Mean stops over every trip (the simulator's figure).
    pub average_stops: f64,
    /// Trips finished.
    pub trips_finished: u64,
}

/// Runs `controller` on the corridor for its whole episode and measures the arterial.
pub fn evaluate_corridor(
    corridor: &CorridorScenario,
    controller: &mut dyn SignalController,
) -> CorridorResult {
    let protocol = corridor_protocol(corridor.steps);
    let mut sim = Simulation::new(Arc::clone(&corridor.scenario));
    let mut driver = EpisodeDriver::new(&mut sim, true, &protocol);
    // Per arterial vehicle: moving now, stops so far, entered at, still seen.
    struct Track {
        moving: bool,
        stops: u32,
        entered: f64,
        seen: bool,
    }
    let mut tracks: HashMap<String, Track> = HashMap::new();
    let (mut finished, mut finished_time, mut left_stops) = (0u64, 0.0, 0u64);
    while sim.steps() < corridor.steps {
        let next = sim.steps() + 1;
        driver.run_until(&mut sim, Some(&mut *controller), next);
        let now = sim.time();
        for t in tracks.values_mut() {
            t.seen = false;
        }
        for v in sim.vehicles() {
            if v.waiting_to_enter || !is_arterial(&v.id, corridor.arterial_flows) {
                continue;
            }
            let t = tracks.entry(v.id).or_insert(Track {
                moving: false,
                stops: 0,
                entered: now,
                seen: true,
            });
            t.seen = true;
            if v.speed > 2.0 {
                t.moving = true;
            } else if v.speed < 0.1 && t.moving {
                t.moving = false;
                t.stops += 1;
            }
        }
        tracks.retain(|_, t| {
            if !t.seen {
                finished += 1;
                finished_time += now - t.entered;
                left_stops += u64::from(t.stops);
            }
            t.seen
        });
    }
    let m = sim.metrics();
    let arterial_vehicles = finished + tracks.len() as u64;
    let stops = left_stops + tracks.values().map(|t| u64::from(t.stops)).sum::<u64>();
    CorridorResult {
        controller: controller.name().to_owned(),
        arterial_stops: if arterial_vehicles == 0 {
            0.0
        } else {
            stops as f64 / arterial_vehicles as f64
        },
        arterial_vehicles,
        arterial_travel_time: if finished == 0 {
            0.0
        } else {
            finished_time / finished as f64
        },
        average_travel_time: m.average_travel_time,
        average_stops: m.average_stops,
        trips_finished: m.trips_finished,
    }
}

fn is_arterial(id: &str, arterial_flows: usize) -> bool {
    id.strip_prefix("flow_")
        .and_then(|rest| rest.split('_').next())
        .and_then(|flow| flow.parse::<usize>().ok())
        .is_some_and(|flow| flow < arterial_flows)
}

// ---------------------------------------------------------------------------------------------
// The time-space diagram.

/// An SVG time-space diagram of `plan` over `cycles` cycles (more if a trip along the corridor
/// takes longer): distance up, time right; each
/// signal's arterial green (green) and red (red) bars, the outbound band (blue, rising) and the
/// inbound band (orange, falling).
pub fn time_space_svg(corridor: &Corridor, plan: &GreenWave, cycles: u32, title: &str) -> String {
    let (w, h, left, right, top, bottom) = (960.0, 560.0, 90.0, 20.0, 50.0, 50.0);
    let first = corridor.signals[0].position;
    let last = corridor.signals[corridor.signals.len() - 1].position;
    let span = (last - first).max(1.0);
    // At least `cycles`, and long enough to show one whole trip along the corridor.
    let trip_cycles = (span / corridor.speed / plan.cycle).ceil() + 1.0;
    let horizon = plan.cycle * f64::from(cycles.max(1)).max(trip_cycles);
    let x = |t: f64| left + (t / horizon) * (w - left - right);
    let y = |p: f64| h - bottom - ((p - first) / span) * (h - top - bottom);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">
<rect width="{w}" height="{h}" fill="white"/>
<text x="{left}" y="24" font-size="15">{title}</text>
<text x="{left}" y="40" fill="#444">cycle {c:.0} s · outbound band {bo:.0} s · inbound band {bi:.0} s · efficiency {e:.0} %</text>
"##,
        title = xml_escape(title),
        c = plan.cycle,
        bo = plan.outbound_band,
        bi = plan.inbound_band,
        e = plan.efficiency() * 100.0,
    );
    let clip_band = |svg: &mut String, start: f64, width: f64, rising: bool, colour: &str| {
        if width <= 0.0 {
            return;
        }
        let travel = span / corridor.speed;
        let mut k = -2.0;
        while k * plan.cycle < horizon + travel {
            let t0 = start + k * plan.cycle;
            let (p0, p1) = if rising { (first, last) } else { (last, first) };
            let _ = writeln!(
                svg,
                r#"<polygon points="{:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1}" fill="{colour}" fill-opacity="0.25" stroke="{colour}" stroke-width="0.8" clip-path="url(#plot)"/>"#,
                x(t0),
                y(p0),
                x(t0 + width),
                y(p0),
                x(t0 + width + travel),
                y(p1),
                x(t0 + travel),
                y(p1)
            );
            k += 1.0;
        }
    };
    let _ = writeln!(
        svg,
        r#"<defs><clipPath id="plot"><rect x="{left}" y="{top}" width="{}" height="{}"/></clipPath></defs>"#,
        w - left - right,
        h - top - bottom
    );
    clip_band(
        &mut svg,
        plan.outbound_start,
        plan.outbound_band,
        true,
        "#1f5fbf",
    );
    clip_band(
        &mut svg,
        plan.inbound_start,
        plan.inbound_band,
        false,
        "#e07b00",
    );
    let green = plan.split.arterial_green - plan.split.yellow;
    for (s, o) in corridor.signals.iter().zip(&plan.offsets) {
        let yy = y(s.position);
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#c62828" stroke-width="5"/>"##,
            w - right
        );
        let mut k = -1.0;
        while (o + plan.split.yellow + k * plan.cycle) < horizon {
            let g0 = (o + plan.split.yellow + k * plan.cycle).max(0.0);
            let g1 = (o + plan.split.yellow + green + k * plan.cycle).min(horizon);
            if g1 > g0 {
                let _ = writeln!(
                    svg,
                    r##"<line x1="{:.1}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#2e7d32" stroke-width="5"/>"##,
                    x(g0),
                    x(g1)
                );
            }
            k += 1.0;
        }
        let _ = writeln!(
            svg,
            r#"<text x="6" y="{:.1}">{} ({:.0} m)</text>"#,
            yy + 4.0,
            xml_escape(&s.id),
            s.position - first
        );
    }
    let mut t = 0.0;
    while t <= horizon + 1e-9 {
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#444">{t:.0}</text>"##,
            x(t),
            h - bottom + 18.0
        );
        t += plan.cycle / 2.0;
    }
    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#444">time (s)</text>"##,
        (left + w - right) / 2.0,
        h - 10.0
    );
    svg.push_str("</svg>\n");
    svg
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corridor(n: usize, spacing: f64, speed: f64) -> Corridor {
        Corridor {
            signals: (0..n)
                .map(|i| CorridorSignal {
                    id: format!("s{i}"),
                    position: i as f64 * spacing,
                })
                .collect(),
            speed,
        }
    }

    const SPLIT: Split = Split {
        arterial_green: 40.0,
        arterial_left: 0.0,
        cross_green: 30.0,
        cross_left: 0.0,
        yellow: 2.0,
    };

    #[test]
    fn aligned_offsets_give_a_full_outbound_band() {
        let c = corridor(4, 200.0, 10.0);
        // Offsets = travel time from the first signal: a vehicle leaving at the start of green
        // meets the start of green everywhere.
        let plan = plan_with(&c, SPLIT, vec![0.0, 20.0, 40.0, 60.0]);
        assert!((plan.outbound_band - 38.0).abs() < 1e-9, "{plan:?}");
        let zero = plan_with(&c, SPLIT, vec![0.0; 4]);
        assert!(zero.outbound_band < plan.outbound_band);
    }

    #[test]
    fn bands_never_exceed_the_effective_green_and_wrap_around_the_cycle() {
        let c = corridor(3, 150.0, 12.0);
        for seed in 0..20 {
            let offsets = random_offsets(3, SPLIT.cycle(), seed);
            let plan = plan_with(&c, SPLIT, offsets);
            assert!(plan.outbound_band <= 38.0 + 1e-9 && plan.inbound_band <= 38.0 + 1e-9);
            assert!(plan.outbound_band >= 0.0 && plan.inbound_band >= 0.0);
        }
        // A band that straddles the end of the cycle is still one band.
        let pieces = vec![(0.0, 5.0), (60.0, 70.0)];
        assert_eq!(longest(&pieces, 70.0), (60.0, 15.0));
    }

    #[test]
    fn the_optimum_beats_every_start_and_is_deterministic() {
        let c = corridor(6, 300.0, 13.89);
        let a = optimise(&c, &SPLIT, 60..=100, 7).unwrap();
        let b = optimise(&c, &SPLIT, 60..=100, 7).unwrap();
        assert_eq!(a, b);
        let split = SPLIT.scaled(a.cycle);
        for seed in 0..30 {
            let random = plan_with(&c, split, random_offsets(6, a.cycle, seed));
            assert!(
                a.outbound_band + a.inbound_band
                    >= random.outbound_band + random.inbound_band - 1e-9
            );
        }
        let zero = plan_with(&c, split, vec![0.0; 6]);
        assert!(a.efficiency() > zero.efficiency(), "{a:?} vs {zero:?}");
        assert!(a.outbound_band > 0.0 && a.inbound_band > 0.0, "{a:?}");
    }

    #[test]
    fn bad_input_is_refused() {
        let one = corridor(1, 100.0, 10.0);
        assert!(optimise(&one, &SPLIT, 60..=90, 0).is_err());
        let c = corridor(3, 100.0, 10.0);
        assert!(optimise(&c, &SPLIT, std::ops::RangeInclusive::new(90, 60), 0).is_err());
        let mut reversed = c.clone();
        reversed.signals.reverse();
        assert!(optimise(&reversed, &SPLIT, 60..=90, 0).is_err());
        let nan = Split {
            cross_green: f64::NAN,
            ..SPLIT
        };
        assert!(optimise(&c, &nan, 60..=90, 0).is_err());
        assert!(
            corridor_scenario(&CorridorSpec {
                signals: 1,
                ..CorridorSpec::default()
            })
            .is_err()
        );
    }

    #[test]
    fn the_diagram_shows_every_signal_and_both_bands() {
        let c = corridor(4, 250.0, 12.5);
        let plan = optimise(&c, &SPLIT, 60..=90, 1).unwrap();
        let svg = time_space_svg(&c, &plan, 3, "test <corridor>");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        for s in &c.signals {
            assert!(svg.contains(&s.id));
        }
        assert!(svg.contains("#1f5fbf") && svg.contains("#e07b00"));
        assert!(svg.contains("test &lt;corridor&gt;"));
    }
}
