//! How low can one intersection's signal plan take a scenario's ATT? A clairvoyant search
//! (an experiment tool, see docs/traffic-results.md, "One bottleneck intersection").
//!
//! Every intersection except `KEEP` (default `intersection_4_4`) is relaxed to no signal
//! (`Scenario::without_signals_except`). The kept intersection's phase sequence (one phase per
//! decision of the protocol) starts from what `rollout` (or `START=adaptive`) chose, or from
//! `SEQ=` (a sequence an earlier search printed), then
//! coordinate descent tries every other phase at every decision, simulating the rest of the
//! hour each time with the future arrivals known, and keeps a change that lowers the ATT
//! (`WINDOW=2`: every assignment of two consecutive decisions at a time).
//! With the maximum red (default; `MAX_RED=secs`), a sequence is allowed only if no phase
//! with waiting vehicles stays red longer than that, checked every step as the property tests
//! do; `MAX_RED=inf` searches without it.
//!
//! usage: cargo run --release -p traffic-signals --example plan_search -- DATA_DIR p15|p5 [FILE] [PASSES]

mod common;

use std::sync::Arc;

use traffic_signals::protocol::{ProtocolKind, controller_by_name, evaluate};
use traffic_sim::control::{
    ControlledIntersection, SignalController, SignalView, controlled_intersections,
};
use traffic_sim::{Display, Scenario, SignalTiming, Simulation};

/// Records the phase each decision asked for (the current one where it asked for none).
struct Recorder {
    inner: Box<dyn SignalController + Send>,
    seq: Vec<u32>,
}

impl SignalController for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }

    fn decide(&mut self, view: &SignalView<'_>, decisions: &mut [Option<u32>]) {
        self.inner.decide(view, decisions);
        let c = &view.intersections[0];
        let asked = decisions[0].unwrap_or_else(|| view.sim.green_phase(c.intersection));
        self.seq.push(asked);
    }

    fn observe(&mut self, sim: &Simulation) {
        self.inner.observe(sim);
    }
}

/// A run in progress: the simulation and the maximum-red bookkeeping of the kept intersection.
#[derive(Clone)]
struct Run {
    sim: Simulation,
    /// Per phase, since when it has had waiting vehicles on red.
    since: Vec<Option<f64>>,
    worst: f64,
}

struct Setup {
    c: ControlledIntersection,
    timing: SignalTiming,
    interval: u64,
    steps: u64,
    max_red: f64,
}

impl Setup {
    /// Runs `run` from decision `k` (its current step must be that decision's) to the end of the
    /// episode with `seq[k..]`; `None` once the maximum red is broken.
    fn finish(&self, mut run: Run, seq: &[u32], k: usize) -> Option<f64> {
        for (j, &phase) in seq.iter().enumerate().skip(k) {
            let until = ((j as u64) + 2) * self.interval;
            self.advance(&mut run, phase, until.min(self.steps))?;
        }
        self.advance_to(&mut run, self.steps)?;
        Some(run.sim.metrics().average_travel_time)
    }

    /// Requests `phase` now, then steps to `until`.
    fn advance(&self, run: &mut Run, phase: u32, until: u64) -> Option<()> {
        let _ = run
            .sim
            .request_phase(self.c.intersection, phase, &self.timing);
        self.advance_to(run, until)
    }

