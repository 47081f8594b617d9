//! The three CityFlow input files as plain data, their parsers and their writers.
//!
//! Parsing only checks types and local rules (finite numbers, non-negative widths, lane indices
//! that exist); cross references between roads and intersections are resolved, with their own
//! errors, when a [`crate::network::Network`] is built. The writers emit the same formats, field
//! names included, so generated scenarios also run in CityFlow.

use serde_json::{Map, Value, json};

use crate::error::LoadError;
use crate::json::{Node, PathSeg, id_label, no_label, parse};

/// A point in the plane, metres.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Point {
    /// East coordinate.
    pub x: f64,
    /// North coordinate.
    pub y: f64,
}

/// `config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigSpec {
    /// Seconds per step (`interval`).
    pub interval: f64,
    /// Seed of the engine's Mersenne Twister (`seed`).
    pub seed: i64,
    /// Prefix of the two file names (`dir`).
    pub dir: String,
    /// `roadnetFile`, relative to `dir`.
    pub roadnet_file: String,
    /// `flowFile`, relative to `dir`.
    pub flow_file: String,
    /// `rlTrafficLight`: phases are set by a controller instead of the roadnet's plan.
    pub rl_traffic_light: bool,
    /// `laneChange` (default false).
    pub lane_change: bool,
    /// `saveReplay` (accepted for compatibility; the replay stream is always available in memory).
    pub save_replay: bool,
}

/// One `lightphases` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseSpec {
    /// Duration in the roadnet's own plan, seconds.
    pub time: f64,
    /// Indices into the intersection's `roadLinks` that are green.
    pub available_road_links: Vec<usize>,
}

/// Kind of movement of a road link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TurnKind {
    /// `turn_right` (CityFlow's enum value 1).
    Right = 1,
    /// `turn_left` (2).
    Left = 2,
    /// `go_straight` (3).
    Straight = 3,
}

impl TurnKind {
    /// The roadnet spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TurnKind::Right => "turn_right",
            TurnKind::Left => "turn_left",
            TurnKind::Straight => "go_straight",
        }
    }
}

/// One lane-to-lane path of a road link.
#[derive(Debug, Clone, PartialEq)]
pub struct LaneLinkSpec {
    /// Lane index on the start road.
    pub start_lane_index: usize,
    /// Lane index on the end road.
    pub end_lane_index: usize,
    /// Polyline; empty means "let the engine build a curve".
    pub points: Vec<Point>,
}

/// One `roadLinks` entry (a movement from one road to another).
#[derive(Debug, Clone, PartialEq)]
pub struct RoadLinkSpec {
    /// Movement kind.
    pub kind: TurnKind,
    /// Incoming road id.
    pub start_road: String,
    /// Outgoing road id.
    pub end_road: String,
    /// `direction` as found in the data (ignored by the model).
    pub direction: i64,
    /// Lane links.
    pub lane_links: Vec<LaneLinkSpec>,
}

/// One `intersections` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct IntersectionSpec {
    /// Id.
    pub id: String,
    /// Centre.
    pub point: Point,
    /// Radius used to trim road ends (ignored for virtual nodes).
    pub width: f64,
    /// Ids of the roads that touch it.
    pub roads: Vec<String>,
    /// Movements.
    pub road_links: Vec<RoadLinkSpec>,
    /// Signal plan.
    pub phases: Vec<PhaseSpec>,
    /// Boundary node without signal.
    pub is_virtual: bool,
}

/// One lane of a road.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LaneSpec {
    /// Width, metres.
    pub width: f64,
    /// Speed limit, m/s.
    pub max_speed: f64,
}

/// One `roads` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct RoadSpec {
    /// Id.
    pub id: String,
    /// Upstream intersection id.
    pub start_intersection: String,
    /// Downstream intersection id.
    pub end_intersection: String,
    /// Centre-line polyline (at least two points).
    pub points: Vec<Point>,
    /// Lanes, innermost first.
    pub lanes: Vec<LaneSpec>,
}

/// `roadnet.json`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RoadnetSpec {
    /// Intersections (signalised and virtual).
    pub intersections: Vec<IntersectionSpec>,
    /// Roads.
    pub roads: Vec<RoadSpec>,
}

