//! Benchmark harness: timed episodes and parallel episodes, returning report structs.
//!
//! The crate reads no clock, so the caller passes one in (`cpu_clock` returns the calling
//! thread's CPU seconds, `wall_clock` wall seconds, both from any fixed origin). The `bench_sim`
//! example and `citybrain bench sim` supply them and add the CityFlow side.

use std::sync::Arc;

use crate::control::{FixedTime, MaxPressure, Protocol, run_episode};
use crate::{MetricsReport, Scenario, Simulation};

/// How signals are run in a benchmark episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// P15 with phases 1, 2, 3, 4 in turn.
    FixedTime,
    /// P15 with MaxPressure.
    MaxPressure,
    /// The roadnet's own plan (needs a scenario with `rl_traffic_light: false`).
    RoadnetPlan,
}

impl Control {
    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Control::FixedTime => "fixed-time",
            Control::MaxPressure => "max-pressure",
            Control::RoadnetPlan => "roadnet-plan",
        }
    }
}

/// One timed episode.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeRun {
    /// Control used.
    pub control: Control,
    /// Steps simulated.
    pub steps: u64,
    /// CPU seconds spent in the episode (controller included; it is negligible here).
    pub cpu_seconds: f64,
    /// Vehicle updates (vehicle-steps) per CPU second.
    pub vehicle_updates_per_cpu_second: f64,
    /// Hash of the final state (equal hashes: bit-identical runs).
    pub fingerprint: u64,
    /// Final metrics.
    pub metrics: MetricsReport,
}

/// Runs one episode of `protocol.steps` steps and times it with `cpu_clock`.
pub fn run_timed(
    scenario: Arc<Scenario>,
    control: Control,
    protocol: &Protocol,
    cpu_clock: &dyn Fn() -> f64,
) -> EpisodeRun {
    let mut sim = Simulation::new(scenario);
    let start = cpu_clock();
    let metrics = match control {
        Control::FixedTime => run_episode(
            &mut sim,
            Some(&mut FixedTime::new(protocol.phases.clone())),
            protocol,
        ),
        Control::MaxPressure => run_episode(&mut sim, Some(&mut MaxPressure), protocol),
        Control::RoadnetPlan => run_episode(&mut sim, None, protocol),
    };
    let cpu_seconds = cpu_clock() - start;
    EpisodeRun {
        control,
        steps: protocol.steps,
        cpu_seconds,
        vehicle_updates_per_cpu_second: if cpu_seconds > 0.0 {
            metrics.vehicle_steps as f64 / cpu_seconds
        } else {
            0.0
        },
        fingerprint: sim.fingerprint(),
        metrics,
    }
}

/// Several identical episodes spread over threads.
#[derive(Debug, Clone, PartialEq)]
pub struct ParallelRun {
    /// Threads used.
    pub threads: usize,
    /// Episodes run.
    pub episodes: usize,
    /// Wall seconds for all of them.
    pub wall_seconds: f64,
    /// Fingerprint of each episode.
    pub fingerprints: Vec<u64>,
    /// All episodes ended in the same state.
    pub all_identical: bool,
}

/// Runs `episodes` copies of one episode on `threads` OS threads (one episode at a time per
/// thread, no shared mutable state) and times the whole with `wall_clock`.
pub fn run_parallel(
    scenario: Arc<Scenario>,
    control: Control,
    protocol: &Protocol,
    episodes: usize,
    threads: usize,
    wall_clock: &(dyn Fn() -> f64 + Sync),
) -> ParallelRun {
    let threads = threads.max(1);
    let start = wall_clock();
    let mut fingerprints = vec![0u64; episodes];
    std::thread::scope(|scope| {
        let chunks: Vec<&mut [u64]> = {
            let per = episodes.div_ceil(threads).max(1);
            fingerprints.chunks_mut(per).collect()
        };
        for chunk in chunks {
            let scenario = Arc::clone(&scenario);
            scope.spawn(move || {
                for slot in chunk.iter_mut() {
                    let run = run_timed(Arc::clone(&scenario), control, protocol, &|| 0.0);
                    *slot = run.fingerprint;
                }
            });
        }
    });
    let wall_seconds = wall_clock() - start;
    let all_identical = fingerprints.windows(2).all(|w| w[0] == w[1]);
    ParallelRun {
        threads,
        episodes,
        wall_seconds,
        fingerprints,
        all_identical,
    }
}

/// [`ParallelRun`] plus the CPU time each thread spent.
#[derive(Debug, Clone, PartialEq)]
pub struct ParallelCpuRun {
    /// Wall time, fingerprints.
    pub run: ParallelRun,
    /// CPU seconds of each worker thread (from `cpu_clock`, read on that thread).
    pub thread_cpu_seconds: Vec<f64>,
}

/// [`run_parallel`], also timing each worker thread with `cpu_clock` (which must read the
/// calling thread's CPU time). Equal per-episode CPU time on 1 and on N threads means the
/// episodes do not slow each other down (no shared mutable state, false sharing or allocator
/// contention); the wall-time speed-up then only depends on the cores being free.
pub fn run_parallel_cpu(
    scenario: Arc<Scenario>,
    control: Control,
    protocol: &Protocol,
    episodes: usize,
    threads: usize,
    wall_clock: &(dyn Fn() -> f64 + Sync),
    cpu_clock: &(dyn Fn() -> f64 + Sync),
) -> ParallelCpuRun {
    let threads = threads.max(1);
    let start = wall_clock();
    let mut fingerprints = vec![0u64; episodes];
    let per = episodes.div_ceil(threads).max(1);
    let mut thread_cpu_seconds = vec![0.0; episodes.div_ceil(per)];
    std::thread::scope(|scope| {
        for (chunk, cpu) in fingerprints
            .chunks_mut(per)
            .zip(thread_cpu_seconds.iter_mut())
        {
            let scenario = Arc::clone(&scenario);
            scope.spawn(move || {
                let c0 = cpu_clock();
                for slot in chunk.iter_mut() {
                    let run = run_timed(Arc::clone(&scenario), control, protocol, &|| 0.0);
                    *slot = run.fingerprint;
                }
                *cpu = cpu_clock() - c0;
            });
        }
    });
    let wall_seconds = wall_clock() - start;
    let all_identical = fingerprints.windows(2).all(|w| w[0] == w[1]);
    ParallelCpuRun {
        run: ParallelRun {
            threads,
            episodes,
            wall_seconds,
            fingerprints,
            all_identical,
        },
        thread_cpu_seconds,
    }
}

impl Simulation {
    /// FNV-1a hash of the dynamic state that matters (time, every live vehicle's slot, drivable,
    /// position and speed bits, signal displays, counters). Equal fingerprints after equal steps
    /// mean bit-identical runs.
    pub fn fingerprint(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |x: u64| {
            for b in x.to_le_bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        };
        let st = &self.state;
        eat(st.step);
        eat(st.active);
        eat(st.finished_count);
        eat(st.cumulative_travel_time.to_bits());
        for (slot, v) in st.vehicles.iter().enumerate() {
            if !v.live {
                continue;
            }
            eat(slot as u64);
            eat(u64::from(v.drivable));
            eat(v.dis.to_bits());
            eat(v.speed.to_bits());
            eat(v.priority as u32 as u64);
        }
        for i in 0..self.scenario.network.intersections.len() as u32 {
            eat(match self.display(i) {
                crate::Display::Phase(p) => u64::from(p),
                crate::Display::AllRed => u64::MAX,
            });
        }
        h
    }
}
