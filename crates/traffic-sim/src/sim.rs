//! The simulation state and its step.
//!
//! One [`Simulation::step`] runs CityFlow's `Engine::nextStep` phases in the same order:
//!
//! 1. flows emit vehicles (into the vehicle pool, drawing priorities from the engine RNG);
//! 2. new vehicles get their first lane and join that lane's entry buffer;
//! 3. each lane admits the head of its entry buffer if there is room;
//! 4. with lane changing on: lane segments are rebuilt, vehicles signal and start lane changes
//!    (inserting a *shadow* on the target lane), leaders are recomputed;
//! 5. crossing points are told which vehicle approaches them on each lane link (lazily, the
//!    first time a speed decision asks about a lane link);
//! 6. every running vehicle computes its next speed and distance (buffered);
//! 7. vehicles that left their drivable are moved to the next one (sorted by distance), finished
//!    ones are removed;
//! 8. buffers are applied; 9. leaders are recomputed; 10. signal plans advance.
//!
//! Vehicles live in a slot vector and refer to each other by slot index; per-drivable vehicle
//! lists hold slot indices in CityFlow's list order (front vehicle first). CityFlow iterates its
//! vehicles in pointer order (an `std::set<Vehicle*>`), which is not reproducible; we iterate in
//! slot order, which is deterministic. Nothing in the step allocates once the vectors have grown
//! to the scenario's peak (capacities are reserved up front from the network size).

use std::collections::HashSet;
use std::collections::VecDeque;
use std::collections::hash_map::DefaultHasher;
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use crate::geometry::{max2, min2};
use crate::network::{DrivableId, Network};
use crate::rng::Mt19937;
use crate::scenario::Scenario;
use crate::signal::SignalState;
use crate::vehicle::{
    Buffer, LaneChangeState, NONE, NOT_ON_LINK, Signal, SpeedMemo, Vehicle, VehicleName,
    floor_speed, no_collision_speed,
};

/// One side of a crossing point as `notifyCross` left it: the vehicle and its distance, valid
/// when `stamp` is this step's (one record instead of three parallel arrays: one bounds check
/// and one cache line per notification).
#[derive(Clone, Copy, Debug)]
struct NotifySlot {
    stamp: u64,
    vehicle: u32,
    distance: f64,
}

impl Default for NotifySlot {
    fn default() -> Self {
        NotifySlot {
            stamp: 0,
            vehicle: NONE,
            distance: 0.0,
        }
    }
}

/// Deterministic hashing (SipHash with zero keys): no per-process random state.
pub(crate) type DetHasher = BuildHasherDefault<DefaultHasher>;

/// Per-flow emission state (CityFlow's `Flow` members that change).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct FlowState {
    pub(crate) now_time: f64,
    pub(crate) cnt: u32,
    pub(crate) valid: bool,
}

/// Everything that changes during a run. Cloning it is a snapshot.
#[derive(Debug, Clone)]
pub(crate) struct State {
    pub(crate) step: u64,
    /// `step as f64 * interval`, kept up to date with `step` (read per vehicle).
    time: f64,
    pub(crate) rng: Mt19937,
    pub(crate) vehicles: Vec<Vehicle>,
    free_slots: Vec<u32>,
    /// Bit per slot: the vehicle is running (on a lane or lane link). Phases iterate it, in
    /// slot order, instead of every slot.
    running_bits: Vec<u64>,
    /// Bit per slot: the vehicle may do something in the next lane-change signal pass (see
    /// [`State::mark_lc_candidate`]); the pass skips the others. Meaningful for running vehicles.
    lc_candidate: Vec<u64>,
    /// Bit per drivable: its list is not empty. Per-drivable passes walk these bits, so an empty
    /// part of a big network costs nothing.
    occupied: Vec<u64>,
    /// Bit per lane: its entry buffer is not empty.
    waiting_bits: Vec<u64>,
    /// Per lane link, the step (+1) its crossing-point notifications were last computed.
    notify_stamp: Vec<u64>,
    /// Per lane, the step (+1) for which its segments were last built.
    seg_stamp: Vec<u64>,
    priorities: HashSet<i32, DetHasher>,
    /// Vehicles on each drivable, front first.
    pub(crate) lists: Vec<Vec<u32>>,
    /// Per lane, how many vehicles on it are waiting (speed below
    /// [`crate::metrics::WAITING_SPEED`]); valid for occupied lanes after the step's leader pass.
    lane_queue: Vec<u32>,
    /// Entry buffer of each lane.
    pub(crate) waiting: Vec<VecDeque<u32>>,
    /// Per lane, `seg_end[seg_base[lane] + s]` = end (exclusive) in the lane's list of segment
    /// `s`'s run of vehicles; segments appear in the list from the last to the first.
    seg_end: Vec<u32>,
    seg_base: Vec<u32>,
    /// Crossing-point notifications: vehicle and signed distance per side, valid when the
    /// side's stamp is the current step (+1); otherwise the side has no vehicle.
    /// Per cross and side: the notification written this step (see [`NotifySlot`]).
    notify_slots: Vec<[NotifySlot; 2]>,

    pub(crate) flow_state: Vec<FlowState>,
    /// Distinct vehicle parameter sets (vehicles refer to them by `pid`), and each flow's.
    pub(crate) params: Vec<crate::vehicle::Params>,
    flow_pid: Vec<u32>,
    flow_clock: f64,
    /// Flows not started yet, latest start first (so `pop` gives the next one).
    pending_flows: Vec<u32>,
    /// Started flows that may still emit, by flow index.
    active_flows: Vec<u32>,

    pub(crate) signals: SignalState,

    /// Vehicles on roads, shadows included (CityFlow's `activeVehicleCount`).
    pub(crate) active: u64,
    pub(crate) finished_count: u64,
    pub(crate) cumulative_travel_time: f64,
    pub(crate) metrics: crate::metrics::Accumulators,

    // Scratch (kept to avoid allocating in the step).
    plan_buffer: Vec<u32>,
    lane_change_buffer: Vec<u32>,
    push_buffer: Vec<(u32, f64)>,
    removed: Vec<u32>,
    /// Per slot, the step (+1) in which the vehicle was removed.
    removed_stamp: Vec<u64>,
    ended: Vec<u32>,
    /// Drivables some vehicle leaves this step (marked in the action phase).
    dirty: Vec<bool>,
    dirty_list: Vec<u32>,
    /// Drivables whose list got a vehicle inserted since leaders were last recomputed
    /// (admissions, shadows), with a mark per drivable.
    inserted: Vec<bool>,
    inserted_list: Vec<u32>,
    /// Lists whose last vehicle changed through an insertion since leaders were last
    /// recomputed (duplicates possible).
    tail_changed: Vec<u32>,
    /// Per drivable `x`, the drivables whose front vehicle's leader look-ahead may read `x`'s
    /// list (see [`look_ahead_readers`]).
    readers: Arc<Readers>,
}

/// Per drivable, the drivables whose front vehicle's look-ahead ([`State::update_leader`]) can
/// read its list, in compressed rows: `of[x]` is `list[start[x]..start[x + 1]]`.
#[derive(Debug)]
struct Readers {
    start: Vec<u32>,
    list: Vec<u32>,
}

impl Readers {
    fn of(&self, x: u32) -> &[u32] {
        &self.list[self.start[x as usize] as usize..self.start[x as usize + 1] as usize]
    }
}

/// [`Readers`] for a network and the largest look-ahead horizon.
///
/// The look-ahead of the front vehicle of drivable `d` (at position `dis`) visits the planned
/// drivables `d0, d1, ...` after `d`; it reads `d_i`'s list if `d_i` is a lane, and the lists
/// of all lane links leaving `d_i`'s start lane if it is a lane link; it visits `d_{i+1}` only
/// while `len(d) - dis + len(d0) + ... + len(d_i)` is at most the horizon. Every planned
/// drivable follows the network (lane -> a link leaving it, link -> its end lane), and
/// `len(d) - dis` is at least minus the largest difference between the lengths of two lanes of
/// one road (a lane-change shadow keeps the position it had on its original lane), so a walk
/// over all successors with that start and the horizon plus 1 m visits a superset.
fn look_ahead_readers(net: &Network, horizon: f64) -> Readers {
    let nl = net.lane_count();
    let nd = net.drivable_count() as usize;
    let mut slack = 0.0f64;
    for road in &net.roads {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for l in road.lanes.clone() {
            lo = lo.min(net.lanes[l as usize].length);
            hi = hi.max(net.lanes[l as usize].length);
        }
        if hi >= lo {
            slack = slack.max(hi - lo);
        }
    }
    let limit = horizon + 1.0;
    let successors = |d: u32, out: &mut Vec<u32>| {
        out.clear();
        if d < nl {
            out.extend(net.out_links(d).iter().map(|&ll| nl + ll));
        } else {
            out.push(net.lane_links[(d - nl) as usize].end_lane);
        }
    };
    let mut pairs: Vec<(u32, u32)> = Vec::new();
    let mut seen = vec![u32::MAX; nd];
    let mut stack: Vec<(u32, f64)> = Vec::new();
    let mut succ = Vec::new();
    for d in 0..nd as u32 {
        successors(d, &mut succ);
        stack.extend(succ.iter().map(|&s| (s, -slack)));
        while let Some((x, acc)) = stack.pop() {
            let mut read = |y: u32| {
                if seen[y as usize] != d {
                    seen[y as usize] = d;
                    pairs.push((y, d));
                }
            };
            if x < nl {
                read(x);
            } else {
                let start = net.lane_links[(x - nl) as usize].start_lane;
                for &ll in net.out_links(start) {
                    read(nl + ll);
                }
            }
            let acc = acc + net.drivable_length(x);
            if acc <= limit {
                successors(x, &mut succ);
                stack.extend(succ.iter().map(|&s| (s, acc)));
            }
        }
    }
    pairs.sort_unstable();
    let mut start = vec![0u32; nd + 1];
    for &(x, _) in &pairs {
        start[x as usize + 1] += 1;
    }
    for i in 0..nd {
        start[i + 1] += start[i];
    }
    Readers {
        start,
        list: pairs.into_iter().map(|(_, d)| d).collect(),
    }
}

