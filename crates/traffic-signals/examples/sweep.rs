//! Runs the six benchmark demand files under a controller and prints ATT per file (an
//! experiment tool; the CLI `citybrain signal eval` is the supported front end).
//!
//! usage: cargo run --release -p traffic-signals --example sweep -- DATA_DIR p15|p5 CONTROLLER [key=value ...]

mod common;

use std::sync::Arc;

use traffic_signals::protocol::{ProtocolKind, controller_by_name, evaluate};
use traffic_signals::{Adaptive, AdaptiveParams, Rollout, RolloutParams};
use traffic_sim::{EngineSettings, Scenario};

const FILES: [(&str, &str, &str, &str); 7] = [
    ("C240", "", "", ""),
    (
        "JN1",
        "jinan_3x4",
        "roadnet_3_4.json",
        "anon_3_4_jinan_real.json",
    ),
    (
        "JN2",
        "jinan_3x4",
        "roadnet_3_4.json",
        "anon_3_4_jinan_real_2000.json",
    ),
    (
        "JN3",
        "jinan_3x4",
        "roadnet_3_4.json",
        "anon_3_4_jinan_real_2500.json",
    ),
    (
        "HZ1",
        "hangzhou_4x4",
        "roadnet_4_4.json",
        "anon_4_4_hangzhou_real.json",
    ),
    (
        "HZ5734",
        "hangzhou_4x4",
        "roadnet_4_4.json",
        "anon_4_4_hangzhou_real_5734.json",
    ),
    (
        "HZ5816",
        "hangzhou_4x4",
        "roadnet_4_4.json",
        "anon_4_4_hangzhou_real_5816.json",
    ),
];

fn city240() -> Arc<Scenario> {
    let mut spec = traffic_sim::generate::GridSpec::city_240();
    if let Ok(v) = std::env::var("VPH") {
        spec.vehicles_per_hour = v.parse().unwrap();
    }
    let g = traffic_sim::generate::generate_grid(&spec).unwrap();
    let mut settings = EngineSettings::from_config(&g.config);
    settings.rl_traffic_light = true;
    Arc::new(
        Scenario::from_specs(settings, "roadnet.json", &g.roadnet, "flow.json", g.flows).unwrap(),
    )
}

/// One of `FILES` by its row: the generated city for `C240`, else the benchmark files in `data`.
/// With `KEEP=id,id`, every intersection but those is relaxed to no signal
/// (`Scenario::without_signals_except`).
fn load(data: &str, tag: &str, dir: &str, roadnet: &str, flow: &str) -> Arc<Scenario> {
    let sc = if tag == "C240" {
        city240()
    } else {
        common::load(data, dir, roadnet, flow)
    };
    match std::env::var("KEEP") {
        Ok(keep) => {
            let keep: Vec<&str> = keep.split(',').collect();
            Arc::new(sc.without_signals_except(&keep))
        }
        Err(_) => sc,
    }
}

/// A cyclic plan of one phase per decision (`plan=1,1,1,3,2,4`), for every intersection.
struct Plan {
    phases: Vec<u32>,
    next: usize,
}

impl traffic_sim::control::SignalController for Plan {
    fn name(&self) -> &str {
        "plan"
    }

    fn decide(
        &mut self,
        view: &traffic_sim::control::SignalView<'_>,
        decisions: &mut [Option<u32>],
    ) {
        let phase = self.phases[self.next % self.phases.len()];
        self.next += 1;
        for d in decisions.iter_mut().take(view.intersections.len()) {
            *d = Some(phase);
        }
    }
}

