//! Determinism, snapshots, signal safety, queries, replay and the generator.

mod common;

use std::sync::Arc;

use traffic_sim::bench::{Control, run_parallel};
use traffic_sim::control::{FixedTime, MaxPressure, Protocol, run_episode};
use traffic_sim::generate::{GridSpec, generate_grid};
use traffic_sim::spec::{flows_to_json, parse_flows, parse_roadnet};
use traffic_sim::{Display, ReplayFrame, RequestOutcome, Scenario, SignalTiming, Simulation};

fn short(steps: u64) -> Protocol {
    Protocol {
        steps,
        ..Protocol::p15()
    }
}

#[test]
fn same_seed_same_run_and_threads_do_not_matter() {
    let sc = common::jn1(true);
    let p = short(600);
    let mut a = Simulation::new(Arc::clone(&sc));
    let ra = run_episode(&mut a, Some(&mut MaxPressure), &p);
    let mut b = Simulation::new(Arc::clone(&sc));
    let rb = run_episode(&mut b, Some(&mut MaxPressure), &p);
    assert_eq!(ra, rb);
    assert_eq!(a.fingerprint(), b.fingerprint());
    // Two episodes on two threads end where the sequential ones did.
    let zero = || 0.0;
    let par = run_parallel(Arc::clone(&sc), Control::MaxPressure, &p, 2, 2, &zero);
    assert!(par.all_identical);
    assert_eq!(par.fingerprints[0], a.fingerprint());
}

#[test]
fn another_seed_changes_the_run() {
    let sc = common::jn1(true);
    let mut other = (*sc).clone();
    other.settings.seed = 12345;
    let p = short(300);
    let mut a = Simulation::new(sc);
    let mut b = Simulation::new(Arc::new(other));
    run_episode(&mut a, Some(&mut FixedTime::new(vec![1, 2, 3, 4])), &p);
    run_episode(&mut b, Some(&mut FixedTime::new(vec![1, 2, 3, 4])), &p);
    // Priorities and first lanes are drawn from the seeded generator.
    assert_ne!(a.fingerprint(), b.fingerprint());
}

#[test]
fn snapshot_restore_continues_bit_identically() {
    let sc = common::jn1(true);
    let mut sim = Simulation::new(sc);
    let mut ctrl = MaxPressure;
    run_episode(&mut sim, Some(&mut ctrl), &short(450));
    let snap = sim.snapshot();
    assert_eq!(snap.time(), 450.0);
    let continuation = |sim: &mut Simulation| {
        let mut out = Vec::new();
        for _ in 0..300 {
            sim.step();
            out.push((sim.vehicle_count(), sim.fingerprint()));
        }
        (out, sim.metrics())
    };
    let first = continuation(&mut sim);
    sim.restore(&snap);
    assert_eq!(sim.time(), 450.0);
    let second = continuation(&mut sim);
    assert_eq!(first, second);
    assert!(first.1.trips_finished > 0);
}

#[test]
fn signal_safety_is_enforced() {
    let sc = common::jn1(true);
    let mut sim = Simulation::new(sc);
    let x = sim
        .network()
        .intersection_by_id("intersection_1_1")
        .unwrap();
    let timing = SignalTiming {
        min_green: 10.0,
        yellow: 3.0,
        all_red: 2.0,
        yellow_phase: Some(0),
    };
    sim.set_phase(x, 1).unwrap();
    for _ in 0..5 {
        sim.step();
    }
    // Too early: the green has lasted 5 s.
    assert_eq!(
        sim.request_phase(x, 2, &timing).unwrap(),
        RequestOutcome::HeldMinGreen
    );
    assert_eq!(sim.display(x), Display::Phase(1));
    for _ in 0..5 {
        sim.step();
    }
    assert_eq!(
        sim.request_phase(x, 2, &timing).unwrap(),
        RequestOutcome::Accepted
    );
    assert_eq!(sim.display(x), Display::Phase(0), "yellow first");
    assert!(sim.in_transition(x));
    assert_eq!(
        sim.request_phase(x, 3, &timing).unwrap(),
        RequestOutcome::InTransition
    );
    let mut shown = Vec::new();
    for _ in 0..6 {
        sim.step();
        shown.push(sim.display(x));
    }
    assert_eq!(
        shown,
        vec![
            Display::Phase(0),
            Display::Phase(0),
            Display::AllRed,
            Display::AllRed,
            Display::Phase(2),
            Display::Phase(2)
        ]
    );
    assert!(!sim.in_transition(x));
    // During all-red no lane link of the intersection is green.
    let links = sim.network().intersections[x as usize].lane_links.clone();
    assert!(links.clone().any(|l| sim.link_green(l)));
    assert!(sim.request_phase(x, 42, &timing).is_err());
    let virtual_node = sim
        .network()
        .intersection_by_id("intersection_0_1")
        .unwrap();
    assert!(sim.request_phase(virtual_node, 1, &timing).is_err());
}

