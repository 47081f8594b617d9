//! Vehicle state and CityFlow's per-vehicle formulas (car following, braking, reach times).
//!
//! Every formula is a line-by-line port of `src/vehicle/vehicle.cpp` (CityFlow @ 81ee0f4), with
//! the same operation order, so that the same inputs give the same bits. Comments name the C++
//! function each Rust function mirrors.

use crate::geometry::{max2, min2};
use crate::spec::VehicleSpec;

/// "No vehicle / no drivable" sentinel for `u32` indices.
pub(crate) const NONE: u32 = u32::MAX;

/// CityFlow's `eps`.
const EPS: f64 = 1e-8;

/// CityFlow stores `std::numeric_limits<int>::max()` as "not on a lane link".
pub(crate) const NOT_ON_LINK: u64 = i32::MAX as u64;

/// Kinematic parameters of a vehicle (CityFlow's `VehicleInfo` minus the dynamic speed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Params {
    pub(crate) len: f64,
    pub(crate) width: f64,
    pub(crate) max_pos_acc: f64,
    pub(crate) max_neg_acc: f64,
    pub(crate) usual_pos_acc: f64,
    pub(crate) usual_neg_acc: f64,
    pub(crate) min_gap: f64,
    pub(crate) max_speed: f64,
    pub(crate) headway_time: f64,
    /// Distance kept before a crossing point when yielding (CityFlow default 5 m).
    pub(crate) yield_distance: f64,
    /// Speed limit through turning lane links (CityFlow default 8.3333 m/s).
    pub(crate) turn_speed: f64,
    /// Distance to the stop line within which intersection logic applies.
    pub(crate) approach_distance: f64,
    /// How far ahead (beyond the current drivable) a leader is searched for.
    pub(crate) leader_search_distance: f64,
    /// `getNoCollisionSpeed`'s `a = 0.5 / dF` and `0.5 / a` for dF = `max_neg_acc`, then for
    /// dF = `usual_neg_acc`: the same operations CityFlow does per call, done once.
    pub(crate) nc_max: (f64, f64),
    pub(crate) nc_usual: (f64, f64),
    /// `1 / k` of `nc_max` and `nc_usual` (approximate; only used for bounds).
    pub(crate) nc_max_inv_k: f64,
    pub(crate) nc_usual_inv_k: f64,
    /// The gap range in which a vehicle looks for a lane change (`SimpleLaneChange::makeSignal`:
    /// `1.5 len` and `2 len + 4 interval maxSpeed`, the same operations).
    pub(crate) lc_gap_min: f64,
    pub(crate) lc_gap_max: f64,
}

impl Params {
    pub(crate) fn new(spec: &VehicleSpec, interval: f64) -> Params {
        // Vehicle::Vehicle: approachingIntersectionDistance; updateLeaderAndGap's horizon uses the
        // same expression.
        let horizon = spec.max_speed * spec.max_speed / spec.usual_neg_acc / 2.0
            + spec.max_speed * interval * 2.0;
        Params {
            len: spec.length,
            width: spec.width,
            max_pos_acc: spec.max_pos_acc,
            max_neg_acc: spec.max_neg_acc,
            usual_pos_acc: spec.usual_pos_acc,
            usual_neg_acc: spec.usual_neg_acc,
            min_gap: spec.min_gap,
            max_speed: spec.max_speed,
            headway_time: spec.headway_time,
            yield_distance: 5.0,
            turn_speed: 8.3333,
            approach_distance: horizon,
            leader_search_distance: horizon,
            nc_max: nc_coefficients(spec.max_neg_acc),
            nc_usual: nc_coefficients(spec.usual_neg_acc),
            nc_max_inv_k: 1.0 / nc_coefficients(spec.max_neg_acc).1,
            nc_usual_inv_k: 1.0 / nc_coefficients(spec.usual_neg_acc).1,
            lc_gap_min: 1.5 * spec.length,
            lc_gap_max: 2.0 * spec.length + 4.0 * interval * spec.max_speed,
        }
    }
}

fn nc_coefficients(df: f64) -> (f64, f64) {
    let a = 0.5 / df;
    (a, 0.5 / a)
}

/// A lane-change request (CityFlow's `LaneChange::Signal`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Signal {
    pub(crate) urgency: i32,
    /// -1 inner (left), 1 outer (right), 0 none.
    pub(crate) direction: i32,
    /// Target lane, or `NONE`.
    pub(crate) target: u32,
}

