//! The alliance's world: GPU models, regions, the network between them, and the member sites.
//!
//! Two layers, on purpose: [`WorldConfig`] is the serde (JSON) form an operator writes or a
//! site agent reports, with human units (cores, GiB, GPUs, CNY per hour); [`World`] is the
//! validated, index-based form the scheduler works on, with integer capacities (milli-cores,
//! MiB, milli-GPUs) so that capacity arithmetic is exact and over-commitment can be checked
//! without floating-point slack. [`World::from_config`] is the only way from one to the other
//! and rejects bad input with an error naming the element and field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::WorldError;

/// Maximum number of distinct sovereignty zones (zone sets are `u64` bit masks).
pub const MAX_ZONES: usize = 64;
/// Maximum number of GPU models (model sets are `u32` bit masks).
pub const MAX_GPU_MODELS: usize = 32;

/// Serde form of the whole world.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorldConfig {
    /// GPU models the alliance's catalogue knows.
    pub gpu_models: Vec<GpuModelConfig>,
    /// Power drawn per unit of CPU and memory (GPUs carry their own figure).
    pub power: PowerConfig,
    /// Regions (hubs); sites and data live in regions.
    pub regions: Vec<RegionConfig>,
    /// Network between regions.
    pub network: NetworkConfig,
    /// Member sites.
    pub sites: Vec<SiteConfig>,
}

/// A GPU model in the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuModelConfig {
    /// Model name as jobs and sites spell it (e.g. `T4`, `V100M32`).
    pub name: String,
    /// Board power in watts at typical load.
    pub watts: f64,
}

/// Power drawn per unit of CPU and memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerConfig {
    /// Watts per allocated core.
    pub cpu_core_watts: f64,
    /// Watts per allocated GiB of memory.
    pub memory_gib_watts: f64,
}

/// A region (an East-Data-West-Computing hub).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    /// Identifier (e.g. `jingjinji`).
    pub id: String,
    /// Anchor city latitude in degrees, used for great-circle distance.
    pub lat: f64,
    /// Anchor city longitude in degrees.
    pub lon: f64,
}

/// Network model between regions. Unlisted pairs get RTT from distance
/// (`2 × d × route_factor × 4.9 µs/km + switching`) and the default bandwidth and price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// Fibre route length over great-circle distance (1.2–1.5 carrier fibre).
    pub route_factor: f64,
    /// Fixed switching delay added to every RTT, in ms.
    pub switching_ms: f64,
    /// Inter-region link bandwidth in Gbit/s.
    pub inter_region_gbps: f64,
    /// Bandwidth inside one region in Gbit/s.
    pub intra_region_gbps: f64,
    /// Share of a link one job's transfer gets (per-tenant share), in (0, 1].
    pub tenant_share: f64,
    /// Transfer price between regions, CNY per GB.
    pub inter_region_cny_per_gb: f64,
    /// Explicit per-pair figures overriding the defaults (symmetric).
    #[serde(default)]
    pub links: Vec<LinkConfig>,
}

/// One explicit link between two regions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    /// One end (region id).
    pub a: String,
    /// Other end (region id).
    pub b: String,
    /// Bandwidth in Gbit/s, if not the default.
    pub gbps: Option<f64>,
    /// RTT in ms, if not derived from distance.
    pub rtt_ms: Option<f64>,
    /// Price in CNY per GB, if not the default.
    pub cny_per_gb: Option<f64>,
}

/// A member site (data centre or cluster).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// Identifier (e.g. `zhongwei`).
    pub id: String,
    /// Region id the site belongs to.
    pub region: String,
    /// Data-sovereignty zone (e.g. a province code such as `CN-NX`).
    pub zone: String,
    /// Site latitude in degrees.
    pub lat: f64,
    /// Site longitude in degrees.
    pub lon: f64,
    /// Capacity offered to the alliance.
    pub capacity: CapacityConfig,
    /// Price book, CNY per resource-hour.
    pub price: PriceConfig,
    /// Electricity price in CNY/kWh (informational L0 metric; the price book already includes it).
    pub electricity_cny_per_kwh: f64,
    /// Grid emission factor in kgCO2/kWh.
    pub grid_kg_per_kwh: f64,
    /// Share of directly supplied green power in [0, 1].
    pub green_share: f64,
    /// Power usage effectiveness (>= 1).
    pub pue: f64,
    /// Availability in [0, 1] (fraction of time the site is up).
    pub availability: f64,
}

