//! The compiled road network: roads, lanes, lane links, intersections and crossing points, all in
//! flat vectors addressed by `u32` indices.
//!
//! A *drivable* is either a lane or a lane link (the path through an intersection). Drivable ids
//! put every lane first (`0..lanes`) and every lane link after (`lanes..lanes+links`), in
//! CityFlow's order (roads in file order, their lanes inner to outer; intersections in file
//! order, their road links and lane links in file order). Several per-step loops depend on that
//! order (entry buffers are served lane by lane, vehicles are re-inserted drivable by drivable),
//! so it is part of the model.

use std::collections::BTreeMap;
use std::ops::Range;

use crate::error::LoadError;
use crate::geometry::{
    direction_at, first_crossing, lane_link_curve, lane_polylines, point_at, polyline_length,
};
use crate::spec::{Point, RoadnetSpec, TurnKind};

/// Index of a road.
pub type RoadId = u32;
/// Index of a lane (also its drivable id).
pub type LaneId = u32;
/// Index of an intersection.
pub type IntersectionId = u32;
/// Index of a drivable: lanes first, then lane links.
pub type DrivableId = u32;

/// A directed road between two intersections.
#[derive(Debug, Clone)]
pub struct Road {
    /// Id from the roadnet.
    pub id: String,
    /// Upstream intersection.
    pub start: IntersectionId,
    /// Downstream intersection.
    pub end: IntersectionId,
    /// Its lanes (lane ids), innermost first.
    pub lanes: Range<u32>,
    /// Length of the raw centre line (before trimming); sets the lane-change segment size.
    pub centre_length: f64,
    /// Mean lane length; the router's edge cost.
    pub average_length: f64,
}

/// A lane of a road.
#[derive(Debug, Clone)]
pub struct Lane {
    /// Owning road.
    pub road: RoadId,
    /// 0 = innermost.
    pub index: u32,
    /// Width, metres.
    pub width: f64,
    /// Speed limit, m/s.
    pub max_speed: f64,
    /// Length after trimming by the intersections, metres.
    pub length: f64,
    /// Lane links leaving this lane (indices into `Network::lane_lane_links`).
    pub out_links: Range<u32>,
    /// Number of lane-change segments (CityFlow's `Segment`s, about 70 m each).
    pub segments: u32,
}

/// A lane-to-lane path through an intersection.
#[derive(Debug, Clone)]
pub struct LaneLink {
    /// Owning road link.
    pub road_link: u32,
    /// Lane it starts from.
    pub start_lane: LaneId,
    /// Lane it ends on.
    pub end_lane: LaneId,
    /// Length of its polyline, metres.
    pub length: f64,
    /// Its crossings with other lane links of the intersection, sorted by distance along this
    /// link (indices into `Network::cross_refs`).
    pub crosses: Range<u32>,
    /// Left or right turn (vehicles slow to the turn speed).
    pub is_turn: bool,
    /// Movement kind, used by the yield rule (straight > left > right).
    pub kind: TurnKind,
}

/// A movement from one road to another at an intersection.
#[derive(Debug, Clone)]
pub struct RoadLink {
    /// Intersection it belongs to.
    pub intersection: IntersectionId,
    /// Index among the intersection's road links (what light phases refer to).
    pub index: u32,
    /// Incoming road.
    pub start_road: RoadId,
    /// Outgoing road.
    pub end_road: RoadId,
    /// Movement kind.
    pub kind: TurnKind,
    /// Its lane links (drivable ids are `lanes + i`).
    pub lane_links: Range<u32>,
}

/// A light phase: which road links of the intersection are green, and for how long in the
/// roadnet's own plan.
#[derive(Debug, Clone)]
pub struct Phase {
    /// Seconds in the fixed plan.
    pub time: f64,
    /// `green[i]` for the intersection's road link `i`.
    pub green: Vec<bool>,
}

/// An intersection (node).
#[derive(Debug, Clone)]
pub struct Intersection {
    /// Id from the roadnet.
    pub id: String,
    /// Centre.
    pub point: Point,
    /// Trim radius.
    pub width: f64,
    /// Boundary node without signal.
    pub is_virtual: bool,
    /// Roads touching it, in file order (the router explores them in this order).
    pub roads: Vec<RoadId>,
    /// Its road links (global indices).
    pub road_links: Range<u32>,
    /// Its lane links (lane-link indices, i.e. drivable id minus the lane count).
    pub lane_links: Range<u32>,
    /// Its crossing points (indices into `Network::crosses`).
    pub crosses: Range<u32>,
    /// Light phases.
    pub phases: Vec<Phase>,
}

