//! Read-only queries on a running simulation (what controllers, dashboards and tests see).

use crate::Simulation;
use crate::metrics::WAITING_SPEED;
use crate::network::LaneId;
use crate::vehicle::NONE;

/// A vehicle as seen from outside.
#[derive(Debug, Clone, PartialEq)]
pub struct VehicleInfo {
    /// CityFlow-style id, e.g. `flow_12_0`.
    pub id: String,
    /// Speed, m/s.
    pub speed: f64,
    /// Distance from the start of its drivable, metres.
    pub distance: f64,
    /// Lane index when on a lane (`None` inside an intersection).
    pub lane: Option<LaneId>,
    /// Lane-link index when inside an intersection.
    pub lane_link: Option<u32>,
    /// Still in an entry buffer.
    pub waiting_to_enter: bool,
}

impl Simulation {
    /// Vehicles on `lane` (shadows included), waiting vehicles among them, and the length of the
    /// standing queue at its stop line in metres.
    pub fn lane_figures(&self, lane: LaneId) -> (u32, u32, f64) {
        let st = &self.state;
        let Some(list) = st.lists.get(lane as usize) else {
            return (0, 0, 0.0);
        };
        let length = self.scenario.network.lanes[lane as usize].length;
        let mut waiting = 0;
        let mut queue = 0.0;
        let mut in_queue = true;
        for &v in list {
            let veh = &st.vehicles[v as usize];
            if veh.speed < WAITING_SPEED {
                waiting += 1;
                if in_queue {
                    queue = (length - (veh.dis - st.params[veh.pid as usize].len)).max(0.0);
                }
            } else {
                in_queue = false;
            }
        }
        (list.len() as u32, waiting, queue)
    }

    /// Vehicles on `lane` (CityFlow's `get_lane_vehicle_count`).
    pub fn lane_vehicle_count(&self, lane: LaneId) -> u32 {
        self.lane_figures(lane).0
    }

    /// Vehicles on `lane` slower than 0.1 m/s (CityFlow's `get_lane_waiting_vehicle_count`).
    pub fn lane_waiting_count(&self, lane: LaneId) -> u32 {
        self.lane_figures(lane).1
    }

    /// Moving vehicles (at least 0.1 m/s) within `within` metres of `lane`'s stop line.
    pub fn lane_approaching(&self, lane: LaneId, within: f64) -> u32 {
        let st = &self.state;
        let Some(list) = st.lists.get(lane as usize) else {
            return 0;
        };
        let length = self.scenario.network.lanes[lane as usize].length;
        list.iter()
            .filter(|&&v| {
                let veh = &st.vehicles[v as usize];
                veh.speed >= WAITING_SPEED && length - veh.dis <= within
            })
            .count() as u32
    }

    /// Vehicles waiting in `lane`'s entry buffer.
    pub fn lane_entry_queue(&self, lane: LaneId) -> u32 {
        self.state
            .waiting
            .get(lane as usize)
            .map_or(0, |q| q.len() as u32)
    }

    /// Every live vehicle (running or waiting to enter; lane-change shadows excluded), in slot
    /// order.
    pub fn vehicles(&self) -> Vec<VehicleInfo> {
        let net = &self.scenario.network;
        let nl = net.lane_count();
        self.state
            .vehicles
            .iter()
            .filter(|v| v.live && v.is_real())
            .map(|v| VehicleInfo {
                id: vehicle_id(v.name),
                speed: v.speed,
                distance: v.dis,
                lane: (v.running && v.drivable != NONE && v.drivable < nl).then_some(v.drivable),
                lane_link: (v.running && v.drivable != NONE && v.drivable >= nl)
                    .then(|| v.drivable - nl),
                waiting_to_enter: !v.running,
            })
            .collect()
    }
}

pub(crate) fn vehicle_id(name: crate::vehicle::VehicleName) -> String {
    if name.shadow {
        format!("flow_{}_{}_shadow", name.flow, name.seq)
    } else {
        format!("flow_{}_{}", name.flow, name.seq)
    }
}