/// CityFlow's `SimpleLaneChange` object state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LaneChangeState {
    pub(crate) last_dir: i32,
    /// The vehicle whose signal this one received (`signalRecv->source`), or `NONE`.
    pub(crate) recv: u32,
    pub(crate) send: Option<Signal>,
    pub(crate) target_leader: u32,
    pub(crate) target_follower: u32,
    pub(crate) leader_gap: f64,
    pub(crate) follower_gap: f64,
    pub(crate) changing: bool,
    pub(crate) finished: bool,
    pub(crate) last_change_time: f64,
}

impl Default for LaneChangeState {
    fn default() -> Self {
        LaneChangeState {
            last_dir: 0,
            recv: NONE,
            send: None,
            target_leader: NONE,
            target_follower: NONE,
            leader_gap: 0.0,
            follower_gap: 0.0,
            changing: false,
            finished: false,
            last_change_time: 0.0,
        }
    }
}

/// Values computed during a step and applied at its end (CityFlow's `Vehicle::Buffer`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Buffer {
    pub(crate) dis_set: bool,
    pub(crate) speed_set: bool,
    pub(crate) drivable_set: bool,
    pub(crate) end: bool,
    pub(crate) link_time_set: bool,
    pub(crate) blocker_set: bool,
    pub(crate) dis: f64,
    pub(crate) delta_dis: f64,
    pub(crate) speed: f64,
    pub(crate) drivable: u32,
    /// Kept across steps, like CityFlow's (only `blocker_set` says whether it is fresh).
    pub(crate) blocker: u32,
    pub(crate) link_time: u64,
}

impl Default for Buffer {
    fn default() -> Self {
        Buffer {
            dis_set: false,
            speed_set: false,
            drivable_set: false,
            end: false,
            link_time_set: false,
            blocker_set: false,
            dis: 0.0,
            delta_dis: 0.0,
            speed: 0.0,
            drivable: NONE,
            blocker: NONE,
            link_time: 0,
        }
    }
}

/// The inputs and the result of a vehicle's last speed decision (`State::next_speed`), kept
/// only when the decision did not depend on signals, crossing points or lane-change requests,
/// i.e. was a pure function of these fields, and when it leaves the vehicle standing where it
/// is (otherwise the inputs change). Queued vehicles standing behind a standing leader (about
/// 40% of the vehicle-steps of a Jinan episode) ask the same question every step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SpeedMemo {
    /// Own speed, position and gap, and the leader's speed, as bits (`NONE` drivable: empty).
    pub(crate) speed: u64,
    pub(crate) dis: u64,
    pub(crate) gap: u64,
    pub(crate) leader_speed: u64,
    pub(crate) drivable: u32,
    pub(crate) next: u32,
    /// The leader's parameter set (`NONE`: no leader).
    pub(crate) leader_pid: u32,
    pub(crate) result: f64,
}

impl Default for SpeedMemo {
    fn default() -> Self {
        SpeedMemo {
            speed: 0,
            dis: 0,
            gap: 0,
            leader_speed: 0,
            drivable: NONE,
            next: NONE,
            leader_pid: NONE,
            result: 0.0,
        }
    }
}

/// A vehicle's printable id: `flow_<flow>_<seq>`, with `_shadow` while it is the shadow half of
/// a lane change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VehicleName {
    pub(crate) flow: u32,
    pub(crate) seq: u32,
    pub(crate) shadow: bool,
}