#[test]
fn queries_and_replay_agree() {
    let sc = common::jn1(false);
    let mut sim = Simulation::new(sc);
    for _ in 0..400 {
        sim.step();
    }
    let vehicles = sim.vehicles();
    let on_roads = vehicles.iter().filter(|v| !v.waiting_to_enter).count() as u64;
    let lane_total: u32 = (0..sim.network().lane_count())
        .map(|l| sim.lane_vehicle_count(l))
        .sum();
    let link_total = vehicles.iter().filter(|v| v.lane_link.is_some()).count() as u32;
    // Shadows are counted by vehicle_count and lane counts but are not listed as vehicles.
    assert!(sim.vehicle_count() >= on_roads);
    assert!(u64::from(lane_total + link_total) >= on_roads);
    let mut frame = ReplayFrame::default();
    sim.replay_frame(&mut frame);
    assert_eq!(frame.time, 400.0);
    assert_eq!(frame.vehicles.len() as u64, on_roads);
    // Jinan spans x in [-400, 1600] and y in [-800, 2400] (plus a few metres of lane offset).
    assert!(
        frame
            .vehicles
            .iter()
            .all(|p| p.position.x > -420.0 && p.position.x < 1620.0)
    );
    assert!(
        frame
            .vehicles
            .iter()
            .all(|p| p.position.y > -820.0 && p.position.y < 2420.0)
    );
    assert_eq!(frame.signals.iter().filter(|s| s.is_some()).count(), 12);
    for lane in 0..sim.network().lane_count() {
        let (n, waiting, queue) = sim.lane_figures(lane);
        assert!(waiting <= n);
        assert!(queue >= 0.0 && queue <= sim.network().lanes[lane as usize].length + 10.0);
    }
}

#[test]
fn metrics_cover_queues_and_series() {
    let mut sim = Simulation::new(common::jn1(true));
    let report = run_episode(
        &mut sim,
        Some(&mut FixedTime::new(vec![1, 2, 3, 4])),
        &short(1200),
    );
    assert_eq!(report.intersection_series.len(), 12);
    assert!(
        report
            .intersection_series
            .iter()
            .all(|(_, s)| s.len() == 20)
    );
    assert_eq!(report.max_queue_per_approach.len(), 48);
    assert!(report.max_queue_per_approach.iter().any(|(_, q)| *q > 5));
    assert!(report.average_delay > 0.0 && report.average_delay < report.average_travel_time);
    assert!(report.average_stops > 0.0);
    let served: u32 = report
        .intersection_series
        .iter()
        .flat_map(|(_, s)| s.iter().map(|x| x.served))
        .sum();
    assert!(served > 1000, "{served}");
}