/// Vehicle parameters of a flow (CityFlow's `VehicleInfo` as read from a flow file).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VehicleSpec {
    /// `length`, metres.
    pub length: f64,
    /// `width`, metres.
    pub width: f64,
    /// `maxPosAcc`, m/s².
    pub max_pos_acc: f64,
    /// `maxNegAcc`, m/s² (positive number).
    pub max_neg_acc: f64,
    /// `usualPosAcc`, m/s².
    pub usual_pos_acc: f64,
    /// `usualNegAcc`, m/s² (positive number).
    pub usual_neg_acc: f64,
    /// `minGap`, metres.
    pub min_gap: f64,
    /// `maxSpeed`, m/s.
    pub max_speed: f64,
    /// `headwayTime`, seconds.
    pub headway_time: f64,
}

impl VehicleSpec {
    /// The parameters used by every benchmark flow file.
    pub const BENCHMARK: VehicleSpec = VehicleSpec {
        length: 5.0,
        width: 2.0,
        max_pos_acc: 2.0,
        max_neg_acc: 4.5,
        usual_pos_acc: 2.0,
        usual_neg_acc: 4.5,
        min_gap: 2.5,
        max_speed: 11.111,
        headway_time: 2.0,
    };
}

/// One `flow.json` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowSpec {
    /// Vehicle parameters.
    pub vehicle: VehicleSpec,
    /// Road ids: origin, optional anchors, destination.
    pub route: Vec<String>,
    /// Seconds between two vehicles.
    pub interval: f64,
    /// First emission time, seconds (`startTime`, default 0).
    pub start_time: i64,
    /// Last emission time, seconds (`endTime`, default -1 = unbounded).
    pub end_time: i64,
}

// ---------------------------------------------------------------------------------------------
// Parsers

/// Parses `config.json`. `file` is only used in error messages.
pub fn parse_config(file: &str, text: &str) -> Result<ConfigSpec, LoadError> {
    let value = parse(file, text)?;
    let root_seg = PathSeg::Root("");
    let root = Node::root(file, &value, &root_seg);
    root.object()?;
    let interval = root.with_field("interval", |n| n.f64())?;
    if interval <= 0.0 {
        return Err(root.with_field("interval", |n| Ok(n.invalid("interval must be positive")))?);
    }
    let save_replay = root
        .with_opt_field("saveReplay", |n| n.bool())?
        .unwrap_or(false);
    Ok(ConfigSpec {
        interval,
        seed: root.with_field("seed", |n| n.i64())?,
        dir: root
            .with_opt_field("dir", |n| n.str().map(str::to_owned))?
            .unwrap_or_default(),
        roadnet_file: root.with_field("roadnetFile", |n| n.str().map(str::to_owned))?,
        flow_file: root.with_field("flowFile", |n| n.str().map(str::to_owned))?,
        rl_traffic_light: root.with_field("rlTrafficLight", |n| n.bool())?,
        lane_change: root
            .with_opt_field("laneChange", |n| n.bool())?
            .unwrap_or(false),
        save_replay,
    })
}

fn parse_point(n: Node<'_>) -> Result<Point, LoadError> {
    Ok(Point {
        x: n.with_field("x", |v| v.f64())?,
        y: n.with_field("y", |v| v.f64())?,
    })
}

fn parse_string(n: Node<'_>) -> Result<String, LoadError> {
    n.str().map(str::to_owned)
}

fn parse_index(n: Node<'_>) -> Result<usize, LoadError> {
    let i = n.i64()?;
    usize::try_from(i).map_err(|_| n.invalid(format!("index {i} is negative")))
}

/// Parses `roadnet.json`. `file` is only used in error messages.
pub fn parse_roadnet(file: &str, text: &str) -> Result<RoadnetSpec, LoadError> {
    let value = parse(file, text)?;
    let root_seg = PathSeg::Root("");
    let root = Node::root(file, &value, &root_seg);
    root.object()?;
    let roads = root.with_field("roads", |arr| arr.each(id_label, |_, n| parse_road(n)))?;
    let intersections = root.with_field("intersections", |arr| {
        arr.each(id_label, |_, n| parse_intersection(n))
    })?;
    Ok(RoadnetSpec {
        intersections,
        roads,
    })
}