/// One vehicle slot. Shadows (the target-lane half of a lane change) are vehicles too, as in
/// CityFlow.
///
/// `repr(C)` with the fields in the order the step touches them: speed, position, leader and
/// the indices the speed decision reads share the first cache line, the buffer the second,
/// the lane-change state the third; identity, metrics and caches come last.
#[derive(Debug, Clone, PartialEq)]
#[repr(C)]
pub(crate) struct Vehicle {
    pub(crate) speed: f64,
    pub(crate) dis: f64,
    pub(crate) gap: f64,
    pub(crate) drivable: u32,
    /// Cached first planned drivable (CityFlow's `planned[0]`), recomputed on every drivable
    /// change.
    pub(crate) next: u32,
    pub(crate) leader: u32,
    /// Index of the vehicle's kinematic parameters in the simulation's parameter table (shared:
    /// every benchmark vehicle has the same ones, and 150 bytes less per vehicle keep the hot
    /// state in cache).
    pub(crate) pid: u32,
    pub(crate) partner: u32,
    /// Its parameter set's length (copied: read for every follower's gap).
    pub(crate) len: f64,
    /// Route: index of the flow whose resolved route it follows.
    pub(crate) route: u32,
    /// Position in the route (CityFlow's `iCurRoad`).
    pub(crate) route_pos: u32,
    pub(crate) blocker: u32,
    pub(crate) live: bool,
    pub(crate) running: bool,
    /// 0 none, 1 has a shadow, 2 is a shadow.
    pub(crate) partner_type: u8,
    pub(crate) buf: Buffer,
    pub(crate) prev_drivable: u32,
    pub(crate) segment: u32,
    /// Last road of the route (`NONE` for an invalid route).
    pub(crate) last_road: u32,
    pub(crate) priority: i32,
    pub(crate) lc: LaneChangeState,
    pub(crate) link_time: u64,
    pub(crate) offset: f64,
    /// Metres travelled (for delay).
    pub(crate) travelled: f64,
    pub(crate) enter_time: f64,
    /// Number of stops (speed falling below 0.1 m/s).
    pub(crate) stops: u32,
    /// Flow that created it (`NONE` for shadows, which CityFlow creates without a flow).
    pub(crate) flow: u32,
    /// Routing cache: from lane `memo_lane` at route position `memo_pos`, the route continues
    /// through drivable `memo_next` (`memo_lane == NONE`: empty).
    pub(crate) memo_lane: u32,
    pub(crate) memo_pos: u32,
    pub(crate) memo_next: u32,
    pub(crate) name: VehicleName,
    /// The same for the outer and the inner neighbour lane (lane-change checks).
    pub(crate) side_memo: [(u32, u32, u32); 2],
    /// The last speed decision, when it can be reused.
    pub(crate) speed_memo: SpeedMemo,
}

impl Vehicle {
    pub(crate) fn is_real(&self) -> bool {
        self.partner_type != 2
    }

    /// `getMinBrakeDistance`.
    #[inline]
    pub(crate) fn min_brake_distance(&self, p: &Params) -> f64 {
        0.5 * self.speed * self.speed / p.max_neg_acc
    }

    /// `getBrakeDistanceAfterAccel`.
    #[inline]
    pub(crate) fn brake_distance_after_accel(&self, acc: f64, dec: f64, interval: f64) -> f64 {
        let current = self.speed;
        let next = current + acc * interval;
        (current + next) * interval / 2.0 + (next * next / dec / 2.0)
    }

    /// `getStopBeforeSpeed`.
    #[inline]
    pub(crate) fn stop_before_speed(&self, p: &Params, distance: f64, interval: f64) -> f64 {
        if self.brake_distance_after_accel(p.usual_pos_acc, p.usual_neg_acc, interval) < distance {
            return self.speed + p.usual_pos_acc * interval;
        }
        let take_interval = 2.0 * distance / (self.speed + EPS) / interval;
        if take_interval >= 1.0 {
            // C++ `(int) takeInterval` truncates toward zero.
            self.speed - self.speed / f64::from(take_interval as i32)
        } else {
            self.speed - self.speed / take_interval
        }
    }

    /// `canYield`.
    #[inline]
    pub(crate) fn can_yield(&self, p: &Params, dist: f64) -> bool {
        (dist > 0.0 && self.min_brake_distance(p) < dist - p.yield_distance)
            || (dist < 0.0 && dist + p.len < 0.0)
    }

    /// `getDistanceUntilSpeed`.
    fn distance_until_speed(&self, speed: f64, acc: f64, interval: f64) -> f64 {
        if speed <= self.speed {
            return 0.0;
        }
        let stage1_steps = ((speed - self.speed) / acc / interval).floor() as i32;
        let stage1_speed = self.speed + f64::from(stage1_steps) * acc / interval;
        let stage1_dis = (self.speed + stage1_speed) * (f64::from(stage1_steps) * interval) / 2.0;
        stage1_dis
            + if stage1_speed < speed {
                (stage1_speed + speed) * interval / 2.0
            } else {
                0.0
            }
    }

