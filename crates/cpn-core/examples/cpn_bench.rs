//! Runs the cpn benchmarks and prints their reports.
//!
//! ```text
//! cargo run --release -p cpn-core --example cpn_bench -- [--trace PATH] [--jobs N] [--sites N]
//!                                                        [--svg OUT.svg] [--json OUT.json] [--skip-throughput]
//! ```
//! The trace defaults to `../shared/data/cluster-traces/alibaba-gpu-v2023/openb_pod_list_default.csv`
//! relative to the workspace root (or `CPN_TRACE`).

use std::time::Instant;

use cpn_core::bench::{TraceBenchOptions, placement_throughput, trace_benchmark};
use cpn_core::chart::comparison_svg;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut trace = std::env::var("CPN_TRACE").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/data/cluster-traces/alibaba-gpu-v2023/openb_pod_list_default.csv"
        )
        .to_owned()
    });
    let (mut jobs, mut sites) = (100_000usize, 100usize);
    let (mut svg, mut json, mut throughput) = (None, None, true);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--trace" => trace = args.next().ok_or("--trace needs a path")?,
            "--jobs" => jobs = args.next().ok_or("--jobs needs N")?.parse()?,
            "--sites" => sites = args.next().ok_or("--sites needs N")?.parse()?,
            "--svg" => svg = Some(args.next().ok_or("--svg needs a path")?),
            "--json" => json = Some(args.next().ok_or("--json needs a path")?),
            "--skip-throughput" => throughput = false,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if throughput {
        let origin = Instant::now();
        let mut clock = || origin.elapsed().as_nanos() as u64;
        let r = placement_throughput(jobs, sites, 7, &mut clock);
        println!(
            "placement throughput: {}",
            serde_json::to_string_pretty(&r)?
        );
    }
    let text = std::fs::read_to_string(&trace).map_err(|e| format!("{trace}: {e}"))?;
    let started = Instant::now();
    let report = trace_benchmark(&text, &TraceBenchOptions::default())?;
    println!(
        "trace benchmark ({:.1} s wall)",
        started.elapsed().as_secs_f64()
    );
    println!(
        "mapping: {:?}, rejected at validation: {}, capacity (GPUs, cores, GiB): {:?}",
        report.mapping, report.rejected, report.capacity
    );
    println!("{}", report.comparison.table());
    println!(
        "LP: solver {:?}, (columns, rows) {:?}, capacity-free bound {:?}",
        report.comparison.lp_solver,
        report.comparison.lp_size,
        report.comparison.capacity_free_bound
    );
    println!("goals: {}", serde_json::to_string_pretty(&report.goals)?);
    if let Some(path) = svg {
        std::fs::write(
            &path,
            comparison_svg(
                &report.comparison,
                "Alibaba openb trace over the east/west site set (karmada-greedy = 100 %)",
            ),
        )?;
    }
    if let Some(path) = json {
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}
