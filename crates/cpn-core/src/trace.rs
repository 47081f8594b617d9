//! The Alibaba GPU cluster trace v2023 ("openb") and how its pods become jobs.
//!
//! The parser reads the CSV from a string (`name, cpu_milli, memory_mib, num_gpu, gpu_milli,
//! gpu_spec, qos, pod_phase, creation_time, deletion_time, scheduled_time`; times in seconds;
//! empty fields allowed for `gpu_spec` and `scheduled_time`; no quoting, since the trace has none).
//!
//! The trace has no notion of where data lives, how big it is, when a job is due, or where it may
//! run, so [`Augment`] adds those per pod, seeded, following compute.md §4.1:
//! - **arrival** = `creation_time`; **duration** = `deletion_time − scheduled_time` (≥ 1 s). Pods
//!   never scheduled (phase `Pending`, no `scheduled_time`) have no runtime and are dropped;
//!   the count is reported.
//! - **resources**: cores = `cpu_milli/1000`, GiB = `memory_mib/1024`, GPUs = `gpu_milli/1000`
//!   for a single (possibly shared) GPU, else `num_gpu`; `gpu_spec` (`A|B`) becomes the job's
//!   acceptable GPU models.
//! - **origin region**: drawn over the eastern hubs with weights 0.40 / 0.35 / 0.25
//!   (Beijing-Tianjin-Hebei, Yangtze River Delta, Greater Bay Area).
//! - **input size**: log-normal, median 50 GB, σ = 1.5 (in log space).
//! - **deadline**: arrival + duration + max(slack, 30 min + 1 s per GB of input) with slack =
//!   0.5 × duration (30 %), 2 × duration (40 %) or 24 h (30 %), i.e. k = 1.5, 3 or +24 h. The floor
//!   keeps seconds-long pods from having deadlines no staging of their input could meet.
//! - **sovereignty**: 15 % of jobs must stay in their origin province (the city's zone).
//! - **priority** from QoS: LS and Guaranteed 4, Burstable 2, BE 1. **Tenant**: `openb-<qos>`.

use crate::error::TraceError;
use crate::job::{DataRef, JobSpec};
use crate::rng::SplitMix64;

/// One pod row.
#[derive(Debug, Clone, PartialEq)]
pub struct TracePod {
    /// Pod name.
    pub name: String,
    /// Milli-cores requested.
    pub cpu_milli: u64,
    /// MiB requested.
    pub memory_mib: u64,
    /// Number of GPUs.
    pub num_gpu: u32,
    /// Milli-GPU per GPU (GPU sharing when < 1000).
    pub gpu_milli: u32,
    /// Acceptable GPU models (empty: any).
    pub gpu_spec: Vec<String>,
    /// QoS class.
    pub qos: String,
    /// Phase.
    pub phase: String,
    /// Creation time, s.
    pub creation_s: i64,
    /// Deletion time, s.
    pub deletion_s: Option<i64>,
    /// Scheduled time, s.
    pub scheduled_s: Option<i64>,
}

const COLUMNS: [&str; 11] = [
    "name",
    "cpu_milli",
    "memory_mib",
    "num_gpu",
    "gpu_milli",
    "gpu_spec",
    "qos",
    "pod_phase",
    "creation_time",
    "deletion_time",
    "scheduled_time",
];

fn parse_num<T: std::str::FromStr>(
    raw: &str,
    line: usize,
    column: &'static str,
) -> Result<T, TraceError> {
    raw.trim().parse::<T>().map_err(|_| TraceError::BadField {
        line,
        column,
        value: raw.chars().take(64).collect(),
    })
}

fn parse_opt_time(raw: &str, line: usize, column: &'static str) -> Result<Option<i64>, TraceError> {
    let raw = raw.trim();
    if raw.is_empty() || raw.eq_ignore_ascii_case("nan") {
        return Ok(None);
    }
    let t: i64 = parse_num(raw, line, column)?;
    if t.unsigned_abs() > 1 << 40 {
        return Err(TraceError::BadField {
            line,
            column,
            value: raw.chars().take(64).collect(),
        });
    }
    Ok(Some(t))
}

