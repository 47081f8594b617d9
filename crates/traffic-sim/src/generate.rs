//! Seeded generator of grid cities in CityFlow's formats.
//!
//! The layout follows the benchmark nets: signalised intersections `intersection_<x>_<y>` for
//! `x in 1..=cols`, `y in 1..=rows`, a virtual boundary node at the end of every row and column,
//! and two one-way roads `road_<x>_<y>_<dir>` between neighbours (dir 0 east, 1 north, 2 west,
//! 3 south, leaving `intersection_<x>_<y>`). With three lanes, lane 0 turns left, lane 1 goes
//! straight and lane 2 turns right, each lane linking to every lane of the outgoing road. Every
//! intersection gets the benchmark's nine phases: phase 0 (right turns only, 5 s, used as yellow),
//! 1-4 = through E-W, through N-S, left E-W, left N-S (the P15 control phases), 5-8 = through and
//! left of one approach; right turns are always green. The plan gives phases 1-4 `plan_green`
//! seconds and 5-8 none (a 95 s cycle by default; the benchmark nets use 5 + 8 x 30 s).
//!
//! Demand: the horizon is split into as many slices as the profile has weights; each slice gets
//! its share of `vehicles_per_hour`, with departure seconds drawn uniformly inside the slice.
//! A trip starts on a random road leading into the grid (boundary or inner road) and turns at
//! each intersection with the given shares; it ends after a geometric number of roads or at the
//! boundary. Each vehicle is one flow entry with its full route (as in the benchmark files), so
//! CityFlow and this crate route it alike.

use crate::rng::Mt19937;
use crate::spec::{
    ConfigSpec, FlowSpec, IntersectionSpec, LaneLinkSpec, LaneSpec, PhaseSpec, Point, RoadLinkSpec,
    RoadSpec, RoadnetSpec, TurnKind, VehicleSpec,
};
use crate::units::{Meters, MetersPerSecond, Seconds};

/// Parameters of a grid city.
#[derive(Debug, Clone, PartialEq)]
pub struct GridSpec {
    /// Signalised rows (north-south extent).
    pub rows: u32,
    /// Signalised columns (east-west extent).
    pub cols: u32,
    /// Distance between neighbouring intersections.
    pub road_length: Meters,
    /// Length of the roads to the boundary nodes.
    pub boundary_length: Meters,
    /// Lanes per road and direction (3 = left, straight, right).
    pub lanes: u32,
    /// Lane width.
    pub lane_width: Meters,
    /// Speed limit.
    pub max_speed: MetersPerSecond,
    /// Intersection radius (trims the roads).
    pub intersection_width: Meters,
    /// Vehicles per hour over the whole city.
    pub vehicles_per_hour: f64,
    /// Relative demand per slice of the horizon (e.g. 12 five-minute weights).
    pub profile: Vec<f64>,
    /// Demand horizon.
    pub duration: Seconds,
    /// Seed of the generator (routes, departure times).
    pub seed: u32,
    /// Share of right turns at an intersection.
    pub turn_right: f64,
    /// Share of left turns at an intersection.
    pub turn_left: f64,
    /// Roads every trip drives at least (if it does not reach the boundary first).
    pub min_roads: u32,
    /// Mean number of further roads after `min_roads` (geometric).
    pub mean_extra_roads: f64,
    /// Green times of the plan's phases 1-4 (through E-W, through N-S, left E-W, left N-S),
    /// seconds; phase 0 (right turns only) lasts 5 s and phases 5-8 exist for controllers but
    /// get no time in the plan.
    pub plan_green: [f64; 4],
    /// Vehicle parameters.
    pub vehicle: VehicleSpec,
}

impl GridSpec {
    /// A 12 x 20 city (240 signalised intersections) with about 30,000 vehicles in the hour,
    /// benchmark-like roads (400 m blocks, 3 lanes, 40 km/h) and a morning-peak profile.
    pub fn city_240() -> GridSpec {
        GridSpec {
            rows: 12,
            cols: 20,
            road_length: Meters(400.0),
            boundary_length: Meters(300.0),
            lanes: 3,
            lane_width: Meters(4.0),
            max_speed: MetersPerSecond(11.111),
            intersection_width: Meters(15.0),
            vehicles_per_hour: 30_000.0,
            profile: vec![0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.3, 1.2, 1.0, 0.9, 0.8, 0.7],
            duration: Seconds(3600.0),
            seed: 1,
            turn_right: 0.2,
            turn_left: 0.15,
            min_roads: 2,
            mean_extra_roads: 5.0,
            plan_green: [30.0, 30.0, 15.0, 15.0],
            vehicle: VehicleSpec::BENCHMARK,
        }
    }
}