/// Capacity in human units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacityConfig {
    /// Cores.
    pub cpu_cores: f64,
    /// Memory in GiB.
    pub memory_gib: f64,
    /// GPUs per model name.
    #[serde(default)]
    pub gpus: BTreeMap<String, f64>,
}

/// Price book in CNY per resource-hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceConfig {
    /// Per core-hour.
    pub cpu_core_hour: f64,
    /// Per GiB-hour.
    pub memory_gib_hour: f64,
    /// Per GPU-hour, per model name (each model the site offers must be priced).
    #[serde(default)]
    pub gpu_hour: BTreeMap<String, f64>,
}

/// Index of a GPU model in [`World::gpu_models`].
pub type GpuModelIdx = u8;

/// A validated GPU model.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuModel {
    /// Name.
    pub name: String,
    /// Watts.
    pub watts: f64,
}

/// A validated region.
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    /// Identifier.
    pub id: String,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
}

/// A validated site. Capacities are integers in milli-cores, MiB and milli-GPUs.
#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    /// Identifier.
    pub id: String,
    /// Region index.
    pub region: usize,
    /// Zone index into [`World::zones`].
    pub zone: usize,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
    /// CPU capacity in milli-cores.
    pub cpu_milli: u64,
    /// Memory capacity in MiB.
    pub mem_mib: u64,
    /// GPU capacity per model in milli-GPUs (only models with capacity > 0).
    pub gpus: Vec<(GpuModelIdx, u64)>,
    /// CNY per core-hour.
    pub price_cpu_core_hour: f64,
    /// CNY per GiB-hour.
    pub price_mem_gib_hour: f64,
    /// CNY per GPU-hour, indexed like `gpus`.
    pub price_gpu_hour: Vec<f64>,
    /// CNY per kWh.
    pub electricity_cny_per_kwh: f64,
    /// kgCO2 per kWh from the grid.
    pub grid_kg_per_kwh: f64,
    /// Green-power share.
    pub green_share: f64,
    /// PUE.
    pub pue: f64,
    /// Availability.
    pub availability: f64,
}

impl Site {
    /// Effective emission factor of the electricity this site draws:
    /// `grid factor × (1 − green share)` (compute.md §5).
    pub fn effective_kg_per_kwh(&self) -> f64 {
        self.grid_kg_per_kwh * (1.0 - self.green_share)
    }

    /// GPU capacity (milli-GPUs) of `model` at this site, 0 if not offered.
    pub fn gpu_capacity(&self, model: GpuModelIdx) -> u64 {
        self.gpus
            .iter()
            .find(|(m, _)| *m == model)
            .map_or(0, |(_, c)| *c)
    }
}

/// Per region-pair network figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    /// Round-trip time in ms.
    pub rtt_ms: f64,
    /// Bandwidth one job's transfer gets, in Gbit/s (link × tenant share).
    pub job_gbps: f64,
    /// CNY per GB moved.
    pub cny_per_gb: f64,
}

/// The validated world.
#[derive(Debug, Clone)]
pub struct World {
    /// GPU models.
    pub gpu_models: Vec<GpuModel>,
    /// Watts per core.
    pub cpu_core_watts: f64,
    /// Watts per GiB.
    pub memory_gib_watts: f64,
    /// Regions.
    pub regions: Vec<Region>,
    /// Distinct zones, in first-seen order of the sites.
    pub zones: Vec<String>,
    /// Sites.
    pub sites: Vec<Site>,
    links: Vec<Link>,
    config: WorldConfig,
}

/// Great-circle distance in km (haversine, mean Earth radius 6371 km).
pub fn great_circle_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * 6371.0 * a.sqrt().min(1.0).asin()
}

/// One-way fibre delay per km (compute.md §5: ~4.9 µs/km).
pub const FIBRE_US_PER_KM: f64 = 4.9;

fn finite_in(
    value: f64,
    lo: f64,
    hi: f64,
    element: &str,
    field: &'static str,
) -> Result<f64, WorldError> {
    if value.is_finite() && value >= lo && value <= hi {
        Ok(value)
    } else {
        Err(WorldError::OutOfRange {
            element: element.to_owned(),
            field,
            value,
            lo,
            hi,
        })
    }
}

fn to_units(
    value: f64,
    per_unit: f64,
    element: &str,
    field: &'static str,
) -> Result<u64, WorldError> {
    let v = finite_in(value, 0.0, 1e12, element, field)?;
    Ok((v * per_unit).round() as u64)
}