/// A running simulation over a shared [`Scenario`].
#[derive(Debug, Clone)]
pub struct Simulation {
    pub(crate) scenario: Arc<Scenario>,
    pub(crate) state: State,
}

/// A copy of a simulation's whole state; restoring it and stepping gives bit-identical results
/// to the original run.
#[derive(Debug, Clone)]
pub struct Snapshot {
    state: State,
}

impl Snapshot {
    /// Simulated time of the snapshot, seconds.
    pub fn time(&self) -> f64 {
        self.state.step as f64
    }
}

impl Simulation {
    /// A fresh simulation at t = 0.
    pub fn new(scenario: Arc<Scenario>) -> Simulation {
        let net = &scenario.network;
        let nd = net.drivable_count() as usize;
        let nl = net.lane_count() as usize;
        let mut seg_base = Vec::with_capacity(nl);
        let mut total = 0u32;
        for lane in &net.lanes {
            seg_base.push(total);
            total += lane.segments;
        }
        let lists = (0..nd)
            .map(|d| {
                // Room for a jam at 7 m per vehicle (plus shadows), so pushes never reallocate.
                let cap = (net.drivable_length(d as u32) / 6.0).ceil() as usize + 4;
                Vec::with_capacity(cap)
            })
            .collect();
        let flows = &scenario.flows;
        let mut pending: Vec<u32> = (0..flows.len() as u32).collect();
        // Latest start first; among equal starts, higher index first (popped last).
        pending.sort_by(|&a, &b| {
            let (sa, sb) = (
                flows[a as usize].spec.start_time,
                flows[b as usize].spec.start_time,
            );
            sb.cmp(&sa).then(b.cmp(&a))
        });
        let vehicle_cap = flows.len().clamp(64, 1 << 16);
        let mut params: Vec<crate::vehicle::Params> = Vec::new();
        let flow_pid = flows
            .iter()
            .map(|f| match params.iter().position(|p| *p == f.params) {
                Some(i) => i as u32,
                None => {
                    params.push(f.params);
                    (params.len() - 1) as u32
                }
            })
            .collect();
        let horizon = params
            .iter()
            .map(|p| p.leader_search_distance)
            .fold(0.0f64, f64::max);
        let state = State {
            step: 0,
            time: 0.0,
            rng: Mt19937::new(scenario.settings.seed),
            vehicles: Vec::with_capacity(vehicle_cap),
            free_slots: Vec::with_capacity(vehicle_cap),
            running_bits: Vec::with_capacity(vehicle_cap / 64 + 1),
            lc_candidate: Vec::with_capacity(vehicle_cap / 64 + 1),
            seg_stamp: vec![0; nl],
            occupied: vec![0; nd.div_ceil(64)],
            waiting_bits: vec![0; nl.div_ceil(64)],
            notify_stamp: vec![0; nd - nl],
            priorities: HashSet::with_capacity_and_hasher(vehicle_cap * 2, DetHasher::default()),
            lists,
            lane_queue: vec![0; nl],
            waiting: (0..nl).map(|_| VecDeque::with_capacity(16)).collect(),
            seg_end: vec![0; total as usize],
            seg_base,
            notify_slots: vec![[NotifySlot::default(); 2]; net.crosses.len()],
            flow_state: flows
                .iter()
                .map(|f| FlowState {
                    now_time: f.spec.interval,
                    cnt: 0,
                    valid: true,
                })
                .collect(),
            params,
            flow_pid,
            flow_clock: 0.0,
            pending_flows: pending,
            active_flows: Vec::with_capacity(64),
            signals: SignalState::new(net, scenario.settings.rl_traffic_light),
            active: 0,
            finished_count: 0,
            cumulative_travel_time: 0.0,
            metrics: crate::metrics::Accumulators::new(net),
            plan_buffer: Vec::with_capacity(256),
            lane_change_buffer: Vec::with_capacity(1024),
            push_buffer: Vec::with_capacity(1024),
            removed: Vec::with_capacity(256),
            removed_stamp: vec![0; vehicle_cap],
            ended: Vec::with_capacity(256),
            dirty: vec![false; nd],
            dirty_list: Vec::with_capacity(nd),
            inserted: vec![false; nd],
            inserted_list: Vec::with_capacity(nd),
            tail_changed: Vec::with_capacity(64),
            readers: Arc::new(look_ahead_readers(net, horizon)),
        };
        Simulation { scenario, state }
    }

    /// The scenario.
    pub fn scenario(&self) -> &Arc<Scenario> {
        &self.scenario
    }

    /// The network.
    pub fn network(&self) -> &Network {
        &self.scenario.network
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.state.step
    }

    /// Simulated time, seconds (CityFlow's `get_current_time`).
    pub fn time(&self) -> f64 {
        self.state.step as f64 * self.scenario.settings.interval
    }

    /// Vehicles on the roads, lane-change shadows included (CityFlow's `get_vehicle_count`).
    pub fn vehicle_count(&self) -> u64 {
        self.state.active
    }

    /// Copies the whole state.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            state: self.state.clone(),
        }
    }

    /// Restores a snapshot taken from a simulation of the same scenario.
    pub fn restore(&mut self, snapshot: &Snapshot) {
        self.state.clone_from(&snapshot.state);
    }

    /// Stops every future arrival: no flow emits another vehicle from now on. The vehicles
    /// already created (running, or waiting in an entry buffer since their scheduled start) are
    /// kept. For a look-ahead copy (a "digital twin") that may know the vehicles in the network
    /// but not the demand still to come; on the original simulation it would change the run.
    pub fn stop_arrivals(&mut self) {
        let st = &mut self.state;
        st.pending_flows.clear();
        st.active_flows.clear();
    }

    /// Vehicles that flows will still create (`false` after [`Simulation::stop_arrivals`] or
    /// once every flow has ended).
    pub fn arrivals_pending(&self) -> bool {
        !self.state.pending_flows.is_empty() || !self.state.active_flows.is_empty()
    }

    /// Advances one step of `interval` seconds.
    pub fn step(&mut self) {
        let sc = &*self.scenario;
        let st = &mut self.state;
        st.flows_step(sc);
        st.plan_route(sc);
        st.handle_waiting(sc);
        if sc.settings.lane_change {
            st.init_segments(sc);
            st.plan_lane_change(sc);
            st.update_leaders_after_insertions(sc);
        }
        st.get_action(sc);
        st.update_location(sc);
        st.update_action_and_leaders(sc);
        st.signals.advance(&sc.network, sc.settings.interval);
        st.step += 1;
        st.time = st.step as f64 * sc.settings.interval;
        st.record_metrics(sc);
    }
}

impl State {
    /// Parameters of vehicle `v`.
    #[inline]
    pub(crate) fn pv(&self, v: u32) -> &crate::vehicle::Params {
        &self.params[self.vehicles[v as usize].pid as usize]
    }

    #[inline]
    fn now(&self, sc: &Scenario) -> f64 {
        debug_assert_eq!(
            self.time.to_bits(),
            (self.step as f64 * sc.settings.interval).to_bits()
        );
        self.time
    }

    // ------------------------------------------------------------------------------------------
    // Vehicle slots

    fn alloc_slot(&mut self, v: Vehicle) -> u32 {
        if let Some(slot) = self.free_slots.pop() {
            self.vehicles[slot as usize] = v;
            slot
        } else {
            self.vehicles.push(v);
            (self.vehicles.len() - 1) as u32
        }
    }

    fn set_running(&mut self, slot: u32) {
        self.vehicles[slot as usize].running = true;
        let w = slot as usize / 64;
        if self.running_bits.len() <= w {
            self.running_bits.resize(w + 1, 0);
        }
        self.running_bits[w] |= 1u64 << (slot % 64);
        if self.lc_candidate.len() <= w {
            self.lc_candidate.resize(w + 1, 0);
        }
        self.lc_candidate[w] |= 1u64 << (slot % 64);
    }

    /// Sets vehicle `v`'s bit in [`State::lc_candidate`]: whether, as it stands at the end of
    /// a step on drivable `d` (`lane_length`: `d`'s length if it is a lane, else `None`), it
    /// may signal or has to be looked at in the next lane-change signal pass: changing lanes,
    /// or a real vehicle on a lane whose gap and position pass [`State::make_signal`]'s first
    /// tests (same expressions). For the others that pass does nothing: they are not
    /// changing, so their signal was cleared at the end of the step, and `make_signal` returns
    /// before looking at anything else, from fields (gap, position, drivable, lane-change and
    /// partner state) that nothing changes between the end of a step and the next signal pass
    /// (admitted vehicles and shadows are always marked, by [`State::set_running`]).
    #[inline]
    fn mark_lc_candidate(&mut self, v: u32, lane_length: Option<f64>) {
        let veh = &self.vehicles[v as usize];
        let candidate = veh.lc.changing
            || match lane_length {
                Some(length) => {
                    let p = &self.params[veh.pid as usize];
                    veh.is_real()
                        && !(length - veh.dis < 30.0
                            || veh.gap > p.lc_gap_max
                            || veh.gap < p.lc_gap_min)
                }
                None => false,
            };
        let word = &mut self.lc_candidate[v as usize / 64];
        *word = (*word & !(1u64 << (v % 64))) | (u64::from(candidate) << (v % 64));
    }

    #[inline]
    fn list_push(&mut self, d: u32, v: u32) {
        self.lists[d as usize].push(v);
        self.occupied[d as usize / 64] |= 1u64 << (d % 64);
    }

    /// Next set bit at or after `from` in `bits`, or `NONE`.
    #[inline]
    fn next_bit(bits: &[u64], from: u32) -> u32 {
        let mut w = from as usize / 64;
        if w >= bits.len() {
            return NONE;
        }
        let mut word = bits[w] & (!0u64 << (from % 64));
        loop {
            if word != 0 {
                return (w * 64) as u32 + word.trailing_zeros();
            }
            w += 1;
            if w >= bits.len() {
                return NONE;
            }
            word = bits[w];
        }
    }

    fn free_slot(&mut self, slot: u32) {
        if let Some(word) = self.running_bits.get_mut(slot as usize / 64) {
            *word &= !(1u64 << (slot % 64));
        }
        let v = &mut self.vehicles[slot as usize];
        v.live = false;
        v.running = false;
        self.priorities.remove(&v.priority);
        self.free_slots.push(slot);
    }

