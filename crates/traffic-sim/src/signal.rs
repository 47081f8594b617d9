//! Signal state: the roadnet's fixed plans, and controller-driven phases with the safety rules
//! (minimum green, yellow, all-red) enforced here rather than trusted to controllers.
//!
//! State machine of one signalised intersection under a controller:
//!
//! ```text
//!  Green(p) --request q != p, green >= min_green--> Yellow(yellow_phase) --yellow s-->
//!     AllRed --all_red s--> Green(q)
//!  (Yellow is skipped when `yellow` is 0; AllRed when `all_red` is 0.)
//! ```
//!
//! Requests during a transition, or before the minimum green has elapsed, are refused with a
//! reason; the current display never changes in the middle of a step. With the roadnet's plan
//! (CityFlow's `rlTrafficLight: false`) every intersection cycles through its light phases using
//! each phase's `time`, exactly like CityFlow's `TrafficLight::passTime`.

use crate::network::{IntersectionId, Network};

/// What an intersection shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// A light phase of the roadnet (index into its `lightphases`).
    Phase(u32),
    /// Every movement red.
    AllRed,
}

/// Safety timing enforced on controller requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignalTiming {
    /// Minimum time a green phase is held before a change is accepted, seconds.
    pub min_green: f64,
    /// Yellow (change) interval, seconds.
    pub yellow: f64,
    /// All-red clearance after yellow, seconds.
    pub all_red: f64,
    /// Light phase shown during yellow (the benchmark nets use phase 0, right turns only);
    /// `None` shows all red.
    pub yellow_phase: Option<u32>,
}

impl SignalTiming {
    /// The P15 protocol of the XLight benchmarks: 5 s of phase 0 between greens, no all-red, a
    /// green lasts at least 10 s.
    pub const P15: SignalTiming = SignalTiming {
        min_green: 10.0,
        yellow: 5.0,
        all_red: 0.0,
        yellow_phase: Some(0),
    };
}

/// Why a phase request was not carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    /// A transition to the requested phase has started (or it was applied at once).
    Accepted,
    /// The requested phase is already green (or already the target of the running transition).
    Unchanged,
    /// The current green has not lasted `min_green` yet.
    HeldMinGreen,
    /// A transition to another phase is under way.
    InTransition,
}

