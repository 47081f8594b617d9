//! Jobs: the wire form ([`JobSpec`]) and the validated form ([`Job`]).
//!
//! Validation happens once, at submission, against a [`World`]: a job that could never be placed
//! (unknown resource or GPU model, a deadline nobody can meet, zones nobody offers, negative
//! sizes, a request larger than every allowed site) is rejected there with a [`JobError`] naming
//! the job and field, so it is never accepted and then silently lost.
//!
//! Resource names: `cpu` (cores), `memory_gib`, `gpu` (GPUs of any model, or of one of
//! `gpu_models`), and `gpu:<MODEL>` as a shorthand for `gpu` restricted to one model.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::JobError;
use crate::world::{GpuModelIdx, World};

/// Wire form of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Identifier, unique per submitter.
    pub id: String,
    /// Tenant (for quotas and accounting).
    #[serde(default)]
    pub tenant: String,
    /// Submission time on the scheduler's clock, seconds.
    pub submit_s: i64,
    /// Estimated run time in seconds.
    pub duration_s: f64,
    /// Absolute deadline in seconds, if any.
    #[serde(default)]
    pub deadline_s: Option<i64>,
    /// Priority weight (1 = best effort; higher weighs lateness more).
    #[serde(default = "default_priority")]
    pub priority: u32,
    /// Requested resources: `cpu`, `memory_gib`, `gpu`, `gpu:<MODEL>`.
    pub resources: BTreeMap<String, f64>,
    /// GPU models acceptable for `gpu` (empty: any).
    #[serde(default)]
    pub gpu_models: Vec<String>,
    /// Where the input data lives and how big it is.
    #[serde(default)]
    pub input: Option<DataRef>,
    /// Zones the job may run in (empty: anywhere).
    #[serde(default)]
    pub allowed_zones: Vec<String>,
}

fn default_priority() -> u32 {
    1
}

/// Input data location and size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataRef {
    /// Region id where the data is stored.
    pub region: String,
    /// Size in GB (10^9 bytes).
    pub size_gb: f64,
}

/// Bit mask over [`World::zones`].
pub type ZoneMask = u64;
/// Bit mask over [`World::gpu_models`].
pub type ModelMask = u32;

/// A validated resource request in integer units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Demand {
    /// Milli-cores.
    pub cpu_milli: u64,
    /// MiB.
    pub mem_mib: u64,
    /// Milli-GPUs (all of one model).
    pub gpu_milli: u64,
    /// Acceptable GPU models (all bits set: any).
    pub gpu_models: ModelMask,
}

impl Demand {
    /// Whether `model` is acceptable for this demand.
    pub fn accepts_model(&self, model: GpuModelIdx) -> bool {
        self.gpu_models & (1u32 << model) != 0
    }
}

/// A validated job. Times are integer seconds on the scheduler's clock.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Identifier.
    pub id: String,
    /// Tenant.
    pub tenant: String,
    /// Arrival (submission) time.
    pub arrival_s: i64,
    /// Estimated duration (>= 1 s).
    pub duration_s: i64,
    /// Deadline (`i64::MAX` if none).
    pub deadline_s: i64,
    /// Priority weight (>= 1).
    pub priority: u32,
    /// Resources.
    pub demand: Demand,
    /// Region index of the input data.
    pub data_region: usize,
    /// Input size in bytes.
    pub data_bytes: u64,
    /// Allowed zones.
    pub zones: ZoneMask,
}

impl Job {
    /// Whether site `site` is allowed by the job's sovereignty constraint.
    pub fn allows_zone(&self, zone: usize) -> bool {
        zone < 64 && self.zones & (1u64 << zone) != 0
    }

    /// The deadline, if one was given.
    pub fn deadline(&self) -> Option<i64> {
        (self.deadline_s != i64::MAX).then_some(self.deadline_s)
    }
}

/// Highest accepted priority weight.
pub const MAX_PRIORITY: u32 = 1000;
/// Longest accepted duration (10 years), which keeps time arithmetic far from overflow.
pub const MAX_DURATION_S: f64 = 3.2e8;