    /// A priority not held by any live vehicle (CityFlow's `while (checkPriority(p = rnd()))`).
    fn draw_priority(&mut self) -> i32 {
        loop {
            let p = self.rng.next_u32() as i32;
            if !self.priorities.contains(&p) {
                return p;
            }
        }
    }

    // ------------------------------------------------------------------------------------------
    // 1-3: emission, first lane, entry buffers

    #[inline(never)]
    fn flows_step(&mut self, sc: &Scenario) {
        let dt = sc.settings.interval;
        // Flows whose start time has come join the active set (kept in flow order, which is the
        // order CityFlow steps them and hence the order of RNG draws).
        let mut joined = false;
        while let Some(&f) = self.pending_flows.last() {
            if self.flow_clock >= sc.flows[f as usize].spec.start_time as f64 {
                self.pending_flows.pop();
                self.active_flows.push(f);
                joined = true;
            } else {
                break;
            }
        }
        if joined {
            self.active_flows.sort_unstable();
        }
        let mut i = 0;
        while i < self.active_flows.len() {
            let f = self.active_flows[i];
            let flow = &sc.flows[f as usize];
            let end = flow.spec.end_time;
            if !self.flow_state[f as usize].valid || (end != -1 && self.flow_clock > end as f64) {
                self.active_flows.remove(i);
                continue;
            }
            let interval = flow.spec.interval;
            while self.flow_state[f as usize].now_time >= interval {
                self.create_vehicle(sc, f);
                self.flow_state[f as usize].now_time -= interval;
            }
            self.flow_state[f as usize].now_time += dt;
            i += 1;
        }
        self.flow_clock += dt;
    }

    fn create_vehicle(&mut self, sc: &Scenario, f: u32) {
        let flow = &sc.flows[f as usize];
        let priority = self.draw_priority();
        // Engine::pushVehicle draws a thread index (rnd() % threadNum) for every vehicle.
        let _thread = self.rng.next_u32();
        let seq = self.flow_state[f as usize].cnt;
        self.flow_state[f as usize].cnt += 1;
        let v = Vehicle {
            live: true,
            running: false,
            name: VehicleName {
                flow: f,
                seq,
                shadow: false,
            },
            flow: f,
            route: f,
            route_pos: 0,
            last_road: flow.route.last().copied().unwrap_or(NONE),
            pid: self.flow_pid[f as usize],
            len: self.params[self.flow_pid[f as usize] as usize].len,
            priority,
            enter_time: self.now(sc),
            speed: 0.0,
            dis: 0.0,
            drivable: NONE,
            prev_drivable: NONE,
            next: NONE,
            gap: 0.0,
            leader: NONE,
            blocker: NONE,
            link_time: NOT_ON_LINK,
            partner_type: 0,
            partner: NONE,
            offset: 0.0,
            segment: 0,
            lc: LaneChangeState::default(),
            buf: Buffer::default(),
            travelled: 0.0,
            stops: 0,
            memo_lane: NONE,
            memo_pos: 0,
            memo_next: NONE,
            side_memo: [(NONE, 0, NONE); 2],
            speed_memo: SpeedMemo::default(),
        };
        let slot = self.alloc_slot(v);
        self.priorities.insert(priority);
        self.plan_buffer.push(slot);
    }

    #[inline(never)]
    fn plan_route(&mut self, sc: &Scenario) {
        if self.plan_buffer.is_empty() {
            return;
        }
        // CityFlow keeps one buffer per road and serves roads in order: a stable sort by first
        // road (insertion sort: the buffer is a handful of vehicles).
        let first_road =
            |st: &State, v: u32| sc.flows[st.vehicles[v as usize].route as usize].first_road;
        let mut buf = std::mem::take(&mut self.plan_buffer);
        for i in 1..buf.len() {
            let mut j = i;
            while j > 0 && first_road(self, buf[j - 1]) > first_road(self, buf[j]) {
                buf.swap(j - 1, j);
                j -= 1;
            }
        }
        for &v in &buf {
            let f = self.vehicles[v as usize].route as usize;
            let flow = &sc.flows[f];
            if flow.route.is_empty() {
                self.flow_state[f].valid = false;
                self.free_slot(v);
                continue;
            }
            let pick = (u64::from(self.rng.next_u32()) % flow.first_lanes.len() as u64) as usize;
            let lane = flow.first_lanes[pick];
            self.vehicles[v as usize].drivable = lane;
            self.vehicles[v as usize].next = self.compute_next(sc, v, lane);
            self.waiting[lane as usize].push_back(v);
            self.waiting_bits[lane as usize / 64] |= 1u64 << (lane % 64);
        }
        buf.clear();
        self.plan_buffer = buf;
    }

    #[inline(never)]
    fn handle_waiting(&mut self, sc: &Scenario) {
        let mut lane = Self::next_bit(&self.waiting_bits, 0);
        while lane != NONE {
            self.admit_head(sc, lane);
            lane = Self::next_bit(&self.waiting_bits, lane + 1);
        }
    }

    /// Lets the head of `lane`'s entry buffer in if there is room (`Lane::available`).
    fn admit_head(&mut self, sc: &Scenario, lane: u32) {
        let Some(&v) = self.waiting[lane as usize].front() else {
            return;
        };
        let tail = self.lists[lane as usize].last().copied().unwrap_or(NONE);
        let available = tail == NONE || {
            let t = &self.vehicles[tail as usize];
            t.dis > self.pv(tail).len + self.pv(v).min_gap
        };
        if available {
            self.set_running(v);
            self.active += 1;
            self.list_push(lane, v);
            self.mark_inserted(lane);
            self.tail_changed.push(lane);
            self.update_leader(sc, v, tail);
            self.waiting[lane as usize].pop_front();
            if self.waiting[lane as usize].is_empty() {
                self.waiting_bits[lane as usize / 64] &= !(1u64 << (lane % 64));
            }
        }
    }

    // ------------------------------------------------------------------------------------------
    // Routing

    /// CityFlow's `Router::getNextDrivable(curDrivable)` for vehicle `v` standing at its current
    /// route position: a lane link's end lane, or the lane link (from `d`) that continues the
    /// route, or `NONE` at the end of the route / when no link continues it.
    pub(crate) fn compute_next(&self, sc: &Scenario, v: u32, d: DrivableId) -> u32 {
        let net = &sc.network;
        let nl = net.lane_count();
        if d >= nl {
            return net.lane_links[(d - nl) as usize].end_lane;
        }
        let k = self.route_index(sc, v, d);
        self.best_link(sc, v, d, k)
    }

    /// The route position of lane `d`'s road, searching from `v`'s current route position (the
    /// route's length if it is not on the rest of the route).
    #[inline]
    fn route_index(&self, sc: &Scenario, v: u32, d: DrivableId) -> usize {
        let veh = &self.vehicles[v as usize];
        let route = &sc.flows[veh.route as usize].route;
        let road = sc.network.lanes[d as usize].road;
        let mut k = veh.route_pos as usize;
        while k < route.len() && route[k] != road {
            k += 1;
        }
        k
    }

    /// [`State::compute_next`] through a one-entry cache per vehicle. The lane link chosen from
    /// lane `d` depends only on the vehicle's route, `d` and the route position `k` of `d`'s
    /// road, so the cache is keyed by `(d, k)`: the leader search looks two drivables ahead every
    /// step, and the same answer is needed again when the vehicle enters that lane.
    fn compute_next_cached(&mut self, sc: &Scenario, v: u32, d: DrivableId) -> u32 {
        let net = &sc.network;
        let nl = net.lane_count();
        if d >= nl {
            return net.lane_links[(d - nl) as usize].end_lane;
        }
        let k = self.route_index(sc, v, d);
        let veh = &self.vehicles[v as usize];
        if veh.memo_lane == d && veh.memo_pos as usize == k {
            return veh.memo_next;
        }
        let next = self.best_link(sc, v, d, k);
        let veh = &mut self.vehicles[v as usize];
        veh.memo_lane = d;
        veh.memo_pos = k as u32;
        veh.memo_next = next;
        next
    }

    /// [`State::compute_next`] for a neighbour lane of `v`'s lane (`side` 0 outer, 1 inner),
    /// through a one-entry cache per side keyed like [`State::compute_next_cached`]: a vehicle
    /// looking for a lane change asks the same question every step.
    #[inline]
    fn compute_next_side(&mut self, sc: &Scenario, v: u32, d: DrivableId, side: usize) -> u32 {
        let k = self.route_index(sc, v, d);
        let (lane, pos, next) = self.vehicles[v as usize].side_memo[side];
        if lane == d && pos as usize == k {
            return next;
        }
        let next = self.best_link(sc, v, d, k);
        self.vehicles[v as usize].side_memo[side] = (d, k as u32, next);
        next
    }

    /// The lane link from lane `d` (on route position `k`) that continues `v`'s route.
    fn best_link(&self, sc: &Scenario, v: u32, d: DrivableId, k: usize) -> u32 {
        let net = &sc.network;
        let nl = net.lane_count();
        let veh = &self.vehicles[v as usize];
        let route = &sc.flows[veh.route as usize].route;
        let lane = &net.lanes[d as usize];
        if k + 1 >= route.len() {
            return NONE;
        }
        let next_road = route[k + 1];
        let after = route.get(k + 2).copied();
        let mut best = NONE;
        let mut best_diff = i64::MAX;
        for &ll in net.out_links(d) {
            let link = &net.lane_links[ll as usize];
            let end_lane = &net.lanes[link.end_lane as usize];
            if end_lane.road != next_road {
                continue;
            }
            if let Some(after) = after
                && net
                    .lane_links_to_road(link.end_lane, after)
                    .next()
                    .is_none()
            {
                continue;
            }
            let diff = (i64::from(end_lane.index) - i64::from(lane.index)).abs();
            if diff < best_diff {
                best_diff = diff;
                best = nl + ll;
            }
        }
        best
    }

