//! Plane geometry, ported operation by operation from CityFlow's `utility.cpp` and `roadnet.cpp`
//! so that lane lengths and crossing points come out bit-identical (same IEEE operations in the
//! same order; `sqrt` is correctly rounded in both languages and `sin`/`atan2` come from the same
//! libm).

use crate::spec::Point;

/// CityFlow's `Point::eps`.
pub(crate) const EPS: f64 = 1e-8;

pub(crate) fn sub(a: Point, b: Point) -> Point {
    Point {
        x: a.x - b.x,
        y: a.y - b.y,
    }
}

pub(crate) fn add(a: Point, b: Point) -> Point {
    Point {
        x: a.x + b.x,
        y: a.y + b.y,
    }
}

pub(crate) fn scale(a: Point, k: f64) -> Point {
    Point {
        x: a.x * k,
        y: a.y * k,
    }
}

pub(crate) fn len(a: Point) -> f64 {
    (a.x * a.x + a.y * a.y).sqrt()
}

pub(crate) fn unit(a: Point) -> Point {
    let l = len(a);
    Point {
        x: a.x / l,
        y: a.y / l,
    }
}

/// CityFlow's `normal()`: rotate by +90°.
pub(crate) fn normal(a: Point) -> Point {
    Point { x: -a.y, y: a.x }
}

pub(crate) fn cross(a: Point, b: Point) -> f64 {
    a.x * b.y - a.y * b.x
}

pub(crate) fn dot(a: Point, b: Point) -> f64 {
    a.x * b.x + a.y * b.y
}

/// CityFlow's `Point::sign` with its ±1e-8 dead zone.
pub(crate) fn sign(x: f64) -> i32 {
    i32::from(x + EPS > 0.0) - i32::from(x < EPS)
}

/// Intersection of line AB with line CD (callers exclude parallel lines first).
pub(crate) fn intersect(a: Point, b: Point, c: Point, d: Point) -> Point {
    let u = sub(b, a);
    let v = sub(d, c);
    add(a, scale(u, cross(sub(c, a), v) / cross(u, v)))
}

pub(crate) fn on_segment(a: Point, b: Point, p: Point) -> bool {
    let v1 = cross(sub(b, a), sub(p, a));
    let v2 = dot(sub(p, a), sub(p, b));
    sign(v1) == 0 && sign(v2) <= 0
}

/// Interpolates `p1 → p2` at fraction `a` (CityFlow's `RoadNet::getPoint`).
pub(crate) fn lerp(p1: Point, p2: Point, a: f64) -> Point {
    Point {
        x: (p2.x - p1.x) * a + p1.x,
        y: (p2.y - p1.y) * a + p1.y,
    }
}

/// Total length of a polyline.
pub fn polyline_length(points: &[Point]) -> f64 {
    let mut length = 0.0;
    for w in points.windows(2) {
        length += len(sub(w[1], w[0]));
    }
    length
}

/// The point at distance `dis` along a polyline, clamped to its ends.
pub fn point_at(points: &[Point], dis: f64) -> Point {
    let Some(&first) = points.first() else {
        return Point::default();
    };
    let total = polyline_length(points);
    let mut dis = min2(max2(dis, 0.0), total);
    if dis <= 0.0 {
        return first;
    }
    for w in points.windows(2) {
        let l = len(sub(w[0], w[1]));
        if dis > l {
            dis -= l;
        } else {
            return add(w[0], scale(sub(w[1], w[0]), dis / l));
        }
    }
    points.last().copied().unwrap_or(first)
}

/// The unit direction of the polyline segment containing distance `dis`.
pub fn direction_at(points: &[Point], dis: f64) -> Point {
    let mut remain = dis;
    for w in points.windows(2) {
        let l = len(sub(w[1], w[0]));
        if remain < l {
            return unit(sub(w[1], w[0]));
        }
        remain -= l;
    }
    match points {
        [.., a, b] => unit(sub(*b, *a)),
        _ => Point { x: 1.0, y: 0.0 },
    }
}