/// Parses the pod list CSV.
pub fn parse_pods(text: &str) -> Result<Vec<TracePod>, TraceError> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or(TraceError::Empty)?;
    let names: Vec<&str> = header
        .trim()
        .trim_start_matches('\u{feff}')
        .split(',')
        .map(str::trim)
        .collect();
    let mut index = [0usize; 11];
    for (slot, col) in index.iter_mut().zip(COLUMNS) {
        *slot = names
            .iter()
            .position(|n| *n == col)
            .ok_or(TraceError::MissingColumn(col))?;
    }
    let width = names.len();
    let mut pods = Vec::new();
    for (i, raw) in lines {
        let line = i + 1;
        let fields: Vec<&str> = raw.trim_end_matches('\r').split(',').collect();
        if fields.len() < width {
            return Err(TraceError::ShortRow {
                line,
                expected: width,
                found: fields.len(),
            });
        }
        let f = |k: usize| fields.get(index[k]).copied().unwrap_or("");
        let spec = f(5).trim();
        let gpu_spec = if spec.is_empty() || spec.eq_ignore_ascii_case("nan") {
            Vec::new()
        } else {
            let mut models: Vec<String> = spec
                .split('|')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
            models.sort();
            models.dedup();
            models
        };
        let creation =
            parse_opt_time(f(8), line, "creation_time")?.ok_or(TraceError::BadField {
                line,
                column: "creation_time",
                value: String::new(),
            })?;
        pods.push(TracePod {
            name: f(0).trim().to_owned(),
            cpu_milli: parse_num(f(1), line, "cpu_milli")?,
            memory_mib: parse_num(f(2), line, "memory_mib")?,
            num_gpu: parse_num(f(3), line, "num_gpu")?,
            gpu_milli: parse_num(f(4), line, "gpu_milli")?,
            gpu_spec,
            qos: f(6).trim().to_owned(),
            phase: f(7).trim().to_owned(),
            creation_s: creation,
            deletion_s: parse_opt_time(f(9), line, "deletion_time")?,
            scheduled_s: parse_opt_time(f(10), line, "scheduled_time")?,
        });
    }
    Ok(pods)
}

/// Seeded attributes added to every job (origin, input size, deadline, sovereignty).
#[derive(Debug, Clone, PartialEq)]
pub struct Augment {
    /// Seed.
    pub seed: u64,
    /// Origin regions and weights.
    pub origins: Vec<(String, f64)>,
    /// Zone a sovereignty-restricted job from each origin region must stay in.
    pub home_zones: Vec<(String, String)>,
    /// Median input size, GB.
    pub data_median_gb: f64,
    /// Log-space σ of the input size.
    pub data_sigma: f64,
    /// Share of jobs that must stay in their origin zone.
    pub sovereign_share: f64,
    /// Minimum slack between duration and deadline, s.
    pub min_slack_s: i64,
    /// Extra minimum slack per GB of input, s (time to stage the input inside its hub).
    pub slack_per_gb_s: f64,
}

impl Default for Augment {
    fn default() -> Self {
        let origins = crate::sites::EAST_WEST_REGIONS
            .iter()
            .filter(|r| r.3 > 0.0)
            .map(|r| (r.0.to_owned(), r.3))
            .collect();
        let home_zones = ["jingjinji", "yrd", "gba"]
            .iter()
            .filter_map(|r| crate::sites::home_zone(r).map(|z| ((*r).to_owned(), z.to_owned())))
            .collect();
        Self {
            seed: 2023,
            origins,
            home_zones,
            data_median_gb: 50.0,
            data_sigma: 1.5,
            sovereign_share: 0.15,
            min_slack_s: 1800,
            slack_per_gb_s: 1.0,
        }
    }
}

/// Per-job augmentation draws.
#[derive(Debug, Clone, PartialEq)]
pub struct Augmented {
    /// Origin region.
    pub region: String,
    /// Input size, GB.
    pub size_gb: f64,
    /// Absolute deadline.
    pub deadline_s: i64,
    /// Allowed zones (empty: any).
    pub zones: Vec<String>,
}

impl Augment {
    /// Draws the attributes of job number `index` (independent stream per job).
    pub fn draw(&self, index: u64, arrival_s: i64, duration_s: i64) -> Augmented {
        let mut rng = SplitMix64::for_item(self.seed, index);
        let weights: Vec<f64> = self.origins.iter().map(|o| o.1).collect();
        let region = self
            .origins
            .get(rng.weighted_index(&weights))
            .map(|o| o.0.clone())
            .unwrap_or_default();
        let size_gb = rng
            .log_normal(self.data_median_gb, self.data_sigma)
            .min(1e6);
        let u = rng.next_f64();
        let slack = if u < 0.3 {
            duration_s / 2
        } else if u < 0.7 {
            2 * duration_s
        } else {
            86_400
        };
        let floor = self.min_slack_s + (size_gb * self.slack_per_gb_s).ceil() as i64;
        let deadline_s = arrival_s + duration_s + slack.max(floor);
        let zones = if rng.next_f64() < self.sovereign_share {
            self.home_zones
                .iter()
                .filter(|(r, _)| *r == region)
                .map(|(_, z)| z.clone())
                .collect()
        } else {
            Vec::new()
        };
        Augmented {
            region,
            size_gb,
            deadline_s,
            zones,
        }
    }
}

/// What the mapping kept and dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MappingStats {
    /// Pods in the trace.
    pub pods: usize,
    /// Jobs produced.
    pub jobs: usize,
    /// Pods dropped because they never ran.
    pub never_scheduled: usize,
}