impl World {
    /// Parses and validates a world from JSON.
    pub fn from_json(text: &str) -> Result<Self, WorldError> {
        let config: WorldConfig =
            serde_json::from_str(text).map_err(|e| WorldError::Json(e.to_string()))?;
        Self::from_config(config)
    }

    /// The serde form this world was built from.
    pub fn config(&self) -> &WorldConfig {
        &self.config
    }

    /// Serialises the world's configuration as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.config).unwrap_or_default()
    }

    /// Validates a configuration.
    pub fn from_config(config: WorldConfig) -> Result<Self, WorldError> {
        if config.gpu_models.len() > MAX_GPU_MODELS {
            return Err(WorldError::TooMany {
                what: "gpu_models",
                max: MAX_GPU_MODELS,
            });
        }
        let mut gpu_models = Vec::with_capacity(config.gpu_models.len());
        for m in &config.gpu_models {
            if m.name.is_empty() || m.name.contains([':', '|']) {
                return Err(WorldError::BadName {
                    element: "gpu_model".into(),
                    name: m.name.clone(),
                });
            }
            if gpu_models.iter().any(|g: &GpuModel| g.name == m.name) {
                return Err(WorldError::Duplicate {
                    what: "gpu_model",
                    id: m.name.clone(),
                });
            }
            let watts = finite_in(m.watts, 0.0, 1e5, &format!("gpu_model {}", m.name), "watts")?;
            gpu_models.push(GpuModel {
                name: m.name.clone(),
                watts,
            });
        }
        let cpu_core_watts = finite_in(
            config.power.cpu_core_watts,
            0.0,
            1e4,
            "power",
            "cpu_core_watts",
        )?;
        let memory_gib_watts = finite_in(
            config.power.memory_gib_watts,
            0.0,
            1e4,
            "power",
            "memory_gib_watts",
        )?;

        let mut regions: Vec<Region> = Vec::with_capacity(config.regions.len());
        for r in &config.regions {
            if r.id.is_empty() {
                return Err(WorldError::BadName {
                    element: "region".into(),
                    name: r.id.clone(),
                });
            }
            if regions.iter().any(|x| x.id == r.id) {
                return Err(WorldError::Duplicate {
                    what: "region",
                    id: r.id.clone(),
                });
            }
            let el = format!("region {}", r.id);
            let lat = finite_in(r.lat, -90.0, 90.0, &el, "lat")?;
            let lon = finite_in(r.lon, -180.0, 180.0, &el, "lon")?;
            regions.push(Region {
                id: r.id.clone(),
                lat,
                lon,
            });
        }
        let region_index = |id: &str, element: &str| -> Result<usize, WorldError> {
            regions
                .iter()
                .position(|r| r.id == id)
                .ok_or_else(|| WorldError::UnknownRegion {
                    element: element.to_owned(),
                    region: id.to_owned(),
                })
        };

        let net = &config.network;
        finite_in(net.route_factor, 1.0, 10.0, "network", "route_factor")?;
        finite_in(net.switching_ms, 0.0, 1e4, "network", "switching_ms")?;
        finite_in(
            net.inter_region_gbps,
            1e-6,
            1e6,
            "network",
            "inter_region_gbps",
        )?;
        finite_in(
            net.intra_region_gbps,
            1e-6,
            1e6,
            "network",
            "intra_region_gbps",
        )?;
        finite_in(net.tenant_share, 1e-6, 1.0, "network", "tenant_share")?;
        finite_in(
            net.inter_region_cny_per_gb,
            0.0,
            1e6,
            "network",
            "inter_region_cny_per_gb",
        )?;
        let n = regions.len();
        let mut links = Vec::with_capacity(n * n);
        for a in &regions {
            for b in &regions {
                let same = a.id == b.id;
                let km = great_circle_km(a.lat, a.lon, b.lat, b.lon);
                let rtt_ms =
                    2.0 * km * net.route_factor * FIBRE_US_PER_KM / 1000.0 + net.switching_ms;
                let gbps = if same {
                    net.intra_region_gbps
                } else {
                    net.inter_region_gbps
                };
                links.push(Link {
                    rtt_ms,
                    job_gbps: gbps * net.tenant_share,
                    cny_per_gb: if same {
                        0.0
                    } else {
                        net.inter_region_cny_per_gb
                    },
                });
            }
        }
        for l in &net.links {
            let el = format!("link {}-{}", l.a, l.b);
            let ia = region_index(&l.a, &el)?;
            let ib = region_index(&l.b, &el)?;
            for (x, y) in [(ia, ib), (ib, ia)] {
                let link = &mut links[x * n + y];
                if let Some(g) = l.gbps {
                    link.job_gbps = finite_in(g, 1e-6, 1e6, &el, "gbps")? * net.tenant_share;
                }
                if let Some(r) = l.rtt_ms {
                    link.rtt_ms = finite_in(r, 0.0, 1e5, &el, "rtt_ms")?;
                }
                if let Some(p) = l.cny_per_gb {
                    link.cny_per_gb = finite_in(p, 0.0, 1e6, &el, "cny_per_gb")?;
                }
            }
        }

        let mut zones: Vec<String> = Vec::new();
        let mut sites: Vec<Site> = Vec::with_capacity(config.sites.len());
        for s in &config.sites {
            let el = format!("site {}", s.id);
            if s.id.is_empty() {
                return Err(WorldError::BadName {
                    element: "site".into(),
                    name: s.id.clone(),
                });
            }
            if sites.iter().any(|x| x.id == s.id) {
                return Err(WorldError::Duplicate {
                    what: "site",
                    id: s.id.clone(),
                });
            }
            if s.zone.is_empty() {
                return Err(WorldError::BadName {
                    element: el,
                    name: s.zone.clone(),
                });
            }
            let region = region_index(&s.region, &el)?;
            let zone = match zones.iter().position(|z| *z == s.zone) {
                Some(z) => z,
                None => {
                    if zones.len() == MAX_ZONES {
                        return Err(WorldError::TooMany {
                            what: "zones",
                            max: MAX_ZONES,
                        });
                    }
                    zones.push(s.zone.clone());
                    zones.len() - 1
                }
            };
            let mut gpus = Vec::new();
            let mut price_gpu_hour = Vec::new();
            for (name, count) in &s.capacity.gpus {
                let model = gpu_models
                    .iter()
                    .position(|g| g.name == *name)
                    .ok_or_else(|| WorldError::UnknownGpuModel {
                        element: el.clone(),
                        model: name.clone(),
                    })?;
                let milli = to_units(*count, 1000.0, &el, "capacity.gpus")?;
                if milli == 0 {
                    continue;
                }
                let price = s.price.gpu_hour.get(name).copied().ok_or_else(|| {
                    WorldError::MissingPrice {
                        element: el.clone(),
                        model: name.clone(),
                    }
                })?;
                price_gpu_hour.push(finite_in(price, 0.0, 1e6, &el, "price.gpu_hour")?);
                gpus.push((model as GpuModelIdx, milli));
            }
            for name in s.price.gpu_hour.keys() {
                if !gpu_models.iter().any(|g| g.name == *name) {
                    return Err(WorldError::UnknownGpuModel {
                        element: el.clone(),
                        model: name.clone(),
                    });
                }
            }
            sites.push(Site {
                id: s.id.clone(),
                region,
                zone,
                lat: finite_in(s.lat, -90.0, 90.0, &el, "lat")?,
                lon: finite_in(s.lon, -180.0, 180.0, &el, "lon")?,
                cpu_milli: to_units(s.capacity.cpu_cores, 1000.0, &el, "capacity.cpu_cores")?,
                mem_mib: to_units(s.capacity.memory_gib, 1024.0, &el, "capacity.memory_gib")?,
                gpus,
                price_cpu_core_hour: finite_in(
                    s.price.cpu_core_hour,
                    0.0,
                    1e6,
                    &el,
                    "price.cpu_core_hour",
                )?,
                price_mem_gib_hour: finite_in(
                    s.price.memory_gib_hour,
                    0.0,
                    1e6,
                    &el,
                    "price.memory_gib_hour",
                )?,
                price_gpu_hour,
                electricity_cny_per_kwh: finite_in(
                    s.electricity_cny_per_kwh,
                    0.0,
                    1e3,
                    &el,
                    "electricity_cny_per_kwh",
                )?,
                grid_kg_per_kwh: finite_in(s.grid_kg_per_kwh, 0.0, 10.0, &el, "grid_kg_per_kwh")?,
                green_share: finite_in(s.green_share, 0.0, 1.0, &el, "green_share")?,
                pue: finite_in(s.pue, 1.0, 10.0, &el, "pue")?,
                availability: finite_in(s.availability, 0.0, 1.0, &el, "availability")?,
            });
        }
        if sites.is_empty() {
            return Err(WorldError::NoSites);
        }
        if sites.len() > usize::from(u16::MAX) {
            return Err(WorldError::TooMany {
                what: "sites",
                max: usize::from(u16::MAX),
            });
        }
        Ok(Self {
            gpu_models,
            cpu_core_watts,
            memory_gib_watts,
            regions,
            zones,
            sites,
            links,
            config,
        })
    }

    /// Network figures from region `from` to region `to`.
    pub fn link(&self, from: usize, to: usize) -> Link {
        let n = self.regions.len();
        self.links.get(from * n + to).copied().unwrap_or(Link {
            rtt_ms: 0.0,
            job_gbps: f64::INFINITY,
            cny_per_gb: 0.0,
        })
    }

    /// Seconds to move `bytes` from region `from` to region `to` at one job's bandwidth share,
    /// plus one RTT for set-up. Zero bytes cost nothing (not even the RTT).
    pub fn transfer_seconds(&self, from: usize, to: usize, bytes: u64) -> f64 {
        if bytes == 0 {
            return 0.0;
        }
        let link = self.link(from, to);
        bytes as f64 * 8.0 / (link.job_gbps * 1e9) + link.rtt_ms / 1000.0
    }

    /// Index of the region called `id`.
    pub fn region_index(&self, id: &str) -> Option<usize> {
        self.regions.iter().position(|r| r.id == id)
    }

    /// Index of the zone called `name`.
    pub fn zone_index(&self, name: &str) -> Option<usize> {
        self.zones.iter().position(|z| z == name)
    }

    /// Index of the GPU model called `name`.
    pub fn gpu_model_index(&self, name: &str) -> Option<GpuModelIdx> {
        self.gpu_models
            .iter()
            .position(|g| g.name == name)
            .map(|i| i as GpuModelIdx)
    }

    /// Index of the site called `id`.
    pub fn site_index(&self, id: &str) -> Option<usize> {
        self.sites.iter().position(|s| s.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sites::east_west;

    #[test]
    fn great_circle_matches_reference_distances() {
        // compute.md §5: Beijing -> Zhongwei 1008 km, Beijing -> Hohhot 408 km.
        let bj_zw = great_circle_km(39.9042, 116.4074, 37.5149, 105.1968);
        let bj_hh = great_circle_km(39.9042, 116.4074, 40.8424, 111.7490);
        assert!((bj_zw - 1008.0).abs() < 30.0, "{bj_zw}");
        assert!((bj_hh - 408.0).abs() < 15.0, "{bj_hh}");
    }

    #[test]
    fn json_round_trip_preserves_world() {
        let world = east_west(&Default::default());
        let text = world.to_json();
        let again = World::from_json(&text).expect("round trip");
        assert_eq!(again.config(), world.config());
        assert_eq!(again.sites, world.sites);
    }

    #[test]
    fn rejects_bad_fields_with_names() {
        let world = east_west(&Default::default());
        let mut cfg = world.config().clone();
        cfg.sites[2].pue = 0.8;
        let err = World::from_config(cfg).unwrap_err().to_string();
        assert!(
            err.contains("pue") && err.contains(&world.sites[2].id),
            "{err}"
        );

        let mut cfg = world.config().clone();
        cfg.sites[0].region = "atlantis".into();
        let err = World::from_config(cfg).unwrap_err().to_string();
        assert!(err.contains("atlantis"), "{err}");

        let mut cfg = world.config().clone();
        cfg.sites[0].capacity.gpus.insert("H100".into(), 4.0);
        let err = World::from_config(cfg).unwrap_err().to_string();
        assert!(err.contains("H100"), "{err}");

        assert!(World::from_json("{not json").is_err());
    }

    #[test]
    fn transfer_time_scales_with_bytes_and_is_zero_within_nothing() {
        let world = east_west(&Default::default());
        let a = world.region_index("jingjinji").unwrap();
        let b = world.region_index("ningxia").unwrap();
        let t1 = world.transfer_seconds(a, b, 10_000_000_000);
        let t2 = world.transfer_seconds(a, b, 20_000_000_000);
        assert!(t2 > t1 && (t2 - t1 - (t1 - world.link(a, b).rtt_ms / 1000.0)).abs() < 1e-6);
        assert_eq!(world.transfer_seconds(a, b, 0), 0.0);
        assert_eq!(world.link(a, a).cny_per_gb, 0.0);
        assert!(world.link(a, b).cny_per_gb > 0.0);
    }
}
