//! Evaluation protocols and the episode runner.
//!
//! - **P15** (issue 4, the XLight protocol): 3600 steps of 1 s, seed 0, lane changing on; the
//!   four control phases are light phases 1..4 and phase 0 is the yellow; phase 1 from t = 0; at
//!   every t = 15k (k >= 1) the controller picks a phase, and a change shows phase 0 for 5 s and
//!   then the new phase (minimum green 10 s, so a phase chosen at one decision can always be
//!   left at the next).
//! - **P5** (the CoordLight/SocialLight protocol): the same episode, but a decision every 5 s and
//!   a change costs 2 s of yellow (phase 0), so a new phase gets at least 3 s of green.
//!
//! ATT is CityFlow's average travel time at t = 3600: finished vehicles from scheduled start to
//! leave, unfinished ones (running or still waiting to enter) from scheduled start to 3600. This
//! is exactly P5's "mean over all vehicles of min(leave, 3600) - scheduled start".

use std::sync::Arc;

use traffic_sim::control::{EpisodeDriver, FixedTime, MaxPressure, Protocol, SignalController};
use traffic_sim::{Scenario, SignalTiming, Simulation};

use crate::adaptive::{Adaptive, AdaptiveParams};
use crate::baselines::{Actuated, Sotl, Webster};
use crate::rollout::{Rollout, RolloutParams};

/// One of the two evaluation protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolKind {
    /// Decision every 15 s, a change shows 5 s of phase 0.
    P15,
    /// Decision every 5 s, a change shows 2 s of phase 0.
    P5,
}

/// Unknown protocol or controller name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// Not `p15` or `p5`.
    #[error("unknown protocol `{0}` (expected p15 or p5)")]
    Protocol(String),
    /// Not one of [`CONTROLLERS`] or [`EXTRA_CONTROLLERS`].
    #[error("unknown controller `{0}` (expected one of: {list}, {extra})", list = CONTROLLERS.join(", "), extra = EXTRA_CONTROLLERS.join(", "))]
    Controller(String),
}

/// P5's timing: 2 s of phase 0 between greens, no all-red; a green lasts at least 3 s (the rest
/// of a 5 s decision slot), so every decision may change the phase.
pub const P5_TIMING: SignalTiming = SignalTiming {
    min_green: 3.0,
    yellow: 2.0,
    all_red: 0.0,
    yellow_phase: Some(0),
};

impl ProtocolKind {
    /// The simulator's protocol description.
    pub fn protocol(self) -> Protocol {
        match self {
            ProtocolKind::P15 => Protocol::p15(),
            ProtocolKind::P5 => Protocol {
                decision_interval: 5,
                timing: P5_TIMING,
                ..Protocol::p15()
            },
        }
    }

    /// `p15` or `p5`.
    pub fn name(self) -> &'static str {
        match self {
            ProtocolKind::P15 => "p15",
            ProtocolKind::P5 => "p5",
        }
    }

    /// Parses `p15` / `p5` (case-insensitive).
    pub fn parse(s: &str) -> Result<ProtocolKind, NameError> {
        match s.to_ascii_lowercase().as_str() {
            "p15" => Ok(ProtocolKind::P15),
            "p5" => Ok(ProtocolKind::P5),
            _ => Err(NameError::Protocol(s.to_owned())),
        }
    }
}

/// Controllers known by name: the baselines and ours.
pub const CONTROLLERS: [&str; 6] = [
    "fixed-time",
    "webster",
    "actuated",
    "sotl",
    "max-pressure",
    "adaptive",
];

/// Controllers also known by name but not in the default set: `rollout`
/// ([`crate::rollout::Rollout`], too slow for a default run: minutes per episode) and
/// `max-pressure-guarded` ([`Adaptive::max_pressure_guarded`], MaxPressure held to the same
/// maximum red as ours, for a like-for-like comparison).
pub const EXTRA_CONTROLLERS: [&str; 2] = ["rollout", crate::adaptive::MAX_PRESSURE_GUARDED];

