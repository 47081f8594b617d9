//! Seeded synthetic workloads shaped like the Alibaba trace.
//!
//! Shape (matching the openb pod list's marginals): 13 % CPU-only pods, 85 % single GPU (a third
//! of them sharing a GPU at 0.25–0.9), 2 % multi-GPU (2, 4 or 8); durations log-normal with median
//! 10 minutes and σ = 1.8, capped at 7 days; cores 2–16, 4 GiB per core. Arrivals are Poisson,
//! with the rate chosen so the offered GPU load (GPU-seconds demanded over GPU-seconds offered
//! during the arrival window) equals `load`. Origin, input size, deadline and sovereignty come from
//! the same [`Augment`] as the trace.

use std::collections::BTreeMap;

use crate::job::{DataRef, JobSpec};
use crate::rng::SplitMix64;
use crate::trace::Augment;

/// Parameters of a synthetic workload.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthOptions {
    /// Number of jobs.
    pub jobs: usize,
    /// Offered GPU load relative to `total_gpus`.
    pub load: f64,
    /// Total GPUs of the world the workload is meant for.
    pub total_gpus: f64,
    /// Seed (also used for the augmentation stream).
    pub seed: u64,
}

/// Generates `opts.jobs` job specs, sorted by arrival.
pub fn synthetic_jobs(opts: &SynthOptions, augment: &Augment) -> Vec<JobSpec> {
    let mut rng = SplitMix64::new(opts.seed);
    struct Shape {
        cores: f64,
        gpus: f64,
        duration: i64,
    }
    let mut shapes = Vec::with_capacity(opts.jobs);
    let mut gpu_seconds = 0.0;
    for _ in 0..opts.jobs {
        let u = rng.next_f64();
        let gpus = if u < 0.13 {
            0.0
        } else if u < 0.98 {
            if rng.next_f64() < 1.0 / 3.0 {
                (rng.uniform(0.25, 0.9) * 100.0).round() / 100.0
            } else {
                1.0
            }
        } else {
            [2.0, 4.0, 8.0][rng.below(3) as usize]
        };
        let cores = (2.0 * (1u64 << rng.below(4)) as f64).min(16.0);
        let duration = rng
            .log_normal(600.0, 1.8)
            .clamp(5.0, 7.0 * 86_400.0)
            .round() as i64;
        gpu_seconds += gpus * duration as f64;
        shapes.push(Shape {
            cores,
            gpus,
            duration,
        });
    }
    let load = opts.load.max(1e-3);
    let window = gpu_seconds / (opts.total_gpus.max(1e-3) * load);
    let mean_gap = window / opts.jobs.max(1) as f64;
    let mut t = 0.0;
    let aug = Augment {
        seed: augment.seed ^ opts.seed,
        ..augment.clone()
    };
    let mut specs = Vec::with_capacity(opts.jobs);
    for (i, shape) in shapes.into_iter().enumerate() {
        t += -mean_gap * (1.0 - rng.next_f64()).ln();
        let arrival = t.round() as i64;
        let extra = aug.draw(i as u64, arrival, shape.duration);
        let mut resources = BTreeMap::new();
        resources.insert("cpu".to_owned(), shape.cores);
        resources.insert("memory_gib".to_owned(), shape.cores * 4.0);
        if shape.gpus > 0.0 {
            resources.insert("gpu".to_owned(), shape.gpus);
        }
        specs.push(JobSpec {
            id: format!("synth-{i}"),
            tenant: format!("tenant-{}", i % 7),
            submit_s: arrival,
            duration_s: shape.duration as f64,
            deadline_s: Some(extra.deadline_s),
            priority: 1 + (i % 4) as u32,
            resources,
            gpu_models: Vec::new(),
            input: Some(DataRef {
                region: extra.region,
                size_gb: extra.size_gb,
            }),
            allowed_zones: extra.zones,
        });
    }
    specs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offered_load_matches_request() {
        let opts = SynthOptions {
            jobs: 5000,
            load: 0.8,
            total_gpus: 100.0,
            seed: 9,
        };
        let specs = synthetic_jobs(&opts, &Augment::default());
        assert_eq!(specs.len(), 5000);
        assert!(specs.windows(2).all(|w| w[0].submit_s <= w[1].submit_s));
        let gpu_s: f64 = specs
            .iter()
            .map(|s| s.resources.get("gpu").copied().unwrap_or(0.0) * s.duration_s)
            .sum();
        let window = (specs[specs.len() - 1].submit_s - specs[0].submit_s) as f64;
        let load = gpu_s / (100.0 * window);
        assert!((load - 0.8).abs() < 0.08, "load {load}");
        assert_eq!(specs, synthetic_jobs(&opts, &Augment::default()));
    }
}
