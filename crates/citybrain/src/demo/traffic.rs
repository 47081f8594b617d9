//! Demo component: the demo city (Jinan, JN1) live in the simulator, under our adaptive signal
//! controller and under FixedTime side by side (protocol P15, one simulated hour each, on
//! blocking threads; both together take well under a second in a release build, i.e. thousands
//! of times faster than real time).

use std::time::Instant;

use traffic_signals::protocol::{EpisodeResult, ProtocolKind, controller_by_name, evaluate};

use super::{DemoContext, DemoPart};

/// Starts this component; returns its part of the banner, if any.
pub(crate) async fn start(_context: &DemoContext<'_>) -> anyhow::Result<Option<DemoPart>> {
    let data = match crate::cmd::signal_data_dir() {
        Ok(d) => d,
        Err(e) => {
            return Ok(Some(DemoPart {
                title: "traffic",
                lines: vec![format!("demo city not loaded: {e}")],
            }));
        }
    };
    let scenario = crate::cmd::signal_load_jn1(&data)?;
    let started = Instant::now();
    let run = |name: &'static str| {
        let scenario = scenario.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<EpisodeResult> {
            let mut ctrl = controller_by_name(name, ProtocolKind::P15)?;
            Ok(evaluate(scenario, ctrl.as_mut(), ProtocolKind::P15, |_| {}))
        })
    };
    let (ours, fixed) = tokio::join!(run("adaptive"), run("fixed-time"));
    let (ours, fixed) = (ours??, fixed??);
    let wall = started.elapsed().as_secs_f64();
    let change = |a: f64, b: f64| format!("{:+.1}%", (a / b - 1.0) * 100.0);
    Ok(Some(DemoPart {
        title: "traffic (Jinan 3x4, 12 signals, 6,295 vehicles, 1 simulated hour, protocol P15)",
        lines: vec![
            format!(
                "simulated 2 x 3600 s in {wall:.2} s wall ({:.0}x real time)",
                7200.0 / wall.max(1e-9)
            ),
            format!(
                "{:<28}{:>14}{:>14}{:>10}",
                "KPI", "adaptive", "fixed-time", "change"
            ),
            format!(
                "{:<28}{:>14.1}{:>14.1}{:>10}",
                "average travel time (s)",
                ours.average_travel_time,
                fixed.average_travel_time,
                change(ours.average_travel_time, fixed.average_travel_time)
            ),
            format!(
                "{:<28}{:>14}{:>14}{:>10}",
                "trips finished",
                ours.trips_finished,
                fixed.trips_finished,
                change(ours.trips_finished as f64, fixed.trips_finished as f64)
            ),
            format!(
                "{:<28}{:>14}{:>14}",
                "still running / to enter",
                format!("{} / {}", ours.running, ours.waiting_to_enter),
                format!("{} / {}", fixed.running, fixed.waiting_to_enter)
            ),
            format!(
                "{:<28}{:>14.2}{:>14.2}{:>10}",
                "stops per vehicle",
                ours.average_stops,
                fixed.average_stops,
                change(ours.average_stops, fixed.average_stops)
            ),
            "compare all controllers: citybrain signal eval".to_owned(),
        ],
    }))
}
