//! The documented East-Data-West-Computing site set, and a seeded generator of larger ones.
//!
//! Figures come from `shared/reference/compute.md` §5 (MEE/NBS 2022 grid factors, reported
//! electricity prices and PUE, the RTT formula); the rest are assumptions written down here and
//! in `docs/cpn.md`:
//! - green-power share per site (direct green supply; western hubs are reported to target > 80 %,
//!   so 0.5–0.7 is conservative),
//! - eastern electricity prices 0.55–0.85 CNY/kWh ("east is an assumption" in compute.md),
//! - a hardware amortisation price per resource-hour, the same everywhere except a rent factor
//!   for city data centres,
//! - every GPU model draws 300 W and costs the same to amortise, because the trace does not say
//!   which card a pod ran on and runtimes would differ between cards: with equal figures the
//!   choice of card cannot masquerade as a site-choice saving.
//!
//! A site's price per resource-hour is `amortisation × rent factor + watts/1000 × PUE ×
//! electricity price`, so the price book already contains the energy bill.

use std::collections::BTreeMap;

use crate::rng::SplitMix64;
use crate::world::{
    CapacityConfig, GpuModelConfig, NetworkConfig, PowerConfig, PriceConfig, RegionConfig,
    SiteConfig, World, WorldConfig,
};

/// Total capacity the east/west set offers to a workload, split over the sites by share.
#[derive(Debug, Clone, PartialEq)]
pub struct EastWestOptions {
    /// Total cores over all sites.
    pub cpu_cores: f64,
    /// Total memory in GiB over all sites.
    pub memory_gib: f64,
    /// Total GPUs over all sites.
    pub gpus: f64,
    /// Bandwidth of an inter-region link in Gbit/s.
    pub inter_region_gbps: f64,
    /// Share of a link one job's transfer gets.
    pub tenant_share: f64,
    /// Inter-region transfer price in CNY per GB.
    pub inter_region_cny_per_gb: f64,
    /// Minimum capacity (GPUs, cores, GiB) per sovereignty zone: a zone whose share-based
    /// capacity is smaller has its sites scaled up (per resource) to reach it. Used to size city
    /// data centres for the work that may not leave their province.
    pub zone_floor: BTreeMap<String, [f64; 3]>,
}

impl Default for EastWestOptions {
    fn default() -> Self {
        Self {
            cpu_cores: 4000.0,
            memory_gib: 16384.0,
            gpus: 100.0,
            inter_region_gbps: 100.0,
            tenant_share: 0.02,
            inter_region_cny_per_gb: 0.2,
            zone_floor: BTreeMap::new(),
        }
    }
}

/// GPU model names as the Alibaba openb trace spells them (G2/G3 are undisclosed codes).
pub const GPU_MODELS: [&str; 7] = ["A10", "G2", "G3", "P100", "T4", "V100M16", "V100M32"];

/// Assumed board power of every GPU model (see the module docs for why they are equal).
pub const GPU_WATTS: f64 = 300.0;
/// Watts per allocated core.
pub const CPU_CORE_WATTS: f64 = 8.0;
/// Watts per allocated GiB of memory.
pub const MEMORY_GIB_WATTS: f64 = 0.375;
/// Amortised hardware price per GPU-hour, CNY.
pub const GPU_AMORTISATION: f64 = 2.5;
/// Amortised hardware price per core-hour, CNY.
pub const CPU_AMORTISATION: f64 = 0.05;
/// Amortised hardware price per GiB-hour, CNY.
pub const MEMORY_AMORTISATION: f64 = 0.005;