/// A crossing point of two lane links of one intersection.
#[derive(Debug, Clone, Copy)]
pub struct Cross {
    /// The two lane links (lane-link indices).
    pub lane_links: [u32; 2],
    /// Distance of the point along each of them.
    pub distance: [f64; 2],
}

/// A lane link's view of one of its crosses: which cross, and which side (0 or 1) the link is.
#[derive(Debug, Clone, Copy)]
pub struct CrossRef {
    /// Index into `Network::crosses`.
    pub cross: u32,
    /// The link's side in that cross.
    pub side: u8,
    /// Distance of the cross along this link (copied for locality).
    pub distance: f64,
}

/// The compiled network.
#[derive(Debug, Clone)]
pub struct Network {
    /// Roads in file order.
    pub roads: Vec<Road>,
    /// Lanes, road by road.
    pub lanes: Vec<Lane>,
    /// Lane links, intersection by intersection.
    pub lane_links: Vec<LaneLink>,
    /// Road links, intersection by intersection.
    pub road_links: Vec<RoadLink>,
    /// Intersections in file order.
    pub intersections: Vec<Intersection>,
    /// Crossing points, intersection by intersection.
    pub crosses: Vec<Cross>,
    /// Per lane link, its sorted crosses (see [`LaneLink::crosses`]).
    pub cross_refs: Vec<CrossRef>,
    /// Per lane, the lane links leaving it (see [`Lane::out_links`]).
    pub lane_lane_links: Vec<u32>,
    /// Polyline of every drivable (`drivable_points[d]` is a range into `points`).
    drivable_points: Vec<Range<u32>>,
    points: Vec<Point>,
    /// Per drivable, its length and speed limit (copies of the lane's or lane link's, one
    /// lookup without the lane / lane-link branch in the simulation's hot loops).
    drivable_dims: Vec<[f64; 2]>,
    road_index: BTreeMap<String, RoadId>,
    intersection_index: BTreeMap<String, IntersectionId>,
}

/// Which lane-change segment a distance falls in is `floor(dis / (length / segments))`; CityFlow
/// sizes segments for ten default vehicles (5 m long + 2 m gap).
const SEGMENT_INTERVAL: f64 = (5.0 + 2.0) * 10.0;

impl Network {
    /// Compiles a parsed roadnet. `file` names the roadnet file in error messages.
    pub fn build(file: &str, spec: &RoadnetSpec) -> Result<Network, LoadError> {
        let invalid = |path: String, message: String| LoadError::Invalid {
            file: file.to_owned(),
            path,
            message,
        };
        let unknown = |path: String, kind: &'static str, id: &str| LoadError::UnknownReference {
            file: file.to_owned(),
            path,
            kind,
            id: id.to_owned(),
        };

        let mut road_index = BTreeMap::new();
        for (i, r) in spec.roads.iter().enumerate() {
            if road_index.insert(r.id.clone(), i as RoadId).is_some() {
                return Err(invalid(
                    format!("roads[{i}] ({})", r.id),
                    "duplicate road id".into(),
                ));
            }
        }
        let mut intersection_index = BTreeMap::new();
        for (i, x) in spec.intersections.iter().enumerate() {
            if intersection_index
                .insert(x.id.clone(), i as IntersectionId)
                .is_some()
            {
                return Err(invalid(
                    format!("intersections[{i}] ({})", x.id),
                    "duplicate intersection id".into(),
                ));
            }
        }