    /// `getNextDrivable(i)`: the `i`-th drivable after the current one along the plan.
    fn next_drivable(&mut self, sc: &Scenario, v: u32, i: u32) -> u32 {
        let mut d = self.vehicles[v as usize].next;
        for _ in 0..i {
            if d == NONE {
                return NONE;
            }
            d = self.compute_next_cached(sc, v, d);
        }
        d
    }

    #[inline]
    fn on_last_road(&self, sc: &Scenario, v: u32) -> bool {
        let veh = &self.vehicles[v as usize];
        let net = &sc.network;
        net.is_lane(veh.drivable) && net.lanes[veh.drivable as usize].road == veh.last_road
    }

    // ------------------------------------------------------------------------------------------
    // Leaders

    /// `Vehicle::updateLeaderAndGap(leader)`.
    pub(crate) fn update_leader(&mut self, sc: &Scenario, v: u32, leader: u32) {
        let net = &sc.network;
        let (drivable, dis) = {
            let veh = &self.vehicles[v as usize];
            (veh.drivable, veh.dis)
        };
        if leader != NONE && self.vehicles[leader as usize].drivable == drivable {
            let l = &self.vehicles[leader as usize];
            let gap = l.dis - l.len - dis;
            let veh = &mut self.vehicles[v as usize];
            veh.leader = leader;
            veh.gap = gap;
            return;
        }
        self.vehicles[v as usize].leader = NONE;
        let horizon = self.pv(v).leader_search_distance;
        let mut acc = net.drivable_length(drivable) - dis;
        let nl = net.lane_count();
        // `getNextDrivable(i)` for i = 0, 1, ..., each from the previous one (the same
        // successors as recomputing the chain from `next` for every i).
        let mut d = self.vehicles[v as usize].next;
        loop {
            if d == NONE {
                return;
            }
            if d >= nl {
                let start_lane = net.lane_links[(d - nl) as usize].start_lane;
                let mut found = NONE;
                let mut found_gap = 0.0;
                for &ll in net.out_links(start_lane) {
                    if let Some(&c) = self.lists[(nl + ll) as usize].last() {
                        let cv = &self.vehicles[c as usize];
                        let cand_gap = acc + cv.dis - cv.len;
                        if found == NONE || cand_gap < found_gap {
                            found = c;
                            found_gap = cand_gap;
                        }
                    }
                }
                if found != NONE {
                    let veh = &mut self.vehicles[v as usize];
                    veh.leader = found;
                    veh.gap = found_gap;
                    return;
                }
            } else if let Some(&l) = self.lists[d as usize].last() {
                let lv = &self.vehicles[l as usize];
                let gap = acc + lv.dis - lv.len;
                let veh = &mut self.vehicles[v as usize];
                veh.leader = l;
                veh.gap = gap;
                return;
            }
            acc += net.drivable_length(d);
            if acc > horizon {
                return;
            }
            d = self.compute_next_cached(sc, v, d);
        }
    }

    fn mark_inserted(&mut self, d: u32) {
        if !self.inserted[d as usize] {
            self.inserted[d as usize] = true;
            self.inserted_list.push(d);
        }
    }

    /// CityFlow's leader pass over every vehicle, when the leaders were all recomputed at the end of the last
    /// step and since then only insertions into lists happened (admissions from the entry
    /// buffers, lane-change shadows); nothing moved. A vehicle behind another on the same list
    /// takes that one as leader with a gap from their positions, so on a list without an
    /// insertion those values are still the ones computed at the end of the last step: only
    /// the lists with an insertion are recomputed. The front vehicle of a list looks ahead
    /// (`update_leader`), reading its own position and plan (unchanged) and the last vehicle of
    /// the lists ahead; its result can only differ from the end of the last step if one of
    /// those last vehicles changed, i.e. an insertion was appended to a list it may read
    /// ([`State::readers`]), or if its own list got an insertion. Only those fronts are
    /// recomputed. `update_leader` writes only the vehicle's own leader and gap and reads only
    /// positions and plans, so the order (and a repeated call) does not matter.
    #[inline(never)]
    fn update_leaders_after_insertions(&mut self, sc: &Scenario) {
        for k in 0..self.inserted_list.len() {
            let d = self.inserted_list[k] as usize;
            self.inserted[d] = false;
            let n = self.lists[d].len();
            for j in 1..n {
                let (l, v) = (self.lists[d][j - 1], self.lists[d][j]);
                let ldis = self.vehicles[l as usize].dis;
                let llen = self.pv(l).len;
                let veh = &mut self.vehicles[v as usize];
                veh.leader = l;
                veh.gap = ldis - llen - veh.dis;
            }
            if let Some(&first) = self.lists[d].first() {
                self.update_leader(sc, first, NONE);
            }
        }
        self.inserted_list.clear();
        let readers = Arc::clone(&self.readers);
        for k in 0..self.tail_changed.len() {
            let x = self.tail_changed[k];
            for &d in readers.of(x) {
                if let Some(&first) = self.lists[d as usize].first() {
                    self.update_leader(sc, first, NONE);
                }
            }
        }
        self.tail_changed.clear();
    }

    // ------------------------------------------------------------------------------------------
    // 5: crossing points

    fn notify(&mut self, cross: u32, side: u8, v: u32, distance: f64) {
        self.notify_slots[cross as usize][side as usize] = NotifySlot {
            stamp: self.step + 1,
            vehicle: v,
            distance,
        };
    }

    /// CityFlow's `notifyCross` phase, done lazily.
    ///
    /// Each (cross, side) is written by its own lane link alone, from that link's vehicles,
    /// the front vehicle of its start lane and the last vehicle of its end lane, their
    /// positions, `next` and `prev_drivable`, and the link's signal; none of these changes
    /// between this phase and the end of the speed pass (which only writes buffers and
    /// lane-change fields). So a link's notifications are computed the first time a speed
    /// decision reads one of its crosses ([`State::notified_side`]), with the same result as
    /// computing every link up front; a side that no link wrote this step reads as empty.
    ///
    /// This returns the vehicle and distance notified on side `side` of `cross` this step,
    /// computing the notifications of that side's lane link first if needed.
    #[inline]
    fn notified_side(&mut self, sc: &Scenario, cross: u32, side: usize) -> (u32, f64) {
        let li = sc.network.crosses[cross as usize].lane_links[side];
        let stamp = self.step + 1;
        if self.notify_stamp[li as usize] != stamp {
            self.notify_stamp[li as usize] = stamp;
            self.notify_link(sc, li);
        }
        let slot = &self.notify_slots[cross as usize][side];
        if slot.stamp == stamp {
            (slot.vehicle, slot.distance)
        } else {
            (NONE, 0.0)
        }
    }

    /// The crossing-point notifications of lane link `li` (CityFlow's `notifyCross` for one
    /// link).
    #[inline]
    fn notify_link(&mut self, sc: &Scenario, li: u32) {
        let net = &sc.network;
        let nl = net.lane_count();
        let li = li as usize;
        {
            let link = &net.lane_links[li];
            let crosses = net.link_crosses(li as u32);
            if crosses.is_empty() {
                return;
            }
            let d = nl + li as u32;
            let mut r = crosses.len();
            // The last vehicle of the end lane, if it came through this link, may still cover
            // the last crossing points with its tail.
            if let Some(&v) = self.lists[link.end_lane as usize].last() {
                let veh = &self.vehicles[v as usize];
                if veh.prev_drivable == d {
                    let (vdis, vlen) = (veh.dis, veh.len);
                    let veh_distance = vdis - vlen;
                    while r > 0 {
                        let c = crosses[r - 1];
                        let cross_distance = link.length - c.distance;
                        if cross_distance + veh_distance < 0.0 {
                            self.notify(c.cross, c.side, v, -(vdis + cross_distance));
                            r -= 1;
                        } else {
                            break;
                        }
                    }
                }
            }
            for k in 0..self.lists[d as usize].len() {
                let v = self.lists[d as usize][k];
                let (vdis, vlen) = {
                    let veh = &self.vehicles[v as usize];
                    (veh.dis, veh.len)
                };
                while r > 0 {
                    let c = crosses[r - 1];
                    if vdis > c.distance {
                        if vdis - c.distance - vlen <= 0.0 {
                            self.notify(c.cross, c.side, v, c.distance - vdis);
                        } else {
                            break;
                        }
                    } else {
                        self.notify(c.cross, c.side, v, c.distance - vdis);
                    }
                    r -= 1;
                }
            }
            if r > 0
                && let Some(&v) = self.lists[link.start_lane as usize].first()
                && self.vehicles[v as usize].next == d
                && self.signals.link_green(net, li as u32)
            {
                let veh_distance =
                    net.lanes[link.start_lane as usize].length - self.vehicles[v as usize].dis;
                while r > 0 {
                    let c = crosses[r - 1];
                    self.notify(c.cross, c.side, v, veh_distance + c.distance);
                    r -= 1;
                }
            }
        }
    }

