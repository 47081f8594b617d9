//! Scripted vehicles (e.g. an emergency vehicle): add a one-off vehicle with an explicit route to
//! a scenario, and follow it while it runs. Additive API; the step loop is unchanged (the vehicle
//! is an ordinary flow of one vehicle, appended after the file's flows).

use crate::Simulation;
use crate::error::LoadError;
use crate::network::{LaneId, RoadId};
use crate::scenario::{Scenario, build_flow};
use crate::spec::{FlowSpec, VehicleSpec};
use crate::vehicle::NONE;

/// Where a followed vehicle is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum VehicleWhere {
    /// Created, still in its first lane's entry buffer.
    WaitingToEnter,
    /// On a lane, `distance` metres from its start.
    Lane {
        /// The lane.
        lane: LaneId,
        /// Its road.
        road: RoadId,
        /// Metres from the start of the lane.
        distance: f64,
    },
    /// Crossing an intersection on a lane link (its road link goes from `from` to `to`).
    Link {
        /// Lane-link index.
        link: u32,
        /// Road it came from.
        from: RoadId,
        /// Road it goes to.
        to: RoadId,
    },
}

impl Scenario {
    /// A copy of the scenario with one more flow that emits a single vehicle at `depart`
    /// (seconds) along `route` (road ids: origin, optional anchors, destination; joined by
    /// shortest paths like the file's flows) with `vehicle`'s parameters. Returns the copy and the
    /// new flow's index: the vehicle is `flow_{index}_0`.
    pub fn with_vehicle(
        &self,
        vehicle: VehicleSpec,
        route: Vec<String>,
        depart: i64,
    ) -> Result<(Scenario, u32), LoadError> {
        let index = self.flows.len();
        let spec = FlowSpec {
            vehicle,
            route,
            interval: 1.0,
            start_time: depart,
            end_time: depart,
        };
        let flow = build_flow(
            &self.network,
            &self.settings,
            "scripted vehicle",
            index,
            spec,
        )?;
        let mut out = self.clone();
        out.flows.push(flow);
        Ok((out, index as u32))
    }
}

impl Simulation {
    /// Vehicle `seq` of flow `flow` while it is live (created and not finished): where it is and
    /// its speed. `None` before it is created and after it has left the network.
    pub fn flow_vehicle(&self, flow: u32, seq: u32) -> Option<(VehicleWhere, f64)> {
        let net = &self.scenario.network;
        let nl = net.lane_count();
        let v = self.state.vehicles.iter().find(|v| {
            v.live && v.is_real() && v.name.flow == flow && v.name.seq == seq && !v.name.shadow
        })?;
        let at = if !v.running || v.drivable == NONE {
            VehicleWhere::WaitingToEnter
        } else if v.drivable < nl {
            VehicleWhere::Lane {
                lane: v.drivable,
                road: net.lanes[v.drivable as usize].road,
                distance: v.dis,
            }
        } else {
            let link = v.drivable - nl;
            let rl = &net.road_links[net.lane_links[link as usize].road_link as usize];
            VehicleWhere::Link {
                link,
                from: rl.start_road,
                to: rl.end_road,
            }
        };
        Some((at, v.speed))
    }
}