/// A controller by name (see [`CONTROLLERS`] and [`EXTRA_CONTROLLERS`]), set up for `protocol`.
pub fn controller_by_name(
    name: &str,
    protocol: ProtocolKind,
) -> Result<Box<dyn SignalController + Send>, NameError> {
    match name {
        "fixed-time" | "fixed" => Ok(Box::new(FixedTime::new(protocol.protocol().phases))),
        "max-pressure" | "maxpressure" => Ok(Box::new(MaxPressure)),
        "webster" => Ok(Box::new(Webster::new(protocol, 120.0))),
        "actuated" => Ok(Box::new(Actuated::new(protocol))),
        "sotl" => Ok(Box::new(Sotl::new(protocol))),
        "adaptive" => Ok(Box::new(Adaptive::new(AdaptiveParams::for_protocol(
            protocol,
        )))),
        "rollout" => Ok(Box::new(Rollout::new(RolloutParams::for_protocol(
            protocol,
        )))),
        crate::adaptive::MAX_PRESSURE_GUARDED => {
            Ok(Box::new(Adaptive::max_pressure_guarded(protocol)))
        }
        _ => Err(NameError::Controller(name.to_owned())),
    }
}

/// The name [`evaluate_without_signals`] reports as its controller.
pub const NO_SIGNAL_BOUND: &str = "no-signal bound";

/// Runs `scenario` for `protocol`'s episode length with signal control relaxed away
/// ([`Scenario::without_signals`]): the ATT no controller of the real network is expected to
/// beat, reported as controller [`NO_SIGNAL_BOUND`].
pub fn evaluate_without_signals(
    scenario: &Scenario,
    protocol: ProtocolKind,
    mut progress: impl FnMut(u64),
) -> EpisodeResult {
    let sim = run(
        Arc::new(scenario.without_signals()),
        None,
        protocol,
        &mut progress,
    );
    result(NO_SIGNAL_BOUND, protocol, &sim)
}

/// What one episode gave.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeResult {
    /// Controller name.
    pub controller: String,
    /// Protocol.
    pub protocol: ProtocolKind,
    /// Average travel time (CityFlow's definition; P5's ATT), seconds.
    pub average_travel_time: f64,
    /// Trips completed by the end (throughput).
    pub trips_finished: u64,
    /// Vehicles still driving at the end.
    pub running: u64,
    /// Vehicles created but still waiting to enter at the end.
    pub waiting_to_enter: u64,
    /// Mean delay over all trips, seconds.
    pub average_delay: f64,
    /// Mean stops per trip.
    pub average_stops: f64,
    /// Vehicle-steps (running vehicles summed over steps).
    pub vehicle_steps: u64,
}

/// Makes a scenario controllable (`rl_traffic_light`), as both protocols require.
pub fn controllable(scenario: &Scenario) -> Arc<Scenario> {
    let mut s = scenario.clone();
    s.settings.rl_traffic_light = true;
    Arc::new(s)
}

/// Runs one episode of `scenario` (which must have `rl_traffic_light` set; see
/// [`controllable`]) under `controller` and `protocol`; `progress` is called with the step count
/// about every 5% of the episode.
pub fn evaluate(
    scenario: Arc<Scenario>,
    controller: &mut dyn SignalController,
    protocol: ProtocolKind,
    mut progress: impl FnMut(u64),
) -> EpisodeResult {
    let sim = run(scenario, Some(&mut *controller), protocol, &mut progress);
    result(controller.name(), protocol, &sim)
}

/// One episode of `protocol` (controlled when a controller is given), reporting progress about
/// every 5%.
fn run(
    scenario: Arc<Scenario>,
    mut controller: Option<&mut dyn SignalController>,
    protocol: ProtocolKind,
    progress: &mut impl FnMut(u64),
) -> Simulation {
    let p = protocol.protocol();
    let mut sim = Simulation::new(scenario);
    let mut driver = EpisodeDriver::new(&mut sim, controller.is_some(), &p);
    let chunk = (p.steps / 20).max(1);
    while sim.steps() < p.steps {
        let until = (sim.steps() + chunk).min(p.steps);
        driver.run_until(&mut sim, controller.as_deref_mut(), until);
        progress(sim.steps());
    }
    sim
}

fn result(controller: &str, protocol: ProtocolKind, sim: &Simulation) -> EpisodeResult {
    let m = sim.metrics();
    EpisodeResult {
        controller: controller.to_owned(),
        protocol,
        average_travel_time: m.average_travel_time,
        trips_finished: m.trips_finished,
        running: m.running,
        waiting_to_enter: m.waiting_to_enter,
        average_delay: m.average_delay,
        average_stops: m.average_stops,
        vehicle_steps: m.vehicle_steps,
    }
}