    /// `Cross::canPass`.
    fn can_pass(
        &self,
        sc: &Scenario,
        v: u32,
        cross: u32,
        side: u8,
        distance_to_link_start: f64,
        (foe, d2): (u32, f64),
    ) -> bool {
        let net = &sc.network;
        let i = side as usize;
        if foe == NONE {
            return true;
        }
        let c = &net.crosses[cross as usize];
        let link_i = &net.lane_links[c.lane_links[i] as usize];
        let link_o = &net.lane_links[c.lane_links[1 - i] as usize];
        let (t1, t2) = (link_i.kind as i32, link_o.kind as i32);
        let d1 = c.distance[i] - distance_to_link_start;
        let me = &self.vehicles[v as usize];
        let fv = &self.vehicles[foe as usize];
        let fp = &self.params[fv.pid as usize];
        if !me.can_yield(self.pv(v), d1) {
            return true;
        }
        let dt = sc.settings.interval;
        let reach = |x: &Vehicle, d: f64, turn: bool| {
            let xp = &self.params[x.pid as usize];
            x.reach_steps(
                d,
                if turn { xp.turn_speed } else { xp.max_speed },
                xp.usual_pos_acc,
                dt,
            )
        };
        let mut yield_ = 0i32;
        if !fv.can_yield(fp, d2) {
            yield_ = 1;
        }
        if yield_ == 0 {
            if t1 > t2 {
                yield_ = -1;
            } else if t1 < t2 {
                if d2 > 0.0 {
                    let foe_steps = reach(fv, d2, link_o.is_turn);
                    let steps = reach(me, d1, link_i.is_turn);
                    if foe_steps > steps {
                        yield_ = -1;
                    }
                } else if d2 + fp.len < 0.0 {
                    yield_ = -1;
                }
                if yield_ == 0 {
                    yield_ = 1;
                }
            } else if d2 > 0.0 {
                let foe_steps = reach(fv, d2, link_o.is_turn);
                let steps = reach(me, d1, link_i.is_turn);
                if foe_steps > steps {
                    yield_ = -1;
                } else if foe_steps < steps {
                    yield_ = 1;
                } else if me.link_time == fv.link_time {
                    yield_ = if d1 == d2 {
                        if me.priority > fv.priority { -1 } else { 1 }
                    } else if d1 < d2 {
                        -1
                    } else {
                        1
                    };
                } else {
                    yield_ = if me.link_time < fv.link_time { -1 } else { 1 };
                }
            } else {
                yield_ = if d2 + fp.len < 0.0 { -1 } else { 1 };
            }
        }
        if yield_ == 1 {
            // Deadlock check: follow the foe's chain of blockers (Floyd's cycle detection).
            let blocker = |x: u32| self.vehicles[x as usize].blocker;
            let mut fast = foe;
            let mut slow = foe;
            while fast != NONE && blocker(fast) != NONE {
                slow = blocker(slow);
                fast = blocker(blocker(fast));
                if slow == fast {
                    yield_ = -1;
                    break;
                }
            }
        }
        yield_ == -1
    }

    // ------------------------------------------------------------------------------------------
    // 6: speeds

    /// `Lane::canEnter`.
    fn can_enter(&self, lane: u32, v: u32) -> bool {
        match self.lists[lane as usize].last() {
            None => true,
            Some(&t) => {
                let tail = &self.vehicles[t as usize];
                tail.dis > tail.len + self.pv(v).len || tail.speed >= 2.0
            }
        }
    }

    /// `Vehicle::getIntersectionRelatedSpeed`.
    fn intersection_speed(&mut self, sc: &Scenario, v: u32) -> f64 {
        let net = &sc.network;
        let nl = net.lane_count();
        let dt = sc.settings.interval;
        let (drivable, dis, next) = {
            let veh = &self.vehicles[v as usize];
            (veh.drivable, veh.dis, veh.next)
        };
        let mut sp = self.pv(v).max_speed;
        let mut link = NONE;
        let remaining = net.drivable_length(drivable) - dis;
        if next != NONE && next >= nl {
            link = next - nl;
            if !self.signals.link_green(net, link)
                || !self.can_enter(net.lane_links[link as usize].end_lane, v)
            {
                let veh = &self.vehicles[v as usize];
                if veh.min_brake_distance(self.pv(v)) <= remaining {
                    return min2(sp, veh.stop_before_speed(self.pv(v), remaining, dt));
                }
                // Cannot stop before the line any more: carry on through the link.
            }
            if net.lane_links[link as usize].is_turn {
                sp = min2(sp, self.pv(v).turn_speed);
            }
        }
        if link == NONE && drivable >= nl {
            link = drivable - nl;
        }
        if link == NONE {
            return sp;
        }
        let distance_to_link_start = if drivable < nl { -remaining } else { dis };
        for c in net.link_crosses(link) {
            if c.distance < distance_to_link_start {
                continue;
            }
            let other = self.notified_side(sc, c.cross, 1 - c.side as usize);
            if !self.can_pass(sc, v, c.cross, c.side, distance_to_link_start, other) {
                let veh = &self.vehicles[v as usize];
                sp = min2(
                    sp,
                    veh.stop_before_speed(
                        self.pv(v),
                        c.distance - distance_to_link_start - self.pv(v).yield_distance,
                        dt,
                    ),
                );
                let b = &mut self.vehicles[v as usize].buf;
                b.blocker = other.0;
                b.blocker_set = true;
                break;
            }
        }
        sp
    }

    /// `SimpleLaneChange::yieldSpeed`.
    #[inline(never)]
    fn yield_speed(&self, sc: &Scenario, v: u32) -> f64 {
        let veh = &self.vehicles[v as usize];
        let src = veh.lc.recv;
        if src == NONE {
            return 100.0;
        }
        let s = &self.vehicles[src as usize];
        if s.lc.target_leader == v {
            return 100.0;
        }
        let safe_before = if s.lc.target_follower != NONE {
            self.vehicles[s.lc.target_follower as usize]
                .min_brake_distance(self.pv(s.lc.target_follower))
        } else {
            0.0
        };
        let gap = s.lc.follower_gap - safe_before;
        let sp = no_collision_speed(
            s.speed,
            self.params[s.pid as usize].max_neg_acc,
            veh.speed,
            self.pv(v).max_neg_acc,
            gap,
            sc.settings.interval,
            0.0,
        );
        if sp < 0.0 { 100.0 } else { sp }
    }

    /// `Vehicle::getNextSpeed`, through the vehicle's [`SpeedMemo`].
    #[inline(always)]
    fn next_speed(&mut self, sc: &Scenario, v: u32) -> f64 {
        match self.memo_hit(v) {
            Some(memo) => memo.result,
            None => self.next_speed_full(sc, v),
        }
    }

    /// The vehicle's [`SpeedMemo`] if all its inputs are unchanged.
    #[inline(always)]
    fn memo_hit(&self, v: u32) -> Option<&SpeedMemo> {
        let veh = &self.vehicles[v as usize];
        let memo = &veh.speed_memo;
        if veh.lc.recv == NONE
            && memo.drivable == veh.drivable
            && memo.speed == veh.speed.to_bits()
            && memo.dis == veh.dis.to_bits()
            && memo.gap == veh.gap.to_bits()
            && memo.next == veh.next
        {
            let (leader_speed, leader_pid) = if veh.leader != NONE {
                let l = &self.vehicles[veh.leader as usize];
                (l.speed.to_bits(), l.pid)
            } else {
                (0, NONE)
            };
            if memo.leader_speed == leader_speed && memo.leader_pid == leader_pid {
                return Some(memo);
            }
        }
        None
    }

    /// `Vehicle::getNextSpeed` computed, and memoised when it may be reused.
    #[inline(never)]
    fn next_speed_full(&mut self, sc: &Scenario, v: u32) -> f64 {
        let net = &sc.network;
        let dt = sc.settings.interval;
        let veh = &self.vehicles[v as usize];
        let (leader_info, leader_pid) = if veh.leader != NONE {
            let l = &self.vehicles[veh.leader as usize];
            let lp = &self.params[l.pid as usize];
            (Some((l.speed, lp.max_neg_acc, lp.usual_neg_acc)), l.pid)
        } else {
            (None, NONE)
        };
        let (drivable, next, dis, speed, recv) =
            (veh.drivable, veh.next, veh.dis, veh.speed, veh.lc.recv);
        // The decision below reads, besides the constant parameters, the network and the
        // vehicle's `last_road` (all fixed for the vehicle's lifetime in its slot), exactly
        // these fields when it is not intersection-related and no lane-change request was
        // received; the memo is only stored in that case, and `related` depends only on the
        // key. Same inputs, same bits (`next_speed` returns the memo when they all match).
        let key = SpeedMemo {
            speed: speed.to_bits(),
            dis: dis.to_bits(),
            gap: veh.gap.to_bits(),
            leader_speed: leader_info.map_or(0, |l| l.0.to_bits()),
            drivable,
            next,
            leader_pid,
            result: 0.0,
        };
        let nl = net.lane_count();
        let length = net.drivable_length(drivable);
        let p = &self.params[veh.pid as usize];
        let (max_neg_acc, min_gap) = (p.max_neg_acc, p.min_gap);
        let mut sp = p.max_speed;
        sp = min2(sp, speed + p.max_pos_acc * dt);
        sp = min2(sp, net.drivable_max_speed(drivable));
        sp = veh.car_follow_min(p, leader_info, dt, sp);
        // isIntersectionRelated
        let related =
            drivable >= nl || (next != NONE && next >= nl && length - dis <= p.approach_distance);
        if related {
            sp = min2(sp, self.intersection_speed(sc, v));
        }
        // yieldSpeed is 100 without a received signal; the min still matters when `sp` is NaN
        // (CityFlow's stop-before formula divides 0 by 0 for a stopped car on the line).
        sp = min2(
            sp,
            if recv != NONE {
                self.yield_speed(sc, v)
            } else {
                100.0
            },
        );
        if next == NONE && !self.on_last_road(sc, v) {
            let vn = no_collision_speed(0.0, 1.0, speed, max_neg_acc, length - dis, dt, min_gap);
            sp = min2(sp, vn);
        }
        let result = floor_speed(sp, speed, max_neg_acc, dt);
        // Stored only when the vehicle stays exactly where it is (speed +0.0, a result of +0.0
        // or below, both giving speed +0.0 and a move of +0.0, and a position, not -0.0, that
        // does not exceed the drivable): any other result moves it or changes its speed, so
        // the key cannot match next step (a move below half an ulp of the position aside,
        // which then just recomputes).
        if !related
            && recv == NONE
            && speed.to_bits() == 0
            && (result < 0.0 || result.to_bits() == 0)
            && dis.to_bits() != (-0.0f64).to_bits()
            && dis <= length
        {
            self.vehicles[v as usize].speed_memo = SpeedMemo { result, ..key };
        } else {
            self.vehicles[v as usize].speed_memo.drivable = NONE;
        }
        result
    }

    /// `Vehicle::setDeltaDistance`: moves along the plan, possibly across several drivables.
    fn set_delta_distance(&mut self, sc: &Scenario, v: u32, delta: f64) {
        let net = &sc.network;
        let veh = &self.vehicles[v as usize];
        if veh.buf.dis_set && delta >= veh.buf.delta_dis {
            return;
        }
        let mut dis = delta + veh.dis;
        let mut drivable = veh.drivable;
        let mut end = false;
        let mut changed = NONE;
        let mut drivable_set = false;
        let mut i = 0;
        while drivable != NONE && dis > net.drivable_length(drivable) {
            dis -= net.drivable_length(drivable);
            let next = self.next_drivable(sc, v, i);
            if next == NONE {
                end = true;
            }
            drivable = next;
            changed = next;
            drivable_set = true;
            i += 1;
        }
        let b = &mut self.vehicles[v as usize].buf;
        b.end = end;
        b.drivable_set = drivable_set;
        b.drivable = changed;
        b.delta_dis = delta;
        b.dis = dis;
        b.dis_set = true;
    }