fn parse_road(n: Node<'_>) -> Result<RoadSpec, LoadError> {
    let id = n.with_field("id", parse_string)?;
    let points = n.with_field("points", |arr| arr.each(no_label, |_, p| parse_point(p)))?;
    if points.len() < 2 {
        return Err(n.with_field("points", |p| {
            Ok(p.invalid(format!(
                "a road needs at least 2 points, found {}",
                points.len()
            )))
        })?);
    }
    let lanes = n.with_field("lanes", |arr| {
        arr.each(no_label, |_, lane| {
            let width = lane.with_field("width", |w| {
                let x = w.f64()?;
                if x < 0.0 {
                    Err(w.invalid(format!("negative lane width {x}")))
                } else {
                    Ok(x)
                }
            })?;
            let max_speed = lane.with_field("maxSpeed", |s| {
                let x = s.f64()?;
                if x <= 0.0 {
                    Err(s.invalid(format!("lane speed limit {x} must be positive")))
                } else {
                    Ok(x)
                }
            })?;
            Ok(LaneSpec { width, max_speed })
        })
    })?;
    if lanes.is_empty() {
        return Err(n.with_field("lanes", |l| Ok(l.invalid("a road needs at least one lane")))?);
    }
    Ok(RoadSpec {
        id,
        start_intersection: n.with_field("startIntersection", parse_string)?,
        end_intersection: n.with_field("endIntersection", parse_string)?,
        points,
        lanes,
    })
}

fn parse_intersection(n: Node<'_>) -> Result<IntersectionSpec, LoadError> {
    let id = n.with_field("id", parse_string)?;
    let point = n.with_field("point", parse_point)?;
    let is_virtual = n.with_field("virtual", |v| v.bool())?;
    let roads = n.with_field("roads", |arr| arr.each(no_label, |_, r| parse_string(r)))?;
    if is_virtual {
        // CityFlow skips everything else of a virtual node; so do we (the benchmark files carry
        // dummy light phases there).
        return Ok(IntersectionSpec {
            id,
            point,
            width: 0.0,
            roads,
            road_links: Vec::new(),
            phases: Vec::new(),
            is_virtual,
        });
    }
    let width = n.with_field("width", |w| {
        let x = w.f64()?;
        if x < 0.0 {
            Err(w.invalid(format!("negative intersection width {x}")))
        } else {
            Ok(x)
        }
    })?;
    let road_links = n.with_field("roadLinks", |arr| {
        arr.each(no_label, |_, rl| {
            let kind = rl.with_field("type", |t| match t.str()? {
                "turn_left" => Ok(TurnKind::Left),
                "turn_right" => Ok(TurnKind::Right),
                "go_straight" => Ok(TurnKind::Straight),
                other => Err(t.invalid(format!(
                    "unknown road link type `{other}` (expected turn_left, turn_right or go_straight)"
                ))),
            })?;
            let lane_links = rl.with_field("laneLinks", |arr| {
                arr.each(no_label, |_, ll| {
                    Ok(LaneLinkSpec {
                        start_lane_index: ll.with_field("startLaneIndex", parse_index)?,
                        end_lane_index: ll.with_field("endLaneIndex", parse_index)?,
                        points: ll
                            .with_opt_field("points", |arr| arr.each(no_label, |_, p| parse_point(p)))?
                            .unwrap_or_default(),
                    })
                })
            })?;
            Ok(RoadLinkSpec {
                kind,
                start_road: rl.with_field("startRoad", parse_string)?,
                end_road: rl.with_field("endRoad", parse_string)?,
                direction: rl.with_opt_field("direction", |d| d.i64())?.unwrap_or(0),
                lane_links,
            })
        })
    })?;
    let n_links = road_links.len();
    let phases = n.with_field("trafficLight", |tl| {
        tl.with_field("lightphases", |arr| {
            arr.each(no_label, |_, ph| {
                let time = ph.with_field("time", |t| {
                    let x = t.f64()?;
                    if x < 0.0 { Err(t.invalid(format!("negative phase time {x}"))) } else { Ok(x) }
                })?;
                let available_road_links = ph.with_field("availableRoadLinks", |arr| {
                    arr.each(no_label, |_, i| {
                        let index = parse_index(i)?;
                        if index >= n_links {
                            return Err(i.invalid(format!(
                                "road link index {index} out of range (the intersection has {n_links})"
                            )));
                        }
                        Ok(index)
                    })
                })?;
                Ok(PhaseSpec { time, available_road_links })
            })
        })
    })?;
    if !phases.is_empty() && phases.iter().all(|p| p.time <= 0.0) {
        return Err(n.with_field("trafficLight", |tl| {
            Ok(tl.invalid("every light phase has zero duration; the plan would never advance"))
        })?);
    }
    Ok(IntersectionSpec {
        id,
        point,
        width,
        roads,
        road_links,
        phases,
        is_virtual,
    })
}

