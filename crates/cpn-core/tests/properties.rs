//! Property tests on random instances: hard constraints hold for every policy, after
//! re-optimisation and after a site goes down; the LP bound never exceeds any plan's cost.

use cpn_core::bench::validate_all;
use cpn_core::engine::{Engine, Policy};
use cpn_core::lp::{LpOptions, lower_bound};
use cpn_core::sim::{SimOptions, engine_config, measure, overcommitted_slots, simulate};
use cpn_core::sites::{EastWestOptions, synthetic_world};
use cpn_core::synth::{SynthOptions, synthetic_jobs};
use cpn_core::trace::Augment;
use proptest::prelude::*;

fn instance(
    sites: usize,
    jobs: usize,
    load: f64,
    sovereign: f64,
    seed: u64,
) -> (cpn_core::world::World, Vec<cpn_core::job::Job>) {
    let opts = EastWestOptions {
        gpus: 12.0 * sites as f64,
        cpu_cores: 200.0 * sites as f64,
        memory_gib: 1600.0 * sites as f64,
        ..EastWestOptions::default()
    };
    let world = synthetic_world(sites, &opts, seed);
    let total_gpus: f64 = world
        .sites
        .iter()
        .flat_map(|s| s.gpus.iter().map(|g| g.1 as f64 / 1000.0))
        .sum();
    let augment = Augment {
        seed,
        sovereign_share: sovereign,
        ..Augment::default()
    };
    let specs = synthetic_jobs(
        &SynthOptions {
            jobs,
            load,
            total_gpus,
            seed,
        },
        &augment,
    );
    let (valid, _) = validate_all(&world, &specs);
    (world, valid)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn no_policy_violates_sovereignty_or_overcommits(
        sites in 2usize..20, jobs in 20usize..300, load in 0.3f64..3.0, sovereign in 0.0f64..0.6, seed in any::<u64>()
    ) {
        let (world, jobs) = instance(sites, jobs, load, sovereign, seed);
        let opts = SimOptions { reopt_interval_s: Some(1800), ..SimOptions::default() };
        for policy in Policy::ALL {
            let (report, placements) = simulate(&world, &jobs, policy, &opts);
            prop_assert_eq!(report.sovereignty_violations, 0, "{:?}", policy);
            prop_assert_eq!(report.overcommitted_slots, Some(0), "{:?}", policy);
            for (job, p) in jobs.iter().zip(&placements) {
                let Some(p) = p else { continue };
                let site = &world.sites[p.site];
                prop_assert!(job.allows_zone(site.zone));
                prop_assert!(p.start_s >= job.arrival_s);
                prop_assert!(p.start_s >= p.ready_s);
                prop_assert_eq!(p.end_s, p.start_s + job.duration_s);
                if job.demand.gpu_milli > 0 {
                    let model = p.gpu_model.expect("gpu job has a model");
                    prop_assert!(job.demand.accepts_model(model));
                    prop_assert!(site.gpu_capacity(model) >= job.demand.gpu_milli);
                }
            }
        }
    }

    #[test]
    fn lp_bound_is_below_every_plan(
        sites in 2usize..10, jobs in 10usize..150, load in 0.3f64..2.5, seed in any::<u64>()
    ) {
        let (world, jobs) = instance(sites, jobs, load, 0.2, seed);
        let opts = SimOptions::default();
        let bound = lower_bound(&world, &jobs, &LpOptions { weights: opts.weights, ..LpOptions::default() });
        prop_assert!(bound.value >= bound.capacity_free - 1e-6);
        for policy in Policy::ALL {
            let (report, _) = simulate(&world, &jobs, policy, &opts);
            if report.unplaced == 0 {
                prop_assert!(bound.value <= report.total_cost * (1.0 + 1e-6) + 1e-6,
                    "{:?}: bound {} > plan {}", policy, bound.value, report.total_cost);
            }
        }
    }

    #[test]
    fn site_failure_keeps_constraints_and_moves_every_affected_job(
        sites in 3usize..12, jobs in 20usize..200, seed in any::<u64>(), down in 0usize..12
    ) {
        let (world, jobs) = instance(sites, jobs, 0.8, 0.1, seed);
        let opts = SimOptions::default();
        let cfg = engine_config(&jobs, Policy::CostAware, &opts);
        let mut engine = Engine::new(&world, cfg);
        for j in &jobs {
            let _ = engine.place(j.clone(), j.arrival_s);
        }
        let down = down % world.sites.len();
        let now = jobs.iter().map(|j| j.arrival_s).max().unwrap_or(0) / 2;
        let unplaced_before: Vec<usize> =
            engine.placements().iter().enumerate().filter(|(_, p)| p.is_none()).map(|(h, _)| h).collect();
        let lost = engine.site_down(down, now);
        let placements: Vec<_> = engine.placements().to_vec();
        for (h, p) in placements.iter().enumerate() {
            if let Some(p) = p {
                prop_assert!(!(p.site == down && p.end_s > now), "job {} still on the failed site", h);
            } else {
                prop_assert!(lost.contains(&h) || unplaced_before.contains(&h), "job {} vanished", h);
            }
        }
        prop_assert_eq!(overcommitted_slots(&world, engine.jobs(), &placements, &cfg), 0);
        let report = measure(&world, engine.jobs(), &placements, Policy::CostAware, None);
        prop_assert_eq!(report.sovereignty_violations, 0);
    }
}

#[test]
fn same_seed_gives_identical_reports() {
    let (world, jobs) = instance(8, 200, 1.0, 0.15, 42);
    let a = simulate(&world, &jobs, Policy::CostAware, &SimOptions::default()).0;
    let b = simulate(&world, &jobs, Policy::CostAware, &SimOptions::default()).0;
    assert_eq!(a, b);
}