    #[inline(never)]
    fn get_action(&mut self, sc: &Scenario) {
        self.push_buffer.clear();
        // Running slots in ascending order, a word of `running_bits` at a time: control starts
        // and frees no vehicle, so the words do not change during the walk.
        for w in 0..self.running_bits.len() {
            let mut word = self.running_bits[w];
            while word != 0 {
                let v = (w * 64) as u32 + word.trailing_zeros();
                word &= word - 1;
                self.vehicle_control(sc, v);
            }
        }
    }

    /// `Engine::vehicleControl`.
    ///
    /// A vehicle that stays exactly where it is (its decision is memoised, which it only is
    /// for a vehicle that stays, see [`State::next_speed_full`], and no lane-change partner
    /// shares the decision) leaves its buffer untouched: applying
    /// CityFlow's buffer (speed +0.0 over +0.0, position `+0.0 + dis`, `travelled + 0.0`, no
    /// drivable change, no stop counted) would change no field, and with nothing set
    /// [`State::update_action_and_leaders`] only clears its blocker, as applying would.
    fn vehicle_control(&mut self, sc: &Scenario, v: u32) {
        let dt = sc.settings.interval;
        let lane_change = sc.settings.lane_change;
        let veh = &self.vehicles[v as usize];
        let mut next_speed = if veh.buf.speed_set {
            veh.buf.speed
        } else if let Some(memo) = self.memo_hit(v) {
            if veh.partner == NONE && !veh.lc.changing {
                return;
            }
            memo.result
        } else {
            self.next_speed_full(sc, v)
        };
        if lane_change {
            let partner = self.vehicles[v as usize].partner;
            if partner != NONE && !self.vehicles[partner as usize].buf.speed_set {
                let partner_speed = self.next_speed(sc, partner);
                next_speed = min2(next_speed, partner_speed);
                let pb = &mut self.vehicles[partner as usize].buf;
                pb.speed = next_speed;
                pb.speed_set = true;
                if pb.end {
                    self.vehicles[v as usize].buf.end = true;
                }
            }
        }
        let veh = &self.vehicles[v as usize];
        let speed = veh.speed;
        let delta = if next_speed < 0.0 {
            let d = 0.5 * speed * speed / self.params[veh.pid as usize].max_neg_acc;
            next_speed = 0.0;
            d
        } else {
            (speed + next_speed) * dt / 2.0
        };
        {
            let b = &mut self.vehicles[v as usize].buf;
            b.speed = next_speed;
            b.speed_set = true;
        }
        self.set_delta_distance(sc, v, delta);

        if lane_change {
            let veh = &self.vehicles[v as usize];
            if !veh.is_real() && veh.buf.drivable_set && veh.buf.drivable != NONE {
                self.abort_lane_change(v);
            }
            let veh = &self.vehicles[v as usize];
            if veh.lc.changing {
                let dir = veh.lc.send.map_or(0, |s| s.direction);
                let target = veh.lc.send.map_or(NONE, |s| s.target);
                let net = &sc.network;
                let max_offset = if target != NONE {
                    (net.drivable_width(target) + net.drivable_width(veh.drivable)) / 2.0
                } else {
                    0.0
                };
                let mut new_offset =
                    (veh.offset + max2(0.2 * next_speed, 1.0) * dt * f64::from(dir)).abs();
                new_offset = min2(new_offset, max_offset);
                self.vehicles[v as usize].offset = new_offset * f64::from(dir);
                if new_offset >= max_offset {
                    self.finish_changing(sc, v);
                    self.vehicles[v as usize].buf.end = true;
                }
            }
        }
        let veh = &self.vehicles[v as usize];
        let b = &veh.buf;
        if b.end || b.drivable_set {
            // A vehicle's end and drivable change are final once its own control ran, and
            // only its own control sets them (a vehicle leaving above has neither: both are
            // cleared with its last applied buffer).
            if !b.end {
                self.push_buffer.push((v, b.dis));
            }
            let d = veh.drivable as usize;
            if !self.dirty[d] {
                self.dirty[d] = true;
                self.dirty_list.push(d as u32);
            }
        }
    }

    // ------------------------------------------------------------------------------------------
    // 7-8: moving between drivables, applying buffers

    #[inline(never)]
    fn update_location(&mut self, sc: &Scenario) {
        let net = &sc.network;
        let now = self.now(sc);
        self.removed.clear();
        self.ended.clear();
        // Drivable order, as CityFlow walks its drivables.
        self.dirty_list.sort_unstable();
        for k in 0..self.dirty_list.len() {
            let d = self.dirty_list[k] as usize;
            self.dirty[d] = false;
            let list = &mut self.lists[d];
            let vehicles = &self.vehicles;
            let ended = &mut self.ended;
            list.retain(|&v| {
                let b = &vehicles[v as usize].buf;
                if b.end {
                    ended.push(v);
                }
                !((b.drivable_set && b.drivable != NONE) || b.end)
            });
            if list.is_empty() {
                self.occupied[d / 64] &= !(1u64 << (d % 64));
            }
        }
        self.dirty_list.clear();
        for k in 0..self.ended.len() {
            let v = self.ended[k];
            self.removed.push(v);
            let veh = &self.vehicles[v as usize];
            if !veh.lc.finished {
                self.finished_count += 1;
                self.cumulative_travel_time += now - veh.enter_time;
            }
            let trip = self.ended_trip(v);
            let veh = &self.vehicles[v as usize];
            let travel_time = now - veh.enter_time;
            let delay = travel_time - veh.travelled / self.params[veh.pid as usize].max_speed;
            let stops = veh.stops;
            self.metrics
                .on_vehicle_removed(travel_time, delay, stops, trip);
            let veh = &self.vehicles[v as usize];
            // A partner left behind (only possible when the two halves of a lane change end
            // differently, which CityFlow leaves dangling) becomes a plain vehicle.
            let partner = veh.partner;
            if partner != NONE
                && self.vehicles[partner as usize].live
                && self.vehicles[partner as usize].partner == v
            {
                let p = &mut self.vehicles[partner as usize];
                p.partner = NONE;
                p.partner_type = 0;
                p.offset = 0.0;
                p.lc.changing = false;
            }
            self.active -= 1;
            self.free_slot(v);
        }
        // Re-insert movers, furthest along first (stable: ties keep vehicle order).
        self.push_buffer.sort_by(|a, b| b.1.total_cmp(&a.1));
        let nl = net.lane_count();
        for k in 0..self.push_buffer.len() {
            let v = self.push_buffer[k].0;
            let d = self.vehicles[v as usize].buf.drivable;
            if d == NONE {
                continue;
            }
            self.list_push(d, v);
            let veh = &mut self.vehicles[v as usize];
            let real = veh.is_real();
            let b = &mut veh.buf;
            b.link_time = if d >= nl { self.step } else { NOT_ON_LINK };
            b.link_time_set = true;
            if d >= nl && real {
                let rl = net.lane_links[(d - nl) as usize].road_link;
                self.metrics
                    .on_link_entered(net.road_links[rl as usize].intersection);
            }
        }
    }

    /// Whether removing `v` now ends a trip (a real vehicle reaching its destination), as
    /// opposed to the old half of a completed lane change or an aborted shadow.
    fn ended_trip(&self, v: u32) -> bool {
        let veh = &self.vehicles[v as usize];
        veh.is_real() && !veh.lc.finished && veh.buf.drivable_set && veh.buf.drivable == NONE
    }

    /// CityFlow's `updateAction` (apply every running vehicle's buffer) followed by
    /// `updateLeaderAndGap` for every vehicle, in one walk over the vehicle lists.
    ///
    /// Applying a buffer reads and writes only that vehicle (and the scenario), so the order the
    /// buffers are applied in does not matter: walking the lists instead of the slots gives the
    /// same state. Every running vehicle is on exactly one list (movers were pushed to their new
    /// list in `update_location`, finished ones removed), so every one is visited once. Within a
    /// list, the vehicle in front has had its buffer applied by the time its follower's gap is
    /// taken; the front vehicle of each list looks beyond its drivable, so those are done in a
    /// second walk once every buffer is applied.
    #[inline(never)]
    fn update_action_and_leaders(&mut self, sc: &Scenario) {
        let stamp = self.step + 1;
        let lane_change = sc.settings.lane_change;
        if self.removed_stamp.len() < self.vehicles.len() {
            self.removed_stamp.resize(self.vehicles.len(), 0);
        }
        for &r in &self.removed {
            self.removed_stamp[r as usize] = stamp;
        }
        let mut next = Self::next_bit(&self.occupied, 0);
        while next != NONE {
            let d = next as usize;
            next = Self::next_bit(&self.occupied, next + 1);
            // Nothing below changes a list: walk this one taken out of `lists` (no reload and
            // bounds check per vehicle), then put it back.
            let list = std::mem::take(&mut self.lists[d]);
            let lane_length = sc
                .network
                .is_lane(d as u32)
                .then(|| sc.network.lanes[d].length);
            let mut ahead = NONE;
            let mut ahead_back = 0.0;
            let mut queue = 0u32;
            for &v in &list {
                let blocker = self.vehicles[v as usize].buf.blocker;
                if blocker != NONE && self.removed_stamp[blocker as usize] == stamp {
                    let b = &mut self.vehicles[v as usize].buf;
                    b.blocker = NONE;
                    b.blocker_set = true;
                }
                if self.vehicles[v as usize].buf.speed_set {
                    self.apply_buffer(sc, v);
                } else {
                    // Stood still (see `vehicle_control`): no buffer field was set but maybe
                    // `blocker_set` just above, with no blocker.
                    let veh = &mut self.vehicles[v as usize];
                    veh.blocker = NONE;
                    veh.buf.blocker_set = false;
                }
                self.clear_signal(v);
                queue += u32::from(self.vehicles[v as usize].speed < crate::metrics::WAITING_SPEED);
                let veh = &mut self.vehicles[v as usize];
                if ahead != NONE {
                    veh.leader = ahead;
                    veh.gap = ahead_back - veh.dis;
                    if lane_change {
                        self.mark_lc_candidate(v, lane_length);
                    }
                }
                // The vehicle ahead's position and length, read once its buffer was applied
                // (the same `dis - len` as reading them when the follower is reached).
                let veh = &self.vehicles[v as usize];
                ahead_back = veh.dis - veh.len;
                ahead = v;
            }
            self.lists[d] = list;
            if let Some(q) = self.lane_queue.get_mut(d) {
                *q = queue;
            }
        }
        let mut next = Self::next_bit(&self.occupied, 0);
        while next != NONE {
            let d = next as usize;
            next = Self::next_bit(&self.occupied, next + 1);
            if let Some(&first) = self.lists[d].first() {
                self.update_leader(sc, first, NONE);
                if lane_change {
                    let lane_length = sc
                        .network
                        .is_lane(d as u32)
                        .then(|| sc.network.lanes[d].length);
                    self.mark_lc_candidate(first, lane_length);
                }
            }
        }
        for k in 0..self.inserted_list.len() {
            let d = self.inserted_list[k] as usize;
            self.inserted[d] = false;
        }
        self.inserted_list.clear();
        self.tail_changed.clear();
    }