/// CityFlow's `min2double`: returns `y` when `x` is NaN, unlike `f64::min`.
#[inline(always)]
pub(crate) fn min2(x: f64, y: f64) -> f64 {
    if x < y { x } else { y }
}

/// CityFlow's `max2double`.
#[inline(always)]
pub(crate) fn max2(x: f64, y: f64) -> f64 {
    if x > y { x } else { y }
}

/// Lane centre lines of a road (CityFlow's `Road::initLanesPoints`): the road's polyline, with
/// its ends pulled back by `trim_start`/`trim_end` (the intersection widths), offset to the
/// right by the middle of each lane.
pub(crate) fn lane_polylines(
    road_points: &[Point],
    lane_widths: &[f64],
    trim_start: Option<f64>,
    trim_end: Option<f64>,
) -> Vec<Vec<Point>> {
    let mut rp = road_points.to_vec();
    let n = rp.len();
    if n < 2 {
        return lane_widths.iter().map(|_| rp.clone()).collect();
    }
    if let Some(width) = trim_start {
        let (p1, p2) = (rp[0], rp[1]);
        rp[0] = add(p1, scale(unit(sub(p2, p1)), width));
    }
    if let Some(width) = trim_end {
        let (p1, p2) = (rp[n - 2], rp[n - 1]);
        rp[n - 1] = sub(p2, scale(unit(sub(p2, p1)), width));
    }
    let mut dsum = 0.0;
    let mut out = Vec::with_capacity(lane_widths.len());
    for &w in lane_widths {
        let dmin = dsum;
        let dmax = dsum + w;
        let offset = (dmin + dmax) / 2.0;
        let mut pts = Vec::with_capacity(n);
        for j in 0..n {
            let u = if j == 0 {
                unit(sub(rp[1], rp[0]))
            } else if j + 1 == n {
                unit(sub(rp[j], rp[j - 1]))
            } else {
                let u1 = unit(sub(rp[j + 1], rp[j]));
                let u2 = unit(sub(rp[j], rp[j - 1]));
                unit(add(u1, u2))
            };
            let v = scale(normal(u), -1.0);
            // CityFlow writes `-u.normal()`, i.e. (u.y, -u.x); negating each coordinate is exact.
            pts.push(add(rp[j], scale(v, offset)));
        }
        out.push(pts);
        dsum += w;
    }
    out
}

/// The 10-segment curve CityFlow builds for a lane link without `points`: a cubic Bézier from
/// `start` (heading `start_dir`) to `end` (heading `end_dir`), control points half the chord
/// away (at least 5 m when the intersection is at least 5 m wide).
pub(crate) fn lane_link_curve(
    start: Point,
    start_dir: Point,
    start_width: f64,
    end: Point,
    end_dir: Point,
    end_width: f64,
) -> Vec<Point> {
    let chord = len(Point {
        x: end.x - start.x,
        y: end.y - start.y,
    });
    let min_gap = 5.0;
    let mut gap1 = Point {
        x: start_dir.x * chord * 0.5,
        y: start_dir.y * chord * 0.5,
    };
    let mut gap2 = Point {
        x: -end_dir.x * chord * 0.5,
        y: -end_dir.y * chord * 0.5,
    };
    if gap1.x * gap1.x + gap1.y * gap1.y < 25.0 && start_width >= 5.0 {
        gap1 = Point {
            x: min_gap * start_dir.x,
            y: min_gap * start_dir.y,
        };
    }
    if gap2.x * gap2.x + gap2.y * gap2.y < 25.0 && end_width >= 5.0 {
        gap2 = Point {
            x: min_gap * end_dir.x,
            y: min_gap * end_dir.y,
        };
    }
    let mid1 = Point {
        x: start.x + gap1.x,
        y: start.y + gap1.y,
    };
    let mid2 = Point {
        x: end.x + gap2.x,
        y: end.y + gap2.y,
    };
    let num_points: u32 = 10;
    let mut pts = Vec::with_capacity(num_points as usize + 1);
    for i in 0..=num_points {
        let a = f64::from(i) / f64::from(num_points);
        let p1 = lerp(start, mid1, a);
        let p2 = lerp(mid1, mid2, a);
        let p3 = lerp(mid2, end, a);
        let p4 = lerp(p1, p2, a);
        let p5 = lerp(p2, p3, a);
        pts.push(lerp(p4, p5, a));
    }
    pts
}