    /// `getReachSteps`.
    pub(crate) fn reach_steps(
        &self,
        distance: f64,
        target_speed: f64,
        acc: f64,
        interval: f64,
    ) -> i64 {
        if distance <= 0.0 {
            return 0;
        }
        if self.speed > target_speed {
            return (distance / self.speed).ceil() as i32 as i64;
        }
        let until = self.distance_until_speed(target_speed, acc, interval);
        if until > distance {
            ((self.speed * self.speed + 2.0 * acc * distance).sqrt() - self.speed) / acc / interval
        } else {
            ((target_speed - self.speed) / acc / interval).ceil()
                + ((distance - until) / target_speed / interval).ceil()
        }
        .ceil() as i32 as i64
    }

    /// `getCarFollowSpeed` given the leader's speed and decelerations.
    #[inline]
    #[cfg(test)]
    pub(crate) fn car_follow_speed(
        &self,
        p: &Params,
        leader: Option<(f64, f64, f64)>,
        interval: f64,
    ) -> f64 {
        let Some((leader_speed, leader_max_neg, leader_usual_neg)) = leader else {
            return p.max_speed;
        };
        // `0.5 * vL * vL / dL` is the leader's braking distance; with equal decelerations (every
        // benchmark vehicle) both calls compute the same value.
        let half_vl2 = 0.5 * leader_speed * leader_speed;
        let brake_max = half_vl2 / leader_max_neg;
        let brake_usual = if leader_usual_neg == leader_max_neg {
            brake_max
        } else {
            half_vl2 / leader_usual_neg
        };
        let mut v = nc_speed(
            leader_speed,
            leader_max_neg,
            brake_max,
            self.speed,
            p.nc_max,
            self.gap,
            interval,
            0.0,
        );
        let assume_decel = if self.speed > leader_speed {
            self.speed - leader_speed
        } else {
            0.0
        };
        v = min2(
            v,
            nc_speed(
                leader_speed,
                leader_usual_neg,
                brake_usual,
                self.speed,
                p.nc_usual,
                self.gap,
                interval,
                p.min_gap,
            ),
        );
        min2(
            v,
            (self.gap + (leader_speed + assume_decel / 2.0) * interval
                - self.speed * interval / 2.0)
                / (p.headway_time + interval / 2.0),
        )
    }
}

impl Vehicle {
    /// `min2(bound, car_follow_speed(leader, interval))`, bit-identical, but skipping each of
    /// the two square roots of `getNoCollisionSpeed` when a cheap bound proves its term cannot
    /// be the minimum.
    ///
    /// Every term is finite here (a square root is only taken of a non-negative argument), and
    /// the minimum of finite numbers does not depend on the order it is taken in, so leaving
    /// out a term that is strictly larger than another one gives the same bits. A root term
    /// `k * (sqrt(D) - b)` is left out only when `sqrt(D)` exceeds `bound / k + b` by a
    /// relative and absolute margin of 1e-9, many orders of magnitude above the rounding error
    /// of either side.
    #[inline]
    pub(crate) fn car_follow_min(
        &self,
        p: &Params,
        leader: Option<(f64, f64, f64)>,
        interval: f64,
        bound: f64,
    ) -> f64 {
        let Some((leader_speed, leader_max_neg, leader_usual_neg)) = leader else {
            return min2(bound, p.max_speed);
        };
        let half_vl2 = 0.5 * leader_speed * leader_speed;
        let brake_max = half_vl2 / leader_max_neg;
        let brake_usual = if leader_usual_neg == leader_max_neg {
            brake_max
        } else {
            half_vl2 / leader_usual_neg
        };
        let assume_decel = if self.speed > leader_speed {
            self.speed - leader_speed
        } else {
            0.0
        };
        let headway = (self.gap + (leader_speed + assume_decel / 2.0) * interval
            - self.speed * interval / 2.0)
            / (p.headway_time + interval / 2.0);
        // The square-root-free terms first.
        let b = 0.5 * interval;
        let tail = |target_gap: f64| {
            let t = 2.0 * (self.gap - target_gap);
            if interval == 1.0 { t } else { t / interval }
        };
        let v2_max = 2.0 * leader_speed - leader_max_neg * interval + tail(0.0);
        let v2_usual = 2.0 * leader_speed - leader_usual_neg * interval + tail(p.min_gap);
        let mut m = min2(min2(min2(bound, headway), v2_max), v2_usual);
        for (dl_brake, (a, k), inv_k, target_gap) in [
            (brake_max, p.nc_max, p.nc_max_inv_k, 0.0),
            (brake_usual, p.nc_usual, p.nc_usual_inv_k, p.min_gap),
        ] {
            let c = self.speed * interval / 2.0 + target_gap - dl_brake - self.gap;
            if b * b < 4.0 * a * c {
                m = min2(m, -100.0);
                continue;
            }
            let d = b * b - 4.0 * a * c;
            let t = m * inv_k + b;
            if t > 0.0 {
                let s = t * (1.0 + 1e-9) + 1e-9;
                if d > s * s {
                    continue;
                }
            }
            m = min2(m, k * (d.sqrt() - b));
        }
        m
    }
}