/// Bad phase requests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    /// No such intersection.
    #[error("no intersection with index {0}")]
    NoSuchIntersection(u32),
    /// The intersection has no signal (virtual node or no light phases).
    #[error("intersection `{0}` has no signal")]
    NotSignalised(String),
    /// Phase index beyond the intersection's light phases.
    #[error("intersection `{id}` has {count} light phases, phase {phase} requested")]
    NoSuchPhase {
        /// Intersection id.
        id: String,
        /// Requested phase.
        phase: u32,
        /// Number of phases.
        count: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Transition {
    target: u32,
    yellow_left: f64,
    red_left: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Light {
    display: Display,
    /// Fixed plan: seconds left in the current phase (CityFlow's `remainDuration`).
    remaining: f64,
    /// Seconds since the current display started.
    elapsed: f64,
    /// The phase that is green, or will be at the end of the transition.
    green: u32,
    transition: Option<Transition>,
}

/// Signal state of every intersection.
#[derive(Debug, Clone)]
pub(crate) struct SignalState {
    fixed_plan: bool,
    lights: Vec<Light>,
    /// Per lane link: green now.
    link_green: Vec<bool>,
}

/// Remaining times at or below this are treated as elapsed (guards against float drift with
/// non-integer step lengths).
const TIME_EPS: f64 = 1e-9;

/// Most phase advances per step in a fixed plan (CityFlow loops until time is positive).
const MAX_PHASE_SKIPS: u32 = 10_000;

impl SignalState {
    pub(crate) fn new(net: &Network, rl_traffic_light: bool) -> SignalState {
        let lights = net
            .intersections
            .iter()
            .map(|x| Light {
                display: Display::Phase(0),
                remaining: x.phases.first().map_or(0.0, |p| p.time),
                elapsed: 0.0,
                green: 0,
                transition: None,
            })
            .collect();
        let mut s = SignalState {
            fixed_plan: !rl_traffic_light,
            lights,
            link_green: vec![false; net.lane_links.len()],
        };
        for i in 0..net.intersections.len() {
            s.refresh(net, i as u32);
        }
        s
    }

    /// Is lane link `link` green?
    #[inline]
    pub(crate) fn link_green(&self, _net: &Network, link: u32) -> bool {
        self.link_green[link as usize]
    }

    fn refresh(&mut self, net: &Network, i: IntersectionId) {
        let x = &net.intersections[i as usize];
        let display = self.lights[i as usize].display;
        for rl in x.road_links.clone() {
            let road_link = &net.road_links[rl as usize];
            let green = if x.phases.is_empty() {
                // No plan at all: an unsignalised junction (CityFlow would fail here).
                true
            } else {
                match display {
                    Display::AllRed => false,
                    Display::Phase(p) => x.phases.get(p as usize).is_some_and(|ph| {
                        ph.green
                            .get(road_link.index as usize)
                            .copied()
                            .unwrap_or(false)
                    }),
                }
            };
            for ll in road_link.lane_links.clone() {
                self.link_green[ll as usize] = green;
            }
        }
    }

    /// What intersection `i` shows.
    pub(crate) fn display(&self, i: IntersectionId) -> Display {
        self.lights[i as usize].display
    }

    /// Seconds since the display last changed.
    pub(crate) fn elapsed(&self, i: IntersectionId) -> f64 {
        self.lights[i as usize].elapsed
    }

    /// The green phase (current, or the target of a running transition).
    pub(crate) fn green_phase(&self, i: IntersectionId) -> u32 {
        self.lights[i as usize].green
    }

    pub(crate) fn in_transition(&self, i: IntersectionId) -> bool {
        self.lights[i as usize].transition.is_some()
    }

    fn check(&self, net: &Network, i: IntersectionId, phase: u32) -> Result<(), SignalError> {
        let x = net
            .intersections
            .get(i as usize)
            .ok_or(SignalError::NoSuchIntersection(i))?;
        if x.is_virtual || x.phases.is_empty() {
            return Err(SignalError::NotSignalised(x.id.clone()));
        }
        if phase as usize >= x.phases.len() {
            return Err(SignalError::NoSuchPhase {
                id: x.id.clone(),
                phase,
                count: x.phases.len() as u32,
            });
        }
        Ok(())
    }

    /// Shows `phase` at once, without safety rules (CityFlow's `set_tl_phase`).
    pub(crate) fn set_phase(
        &mut self,
        net: &Network,
        i: IntersectionId,
        phase: u32,
    ) -> Result<(), SignalError> {
        self.check(net, i, phase)?;
        let l = &mut self.lights[i as usize];
        l.display = Display::Phase(phase);
        l.elapsed = 0.0;
        l.green = phase;
        l.transition = None;
        self.refresh(net, i);
        Ok(())
    }

    /// Asks for `phase` under `timing`.
    pub(crate) fn request_phase(
        &mut self,
        net: &Network,
        i: IntersectionId,
        phase: u32,
        timing: &SignalTiming,
    ) -> Result<RequestOutcome, SignalError> {
        self.check(net, i, phase)?;
        if let Some(y) = timing.yellow_phase {
            self.check(net, i, y)?;
        }
        let l = self.lights[i as usize];
        if let Some(t) = l.transition {
            return Ok(if t.target == phase {
                RequestOutcome::Unchanged
            } else {
                RequestOutcome::InTransition
            });
        }
        if l.display == Display::Phase(phase) {
            return Ok(RequestOutcome::Unchanged);
        }
        if l.elapsed + TIME_EPS < timing.min_green {
            return Ok(RequestOutcome::HeldMinGreen);
        }
        let light = &mut self.lights[i as usize];
        light.green = phase;
        light.elapsed = 0.0;
        if timing.yellow > TIME_EPS {
            light.display = timing.yellow_phase.map_or(Display::AllRed, Display::Phase);
            light.transition = Some(Transition {
                target: phase,
                yellow_left: timing.yellow,
                red_left: timing.all_red,
            });
        } else if timing.all_red > TIME_EPS {
            light.display = Display::AllRed;
            light.transition = Some(Transition {
                target: phase,
                yellow_left: 0.0,
                red_left: timing.all_red,
            });
        } else {
            light.display = Display::Phase(phase);
        }
        self.refresh(net, i);
        Ok(RequestOutcome::Accepted)
    }

    /// Advances every light by one step of `dt` seconds.
    #[inline(never)]
    pub(crate) fn advance(&mut self, net: &Network, dt: f64) {
        for i in 0..self.lights.len() {
            let x = &net.intersections[i];
            if x.is_virtual || x.phases.is_empty() {
                continue;
            }
            let mut changed = false;
            let light = &mut self.lights[i];
            light.elapsed += dt;
            if self.fixed_plan {
                light.remaining -= dt;
                let n = x.phases.len() as u32;
                let mut p = match light.display {
                    Display::Phase(p) => p,
                    Display::AllRed => 0,
                };
                // Bounded: a plan of (near-)zero phase times cannot stall the step.
                let mut guard = 0u32;
                while light.remaining <= 0.0 && guard < MAX_PHASE_SKIPS {
                    p = (p + 1) % n;
                    light.remaining += x.phases[p as usize].time;
                    changed = true;
                    guard += 1;
                }
                if changed {
                    light.display = Display::Phase(p);
                    light.green = p;
                    light.elapsed = 0.0;
                }
            } else if let Some(mut t) = light.transition {
                if t.yellow_left > TIME_EPS {
                    t.yellow_left -= dt;
                    if t.yellow_left <= TIME_EPS {
                        changed = true;
                        light.elapsed = 0.0;
                        if t.red_left > TIME_EPS {
                            light.display = Display::AllRed;
                        } else {
                            light.display = Display::Phase(t.target);
                            light.transition = None;
                        }
                    }
                } else {
                    t.red_left -= dt;
                    if t.red_left <= TIME_EPS {
                        changed = true;
                        light.elapsed = 0.0;
                        light.display = Display::Phase(t.target);
                        light.transition = None;
                    }
                }
                if light.transition.is_some() {
                    light.transition = Some(t);
                }
            }
            if changed {
                self.refresh(net, i as u32);
            }
        }
    }
}

impl crate::Simulation {
    /// Shows light phase `phase` at intersection `i` at once, with no safety rules (CityFlow's
    /// `set_tl_phase`). Controllers should use [`crate::Simulation::request_phase`].
    pub fn set_phase(&mut self, i: IntersectionId, phase: u32) -> Result<(), SignalError> {
        let net = &self.scenario.network;
        self.state.signals.set_phase(net, i, phase)
    }

    /// Asks intersection `i` to change to `phase`; the simulator inserts yellow and all-red and
    /// refuses changes before `timing.min_green`.
    pub fn request_phase(
        &mut self,
        i: IntersectionId,
        phase: u32,
        timing: &SignalTiming,
    ) -> Result<RequestOutcome, SignalError> {
        let net = &self.scenario.network;
        self.state.signals.request_phase(net, i, phase, timing)
    }

    /// What intersection `i` shows now.
    pub fn display(&self, i: IntersectionId) -> Display {
        self.state.signals.display(i)
    }

    /// The green phase of intersection `i` (or the one its running transition leads to).
    pub fn green_phase(&self, i: IntersectionId) -> u32 {
        self.state.signals.green_phase(i)
    }

    /// Seconds since intersection `i`'s display last changed.
    pub fn phase_elapsed(&self, i: IntersectionId) -> f64 {
        self.state.signals.elapsed(i)
    }

    /// Is intersection `i` between two greens (yellow or all-red)?
    pub fn in_transition(&self, i: IntersectionId) -> bool {
        self.state.signals.in_transition(i)
    }

    /// Is lane link `link` (lane-link index) green now?
    pub fn link_green(&self, link: u32) -> bool {
        self.state.signals.link_green(&self.scenario.network, link)
    }
}