/// First crossing of two polylines, scanning `a`'s segments then `b`'s (CityFlow's
/// `Intersection::initCrosses`): the distance along each, or `None`.
pub(crate) fn first_crossing(va: &[Point], vb: &[Point]) -> Option<(f64, f64)> {
    let mut disa = 0.0;
    for ia in 0..va.len().saturating_sub(1) {
        let mut disb = 0.0;
        for ib in 0..vb.len().saturating_sub(1) {
            let (a1, a2, b1, b2) = (va[ia], va[ia + 1], vb[ib], vb[ib + 1]);
            if sign(cross(sub(a2, a1), sub(b2, b1))) != 0 {
                let p = intersect(a1, a2, b1, b2);
                if on_segment(a1, a2, p) && on_segment(b1, b2, p) {
                    return Some((disa + len(sub(p, a1)), disb + len(sub(p, b1))));
                }
            }
            disb += len(sub(vb[ib + 1], vb[ib]));
        }
        disa += len(sub(va[ia + 1], va[ia]));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(x: f64, y: f64) -> Point {
        Point { x, y }
    }

    #[test]
    fn lanes_are_offset_to_the_right_and_trimmed() {
        // An eastbound road of 400 m ending at an intersection 15 m wide.
        let lanes = lane_polylines(
            &[p(-400.0, 0.0), p(0.0, 0.0)],
            &[4.0, 4.0, 4.0],
            None,
            Some(15.0),
        );
        assert_eq!(lanes.len(), 3);
        assert_eq!(lanes[0], vec![p(-400.0, -2.0), p(-15.0, -2.0)]);
        assert_eq!(lanes[2], vec![p(-400.0, -10.0), p(-15.0, -10.0)]);
        assert_eq!(polyline_length(&lanes[1]), 385.0);
    }

    #[test]
    fn point_and_direction_along_a_polyline() {
        let line = [p(0.0, 0.0), p(3.0, 4.0), p(3.0, 10.0)];
        assert_eq!(polyline_length(&line), 11.0);
        assert_eq!(point_at(&line, 2.5), p(1.5, 2.0));
        assert_eq!(point_at(&line, 8.0), p(3.0, 7.0));
        assert_eq!(point_at(&line, 99.0), p(3.0, 10.0));
        assert_eq!(point_at(&line, -1.0), p(0.0, 0.0));
        assert_eq!(direction_at(&line, 6.0), p(0.0, 1.0));
    }

    #[test]
    fn crossing_of_perpendicular_links() {
        let a = [p(-10.0, 0.0), p(10.0, 0.0)];
        let b = [p(0.0, -5.0), p(0.0, 5.0)];
        assert_eq!(first_crossing(&a, &b), Some((10.0, 5.0)));
        let parallel = [p(-10.0, 1.0), p(10.0, 1.0)];
        assert_eq!(first_crossing(&a, &parallel), None);
    }

    #[test]
    fn curve_joins_the_lane_ends() {
        let c = lane_link_curve(
            p(-15.0, -6.0),
            p(1.0, 0.0),
            15.0,
            p(6.0, 15.0),
            p(0.0, 1.0),
            15.0,
        );
        assert_eq!(c.len(), 11);
        assert_eq!(c[0], p(-15.0, -6.0));
        assert_eq!(c[10], p(6.0, 15.0));
        // A left-hand bend lies inside the box spanned by its ends.
        assert!(
            c.iter()
                .all(|q| q.x >= -15.0 && q.x <= 6.0 && q.y >= -6.0 && q.y <= 15.0)
        );
    }
}