/// `getNoCollisionSpeed` with the per-vehicle and per-leader divisions done by the caller:
/// `brake_l = 0.5 * vl * vl / dl`, `(a, k) = (0.5 / df, 0.5 / a)`. Bit-identical to
/// [`no_collision_speed`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
#[cfg(test)]
fn nc_speed(
    vl: f64,
    dl: f64,
    brake_l: f64,
    vf: f64,
    (a, k): (f64, f64),
    gap: f64,
    interval: f64,
    target_gap: f64,
) -> f64 {
    let c = vf * interval / 2.0 + target_gap - brake_l - gap;
    let b = 0.5 * interval;
    if b * b < 4.0 * a * c {
        return -100.0;
    }
    let v1 = k * ((b * b - 4.0 * a * c).sqrt() - b);
    // x / 1.0 == x exactly; skip the division for the usual 1 s step.
    let tail = 2.0 * (gap - target_gap);
    let v2 = 2.0 * vl - dl * interval
        + if interval == 1.0 {
            tail
        } else {
            tail / interval
        };
    min2(v1, v2)
}

/// `getNoCollisionSpeed`: the largest follower speed that still lets it stop behind a leader
/// braking at `dl`, or -100 when even full braking cannot (no real root).
#[inline]
pub(crate) fn no_collision_speed(
    vl: f64,
    dl: f64,
    vf: f64,
    df: f64,
    gap: f64,
    interval: f64,
    target_gap: f64,
) -> f64 {
    let c = vf * interval / 2.0 + target_gap - 0.5 * vl * vl / dl - gap;
    let a = 0.5 / df;
    let b = 0.5 * interval;
    if b * b < 4.0 * a * c {
        return -100.0;
    }
    let v1 = 0.5 / a * ((b * b - 4.0 * a * c).sqrt() - b);
    let v2 = 2.0 * vl - dl * interval + 2.0 * (gap - target_gap) / interval;
    min2(v1, v2)
}

