//! A deterministic traffic microsimulator compatible with CityFlow.
//!
//! It reads CityFlow's `config.json`, `roadnet.json` and `flow.json` (from strings: this crate
//! does no I/O, reads no clock and has no global RNG; the seed is an input) and reproduces
//! CityFlow's model: its collision-free car following, stop-line and red-light logic, yielding at
//! precomputed crossing points, segment-based lane changing with shadow vehicles, entry buffers
//! and shortest-path routing. See `docs/traffic-model.md` for the model, its state machines and
//! where it knowingly differs from CityFlow.
//!
//! Key decisions:
//! - **Faithful first.** Formulas are ported operation by operation so that they give the same
//!   bits; the step runs CityFlow's phases in CityFlow's order. The one source of divergence we
//!   accept is iteration order: CityFlow walks its vehicles in pointer order, we walk slots in
//!   index order, which is deterministic.
//! - **Indices, not pointers.** Vehicles live in a slot vector; lanes and lane links keep vectors
//!   of slot indices in list order; the network is flat vectors addressed by `u32`.
//! - **Snapshots are clones.** All mutable state is one plain struct, so [`Simulation::snapshot`]
//!   and [`Simulation::restore`] give bit-identical continuations.
//! - **Safety in the simulator.** Controllers request phases; minimum green, yellow and all-red
//!   are enforced by the simulator ([`SignalTiming`]).

pub mod bench;
pub mod control;
mod error;
pub mod generate;
pub mod geometry;
mod json;
mod metrics;
pub mod network;
mod query;
mod replay;
pub mod rng;
mod scenario;
mod scripted;
mod signal;
mod sim;
pub mod spec;
pub mod units;
mod vehicle;

pub use error::LoadError;
pub use metrics::{IntersectionSample, MetricsReport, SERIES_EVERY_STEPS, WAITING_SPEED};
pub use query::VehicleInfo;
pub use replay::{LaneLight, ReplayFrame, VehiclePose};
pub use scenario::{EngineSettings, Flow, Scenario, ScenarioError};
pub use scripted::VehicleWhere;
pub use signal::{Display, RequestOutcome, SignalError, SignalTiming};
pub use sim::{Simulation, Snapshot};
