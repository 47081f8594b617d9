//! Adaptive traffic signal control for single intersections, arterials and areas.
//!
//! Controllers implement [`traffic_sim::control::SignalController`]; the simulator enforces the
//! safety timing (minimum green, yellow, all-red), so a controller can only *request* phases.
//! This crate is a pure core: no I/O, no clock, no global RNG.
//!
//! - [`protocol`]: the evaluation protocols P15 (issue 4: a decision every 15 s, a change shows
//!   phase 0 for 5 s) and P5 (a decision every 5 s, 2 s of yellow), and [`protocol::evaluate`].
//! - Baselines: [`FixedTime`] and [`MaxPressure`] exactly as issue 4 defines them (the ones
//!   the simulator's fidelity tests check against CityFlow, re-exported).
//! - [`baselines`]: a Webster-optimised fixed plan, actuated control (gap-out / max-out) and
//!   SOTL, on the protocol's decision grid.
//! - [`chart`]: an SVG grouped bar chart (ATT per scenario per controller).
//! - [`greenwave`]: arterial coordination (MAXBAND-style two-way bandwidth over a common cycle and
//!   offsets), its time-space diagram, and corridor runs measuring stops per arterial vehicle.
//! - [`preemption`]: emergency-vehicle preemption (a green corridor ahead of an EV, wrapping
//!   any controller) and its with/without evaluation.
//! - [`adaptive::Adaptive`]: our controller (queue- and approach-aware pressure with a
//!   switching cost, downstream spillback guard, and a maximum-red anti-starvation guard).
//! - [`rollout::Rollout`]: a rollout (model-predictive) controller that tries candidate phases
//!   in a copy of the simulation without future arrivals, `Adaptive` as the base policy.

pub mod adaptive;
pub mod baselines;
pub mod chart;
pub mod greenwave;
pub mod preemption;
pub mod protocol;
pub mod rollout;

pub use adaptive::{Adaptive, AdaptiveParams};
pub use protocol::{EpisodeResult, ProtocolKind, evaluate};
pub use rollout::{Rollout, RolloutParams};
pub use traffic_sim::control::{FixedTime, MaxPressure, SignalController};