/// Final clamp of a speed decision: never brake harder than `max_neg_acc`.
#[inline]
pub(crate) fn floor_speed(v: f64, speed: f64, max_neg_acc: f64, interval: f64) -> f64 {
    max2(v, speed - max_neg_acc * interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bench() -> Params {
        Params::new(&VehicleSpec::BENCHMARK, 1.0)
    }

    fn car(speed: f64) -> Vehicle {
        Vehicle {
            live: true,
            running: true,
            name: VehicleName {
                flow: 0,
                seq: 0,
                shadow: false,
            },
            flow: 0,
            route: 0,
            route_pos: 0,
            last_road: NONE,
            pid: 0,
            len: 5.0,
            priority: 0,
            enter_time: 0.0,
            speed,
            dis: 0.0,
            drivable: 0,
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
        }
    }

    #[test]
    fn no_collision_speed_lets_the_follower_stop_in_time() {
        // Follower at 10 m/s, stationary leader 20 m ahead, both brake at 4.5 m/s².
        let v = no_collision_speed(0.0, 4.5, 10.0, 4.5, 20.0, 1.0, 0.0);
        // Travelling (10+v)/2 this step and then braking v²/9 must fit in 20 m.
        assert!((10.0 + v) / 2.0 + v * v / 9.0 <= 20.0 + 1e-9, "v = {v}");
        assert!(v > 8.0 && v < 12.0);
        // With the leader closer than the follower can stop, there is no real root.
        assert_eq!(
            no_collision_speed(0.0, 4.5, 30.0, 1.0, 1.0, 1.0, 0.0),
            -100.0
        );
    }

    #[test]
    fn precomputed_no_collision_speed_is_bit_identical() {
        let mut rng = crate::rng::Mt19937::new(7);
        let mut u =
            move |lo: f64, hi: f64| lo + (hi - lo) * f64::from(rng.next_u32()) / 4_294_967_296.0;
        for _ in 0..100_000 {
            let (vl, dl, vf, df) = (u(0.0, 15.0), u(1.0, 9.0), u(0.0, 15.0), u(1.0, 9.0));
            let (gap, tg) = (u(-5.0, 80.0), u(0.0, 3.0));
            let interval = if u(0.0, 1.0) < 0.5 { 1.0 } else { u(0.2, 1.5) };
            let a = 0.5 / df;
            let reference = no_collision_speed(vl, dl, vf, df, gap, interval, tg);
            let fast = nc_speed(
                vl,
                dl,
                0.5 * vl * vl / dl,
                vf,
                (a, 0.5 / a),
                gap,
                interval,
                tg,
            );
            assert_eq!(
                reference.to_bits(),
                fast.to_bits(),
                "{vl} {dl} {vf} {df} {gap} {tg} {interval}"
            );
        }
    }

    #[test]
    fn bounded_car_follow_is_bit_identical() {
        let mut rng = crate::rng::Mt19937::new(11);
        let mut u =
            move |lo: f64, hi: f64| lo + (hi - lo) * f64::from(rng.next_u32()) / 4_294_967_296.0;
        let mut skipped_both = 0;
        for i in 0..400_000 {
            let mut c = car(u(0.0, 15.0));
            let mut p = bench();
            if i % 3 == 0 {
                let spec = VehicleSpec {
                    max_neg_acc: u(1.0, 9.0),
                    usual_neg_acc: u(1.0, 9.0),
                    min_gap: u(0.0, 5.0),
                    headway_time: u(0.5, 3.0),
                    ..VehicleSpec::BENCHMARK
                };
                p = Params::new(&spec, 1.0);
            }
            c.gap = if i % 7 == 0 {
                u(-3.0, 3.0)
            } else {
                u(-5.0, 200.0)
            };
            let interval = if i % 5 == 0 { u(0.2, 1.5) } else { 1.0 };
            let leader = match i % 11 {
                0 => None,
                1 => Some((u(0.0, 15.0), 4.5, 4.5)),
                _ => Some((u(0.0, 15.0), u(1.0, 9.0), u(1.0, 9.0))),
            };
            let bound = match i % 4 {
                0 => u(-3.0, 3.0),
                1 => u(0.0, 20.0),
                2 => p.max_speed,
                _ => c.speed + p.max_pos_acc * interval,
            };
            let reference = min2(bound, c.car_follow_speed(&p, leader, interval));
            let fast = c.car_follow_min(&p, leader, interval, bound);
            assert_eq!(
                reference.to_bits(),
                fast.to_bits(),
                "speed {} gap {} interval {interval} leader {leader:?} bound {bound}",
                c.speed,
                c.gap
            );
            if fast == bound {
                skipped_both += 1;
            }
        }
        assert!(skipped_both > 10_000);
    }

    #[test]
    fn free_road_car_follow_is_max_speed() {
        let c = car(5.0);
        assert_eq!(c.car_follow_speed(&bench(), None, 1.0), 11.111);
    }

    #[test]
    fn stop_before_speed_accelerates_when_far_and_brakes_when_near() {
        let c = car(10.0);
        assert_eq!(c.stop_before_speed(&bench(), 200.0, 1.0), 12.0);
        // 2*12/10 = 2.4 steps -> truncated to 2 -> v - v/2.
        assert_eq!(c.stop_before_speed(&bench(), 12.0, 1.0), 5.0);
        // Less than one step away: negative speed (the caller floors it).
        assert!(c.stop_before_speed(&bench(), 2.0, 1.0) < 0.0);
    }

    #[test]
    fn reach_steps_counts_acceleration_phase() {
        let c = car(0.0);
        // From rest at 2 m/s²: 1, 4, 9 m after 1, 2, 3 s (continuous), so 9 m needs 3 steps.
        assert_eq!(c.reach_steps(9.0, 11.111, 2.0, 1.0), 3);
        assert_eq!(c.reach_steps(0.0, 11.111, 2.0, 1.0), 0);
        let fast = car(11.0);
        assert_eq!(fast.reach_steps(23.0, 8.3333, 2.0, 1.0), 3);
    }

    #[test]
    fn can_yield_needs_braking_room() {
        let c = car(9.0); // brakes in 9 m
        assert!(c.can_yield(&bench(), 15.0));
        assert!(!c.can_yield(&bench(), 13.0));
        assert!(c.can_yield(&bench(), -6.0)); // already fully past
        assert!(!c.can_yield(&bench(), -3.0)); // straddling the point
    }
}