/// `adaptive` and `rollout` with the overridden parameters, the others by name.
fn make(
    name: &str,
    params: &AdaptiveParams,
    rparams: &RolloutParams,
    protocol: ProtocolKind,
) -> Box<dyn traffic_signals::SignalController + Send> {
    match name {
        "adaptive" => Box::new(Adaptive::new(params.clone())),
        "rollout" => {
            let mut r = rparams.clone();
            r.base = params.clone();
            Box::new(Rollout::new(r))
        }
        _ if name.starts_with("plan=") => Box::new(Plan {
            phases: name[5..].split(',').map(|p| p.parse().unwrap()).collect(),
            // The plan's first phase is the one green from t = 0 (the protocol's initial
            // phase); the first decision takes the second.
            next: 1,
        }),
        _ => controller_by_name(name, protocol).unwrap(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let data = args[1].clone();
    let protocol = ProtocolKind::parse(&args[2]).unwrap();
    let name = args[3].clone();
    let filter = std::env::var("ONLY").unwrap_or_default();
    let mut params = AdaptiveParams::for_protocol(protocol);
    let mut rparams = RolloutParams::for_protocol(protocol);
    for kv in &args[4..] {
        let (k, v) = kv.split_once('=').unwrap();
        let v: f64 = v.parse().unwrap();
        match k {
            // Rollout (`rollout` controller); the adaptive keys below set its base policy.
            "r_horizon" => rparams.horizon = v as u64,
            "r_rounds" => rparams.rounds = v as u32,
            "r_hold" => rparams.hold = v as u64,
            "r_term" => rparams.w_term = v,
            "r_entry" => rparams.w_entry = v,
            "r_backlog" => rparams.w_backlog = v,
            "r_demand" => rparams.demand_only = v != 0.0,
            "r_margin" => rparams.margin = v,
            "reach" => params.reach = v,
            "w_approach" => params.w_approach = v,
            "w_out" => params.w_out = v,
            "switch_cost" => params.switch_cost = v,
            "w_keep" => params.w_keep = v,
            "w_entry" => params.w_entry = v,
            "w_keep_wait" => params.w_keep_wait = v,
            "w_age" => params.w_age = v,
            "spill" => params.spill = v,
            "max_red" => params.max_red = v,
            "vehicle_space" => params.vehicle_space = v,
            "sat" => params.sat = v,
            "due" => params.due = v,
            "exact" => params.exact_wait = v != 0.0,
            "w_pred" => params.w_pred = v,
            "w_keep_pred" => params.w_keep_pred = v,
            "horizon" => params.horizon = v,
            "pred_sat" => params.pred_sat = v,
            "pred_lane" => params.pred_lane = v,
            "two_pass" => params.two_pass = v != 0.0,
            _ => panic!("unknown {k}"),
        }
    }
    if std::env::var("CROSSINGS").is_ok() {
        // Demand per signalised intersection: vehicles scheduled in the hour and the
        // intersections their routes cross (route roads - 1).
        for (tag, dir, r, f) in FILES.iter().filter(|f| filter.split(',').any(|x| x == f.0)) {
            let sc = load(&data, tag, dir, r, f);
            let signals = sc
                .network
                .intersections
                .iter()
                .filter(|x| !x.is_virtual)
                .count();
            let (mut vehicles, mut crossings) = (0u64, 0u64);
            for flow in &sc.flows {
                let fs = &flow.spec;
                let end = fs.end_time.min(3599);
                if fs.start_time > end || flow.route.is_empty() {
                    continue;
                }
                let n = ((end - fs.start_time) as f64 / fs.interval.max(1e-9)).floor() as u64 + 1;
                vehicles += n;
                crossings += n * (flow.route.len() as u64 - 1);
            }
            println!(
                "{tag}: {vehicles} vehicles, {signals} signals, {:.2} crossings per trip, {:.0} crossings per signal per hour",
                crossings as f64 / vehicles.max(1) as f64,
                crossings as f64 / signals.max(1) as f64
            );
        }
        return;
    }
    if std::env::var("ENTRYDIAG").is_ok() {
        for (tag, dir, r, f) in FILES.iter().filter(|f| filter.split(',').any(|x| x == f.0)) {
            let sc = load(&data, tag, dir, r, f);
            let mut ctrl = make(&name, &params, &rparams, protocol);
            let p = protocol.protocol();
            let mut sim = traffic_sim::Simulation::new(sc);
            let mut driver = traffic_sim::control::EpisodeDriver::new(&mut sim, true, &p);
            driver.run_until(&mut sim, Some(ctrl.as_mut()), p.steps);
            let net = sim.network();
            for road in &net.roads {
                for l in road.lanes.clone() {
                    let q = sim.lane_entry_queue(l);
                    if q > 0 {
                        println!("{tag} {} lane {} entry {q}", road.id, l - road.lanes.start);
                    }
                }
            }
        }
        return;
    }
    if std::env::var("RELAX").is_ok() {
        // The no-signal bound (signal control relaxed away; `signal eval --bound`).
        for (tag, dir, r, f) in FILES.iter().filter(|f| filter.split(',').any(|x| x == f.0)) {
            let sc = load(&data, tag, dir, r, f);
            let m = traffic_signals::protocol::evaluate_without_signals(&sc, protocol, |_| {});
            println!(
                "{tag} no-signal bound: ATT {:.2} (fin {} run {} wait {})",
                m.average_travel_time, m.trips_finished, m.running, m.waiting_to_enter
            );
        }
        return;
    }
    let jobs: Vec<_> = FILES
        .iter()
        .filter(|f| (filter.is_empty() && f.0 != "C240") || filter.split(',').any(|x| x == f.0))
        .collect();
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .chunks(jobs.len().div_ceil(2).max(1))
            .map(|chunk| {
                let data = &data;
                let name = &name;
                let params = &params;
                let rparams = &rparams;
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|(tag, dir, r, f)| {
                            let sc = load(data, tag, dir, r, f);
                            let mut ctrl = make(name, params, rparams, protocol);
                            let t = std::time::Instant::now();
                            let progress = std::env::var("PROGRESS").is_ok();
                            let r = evaluate(sc, ctrl.as_mut(), protocol, |step| {
                                if progress {
                                    eprintln!(
                                        "{tag} step {step} at {:.0} s",
                                        t.elapsed().as_secs_f64()
                                    );
                                }
                            });
                            (tag.to_string(), r, t.elapsed().as_secs_f64())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut line = String::new();
    let mut sum = 0.0;
    for (tag, r, secs) in &results {
        sum += r.average_travel_time;
        line += &format!(
            "{tag} {:.2} (fin {} run {} wait {}, {secs:.0} s)  ",
            r.average_travel_time, r.trips_finished, r.running, r.waiting_to_enter
        );
    }
    println!(
        "{name} {} {:?}\n  {line}\n  sum {sum:.1}",
        args[2],
        &args[4..]
    );
}
