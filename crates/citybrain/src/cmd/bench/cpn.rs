//! `bench cpn`: placement throughput (10^5 jobs × 10^2 sites, one core) and the Alibaba trace
//! replayed over the east/west site set against the LP bound and the baselines (issue 7).

use std::time::Instant;

use cpn_core::bench::{TraceBenchOptions, placement_throughput, trace_benchmark};

use super::{Figure, Report};

/// Where the trace is read from: `CPN_TRACE`, else `shared/` beside the repository (run from its root).
const DEFAULT_TRACE: &str =
    "../shared/data/cluster-traces/alibaba-gpu-v2023/openb_pod_list_default.csv";

fn figure(name: &str, value: f64, unit: &'static str, target: Option<(&str, bool)>) -> Figure {
    Figure {
        name: name.to_owned(),
        value,
        unit,
        target: target.map(|(t, _)| t.to_owned()),
        met: target.map(|(_, m)| m),
    }
}

pub(crate) fn run() -> anyhow::Result<Report> {
    let origin = Instant::now();
    let mut clock = || origin.elapsed().as_nanos() as u64;
    let t = placement_throughput(100_000, 100, 7, &mut clock);
    let mut figures = vec![
        figure(
            "placement decisions/s (100k jobs, 100 sites, 1 core)",
            t.decisions_per_s,
            "1/s",
            Some((">= 50000", t.decisions_per_s >= 50_000.0)),
        ),
        figure("decision latency p50", t.p50_us, "us", None),
        figure(
            "decision latency p99",
            t.p99_us,
            "us",
            Some(("<= 1000", t.p99_us <= 1000.0)),
        ),
    ];
    let path = std::env::var("CPN_TRACE").unwrap_or_else(|_| DEFAULT_TRACE.to_owned());
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let r = trace_benchmark(&text, &TraceBenchOptions::default())?;
            if let Some(g) = r.goals {
                if let Some(gap) = g.cost_gap_vs_lp {
                    figures.push(figure(
                        "trace: total cost above LP lower bound",
                        100.0 * gap,
                        "%",
                        Some(("<= 5", gap <= 0.05)),
                    ));
                }
                if let Some(gap) = g.greedy_cost_gap_vs_lp {
                    figures.push(figure(
                        "trace: karmada-greedy cost above LP lower bound (anchor)",
                        100.0 * gap,
                        "%",
                        None,
                    ));
                }
                figures.push(figure(
                    "trace: deadline misses / karmada-greedy's",
                    g.miss_ratio_vs_greedy,
                    "ratio",
                    Some(("<= 0.5", g.miss_ratio_vs_greedy <= 0.5)),
                ));
                figures.push(figure(
                    "trace: CO2 below carbon-agnostic greedy",
                    100.0 * g.co2_reduction_vs_greedy,
                    "%",
                    Some((">= 25", g.co2_reduction_vs_greedy >= 0.25)),
                ));
                figures.push(figure(
                    "trace: cross-region bytes below greedy",
                    100.0 * g.bytes_reduction_vs_greedy,
                    "%",
                    Some((">= 50", g.bytes_reduction_vs_greedy >= 0.5)),
                ));
                figures.push(figure(
                    "trace: sovereignty violations (all policies)",
                    g.sovereignty_violations as f64,
                    "count",
                    Some(("0", g.sovereignty_violations == 0)),
                ));
                figures.push(figure(
                    "trace: over-committed site-slots (all policies)",
                    g.overcommitted_slots as f64,
                    "count",
                    Some(("0", g.overcommitted_slots == 0)),
                ));
            }
        }
        Err(e) => {
            eprintln!("bench cpn: trace part skipped, cannot read {path}: {e} (set CPN_TRACE)")
        }
    }
    Ok(Report {
        benchmark: "cpn",
        description: "computing-power network: placement throughput and the Alibaba trace vs LP bound and baselines",
        figures,
    })
}
