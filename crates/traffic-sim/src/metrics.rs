//! Episode metrics.
//!
//! `average_travel_time` is CityFlow's `Engine::getAverageTravelTime`, bug for bug: the sum of
//! the travel times of removed vehicles (each counted when it leaves, unless it was the old half
//! of a completed lane change) plus `now - enterTime` for every vehicle in the pool (running,
//! waiting in an entry buffer since its scheduled start, or a lane-change shadow), over their
//! count. The cleaner per-trip figures (`trips`, delay, stops) count each trip once.
//!
//! Queues are counted per *approach*: a road ending at a signalised intersection, its queue
//! being the vehicles on its lanes slower than 0.1 m/s (CityFlow's waiting criterion).

use crate::network::Network;

/// Speed under which a vehicle counts as waiting, m/s (CityFlow's
/// `get_lane_waiting_vehicle_count`).
pub const WAITING_SPEED: f64 = 0.1;

/// Steps between two samples of the per-intersection series.
pub const SERIES_EVERY_STEPS: u64 = 60;

/// One sample of an intersection's series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntersectionSample {
    /// Simulated time, seconds.
    pub time: f64,
    /// Vehicles on the intersection's approach lanes.
    pub vehicles: u32,
    /// Waiting vehicles on its approach lanes.
    pub queue: u32,
    /// Vehicles that entered one of its lane links since the previous sample.
    pub served: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct Accumulators {
    pub(crate) vehicle_steps: u64,
    /// Roads that end at a signalised intersection.
    approach_roads: Vec<u32>,
    /// Per approach (same order), the largest queue seen.
    max_queue: Vec<u32>,
    pub(crate) trips: u64,
    trip_time_sum: f64,
    trip_delay_sum: f64,
    trip_stops_sum: u64,
    /// Per intersection, the series (sampled every `SERIES_EVERY_STEPS` steps).
    series: Vec<Vec<IntersectionSample>>,
    served_since_sample: Vec<u32>,
    scratch_vehicles: Vec<u32>,
    scratch_queue: Vec<u32>,
    /// Per lane, its approach index (or `u32::MAX`).
    lane_approach: Vec<u32>,
    approach_queue: Vec<u32>,
    approach_count: Vec<u32>,
    touched: Vec<u32>,
}

impl Accumulators {
    pub(crate) fn new(net: &Network) -> Self {
        let approach_roads: Vec<u32> = (0..net.roads.len() as u32)
            .filter(|&r| {
                let x = &net.intersections[net.roads[r as usize].end as usize];
                !x.is_virtual && !x.phases.is_empty()
            })
            .collect();
        let n = approach_roads.len();
        let ni = net.intersections.len();
        let mut lane_approach = vec![u32::MAX; net.lanes.len()];
        for (k, &r) in approach_roads.iter().enumerate() {
            for lane in net.roads[r as usize].lanes.clone() {
                lane_approach[lane as usize] = k as u32;
            }
        }
        Accumulators {
            vehicle_steps: 0,
            approach_roads,
            max_queue: vec![0; n],
            trips: 0,
            trip_time_sum: 0.0,
            trip_delay_sum: 0.0,
            trip_stops_sum: 0,
            series: vec![Vec::with_capacity(64); ni],
            served_since_sample: vec![0; ni],
            scratch_vehicles: vec![0; ni],
            scratch_queue: vec![0; ni],
            lane_approach,
            approach_queue: vec![0; n],
            approach_count: vec![0; n],
            touched: Vec::with_capacity(n),
        }
    }

    pub(crate) fn on_vehicle_removed(
        &mut self,
        travel_time: f64,
        delay: f64,
        stops: u32,
        trip: bool,
    ) {
        if trip {
            self.trips += 1;
            self.trip_time_sum += travel_time;
            self.trip_delay_sum += delay;
            self.trip_stops_sum += u64::from(stops);
        }
    }

    pub(crate) fn on_link_entered(&mut self, intersection: u32) {
        self.served_since_sample[intersection as usize] += 1;
    }

    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn after_step(
        &mut self,
        net: &Network,
        lists: &[Vec<u32>],
        occupied: &[u64],
        lane_queue: &[u32],
        active: u64,
        step: u64,
        now: f64,
    ) {
        self.vehicle_steps += active;
        let sample = step.is_multiple_of(SERIES_EVERY_STEPS);
        if sample {
            self.scratch_vehicles.iter_mut().for_each(|x| *x = 0);
            self.scratch_queue.iter_mut().for_each(|x| *x = 0);
        }
        // Only occupied lanes of approaches contribute.
        let nl = net.lane_count() as usize;
        for (w, &bits) in occupied.iter().enumerate() {
            let mut word = bits;
            while word != 0 {
                let lane = w * 64 + word.trailing_zeros() as usize;
                word &= word - 1;
                if lane >= nl {
                    break;
                }
                let k = self.lane_approach[lane];
                if k == u32::MAX {
                    continue;
                }
                let list = &lists[lane];
                // Counted during the step's last walk over the lists (the vehicles with a
                // speed below `WAITING_SPEED`), which nothing changes before this call.
                let queue = lane_queue[lane];
                if self.approach_queue[k as usize] == 0 && self.approach_count[k as usize] == 0 {
                    self.touched.push(k);
                }
                self.approach_queue[k as usize] += queue;
                self.approach_count[k as usize] += list.len() as u32;
            }
        }
        for i in 0..self.touched.len() {
            let k = self.touched[i] as usize;
            let (queue, count) = (self.approach_queue[k], self.approach_count[k]);
            if queue > self.max_queue[k] {
                self.max_queue[k] = queue;
            }
            if sample {
                let x = net.roads[self.approach_roads[k] as usize].end as usize;
                self.scratch_vehicles[x] += count;
                self.scratch_queue[x] += queue;
            }
            self.approach_queue[k] = 0;
            self.approach_count[k] = 0;
        }
        self.touched.clear();
        if sample {
            for (x, inter) in net.intersections.iter().enumerate() {
                if inter.is_virtual || inter.phases.is_empty() {
                    continue;
                }
                self.series[x].push(IntersectionSample {
                    time: now,
                    vehicles: self.scratch_vehicles[x],
                    queue: self.scratch_queue[x],
                    served: self.served_since_sample[x],
                });
                self.served_since_sample[x] = 0;
            }
        }
    }
}

