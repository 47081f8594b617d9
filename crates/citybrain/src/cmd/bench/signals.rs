//! `bench signals`: decision time of the adaptive signal controller on the generated
//! 240-intersection city (issue 5: decisions for 240 intersections under 1 ms per step on one
//! core).
//!
//! One P15 episode and one P5 episode of `GridSpec::city_240` (about 30,000 vehicles in the
//! hour) on the calling thread. A decision step is timed from reading the lane figures
//! (`LaneStats::refresh`, the controller's observation) to the last phase request, i.e. what a
//! real controller would do each step; the simulator's own steps are not counted. Reported: mean,
//! p99 and max per decision step, and the number of steps.

use std::sync::Arc;
use std::time::Instant;

use traffic_signals::protocol::{ProtocolKind, controller_by_name};
use traffic_sim::Simulation;
use traffic_sim::control::{LaneStats, SignalView, controlled_intersections};

use super::{Figure, Report};

fn figure(name: String, value: f64, unit: &'static str, target: Option<(&str, bool)>) -> Figure {
    Figure {
        name,
        value,
        unit,
        target: target.map(|(t, _)| t.to_owned()),
        met: target.map(|(_, m)| m),
    }
}

/// Per-decision-step times (seconds) of `controller` over one episode of `scenario`.
fn decision_times(
    scenario: Arc<traffic_sim::Scenario>,
    controller: &str,
    protocol: ProtocolKind,
) -> anyhow::Result<(Vec<f64>, usize)> {
    let p = protocol.protocol();
    let mut ctrl = controller_by_name(controller, protocol)?;
    let mut sim = Simulation::new(scenario);
    let list = controlled_intersections(&sim, &p.phases);
    for c in &list {
        let _ = sim.set_phase(c.intersection, p.initial_phase);
    }
    let mut stats = LaneStats::default();
    let mut decisions = vec![None; list.len()];
    let mut times = Vec::new();
    while sim.steps() < p.steps {
        let t = sim.steps();
        if t > 0 && t.is_multiple_of(p.decision_interval) {
            let start = Instant::now();
            stats.refresh(&sim);
            decisions.iter_mut().for_each(|d| *d = None);
            let view = SignalView {
                sim: &sim,
                lanes: &stats,
                intersections: &list,
            };
            ctrl.decide(&view, &mut decisions);
            for (c, d) in list.iter().zip(&decisions) {
                if let Some(ph) = *d {
                    let _ = sim.request_phase(c.intersection, ph, &p.timing);
                }
            }
            times.push(start.elapsed().as_secs_f64());
        }
        sim.step();
    }
    Ok((times, list.len()))
}

pub(crate) fn run() -> anyhow::Result<Report> {
    let scenario = crate::cmd::signal_city240()?;
    let mut figures = Vec::new();
    for protocol in [ProtocolKind::P15, ProtocolKind::P5] {
        let (mut times, n) = decision_times(scenario.clone(), "adaptive", protocol)?;
        times.sort_by(f64::total_cmp);
        let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
        let p99 = times
            .get(((times.len() as f64 * 0.99).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(0.0);
        let max = times.last().copied().unwrap_or(0.0);
        let tag = protocol.name().to_uppercase();
        figures.push(figure(
            format!("adaptive, {n} intersections, {tag}: mean per decision step"),
            mean * 1e3,
            "ms",
            Some(("< 1 ms", mean < 1e-3)),
        ));
        figures.push(figure(
            format!("adaptive, {n} intersections, {tag}: p99 per decision step"),
            p99 * 1e3,
            "ms",
            Some(("< 1 ms", p99 < 1e-3)),
        ));
        figures.push(figure(
            format!("adaptive, {n} intersections, {tag}: max per decision step"),
            max * 1e3,
            "ms",
            None,
        ));
        figures.push(figure(
            format!("{tag} decision steps timed"),
            times.len() as f64,
            "steps",
            None,
        ));
    }
    Ok(Report {
        benchmark: "signals",
        description: "adaptive signal control: decision time per step (lane figures + decide + requests) on the 240-intersection city, one thread",
        figures,
    })
}