        // Roads and lanes.
        let mut roads = Vec::with_capacity(spec.roads.len());
        let mut lanes = Vec::new();
        for (i, r) in spec.roads.iter().enumerate() {
            let path = format!("roads[{i}] ({})", r.id);
            let start = *intersection_index
                .get(&r.start_intersection)
                .ok_or_else(|| {
                    unknown(
                        format!("{path}.startIntersection"),
                        "intersection",
                        &r.start_intersection,
                    )
                })?;
            let end = *intersection_index.get(&r.end_intersection).ok_or_else(|| {
                unknown(
                    format!("{path}.endIntersection"),
                    "intersection",
                    &r.end_intersection,
                )
            })?;
            let centre_length = polyline_length(&r.points);
            if !centre_length.is_finite() || centre_length <= 0.0 {
                return Err(invalid(
                    format!("{path}.points"),
                    format!("the road's length {centre_length} is not a positive finite number"),
                ));
            }
            if r.points.windows(2).any(|w| w[0] == w[1]) {
                return Err(invalid(
                    format!("{path}.points"),
                    "two consecutive points coincide".into(),
                ));
            }
            let trim_at = |x: IntersectionId| {
                let i = &spec.intersections[x as usize];
                if i.is_virtual { 0.0 } else { i.width }
            };
            let first_seg = polyline_length(&r.points[..2]);
            let last_seg = polyline_length(&r.points[r.points.len() - 2..]);
            let (ts, te) = (trim_at(start), trim_at(end));
            let too_short = if r.points.len() == 2 {
                ts + te >= first_seg
            } else {
                ts >= first_seg || te >= last_seg
            };
            if too_short {
                return Err(invalid(
                    format!("{path}.points"),
                    format!(
                        "negative length: the road is shorter than the intersection widths it is trimmed by ({ts} m + {te} m)"
                    ),
                ));
            }
            let first = lanes.len() as u32;
            for (k, l) in r.lanes.iter().enumerate() {
                lanes.push(Lane {
                    road: i as RoadId,
                    index: k as u32,
                    width: l.width,
                    max_speed: l.max_speed,
                    length: 0.0,
                    out_links: 0..0,
                    segments: 1,
                });
            }
            roads.push(Road {
                id: r.id.clone(),
                start,
                end,
                lanes: first..lanes.len() as u32,
                centre_length,
                average_length: 0.0,
            });
        }

        // Lane polylines: CityFlow first builds them untrimmed (intersection widths are not read
        // yet) and derives the automatic lane-link curves from those; then it trims them.
        let widths: Vec<Vec<f64>> = spec
            .roads
            .iter()
            .map(|r| r.lanes.iter().map(|l| l.width).collect())
            .collect();
        let untrimmed: Vec<Vec<Vec<Point>>> = spec
            .roads
            .iter()
            .zip(&widths)
            .map(|(r, w)| lane_polylines(&r.points, w, Some(0.0), Some(0.0)))
            .collect();
        let width_of = |x: IntersectionId| {
            let i = &spec.intersections[x as usize];
            if i.is_virtual { 0.0 } else { i.width }
        };
        let trim = |x: IntersectionId| {
            let i = &spec.intersections[x as usize];
            if i.is_virtual { None } else { Some(i.width) }
        };
        let mut lane_points: Vec<Vec<Point>> = Vec::with_capacity(lanes.len());
        for (i, r) in spec.roads.iter().enumerate() {
            let road = &roads[i];
            let polys = lane_polylines(&r.points, &widths[i], trim(road.start), trim(road.end));
            for (k, poly) in polys.into_iter().enumerate() {
                let length = polyline_length(&poly);
                if !length.is_finite() || length <= 0.0 {
                    return Err(invalid(
                        format!("roads[{i}] ({}).lanes[{k}]", r.id),
                        format!(
                            "negative or zero lane length {length:.3} m after trimming by the intersection widths"
                        ),
                    ));
                }
                lanes[road.lanes.start as usize + k].length = length;
                lane_points.push(poly);
            }
        }
        for road in &mut roads {
            let n = road.lanes.len() as f64;
            let sum: f64 = road.lanes.clone().map(|l| lanes[l as usize].length).sum();
            road.average_length = sum / n;
            let segments = ((road.centre_length / SEGMENT_INTERVAL).ceil() as u32).max(1);
            for l in road.lanes.clone() {
                lanes[l as usize].segments = segments;
            }
        }