fn non_negative(job: &str, field: &str, value: f64) -> Result<f64, JobError> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(JobError::NegativeOrNotFinite {
            job: job.to_owned(),
            field: field.to_owned(),
            value,
        })
    }
}

impl JobSpec {
    /// Parses a job from JSON (no validation against a world yet).
    pub fn from_json(text: &str) -> Result<Self, JobError> {
        serde_json::from_str(text).map_err(|e| JobError::Json(e.to_string()))
    }

    /// Serialises as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Validates the job against `world`.
    pub fn validate(&self, world: &World) -> Result<Job, JobError> {
        let id = self.id.as_str();
        if id.is_empty() {
            return Err(JobError::EmptyId);
        }
        let duration = non_negative(id, "duration_s", self.duration_s)?;
        if duration > MAX_DURATION_S {
            return Err(JobError::OutOfRange {
                job: id.to_owned(),
                field: "duration_s",
                value: duration,
                lo: 0.0,
                hi: MAX_DURATION_S,
            });
        }
        let duration_s = duration.ceil() as i64;
        if duration_s == 0 {
            return Err(JobError::ZeroDuration { job: id.to_owned() });
        }
        if self.priority == 0 || self.priority > MAX_PRIORITY {
            return Err(JobError::OutOfRange {
                job: id.to_owned(),
                field: "priority",
                value: f64::from(self.priority),
                lo: 1.0,
                hi: f64::from(MAX_PRIORITY),
            });
        }
        if self.submit_s.unsigned_abs() > 1 << 50 {
            return Err(JobError::OutOfRange {
                job: id.to_owned(),
                field: "submit_s",
                value: self.submit_s as f64,
                lo: -(2f64.powi(50)),
                hi: 2f64.powi(50),
            });
        }

        let all_models: ModelMask = if world.gpu_models.len() >= 32 {
            u32::MAX
        } else {
            (1u32 << world.gpu_models.len()) - 1
        };
        let model_bit = |name: &str| -> Result<ModelMask, JobError> {
            world
                .gpu_model_index(name)
                .map(|m| 1u32 << m)
                .ok_or_else(|| JobError::UnknownResource {
                    job: id.to_owned(),
                    resource: format!("gpu:{name}"),
                })
        };
        let mut demand = Demand {
            gpu_models: all_models,
            ..Demand::default()
        };
        let mut gpus = 0.0;
        let mut pinned: ModelMask = all_models;
        for (name, amount) in &self.resources {
            let amount = non_negative(id, &format!("resources.{name}"), *amount)?;
            if amount > 1e9 {
                return Err(JobError::OutOfRange {
                    job: id.to_owned(),
                    field: "resources",
                    value: amount,
                    lo: 0.0,
                    hi: 1e9,
                });
            }
            match name.as_str() {
                "cpu" => demand.cpu_milli = (amount * 1000.0).ceil() as u64,
                "memory_gib" => demand.mem_mib = (amount * 1024.0).ceil() as u64,
                "gpu" => gpus += amount,
                other => match other.strip_prefix("gpu:") {
                    Some(model) => {
                        pinned &= model_bit(model)?;
                        gpus += amount;
                    }
                    None => {
                        return Err(JobError::UnknownResource {
                            job: id.to_owned(),
                            resource: other.to_owned(),
                        });
                    }
                },
            }
        }
        if !self.gpu_models.is_empty() {
            let mut listed = 0;
            for m in &self.gpu_models {
                listed |= model_bit(m)?;
            }
            pinned &= listed;
        }
        demand.gpu_models = pinned;
        demand.gpu_milli = (gpus * 1000.0).ceil() as u64;
        if demand.gpu_milli > 0 && demand.gpu_models == 0 {
            return Err(JobError::UnknownResource {
                job: id.to_owned(),
                resource: format!(
                    "gpu with models {:?} (no model satisfies every constraint)",
                    self.gpu_models
                ),
            });
        }
        if demand.cpu_milli == 0 && demand.mem_mib == 0 && demand.gpu_milli == 0 {
            return Err(JobError::EmptyRequest { job: id.to_owned() });
        }

        let (data_region, data_bytes) = match &self.input {
            Some(data) => {
                let region =
                    world
                        .region_index(&data.region)
                        .ok_or_else(|| JobError::UnknownRegion {
                            job: id.to_owned(),
                            region: data.region.clone(),
                        })?;
                let gb = non_negative(id, "input.size_gb", data.size_gb)?;
                if gb > 1e9 {
                    return Err(JobError::OutOfRange {
                        job: id.to_owned(),
                        field: "input.size_gb",
                        value: gb,
                        lo: 0.0,
                        hi: 1e9,
                    });
                }
                (region, (gb * 1e9).round() as u64)
            }
            None => (0, 0),
        };

        let zones: ZoneMask = if self.allowed_zones.is_empty() {
            u64::MAX
        } else {
            let mask = self
                .allowed_zones
                .iter()
                .filter_map(|z| world.zone_index(z))
                .fold(0u64, |m, z| m | (1u64 << z));
            if mask == 0 {
                return Err(JobError::NoSiteInZones {
                    job: id.to_owned(),
                    zones: self.allowed_zones.clone(),
                });
            }
            mask
        };

        let mut job = Job {
            id: id.to_owned(),
            tenant: self.tenant.clone(),
            arrival_s: self.submit_s,
            duration_s,
            deadline_s: self.deadline_s.unwrap_or(i64::MAX),
            priority: self.priority,
            demand,
            data_region,
            data_bytes,
            zones,
        };

        // Feasibility: some allowed site must be big enough, and the deadline must be reachable
        // there with zero queueing.
        let mut earliest_finish: Option<f64> = None;
        for site in &world.sites {
            if !job.allows_zone(site.zone) || !fits_site(&job.demand, site) {
                continue;
            }
            let transfer = world.transfer_seconds(job.data_region, site.region, job.data_bytes);
            let finish = job.arrival_s as f64 + transfer + job.duration_s as f64;
            earliest_finish = Some(earliest_finish.map_or(finish, |f: f64| f.min(finish)));
        }
        let Some(earliest) = earliest_finish else {
            return Err(JobError::TooLarge { job: id.to_owned() });
        };
        if let Some(deadline) = self.deadline_s {
            let earliest = earliest.ceil() as i64;
            if deadline < earliest {
                return Err(JobError::ImpossibleDeadline {
                    job: id.to_owned(),
                    deadline_s: deadline,
                    earliest_finish_s: earliest,
                });
            }
        }
        if self.deadline_s.is_none() {
            job.deadline_s = i64::MAX;
        }
        Ok(job)
    }
}