/// Figures of a run so far.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsReport {
    /// Simulated time, seconds.
    pub time: f64,
    /// CityFlow's `get_average_travel_time` (see the module docs), seconds.
    pub average_travel_time: f64,
    /// Sum over steps of the vehicles on the roads, shadows included (CityFlow's
    /// `get_vehicle_count` summed).
    pub vehicle_steps: u64,
    /// Vehicles on the roads now, shadows included (CityFlow's `get_vehicle_count`).
    pub running: u64,
    /// Vehicles created but still in an entry buffer.
    pub waiting_to_enter: u64,
    /// Trips completed (throughput).
    pub trips_finished: u64,
    /// Mean travel time of completed trips, seconds.
    pub average_trip_time_finished: f64,
    /// Mean delay (travel time minus distance over the vehicle's top speed) over completed trips
    /// and trips in progress (including those waiting to enter), seconds.
    pub average_delay: f64,
    /// Mean number of stops over the same vehicles.
    pub average_stops: f64,
    /// Largest queue seen on each approach: (road id, vehicles).
    pub max_queue_per_approach: Vec<(String, u32)>,
    /// Per signalised intersection: id and its series.
    pub intersection_series: Vec<(String, Vec<IntersectionSample>)>,
}

impl crate::Simulation {
    /// Total delay so far, vehicle-seconds: over completed trips and trips in progress
    /// (running or waiting to enter), time since the scheduled start minus distance travelled
    /// over the vehicle's top speed (the sum behind [`MetricsReport::average_delay`]).
    /// O(vehicles), no allocation.
    pub fn total_delay(&self) -> f64 {
        let st = &self.state;
        let now = self.time();
        let mut delay = st.metrics.trip_delay_sum;
        for v in st.vehicles.iter().filter(|v| v.live && v.is_real()) {
            delay += self.delay_so_far(v, now);
        }
        delay
    }

    /// A trip in progress's delay at `now`: time since its scheduled start minus the distance
    /// travelled over its top speed.
    fn delay_so_far(&self, v: &crate::vehicle::Vehicle, now: f64) -> f64 {
        (now - v.enter_time) - v.travelled / self.state.params[v.pid as usize].max_speed
    }

    /// Computes the metrics report (O(vehicles); not called by the step loop).
    pub fn metrics(&self) -> MetricsReport {
        let net = &self.scenario.network;
        let st = &self.state;
        let now = self.time();
        let mut tt = st.cumulative_travel_time;
        let mut n = st.finished_count;
        let mut waiting = 0u64;
        let m = &st.metrics;
        let mut delay = m.trip_delay_sum;
        let mut stops = m.trip_stops_sum;
        let mut people = m.trips;
        for v in st.vehicles.iter().filter(|v| v.live) {
            tt += now - v.enter_time;
            n += 1;
            if !v.running {
                waiting += 1;
            }
            if v.is_real() {
                people += 1;
                delay += self.delay_so_far(v, now);
                stops += u64::from(v.stops);
            }
        }
        let div = |a: f64, b: u64| if b == 0 { 0.0 } else { a / b as f64 };
        MetricsReport {
            time: now,
            average_travel_time: div(tt, n),
            vehicle_steps: m.vehicle_steps,
            running: st.active,
            waiting_to_enter: waiting,
            trips_finished: m.trips,
            average_trip_time_finished: div(m.trip_time_sum, m.trips),
            average_delay: div(delay, people),
            average_stops: div(stops as f64, people),
            max_queue_per_approach: m
                .approach_roads
                .iter()
                .zip(&m.max_queue)
                .map(|(&r, &q)| (net.roads[r as usize].id.clone(), q))
                .collect(),
            intersection_series: net
                .intersections
                .iter()
                .zip(&m.series)
                .filter(|(x, _)| !x.is_virtual && !x.phases.is_empty())
                .map(|(x, s)| (x.id.clone(), s.clone()))
                .collect(),
        }
    }
}