        // Intersections, road links, lane links.
        let mut intersections = Vec::with_capacity(spec.intersections.len());
        let mut road_links = Vec::new();
        let mut lane_links: Vec<LaneLink> = Vec::new();
        let mut link_points: Vec<Vec<Point>> = Vec::new();
        for (xi, x) in spec.intersections.iter().enumerate() {
            let path = format!("intersections[{xi}] ({})", x.id);
            let mut road_ids = Vec::with_capacity(x.roads.len());
            for (k, id) in x.roads.iter().enumerate() {
                let r = *road_index
                    .get(id)
                    .ok_or_else(|| unknown(format!("{path}.roads[{k}]"), "road", id))?;
                road_ids.push(r);
            }
            let rl_first = road_links.len() as u32;
            let ll_first = lane_links.len() as u32;
            for (k, rl) in x.road_links.iter().enumerate() {
                let rpath = format!("{path}.roadLinks[{k}]");
                let start_road = *road_index
                    .get(&rl.start_road)
                    .ok_or_else(|| unknown(format!("{rpath}.startRoad"), "road", &rl.start_road))?;
                let end_road = *road_index
                    .get(&rl.end_road)
                    .ok_or_else(|| unknown(format!("{rpath}.endRoad"), "road", &rl.end_road))?;
                let (sr, er) = (&roads[start_road as usize], &roads[end_road as usize]);
                if sr.end != xi as u32 {
                    return Err(invalid(
                        format!("{rpath}.startRoad"),
                        format!(
                            "dangling road link: road `{}` does not end at this intersection",
                            sr.id
                        ),
                    ));
                }
                if er.start != xi as u32 {
                    return Err(invalid(
                        format!("{rpath}.endRoad"),
                        format!(
                            "dangling road link: road `{}` does not start at this intersection",
                            er.id
                        ),
                    ));
                }
                let ll_begin = lane_links.len() as u32;
                for (m, ll) in rl.lane_links.iter().enumerate() {
                    let lpath = format!("{rpath}.laneLinks[{m}]");
                    if ll.start_lane_index >= sr.lanes.len() {
                        return Err(invalid(
                            format!("{lpath}.startLaneIndex"),
                            format!(
                                "dangling lane link: lane {} does not exist on road `{}` ({} lanes)",
                                ll.start_lane_index,
                                sr.id,
                                sr.lanes.len()
                            ),
                        ));
                    }
                    if ll.end_lane_index >= er.lanes.len() {
                        return Err(invalid(
                            format!("{lpath}.endLaneIndex"),
                            format!(
                                "dangling lane link: lane {} does not exist on road `{}` ({} lanes)",
                                ll.end_lane_index,
                                er.id,
                                er.lanes.len()
                            ),
                        ));
                    }
                    let start_lane = sr.lanes.start + ll.start_lane_index as u32;
                    let end_lane = er.lanes.start + ll.end_lane_index as u32;
                    let points = if ll.points.is_empty() {
                        let su = &untrimmed[start_road as usize][ll.start_lane_index];
                        let eu = &untrimmed[end_road as usize][ll.end_lane_index];
                        let s_len = polyline_length(su);
                        let s_w = width_of(sr.end);
                        let e_w = width_of(er.start);
                        lane_link_curve(
                            point_at(su, s_len - s_w),
                            direction_at(su, s_len - s_w),
                            s_w,
                            point_at(eu, 0.0 + e_w),
                            direction_at(eu, 0.0 + e_w),
                            e_w,
                        )
                    } else if ll.points.len() == 1 {
                        return Err(invalid(
                            format!("{lpath}.points"),
                            "a lane link polyline needs at least 2 points (or none)".into(),
                        ));
                    } else {
                        ll.points.clone()
                    };
                    let length = polyline_length(&points);
                    if !length.is_finite() {
                        return Err(invalid(
                            format!("{lpath}.points"),
                            "degenerate lane link".into(),
                        ));
                    }
                    lane_links.push(LaneLink {
                        road_link: road_links.len() as u32,
                        start_lane,
                        end_lane,
                        length,
                        crosses: 0..0,
                        is_turn: matches!(rl.kind, TurnKind::Left | TurnKind::Right),
                        kind: rl.kind,
                    });
                    link_points.push(points);
                }
                road_links.push(RoadLink {
                    intersection: xi as u32,
                    index: k as u32,
                    start_road,
                    end_road,
                    kind: rl.kind,
                    lane_links: ll_begin..lane_links.len() as u32,
                });
            }
            let n_links = x.road_links.len();
            let phases = x
                .phases
                .iter()
                .map(|p| {
                    let mut green = vec![false; n_links];
                    for &a in &p.available_road_links {
                        if let Some(g) = green.get_mut(a) {
                            *g = true;
                        }
                    }
                    Phase {
                        time: p.time,
                        green,
                    }
                })
                .collect();
            intersections.push(Intersection {
                id: x.id.clone(),
                point: x.point,
                width: if x.is_virtual { 0.0 } else { x.width },
                is_virtual: x.is_virtual,
                roads: road_ids,
                road_links: rl_first..road_links.len() as u32,
                lane_links: ll_first..lane_links.len() as u32,
                crosses: 0..0,
                phases,
            });
        }

