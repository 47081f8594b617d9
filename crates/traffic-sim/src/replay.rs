//! The replay stream: vehicle positions and signal states per step, as plain data a dashboard
//! can play back (the same content as CityFlow's replay log, without the file).

use crate::Simulation;
use crate::geometry::{add, direction_at, point_at, scale, sub};
use crate::signal::Display;
use crate::spec::Point;
use crate::vehicle::NONE;

/// One vehicle in a frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VehiclePose {
    /// Flow index and sequence number (the id is `flow_<flow>_<seq>`).
    pub flow: u32,
    /// Sequence number within the flow.
    pub seq: u32,
    /// Position of the front bumper, metres.
    pub position: Point,
    /// Heading, radians (atan2 of the direction).
    pub heading: f64,
    /// Last lane-change direction: -1 left, 1 right, 0 none.
    pub lane_change: i8,
    /// Length, metres.
    pub length: f64,
    /// Width, metres.
    pub width: f64,
}

/// Signal state of one lane's stop line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaneLight {
    /// Every movement from the lane is green.
    Green,
    /// Some movement from the lane is red.
    Red,
    /// The intersection has at most one phase (CityFlow's "implicit" intersection).
    Implicit,
}

/// One step of the replay.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplayFrame {
    /// Simulated time, seconds.
    pub time: f64,
    /// Running vehicles (shadows excluded).
    pub vehicles: Vec<VehiclePose>,
    /// Per lane ending at a non-virtual intersection: (lane id, light).
    pub lanes: Vec<(u32, LaneLight)>,
    /// Per intersection: what it shows (`None` for virtual nodes).
    pub signals: Vec<Option<Display>>,
}

impl Simulation {
    /// Fills `frame` with the current positions and lights (reusing its vectors).
    pub fn replay_frame(&self, frame: &mut ReplayFrame) {
        let net = &self.scenario.network;
        let st = &self.state;
        frame.time = self.time();
        frame.vehicles.clear();
        for v in st
            .vehicles
            .iter()
            .filter(|v| v.live && v.running && v.is_real())
        {
            if v.drivable == NONE {
                continue;
            }
            let poly = net.drivable_polyline(v.drivable);
            let mut pos = point_at(poly, v.dis);
            if v.offset.abs() >= 1e-8 && net.is_lane(v.drivable) {
                // Between two lanes while changing: interpolate towards the neighbour.
                let lane = &net.lanes[v.drivable as usize];
                let neighbour = if v.offset > 0.0 {
                    v.drivable + 1
                } else {
                    v.drivable.wrapping_sub(1)
                };
                if neighbour < net.lane_count() && net.lanes[neighbour as usize].road == lane.road {
                    let other = point_at(net.drivable_polyline(neighbour), v.dis);
                    let w = (lane.width + net.lanes[neighbour as usize].width) / 2.0;
                    let share = if w > 0.0 { v.offset.abs() / w } else { 0.0 };
                    pos = add(scale(other, share), scale(pos, 1.0 - share));
                }
            }
            let dir = direction_at(poly, v.dis);
            frame.vehicles.push(VehiclePose {
                flow: v.name.flow,
                seq: v.name.seq,
                position: pos,
                heading: dir.y.atan2(dir.x),
                lane_change: v.lc.last_dir.clamp(-1, 1) as i8,
                length: st.params[v.pid as usize].len,
                width: st.params[v.pid as usize].width,
            });
        }
        frame.lanes.clear();
        for (l, lane) in net.lanes.iter().enumerate() {
            let x = &net.intersections[net.roads[lane.road as usize].end as usize];
            if x.is_virtual {
                continue;
            }
            let light = if x.phases.len() <= 1 {
                LaneLight::Implicit
            } else if net.out_links(l as u32).iter().all(|&k| self.link_green(k)) {
                LaneLight::Green
            } else {
                LaneLight::Red
            };
            frame.lanes.push((l as u32, light));
        }
        frame.signals.clear();
        for (i, x) in net.intersections.iter().enumerate() {
            frame
                .signals
                .push((!x.is_virtual && !x.phases.is_empty()).then(|| self.display(i as u32)));
        }
        let _ = sub;
    }
}
