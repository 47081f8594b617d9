//! Emergency-vehicle preemption and the classic baselines on JN1.

// The simulator's own test helpers (locating shared/, loading the benchmark scenarios).
#[path = "../../traffic-sim/tests/common/mod.rs"]
mod common;

use std::sync::Arc;

use traffic_signals::baselines::{Actuated, Sotl, Webster};
use traffic_signals::preemption::{
    EvTrip, Preemption, PreemptionParams, evaluate_preemption, run_ev_episode,
};
use traffic_signals::protocol::{ProtocolKind, evaluate};
use traffic_signals::{Adaptive, AdaptiveParams, FixedTime};
use traffic_sim::control::{EpisodeDriver, controlled_intersections};
use traffic_sim::spec::VehicleSpec;
use traffic_sim::{Display, Simulation, VehicleWhere};

fn corridor() -> Vec<String> {
    vec!["road_0_2_0".to_owned(), "road_4_2_0".to_owned()]
}

/// The scripted vehicle appears at its departure, drives its route's roads in order and leaves.
#[test]
fn scripted_vehicle_follows_its_route() {
    let sc = common::jn1(true);
    let (with_ev, flow) = sc
        .with_vehicle(VehicleSpec::BENCHMARK, corridor(), 30)
        .expect("route resolves");
    assert_eq!(flow as usize, sc.flows.len());
    let route = with_ev.flows[flow as usize].route.clone();
    assert_eq!(route.len(), 5, "straight across four signals");
    let mut sim = Simulation::new(Arc::new(with_ev));
    let p = ProtocolKind::P15.protocol();
    let mut driver = EpisodeDriver::new(&mut sim, true, &p);
    let mut ctrl = FixedTime::new(vec![1, 2, 3, 4]);
    let mut visited: Vec<u32> = Vec::new();
    let mut left_at = None;
    while sim.steps() < 1200 && left_at.is_none() {
        let t = sim.steps();
        match sim.flow_vehicle(flow, 0) {
            None if t <= 30 => {}
            None => left_at = Some(t),
            Some((VehicleWhere::Lane { road, .. }, _)) => {
                if visited.last() != Some(&road) {
                    visited.push(road);
                }
            }
            Some(_) => assert!(t > 30, "created at its departure"),
        }
        driver.run_until(&mut sim, Some(&mut ctrl), t + 1);
    }
    assert_eq!(visited, route, "every road, in order");
    assert!(left_at.is_some_and(|t| t > 30 + 180), "{left_at:?}");
}

/// With preemption switched off the per-second driving gives exactly the inner controller's
/// P15 episode (same decisions at the same steps).
#[test]
fn preemption_off_is_the_inner_controller() {
    let sc = common::jn1(true);
    let (with_ev, flow) = sc
        .with_vehicle(VehicleSpec::BENCHMARK, corridor(), 1800)
        .expect("route resolves");
    let with_ev = Arc::new(with_ev);
    let p = ProtocolKind::P15;
    // The wrapper forwards the per-second `observe` calls, so the inner controller keeps the
    // same per-second bookkeeping as when it runs plainly.
    let params = AdaptiveParams::for_protocol(p);
    let plain = evaluate(
        with_ev.clone(),
        &mut Adaptive::new(params.clone()),
        p,
        |_| {},
    );
    let mut off = Preemption::new(
        Box::new(Adaptive::new(params)),
        flow,
        15,
        PreemptionParams::default(),
        false,
    );
    let (run, signals) = run_ev_episode(with_ev, &mut off, p, 1800);
    assert_eq!(signals, 4);
    assert_eq!(run.att, plain.average_travel_time);
    assert_eq!(run.trips_finished, plain.trips_finished);
    assert_eq!(run.preempted_seconds, 0);
    assert!(run.ev_travel_time.is_some());
}

/// On the west-east corridor of JN1 the EV is at least 40% faster with preemption, and the
/// other vehicles' ATT changes by less than 1%.
#[test]
fn preemption_cuts_ev_travel_time_on_a_jinan_corridor() {
    let sc = common::jn1(true);
    let p = ProtocolKind::P15;
    let trip = EvTrip {
        route: corridor(),
        depart: 2400,
    };
    let r = evaluate_preemption(&sc, &trip, p, &PreemptionParams::default(), || {
        Box::new(Adaptive::new(AdaptiveParams::for_protocol(p)))
    })
    .expect("route resolves");
    let without = r
        .without
        .ev_travel_time
        .expect("EV leaves without preemption");
    let with = r.with.ev_travel_time.expect("EV leaves with preemption");
    assert!(with <= 0.6 * without, "{with} vs {without}");
    // 2000 m at 11.11 m/s: nobody is faster than free flow.
    assert!(with >= 180.0, "{with}");
    assert_eq!(r.with.intersections_preempted, 4);
    let change = r.with.others_att / r.without.others_att - 1.0;
    assert!(change.abs() < 0.01, "{change}");
}