        // Lanes' outgoing links, in load order.
        let mut per_lane: Vec<Vec<u32>> = vec![Vec::new(); lanes.len()];
        for (i, ll) in lane_links.iter().enumerate() {
            per_lane[ll.start_lane as usize].push(i as u32);
        }
        let mut lane_lane_links = Vec::with_capacity(lane_links.len());
        for (lane, links) in lanes.iter_mut().zip(&per_lane) {
            let first = lane_lane_links.len() as u32;
            lane_lane_links.extend_from_slice(links);
            lane.out_links = first..lane_lane_links.len() as u32;
        }

        // Crossing points: every pair of lane links of an intersection, first crossing only.
        let mut crosses = Vec::new();
        let mut per_link: Vec<Vec<CrossRef>> = vec![Vec::new(); lane_links.len()];
        for inter in &mut intersections {
            let first = crosses.len() as u32;
            let links: Vec<u32> = inter.lane_links.clone().collect();
            for (i, &a) in links.iter().enumerate() {
                for &b in &links[i + 1..] {
                    if let Some((da, db)) =
                        first_crossing(&link_points[a as usize], &link_points[b as usize])
                    {
                        let c = crosses.len() as u32;
                        crosses.push(Cross {
                            lane_links: [a, b],
                            distance: [da, db],
                        });
                        per_link[a as usize].push(CrossRef {
                            cross: c,
                            side: 0,
                            distance: da,
                        });
                        per_link[b as usize].push(CrossRef {
                            cross: c,
                            side: 1,
                            distance: db,
                        });
                    }
                }
            }
            inter.crosses = first..crosses.len() as u32;
        }
        let mut cross_refs = Vec::new();
        for (ll, refs) in lane_links.iter_mut().zip(per_link.iter_mut()) {
            // Stable, so crosses at equal distances keep their creation order (CityFlow's
            // std::sort behaves the same way on the short lists it sees: insertion sort).
            refs.sort_by(|p, q| p.distance.total_cmp(&q.distance));
            let first = cross_refs.len() as u32;
            cross_refs.extend_from_slice(refs);
            ll.crosses = first..cross_refs.len() as u32;
        }

        // Flat polyline storage.
        let mut points = Vec::new();
        let mut drivable_points = Vec::with_capacity(lanes.len() + lane_links.len());
        for poly in lane_points.iter().chain(link_points.iter()) {
            let first = points.len() as u32;
            points.extend_from_slice(poly);
            drivable_points.push(first..points.len() as u32);
        }

