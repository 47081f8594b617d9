//! Emergency-vehicle preemption on JN1: every corridor x departure, without and with (an
//! experiment tool; `citybrain signal preempt` is the supported front end).
//!
//! usage: cargo run --release -p traffic-signals --example preempt -- DATA_DIR [inner] [lead_m] [max_ahead] [headway_s] [margin_s] [max_lead_s] [carry]

mod common;

use traffic_signals::preemption::{
    EvTrip, JINAN_CORRIDORS, JINAN_DEPARTURES, PreemptionParams, PreemptionSummary,
    evaluate_preemption,
};
use traffic_signals::protocol::{ProtocolKind, controller_by_name};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let data = args.get(1).map_or("../shared/data/traffic", |s| s.as_str());
    let inner = args.get(2).map_or("adaptive", |s| s.as_str()).to_owned();
    let mut params = PreemptionParams::default();
    if let Some(v) = args.get(3) {
        params.lead_distance = v.parse().unwrap();
    }
    if let Some(v) = args.get(4) {
        params.max_ahead = v.parse().unwrap();
    }
    if let Some(v) = args.get(5) {
        params.headway = v.parse().unwrap();
    }
    if let Some(v) = args.get(6) {
        params.clear_margin = v.parse().unwrap();
    }
    if let Some(v) = args.get(7) {
        params.max_lead_time = v.parse().unwrap();
    }
    if let Some(v) = args.get(8) {
        params.carry = v.parse().unwrap();
    }
    let s = common::load(
        data,
        "jinan_3x4",
        "roadnet_3_4.json",
        "anon_3_4_jinan_real.json",
    );
    let p = ProtocolKind::P15;
    let mut results = Vec::new();
    for (name, from, to) in JINAN_CORRIDORS {
        for depart in JINAN_DEPARTURES {
            let trip = EvTrip {
                route: vec![from.to_owned(), to.to_owned()],
                depart,
            };
            let r = evaluate_preemption(&s, &trip, p, &params, || {
                controller_by_name(&inner, p).unwrap()
            })
            .unwrap();
            println!(
                "{name:10} t={depart:4} signals={} EV {:?} -> {:?}  others ATT {:.2} -> {:.2}  preempted {} for {} s",
                r.signals_on_route,
                r.without.ev_travel_time,
                r.with.ev_travel_time,
                r.without.others_att,
                r.with.others_att,
                r.with.intersections_preempted,
                r.with.preempted_seconds
            );
            results.push(r);
        }
    }
    for (k, (name, _, _)) in JINAN_CORRIDORS.iter().enumerate() {
        let n = JINAN_DEPARTURES.len();
        let c = PreemptionSummary::of(&results[k * n..(k + 1) * n]);
        println!(
            "  {name:10}: EV {:.1} -> {:.1} s ({:+.1}%), others {:.2} -> {:.2} s",
            c.ev_mean_without,
            c.ev_mean_with,
            c.ev_change() * 100.0,
            c.others_att_without,
            c.others_att_with
        );
    }
    let sum = PreemptionSummary::of(&results);
    println!(
        "{inner} {params:?}: EV mean {:.1} -> {:.1} s ({:+.1}%), others ATT {:.2} -> {:.2} s ({:+.2}%) over {} trips",
        sum.ev_mean_without,
        sum.ev_mean_with,
        sum.ev_change() * 100.0,
        sum.others_att_without,
        sum.others_att_with,
        (sum.others_att_with / sum.others_att_without - 1.0) * 100.0,
        sum.trips
    );
}
