//! Site advertisements as IETF CATS metrics (draft-ietf-cats-metric-definition).
//!
//! Three levels, as the draft defines them:
//! - **L0**: raw values with a unit (free cores and GPUs, price, gCO2/kWh, PUE, egress bandwidth,
//!   RTT). The draft deliberately leaves L0 names unstandardised; ours are listed in
//!   [`L0_METRICS`] with their units, and adverts are validated against that list.
//! - **L1**: one unitless score per category (`compute`, `network`, `storage`, `delay`), here in
//!   `[0, 100]`, higher is better.
//! - **L2**: one non-negative integer overall score.
//!
//! Every metric carries its **source** (nominal, measured, aggregated, normalised; RFC 9439's
//! cost-source extended by the draft) and the advert carries a timestamp, so a consumer can judge
//! freshness. Members that hide raw data may publish L1/L2 only (`l0` empty).
//!
//! [`SiteAdvert::from_json`] is the schema check: serde rejects unknown fields and wrong types,
//! then [`SiteAdvert::validate`] checks names, units, ranges and that L2 agrees with L1.
//! [`ADVERT_SCHEMA`] is the same contract as a JSON Schema document for API clients.

use serde::{Deserialize, Serialize};

use crate::error::AdvertError;
use crate::world::{Site, World};

/// Advert format version.
pub const ADVERT_VERSION: u32 = 1;

/// Where a metric value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricSource {
    /// Configured / declared value.
    Nominal,
    /// Measured at the site.
    Measured,
    /// Aggregated from several measurements or sites.
    Aggregated,
    /// Derived by normalisation (L1/L2).
    Normalised,
}

/// One L0 metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct L0Metric {
    /// Metric name (one of [`L0_METRICS`]).
    pub name: String,
    /// Value.
    pub value: f64,
    /// Unit (must match the name's unit).
    pub unit: String,
    /// Source.
    pub source: MetricSource,
}

/// One L1 category score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct L1Score {
    /// Category: `compute`, `network`, `storage` or `delay`.
    pub category: String,
    /// Score in [0, 100], higher is better.
    pub score: f64,
    /// Source.
    pub source: MetricSource,
}

/// A site advertisement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteAdvert {
    /// Format version ([`ADVERT_VERSION`]).
    pub version: u32,
    /// Site id (CATS service contact instance).
    pub site: String,
    /// Region.
    pub region: String,
    /// Sovereignty zone.
    pub zone: String,
    /// Time the metrics were taken, seconds on the alliance clock.
    pub timestamp_s: i64,
    /// L0 raw metrics.
    #[serde(default)]
    pub l0: Vec<L0Metric>,
    /// L1 per-category scores.
    pub l1: Vec<L1Score>,
    /// L2 overall score.
    pub l2: u32,
}

/// L0 metric names and units.
pub const L0_METRICS: [(&str, &str); 12] = [
    ("cpu_free", "cores"),
    ("memory_free", "GiB"),
    ("gpu_free", "GPUs"),
    ("cpu_total", "cores"),
    ("gpu_total", "GPUs"),
    ("price_gpu_hour", "CNY/h"),
    ("price_cpu_core_hour", "CNY/h"),
    ("carbon_intensity", "gCO2/kWh"),
    ("pue", "ratio"),
    ("egress_bandwidth", "Gbit/s"),
    ("rtt", "ms"),
    ("availability", "ratio"),
];

/// L1 categories.
pub const L1_CATEGORIES: [&str; 4] = ["compute", "network", "storage", "delay"];