/// Parses `flow.json` (an array of flows). `file` is only used in error messages.
pub fn parse_flows(file: &str, text: &str) -> Result<Vec<FlowSpec>, LoadError> {
    let value = parse(file, text)?;
    let root_seg = PathSeg::Root("flows");
    let root = Node::root(file, &value, &root_seg);
    root.each(no_label, |_, n| parse_flow(n))
}

fn positive(n: Node<'_>, what: &str) -> Result<f64, LoadError> {
    let x = n.f64()?;
    if x <= 0.0 {
        Err(n.invalid(format!("{what} must be positive, found {x}")))
    } else {
        Ok(x)
    }
}

fn non_negative(n: Node<'_>, what: &str) -> Result<f64, LoadError> {
    let x = n.f64()?;
    if x < 0.0 {
        Err(n.invalid(format!("{what} must not be negative, found {x}")))
    } else {
        Ok(x)
    }
}

fn parse_flow(n: Node<'_>) -> Result<FlowSpec, LoadError> {
    let vehicle = n.with_field("vehicle", |v| {
        Ok(VehicleSpec {
            length: v.with_field("length", |x| positive(x, "vehicle length"))?,
            width: v.with_field("width", |x| non_negative(x, "vehicle width"))?,
            max_pos_acc: v.with_field("maxPosAcc", |x| positive(x, "maxPosAcc"))?,
            max_neg_acc: v.with_field("maxNegAcc", |x| positive(x, "maxNegAcc"))?,
            usual_pos_acc: v.with_field("usualPosAcc", |x| positive(x, "usualPosAcc"))?,
            usual_neg_acc: v.with_field("usualNegAcc", |x| positive(x, "usualNegAcc"))?,
            min_gap: v.with_field("minGap", |x| non_negative(x, "minGap"))?,
            max_speed: v.with_field("maxSpeed", |x| positive(x, "maxSpeed"))?,
            headway_time: v.with_field("headwayTime", |x| non_negative(x, "headwayTime"))?,
        })
    })?;
    let route = n.with_field("route", |arr| arr.each(no_label, |_, r| parse_string(r)))?;
    if route.is_empty() {
        return Err(n.with_field(
            "route",
            |r| Ok(r.invalid("a route needs at least one road")),
        )?);
    }
    let interval = n.with_field("interval", |x| positive(x, "interval"))?;
    let start_time = n.with_opt_field("startTime", |x| x.i64())?.unwrap_or(0);
    let end_time = n.with_opt_field("endTime", |x| x.i64())?.unwrap_or(-1);
    if interval < 1.0 && start_time != end_time {
        // CityFlow asserts this in Flow's constructor.
        return Err(n.with_field("interval", |x| {
            Ok(x.invalid("an interval below 1 s is only allowed when startTime == endTime"))
        })?);
    }
    Ok(FlowSpec {
        vehicle,
        route,
        interval,
        start_time,
        end_time,
    })
}

// ---------------------------------------------------------------------------------------------
// Writers

fn point_json(p: Point) -> Value {
    json!({ "x": p.x, "y": p.y })
}