    /// `Vehicle::update`.
    fn apply_buffer(&mut self, sc: &Scenario, v: u32) {
        let net = &sc.network;
        let veh = &mut self.vehicles[v as usize];
        let b = veh.buf;
        if b.dis_set {
            veh.dis = b.dis;
            veh.travelled += b.delta_dis;
        }
        if b.speed_set {
            if b.speed < 0.1 && veh.speed >= 0.1 {
                veh.stops += 1;
            }
            veh.speed = b.speed;
        }
        let mut drivable_changed = false;
        if b.drivable_set {
            veh.prev_drivable = veh.drivable;
            veh.drivable = b.drivable;
            drivable_changed = true;
        }
        if b.link_time_set {
            veh.link_time = b.link_time;
        }
        veh.blocker = if b.blocker_set { b.blocker } else { NONE };
        veh.buf.dis_set = false;
        veh.buf.speed_set = false;
        veh.buf.drivable_set = false;
        veh.buf.end = false;
        veh.buf.link_time_set = false;
        veh.buf.blocker_set = false;
        if drivable_changed {
            self.router_update(sc, v);
        }
        let _ = net;
    }

    /// `Router::update`: advance the route position to the new lane's road and replan.
    fn router_update(&mut self, sc: &Scenario, v: u32) {
        let net = &sc.network;
        let d = self.vehicles[v as usize].drivable;
        if d == NONE {
            return;
        }
        if net.is_lane(d) {
            let road = net.lanes[d as usize].road;
            let route = &sc.flows[self.vehicles[v as usize].route as usize].route;
            let veh = &mut self.vehicles[v as usize];
            while (veh.route_pos as usize) < route.len() && route[veh.route_pos as usize] != road {
                veh.route_pos += 1;
            }
        }
        let next = self.compute_next_cached(sc, v, d);
        self.vehicles[v as usize].next = next;
    }

    // ------------------------------------------------------------------------------------------
    // 4: lane changing (CityFlow's SimpleLaneChange)

    /// CityFlow rebuilds every lane's segments (`Lane::initSegments`) at the start of the
    /// lane-change phase. Only the lanes a lane change looks at need them, and a lane's segments
    /// depend only on its list, which nothing changes before the first shadow insertion; every
    /// lookup calls [`State::ensure_segments`] first, and every lane a shadow can be inserted
    /// into has been looked at during the signal pass. So segments are built lazily, once per
    /// step, with the same result.
    fn init_segments(&mut self, _sc: &Scenario) {}

    fn ensure_segments(&mut self, sc: &Scenario, lane: u32) {
        let net = &sc.network;
        if lane == NONE || !net.is_lane(lane) || self.seg_stamp[lane as usize] == self.step + 1 {
            return;
        }
        self.seg_stamp[lane as usize] = self.step + 1;
        let lane_id = lane as usize;
        let lane = &net.lanes[lane_id];
        {
            let base = self.seg_base[lane_id] as usize;
            let n = lane.segments as usize;
            let list = &self.lists[lane_id];
            let mut idx = 0usize;
            for s in (0..n).rev() {
                let start = s as f64 * lane.length / n as f64;
                while let Some(&x) = list.get(idx) {
                    let veh = &mut self.vehicles[x as usize];
                    if veh.dis < start {
                        break;
                    }
                    veh.segment = s as u32;
                    idx += 1;
                }
                self.seg_end[base + s] = idx as u32;
            }
        }
    }

    /// List range `[start, end)` of segment `s` of `lane`.
    fn seg_range(&self, sc: &Scenario, lane: u32, s: u32) -> (usize, usize) {
        let n = sc.network.lanes[lane as usize].segments;
        let base = self.seg_base[lane as usize] as usize;
        let end = self.seg_end[base + s as usize] as usize;
        let start = if s + 1 < n {
            self.seg_end[base + s as usize + 1] as usize
        } else {
            0
        };
        (start, end)
    }

    /// `Lane::getVehicleBeforeDistance`: nearest vehicle behind `dis`, searching from segment
    /// `s` towards the lane start.
    fn vehicle_before(&self, sc: &Scenario, lane: u32, dis: f64, s: u32) -> u32 {
        let n = sc.network.lanes[lane as usize].segments;
        if s >= n {
            return NONE;
        }
        let (start, _) = self.seg_range(sc, lane, s);
        let (_, end0) = self.seg_range(sc, lane, 0);
        let list = &self.lists[lane as usize];
        for &v in &list[start.min(list.len())..end0.min(list.len())] {
            if self.vehicles[v as usize].dis < dis {
                return v;
            }
        }
        NONE
    }

    /// `Lane::getVehicleAfterDistance`: nearest vehicle at or ahead of `dis`, searching from
    /// segment `s` towards the lane end.
    fn vehicle_after(&self, sc: &Scenario, lane: u32, dis: f64, s: u32) -> u32 {
        let n = sc.network.lanes[lane as usize].segments;
        if s >= n {
            return NONE;
        }
        let (_, end) = self.seg_range(sc, lane, s);
        let list = &self.lists[lane as usize];
        for &v in list[..end.min(list.len())].iter().rev() {
            if self.vehicles[v as usize].dis >= dis {
                return v;
            }
        }
        NONE
    }

    #[inline(never)]
    fn plan_lane_change(&mut self, sc: &Scenario) {
        self.lane_change_buffer.clear();
        // Running slots in ascending order, a word at a time (the signal pass starts no vehicle;
        // shadows are inserted after it).
        for w in 0..self.running_bits.len() {
            let mut word = self.running_bits[w] & self.lc_candidate[w];
            while word != 0 {
                let v = (w * 64) as u32 + word.trailing_zeros();
                word &= word - 1;
                self.lane_change_signal(sc, v);
            }
        }
        self.schedule_lane_change(sc);
    }

    /// One vehicle of the signal pass of [`State::plan_lane_change`].
    #[inline(always)]
    fn lane_change_signal(&mut self, sc: &Scenario, v: u32) {
        {
            let veh = &self.vehicles[v as usize];
            if !veh.is_real() {
                return;
            }
            if veh.lc.changing {
                // Its neighbours are looked up in this step's segments of both lanes.
                let (own, target) = (veh.drivable, veh.lc.send.map_or(NONE, |s| s.target));
                self.ensure_segments(sc, own);
                self.ensure_segments(sc, target);
            }
        }
        self.make_signal(sc, v);
        if self.plan_change(v) {
            self.lane_change_buffer.push(v);
        }
    }

    fn plan_change(&self, v: u32) -> bool {
        let veh = &self.vehicles[v as usize];
        veh.lc
            .send
            .is_some_and(|s| s.target != NONE && s.target != veh.drivable)
            || veh.lc.changing
    }

    /// `SimpleLaneChange::makeSignal`.
    ///
    /// CityFlow gives every running, real vehicle past its cooling time a signal object each
    /// step, most of them without a target. Only signals with a target are stored here; "has a
    /// signal" for the others is implied (see [`State::has_signal`]), which saves a write per
    /// vehicle per step and changes nothing else.
    fn make_signal(&mut self, sc: &Scenario, v: u32) {
        let net = &sc.network;
        let now = self.now(sc);
        let dt = sc.settings.interval;
        let veh = &self.vehicles[v as usize];
        if veh.lc.changing || now - veh.lc.last_change_time < 3.0 {
            return;
        }
        let mut signal = Signal {
            urgency: 0,
            direction: 0,
            target: NONE,
        };
        let d = veh.drivable;
        if net.is_lane(d) {
            let lane = &net.lanes[d as usize];
            let len = veh.len;
            let gap = veh.gap;
            let expected_gap = 2.0 * len + 4.0 * dt * self.params[veh.pid as usize].max_speed;
            if lane.length - veh.dis < 30.0 || gap > expected_gap || gap < 1.5 * len {
                return;
            }
            let cur_est = gap;
            let mut outer_est = 0.0;
            let road_lanes = net.roads[lane.road as usize].lanes.len() as u32;
            let on_last = self.on_last_road(sc, v);
            self.ensure_segments(sc, d);
            if lane.index + 1 < road_lanes {
                let outer = d + 1;
                if on_last || self.compute_next_side(sc, v, outer, 0) != NONE {
                    self.ensure_segments(sc, outer);
                    outer_est = self.estimate_gap(sc, v, outer);
                    if outer_est > cur_est + len {
                        signal.target = outer;
                    }
                }
            }
            if lane.index > 0 {
                let inner = d - 1;
                if on_last || self.compute_next_side(sc, v, inner, 1) != NONE {
                    self.ensure_segments(sc, inner);
                    let inner_est = self.estimate_gap(sc, v, inner);
                    if inner_est > cur_est + len && inner_est > outer_est {
                        signal.target = inner;
                    }
                }
            }
            signal.urgency = 1;
            // LaneChange::makeSignal: direction from the target.
            signal.direction = if signal.target == NONE {
                0
            } else if signal.target == d + 1 {
                1
            } else {
                -1
            };
        }
        if signal.target != NONE {
            self.vehicles[v as usize].lc.send = Some(signal);
        }
    }