/// One row of the site table.
#[derive(Debug, Clone, Copy)]
pub struct SiteRow {
    /// Site id.
    pub id: &'static str,
    /// Region (hub).
    pub region: &'static str,
    /// Sovereignty zone (province).
    pub zone: &'static str,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
    /// Grid factor kgCO2/kWh (MEE/NBS 2022, compute.md §5).
    pub grid: f64,
    /// Green-power share (assumption).
    pub green: f64,
    /// Electricity CNY/kWh.
    pub electricity: f64,
    /// PUE.
    pub pue: f64,
    /// Rent factor on amortisation.
    pub rent: f64,
    /// Share of the total capacity.
    pub share: f64,
    /// GPU models and their share of this site's GPUs.
    pub gpus: [(&'static str, f64); 2],
    /// Is this an eastern (data-producing) site.
    pub east: bool,
}

/// The 12-site East-Data-West-Computing set: six eastern sites in the three eastern hubs (a city
/// data centre and a hub cluster each) and six western hub sites. City data centres offer one
/// GPU model (inference cards), hub sites two; a share of 0 means the model is not offered.
pub const EAST_WEST_SITES: [SiteRow; 12] = [
    SiteRow {
        id: "bj-city",
        region: "jingjinji",
        zone: "CN-BJ",
        lat: 39.9042,
        lon: 116.4074,
        grid: 0.6776,
        green: 0.10,
        electricity: 0.80,
        pue: 1.40,
        rent: 1.15,
        share: 0.06,
        gpus: [("T4", 1.0), ("A10", 0.0)],
        east: true,
    },
    SiteRow {
        id: "zhangjiakou",
        region: "jingjinji",
        zone: "CN-HE",
        lat: 40.7686,
        lon: 114.8860,
        grid: 0.7252,
        green: 0.50,
        electricity: 0.55,
        pue: 1.25,
        rent: 1.05,
        share: 0.08,
        gpus: [("G2", 0.7), ("V100M32", 0.3)],
        east: true,
    },
    SiteRow {
        id: "sh-city",
        region: "yrd",
        zone: "CN-SH",
        lat: 31.2304,
        lon: 121.4737,
        grid: 0.5617,
        green: 0.10,
        electricity: 0.85,
        pue: 1.35,
        rent: 1.15,
        share: 0.06,
        gpus: [("T4", 1.0), ("V100M16", 0.0)],
        east: true,
    },
    SiteRow {
        id: "wuhu",
        region: "yrd",
        zone: "CN-AH",
        lat: 31.3526,
        lon: 118.4330,
        grid: 0.6782,
        green: 0.20,
        electricity: 0.60,
        pue: 1.25,
        rent: 1.05,
        share: 0.05,
        gpus: [("G2", 0.7), ("P100", 0.3)],
        east: true,
    },
    SiteRow {
        id: "gz-city",
        region: "gba",
        zone: "CN-GD",
        lat: 23.1291,
        lon: 113.2644,
        grid: 0.3869,
        green: 0.10,
        electricity: 0.75,
        pue: 1.40,
        rent: 1.15,
        share: 0.05,
        gpus: [("A10", 1.0), ("T4", 0.0)],
        east: true,
    },
    SiteRow {
        id: "shaoguan",
        region: "gba",
        zone: "CN-GD",
        lat: 24.8104,
        lon: 113.5972,
        grid: 0.3869,
        green: 0.30,
        electricity: 0.60,
        pue: 1.25,
        rent: 1.05,
        share: 0.05,
        gpus: [("G2", 0.7), ("V100M16", 0.3)],
        east: true,
    },
    SiteRow {
        id: "hohhot",
        region: "inner-mongolia",
        zone: "CN-NM",
        lat: 40.8424,
        lon: 111.7490,
        grid: 0.6849,
        green: 0.60,
        electricity: 0.38,
        pue: 1.20,
        rent: 1.0,
        share: 0.12,
        gpus: [("G2", 0.7), ("G3", 0.3)],
        east: false,
    },
    SiteRow {
        id: "zhongwei",
        region: "ningxia",
        zone: "CN-NX",
        lat: 37.5149,
        lon: 105.1968,
        grid: 0.5857,
        green: 0.60,
        electricity: 0.36,
        pue: 1.10,
        rent: 1.0,
        share: 0.12,
        gpus: [("G2", 0.7), ("P100", 0.3)],
        east: false,
    },
    SiteRow {
        id: "qingyang",
        region: "gansu",
        zone: "CN-GS",
        lat: 35.7097,
        lon: 107.6432,
        grid: 0.5857,
        green: 0.50,
        electricity: 0.40,
        pue: 1.20,
        rent: 1.0,
        share: 0.10,
        gpus: [("G2", 0.6), ("T4", 0.4)],
        east: false,
    },
    SiteRow {
        id: "guian",
        region: "guizhou",
        zone: "CN-GZ",
        lat: 26.6470,
        lon: 106.6302,
        grid: 0.3869,
        green: 0.50,
        electricity: 0.40,
        pue: 1.20,
        rent: 1.0,
        share: 0.11,
        gpus: [("G2", 0.6), ("V100M32", 0.4)],
        east: false,
    },
    SiteRow {
        id: "tianfu",
        region: "chengyu",
        zone: "CN-SC",
        lat: 30.5728,
        lon: 104.0668,
        grid: 0.1404,
        green: 0.30,
        electricity: 0.45,
        pue: 1.25,
        rent: 1.0,
        share: 0.10,
        gpus: [("G2", 0.6), ("G3", 0.4)],
        east: false,
    },
    SiteRow {
        id: "chongqing",
        region: "chengyu",
        zone: "CN-CQ",
        lat: 29.5630,
        lon: 106.5516,
        grid: 0.2268,
        green: 0.20,
        electricity: 0.50,
        pue: 1.30,
        rent: 1.0,
        share: 0.10,
        gpus: [("T4", 0.5), ("P100", 0.5)],
        east: false,
    },
];

/// Regions and their anchor cities: (id, lat, lon, eastern data-origin weight).
pub const EAST_WEST_REGIONS: [(&str, f64, f64, f64); 8] = [
    ("jingjinji", 39.9042, 116.4074, 0.40),
    ("yrd", 31.2304, 121.4737, 0.35),
    ("gba", 23.1291, 113.2644, 0.25),
    ("inner-mongolia", 40.8424, 111.7490, 0.0),
    ("ningxia", 37.5149, 105.1968, 0.0),
    ("gansu", 35.7097, 107.6432, 0.0),
    ("guizhou", 26.6470, 106.6302, 0.0),
    ("chengyu", 30.5728, 104.0668, 0.0),
];

/// The zone a sovereignty-restricted job from an eastern region must stay in (the city's
/// province): the city data centre of that region.
pub fn home_zone(region: &str) -> Option<&'static str> {
    match region {
        "jingjinji" => Some("CN-BJ"),
        "yrd" => Some("CN-SH"),
        "gba" => Some("CN-GD"),
        _ => None,
    }
}

fn price_config(row: &SiteRow) -> PriceConfig {
    let energy = |watts: f64| watts / 1000.0 * row.pue * row.electricity;
    let mut gpu_hour = BTreeMap::new();
    for (model, _) in row.gpus {
        gpu_hour.insert(
            model.to_owned(),
            GPU_AMORTISATION * row.rent + energy(GPU_WATTS),
        );
    }
    PriceConfig {
        cpu_core_hour: CPU_AMORTISATION * row.rent + energy(CPU_CORE_WATTS),
        memory_gib_hour: MEMORY_AMORTISATION * row.rent + energy(MEMORY_GIB_WATTS),
        gpu_hour,
    }
}

fn site_config(row: &SiteRow, opts: &EastWestOptions, scale: f64) -> SiteConfig {
    let mut gpus = BTreeMap::new();
    for (model, share) in row.gpus {
        gpus.insert(model.to_owned(), opts.gpus * row.share * share * scale);
    }
    SiteConfig {
        id: row.id.to_owned(),
        region: row.region.to_owned(),
        zone: row.zone.to_owned(),
        lat: row.lat,
        lon: row.lon,
        capacity: CapacityConfig {
            cpu_cores: opts.cpu_cores * row.share * scale,
            memory_gib: opts.memory_gib * row.share * scale,
            gpus,
        },
        price: price_config(row),
        electricity_cny_per_kwh: row.electricity,
        grid_kg_per_kwh: row.grid,
        green_share: row.green,
        pue: row.pue,
        availability: 0.999,
    }
}

fn base_config(opts: &EastWestOptions) -> WorldConfig {
    WorldConfig {
        gpu_models: GPU_MODELS
            .iter()
            .map(|m| GpuModelConfig {
                name: (*m).to_owned(),
                watts: GPU_WATTS,
            })
            .collect(),
        power: PowerConfig {
            cpu_core_watts: CPU_CORE_WATTS,
            memory_gib_watts: MEMORY_GIB_WATTS,
        },
        regions: EAST_WEST_REGIONS
            .iter()
            .map(|(id, lat, lon, _)| RegionConfig {
                id: (*id).to_owned(),
                lat: *lat,
                lon: *lon,
            })
            .collect(),
        network: NetworkConfig {
            route_factor: 1.3,
            switching_ms: 1.0,
            inter_region_gbps: opts.inter_region_gbps,
            intra_region_gbps: 400.0,
            tenant_share: opts.tenant_share,
            inter_region_cny_per_gb: opts.inter_region_cny_per_gb,
            links: Vec::new(),
        },
        sites: Vec::new(),
    }
}

/// Builds the documented 12-site east/west world with the given totals.
pub fn east_west_config(opts: &EastWestOptions) -> WorldConfig {
    let mut config = base_config(opts);
    config.sites = EAST_WEST_SITES
        .iter()
        .map(|row| site_config(row, opts, 1.0))
        .collect();
    for (zone, floor) in &opts.zone_floor {
        let in_zone = |s: &&mut SiteConfig| s.zone == *zone;
        let have = config
            .sites
            .iter_mut()
            .filter(in_zone)
            .fold([0.0; 3], |mut acc, s| {
                acc[0] += s.capacity.gpus.values().sum::<f64>();
                acc[1] += s.capacity.cpu_cores;
                acc[2] += s.capacity.memory_gib;
                acc
            });
        let factor: Vec<f64> = (0..3)
            .map(|k| {
                if have[k] > 0.0 && floor[k] > have[k] {
                    floor[k] / have[k]
                } else {
                    1.0
                }
            })
            .collect();
        for site in config.sites.iter_mut().filter(in_zone) {
            site.capacity
                .gpus
                .values_mut()
                .for_each(|g| *g *= factor[0]);
            site.capacity.cpu_cores *= factor[1];
            site.capacity.memory_gib *= factor[2];
        }
    }
    config
}

/// The documented 12-site east/west world.
///
/// The table is a constant that satisfies every validation rule, so the fallback is never taken;
/// it exists only to avoid a panic path.
pub fn east_west(opts: &EastWestOptions) -> World {
    World::from_config(east_west_config(opts)).unwrap_or_else(|_| fallback_world())
}

fn fallback_world() -> World {
    let mut config = base_config(&EastWestOptions::default());
    config.sites = vec![site_config(
        &EAST_WEST_SITES[0],
        &EastWestOptions::default(),
        1.0,
    )];
    config.sites[0].capacity.gpus.clear();
    config.sites[0].price.gpu_hour.clear();
    // A single site with plain numbers: valid by construction; if even this failed the only
    // remaining option would be a panic, which the crate avoids.
    World::from_config(config).unwrap_or_else(|e| unreachable_world(&e.to_string()))
}

#[allow(clippy::panic)]
fn unreachable_world(reason: &str) -> World {
    panic!("built-in site table is invalid: {reason}")
}

/// A seeded world of `n_sites` sites: each is a jittered copy of one row of the east/west table
/// (prices, carbon, PUE ±15 %, capacity ±50 %), with its own zone, spread over the same eight
/// regions. Used for the throughput benchmark (100 sites) and for property tests.
pub fn synthetic_world(n_sites: usize, opts: &EastWestOptions, seed: u64) -> World {
    let mut config = base_config(opts);
    let mut rng = SplitMix64::new(seed);
    let n = n_sites.max(1);
    for i in 0..n {
        let row = &EAST_WEST_SITES[i % EAST_WEST_SITES.len()];
        let jitter =
            |rng: &mut SplitMix64, x: f64, spread: f64| x * rng.uniform(1.0 - spread, 1.0 + spread);
        let mut jittered = *row;
        jittered.grid = jitter(&mut rng, row.grid, 0.15);
        jittered.electricity = jitter(&mut rng, row.electricity, 0.15);
        jittered.pue = jitter(&mut rng, row.pue - 1.0, 0.15) + 1.0;
        let scale = rng.uniform(0.5, 1.5) * 12.0 / n as f64;
        let mut site = site_config(&jittered, opts, scale);
        site.id = format!("{}-{i}", row.id);
        // Zones: the first copy of each row keeps the province; later copies get their own zone
        // (different operators in one province), capped at the zone-mask limit.
        if i >= EAST_WEST_SITES.len() {
            site.zone = format!("{}-{}", row.zone, i % 48);
        }
        config.sites.push(site);
    }
    World::from_config(config).unwrap_or_else(|_| fallback_world())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_sum_to_one_and_capacity_matches_totals() {
        let total: f64 = EAST_WEST_SITES.iter().map(|r| r.share).sum();
        assert!((total - 1.0).abs() < 1e-9);
        let opts = EastWestOptions::default();
        let world = east_west(&opts);
        assert_eq!(world.sites.len(), 12);
        let gpus: u64 = world
            .sites
            .iter()
            .flat_map(|s| s.gpus.iter().map(|g| g.1))
            .sum();
        assert!((gpus as f64 / 1000.0 - opts.gpus).abs() < 0.1);
        let cores: u64 = world.sites.iter().map(|s| s.cpu_milli).sum();
        assert!((cores as f64 / 1000.0 - opts.cpu_cores).abs() < 0.1);
    }

    #[test]
    fn west_is_cheaper_per_gpu_hour_and_tianfu_is_greenest() {
        let world = east_west(&EastWestOptions::default());
        let price = |id: &str| world.sites[world.site_index(id).unwrap()].price_gpu_hour[0];
        assert!(price("zhongwei") < price("bj-city"));
        let greenest = world
            .sites
            .iter()
            .min_by(|a, b| {
                (a.effective_kg_per_kwh() * a.pue).total_cmp(&(b.effective_kg_per_kwh() * b.pue))
            })
            .unwrap();
        assert_eq!(greenest.id, "tianfu");
    }

    #[test]
    fn synthetic_world_is_deterministic_and_sized() {
        let a = synthetic_world(100, &EastWestOptions::default(), 3);
        let b = synthetic_world(100, &EastWestOptions::default(), 3);
        let c = synthetic_world(100, &EastWestOptions::default(), 4);
        assert_eq!(a.sites.len(), 100);
        assert_eq!(a.sites, b.sites);
        assert_ne!(a.sites, c.sites);
        assert!(a.zones.len() <= crate::world::MAX_ZONES);
    }
}