impl ConfigSpec {
    /// The configuration the evaluation protocols run a benchmark scenario with: 1 s steps,
    /// seed 0, signals under a controller's command, lane changes on, no replay file.
    pub fn benchmark(roadnet_file: &str, flow_file: &str) -> ConfigSpec {
        ConfigSpec {
            interval: 1.0,
            seed: 0,
            dir: String::new(),
            roadnet_file: roadnet_file.into(),
            flow_file: flow_file.into(),
            rl_traffic_light: true,
            lane_change: true,
            save_replay: false,
        }
    }

    /// Serialises to CityFlow's `config.json` layout.
    pub fn to_json(&self) -> String {
        let v = json!({
            "interval": self.interval,
            "seed": self.seed,
            "dir": self.dir,
            "roadnetFile": self.roadnet_file,
            "flowFile": self.flow_file,
            "rlTrafficLight": self.rl_traffic_light,
            "laneChange": self.lane_change,
            "saveReplay": self.save_replay,
            "roadnetLogFile": "roadnet_log.json",
            "replayLogFile": "replay_log.txt",
        });
        serde_json::to_string_pretty(&v).unwrap_or_default()
    }
}

impl RoadnetSpec {
    /// Serialises to CityFlow's `roadnet.json` layout.
    pub fn to_json(&self) -> String {
        let intersections: Vec<Value> = self
            .intersections
            .iter()
            .map(|i| {
                let road_links: Vec<Value> = i
                    .road_links
                    .iter()
                    .map(|rl| {
                        let lane_links: Vec<Value> = rl
                            .lane_links
                            .iter()
                            .map(|ll| {
                                json!({
                                    "startLaneIndex": ll.start_lane_index,
                                    "endLaneIndex": ll.end_lane_index,
                                    "points": ll.points.iter().copied().map(point_json).collect::<Vec<_>>(),
                                })
                            })
                            .collect();
                        json!({
                            "type": rl.kind.as_str(),
                            "startRoad": rl.start_road,
                            "endRoad": rl.end_road,
                            "direction": rl.direction,
                            "laneLinks": lane_links,
                        })
                    })
                    .collect();
                let phases: Vec<Value> = i
                    .phases
                    .iter()
                    .map(|p| json!({ "time": p.time, "availableRoadLinks": p.available_road_links }))
                    .collect();
                let mut obj = Map::new();
                obj.insert("id".into(), json!(i.id));
                obj.insert("point".into(), point_json(i.point));
                obj.insert("width".into(), json!(i.width));
                obj.insert("roads".into(), json!(i.roads));
                obj.insert("roadLinks".into(), Value::Array(road_links));
                obj.insert(
                    "trafficLight".into(),
                    json!({
                        "roadLinkIndices": (0..i.road_links.len()).collect::<Vec<_>>(),
                        "lightphases": phases,
                    }),
                );
                obj.insert("virtual".into(), json!(i.is_virtual));
                Value::Object(obj)
            })
            .collect();
        let roads: Vec<Value> = self
            .roads
            .iter()
            .map(|r| {
                json!({
                    "id": r.id,
                    "points": r.points.iter().copied().map(point_json).collect::<Vec<_>>(),
                    "lanes": r.lanes.iter().map(|l| json!({"width": l.width, "maxSpeed": l.max_speed})).collect::<Vec<_>>(),
                    "startIntersection": r.start_intersection,
                    "endIntersection": r.end_intersection,
                })
            })
            .collect();
        serde_json::to_string(&json!({ "intersections": intersections, "roads": roads }))
            .unwrap_or_default()
    }
}

/// Serialises flows to CityFlow's `flow.json` layout.
pub fn flows_to_json(flows: &[FlowSpec]) -> String {
    let items: Vec<Value> = flows
        .iter()
        .map(|f| {
            let v = &f.vehicle;
            json!({
                "vehicle": {
                    "length": v.length, "width": v.width,
                    "maxPosAcc": v.max_pos_acc, "maxNegAcc": v.max_neg_acc,
                    "usualPosAcc": v.usual_pos_acc, "usualNegAcc": v.usual_neg_acc,
                    "minGap": v.min_gap, "maxSpeed": v.max_speed, "headwayTime": v.headway_time,
                },
                "route": f.route,
                "interval": f.interval,
                "startTime": f.start_time,
                "endTime": f.end_time,
            })
        })
        .collect();
    serde_json::to_string(&Value::Array(items)).unwrap_or_default()
}