/// The queue look-ahead: on the west-east corridor at 3000 s the approach to the third signal
/// holds about 20 vehicles, more than a green switched on 600 m ahead of the EV can discharge.
/// Preempting by queue clearance time instead gets the EV through faster than the distance rule
/// alone (600 m, two signals ahead) does.
#[test]
fn queue_look_ahead_clears_long_queues_earlier() {
    let sc = common::jn1(true);
    let p = ProtocolKind::P15;
    let trip = EvTrip {
        route: corridor(),
        depart: 3000,
    };
    let run = |params: &PreemptionParams| {
        evaluate_preemption(&sc, &trip, p, params, || {
            Box::new(Adaptive::new(AdaptiveParams::for_protocol(p)))
        })
        .expect("route resolves")
    };
    let look = run(&PreemptionParams::default());
    let distance_only = run(&PreemptionParams {
        max_ahead: 2,
        headway: 0.0,
        ..PreemptionParams::default()
    });
    assert_eq!(look.without, distance_only.without, "same baseline run");
    let without = look.without.ev_travel_time.expect("EV leaves");
    let with = look.with.ev_travel_time.expect("EV leaves");
    let old = distance_only.with.ev_travel_time.expect("EV leaves");
    assert!(with < old, "{with} vs {old}");
    // With the merged `adaptive` this trip takes 186 s against 363 s (0.512): a bound with
    // little slack, so that a look-ahead that stops clearing the queue early fails here.
    assert!(with <= 0.55 * without, "{with} vs {without}");
    assert!(look.with.preempted_seconds > 0);
    // The carried vehicles: the upstream signals, switched for the EV, release their queues
    // into the third signal's approach ahead of the EV. Counting them in the third signal's
    // clearance time switches it earlier, so the EV no longer crawls behind that platoon
    // (201 s without them, 186 s with them; the EV alone needs 183-186 s).
    let own_queue_only = run(&PreemptionParams {
        carry: 0.0,
        ..PreemptionParams::default()
    });
    let own = own_queue_only.with.ev_travel_time.expect("EV leaves");
    assert!(with + 10.0 <= own, "{with} vs {own}");
}

/// Webster's plan: every phase gets a slot, the most loaded phase the most slots, and the
/// cycle lies within its bounds.
#[test]
fn webster_plan_follows_the_critical_flow_ratios() {
    let sc = common::jn1(true);
    let sim = Simulation::new(sc);
    let list = controlled_intersections(&sim, &[1, 2, 3, 4]);
    let w = Webster::new(ProtocolKind::P15, 180.0);
    let plans = w.plans(&sim, &list);
    assert_eq!(plans.len(), 12);
    for plan in &plans {
        assert_eq!(plan.slots.len(), 4);
        assert!(plan.slots.iter().all(|&s| s >= 1));
        assert!((60.0..=180.0).contains(&plan.cycle), "{plan:?}");
        let top_y = (0..4)
            .max_by(|&a, &b| plan.y[a].total_cmp(&plan.y[b]))
            .expect("four phases");
        assert_eq!(
            plan.slots[top_y],
            *plan.slots.iter().max().expect("four phases"),
            "{plan:?}"
        );
        assert!(plan.y.iter().any(|&y| y > 0.0));
    }
}

/// Actuated control and SOTL beat FixedTime on JN1 (P15).
#[test]
fn actuated_and_sotl_beat_fixed_time_on_jn1() {
    let sc = common::jn1(true);
    let p = ProtocolKind::P15;
    let fixed = evaluate(sc.clone(), &mut FixedTime::new(vec![1, 2, 3, 4]), p, |_| {});
    let actuated = evaluate(sc.clone(), &mut Actuated::new(p), p, |_| {});
    let sotl = evaluate(sc, &mut Sotl::new(p), p, |_| {});
    assert!(actuated.average_travel_time < 0.8 * fixed.average_travel_time);
    assert!(sotl.average_travel_time < 0.8 * fixed.average_travel_time);
    assert!(actuated.trips_finished > fixed.trips_finished);
    assert!(sotl.trips_finished > fixed.trips_finished);
}

/// Preemption stays within the safety timing: every green lasts at least the minimum green and
/// every change shows exactly the 5 s yellow (phase 0), also while the corridor is held.
#[test]
fn preemption_keeps_the_safety_timing() {
    let sc = common::jn1(true);
    let (with_ev, flow) = sc
        .with_vehicle(VehicleSpec::BENCHMARK, corridor(), 100)
        .expect("route resolves");
    let p = ProtocolKind::P15;
    let mut proto = p.protocol();
    proto.decision_interval = 1;
    let mut ctrl = Preemption::new(
        Box::new(Adaptive::new(AdaptiveParams::for_protocol(p))),
        flow,
        15,
        PreemptionParams::default(),
        true,
    );
    let mut sim = Simulation::new(Arc::new(with_ev));
    let mut driver = EpisodeDriver::new(&mut sim, true, &proto);
    let list = controlled_intersections(&sim, &proto.phases);
    let mut last: Vec<(Display, u64)> = list
        .iter()
        .map(|c| (sim.display(c.intersection), 0))
        .collect();
    let mut changes = 0;
    while sim.steps() < 700 {
        let next = sim.steps() + 1;
        driver.run_until(&mut sim, Some(&mut ctrl), next);
        let t = sim.steps();
        for (c, (shown, since)) in list.iter().zip(last.iter_mut()) {
            let now = sim.display(c.intersection);
            if now == *shown {
                continue;
            }
            // Displays are sampled after each 1 s step; a change requested before a step shows
            // during that step, so the sample sees the yellow's start one step late.
            let held = t - *since;
            match *shown {
                Display::Phase(0) => assert_eq!(held, 4, "yellow at {}", c.id),
                Display::Phase(_) => {
                    assert!(held >= 10, "green of {held} s at {} (t = {t})", c.id);
                    assert_eq!(now, Display::Phase(0), "a change starts with yellow");
                    changes += 1;
                }
                Display::AllRed => {}
            }
            *shown = now;
            *since = t;
        }
    }
    assert!(ctrl.log().preempted.len() == 4, "{:?}", ctrl.log());
    assert!(ctrl.log().finished_at.is_some());
    assert!(changes > 50);
}