/// Whether `demand` fits an empty `site` at all (on some acceptable GPU model).
pub fn fits_site(demand: &Demand, site: &crate::world::Site) -> bool {
    demand.cpu_milli <= site.cpu_milli
        && demand.mem_mib <= site.mem_mib
        && (demand.gpu_milli == 0
            || site
                .gpus
                .iter()
                .any(|(m, cap)| demand.accepts_model(*m) && demand.gpu_milli <= *cap))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sites::{EastWestOptions, east_west};

    fn spec() -> JobSpec {
        JobSpec {
            id: "j1".into(),
            tenant: "t".into(),
            submit_s: 100,
            duration_s: 3600.0,
            deadline_s: Some(100 + 7200),
            priority: 2,
            resources: [
                ("cpu".to_owned(), 4.0),
                ("memory_gib".to_owned(), 16.0),
                ("gpu".to_owned(), 1.0),
            ]
            .into_iter()
            .collect(),
            gpu_models: vec![],
            input: Some(DataRef {
                region: "yrd".into(),
                size_gb: 50.0,
            }),
            allowed_zones: vec![],
        }
    }

    fn world() -> World {
        east_west(&EastWestOptions::default())
    }

    #[test]
    fn valid_job_converts_units() {
        let job = spec().validate(&world()).expect("valid");
        assert_eq!(job.demand.cpu_milli, 4000);
        assert_eq!(job.demand.mem_mib, 16 * 1024);
        assert_eq!(job.demand.gpu_milli, 1000);
        assert_eq!(job.data_bytes, 50_000_000_000);
        assert_eq!(job.zones, u64::MAX);
    }

    #[test]
    fn json_round_trip() {
        let s = spec();
        assert_eq!(JobSpec::from_json(&s.to_json()).unwrap(), s);
        assert!(matches!(
            JobSpec::from_json("{\"id\":1}"),
            Err(JobError::Json(_))
        ));
    }

    #[test]
    fn rejects_unknown_resource() {
        let mut s = spec();
        s.resources.insert("tpu".into(), 1.0);
        let err = s.validate(&world()).unwrap_err();
        assert_eq!(
            err,
            JobError::UnknownResource {
                job: "j1".into(),
                resource: "tpu".into()
            }
        );
        let mut s = spec();
        s.gpu_models = vec!["H100".into()];
        assert!(matches!(
            s.validate(&world()),
            Err(JobError::UnknownResource { .. })
        ));
        let mut s = spec();
        s.resources.insert("gpu:B200".into(), 1.0);
        assert!(err_mentions(&s, "gpu:B200"));
    }

    fn err_mentions(s: &JobSpec, needle: &str) -> bool {
        s.validate(&world())
            .err()
            .is_some_and(|e| e.to_string().contains(needle))
    }

    #[test]
    fn rejects_impossible_deadline() {
        let mut s = spec();
        s.deadline_s = Some(100 + 3599);
        assert!(matches!(
            s.validate(&world()),
            Err(JobError::ImpossibleDeadline { .. })
        ));
        // Exactly duration + intra-region transfer is feasible only if transfer fits: a deadline
        // right at submit + duration with 50 GB of input cannot be met anywhere.
        s.deadline_s = Some(100 + 3600);
        assert!(matches!(
            s.validate(&world()),
            Err(JobError::ImpossibleDeadline { .. })
        ));
        s.input = None;
        assert!(s.validate(&world()).is_ok());
    }

    #[test]
    fn rejects_zone_nobody_offers() {
        let mut s = spec();
        s.allowed_zones = vec!["US-CA".into()];
        assert!(matches!(
            s.validate(&world()),
            Err(JobError::NoSiteInZones { .. })
        ));
        s.allowed_zones = vec!["US-CA".into(), "CN-SH".into()];
        let job = s.validate(&world()).unwrap();
        let w = world();
        assert_eq!(job.zones, 1 << w.zone_index("CN-SH").unwrap());
    }

    #[test]
    fn rejects_negative_and_non_finite_sizes() {
        for (field, edit) in [
            (
                "resources.cpu",
                Box::new(|s: &mut JobSpec| {
                    s.resources.insert("cpu".into(), -1.0);
                }) as Box<dyn Fn(&mut JobSpec)>,
            ),
            (
                "input.size_gb",
                Box::new(|s: &mut JobSpec| s.input.as_mut().unwrap().size_gb = -5.0),
            ),
            (
                "duration_s",
                Box::new(|s: &mut JobSpec| s.duration_s = f64::NAN),
            ),
        ] {
            let mut s = spec();
            edit(&mut s);
            match s.validate(&world()) {
                Err(JobError::NegativeOrNotFinite { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn rejects_too_large_and_unknown_region_and_empty() {
        let mut s = spec();
        s.resources.insert("gpu".into(), 10_000.0);
        assert!(matches!(
            s.validate(&world()),
            Err(JobError::TooLarge { .. })
        ));
        let mut s = spec();
        s.input = Some(DataRef {
            region: "mars".into(),
            size_gb: 1.0,
        });
        assert!(matches!(
            s.validate(&world()),
            Err(JobError::UnknownRegion { .. })
        ));
        let mut s = spec();
        s.resources.clear();
        assert!(matches!(
            s.validate(&world()),
            Err(JobError::EmptyRequest { .. })
        ));
    }

    #[test]
    fn gpu_model_pin_restricts_models() {
        let w = world();
        let mut s = spec();
        s.resources.remove("gpu");
        s.resources.insert("gpu:T4".into(), 2.0);
        let job = s.validate(&w).unwrap();
        let t4 = w.gpu_model_index("T4").unwrap();
        assert_eq!(job.demand.gpu_models, 1 << t4);
        assert_eq!(job.demand.gpu_milli, 2000);
    }
}