#[test]
fn generator_makes_a_loadable_deterministic_city() {
    let spec = GridSpec {
        rows: 3,
        cols: 4,
        vehicles_per_hour: 2400.0,
        ..GridSpec::city_240()
    };
    let a = generate_grid(&spec).unwrap();
    let b = generate_grid(&spec).unwrap();
    assert_eq!(a, b);
    let c = generate_grid(&GridSpec {
        seed: 2,
        ..spec.clone()
    })
    .unwrap();
    assert_ne!(a.flows, c.flows);
    assert_eq!(
        a.roadnet
            .intersections
            .iter()
            .filter(|i| !i.is_virtual)
            .count(),
        12
    );
    assert_eq!(a.roadnet.intersections.len(), 12 + 2 * (3 + 4));
    assert_eq!(a.flows.len(), 2400);
    // The JSON it writes is what it parses back.
    let roadnet = parse_roadnet("roadnet.json", &a.roadnet.to_json()).unwrap();
    let flows = parse_flows("flow.json", &flows_to_json(&a.flows)).unwrap();
    assert_eq!(roadnet, a.roadnet);
    assert_eq!(flows, a.flows);
    let sc = Arc::new(
        Scenario::from_specs(
            common::settings(false, true),
            "roadnet.json",
            &roadnet,
            "flow.json",
            flows,
        )
        .unwrap(),
    );
    assert!(
        sc.flows.iter().all(|f| !f.route.is_empty()),
        "every generated route is valid"
    );
    let mut sim = Simulation::new(sc);
    let report = run_episode(&mut sim, None, &short(900));
    assert!(report.trips_finished > 100, "{}", report.trips_finished);
}

#[test]
fn city_240_has_the_promised_size() {
    let city = generate_grid(&GridSpec::city_240()).unwrap();
    assert_eq!(
        city.roadnet
            .intersections
            .iter()
            .filter(|i| !i.is_virtual)
            .count(),
        240
    );
    assert_eq!(city.flows.len(), 30_000);
    assert!(
        generate_grid(&GridSpec {
            rows: 0,
            ..GridSpec::city_240()
        })
        .is_err()
    );
    assert!(
        generate_grid(&GridSpec {
            road_length: traffic_sim::units::Meters(20.0),
            ..GridSpec::city_240()
        })
        .is_err()
    );
}

/// A look-ahead copy without future demand: after `stop_arrivals` no vehicle is created any more
/// (the ones already created run on and finish), while the original, stepped alongside, keeps
/// receiving its flows; the copy does not disturb the original.
#[test]
fn stop_arrivals_keeps_present_vehicles_only() {
    let sc = common::jn1(true);
    let p = short(600);
    let mut sim = Simulation::new(Arc::clone(&sc));
    run_episode(&mut sim, Some(&mut MaxPressure), &p);
    let reference = sim.clone();
    let mut twin = sim.clone();
    assert!(twin.arrivals_pending());
    twin.stop_arrivals();
    assert!(!twin.arrivals_pending());
    let present: std::collections::HashSet<String> =
        twin.vehicles().into_iter().map(|v| v.id).collect();
    assert!(present.len() > 100, "{} vehicles", present.len());
    let created_before = sim.metrics().trips_finished as usize + present.len();
    for _ in 0..300 {
        sim.step();
        twin.step();
        assert!(twin.vehicles().iter().all(|v| present.contains(&v.id)));
    }
    // The original got new vehicles, the twin none.
    let created_after = sim.metrics().trips_finished as usize + sim.vehicles().len();
    assert!(created_after > created_before + 50);
    let twin_m = twin.metrics();
    assert_eq!(
        twin_m.trips_finished as usize + twin.vehicles().len(),
        created_before
    );
    // Stopping arrivals on a clone leaves the original's run unchanged.
    let mut again = reference;
    for _ in 0..300 {
        again.step();
    }
    assert_eq!(again.fingerprint(), sim.fingerprint());
}

/// `total_delay` is the sum behind the report's mean delay, and it grows with time.
#[test]
fn total_delay_matches_the_report() {
    let sc = common::jn1(true);
    let mut sim = Simulation::new(Arc::clone(&sc));
    run_episode(&mut sim, Some(&mut MaxPressure), &short(300));
    let d1 = sim.total_delay();
    let m = sim.metrics();
    let people = m.trips_finished as f64 + sim.vehicles().len() as f64;
    assert!(
        (d1 - m.average_delay * people).abs() < 1e-6 * d1.max(1.0),
        "{d1} vs {m:?}"
    );
    sim.step();
    assert!(sim.total_delay() > d1);
}