    fn advance_to(&self, run: &mut Run, until: u64) -> Option<()> {
        while run.sim.steps() < until {
            run.sim.step();
            let now = run.sim.time();
            let display = run.sim.display(self.c.intersection);
            for (ph, s) in self.c.phases.iter().zip(run.since.iter_mut()) {
                let waiting = ph
                    .incoming
                    .iter()
                    .any(|&l| run.sim.lane_waiting_count(l) > 0);
                if display == Display::Phase(ph.phase) || !waiting {
                    *s = None;
                } else {
                    let t0 = *s.get_or_insert(now);
                    run.worst = run.worst.max(now - t0);
                }
            }
            if run.worst > self.max_red {
                return None;
            }
        }
        Some(())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let data = &args[1];
    let protocol = ProtocolKind::parse(&args[2]).unwrap();
    let file = args
        .get(3)
        .map_or("anon_4_4_hangzhou_real_5816.json", String::as_str);
    let passes: usize = args.get(4).map_or(2, |p| p.parse().unwrap());
    let keep = std::env::var("KEEP").unwrap_or_else(|_| "intersection_4_4".into());
    let max_red: f64 = std::env::var("MAX_RED").map_or(120.0, |v| v.parse().unwrap());
    let start = std::env::var("START").unwrap_or_else(|_| "rollout".into());
    let window: usize = std::env::var("WINDOW").map_or(1, |v| v.parse().unwrap());
    let dir = if file.contains("hangzhou") {
        "hangzhou_4x4"
    } else {
        "jinan_3x4"
    };
    let roadnet = if dir == "hangzhou_4x4" {
        "roadnet_4_4.json"
    } else {
        "roadnet_3_4.json"
    };
    let full = common::load(data, dir, roadnet, file);
    let keep: Vec<&str> = keep.split(',').collect();
    let sc: Arc<Scenario> = Arc::new(full.without_signals_except(&keep));
    let p = protocol.protocol();

    let mut rec = Recorder {
        inner: controller_by_name(&start, protocol).unwrap(),
        seq: Vec::new(),
    };
    let r = evaluate(sc.clone(), &mut rec, protocol, |_| {});
    let mut seq = rec.seq;
    // `SEQ=1113...`: start from a sequence an earlier search printed instead.
    if let Ok(given) = std::env::var("SEQ") {
        let given: Vec<u32> = given.bytes().map(|b| u32::from(b - b'0')).collect();
        assert_eq!(given.len(), seq.len(), "SEQ has one digit per decision");
        seq = given;
    }
    println!(
        "{file} keep {keep:?}: {start} ATT {:.2} ({} decisions)",
        r.average_travel_time,
        seq.len()
    );

    let mut sim = Simulation::new(sc);
    let list = controlled_intersections(&sim, &p.phases);
    assert_eq!(list.len(), 1, "one kept intersection");
    let c = list.into_iter().next().unwrap();
    let _ = sim.set_phase(c.intersection, p.initial_phase);
    let setup = Setup {
        c,
        timing: p.timing,
        interval: p.decision_interval,
        steps: p.steps,
        max_red,
    };
    let first = Run {
        sim,
        since: vec![None; setup.c.phases.len()],
        worst: 0.0,
    };
    let mut at_first = first.clone();
    setup
        .advance_to(&mut at_first, p.decision_interval)
        .unwrap();
    let mut best = setup.finish(at_first.clone(), &seq, 0);
    println!("replayed: {best:?} (max red {max_red} s)");
    let Some(mut best_att) = best.take() else {
        println!("the start breaks the maximum red");
        return;
    };
    for pass in 0..passes {
        let t = std::time::Instant::now();
        let mut run = at_first.clone();
        let mut changed = 0;
        for k in 0..seq.len() {
            // Every other assignment of phases to decisions k..k+window.
            let w = window.min(seq.len() - k);
            let mut alternatives: Vec<Vec<u32>> = vec![Vec::new()];
            for _ in 0..w {
                alternatives = alternatives
                    .into_iter()
                    .flat_map(|a| {
                        p.phases.iter().map(move |&q| {
                            let mut a = a.clone();
                            a.push(q);
                            a
                        })
                    })
                    .collect();
            }
            alternatives.retain(|a| a[..] != seq[k..k + w]);
            let tried: Vec<(Vec<u32>, Option<f64>)> = std::thread::scope(|s| {
                let handles: Vec<_> = alternatives
                    .chunks(alternatives.len().div_ceil(2))
                    .map(|chunk| {
                        let (seq, run, setup) = (&seq, &run, &setup);
                        s.spawn(move || {
                            chunk
                                .iter()
                                .map(|a| {
                                    let mut cand = seq.clone();
                                    cand[k..k + a.len()].copy_from_slice(a);
                                    (a.clone(), setup.finish(run.clone(), &cand, k))
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
            for (a, att) in tried {
                if let Some(att) = att
                    && att < best_att - 1e-9
                {
                    best_att = att;
                    seq[k..k + a.len()].copy_from_slice(&a);
                    changed += 1;
                }
            }
            let until = ((k as u64) + 2) * p.decision_interval;
            setup
                .advance(&mut run, seq[k], until.min(p.steps))
                .expect("the kept sequence keeps the maximum red");
        }
        println!(
            "pass {}: ATT {best_att:.2}, {changed} changes kept, {:.0} s",
            pass + 1,
            t.elapsed().as_secs_f64()
        );
        if changed == 0 {
            break;
        }
    }
    let check = setup.finish(at_first, &seq, 0);
    println!("final sequence replayed: {check:?}");
    println!(
        "sequence: {}",
        seq.iter().map(u32::to_string).collect::<Vec<_>>().join("")
    );
}
