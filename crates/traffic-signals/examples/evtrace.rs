//! Traces one EV trip second by second (diagnostic).
mod common;

use std::sync::Arc;
use traffic_signals::preemption::{Preemption, PreemptionParams};
use traffic_signals::protocol::{ProtocolKind, controller_by_name};
use traffic_sim::control::EpisodeDriver;
use traffic_sim::spec::VehicleSpec;
use traffic_sim::{Simulation, VehicleWhere};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let data = &args[1];
    let from = &args[2];
    let to = &args[3];
    let depart: i64 = args[4].parse().unwrap();
    let enabled = args[5] == "1";
    let s = common::load(
        data,
        "jinan_3x4",
        "roadnet_3_4.json",
        "anon_3_4_jinan_real.json",
    );
    let (with_ev, fl) = s
        .with_vehicle(
            VehicleSpec::BENCHMARK,
            vec![from.clone(), to.clone()],
            depart,
        )
        .unwrap();
    let pk = ProtocolKind::P15;
    let mut p = pk.protocol();
    let mut ctrl = Preemption::new(
        controller_by_name("adaptive", pk).unwrap(),
        fl,
        p.decision_interval,
        PreemptionParams::default(),
        enabled,
    )
    .with_timing(p.timing);
    p.decision_interval = 1;
    let mut sim = Simulation::new(Arc::new(with_ev));
    let mut driver = EpisodeDriver::new(&mut sim, true, &p);
    driver.run_until(&mut sim, Some(&mut ctrl), depart as u64);
    for t in depart as u64..depart as u64 + 400 {
        driver.run_until(&mut sim, Some(&mut ctrl), t + 1);
        let Some((at, speed)) = sim.flow_vehicle(fl, 0) else {
            println!("t={} done", t + 1);
            break;
        };
        let net = sim.network();
        if let Ok(w) = std::env::var("WATCH") {
            let x = net.intersection_by_id(&w).unwrap();
            let rd = net
                .road_by_id(&std::env::var("WATCHROAD").unwrap())
                .unwrap();
            let lanes: Vec<_> = net.roads[rd as usize]
                .lanes
                .clone()
                .map(|l| sim.lane_figures(l))
                .collect();
            println!(
                "   {w} green {} trans {} el {:.0} lanes {:?}",
                sim.green_phase(x),
                sim.in_transition(x),
                sim.phase_elapsed(x),
                lanes
            );
        }
        match at {
            VehicleWhere::Lane {
                lane,
                road,
                distance,
            } => {
                let rd = &net.roads[road as usize];
                let x = rd.end;
                let (n, w, q) = sim.lane_figures(lane);
                let others: Vec<_> = rd.lanes.clone().map(|l| sim.lane_figures(l).0).collect();
                println!(
                    "t={} {} lane{} d={:.0}/{:.0} v={:.1} lane n={} w={} q={:.0} road {:?} | {} green {} trans {} el {:.0}",
                    t + 1,
                    rd.id,
                    lane - rd.lanes.start,
                    distance,
                    net.lanes[lane as usize].length,
                    speed,
                    n,
                    w,
                    q,
                    others,
                    net.intersections[x as usize].id,
                    sim.green_phase(x),
                    sim.in_transition(x),
                    sim.phase_elapsed(x)
                );
            }
            other => println!("t={} {:?} v={:.1}", t + 1, other, speed),
        }
    }
}
