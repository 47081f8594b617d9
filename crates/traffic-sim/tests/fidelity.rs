//! Regression against CityFlow (figures measured with CityFlow @ 81ee0f4 on the same protocol,
//! see docs/traffic-model.md) and pins of our own figures, so that any behaviour change shows.
//!
//! The full-episode checks run the whole 3600 s Jinan episode; in the dev profile this takes a
//! few seconds per episode.

mod common;

use traffic_sim::Simulation;
use traffic_sim::control::{FixedTime, MaxPressure, Protocol, run_episode};

fn within(ours: f64, reference: f64, tolerance: f64) -> bool {
    (ours / reference - 1.0).abs() <= tolerance
}

#[test]
fn jn1_fixed_time_p15_matches_cityflow() {
    let mut sim = Simulation::new(common::jn1(true));
    let report = run_episode(
        &mut sim,
        Some(&mut FixedTime::new(vec![1, 2, 3, 4])),
        &Protocol::p15(),
    );
    // CityFlow: ATT 586.41 s, 3,172,718 vehicle-steps, 1,284 running at the end.
    assert!(
        within(report.average_travel_time, 586.41, 0.03),
        "ATT {}",
        report.average_travel_time
    );
    assert!(
        within(report.vehicle_steps as f64, 3_172_718.0, 0.03),
        "{}",
        report.vehicle_steps
    );
    assert!(
        report.running.abs_diff(1284) <= 40,
        "running {}",
        report.running
    );
    // Our own figures, pinned (bit-exact, deterministic).
    assert_eq!(format!("{:.4}", report.average_travel_time), "586.4125");
    assert_eq!(report.vehicle_steps, 3_172_653);
    assert_eq!(report.running, 1284);
    assert_eq!(report.waiting_to_enter, 395);
    assert_eq!(report.trips_finished, 4616);
}

#[test]
fn jn1_roadnet_plan_matches_cityflow() {
    let mut sim = Simulation::new(common::jn1(false));
    let report = run_episode(&mut sim, None, &Protocol::p15());
    assert!(
        within(report.average_travel_time, 444.65, 0.03),
        "ATT {}",
        report.average_travel_time
    );
    assert_eq!(format!("{:.4}", report.average_travel_time), "444.6466");
    assert_eq!(report.vehicle_steps, 2_665_952);
}

#[test]
fn jn1_max_pressure_matches_cityflow() {
    let mut sim = Simulation::new(common::jn1(true));
    let report = run_episode(&mut sim, Some(&mut MaxPressure), &Protocol::p15());
    assert!(
        within(report.average_travel_time, 319.99, 0.05),
        "ATT {}",
        report.average_travel_time
    );
    assert_eq!(format!("{:.4}", report.average_travel_time), "319.9938");
    assert_eq!(report.vehicle_steps, 2_017_623);
}

#[test]
fn hz5816_fixed_time_p15_matches_cityflow() {
    let sc = common::scenario(
        "hangzhou_4x4",
        "roadnet_4_4.json",
        "anon_4_4_hangzhou_real_5816.json",
        true,
    );
    let mut sim = Simulation::new(sc);
    let report = run_episode(
        &mut sim,
        Some(&mut FixedTime::new(vec![1, 2, 3, 4])),
        &Protocol::p15(),
    );
    assert!(
        within(report.average_travel_time, 580.61, 0.03),
        "ATT {}",
        report.average_travel_time
    );
    assert_eq!(format!("{:.4}", report.average_travel_time), "580.6088");
}
