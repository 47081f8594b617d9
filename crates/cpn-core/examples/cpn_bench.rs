//! Runs the cpn benchmarks and prints their reports.
//!
//! ```text
//! cargo run --release -p cpn-core --example cpn_bench -- [--trace PATH] [--jobs N] [--sites N]
//!                                                        [--svg OUT.svg] [--json OUT.json] [--skip-throughput]
//! ```
//! The trace defaults to `../shared/data/cluster-traces/alibaba-gpu-v2023/openb_pod_list_default.csv`
//! relative to the workspace root (or `CPN_TRACE`).

use std::time::Instant;

use cpn_core::bench::{TraceBenchOptions, placement_throughput, trace_benchmark, validate_all};
use cpn_core::chart::comparison_svg;
use cpn_core::sim::{Comparison, SimOptions};
use cpn_core::sites::{EastWestOptions, east_west};
use cpn_core::synth::{SynthOptions, synthetic_jobs};
use cpn_core::trace::Augment;

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
    let (mut svg, mut json, mut throughput, mut sweep) = (None, None, true, false);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--trace" => trace = args.next().ok_or("--trace needs a path")?,
            "--jobs" => jobs = args.next().ok_or("--jobs needs N")?.parse()?,
            "--sites" => sites = args.next().ok_or("--sites needs N")?.parse()?,
            "--svg" => svg = Some(args.next().ok_or("--svg needs a path")?),
            "--json" => json = Some(args.next().ok_or("--json needs a path")?),
            "--skip-throughput" => throughput = false,
            "--sweep" => sweep = true,
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
    if sweep {
        println!(
            "| capacity factor | seed | GPUs | gap to LP | greedy gap | misses ours/greedy | CO2 cut | bytes cut | ours vs lowest-carbon CO2 | all goals |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        for factor in [1.25, 2.5, 5.0] {
            for seed in [2023u64, 1, 2] {
                let mut opts = TraceBenchOptions {
                    capacity_factor: factor,
                    ..TraceBenchOptions::default()
                };
                opts.augment.seed = seed;
                let r = trace_benchmark(&text, &opts)?;
                let Some(g) = r.goals else { continue };
                let ours = &r.comparison.rows[0];
                let greedy = &r.comparison.rows[1];
                let carbon = &r.comparison.rows[3];
                println!(
                    "| {factor} | {seed} | {:.0} | {:.2} % | {:.1} % | {}/{} | {:.1} % | {:.1} % | {:+.1} % | {} |",
                    r.capacity.0,
                    100.0 * g.cost_gap_vs_lp.unwrap_or(f64::NAN),
                    100.0 * g.greedy_cost_gap_vs_lp.unwrap_or(f64::NAN),
                    ours.deadline_misses,
                    greedy.deadline_misses,
                    100.0 * g.co2_reduction_vs_greedy,
                    100.0 * g.bytes_reduction_vs_greedy,
                    100.0 * (ours.carbon_kg / carbon.carbon_kg - 1.0),
                    g.all_met
                );
            }
        }
        // Contention: synthetic trace-shaped jobs at 80 % offered GPU load on the default set
        // (100 GPUs, 4000 cores), compute.md §6 goal 3.
        println!(
            "\nsynthetic, 80 % offered GPU load, 3000 jobs, default east/west set (100 GPUs):"
        );
        for seed in [1u64, 2, 3] {
            let world = east_west(&EastWestOptions::default());
            let specs = synthetic_jobs(
                &SynthOptions {
                    jobs: 3000,
                    load: 0.8,
                    total_gpus: 100.0,
                    seed,
                },
                &Augment {
                    seed,
                    ..Augment::default()
                },
            );
            let (jobs, rejected) = validate_all(&world, &specs);
            let cmp = Comparison::run(&world, &jobs, &SimOptions::default(), true);
            let g = cmp.goals();
            println!(
                "seed {seed}, rejected {rejected}, goals {}",
                serde_json::to_string(&g)?
            );
            println!("{}", cmp.table());
        }
    }
    Ok(())
}