        let drivable_dims = lanes
            .iter()
            .map(|l| [l.length, l.max_speed])
            .chain(lane_links.iter().map(|l| [l.length, 10000.0]))
            .collect();
        Ok(Network {
            drivable_dims,
            roads,
            lanes,
            lane_links,
            road_links,
            intersections,
            crosses,
            cross_refs,
            lane_lane_links,
            drivable_points,
            points,
            road_index,
            intersection_index,
        })
    }

    /// Number of lanes (= first lane-link drivable id).
    #[inline]
    pub fn lane_count(&self) -> u32 {
        self.lanes.len() as u32
    }

    /// Number of drivables.
    #[inline]
    pub fn drivable_count(&self) -> u32 {
        (self.lanes.len() + self.lane_links.len()) as u32
    }

    /// Is this drivable a lane?
    #[inline]
    pub fn is_lane(&self, d: DrivableId) -> bool {
        d < self.lane_count()
    }

    /// Length of a drivable, metres.
    #[inline]
    pub fn drivable_length(&self, d: DrivableId) -> f64 {
        self.drivable_dims[d as usize][0]
    }

    /// Speed limit of a drivable (CityFlow gives lane links 10000 m/s, i.e. none).
    #[inline]
    pub fn drivable_max_speed(&self, d: DrivableId) -> f64 {
        self.drivable_dims[d as usize][1]
    }

    /// Width of a drivable (lane links are 4 m in CityFlow).
    #[inline]
    pub fn drivable_width(&self, d: DrivableId) -> f64 {
        let nl = self.lane_count();
        if d < nl {
            self.lanes[d as usize].width
        } else {
            4.0
        }
    }

    /// Polyline of a drivable.
    pub fn drivable_polyline(&self, d: DrivableId) -> &[Point] {
        match self.drivable_points.get(d as usize) {
            Some(r) => &self.points[r.start as usize..r.end as usize],
            None => &[],
        }
    }

    /// Lane links leaving a lane (lane-link indices).
    #[inline]
    pub fn out_links(&self, lane: LaneId) -> &[u32] {
        let r = &self.lanes[lane as usize].out_links;
        &self.lane_lane_links[r.start as usize..r.end as usize]
    }

    /// Sorted crosses of a lane link.
    #[inline]
    pub fn link_crosses(&self, link: u32) -> &[CrossRef] {
        let r = &self.lane_links[link as usize].crosses;
        &self.cross_refs[r.start as usize..r.end as usize]
    }

    /// Road by id.
    pub fn road_by_id(&self, id: &str) -> Option<RoadId> {
        self.road_index.get(id).copied()
    }

    /// Intersection by id.
    pub fn intersection_by_id(&self, id: &str) -> Option<IntersectionId> {
        self.intersection_index.get(id).copied()
    }

    /// CityFlow's lane id `<road>_<index>`.
    pub fn lane_name(&self, lane: LaneId) -> String {
        let l = &self.lanes[lane as usize];
        format!("{}_{}", self.roads[l.road as usize].id, l.index)
    }

    /// Does any lane of `from` have a link into `to`? (CityFlow's `Road::connectedToRoad`.)
    pub fn road_connects(&self, from: RoadId, to: RoadId) -> bool {
        self.roads[from as usize]
            .lanes
            .clone()
            .any(|l| self.lane_links_to_road(l, to).next().is_some())
    }

    /// Lane links from `lane` whose end lane is on `road`, in the lane's link order.
    pub fn lane_links_to_road(&self, lane: LaneId, road: RoadId) -> impl Iterator<Item = u32> + '_ {
        self.out_links(lane).iter().copied().filter(move |&k| {
            self.lanes[self.lane_links[k as usize].end_lane as usize].road == road
        })
    }

    /// Shortest path by mean lane length from `start` to `end` (exclusive of `start`), or `None`
    /// when `end` cannot be reached. Ties are broken by road index, so the result is
    /// deterministic (CityFlow leaves them to its heap).
    pub fn shortest_path(&self, start: RoadId, end: RoadId) -> Option<Vec<RoadId>> {
        let n = self.roads.len();
        let mut dist = vec![f64::INFINITY; n];
        let mut from = vec![u32::MAX; n];
        let mut done = vec![false; n];
        let mut heap = std::collections::BinaryHeap::new();
        dist[start as usize] = 0.0;
        heap.push(HeapItem {
            cost: 0.0,
            road: start,
        });
        let mut reached = false;
        while let Some(HeapItem { cost, road }) = heap.pop() {
            if road == end {
                reached = true;
                break;
            }
            if done[road as usize] {
                continue;
            }
            done[road as usize] = true;
            let x = &self.intersections[self.roads[road as usize].end as usize];
            for &adj in &x.roads {
                if !self.road_connects(road, adj) {
                    continue;
                }
                let nd = cost + self.roads[adj as usize].average_length;
                if nd < dist[adj as usize] {
                    dist[adj as usize] = nd;
                    from[adj as usize] = road;
                    heap.push(HeapItem {
                        cost: nd,
                        road: adj,
                    });
                }
            }
        }
        if !reached {
            return None;
        }
        let mut path = vec![end];
        let mut cur = end;
        while from[cur as usize] != start && from[cur as usize] != u32::MAX {
            cur = from[cur as usize];
            path.push(cur);
        }
        path.reverse();
        Some(path)
    }
}

#[derive(PartialEq)]
struct HeapItem {
    cost: f64,
    road: RoadId,
}

impl Eq for HeapItem {}

impl Ord for HeapItem {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Min-heap on cost, then on road index.
        other
            .cost
            .total_cmp(&self.cost)
            .then_with(|| other.road.cmp(&self.road))
    }
}

impl PartialOrd for HeapItem {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