    /// Whether CityFlow's `signalSend` would be set for `r` during this step's lane-change
    /// scheduling: an explicit signal (with a target, or kept while changing), or the implied
    /// empty one of every running real vehicle past its cooling time.
    fn has_signal(&self, sc: &Scenario, r: u32) -> bool {
        let rv = &self.vehicles[r as usize];
        rv.lc.send.is_some()
            || (rv.running
                && rv.is_real()
                && !rv.lc.changing
                && self.now(sc) - rv.lc.last_change_time >= 3.0)
    }

    /// `SimpleLaneChange::estimateGap`.
    fn estimate_gap(&self, sc: &Scenario, v: u32, lane: u32) -> f64 {
        let veh = &self.vehicles[v as usize];
        let leader = self.vehicle_after(sc, lane, veh.dis, veh.segment);
        if leader == NONE {
            sc.network.lanes[lane as usize].length - veh.dis
        } else {
            let l = &self.vehicles[leader as usize];
            l.dis - veh.dis - l.len
        }
    }

    #[inline(never)]
    fn schedule_lane_change(&mut self, sc: &Scenario) {
        // Urgency is 1 for every signal made on a lane; a stable sort keeps vehicle order.
        let mut buf = std::mem::take(&mut self.lane_change_buffer);
        buf.sort_by_key(|&v| {
            std::cmp::Reverse(self.vehicles[v as usize].lc.send.map_or(0, |s| s.urgency))
        });
        for &v in &buf {
            if !self.vehicles[v as usize].live {
                continue;
            }
            self.update_lane_change_neighbors(sc, v);
            self.send_signal(sc, v);
            if self.plan_change(v) && self.can_change(v) && !self.vehicles[v as usize].lc.changing {
                let veh = &self.vehicles[v as usize];
                let safe_after = veh.min_brake_distance(self.pv(v));
                let safe_before = if veh.lc.target_follower != NONE {
                    self.vehicles[veh.lc.target_follower as usize]
                        .min_brake_distance(self.pv(veh.lc.target_follower))
                } else {
                    0.0
                };
                if veh.lc.leader_gap >= safe_after
                    && veh.lc.follower_gap >= safe_before
                    && sc.network.is_lane(veh.drivable)
                {
                    self.insert_shadow(sc, v);
                }
            }
        }
        self.lane_change_buffer = buf;
    }

    fn can_change(&self, v: u32) -> bool {
        let lc = &self.vehicles[v as usize].lc;
        lc.send.is_some() && lc.recv == NONE
    }

    /// `LaneChange::updateLeaderAndFollower`.
    fn update_lane_change_neighbors(&mut self, sc: &Scenario, v: u32) {
        let net = &sc.network;
        let nl = net.lane_count();
        let veh = &self.vehicles[v as usize];
        let Some(target) = veh.lc.send.map(|s| s.target) else {
            return;
        };
        if target == NONE || !net.is_lane(veh.drivable) {
            let lc = &mut self.vehicles[v as usize].lc;
            lc.target_leader = NONE;
            lc.target_follower = NONE;
            return;
        }
        let (dis, seg, len) = (veh.dis, veh.segment, veh.len);
        let mut leader = self.vehicle_after(sc, target, dis, seg);
        let mut leader_gap;
        if leader == NONE {
            let rest = net.lanes[veh.drivable as usize].length - dis;
            leader_gap = rest;
            let mut gap = f64::MAX;
            for &ll in net.out_links(target) {
                if let Some(&l) = self.lists[(nl + ll) as usize].last() {
                    let lv = &self.vehicles[l as usize];
                    if lv.dis + rest < gap {
                        gap = lv.dis + rest;
                        if gap < lv.len {
                            leader = l;
                            leader_gap = rest - (lv.len - gap);
                        }
                    }
                }
            }
        } else {
            let lv = &self.vehicles[leader as usize];
            leader_gap = lv.dis - dis - lv.len;
        }
        let follower = self.vehicle_before(sc, target, dis, seg);
        let follower_gap = if follower != NONE {
            dis - self.vehicles[follower as usize].dis - len
        } else {
            f64::MAX
        };
        let lc = &mut self.vehicles[v as usize].lc;
        lc.target_leader = leader;
        lc.target_follower = follower;
        lc.leader_gap = leader_gap;
        lc.follower_gap = follower_gap;
    }

    fn send_signal(&mut self, sc: &Scenario, v: u32) {
        let (tl, tf) = {
            let lc = &self.vehicles[v as usize].lc;
            (lc.target_leader, lc.target_follower)
        };
        if tl != NONE {
            self.receive_signal(sc, tl, v);
        }
        if tf != NONE {
            self.receive_signal(sc, tf, v);
        }
    }

    /// `Vehicle::receiveSignal`: keep the signal of the highest-priority sender.
    fn receive_signal(&mut self, sc: &Scenario, r: u32, sender: u32) {
        let has_signal = self.has_signal(sc, r);
        let rv = &self.vehicles[r as usize];
        if rv.lc.changing {
            return;
        }
        let cur_priority = if rv.lc.recv != NONE {
            self.vehicles[rv.lc.recv as usize].priority
        } else {
            -1
        };
        let new_priority = self.vehicles[sender as usize].priority;
        if (rv.lc.recv == NONE || cur_priority < new_priority)
            && (!has_signal || rv.priority < new_priority)
        {
            self.vehicles[r as usize].lc.recv = sender;
        }
    }

    /// `Engine::insertShadow` + `LaneChange::insertShadow`.
    fn insert_shadow(&mut self, sc: &Scenario, v: u32) {
        let priority = self.draw_priority();
        let mut shadow = self.vehicles[v as usize].clone();
        shadow.priority = priority;
        shadow.name.shadow = true;
        shadow.flow = NONE;
        shadow.lc = LaneChangeState::default();
        shadow.speed_memo = SpeedMemo::default();
        let target = shadow_target(&self.vehicles[v as usize]);
        let target_leader = self.vehicles[v as usize].lc.target_leader;
        let target_follower = self.vehicles[v as usize].lc.target_follower;
        let seg = self.vehicles[v as usize].segment;
        shadow.partner_type = 2;
        shadow.partner = v;
        shadow.blocker = NONE;
        shadow.drivable = target;
        // Router copy: the route position restarts at the beginning, then update() finds the
        // target lane's road.
        shadow.route_pos = 0;
        let s = self.alloc_slot(shadow);
        self.set_running(s);
        self.priorities.insert(priority);
        self.active += 1;
        {
            let veh = &mut self.vehicles[v as usize];
            veh.lc.changing = true;
            veh.partner_type = 1;
            veh.partner = s;
        }
        self.router_update(sc, s);

        // Insert into the target lane just before the target follower (or at the end).
        let list = &self.lists[target as usize];
        let pos = if target_follower != NONE {
            list.iter()
                .position(|&x| x == target_follower)
                .unwrap_or(list.len())
        } else {
            list.len()
        };
        if pos == self.lists[target as usize].len() {
            self.tail_changed.push(target);
        }
        self.lists[target as usize].insert(pos, s);
        self.mark_inserted(target);
        self.occupied[target as usize / 64] |= 1u64 << (target % 64);
        // Keep the segment runs a partition of the list: the shadow joins segment `seg`.
        let base = self.seg_base[target as usize] as usize;
        let n = sc.network.lanes[target as usize].segments as usize;
        for k in 0..n {
            let e = &mut self.seg_end[base + k];
            if (*e as usize) > pos || (k <= seg as usize && (*e as usize) == pos) {
                *e += 1;
            }
        }
        self.update_leader(sc, s, target_leader);
        if target_follower != NONE {
            self.update_leader(sc, target_follower, s);
        }
    }

    /// `LaneChange::finishChanging` (the caller also ends `v`).
    fn finish_changing(&mut self, sc: &Scenario, v: u32) {
        let now = self.now(sc);
        let partner = {
            let veh = &mut self.vehicles[v as usize];
            veh.lc.changing = false;
            veh.lc.finished = true;
            veh.lc.last_change_time = now;
            veh.partner
        };
        if partner != NONE {
            let name = self.vehicles[v as usize].name;
            let p = &mut self.vehicles[partner as usize];
            if !p.is_real() {
                p.name = name;
            }
            p.partner_type = 0;
            p.offset = 0.0;
            p.partner = NONE;
        }
        self.vehicles[v as usize].partner = NONE;
        self.clear_signal(v);
    }

    /// `Vehicle::abortLaneChange` on a shadow.
    fn abort_lane_change(&mut self, s: u32) {
        self.vehicles[s as usize].buf.end = true;
        let partner = self.vehicles[s as usize].partner;
        if partner != NONE {
            let p = &mut self.vehicles[partner as usize];
            p.lc.changing = false;
            p.partner_type = 0;
            p.offset = 0.0;
            p.partner = NONE;
        }
        self.clear_signal(s);
    }

    /// `LaneChange::clearSignal`.
    fn clear_signal(&mut self, v: u32) {
        let lc = &mut self.vehicles[v as usize].lc;
        lc.target_leader = NONE;
        lc.target_follower = NONE;
        lc.last_dir = lc.send.map_or(0, |s| s.direction);
        if lc.changing {
            return;
        }
        lc.send = None;
        lc.recv = NONE;
    }

    // ------------------------------------------------------------------------------------------
    // Metrics

    #[inline(never)]
    fn record_metrics(&mut self, sc: &Scenario) {
        let active = self.active;
        let now = self.now(sc);
        let step = self.step;
        let State {
            metrics,
            lists,
            lane_queue,
            occupied,
            ..
        } = self;
        metrics.after_step(&sc.network, lists, occupied, lane_queue, active, step, now);
    }
}

fn shadow_target(v: &Vehicle) -> u32 {
    v.lc.send.map_or(NONE, |s| s.target)
}
