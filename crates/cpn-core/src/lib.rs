//! Computing-power network core (pure: no I/O, no clocks, no global RNG).
//!
//! The alliance pools member data centres ("East Data, West Computing": data produced in the
//! east, computed where power is cheap and green). This crate holds the model and the decisions:
//!
//! - [`world`]: GPU models, regions, the network between regions, sites; JSON in, validated
//!   index-based form out. [`sites`] has the documented 12-site east/west set.
//! - [`cats`]: site advertisements as IETF CATS metrics (L0 raw, L1 per category, L2 overall).
//! - [`job`]: job specs and the validation that rejects jobs which could never run.
//! - [`cost`]: the weighted objective (money, carbon, data moved, lateness).
//! - [`timeline`] and [`engine`]: capacity over time and the placement engine (ours plus the
//!   Karmada-style, cheapest-price and lowest-carbon baselines).
//! - [`lp`]: the LP relaxation whose optimum is a lower bound on any plan's cost.
//! - [`trace`], [`synth`], [`sim`]: the Alibaba trace, synthetic workloads and the simulator that
//!   replays them and reports cost, carbon, bytes moved, misses, utilisation and waiting time.
//! - [`chart`]: the comparison as an SVG string; [`bench`]: the benchmark report.
//!
//! Key design decisions: integer capacities (milli-cores, MiB, milli-GPUs) so over-commitment is
//! exact; time in fixed slots with reservations rounded outwards so a plan that fits its slots
//! fits every instant; the same engine runs every policy so comparisons differ only in the
//! decision rule; randomness only through an explicit seed ([`rng`]). See `docs/cpn.md`.

pub mod bench;
pub mod cats;
pub mod chart;
pub mod cost;
pub mod engine;
pub mod error;
pub mod job;
pub mod lp;
pub mod rng;
pub mod sim;
pub mod sites;
pub mod synth;
pub mod timeline;
pub mod trace;
pub mod world;

pub use error::{AdvertError, JobError, PlaceError, TraceError, WorldError};