/// The advert contract as a JSON Schema (draft 2020-12) document.
pub const ADVERT_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "citybrain CATS site advertisement",
  "type": "object",
  "additionalProperties": false,
  "required": ["version", "site", "region", "zone", "timestamp_s", "l1", "l2"],
  "properties": {
    "version": {"const": 1},
    "site": {"type": "string", "minLength": 1},
    "region": {"type": "string", "minLength": 1},
    "zone": {"type": "string", "minLength": 1},
    "timestamp_s": {"type": "integer"},
    "l0": {"type": "array", "items": {
      "type": "object", "additionalProperties": false, "required": ["name", "value", "unit", "source"],
      "properties": {
        "name": {"enum": ["cpu_free", "memory_free", "gpu_free", "cpu_total", "gpu_total", "price_gpu_hour",
                          "price_cpu_core_hour", "carbon_intensity", "pue", "egress_bandwidth", "rtt", "availability"]},
        "value": {"type": "number", "minimum": 0},
        "unit": {"type": "string"},
        "source": {"enum": ["nominal", "measured", "aggregated", "normalised"]}}}},
    "l1": {"type": "array", "items": {
      "type": "object", "additionalProperties": false, "required": ["category", "score", "source"],
      "properties": {
        "category": {"enum": ["compute", "network", "storage", "delay"]},
        "score": {"type": "number", "minimum": 0, "maximum": 100},
        "source": {"enum": ["nominal", "measured", "aggregated", "normalised"]}}}},
    "l2": {"type": "integer", "minimum": 0, "maximum": 100}
  }
}"#;

/// Live figures a site agent knows beyond the static world (free capacity now).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LiveLoad {
    /// Free cores.
    pub cpu_free: f64,
    /// Free GiB.
    pub memory_free: f64,
    /// Free GPUs.
    pub gpu_free: f64,
}

impl SiteAdvert {
    /// Parses and validates an advert.
    pub fn from_json(text: &str) -> Result<Self, AdvertError> {
        let advert: Self =
            serde_json::from_str(text).map_err(|e| AdvertError::Json(e.to_string()))?;
        advert.validate()?;
        Ok(advert)
    }

    /// Serialises as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Checks names, units, ranges and L2/L1 consistency.
    pub fn validate(&self) -> Result<(), AdvertError> {
        if self.version != ADVERT_VERSION {
            return Err(AdvertError::Invalid(format!(
                "unsupported version {}",
                self.version
            )));
        }
        if self.site.is_empty() || self.region.is_empty() || self.zone.is_empty() {
            return Err(AdvertError::Invalid(
                "site, region and zone must be non-empty".into(),
            ));
        }
        let bad = |metric: &str, reason: String| AdvertError::BadMetric {
            site: self.site.clone(),
            metric: metric.to_owned(),
            reason,
        };
        for (i, m) in self.l0.iter().enumerate() {
            let Some((_, unit)) = L0_METRICS.iter().find(|(n, _)| *n == m.name) else {
                return Err(bad(&m.name, "unknown L0 metric".into()));
            };
            if m.unit != *unit {
                return Err(bad(
                    &m.name,
                    format!("unit `{}`, expected `{unit}`", m.unit),
                ));
            }
            if !m.value.is_finite() || m.value < 0.0 {
                return Err(bad(
                    &m.name,
                    format!("value {} must be finite and >= 0", m.value),
                ));
            }
            if self.l0[..i].iter().any(|p| p.name == m.name) {
                return Err(bad(&m.name, "repeated".into()));
            }
        }
        for (i, s) in self.l1.iter().enumerate() {
            if !L1_CATEGORIES.contains(&s.category.as_str()) {
                return Err(bad(&s.category, "unknown L1 category".into()));
            }
            if !s.score.is_finite() || !(0.0..=100.0).contains(&s.score) {
                return Err(bad(
                    &s.category,
                    format!("score {} outside [0, 100]", s.score),
                ));
            }
            if self.l1[..i].iter().any(|p| p.category == s.category) {
                return Err(bad(&s.category, "repeated".into()));
            }
        }
        if self.l2 > 100 {
            return Err(bad("l2", format!("{} outside [0, 100]", self.l2)));
        }
        if !self.l1.is_empty() {
            let expected = l2_from_l1(&self.l1);
            if self.l2.abs_diff(expected) > 1 {
                return Err(bad(
                    "l2",
                    format!("{} disagrees with L1 (expected {expected})", self.l2),
                ));
            }
        }
        Ok(())
    }

    /// Value of an L0 metric, if published.
    pub fn l0(&self, name: &str) -> Option<f64> {
        self.l0.iter().find(|m| m.name == name).map(|m| m.value)
    }
}

