//! Diagnostics for one scenario (experiment tool).
mod common;

use std::sync::Arc;
use traffic_signals::protocol::ProtocolKind;
use traffic_signals::{Adaptive, AdaptiveParams};
use traffic_sim::control::EpisodeDriver;
use traffic_sim::{Scenario, Simulation};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (data, dir, roadnet, flow) = (&a[1], &a[2], &a[3], &a[4]);
    let sc: Arc<Scenario> = common::load(data, dir, roadnet, flow);
    let protocol = ProtocolKind::P15;
    let mut params = AdaptiveParams::for_protocol(protocol);
    params.max_red = 1e9;
    params.w_keep = 1.0;
    params.switch_cost = 0.0;
    params.w_approach = 0.0;
    params.w_out = 0.33;
    let mut ctrl = Adaptive::new(params);
    let p = protocol.protocol();
    let mut sim = Simulation::new(sc);
    let mut driver = EpisodeDriver::new(&mut sim, true, &p);
    let net = sim.network().clone();
    let mut green_count = vec![[0u32; 9]; net.intersections.len()];
    let mut changes = vec![0u32; net.intersections.len()];
    let mut last = vec![0u32; net.intersections.len()];
    for t in 0..3600u64 {
        driver.run_until(&mut sim, Some(&mut ctrl), t + 1);
        for (i, x) in net.intersections.iter().enumerate() {
            if x.is_virtual {
                continue;
            }
            if let traffic_sim::Display::Phase(ph) = sim.display(i as u32) {
                green_count[i][ph as usize] += 1;
            }
            let g = sim.green_phase(i as u32);
            if g != last[i] {
                changes[i] += 1;
                last[i] = g;
            }
        }
        if t == 1799 || t == 3599 {
            println!("t={}", t + 1);
            for (ri, road) in net.roads.iter().enumerate() {
                let lanes: Vec<String> = road
                    .lanes
                    .clone()
                    .map(|l| {
                        let (c, w, _) = sim.lane_figures(l);
                        format!("{c}/{w}+{}", sim.lane_entry_queue(l))
                    })
                    .collect();
                println!(
                    "  {} len {:.0} -> {} : {}",
                    road.id,
                    net.lanes[road.lanes.start as usize].length,
                    net.intersections[road.end as usize].id,
                    lanes.join(" ")
                );
                let _ = ri;
            }
        }
    }
    for (i, x) in net.intersections.iter().enumerate() {
        if x.is_virtual {
            continue;
        }
        println!(
            "{} changes {} phases {:?}",
            x.id,
            changes[i],
            &green_count[i][..5]
        );
    }
    println!("{:?}", sim.metrics().average_travel_time);
}