/// Why a grid cannot be generated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum GenerateError {
    /// A parameter is out of range.
    #[error("invalid grid parameter `{field}`: {message}")]
    Invalid {
        /// Parameter name.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// A generated scenario, ready to serialise or to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedScenario {
    /// `config.json`.
    pub config: ConfigSpec,
    /// `roadnet.json`.
    pub roadnet: RoadnetSpec,
    /// `flow.json`.
    pub flows: Vec<FlowSpec>,
}

const DX: [i32; 4] = [1, 0, -1, 0];
const DY: [i32; 4] = [0, 1, 0, -1];

fn road_id(x: i32, y: i32, dir: usize) -> String {
    format!("road_{x}_{y}_{dir}")
}

fn inter_id(x: i32, y: i32) -> String {
    format!("intersection_{x}_{y}")
}

/// `a > b`, false for NaN (spelled as a call so that the negated checks below read plainly).
fn gt(a: f64, b: f64) -> bool {
    a > b
}

/// `a >= b`, false for NaN.
fn ge(a: f64, b: f64) -> bool {
    a >= b
}

/// Generates a grid city.
pub fn generate_grid(spec: &GridSpec) -> Result<GeneratedScenario, GenerateError> {
    let bad = |field, message: &str| {
        Err(GenerateError::Invalid {
            field,
            message: message.into(),
        })
    };
    if spec.rows == 0 || spec.cols == 0 || spec.rows > 200 || spec.cols > 200 {
        return bad("rows/cols", "must be between 1 and 200");
    }
    if spec.lanes == 0 || spec.lanes > 8 {
        return bad("lanes", "must be between 1 and 8");
    }
    let iw = spec.intersection_width.0;
    if !ge(iw, 0.0)
        || !gt(spec.road_length.0, 2.0 * iw + 10.0)
        || !gt(spec.boundary_length.0, iw + 10.0)
    {
        return bad(
            "road_length",
            "roads must be longer than the intersections they join (+10 m)",
        );
    }
    if !gt(spec.lane_width.0, 0.0) || !gt(spec.max_speed.0, 0.0) {
        return bad("lane_width/max_speed", "must be positive");
    }
    if !ge(spec.vehicles_per_hour, 0.0) || !spec.vehicles_per_hour.is_finite() {
        return bad("vehicles_per_hour", "must be a non-negative number");
    }
    if spec.profile.is_empty()
        || spec.profile.iter().any(|w| !ge(*w, 0.0))
        || spec.profile.iter().sum::<f64>() <= 0.0
    {
        return bad(
            "profile",
            "needs at least one weight, all non-negative, some positive",
        );
    }
    if !ge(spec.turn_right, 0.0)
        || !ge(spec.turn_left, 0.0)
        || !ge(1.0, spec.turn_right + spec.turn_left)
    {
        return bad(
            "turn_right/turn_left",
            "shares must be non-negative and sum to at most 1",
        );
    }
    if !ge(spec.mean_extra_roads, 1.0) || spec.min_roads > 1000 {
        return bad(
            "mean_extra_roads/min_roads",
            "mean_extra_roads must be at least 1, min_roads at most 1000",
        );
    }
    if spec.plan_green.iter().any(|g| !ge(*g, 0.0)) || !gt(spec.plan_green.iter().sum::<f64>(), 0.0)
    {
        return bad(
            "plan_green",
            "green times must be non-negative, some positive",
        );
    }
    if !ge(spec.duration.0, 1.0) {
        return bad("duration", "must be at least 1 s");
    }
    let (rows, cols) = (spec.rows as i32, spec.cols as i32);
    let signalised = |x: i32, y: i32| (1..=cols).contains(&x) && (1..=rows).contains(&y);
    let exists = |x: i32, y: i32| {
        signalised(x, y)
            || ((x == 0 || x == cols + 1) && (1..=rows).contains(&y))
            || ((y == 0 || y == rows + 1) && (1..=cols).contains(&x))
    };
    // Node position: signalised nodes on a regular grid, boundary nodes `boundary_length` out.
    let coord = |i: i32, n: i32| -> f64 {
        let l = spec.road_length.0;
        if i == 0 {
            -spec.boundary_length.0
        } else if i == n + 1 {
            f64::from(n - 1) * l + spec.boundary_length.0
        } else {
            f64::from(i - 1) * l
        }
    };
    let pos = |x: i32, y: i32| Point {
        x: coord(x, cols),
        y: coord(y, rows),
    };

    let lanes: Vec<LaneSpec> = (0..spec.lanes)
        .map(|_| LaneSpec {
            width: spec.lane_width.0,
            max_speed: spec.max_speed.0,
        })
        .collect();
    let mut roads = Vec::new();
    let mut nodes = Vec::new();
    for y in 0..=rows + 1 {
        for x in 0..=cols + 1 {
            if exists(x, y) {
                nodes.push((x, y));
            }
        }
    }
    // Roads leave every node towards each existing neighbour, except boundary-to-boundary.
    let road_exists = |x: i32, y: i32, dir: usize| {
        let (nx, ny) = (x + DX[dir], y + DY[dir]);
        exists(x, y) && exists(nx, ny) && (signalised(x, y) || signalised(nx, ny))
    };
    for &(x, y) in &nodes {
        for dir in 0..4 {
            if road_exists(x, y, dir) {
                let (nx, ny) = (x + DX[dir], y + DY[dir]);
                roads.push(RoadSpec {
                    id: road_id(x, y, dir),
                    start_intersection: inter_id(x, y),
                    end_intersection: inter_id(nx, ny),
                    points: vec![pos(x, y), pos(nx, ny)],
                    lanes: lanes.clone(),
                });
            }
        }
    }

    let n = spec.lanes as usize;
    let movement_lanes = |kind: TurnKind| -> Vec<usize> {
        match (kind, n) {
            (TurnKind::Left, _) => vec![0],
            (TurnKind::Right, _) => vec![n - 1],
            (TurnKind::Straight, 1 | 2) => (0..n).collect(),
            (TurnKind::Straight, _) => (1..n - 1).collect(),
        }
    };
    let mut intersections = Vec::new();
    for &(x, y) in &nodes {
        let mut roads_here = Vec::new();
        for dir in 0..4 {
            let (px, py) = (x - DX[dir], y - DY[dir]);
            if road_exists(px, py, dir) {
                roads_here.push(road_id(px, py, dir));
            }
        }
        for dir in 0..4 {
            if road_exists(x, y, dir) {
                roads_here.push(road_id(x, y, dir));
            }
        }
        if !signalised(x, y) {
            intersections.push(IntersectionSpec {
                id: inter_id(x, y),
                point: pos(x, y),
                width: 0.0,
                roads: roads_here,
                road_links: Vec::new(),
                phases: Vec::new(),
                is_virtual: true,
            });
            continue;
        }
        // Movements: for each incoming heading h (arriving from the opposite side), right turn
        // (h - 1), straight (h), left (h + 1).
        let mut road_links = Vec::new();
        // (heading, kind) -> road link index
        let mut index = [[usize::MAX; 3]; 4];
        for h in 0..4 {
            let (px, py) = (x - DX[h], y - DY[h]);
            if !road_exists(px, py, h) {
                continue;
            }
            for (k, (kind, out)) in [
                (TurnKind::Right, (h + 3) % 4),
                (TurnKind::Straight, h),
                (TurnKind::Left, (h + 1) % 4),
            ]
            .into_iter()
            .enumerate()
            {
                if !road_exists(x, y, out) {
                    continue;
                }
                let mut lane_links = Vec::new();
                for s in movement_lanes(kind) {
                    for e in 0..n {
                        lane_links.push(LaneLinkSpec {
                            start_lane_index: s,
                            end_lane_index: e,
                            points: Vec::new(),
                        });
                    }
                }
                index[h][k] = road_links.len();
                road_links.push(RoadLinkSpec {
                    kind,
                    start_road: road_id(px, py, h),
                    end_road: road_id(x, y, out),
                    direction: out as i64,
                    lane_links,
                });
            }
        }
        let rights: Vec<usize> = (0..4)
            .map(|h| index[h][0])
            .filter(|&i| i != usize::MAX)
            .collect();
        // Approaches named by where traffic comes from: W = heading east (0), E = heading west
        // (2), S = heading north (1), N = heading south (3).
        let (w, s_, e, n_) = (0, 1, 2, 3);
        let through = 1;
        let left = 2;
        let pairs: [[(usize, usize); 2]; 8] = [
            [(w, through), (e, through)],
            [(n_, through), (s_, through)],
            [(w, left), (e, left)],
            [(n_, left), (s_, left)],
            [(w, through), (w, left)],
            [(e, through), (e, left)],
            [(s_, through), (s_, left)],
            [(n_, through), (n_, left)],
        ];
        let mut phases = vec![PhaseSpec {
            time: 5.0,
            available_road_links: rights.clone(),
        }];
        for pair in pairs {
            let mut available = rights.clone();
            for (h, k) in pair {
                if index[h][k] != usize::MAX {
                    available.push(index[h][k]);
                }
            }
            phases.push(PhaseSpec {
                time: 30.0,
                available_road_links: available,
            });
        }
        intersections.push(IntersectionSpec {
            id: inter_id(x, y),
            point: pos(x, y),
            width: iw,
            roads: roads_here,
            road_links,
            phases,
            is_virtual: false,
        });
    }

    // Demand.
    let mut rng = Mt19937::new(spec.seed);
    let mut uniform = move || f64::from(rng.next_u32()) / 4_294_967_296.0;
    // Trips start on any road that leads into a signalised intersection (boundary entries and
    // inner roads alike, i.e. parking, side streets) and turn at each intersection with the
    // spec's turning shares; after `min_roads` roads a trip ends at each road with probability
    // `1 / mean_extra_roads`, and always when it reaches the boundary.
    let mut origins = Vec::new();
    for &(x, y) in &nodes {
        for dir in 0..4 {
            if road_exists(x, y, dir) && signalised(x + DX[dir], y + DY[dir]) {
                origins.push((x, y, dir));
            }
        }
    }
    let total_weight: f64 = spec.profile.iter().sum();
    let slices = spec.profile.len();
    let slice_len = spec.duration.0 / slices as f64;
    let total = spec.vehicles_per_hour * spec.duration.0 / 3600.0;
    let mut departures = Vec::new();
    let mut carried = 0.0;
    for (k, w) in spec.profile.iter().enumerate() {
        let exact = total * w / total_weight + carried;
        let count = exact.floor();
        carried = exact - count;
        for _ in 0..count as u64 {
            let t = (k as f64 * slice_len + uniform() * slice_len).floor();
            departures.push(t.min(spec.duration.0 - 1.0) as i64);
        }
    }
    departures.sort_unstable();
    let (p_right, p_left) = (spec.turn_right, spec.turn_left);
    let mut flows = Vec::with_capacity(departures.len());
    for t in departures {
        let (mut x, mut y, mut dir) =
            origins[(uniform() * origins.len() as f64) as usize % origins.len()];
        let mut route = vec![road_id(x, y, dir)];
        loop {
            // Arrive at the road's end.
            x += DX[dir];
            y += DY[dir];
            if !signalised(x, y) {
                break;
            }
            if route.len() >= spec.min_roads as usize && uniform() * spec.mean_extra_roads < 1.0 {
                break;
            }
            let r = uniform();
            let mut choice = if r < p_right {
                (dir + 3) % 4
            } else if r < p_right + p_left {
                (dir + 1) % 4
            } else {
                dir
            };
            if !road_exists(x, y, choice) {
                // Fall back to the first existing movement: straight, right, left.
                choice = [dir, (dir + 3) % 4, (dir + 1) % 4]
                    .into_iter()
                    .find(|&d| road_exists(x, y, d))
                    .unwrap_or(dir);
            }
            dir = choice;
            route.push(road_id(x, y, dir));
        }
        if route.len() < 2 {
            // A trip of one road is invalid in CityFlow; extend it straight on when possible.
            let d = [dir, (dir + 3) % 4, (dir + 1) % 4]
                .into_iter()
                .find(|&d| road_exists(x, y, d));
            match d {
                Some(d) if signalised(x, y) => route.push(road_id(x, y, d)),
                _ => continue,
            }
        }
        flows.push(FlowSpec {
            vehicle: spec.vehicle,
            route,
            interval: 1.0,
            start_time: t,
            end_time: t,
        });
    }

    Ok(GeneratedScenario {
        config: ConfigSpec {
            interval: 1.0,
            seed: 0,
            dir: String::new(),
            roadnet_file: "roadnet.json".into(),
            flow_file: "flow.json".into(),
            rl_traffic_light: false,
            lane_change: true,
            save_replay: false,
        },
        roadnet: RoadnetSpec {
            intersections,
            roads,
        },
        flows,
    })
}