/// L2 = rounded mean of the published L1 scores.
pub fn l2_from_l1(l1: &[L1Score]) -> u32 {
    if l1.is_empty() {
        return 0;
    }
    let mean = l1.iter().map(|s| s.score).sum::<f64>() / l1.len() as f64;
    mean.round().clamp(0.0, 100.0) as u32
}

/// Score in [0, 100] for `value` on a scale where `best` scores 100 and `worst` scores 0.
fn scale(value: f64, best: f64, worst: f64) -> f64 {
    if (best - worst).abs() < f64::EPSILON {
        return 100.0;
    }
    (100.0 * (value - worst) / (best - worst)).clamp(0.0, 100.0)
}

/// Builds the advert of site `site_idx` of `world` at `timestamp_s`.
///
/// L1 scores: `compute` = free share of capacity (GPU if any, else CPU) blended 50/50 with a
/// cost-and-carbon score; `network` = egress bandwidth against 400 Gbit/s; `storage` = free memory
/// share; `delay` = RTT from the site's region to the eastern data hubs, 0 ms → 100, 60 ms → 0.
pub fn advertise(
    world: &World,
    site_idx: usize,
    live: &LiveLoad,
    timestamp_s: i64,
) -> Option<SiteAdvert> {
    let site: &Site = world.sites.get(site_idx)?;
    let gpu_total = site.gpus.iter().map(|g| g.1).sum::<u64>() as f64 / 1000.0;
    let cpu_total = site.cpu_milli as f64 / 1000.0;
    let mem_total = site.mem_mib as f64 / 1024.0;
    let gpu_price = site
        .price_gpu_hour
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min);
    let carbon_g = site.effective_kg_per_kwh() * 1000.0;
    let egress = (0..world.regions.len())
        .filter(|o| *o != site.region)
        .map(|o| world.link(site.region, o).job_gbps / world.config().network.tenant_share)
        .fold(0.0, f64::max);
    let rtt = (0..world.regions.len())
        .filter(|r| *r != site.region)
        .map(|r| world.link(r, site.region).rtt_ms)
        .fold(f64::INFINITY, f64::min);
    let rtt = if rtt.is_finite() { rtt } else { 0.0 };
    let m = |name: &str, value: f64, source: MetricSource| L0Metric {
        name: name.to_owned(),
        value: value.max(0.0),
        unit: L0_METRICS
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, u)| u)
            .to_owned(),
        source,
    };
    let mut l0 = vec![
        m("cpu_free", live.cpu_free, MetricSource::Measured),
        m("memory_free", live.memory_free, MetricSource::Measured),
        m("cpu_total", cpu_total, MetricSource::Nominal),
        m(
            "price_cpu_core_hour",
            site.price_cpu_core_hour,
            MetricSource::Nominal,
        ),
        m("carbon_intensity", carbon_g, MetricSource::Aggregated),
        m("pue", site.pue, MetricSource::Nominal),
        m("egress_bandwidth", egress, MetricSource::Nominal),
        m("rtt", rtt, MetricSource::Aggregated),
        m("availability", site.availability, MetricSource::Measured),
    ];
    if gpu_total > 0.0 {
        l0.push(m("gpu_free", live.gpu_free, MetricSource::Measured));
        l0.push(m("gpu_total", gpu_total, MetricSource::Nominal));
        l0.push(m("price_gpu_hour", gpu_price, MetricSource::Nominal));
    }
    let free_share = if gpu_total > 0.0 {
        live.gpu_free / gpu_total
    } else {
        live.cpu_free / cpu_total.max(1e-9)
    };
    let green = scale(carbon_g * site.pue, 0.0, 900.0);
    let cheap = if gpu_total > 0.0 {
        scale(gpu_price, 2.0, 4.0)
    } else {
        scale(site.price_cpu_core_hour, 0.03, 0.1)
    };
    let n = MetricSource::Normalised;
    let l1 = vec![
        L1Score {
            category: "compute".into(),
            score: 0.5 * (100.0 * free_share.clamp(0.0, 1.0)) + 0.25 * green + 0.25 * cheap,
            source: n,
        },
        L1Score {
            category: "network".into(),
            score: scale(egress, 400.0, 0.0),
            source: n,
        },
        L1Score {
            category: "storage".into(),
            score: 100.0 * (live.memory_free / mem_total.max(1e-9)).clamp(0.0, 1.0),
            source: n,
        },
        L1Score {
            category: "delay".into(),
            score: scale(rtt, 0.0, 60.0),
            source: n,
        },
    ];
    let l2 = l2_from_l1(&l1);
    Some(SiteAdvert {
        version: ADVERT_VERSION,
        site: site.id.clone(),
        region: world
            .regions
            .get(site.region)
            .map(|r| r.id.clone())
            .unwrap_or_default(),
        zone: world.zones.get(site.zone).cloned().unwrap_or_default(),
        timestamp_s,
        l0,
        l1,
        l2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sites::{EastWestOptions, east_west};

    fn advert() -> SiteAdvert {
        let world = east_west(&EastWestOptions::default());
        let zw = world.site_index("zhongwei").unwrap();
        advertise(
            &world,
            zw,
            &LiveLoad {
                cpu_free: 100.0,
                memory_free: 400.0,
                gpu_free: 6.0,
            },
            1_700_000_000,
        )
        .unwrap()
    }

    #[test]
    fn advert_round_trips_through_json_and_validates() {
        let a = advert();
        a.validate().unwrap();
        let back = SiteAdvert::from_json(&a.to_json()).unwrap();
        assert_eq!(back, a);
        assert_eq!(back.l0("pue"), Some(1.1));
        // 0.5857 kg/kWh × (1 − 0.6) = 234.28 g/kWh.
        assert!((back.l0("carbon_intensity").unwrap() - 234.28).abs() < 1e-6);
        assert_eq!(back.l2, l2_from_l1(&back.l1));
    }

    #[test]
    fn schema_lists_every_l0_metric_and_category() {
        let schema: serde_json::Value = serde_json::from_str(ADVERT_SCHEMA).unwrap();
        let names = &schema["properties"]["l0"]["items"]["properties"]["name"]["enum"];
        let listed: Vec<&str> = names
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert_eq!(listed, L0_METRICS.iter().map(|m| m.0).collect::<Vec<_>>());
        let cats = &schema["properties"]["l1"]["items"]["properties"]["category"]["enum"];
        let listed: Vec<&str> = cats
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert_eq!(listed, L1_CATEGORIES.to_vec());
    }

    #[test]
    fn rejects_bad_adverts() {
        let mut a = advert();
        a.l0[0].unit = "MHz".into();
        assert!(matches!(a.validate(), Err(AdvertError::BadMetric { .. })));
        let mut a = advert();
        a.l1[0].score = 120.0;
        assert!(a.validate().is_err());
        let mut a = advert();
        a.l2 = (a.l2 + 10).min(100);
        assert!(a.validate().unwrap_err().to_string().contains("disagrees"));
        let mut a = advert();
        a.l0.push(a.l0[0].clone());
        assert!(a.validate().unwrap_err().to_string().contains("repeated"));
        assert!(SiteAdvert::from_json(r#"{"version":1}"#).is_err());
        let text = advert()
            .to_json()
            .replacen("\"version\":1", "\"version\":1,\"extra\":true", 1);
        assert!(matches!(
            SiteAdvert::from_json(&text),
            Err(AdvertError::Json(_))
        ));
    }

    #[test]
    fn greener_cheaper_emptier_site_scores_higher() {
        let world = east_west(&EastWestOptions::default());
        let live = LiveLoad {
            cpu_free: 50.0,
            memory_free: 200.0,
            gpu_free: 3.0,
        };
        let tianfu = advertise(&world, world.site_index("tianfu").unwrap(), &live, 0).unwrap();
        let bj = advertise(&world, world.site_index("bj-city").unwrap(), &live, 0).unwrap();
        let compute = |a: &SiteAdvert| a.l1.iter().find(|s| s.category == "compute").unwrap().score;
        assert!(compute(&tianfu) > compute(&bj));
    }
}