/// Turns pods into job specs (sorted by arrival, ties by trace order).
pub fn pods_to_specs(pods: &[TracePod], augment: &Augment) -> (Vec<JobSpec>, MappingStats) {
    let mut stats = MappingStats {
        pods: pods.len(),
        ..MappingStats::default()
    };
    let mut specs = Vec::with_capacity(pods.len());
    for (i, pod) in pods.iter().enumerate() {
        let (Some(scheduled), Some(deleted)) = (pod.scheduled_s, pod.deletion_s) else {
            stats.never_scheduled += 1;
            continue;
        };
        let duration = (deleted - scheduled).max(1);
        let extra = augment.draw(i as u64, pod.creation_s, duration);
        let mut resources = std::collections::BTreeMap::new();
        resources.insert("cpu".to_owned(), pod.cpu_milli as f64 / 1000.0);
        resources.insert("memory_gib".to_owned(), pod.memory_mib as f64 / 1024.0);
        let gpus = match pod.num_gpu {
            0 => 0.0,
            1 => f64::from(pod.gpu_milli.min(1000)) / 1000.0,
            n => f64::from(n),
        };
        if gpus > 0.0 {
            resources.insert("gpu".to_owned(), gpus);
        }
        let priority = match pod.qos.as_str() {
            "LS" | "Guaranteed" => 4,
            "Burstable" => 2,
            _ => 1,
        };
        specs.push(JobSpec {
            id: if pod.name.is_empty() {
                format!("pod-{i}")
            } else {
                pod.name.clone()
            },
            tenant: format!("openb-{}", pod.qos.to_ascii_lowercase()),
            submit_s: pod.creation_s,
            duration_s: duration as f64,
            deadline_s: Some(extra.deadline_s),
            priority,
            resources,
            gpu_models: pod.gpu_spec.clone(),
            input: Some(DataRef {
                region: extra.region,
                size_gb: extra.size_gb,
            }),
            allowed_zones: extra.zones,
        });
    }
    specs.sort_by_key(|s| s.submit_s);
    stats.jobs = specs.len();
    (specs, stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time
openb-pod-0000,12000,16384,1,1000,,LS,Running,0,12537496,0
openb-pod-0001,6000,12288,1,460,,BE,Running,427061,12902960,427061
openb-pod-0002,88000,327680,8,1000,V100M16|V100M32,Burstable,Succeeded,500,1500,600
openb-pod-0003,4000,8192,0,0,,BE,Pending,700,900,
";

    #[test]
    fn parses_rows_and_optional_fields() {
        let pods = parse_pods(SAMPLE).unwrap();
        assert_eq!(pods.len(), 4);
        assert_eq!(pods[1].gpu_milli, 460);
        assert_eq!(
            pods[2].gpu_spec,
            vec!["V100M16".to_owned(), "V100M32".to_owned()]
        );
        assert_eq!(pods[3].scheduled_s, None);
        assert_eq!(pods[0].deletion_s, Some(12_537_496));
    }

    #[test]
    fn rejects_bad_input_with_line_and_column() {
        assert_eq!(parse_pods(""), Err(TraceError::Empty));
        assert_eq!(
            parse_pods("name,cpu_milli\n"),
            Err(TraceError::MissingColumn("memory_mib"))
        );
        let bad = SAMPLE.replace("6000,12288", "six,12288");
        assert!(matches!(
            parse_pods(&bad),
            Err(TraceError::BadField {
                line: 3,
                column: "cpu_milli",
                ..
            })
        ));
        let short = format!("{}\nx,1,2\n", SAMPLE.trim_end());
        assert!(matches!(
            parse_pods(&short),
            Err(TraceError::ShortRow { line: 6, .. })
        ));
    }

    #[test]
    fn mapping_follows_documented_rules_and_is_seeded() {
        let pods = parse_pods(SAMPLE).unwrap();
        let aug = Augment::default();
        let (specs, stats) = pods_to_specs(&pods, &aug);
        assert_eq!(
            stats,
            MappingStats {
                pods: 4,
                jobs: 3,
                never_scheduled: 1
            }
        );
        let sharing = specs.iter().find(|s| s.id == "openb-pod-0001").unwrap();
        assert_eq!(sharing.resources["gpu"], 0.46);
        assert_eq!(sharing.priority, 1);
        let multi = specs.iter().find(|s| s.id == "openb-pod-0002").unwrap();
        assert_eq!(multi.resources["gpu"], 8.0);
        assert_eq!(multi.duration_s, 900.0);
        assert!(multi.deadline_s.unwrap() >= 500 + 900 + 1800);
        let (again, _) = pods_to_specs(&pods, &aug);
        assert_eq!(specs, again);
        let (other, _) = pods_to_specs(
            &pods,
            &Augment {
                seed: 1,
                ..Augment::default()
            },
        );
        assert_ne!(specs, other);
    }

    #[test]
    fn augmentation_shares_match_parameters() {
        let aug = Augment::default();
        let n = 20_000;
        let draws: Vec<Augmented> = (0..n).map(|i| aug.draw(i, 0, 1000)).collect();
        let sovereign = draws.iter().filter(|d| !d.zones.is_empty()).count() as f64 / n as f64;
        assert!((sovereign - 0.15).abs() < 0.015, "{sovereign}");
        let jjj = draws.iter().filter(|d| d.region == "jingjinji").count() as f64 / n as f64;
        assert!((jjj - 0.40).abs() < 0.015, "{jjj}");
        let mut sizes: Vec<f64> = draws.iter().map(|d| d.size_gb).collect();
        sizes.sort_by(f64::total_cmp);
        assert!((sizes[sizes.len() / 2] / 50.0 - 1.0).abs() < 0.08);
    }
}
